"""The audit log says what an action changed, field by field (before -> after)."""

from __future__ import annotations

from app.admin.filters import audit_changes


def test_only_changed_fields_are_listed_with_before_and_after():
    before = {"name": "Toko", "active": True, "callback_url": None, "order_prefix": "toko-"}
    after = {
        "name": "Toko Baru",
        "active": False,
        "callback_url": "https://x",
        "order_prefix": "toko-",
    }
    assert audit_changes(before, after) == [
        ("active", "true", "false"),
        ("callback_url", "", "https://x"),
        ("name", "Toko", "Toko Baru"),
    ]


def test_a_creation_or_a_removal_shows_one_side():
    assert audit_changes(None, {"code": "toko"}) == [("code", "", "toko")]
    assert audit_changes({"code": "toko"}, None) == [("code", "toko", "")]
    assert audit_changes(None, None) == []


def test_the_audit_page_shows_the_change_not_raw_json(admin_client, app):
    from app.admin import audit
    from app.extensions import db

    with app.test_request_context("/admin/"):
        audit.record(
            "app_edit",
            target="app:toko",
            before={"name": "Toko", "active": True},
            after={"name": "Toko Baru", "active": True},
            username="admin",
        )
        db.session.commit()
    page = admin_client.get("/admin/audit").get_data(as_text=True)
    assert "Toko</span> → Toko Baru" in page
    assert "<code>active</code>" not in page  # unchanged: not listed
