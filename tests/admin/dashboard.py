"""Helpers for the dashboard tests (imported as `admin.dashboard`)."""

from __future__ import annotations

import re

from support import status_answer

PASSWORD = "correct horse battery staple"

# What a client app's endpoint answers when it is gone for good: 410 with its reason (for a
# `kit.endpoints.CallbackReceiver`'s `answers`).
GONE = (410, {}, b"gone for good")

_TOKEN = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _TOKEN.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def token_for(client, path: str = "/admin/login") -> str:
    resp = client.get(path)
    assert resp.status_code == 200, resp.status_code
    return csrf_from(resp.get_data(as_text=True))


def log_in(client, username: str = "root", password: str = PASSWORD):
    token = token_for(client, "/admin/login")
    return client.post(
        "/admin/login",
        data={"csrf_token": token, "username": username, "password": password},
    )


def table_snapshot(app) -> dict:
    """Every row of every table, but the session's last-seen time (reading pages moves it)."""
    from sqlalchemy import select

    from app.extensions import db

    with app.app_context():
        tables = {}
        for table in db.metadata.sorted_tables:
            columns = [c for c in table.columns if c.name != "last_seen_at"]
            rows = db.session.execute(select(*columns).order_by(*table.primary_key.columns))
            tables[table.name] = [tuple(r) for r in rows]
        db.session.commit()
        return tables


def settled(order_id: str, amount: int, status: str = "settlement", **extra) -> dict:
    """A Midtrans status answer for `order_id` (Midtrans's order id)."""
    return status_answer(order_id, status, amount=amount, **{"status_code": "200", **extra})


def forged_notification(order_id: str, body: str, reason: str = "signature mismatch"):
    """A stored settlement notification the gateway refused for its signature (a forgery), as
    the order's page lists it; to add to the session."""
    from app.models import Notification, NotificationOutcome

    return Notification(
        body=body,
        order_id=order_id,
        transaction_status="settlement",
        signature_valid=False,
        outcome=NotificationOutcome.REJECTED,
        reason=reason,
    )
