"""Dashboard fixtures: a CSRF-carrying POST, orders and a client app's callback endpoint (the
admin account and the logged-in client, `admin_user` and `admin_client`, are the root
conftest's)."""

from __future__ import annotations

import pytest
from admin.dashboard import token_for
from kit.endpoints import CallbackReceiver
from support import charge as post_charge

from app.extensions import db
from app.models import Transaction


@pytest.fixture
def post(admin_client):
    """POST a dashboard form with a valid CSRF token taken from `page` (default: overview)."""

    def send(path: str, data: dict | None = None, *, page: str | None = None, **kwargs):
        token = token_for(admin_client, page or "/admin/")
        return admin_client.post(path, data={"csrf_token": token, **(data or {})}, **kwargs)

    return send


@pytest.fixture
def charge(client, midtrans):
    """Create an order through the real API; its row id."""

    def make(headers: dict, order_id: str, amount: int = 150000) -> int:
        post_charge(client, headers, midtrans, order_id, amount)
        with client.application.app_context():
            return (
                db.session.query(Transaction.id)
                .filter_by(order_id=order_id, app_id=_app_id(headers["X-App-Code"]))
                .scalar()
            )

    return make


def _app_id(code: str) -> int:
    from app.models import App

    return db.session.query(App.id).filter_by(code=code).scalar()


@pytest.fixture
def receiver(served):
    """A client app's callback URL on 127.0.0.1 that keeps every callback unverified (a test
    verifies it with the secret it learns) and answers what the test queues, then 204; use it
    with `loopback_callbacks`."""
    return served(CallbackReceiver(verify=False, path="/midtrans-updates"))
