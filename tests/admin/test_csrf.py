"""Every dashboard POST without a CSRF token, or with a wrong one, is refused and changes
nothing; the JSON API never asks for one."""

from __future__ import annotations

import pytest
from admin.dashboard import PASSWORD
from admin.dashboard import table_snapshot as snapshot
from sqlalchemy import select

from app.admin.models import AdminSession
from app.extensions import db
from app.models import App, TxStatus

FORMS = {
    "login": ("/admin/login", {"username": "root", "password": PASSWORD}),
    "logout": ("/admin/logout", {}),
    "language": ("/admin/language", {"lang": "id"}),
    "app_create": ("/admin/apps/new", {"code": "evil", "name": "Evil"}),
    "app_edit": ("/admin/apps/{app}", {"name": "Renamed", "order_prefix": "x-"}),
    "app_rotate": ("/admin/apps/{app}/rotate", {"confirm": "y"}),
    "app_disable": ("/admin/apps/{app}/disable", {}),
    "app_enable": ("/admin/apps/{app}/enable", {}),
    "sync": ("/admin/transactions/{txn}/sync", {}),
    "cancel": ("/admin/transactions/{txn}/cancel", {"confirm": "y"}),
    "expire": ("/admin/transactions/{txn}/expire", {"confirm": "y"}),
    "refund": (
        "/admin/transactions/{txn}/refund",
        {"amount": "1000", "reason": "x", "refund_key": "k" * 20, "confirm": "y"},
    ),
    "admin_create": (
        "/admin/admins",
        {"username": "mallory", "password": "x" * 20, "repeat": "x" * 20},
    ),
    "password_change": (
        "/admin/account",
        {"current": PASSWORD, "new": "y" * 20, "repeat": "y" * 20},
    ),
}


@pytest.fixture
def world(admin_client, app, app_key, charge):
    txn = charge(app_key, "INV-1", amount=1000)
    with app.app_context():
        db.session.get(App, 1).active = False  # so "enable" would change something
        db.session.commit()
    return {"app": 1, "txn": txn}


@pytest.mark.parametrize("token", [None, "wrong-token", "IjEyMyI.aBcDeF.0123456789"])
@pytest.mark.parametrize("name", sorted(FORMS))
def test_post_without_a_valid_token_is_refused(admin_client, app, midtrans, world, name, token):
    path, data = FORMS[name]
    if name == "refund":
        with app.app_context():
            from app.models import Transaction

            db.session.get(Transaction, world["txn"]).status = TxStatus.SETTLEMENT
            db.session.commit()
    client = app.test_client() if name == "login" else admin_client
    before, calls = snapshot(app), len(midtrans.calls)
    body = dict(data)
    if token is not None:
        body["csrf_token"] = token
    resp = client.post(path.format(**world), data=body)
    assert resp.status_code == 400
    assert resp.mimetype == "text/html"
    assert snapshot(app) == before
    assert len(midtrans.calls) == calls
    if name == "language":
        assert 'lang="en"' in client.get("/admin/").get_data(as_text=True)
    if name == "login":
        assert client.get("/admin/").status_code == 302


def test_a_token_from_another_session_is_refused(client, app, admin_user, world):
    """A token is bound to its own session: one lifted from another browser does not work."""
    from admin.dashboard import log_in, token_for

    other = app.test_client()
    log_in(other)
    foreign = token_for(other, "/admin/")
    before = snapshot(app)
    resp = client.post("/admin/apps/new", data={"csrf_token": foreign, "code": "x", "name": "x"})
    assert resp.status_code == 400
    assert snapshot(app) == before


def test_the_json_api_needs_no_token(client, app_key, midtrans):
    from support import snap_ok

    snap_ok(midtrans)
    resp = client.post("/charge", json={"order_id": "A-1", "amount": 1000}, headers=app_key)
    assert resp.status_code == 201


def test_logout_with_a_token_ends_the_session(admin_client, app):
    from admin.dashboard import token_for

    token = token_for(admin_client, "/admin/")
    admin_client.post("/admin/logout", data={"csrf_token": token})
    with app.app_context():
        assert db.session.execute(select(AdminSession)).first() is None
