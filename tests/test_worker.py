"""The worker: reconciles pending orders on a schedule, confirms notifications, expires links
nobody paid, claims rows so several workers never do the same order, stops on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
from datetime import UTC, datetime, timedelta
from functools import partial

import requests
import responses
import support
from support import API_BASE, SNAP_URL, snap_ok, status_url

from app import payments
from app.extensions import db
from app.models import App, Transaction, TransactionEvent
from app.payments import charges
from app.payments.reconcile import (
    CHECK_OFFSETS,
    DAILY,
    MIN_GAP,
    StatusCallBudget,
    _claim,
    settle_abandoned_attempts,
)
from app.schemas import ChargeRequest
from app.services import gateway
from app.worker import jobs, run_round
from bench.processes import FLASK, REPO, Piped, run

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


charge = partial(support.charge, order_id="W-1", amount=5000)


def unpaid_link(app, client, app_key, midtrans) -> datetime:
    """Order W-1 with a link that expires in 30 minutes, of which Midtrans knows no
    transaction; when its link was made."""
    charge(client, app_key, midtrans, expiry={"unit": "minutes", "duration": 30})
    midtrans.add(responses.GET, status_url("W-1"), json=NOT_FOUND)
    return txn(app).attempt_started_at


def reconcile(app, at: datetime) -> int:
    with app.app_context():
        return payments.reconcile_due_orders(midtrans=gateway(app).midtrans, now=at)


def txn(app) -> Transaction:
    """The one order, detached; `attempt_started_at` is when its link was made."""
    with app.app_context():
        row = db.session.query(Transaction).one()
        db.session.expunge(row)
        return row


def orders(app) -> list[Transaction]:
    """Every order, detached, in the order they were made."""
    with app.app_context():
        rows = db.session.query(Transaction).order_by(Transaction.id).all()
        db.session.expunge_all()
        return rows


def status_calls(midtrans) -> list:
    return [call for call in midtrans.calls if call.request.url.endswith("/status")]


STATUS_ANY = re.compile(re.escape(API_BASE) + r"/v2/(?P<order>[^/]+)/status")


def pending_at_midtrans(midtrans) -> None:
    """Midtrans holds a pending payment (a VA nobody paid yet) for every order asked about."""

    def reply(request):
        order = STATUS_ANY.match(request.url)["order"]
        body = {
            "status_code": "201",
            "transaction_id": f"tx-{order}",
            "order_id": order,
            "gross_amount": "5000.00",
            "currency": "IDR",
            "payment_type": "bank_transfer",
            "transaction_status": "pending",
        }
        return 200, {}, json.dumps(body)

    midtrans.add_callback(responses.GET, STATUS_ANY, callback=reply)


def overdue_by(app, age: timedelta) -> datetime:
    """Make every order's link `age` old with its first check long missed, as after the worker
    was stopped; the moment the checks were due."""
    now = datetime.now(UTC)
    with app.app_context():
        for row in db.session.query(Transaction):
            row.attempt_started_at = now - age
            row.expires_at = now - age + timedelta(days=30)  # a link that can still be paid
            row.next_check_at = now - age + CHECK_OFFSETS[0]
        db.session.commit()
    return now


def abandoned_attempt(app, body: dict | None = None) -> Transaction:
    """An order as a gateway process that died during its Snap call leaves it: reserved
    (`creating`) before the call, never finished."""
    body = body or {"order_id": "W-1", "amount": 5000}
    with app.app_context():
        client_app = db.session.query(App).filter_by(code="biling").one()
        charges._reserve(
            client_app, ChargeRequest.parse(body, prefix=""), in_flight=timedelta(seconds=32)
        )
    row = txn(app)
    assert row.link_state == "creating"
    return row


def abandoned_and_asked(app, midtrans, **answer) -> datetime:
    """An abandoned attempt (`abandoned_attempt`) whose status call Midtrans answers with
    `answer` (`json=` or `body=`, as `responses` takes them); when the attempt started."""
    started = abandoned_attempt(app).attempt_started_at
    midtrans.add(responses.GET, status_url("W-1"), **answer)
    return started


def settle(app, at: datetime) -> int:
    with app.app_context():
        return settle_abandoned_attempts(midtrans=gateway(app).midtrans, now=at)


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
    unpaid_link(app, client, app_key, midtrans)
    row = txn(app)
    assert timedelta(minutes=30) <= row.expires_at - row.attempt_started_at < timedelta(minutes=31)

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
    once = run([*FLASK, "worker", "--once"], env=process_env, cwd=REPO)
    assert once.returncode == 0, once.stderr

    worker = Piped([*FLASK, "worker", "--interval", "0.2"], env=process_env, cwd=REPO)
    try:
        started = worker.wait_for("worker started", 20)
        code = worker.signal(signal.SIGTERM, 15)[2]
    finally:
        worker.close()
    output = worker.output()
    assert code == 0, output
    assert "worker stopped" in output[started.end() if started else 0 :], output


# -- gateway-made expiry (issue 11 item 1) ---------------------------------------------------


def test_a_gateway_made_expire_is_marked_and_asked_about_daily_for_three_days(
    app, client, app_key, midtrans
):
    started = unpaid_link(app, client, app_key, midtrans)

    expired_at = started + timedelta(minutes=32)
    assert reconcile(app, expired_at) == 1
    row = txn(app)
    assert (row.status, row.status_by_gateway) == ("expire", True)
    assert row.next_check_at == expired_at + DAILY

    asked = [row.next_check_at]
    for _ in range(3):
        assert reconcile(app, txn(app).next_check_at) == 1
        row = txn(app)
        assert (row.status, row.status_by_gateway) == ("expire", True)
        asked.append(row.next_check_at)
    assert asked == [expired_at + DAILY * n for n in (1, 2, 3)] + [None]
    assert reconcile(app, expired_at + timedelta(days=10)) == 0
    assert len(status_calls(midtrans)) == 4  # the expiring check and one a day for 3 days
    with app.app_context():
        moves = db.session.query(TransactionEvent.to_status).filter_by(source="reconciliation")
        assert [m for (m,) in moves] == ["expire"]  # the checks after it changed nothing


def test_a_payment_found_after_a_gateway_made_expire_wins_and_is_flagged(
    app, client, app_key, midtrans
):
    started = unpaid_link(app, client, app_key, midtrans)
    reconcile(app, started + timedelta(minutes=32))
    assert txn(app).status == "expire"

    midtrans.replace(responses.GET, status_url("W-1"), json=PAID)  # its notification was lost
    assert reconcile(app, txn(app).next_check_at) == 1
    row = txn(app)
    assert (row.status, row.status_by_gateway, row.next_check_at) == ("settlement", False, None)
    assert row.flag


# -- attempts left `creating` by a crashed process (issue 11 item 6) -------------------------


def test_an_abandoned_attempt_becomes_unknown_and_the_next_charge_uses_a_fresh_order_id(
    app, client, app_key, midtrans
):
    started = abandoned_and_asked(app, midtrans, json=NOT_FOUND)
    assert settle(app, started + timedelta(minutes=1)) == 1
    row = txn(app)
    assert (row.link_state, row.status, row.flag) == ("unknown", "pending", None)
    assert "abandoned" in row.last_error
    assert row.claimed_until is None

    snap_ok(midtrans, token="tok-again")
    answer = client.post("/charge", json={"order_id": "W-1", "amount": 5000}, headers=app_key)
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["order_id"] == "W-1"
    row = txn(app)
    assert (row.link_state, row.attempt, row.snap_token) == ("created", 2, "tok-again")
    assert row.midtrans_order_id.startswith("W-1~")  # Midtrans may hold "W-1" unseen
    snap = [call for call in midtrans.calls if call.request.url == SNAP_URL]
    sent = json.loads(snap[-1].request.body)["transaction_details"]["order_id"]
    assert sent == row.midtrans_order_id


def test_an_abandoned_attempt_with_a_transaction_at_midtrans_is_applied_and_flagged(
    app, client, app_key, midtrans
):
    started = abandoned_and_asked(app, midtrans, json=PAID)
    assert settle(app, started + timedelta(minutes=1)) == 1
    row = txn(app)
    assert (row.link_state, row.status) == ("unknown", "settlement")
    assert "W-1" in row.flag and "abandoned" in row.flag
    with app.app_context():
        events = db.session.query(TransactionEvent).order_by(TransactionEvent.id).all()
        assert [(e.to_status, e.source) for e in events] == [
            ("pending", "reconciliation"),  # the flag, with its reason
            ("settlement", "reconciliation"),
        ]
        assert "no client was shown" in events[0].detail


def test_an_attempt_still_in_flight_is_left_alone_until_its_time_is_up(
    app, client, app_key, midtrans
):
    started = abandoned_and_asked(app, midtrans, json=NOT_FOUND)
    # MIDTRANS_TIMEOUT (2 s here) + ATTEMPT_GRACE (30 s): the Snap call may still answer.
    assert settle(app, started + timedelta(seconds=20)) == 0
    assert txn(app).link_state == "creating"
    assert status_calls(midtrans) == []

    assert settle(app, started + timedelta(seconds=40)) == 1
    assert txn(app).link_state == "unknown"


def test_an_abandoned_attempt_waits_for_the_next_pass_when_midtrans_is_down(
    app, client, app_key, midtrans
):
    started = abandoned_and_asked(app, midtrans, body=requests.ConnectionError("down"))
    settle(app, started + timedelta(minutes=1))
    row = txn(app)
    assert (row.link_state, row.claimed_until) == ("creating", None)

    midtrans.replace(responses.GET, status_url("W-1"), json=NOT_FOUND)
    assert settle(app, started + timedelta(minutes=2)) == 1
    assert txn(app).link_state == "unknown"


# -- after a long stop: no burst (issue 11 item 7) -------------------------------------------


def test_an_order_overdue_by_days_gets_one_status_call_per_pass(app, client, app_key, midtrans):
    charge(client, app_key, midtrans)
    now = overdue_by(app, timedelta(days=3))
    pending_at_midtrans(midtrans)

    for seconds in (0, 1, 2, 5, 30, 59):  # the worker loops at once while it has work
        reconcile(app, now + timedelta(seconds=seconds))
    assert len(status_calls(midtrans)) == 1
    row = txn(app)
    assert row.status == "pending"
    assert row.next_check_at == now + DAILY  # past every offset: daily
    assert row.check_count == len(CHECK_OFFSETS)


def test_missed_checks_are_skipped_to_the_next_one_still_ahead(app, client, app_key, midtrans):
    charge(client, app_key, midtrans)
    now = overdue_by(app, timedelta(hours=3))
    pending_at_midtrans(midtrans)

    assert reconcile(app, now) == 1
    assert reconcile(app, now + timedelta(seconds=1)) == 0
    row = txn(app)
    assert row.next_check_at == row.attempt_started_at + timedelta(hours=6)
    assert row.check_count == CHECK_OFFSETS.index(timedelta(hours=6))


def test_a_check_is_never_followed_by_another_within_the_minimum_gap(
    app, client, app_key, midtrans
):
    charge(client, app_key, midtrans)
    started = txn(app).attempt_started_at
    pending_at_midtrans(midtrans)

    at = started + CHECK_OFFSETS[1] - timedelta(seconds=10)  # a retry just before the 10 min
    assert reconcile(app, at) == 1
    assert txn(app).next_check_at == at + MIN_GAP


def test_the_worker_caps_status_calls_per_minute_across_rounds(app, client, app_key, midtrans):
    for n in range(12):
        charge(client, app_key, midtrans, order_id=f"W-{n}", amount=5000)
    overdue_by(app, timedelta(days=2))
    before = {row.id: row.next_check_at for row in orders(app)}
    pending_at_midtrans(midtrans)

    round_jobs = jobs(app, status_calls_per_minute=5)
    for _ in range(4):  # the worker's rounds within one minute
        run_round(app, round_jobs)
    assert len(status_calls(midtrans)) == 5
    rows = orders(app)
    checked = [row for row in rows if row.next_check_at != before[row.id]]
    assert len(checked) == 5
    waiting = [row for row in rows if row.next_check_at == before[row.id]]
    assert len(waiting) == 7 and all(row.claimed_until is None for row in waiting)


def test_orders_beyond_the_cap_are_checked_in_the_next_minute(app, client, app_key, midtrans):
    for n in range(8):
        charge(client, app_key, midtrans, order_id=f"W-{n}", amount=5000)
    now = overdue_by(app, timedelta(days=2))
    pending_at_midtrans(midtrans)
    clock = [1000.0]
    budget = StatusCallBudget(5, clock=lambda: clock[0])

    def run(at: datetime) -> int:
        with app.app_context():
            midtrans_client = gateway(app).midtrans
            return payments.reconcile_due_orders(midtrans=midtrans_client, now=at, budget=budget)

    assert run(now) == 5
    clock[0] += 30
    assert run(now + timedelta(seconds=30)) == 0
    clock[0] += 31
    assert run(now + timedelta(seconds=61)) == 3
    assert len(status_calls(midtrans)) == 8
    assert all(row.next_check_at > now + timedelta(hours=23) for row in orders(app))
