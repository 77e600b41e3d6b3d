"""Overview, notifications, audit log, admins, security headers."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from admin.dashboard import PASSWORD, log_in
from sqlalchemy import select

from app.admin.models import AdminSession, AuditEntry
from app.extensions import db
from app.models import Admin, Notification, NotificationOutcome, Transaction, TxStatus, utcnow

PAGES = [
    "/admin/",
    "/admin/apps",
    "/admin/apps/new",
    "/admin/apps/1",
    "/admin/transactions",
    "/admin/transactions/1",
    "/admin/notifications",
    "/admin/audit",
    "/admin/admins",
    "/admin/account",
]


@pytest.fixture
def some_orders(app, app_key, charge):
    """Today: one paid (50.000), one pending, one expired; 3 days ago: one paid (20.000)."""
    ids = {
        "paid": charge(app_key, "PAID-1", amount=50000),
        "pending": charge(app_key, "WAIT-1", amount=70000),
        "expired": charge(app_key, "EXP-1", amount=90000),
        "old": charge(app_key, "OLD-1", amount=20000),
    }
    with app.app_context():
        db.session.get(Transaction, ids["paid"]).status = TxStatus.SETTLEMENT
        db.session.get(Transaction, ids["expired"]).status = TxStatus.EXPIRE
        old = db.session.get(Transaction, ids["old"])
        old.status, old.created_at = TxStatus.SETTLEMENT, utcnow() - timedelta(days=3)
        db.session.commit()
    return ids


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_with_security_headers(admin_client, some_orders, path):
    resp = admin_client.get(path)
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in resp.headers
    html = resp.get_data(as_text=True)
    # No inline script or style: the CSP would block it in a browser.
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "<style" not in html and " style=" not in html
    assert not re.search(
        r'(href|src)="(https?:)?//', html.replace('href="https://app.sandbox.midtrans.com', "")
    ), "every asset is served by the gateway"


@pytest.mark.parametrize("path", ["/healthz", "/charge", "/nope", "/static/admin.css"])
def test_headers_are_on_api_and_static_responses_too(client, path):
    resp = client.get(path)
    resp.close()  # a static file is streamed
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


def test_hsts_in_production(env, build_app):
    prod = build_app(
        {**env, "MIDTRANS_IS_PRODUCTION": "true", "MIDTRANS_SERVER_KEY": "Mid-server-live-key"}
    )
    resp = prod.test_client().get("/healthz")
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_overview_counts_and_volumes(admin_client, some_orders):
    html = admin_client.get("/admin/").get_data(as_text=True)
    today, week = html.split("Last 7 days", 1)
    # Today: 3 orders, Rp 50.000 paid; 1 paid of 2 finished = 50%.
    assert re.search(r'kpi-value">3<', today)
    assert "Rp 50.000" in today and "50.0%" in today
    # The week adds the old paid order: 4 orders, Rp 70.000 paid, 2 of 3 finished.
    assert re.search(r'kpi-value">4<', week)
    assert "Rp 70.000" in week and "66.7%" in week
    assert "<svg" in html and html.count('class="seg-paid"') == 2
    # The expired order is among the latest failures.
    failures = html.split("Latest failures", 1)[1]
    assert "EXP-1" in failures and "PAID-1" not in failures


def test_flagged_orders_show_among_failures(admin_client, app, some_orders):
    with app.app_context():
        db.session.get(Transaction, some_orders["paid"]).flag = "amount mismatch: 1 vs 50000"
        db.session.commit()
    failures = admin_client.get("/admin/").get_data(as_text=True).split("Latest failures", 1)[1]
    assert "PAID-1" in failures and "amount mismatch" in failures


def test_notifications_filter_by_outcome(admin_client, app):
    with app.app_context():
        for order, outcome, valid in [
            ("FORGED-1", NotificationOutcome.REJECTED, False),
            ("STRANGER-1", NotificationOutcome.UNMATCHED, True),
            ("GOOD-1", NotificationOutcome.APPLIED, True),
        ]:
            db.session.add(
                Notification(
                    body=json.dumps({"order_id": order}),
                    order_id=order,
                    signature_valid=valid,
                    outcome=outcome,
                )
            )
        db.session.commit()
    everything = admin_client.get("/admin/notifications").get_data(as_text=True)
    assert all(o in everything for o in ("FORGED-1", "STRANGER-1", "GOOD-1"))
    rejected = admin_client.get("/admin/notifications?outcome=rejected").get_data(as_text=True)
    assert "FORGED-1" in rejected and "GOOD-1" not in rejected and "STRANGER-1" not in rejected
    unmatched = admin_client.get("/admin/notifications?outcome=unmatched").get_data(as_text=True)
    assert "STRANGER-1" in unmatched and "FORGED-1" not in unmatched


def test_audit_log_shows_who_what_when_where(admin_client, app):
    log_in(app.test_client(), "root", "wrong password!")
    html = admin_client.get("/admin/audit").get_data(as_text=True)
    assert "login_ok" in html and "login_failed" in html and "127.0.0.1" in html
    only_failed = admin_client.get("/admin/audit?action=login_failed").get_data(as_text=True)
    assert "login_failed" in only_failed and "<code>login_ok</code>" not in only_failed


def test_add_an_admin_who_can_log_in(admin_client, post, app):
    short = post(
        "/admin/admins",
        {"username": "siti", "password": "short", "repeat": "short"},
        page="/admin/admins",
    )
    assert short.status_code == 400
    resp = post(
        "/admin/admins",
        {"username": "siti", "password": "siti-long-password", "repeat": "siti-long-password"},
        page="/admin/admins",
    )
    assert resp.status_code == 302
    assert log_in(app.test_client(), "siti", "siti-long-password").status_code == 302
    with app.app_context():
        entry = db.session.execute(
            select(AuditEntry).where(AuditEntry.action == "admin_create")
        ).scalar_one()
        assert entry.target == "admin:siti" and "siti-long-password" not in str(entry.after)
    again = post(
        "/admin/admins",
        {"username": "siti", "password": "x" * 12, "repeat": "x" * 12},
        page="/admin/admins",
    )
    assert "already exists" in again.get_data(as_text=True)


def test_change_password_needs_the_current_one_and_logs_out_elsewhere(admin_client, post, app):
    elsewhere = app.test_client()
    log_in(elsewhere)
    new = "a brand new passphrase"
    wrong = post(
        "/admin/account", {"current": "nope", "new": new, "repeat": new}, page="/admin/account"
    )
    assert "The current password is wrong" in wrong.get_data(as_text=True)
    too_short = post(
        "/admin/account",
        {"current": PASSWORD, "new": "elevenchars", "repeat": "elevenchars"},
        page="/admin/account",
    )
    assert too_short.status_code == 400
    ok = post(
        "/admin/account", {"current": PASSWORD, "new": new, "repeat": new}, page="/admin/account"
    )
    assert ok.status_code == 302
    assert admin_client.get("/admin/").status_code == 200  # this session stays
    assert elsewhere.get("/admin/").status_code == 302  # the other one is logged out
    with app.app_context():
        assert db.session.execute(select(AdminSession)).scalars().all().__len__() == 1
        admin = db.session.execute(select(Admin)).scalar_one()
        assert admin.password_hash.startswith("$argon2id$")
        actions = db.session.execute(select(AuditEntry.action)).scalars().all()
    assert "password_change" in actions
    assert log_in(app.test_client(), "root", PASSWORD).status_code == 401
    assert log_in(app.test_client(), "root", new).status_code == 302
