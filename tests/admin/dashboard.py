"""Helpers for the dashboard tests (imported as `admin.dashboard`)."""

from __future__ import annotations

import re

PASSWORD = "correct horse battery staple"

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


def settled(order_id: str, amount: int, status: str = "settlement", **extra) -> dict:
    """A Midtrans status answer for `order_id` (Midtrans's order id)."""
    return {
        "status_code": "200",
        "status_message": "Success, transaction is found",
        "transaction_id": f"trx-{order_id}",
        "order_id": order_id,
        "gross_amount": f"{amount}.00",
        "currency": "IDR",
        "payment_type": "bank_transfer",
        "transaction_time": "2026-11-21 10:00:00",
        "transaction_status": status,
        "fraud_status": "accept",
        **extra,
    }
