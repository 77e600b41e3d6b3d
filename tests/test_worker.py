"""The worker: reconciles pending orders on a schedule, confirms notifications, expires links
nobody paid, claims rows so several workers never do the same order, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import requests
import responses
from support import snap_ok, status_url

from app import payments
from app.extensions import db
from app.models import Transaction, TransactionEvent
from app.payments.reconcile import CHECK_OFFSETS, _claim

PAID = {
    "status_code": "200",
    "transaction_id": "tx-1",
    "order_id": "W-1",
    "gross_amount": "5000.00",
    "currency": "IDR",
    "payment_type": "qris",
    "transaction_status": "settlement",
    "fraud_status": "accept",
}
NOT_FOUND = {"status_code": "404", "status_message": "Transaction doesn't exist."}


def charge(client, headers, midtrans, body=None):
    snap_ok(midtrans)
    body = body or {"order_id": "W-1", "amount": 5000}
    assert client.post("/charge", json=body, headers=headers).status_code == 201


def reconcile(app, at: datetime) -> int:
    with app.app_context():
        return payments.reconcile_due_orders(midtrans=app.extensions["midtrans"], now=at)


def txn(app) -> Transaction:
    """The one order, detached; `attempt_started_at` is when its link was made."""
    with app.app_context():
        row = db.session.query(Transaction).one()
        db.session.expunge(row)
        return row


def test_a_paid_order_whose_notification_was_lost_is_settled_by_the_worker(
    app, client, app_key, midtrans
):
    charge(client, app_key, midtrans)
    created = txn(app).attempt_started_at
    midtrans.add(responses.GET, status_url("W-1"), json=PAID)

    assert reconcile(app, created + timedelta(minutes=1)) == 0  # not due yet
    assert reconcile(app, created + timedelta(minutes=3)) == 1

    row = txn(app)
    assert row.status == "settlement"
    assert row.next_check_at is None  # nothing left to check
    with app.app_context():
        event = db.session.query(TransactionEvent).order_by(TransactionEvent.id.desc()).first()
        assert (event.to_status, event.source) == ("settlement", "reconciliation")


def test_pending_orders_are_checked_on_the_schedule(app, client, app_key, midtrans):
    charge(client, app_key, midtrans)
    created = txn(app).attempt_started_at
    midtrans.add(responses.GET, status_url("W-1"), json=NOT_FOUND)
    seen = []
    at = created
    for _ in range(4):
        at = txn(app).next_check_at
        seen.append(at - created)
        assert reconcile(app, at) == 1
    assert seen == CHECK_OFFSETS[:4]
    assert txn(app).status == "pending"


def test_a_link_nobody_paid_expires_after_its_expiry(app, client, app_key, midtrans):
    body = {"order_id": "W-1", "amount": 5000, "expiry": {"unit": "minutes", "duration": 30}}
    charge(client, app_key, midtrans, body)
    row = txn(app)
    assert row.expires_at - row.attempt_started_at == timedelta(minutes=30)
    midtrans.add(responses.GET, status_url("W-1"), json=NOT_FOUND)

    reconcile(app, row.attempt_started_at + timedelta(minutes=10))
    assert txn(app).status == "pending"
    reconcile(app, row.attempt_started_at + timedelta(minutes=32))
    assert txn(app).status == "expire"


def test_midtrans_down_retries_soon_without_losing_the_order(app, client, app_key, midtrans):
    charge(client, app_key, midtrans)
    created = txn(app).attempt_started_at
    midtrans.add(responses.GET, status_url("W-1"), body=requests.ConnectionError("down"))
    at = created + timedelta(minutes=3)
    reconcile(app, at)
    row = txn(app)
    assert row.status == "pending" and row.check_count == 0
    assert row.next_check_at - at == timedelta(minutes=5)


def test_only_one_worker_gets_a_claim_until_it_runs_out(app, client, app_key, midtrans):
    charge(client, app_key, midtrans)
    now = datetime.now(UTC)
    with app.app_context():
        txn_id = db.session.query(Transaction.id).scalar()
        assert _claim(Transaction, txn_id, now) is True
        assert _claim(Transaction, txn_id, now) is False
        assert _claim(Transaction, txn_id, now + timedelta(minutes=3)) is True


def test_worker_once_runs_and_sigterm_stops_it_cleanly(app, env, client, app_key, midtrans):
    charge(client, app_key, midtrans)
    process_env = {**os.environ, **env, "MIDTRANS_API_BASE_URL": "http://127.0.0.1:9"}
    once = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--once"],
        env=process_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert once.returncode == 0, once.stderr

    with subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--interval", "0.2"],
        env=process_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        deadline = time.monotonic() + 20
        lines = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "worker started" in line:
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        rest = proc.stdout.read()
    assert "worker stopped" in rest, "".join(lines) + rest
