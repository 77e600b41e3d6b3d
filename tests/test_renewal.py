"""Renewing an unpaid order (SPEC "Renewing an unpaid order"): POST /charge again for an order
whose last link is dead makes a new attempt, under a fresh Midtrans order id wherever Midtrans
may hold a payment for the old one (else under the same id, which revokes the old page); a
paid order is never charged again; a payment on an old attempt after a renewal is applied and
flagged."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import responses
import support
from support import (
    API_BASE,
    NOTIFICATION_CODES,
    SNAP_URL,
    signed,
    snap_ok,
    status_answer,
    status_url,
)

from app.extensions import db
from app.models import PaymentAttempt, Transaction, TransactionEvent
from app.payments.outcomes import outcome_of

ORDER = "INV-7"
AMOUNT = 150000
FRESH_ID = re.compile(rf"^{ORDER}~[0-9a-f]{{6}}$")


def midtrans_status(order_id: str, status: str, *, amount: int = AMOUNT, **extra) -> dict:
    return status_answer(
        order_id, status, amount=amount, **{"transaction_id": f"tx-{order_id}-{status}", **extra}
    )


def charge(client, headers, *, amount: int = AMOUNT, **extra):
    """POST /charge of ORDER (Snap's answers are set up by each test); the answer."""
    return support.charge(client, headers, None, ORDER, amount, expect=None, **extra)


def snap_calls(midtrans) -> list[dict]:
    return [json.loads(c.request.body) for c in midtrans.calls if c.request.url == SNAP_URL]


def row(client) -> Transaction:
    with client.application.app_context():
        txn = db.session.query(Transaction).filter_by(order_id=ORDER).one()
        db.session.expunge(txn)
        return txn


def events(client) -> list[TransactionEvent]:
    with client.application.app_context():
        txn = db.session.query(Transaction).filter_by(order_id=ORDER).one()
        found = (
            db.session.query(TransactionEvent)
            .filter_by(transaction_id=txn.id)
            .order_by(TransactionEvent.id)
            .all()
        )
        db.session.expunge_all()
        return found


def change(client, **values) -> None:
    with client.application.app_context():
        txn = db.session.query(Transaction).filter_by(order_id=ORDER).one()
        for name, value in values.items():
            setattr(txn, name, value)
        db.session.commit()


def apply_status(client, headers, midtrans, answer: dict) -> dict:
    """Midtrans's status API says `answer` once; GET /status applies it."""
    midtrans.add(responses.GET, status_url(answer["order_id"]), json=answer, status=200)
    resp = client.get(f"/status/{ORDER}", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.json


def notify(client, answer: dict, midtrans) -> dict:
    """Midtrans posts a notification about `answer`, and its status API confirms it."""
    midtrans.add(responses.GET, status_url(answer["order_id"]), json=answer, status=200)
    body = signed(
        {k: v for k, v in answer.items() if k != "status_message"},
        status_code=NOTIFICATION_CODES[answer["transaction_status"]],
    )
    resp = client.post("/notification", json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.json


@pytest.mark.parametrize("status", ["expire", "cancel", "deny", "failure"])
def test_an_order_whose_payment_failed_is_renewed_with_a_fresh_midtrans_order_id(
    client, app_key, midtrans, status
):
    snap_ok(midtrans, token="tok-1")
    first = charge(client, app_key)
    assert first.status_code == 201
    view = apply_status(client, app_key, midtrans, midtrans_status(ORDER, status))
    # GET /status stops showing the dead link.
    assert view["transaction_status"] == status
    assert view["token"] is None and view["redirect_url"] is None

    snap_ok(midtrans, token="tok-2")
    renewed = charge(client, app_key, amount=175000)  # a renewal may change the details

    assert renewed.status_code == 201, renewed.get_data(as_text=True)
    assert "Idempotent-Replayed" not in renewed.headers
    assert renewed.json["token"] == "tok-2"
    assert renewed.json["order_id"] == ORDER
    expires = datetime.fromisoformat(renewed.json["expires_at"])
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)
    sent = snap_calls(midtrans)[-1]["transaction_details"]
    assert FRESH_ID.match(sent["order_id"]) and sent["gross_amount"] == 175000
    txn = row(client)
    assert txn.midtrans_order_id == sent["order_id"]
    assert txn.midtrans_order_ids == [ORDER, sent["order_id"]]
    assert (txn.status, txn.amount, txn.midtrans_transaction_id) == ("pending", 175000, None)
    assert (events(client)[-1].from_status, events(client)[-1].to_status) == (status, "pending")

    # The new link is served, and an identical repeat replays it.
    midtrans.add(responses.GET, status_url(sent["order_id"]), status=404, json={})
    status_now = client.get(f"/status/{ORDER}", headers=app_key).json
    assert status_now["token"] == "tok-2" and status_now["outcome"] == "pending"
    assert status_now["amount"] == 175000
    again = charge(client, app_key, amount=175000)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json == renewed.json
    assert len(snap_calls(midtrans)) == 2


def test_a_dead_link_with_no_payment_at_midtrans_is_renewed(client, app_key, midtrans):
    snap_ok(midtrans, token="tok-1")
    assert charge(client, app_key).status_code == 201
    change(client, expires_at=datetime.now(UTC) - timedelta(minutes=1))
    # The records stop showing the dead link at once.
    record = client.get(f"/transactions/{ORDER}", headers=app_key).json
    assert record["token"] is None and record["redirect_url"] is None
    midtrans.add(responses.GET, status_url(ORDER), status=404, json={"status_code": "404"})
    snap_ok(midtrans, token="tok-2")

    renewed = charge(client, app_key)

    assert renewed.status_code == 201 and renewed.json["token"] == "tok-2"
    # Midtrans holds nothing under the old id: it is used again, so Midtrans's new token
    # revokes the old page ("only the latest one is active") and nobody pays both.
    assert snap_calls(midtrans)[-1]["transaction_details"]["order_id"] == ORDER
    assert row(client).midtrans_order_ids == [ORDER]
    moves = [(e.from_status, e.to_status, e.source) for e in events(client)]
    assert moves == [
        (None, "pending", "charge"),
        ("pending", "expire", "charge"),
        ("expire", "pending", "charge"),
    ]


def test_a_pending_payment_behind_a_dead_link_is_cancelled_before_the_renewal(
    client, app_key, midtrans
):
    snap_ok(midtrans, token="tok-1")
    assert charge(client, app_key).status_code == 201
    change(client, expires_at=datetime.now(UTC) - timedelta(minutes=1))
    midtrans.add(responses.GET, status_url(ORDER), json=midtrans_status(ORDER, "pending"))
    cancel = midtrans.add(
        responses.POST,
        f"{API_BASE}/v2/{ORDER}/cancel",
        json=midtrans_status(ORDER, "cancel", status_message="Success, transaction is canceled"),
    )
    snap_ok(midtrans, token="tok-2")

    renewed = charge(client, app_key)

    assert renewed.status_code == 201 and renewed.json["token"] == "tok-2"
    assert cancel.call_count == 1
    calls = [c.request.url for c in midtrans.calls]
    assert calls.index(f"{API_BASE}/v2/{ORDER}/cancel") < calls.index(SNAP_URL, 1)
    assert [e.to_status for e in events(client)] == ["pending", "cancel", "pending"]


def test_a_dead_link_found_paid_at_midtrans_is_not_renewed(client, app_key, midtrans):
    snap_ok(midtrans, token="tok-1")
    assert charge(client, app_key).status_code == 201
    change(client, expires_at=datetime.now(UTC) - timedelta(minutes=1))
    midtrans.add(responses.GET, status_url(ORDER), json=midtrans_status(ORDER, "settlement"))

    other = charge(client, app_key, amount=99000)
    assert other.status_code == 409 and other.json["error"]["code"] == "order_conflict"
    assert "paid" in other.json["error"]["message"]
    same = charge(client, app_key)
    assert same.status_code == 201 and same.headers["Idempotent-Replayed"] == "true"
    assert len(snap_calls(midtrans)) == 1
    assert row(client).status == "settlement"


def test_no_renewal_while_midtrans_cannot_be_asked(client, app_key, midtrans):
    snap_ok(midtrans, token="tok-1")
    assert charge(client, app_key).status_code == 201
    change(client, expires_at=datetime.now(UTC) - timedelta(minutes=1))
    midtrans.add(responses.GET, status_url(ORDER), status=503, json={"status_code": "503"})

    resp = charge(client, app_key)

    assert resp.status_code == 502
    assert len(snap_calls(midtrans)) == 1
    assert (row(client).status, row(client).midtrans_order_id) == ("pending", ORDER)


@pytest.mark.parametrize("status", ["settlement", "refund", "partial_refund"])
def test_a_paid_order_is_never_charged_again(client, app_key, midtrans, status):
    snap_ok(midtrans, token="tok-1")
    first = charge(client, app_key)
    extra = {"refund_amount": "1000.00"} if status == "partial_refund" else {}
    apply_status(client, app_key, midtrans, midtrans_status(ORDER, status, **extra))
    change(client, expires_at=datetime.now(UTC) - timedelta(days=2))

    same = charge(client, app_key)
    other = charge(client, app_key, amount=1000)

    assert same.status_code == 201 and same.headers["Idempotent-Replayed"] == "true"
    assert same.json["token"] == first.json["token"]
    assert same.json["outcome"] == str(outcome_of(status, None))  # paid: not to be paid again
    assert other.status_code == 409
    assert len(snap_calls(midtrans)) == 1
    assert [
        c for c in midtrans.calls if c.request.method == "POST" and "/cancel" in c.request.url
    ] == []


def test_a_live_link_is_replayed_and_other_details_conflict(client, app_key, midtrans):
    snap_ok(midtrans, token="tok-1")
    first = charge(client, app_key)
    same = charge(client, app_key)
    other = charge(client, app_key, amount=1000)
    assert same.status_code == 201 and same.json == first.json
    assert other.status_code == 409
    assert len(snap_calls(midtrans)) == 1


def renewed_after_expiry(client, app_key, midtrans) -> str:
    """The order's first link expired at Midtrans and was renewed: the new Midtrans id."""
    snap_ok(midtrans, token="tok-1")
    assert charge(client, app_key).status_code == 201
    apply_status(client, app_key, midtrans, midtrans_status(ORDER, "expire"))
    snap_ok(midtrans, token="tok-2")
    assert charge(client, app_key).status_code == 201
    return row(client).midtrans_order_id


def test_the_old_link_paid_late_after_a_renewal_is_applied_and_flagged(client, app_key, midtrans):
    newer = renewed_after_expiry(client, app_key, midtrans)

    notify(client, midtrans_status(ORDER, "settlement"), midtrans)

    txn = row(client)
    assert (txn.status, txn.midtrans_order_id) == ("settlement", ORDER)
    assert txn.flag and "earlier attempt" in txn.flag and newer in txn.flag
    view = client.get(f"/transactions/{ORDER}", headers=app_key).json
    assert view["outcome"] == "paid" and view["paid"] is True
    assert view["token"] is None  # the newer link is not served any more
    assert view["events"][-1]["to_status"] == "settlement"

    # The newer link paid as well: a second payment, flagged for a refund, never dropped.
    notify(client, midtrans_status(newer, "settlement"), midtrans)
    txn = row(client)
    assert txn.status == "settlement" and txn.midtrans_order_id == ORDER
    assert txn.flag.startswith("second payment") and newer in txn.flag


def test_the_old_attempt_expiring_after_a_renewal_changes_nothing(client, app_key, midtrans):
    newer = renewed_after_expiry(client, app_key, midtrans)
    before = len(events(client))

    notify(client, midtrans_status(ORDER, "expire"), midtrans)

    txn = row(client)
    assert (txn.status, txn.midtrans_order_id, txn.flag) == ("pending", newer, None)
    assert len(events(client)) == before


def test_a_late_payment_of_another_amount_on_the_old_attempt_keeps_that_amount(
    client, app_key, midtrans
):
    snap_ok(midtrans, token="tok-1")
    assert charge(client, app_key).status_code == 201
    apply_status(client, app_key, midtrans, midtrans_status(ORDER, "cancel"))
    snap_ok(midtrans, token="tok-2")
    assert charge(client, app_key, amount=99000).status_code == 201

    notify(client, midtrans_status(ORDER, "settlement"), midtrans)

    txn = row(client)
    assert (txn.status, txn.amount, txn.midtrans_order_id) == ("settlement", AMOUNT, ORDER)
    assert txn.flag and "earlier attempt" in txn.flag


def test_every_attempt_id_is_kept(client, app_key, midtrans):
    newer = renewed_after_expiry(client, app_key, midtrans)
    with client.application.app_context():
        kept = {a.midtrans_order_id: a.amount for a in db.session.query(PaymentAttempt)}
    assert kept == {ORDER: AMOUNT, newer: AMOUNT}


def test_an_order_without_attempt_rows_keeps_its_old_id_when_renewed(client, app_key, midtrans):
    """An order rebuilt after a restore has no attempt rows: renewing it keeps its old id."""
    snap_ok(midtrans, token="tok-1")
    assert charge(client, app_key).status_code == 201
    with client.application.app_context():
        db.session.query(PaymentAttempt).delete()
        db.session.commit()
    apply_status(client, app_key, midtrans, midtrans_status(ORDER, "expire"))
    snap_ok(midtrans, token="tok-2")
    assert charge(client, app_key).status_code == 201

    notify(client, midtrans_status(ORDER, "settlement"), midtrans)

    txn = row(client)
    assert (txn.status, txn.midtrans_order_id) == ("settlement", ORDER)
    assert "earlier attempt" in txn.flag


NO_TRANSACTION = {"status_code": "404", "status_message": "Transaction doesn't exist."}


def cancel_unopened_link(client, app_key, midtrans) -> None:
    """The client cancels its link before the payer chose a method: Midtrans has nothing."""
    midtrans.add(responses.POST, f"{API_BASE}/v2/{ORDER}/cancel", json=NO_TRANSACTION, status=404)
    cancelled = client.post(f"/transactions/{ORDER}/cancel", headers=app_key)
    assert cancelled.status_code == 200 and cancelled.json["outcome"] == "cancelled"


def test_a_link_cancelled_before_anyone_opened_it_is_renewed_under_the_same_id(
    client, app_key, midtrans
):
    snap_ok(midtrans, token="tok-1")
    assert charge(client, app_key).status_code == 201
    cancel_unopened_link(client, app_key, midtrans)
    snap_ok(midtrans, token="tok-2")

    renewed = charge(client, app_key, amount=175000)

    assert renewed.status_code == 201 and renewed.json["token"] == "tok-2"
    sent = snap_calls(midtrans)[-1]["transaction_details"]
    assert (sent["order_id"], sent["gross_amount"]) == (ORDER, 175000)
    # The old page is revoked by the new token; the payment of the new one is simply paid.
    notify(client, midtrans_status(ORDER, "settlement", amount=175000), midtrans)
    txn = row(client)
    assert (txn.status, txn.amount, txn.flag) == ("settlement", 175000, None)
    assert txn.midtrans_order_ids == [ORDER]


def test_a_payment_chosen_on_the_old_page_meanwhile_is_adopted_not_charged_again(
    client, app_key, midtrans
):
    """Between the cancel and the renewal the payer chose a method on the old page: Midtrans
    says the id is taken, and that payment becomes the order's (flagged), no second link."""
    snap_ok(midtrans, token="tok-1")
    assert charge(client, app_key).status_code == 201
    cancel_unopened_link(client, app_key, midtrans)
    support.snap_rejects(midtrans, 400, "transaction_details.order_id has already been taken")
    midtrans.add(responses.GET, status_url(ORDER), json=midtrans_status(ORDER, "pending"))

    answer = charge(client, app_key)

    assert answer.status_code == 200 and answer.json["transaction_status"] == "pending"
    assert len(snap_calls(midtrans)) == 2
    txn = row(client)
    assert txn.midtrans_order_id == ORDER and txn.midtrans_transaction_id == "tx-INV-7-pending"
    assert txn.flag  # a person looks at it: paid on a page the client had cancelled
    assert any("adopted" in (e.detail or "") for e in events(client))


def test_an_id_used_again_keeps_the_amount_its_last_attempt_charged(client, app_key, midtrans):
    snap_ok(midtrans, token="tok-1")
    assert charge(client, app_key).status_code == 201
    cancel_unopened_link(client, app_key, midtrans)
    snap_ok(midtrans, token="tok-2")
    assert charge(client, app_key, amount=175000).status_code == 201  # the same id again
    # Midtrans itself expires that payment: it may hold it, so the next renewal is fresh.
    apply_status(client, app_key, midtrans, midtrans_status(ORDER, "expire", amount=175000))
    snap_ok(midtrans, token="tok-3")
    assert charge(client, app_key, amount=99000).status_code == 201
    newer = row(client).midtrans_order_id
    assert FRESH_ID.match(newer)
    with client.application.app_context():
        kept = {a.midtrans_order_id: a.amount for a in db.session.query(PaymentAttempt)}
    assert kept == {ORDER: 175000, newer: 99000}

    # A late payment under the old id is judged by what that id charged last: no mismatch.
    notify(client, midtrans_status(ORDER, "settlement", amount=175000), midtrans)

    txn = row(client)
    assert (txn.status, txn.amount, txn.midtrans_order_id) == ("settlement", 175000, ORDER)
    assert "earlier attempt" in txn.flag and "amount" not in txn.flag
