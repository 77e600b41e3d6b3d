"""What a payment means is never wrong: the `outcome`/`paid` signal, fee imposition, exact
refunds, Midtrans's word over a status the gateway set itself, the link's real lifetime, and
confirmation by the signed order id. Midtrans is mocked at the HTTP layer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from midtrans_samples import (
    FIXTURE_SERVER_KEY,
    SNAP_NOTIFICATION_PARTIAL_REFUND,
    SNAP_NOTIFICATION_SETTLEMENT,
)
from support import API_BASE, charge, make_app, signed, snap_ok, status_answer_for

from app.extensions import db
from app.models import App, CallbackEvent, EventSource, LinkState, Transaction, TransactionEvent
from app.payments import apply_midtrans_status
from app.payments.charges import link_deadline
from app.payments.outcomes import check_amount, is_paid, outcome_of
from app.schemas import ChargeRequest
from app.services import gateway

SETTLEMENT = SNAP_NOTIFICATION_SETTLEMENT  # ORDER-sandbox-0001, 150000.00, gopay
ORDER = SETTLEMENT["order_id"]
STATUS_URL = f"{API_BASE}/v2/{ORDER}/status"


@pytest.fixture
def env(env, loopback_callbacks):
    env["MIDTRANS_SERVER_KEY"] = FIXTURE_SERVER_KEY
    return env


@pytest.fixture
def shop(cli) -> dict[str, str]:
    """A client app with no order prefix and a callback URL, so every change queues an event."""
    return make_app(cli, "toko", "--order-prefix", "", "--callback-url", "http://127.0.0.1:9/hook")


@pytest.fixture
def order(client, shop, midtrans):
    charge(client, shop, midtrans, ORDER, 150000)


def notify(client, body: dict):
    return client.post("/notification", data=json.dumps(body), content_type="application/json")


def row(client) -> Transaction:
    with client.application.app_context():
        return db.session.query(Transaction).filter_by(order_id=ORDER).one()


def callbacks(client) -> list[dict]:
    """The `data` of every callback queued for the app, oldest first."""
    with client.application.app_context():
        events = db.session.query(CallbackEvent).order_by(CallbackEvent.id).all()
        return [json.loads(e.payload)["data"] for e in events]


# -- outcome -------------------------------------------------------------------------------

OUTCOME_TABLE = [
    ("settlement", "accept", "paid", True),
    ("settlement", None, "paid", True),
    ("capture", "accept", "paid", True),
    ("capture", "challenge", "challenge", False),
    ("capture", "deny", "failed", False),
    ("authorize", "accept", "authorized", False),
    ("pending", None, "pending", False),
    (None, None, "pending", False),
    ("deny", "deny", "failed", False),
    ("failure", None, "failed", False),
    ("expire", None, "expired", False),
    ("cancel", None, "cancelled", False),
    ("refund", "accept", "refunded", False),
    ("partial_refund", "accept", "partially_refunded", True),
    ("chargeback", "accept", "chargeback", False),
    ("partial_chargeback", "accept", "chargeback", True),
]


@pytest.mark.parametrize(("status", "fraud", "outcome", "paid"), OUTCOME_TABLE)
def test_outcome_follows_the_contract(status, fraud, outcome, paid):
    assert outcome_of(status, fraud) == outcome
    assert is_paid(status, fraud) is paid


def test_status_answers_outcome_paid_and_amounts(client, shop, order, midtrans):
    midtrans.add(responses.GET, STATUS_URL, json=status_answer_for(SETTLEMENT))
    view = client.get(f"/status/{ORDER}", headers=shop).json
    assert view["transaction_status"] == "settlement"
    assert (view["outcome"], view["paid"]) == ("paid", True)
    assert (view["amount"], view["refunded_amount"]) == (150000, 0)
    assert "customer_imposed_fee" not in view and "original_amount" not in view


def test_a_challenged_capture_is_never_paid(client, shop, order, midtrans):
    challenged = status_answer_for(
        SETTLEMENT, transaction_status="capture", fraud_status="challenge", status_code="201"
    )
    midtrans.add(responses.GET, STATUS_URL, json=challenged)
    view = client.get(f"/status/{ORDER}", headers=shop).json
    assert (view["transaction_status"], view["fraud_status"]) == ("capture", "challenge")
    assert (view["outcome"], view["paid"]) == ("challenge", False)
    assert callbacks(client)[-1]["outcome"] == "challenge"
    assert callbacks(client)[-1]["paid"] is False

    midtrans.replace(responses.GET, STATUS_URL, json={**challenged, "fraud_status": "accept"})
    view = client.get(f"/status/{ORDER}", headers=shop).json
    assert (view["outcome"], view["paid"]) == ("paid", True)
    assert callbacks(client)[-1]["outcome"] == "paid"


# -- fee imposition ------------------------------------------------------------------------

FEE_IN_METADATA = {
    "gross_amount": "154440.00",
    "metadata": {
        "extra_info": {
            "gross_amount_info": {
                "original_amount": "150000.00",
                "customer_imposed_payment_fee": "4440.00",
                "gross_amount": "154440.00",
            }
        }
    },
}
FEE_AT_TOP = {
    "gross_amount": "154440.00",
    "original_amount": "150000.00",
    "customer_imposed_payment_fee": "4440.00",
}


@pytest.mark.parametrize("fee_fields", [FEE_IN_METADATA, FEE_AT_TOP], ids=["metadata", "top"])
def test_a_fee_imposed_payment_is_paid(client, shop, order, midtrans, fee_fields):
    note = signed(**fee_fields)
    midtrans.add(responses.GET, STATUS_URL, json=status_answer_for(note))

    resp = notify(client, note)

    assert resp.json == {"status": "ok", "outcome": "applied"}
    txn = row(client)
    assert (txn.status, txn.flag, txn.customer_imposed_fee) == ("settlement", None, 4440)
    sent = callbacks(client)[-1]
    assert (sent["outcome"], sent["paid"], sent["amount"]) == ("paid", True, 150000)
    assert (sent["original_amount"], sent["customer_imposed_fee"]) == (150000, 4440)
    assert sent["gross_amount"] == "154440.00"  # Midtrans's figure stays as it is


@pytest.mark.parametrize(
    "fee_fields",
    [
        {"gross_amount": "154440.00"},  # no breakdown: a plain mismatch
        {**FEE_AT_TOP, "original_amount": "140000.00"},  # the order's part is not the order
        {**FEE_AT_TOP, "customer_imposed_payment_fee": "1000.00"},  # parts do not add up
    ],
    ids=["no breakdown", "other original", "fee does not add up"],
)
def test_an_amount_the_fee_does_not_explain_is_flagged(client, order, midtrans, fee_fields):
    note = signed(**fee_fields)
    midtrans.add(responses.GET, STATUS_URL, json=status_answer_for(note))

    resp = notify(client, note)

    assert resp.status_code == 200 and resp.json["outcome"] == "flagged"
    txn = row(client)
    assert txn.status == "pending" and "amount mismatch" in txn.flag


def test_check_amount_ignores_garbage_in_the_breakdown():
    body = {"gross_amount": "154440.00", "original_amount": "NaN", "metadata": "x"}
    assert not check_amount(body, 150000).fits
    assert check_amount({"gross_amount": "150000.00"}, 150000).fits
    assert check_amount({"gross_amount": "1e400"}, 150000).fits is False
    assert check_amount({"gross_amount": "abc"}, 150000).fits is False
    assert check_amount({"status_code": "200"}, 150000).fits


# -- refunds -------------------------------------------------------------------------------


def _refunded(answer: dict, *amounts: int) -> dict:
    total = sum(amounts)
    return {
        **answer,
        "transaction_status": "partial_refund" if total < 150000 else "refund",
        "refund_amount": f"{total}.00",
        "refunds": [
            {"refund_chargeback_id": i + 1, "refund_amount": f"{a}.00", "reason": "r"}
            for i, a in enumerate(amounts)
        ],
    }


def test_one_partial_refund_gives_one_callback(client, shop, order, midtrans):
    settled = status_answer_for(SETTLEMENT)
    midtrans.add(responses.GET, STATUS_URL, json=settled)
    client.get(f"/status/{ORDER}", headers=shop)
    before = len(callbacks(client))

    # The refund is seen once through a status read, then again through its notification.
    midtrans.replace(responses.GET, STATUS_URL, json=_refunded(settled, 50000))
    client.get(f"/status/{ORDER}", headers=shop)
    note = signed(
        SNAP_NOTIFICATION_PARTIAL_REFUND,
        order_id=ORDER,
        transaction_id=SETTLEMENT["transaction_id"],
    )
    assert notify(client, note).json["outcome"] == "unchanged"
    midtrans.replace(
        responses.GET, STATUS_URL, json={**_refunded(settled, 50000), "status_message": "again"}
    )
    client.get(f"/status/{ORDER}", headers=shop)

    sent = callbacks(client)[before:]
    assert len(sent) == 1
    assert (sent[0]["outcome"], sent[0]["paid"], sent[0]["refunded_amount"]) == (
        "partially_refunded",
        True,
        50000,
    )

    # A second partial refund is a real change: one more callback, with the total.
    midtrans.replace(responses.GET, STATUS_URL, json=_refunded(settled, 50000, 30000))
    client.get(f"/status/{ORDER}", headers=shop)
    # ...and the rest refunded: refunded, no longer paid.
    midtrans.replace(responses.GET, STATUS_URL, json=_refunded(settled, 50000, 30000, 70000))
    view = client.get(f"/status/{ORDER}", headers=shop).json
    sent = callbacks(client)[before:]
    assert [(s["outcome"], s["refunded_amount"]) for s in sent] == [
        ("partially_refunded", 50000),
        ("partially_refunded", 80000),
        ("refunded", 150000),
    ]
    assert (view["outcome"], view["paid"], view["refunded_amount"]) == ("refunded", False, 150000)


# -- Midtrans's word over the gateway's own expiry -----------------------------------------


def _expire_by_gateway(client):
    with client.application.app_context():
        txn = db.session.query(Transaction).filter_by(order_id=ORDER).one()
        txn.status, txn.status_by_gateway, txn.next_check_at = "expire", True, None
        db.session.commit()


def test_a_payment_after_the_gateway_expired_the_link_is_applied_and_flagged(
    client, shop, order, midtrans
):
    _expire_by_gateway(client)
    midtrans.add(responses.GET, STATUS_URL, json=status_answer_for(SETTLEMENT))

    resp = notify(client, SETTLEMENT)

    assert resp.json["outcome"] == "applied"
    txn = row(client)
    assert (txn.status, txn.status_by_gateway) == ("settlement", False)
    assert txn.flag.startswith("paid after the gateway expired it")
    sent = callbacks(client)[-1]
    assert (sent["transaction_status"], sent["outcome"], sent["paid"]) == (
        "settlement",
        "paid",
        True,
    )
    with client.application.app_context():
        last = db.session.query(TransactionEvent).order_by(TransactionEvent.id.desc()).first()
        assert (last.from_status, last.to_status) == ("expire", "settlement")
        assert "paid after the gateway expired it" in last.detail


def test_a_method_chosen_after_the_gateway_expired_the_link_reopens_the_order(
    client, shop, order, midtrans
):
    _expire_by_gateway(client)
    pending = status_answer_for(SETTLEMENT, transaction_status="pending", status_code="201")
    midtrans.add(responses.GET, STATUS_URL, json=pending)

    view = client.get(f"/status/{ORDER}", headers=shop).json

    assert (view["transaction_status"], view["outcome"]) == ("pending", "pending")
    txn = row(client)
    assert txn.flag and txn.next_check_at is not None  # the worker watches it again

    # ...and when it is paid, the flag says so.
    midtrans.replace(responses.GET, STATUS_URL, json=status_answer_for(SETTLEMENT))
    assert client.get(f"/status/{ORDER}", headers=shop).json["outcome"] == "paid"
    assert row(client).flag.startswith("paid after the gateway expired it")


def test_an_expiry_midtrans_itself_reported_stays_final(client, shop, order, midtrans):
    expired = status_answer_for(SETTLEMENT, transaction_status="expire", status_code="407")
    midtrans.add(responses.GET, STATUS_URL, json=expired)
    client.get(f"/status/{ORDER}", headers=shop)
    assert row(client).status_by_gateway is False

    midtrans.replace(responses.GET, STATUS_URL, json=status_answer_for(SETTLEMENT))
    client.get(f"/status/{ORDER}", headers=shop)
    assert row(client).status == "expire"  # Midtrans's own expire is final


def test_midtrans_agreeing_with_the_gateways_expiry_clears_the_mark(client, shop, order, midtrans):
    _expire_by_gateway(client)
    expired = status_answer_for(SETTLEMENT, transaction_status="expire", status_code="407")
    midtrans.add(responses.GET, STATUS_URL, json=expired)
    client.get(f"/status/{ORDER}", headers=shop)
    txn = row(client)
    assert (txn.status, txn.status_by_gateway, txn.flag) == ("expire", False, None)


# -- confirmation by the signed order id ---------------------------------------------------


def test_an_unsigned_transaction_id_cannot_pick_another_order(client, shop, order, midtrans):
    snap_ok(midtrans, token="tok-other")
    client.post("/charge", json={"order_id": "OTHER-1", "amount": 150000}, headers=shop)
    other_url = f"{API_BASE}/v2/OTHER-1/status"
    midtrans.add(
        responses.GET, STATUS_URL, json=status_answer_for(SETTLEMENT, transaction_status="pending")
    )
    midtrans.add(responses.GET, other_url, json=status_answer_for(SETTLEMENT, order_id="OTHER-1"))
    by_txn_id = f"{API_BASE}/v2/other-txn-id/status"
    midtrans.add(responses.GET, by_txn_id, json=status_answer_for(SETTLEMENT, order_id="OTHER-1"))

    # A genuine notification of ORDER, replayed with OTHER-1's transaction id (not signed).
    notify(client, {**SETTLEMENT, "transaction_id": "other-txn-id"})

    asked = [c.request.url for c in midtrans.calls if c.request.method == "GET"]
    assert asked == [STATUS_URL]
    with client.application.app_context():
        other = db.session.query(Transaction).filter_by(order_id="OTHER-1").one()
        assert (other.status, other.flag) == ("pending", None)


# -- the link's lifetime -------------------------------------------------------------------

MADE = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "deadline"),
    [
        ({}, MADE + timedelta(hours=24)),
        ({"expiry": {"unit": "minutes", "duration": 30}}, MADE + timedelta(minutes=30)),
        ({"expiry": {"unit": "day", "duration": 3}}, MADE + timedelta(days=3)),
        (
            {"expiry": {"start_time": "2026-11-26 12:00:00 +0700", "unit": "hour", "duration": 2}},
            datetime(2026, 11, 26, 7, 0, tzinfo=UTC),
        ),
        ({"page_expiry": {"duration": 2, "unit": "days"}}, MADE + timedelta(days=2)),
        (
            {
                "page_expiry": {"duration": 2, "unit": "days"},
                "expiry": {"unit": "hour", "duration": 1},
            },
            MADE + timedelta(days=2),  # the page outlives a payment counted from the choice
        ),
        (
            {
                "page_expiry": {"duration": 2, "unit": "days"},
                "expiry": {
                    "start_time": "2026-11-26 11:00:00 +0700",
                    "unit": "hour",
                    "duration": 3,
                },
            },
            datetime(2026, 11, 26, 7, 0, tzinfo=UTC),  # nothing can be paid after start + 3 h
        ),
        (
            {"expiry": {"start_time": "not a time", "unit": "hour", "duration": 2}},
            MADE + timedelta(hours=2),
        ),
    ],
    ids=[
        "default",
        "expiry",
        "days",
        "start_time",
        "page_expiry",
        "page outlives expiry",
        "start_time ends first",
        "unreadable start",
    ],
)
def test_link_deadline_follows_snaps_rules(body, deadline):
    charge = ChargeRequest.parse({"order_id": "D-1", "amount": 5000, **body}, prefix="")
    assert link_deadline(charge, MADE) == deadline


def test_the_charge_keeps_the_links_real_deadline(client, shop, midtrans):
    snap_ok(midtrans)
    body = {"order_id": "PAGE-1", "amount": 5000, "page_expiry": {"duration": 3, "unit": "days"}}
    assert client.post("/charge", json=body, headers=shop).status_code == 201
    with client.application.app_context():
        txn = db.session.query(Transaction).filter_by(order_id="PAGE-1").one()
        life = txn.expires_at - txn.attempt_started_at
    assert timedelta(days=3) <= life < timedelta(days=3, minutes=1)


# -- property: the final outcome is Midtrans's last word -----------------------------------

PAYMENT_PATHS = [
    [("pending", None), ("settlement", "accept")],
    [("pending", None), ("expire", None)],
    [("pending", None), ("cancel", None)],
    [("pending", None), ("deny", None)],
    [("capture", "challenge"), ("capture", "accept"), ("settlement", "accept")],
    [("capture", "challenge"), ("deny", "deny")],
    [("authorize", "accept"), ("capture", "accept"), ("settlement", "accept")],
    [("pending", None), ("settlement", "accept"), ("chargeback", "accept")],
    [("capture", "accept"), ("cancel", "accept")],
]


@st.composite
def midtrans_histories(draw):
    """A real history at Midtrans (with refunds after a settlement, a fee or none) and the
    answers the gateway sees of it: in time order, some repeated, some missed, the last one
    always seen; maybe the gateway expired the link before the first."""
    path = list(draw(st.sampled_from(PAYMENT_PATHS)))
    if path[-1][0] == "settlement":
        refunds = draw(st.lists(st.integers(1, 40_000), max_size=3))
        if draw(st.booleans()):
            refunds.append(150_000 - sum(refunds))  # refund the rest
        total = 0
        for amount in refunds:
            total += amount
            path.append(("refund" if total == 150_000 else "partial_refund", total))
    fee = draw(st.sampled_from([None, 0, 4440]))
    seen = sorted(draw(st.lists(st.integers(0, len(path) - 1), max_size=8)))
    seen.append(len(path) - 1)
    repeats = draw(st.lists(st.integers(0, len(seen) - 1), max_size=3))
    for index in sorted(repeats, reverse=True):
        seen.insert(index, seen[index])
    return path, fee, seen, draw(st.booleans())


def _answer(order_id: str, step, fee: int | None) -> dict:
    status, extra = step
    answer = {
        "order_id": order_id,
        "transaction_id": "t-" + order_id,
        "transaction_status": status,
        "gross_amount": f"{150_000 + (fee or 0)}.00",
        "status_code": "200",
    }
    if fee is not None:
        answer["original_amount"] = "150000.00"
        answer["customer_imposed_payment_fee"] = f"{fee}.00"
    if status in ("partial_refund", "refund"):
        answer["fraud_status"] = "accept"
        answer["refund_amount"] = f"{extra}.00"
    else:
        answer["fraud_status"] = extra
    return answer


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=midtrans_histories())
def test_the_final_outcome_is_midtrans_last_word(app, history):
    path, fee, seen, expired_first = history
    with app.app_context():
        client_app = db.session.query(App).filter_by(code="prop").one_or_none()
        if client_app is None:
            client_app = App(code="prop", name="p", key_hash="0" * 64, order_prefix="")
            db.session.add(client_app)
            db.session.commit()
        order_id = f"P-{db.session.query(Transaction).count() + 1}"
        txn = Transaction(
            app_id=client_app.id,
            order_id=order_id,
            midtrans_order_id=order_id,
            amount=150_000,
            request_fingerprint="f",
            request_body={},
            link_state=LinkState.CREATED,
            snap_token="tok",
            status="expire" if expired_first else "pending",
            status_by_gateway=expired_first,
        )
        db.session.add(txn)
        db.session.commit()
        for index in seen:
            apply_midtrans_status(
                txn.id, _answer(order_id, path[index], fee), source=EventSource.STATUS
            )
        final = db.session.get(Transaction, txn.id, populate_existing=True)
        last_status, last_extra = path[seen[-1]]
        last_fraud = "accept" if last_status in ("partial_refund", "refund") else last_extra
        assert outcome_of(final.status, final.fraud_status) == outcome_of(last_status, last_fraud)
        assert final.flag is None or expired_first
        if last_status in ("partial_refund", "refund"):
            assert final.refunded_amount == last_extra
        assert final.customer_imposed_fee == (fee or None)
        db.session.commit()


def test_a_refund_never_exceeds_what_is_left(client, shop, order, midtrans):
    from app.errors import InvalidRequestError
    from app.payments import refund_transaction

    midtrans.add(responses.GET, STATUS_URL, json=_refunded(status_answer_for(SETTLEMENT), 50000))
    client.get(f"/status/{ORDER}", headers=shop)
    refunds = midtrans.add(responses.POST, f"{API_BASE}/v2/{ORDER}/refund", json={})
    with client.application.app_context():
        txn_id = db.session.query(Transaction).filter_by(order_id=ORDER).one().id
        upstream = gateway(client.application).midtrans
        with pytest.raises(InvalidRequestError, match=r"left to refund \(100000\)"):
            refund_transaction(
                txn_id, amount=100001, reason="r", refund_key="k-1", midtrans=upstream
            )
    assert refunds.call_count == 0


def test_a_challenged_capture_cannot_be_refunded(client, shop, order, midtrans):
    from app.errors import InvalidStateError
    from app.payments import refund_transaction

    challenged = status_answer_for(
        SETTLEMENT, transaction_status="capture", fraud_status="challenge", status_code="201"
    )
    midtrans.add(responses.GET, STATUS_URL, json=challenged)
    client.get(f"/status/{ORDER}", headers=shop)
    with client.application.app_context():
        txn_id = db.session.query(Transaction).filter_by(order_id=ORDER).one().id
        upstream = gateway(client.application).midtrans
        with pytest.raises(InvalidStateError, match="challenge"):
            refund_transaction(txn_id, amount=1000, reason="r", refund_key="k", midtrans=upstream)


@pytest.mark.parametrize(
    ("status", "fraud", "charged_again"),
    [
        ("settlement", "accept", False),
        ("pending", None, False),
        ("capture", "challenge", False),
        ("expire", None, True),
        ("deny", None, True),
    ],
)
def test_an_order_with_a_payment_at_midtrans_is_never_charged_again(
    client, shop, order, midtrans, status, fraud, charged_again
):
    """An attempt nobody saw (abandoned mid-call) may still have a payment at Midtrans."""
    with client.application.app_context():
        txn = db.session.query(Transaction).filter_by(order_id=ORDER).one()
        txn.link_state, txn.status, txn.fraud_status = LinkState.UNKNOWN, status, fraud
        txn.midtrans_transaction_id = SETTLEMENT["transaction_id"]
        db.session.commit()
    snap_ok(midtrans, token="tok-again")

    resp = client.post("/charge", json={"order_id": ORDER, "amount": 150000}, headers=shop)

    if charged_again:
        assert resp.status_code == 201 and resp.json["token"] == "tok-again"
    else:
        assert resp.status_code == 409
        assert "already has a payment at Midtrans" in resp.json["error"]["message"]
