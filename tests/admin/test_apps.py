"""App Keys: create (key shown once), rotate, disable/enable, edit; each audited."""

from __future__ import annotations

import re

from sqlalchemy import select
from support import snap_ok

from app.admin.models import AuditEntry
from app.extensions import db
from app.models import App

NEW_APP = "/admin/apps/new"


def shown_key(html: str) -> str:
    return re.search(r'<code id="api-key" class="secret">([0-9a-f]{40})</code>', html).group(1)


def audit_actions(app) -> list[tuple[str, str | None]]:
    with app.app_context():
        rows = db.session.execute(
            select(AuditEntry.action, AuditEntry.target).order_by(AuditEntry.id)
        )
        return [tuple(row) for row in rows]


def test_created_key_is_shown_once_uncached_and_works(admin_client, post, app, midtrans):
    resp = post(NEW_APP, {"code": "toko", "name": "Toko Online"}, page=NEW_APP)
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    html = resp.get_data(as_text=True)
    key = shown_key(html)
    assert "data-copy" in html and "shown only this once" in html

    with app.app_context():
        stored = db.session.execute(select(App).where(App.code == "toko")).scalar_one()
        assert stored.order_prefix == "toko-" and key not in stored.key_hash
    listing = admin_client.get("/admin/apps").get_data(as_text=True)
    assert "Toko Online" in listing and key not in listing

    snap_ok(midtrans)
    charge = admin_client.post(
        "/charge",
        json={"order_id": "A-1", "amount": 1000},
        headers={"X-App-Code": "toko", "X-Api-Key": key},
    )
    assert charge.status_code == 201
    assert ("app_create", "app:toko") in audit_actions(app)
    with app.app_context():
        entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "app_create"))
        assert key not in str(entry.scalar_one().after)


def test_create_with_no_prefix_and_a_bad_code(admin_client, post, app):
    bad = post(NEW_APP, {"code": "no spaces", "name": "x"}, page=NEW_APP)
    assert bad.status_code == 400
    post(NEW_APP, {"code": "legacy", "name": "Old", "no_prefix": "y"}, page=NEW_APP)
    with app.app_context():
        codes = {a.code: a.order_prefix for a in db.session.execute(select(App)).scalars()}
    assert codes == {"legacy": ""}


def test_duplicate_code_or_prefix_is_refused(admin_client, post, app, app_key):
    dup = post(NEW_APP, {"code": "biling", "name": "again"}, page=NEW_APP)
    assert dup.status_code == 400 and "already exists" in dup.get_data(as_text=True)
    # `biling` has no prefix: a second app without one could block its order ids.
    clash = post(NEW_APP, {"code": "other", "name": "x", "no_prefix": "y"}, page=NEW_APP)
    assert clash.status_code == 400 and "already uses this order prefix" in clash.get_data(
        as_text=True
    )
    with app.app_context():
        assert db.session.execute(select(App.code)).scalars().all() == ["biling"]


def _app_id(app, code: str) -> int:
    with app.app_context():
        return db.session.execute(select(App.id).where(App.code == code)).scalar_one()


def test_rotate_needs_confirmation_then_the_old_key_stops(admin_client, post, app, app_key):
    app_id = _app_id(app, "biling")
    edit = f"/admin/apps/{app_id}"
    refused = post(f"/admin/apps/{app_id}/rotate", page=edit)
    assert refused.status_code == 302
    assert admin_client.get("/status/nothing", headers=app_key).status_code == 404  # key works

    resp = post(f"/admin/apps/{app_id}/rotate", {"confirm": "y"}, page=edit)
    assert resp.headers["Cache-Control"] == "no-store"
    new_key = shown_key(resp.get_data(as_text=True))
    assert admin_client.get("/status/nothing", headers=app_key).status_code == 401
    new_headers = {"X-App-Code": "biling", "X-Api-Key": new_key}
    assert admin_client.get("/status/nothing", headers=new_headers).status_code == 404
    with app.app_context():
        entry = db.session.execute(
            select(AuditEntry).where(AuditEntry.action == "app_rotate_key")
        ).scalar_one()
    assert entry.before["key_hint"] == app_key["X-Api-Key"][:4] + "…"
    assert entry.after["key_hint"] == new_key[:4] + "…"


def test_disable_and_enable(admin_client, post, app, app_key):
    app_id = _app_id(app, "biling")
    post(f"/admin/apps/{app_id}/disable", page="/admin/apps")
    assert admin_client.get("/status/x", headers=app_key).status_code == 401
    assert "disabled" in admin_client.get("/admin/apps").get_data(as_text=True)
    post(f"/admin/apps/{app_id}/enable", page="/admin/apps")
    assert admin_client.get("/status/x", headers=app_key).status_code == 404
    actions = [a for a, _ in audit_actions(app)]
    assert actions[-2:] == ["app_disable", "app_enable"]


def test_edit_name_and_prefix(admin_client, post, app, app_key):
    app_id = _app_id(app, "biling")
    edit = f"/admin/apps/{app_id}"
    bad = post(edit, {"name": "Billing", "order_prefix": "no/slash"}, page=edit)
    assert bad.status_code == 400
    resp = post(edit, {"name": "WHMCS Billing", "order_prefix": "whmcs-"}, page=edit)
    assert resp.status_code == 302
    with app.app_context():
        stored = db.session.get(App, app_id)
        assert (stored.name, stored.order_prefix) == ("WHMCS Billing", "whmcs-")
        entry = db.session.execute(
            select(AuditEntry).where(AuditEntry.action == "app_edit")
        ).scalar_one()
    assert entry.before["order_prefix"] == "" and entry.after["order_prefix"] == "whmcs-"
    assert entry.before["name"] == "biling app" and entry.after["name"] == "WHMCS Billing"


def test_refunds_through_the_api_are_allowed_by_a_checkbox_and_audited(
    admin_client, post, app, app_key
):
    app_id = _app_id(app, "biling")
    edit = f"/admin/apps/{app_id}"
    page = admin_client.get(edit).get_data(as_text=True)
    assert (
        'name="allow_refunds"' in page
        and "checked" not in page.split('name="allow_refunds"')[1][:40]
    )

    resp = post(edit, {"name": "biling app", "order_prefix": "", "allow_refunds": "y"}, page=edit)
    assert resp.status_code == 302
    with app.app_context():
        assert db.session.get(App, app_id).allow_refunds is True
        entry = db.session.execute(
            select(AuditEntry).where(AuditEntry.action == "app_edit")
        ).scalar_one()
    assert (entry.before["allow_refunds"], entry.after["allow_refunds"]) == (False, True)

    post(edit, {"name": "biling app", "order_prefix": ""}, page=edit)  # unticked: off again
    with app.app_context():
        assert db.session.get(App, app_id).allow_refunds is False
