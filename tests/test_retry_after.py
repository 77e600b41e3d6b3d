"""Retry-After is the gateway's own and only on answers that ask a client to wait: the rate
limiter's window never overwrites it, and a success never carries one."""

from __future__ import annotations

from datetime import UTC, datetime

from support import snap_ok

from app.extensions import db
from app.models import LinkState, Transaction


def test_a_created_link_carries_no_retry_after(client, app_key, midtrans):
    snap_ok(midtrans)
    resp = client.post("/charge", json={"order_id": "RA-1", "amount": 1000}, headers=app_key)
    assert resp.status_code == 201
    assert "Retry-After" not in resp.headers
    assert "X-RateLimit-Limit" in resp.headers  # the limiter still says where the app stands


def test_an_order_being_created_says_retry_in_two_seconds(client, app, app_key, midtrans):
    snap_ok(midtrans)
    client.post("/charge", json={"order_id": "RA-2", "amount": 1000}, headers=app_key)
    with app.app_context():
        txn = db.session.query(Transaction).filter_by(order_id="RA-2").one()
        txn.link_state, txn.attempt_started_at = LinkState.CREATING, datetime.now(UTC)
        db.session.commit()

    resp = client.post("/charge", json={"order_id": "RA-2", "amount": 1000}, headers=app_key)

    assert resp.status_code == 409 and resp.json["error"]["code"] == "charge_in_progress"
    assert resp.headers["Retry-After"] == "2"


def test_an_unknown_order_carries_no_retry_after(client, app_key):
    resp = client.get("/status/NOPE-1", headers=app_key)
    assert resp.status_code == 404 and "Retry-After" not in resp.headers
