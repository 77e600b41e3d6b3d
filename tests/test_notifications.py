"""POST /notification: known answers from Midtrans's own samples, forgeries, confirmation
through the status API, duplicates, unknown orders, amount mismatches, database failure."""

from __future__ import annotations

import json

import pytest
import requests
import responses
from midtrans_samples import (
    FIXTURE_SERVER_KEY,
    PAYMENT_LINK_NOTIFICATION,
    RECURRING_NOTIFICATION_CARD,
    SNAP_NOTIFICATION_EXPIRE,
    SNAP_NOTIFICATION_PARTIAL_REFUND,
    SNAP_NOTIFICATION_PENDING,
    SNAP_NOTIFICATION_REFUND,
    SNAP_NOTIFICATION_SETTLEMENT,
)
from sqlalchemy import text
from support import API_BASE, charge, signed, snap_ok, status_answer_for

from app.extensions import db
from app.midtrans import signature_for
from app.models import Notification, Transaction, TransactionEvent
from app.services import gateway

ALL_SAMPLES = [
    PAYMENT_LINK_NOTIFICATION,
    RECURRING_NOTIFICATION_CARD,
    SNAP_NOTIFICATION_EXPIRE,
    SNAP_NOTIFICATION_PARTIAL_REFUND,
    SNAP_NOTIFICATION_PENDING,
    SNAP_NOTIFICATION_REFUND,
    SNAP_NOTIFICATION_SETTLEMENT,
]
SETTLEMENT = SNAP_NOTIFICATION_SETTLEMENT
STATUS_URL = f"{API_BASE}/v2/{SETTLEMENT['order_id']}/status"  # by the signed order_id


@pytest.fixture
def order(client, app_key, midtrans):
    """The user's app holds order ORDER-sandbox-0001 for 150,000 (no prefix), still pending."""
    charge(client, app_key, midtrans, SETTLEMENT["order_id"], 150000)


def post(client, body) -> object:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/notification", data=data, content_type="application/json")


def txn_status(client) -> str:
    with client.application.app_context():
        return db.session.query(Transaction).one().status


def notifications(client) -> list[tuple]:
    with client.application.app_context():
        return [
            (n.outcome, n.signature_valid)
            for n in db.session.query(Notification).order_by(Notification.id)
        ]


@pytest.mark.parametrize("sample", ALL_SAMPLES, ids=lambda s: s["transaction_status"])
def test_midtrans_samples_verify_with_the_sandbox_key(sample):
    expected = signature_for(
        sample["order_id"], sample["status_code"], sample["gross_amount"], FIXTURE_SERVER_KEY
    )
    assert expected == sample["signature_key"]


@pytest.fixture
def env(env):
    env["MIDTRANS_SERVER_KEY"] = FIXTURE_SERVER_KEY
    return env


def test_settlement_is_confirmed_by_the_status_api_then_applied(client, order, midtrans):
    midtrans.add(responses.GET, STATUS_URL, json=status_answer_for(SETTLEMENT))

    resp = post(client, SETTLEMENT)

    assert resp.status_code == 200
    assert resp.json == {"status": "ok", "outcome": "applied"}
    assert txn_status(client) == "settlement"
    assert notifications(client) == [("applied", True)]
    with client.application.app_context():
        event = db.session.query(TransactionEvent).order_by(TransactionEvent.id.desc()).first()
        note = db.session.query(Notification).one()
        assert (event.from_status, event.to_status, event.source) == (
            "pending",
            "settlement",
            "notification",
        )
        assert event.notification_id == note.id
        assert json.loads(note.body) == SETTLEMENT


FORGERIES = {
    "other signature": {**SETTLEMENT, "signature_key": "0" * 128},
    "other server key": signed(server_key="SB-Mid-server-attacker"),
    "amount without decimals": {**SETTLEMENT, "gross_amount": "150000"},
    "edited status_code": {**SETTLEMENT, "status_code": "201"},
    "edited order_id": {**SETTLEMENT, "order_id": "ORDER-sandbox-0002"},
    "upper-case signature of other data": {
        **SETTLEMENT,
        "gross_amount": "1.00",
        "signature_key": SETTLEMENT["signature_key"].upper(),
    },
}


@pytest.mark.parametrize("forged", FORGERIES.values(), ids=FORGERIES.keys())
def test_forged_or_tampered_notifications_change_nothing(client, order, midtrans, forged):
    midtrans.add(responses.GET, STATUS_URL, json=status_answer_for(SETTLEMENT))

    resp = post(client, forged)

    assert resp.status_code == 403
    assert resp.json["error"]["code"] == "invalid_signature"
    assert txn_status(client) == "pending"
    assert notifications(client) == [("rejected", False)]
    assert not [c for c in midtrans.calls if c.request.method == "GET"]


def test_an_edited_transaction_status_is_not_trusted(client, order, midtrans):
    """The signature does not cover transaction_status: only the status API is believed."""
    midtrans.add(
        responses.GET,
        STATUS_URL,
        json=status_answer_for(SETTLEMENT, transaction_status="pending", status_code="201"),
    )
    forged = {**SETTLEMENT, "transaction_status": "refund"}  # status_code 200 still fits
    resp = post(client, forged)
    assert resp.status_code == 200
    assert txn_status(client) == "pending"
    assert notifications(client) == [("unchanged", True)]


def test_a_status_code_that_does_not_fit_the_status_is_rejected(client, order, midtrans):
    resp = post(client, signed(transaction_status="expire", status_code="200"))
    assert resp.status_code == 400
    assert "does not fit" in resp.json["error"]["message"]
    assert notifications(client) == [("rejected", False)]


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[]", json.dumps({**SETTLEMENT, "gross_amount": 150000}).encode()],
    ids=["empty", "not json", "array", "number amount"],
)
def test_malformed_notifications_are_stored_as_rejected(client, order, raw):
    resp = post(client, raw)
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "invalid_notification"
    assert notifications(client) == [("rejected", False)]
    assert txn_status(client) == "pending"


def test_duplicates_are_answered_200_and_applied_once(client, order, midtrans):
    midtrans.add(responses.GET, STATUS_URL, json=status_answer_for(SETTLEMENT))
    answers = [post(client, SETTLEMENT) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert notifications(client) == [("applied", True), ("unchanged", True), ("unchanged", True)]
    with client.application.app_context():
        moves = db.session.query(TransactionEvent).filter_by(to_status="settlement").count()
    assert moves == 1


def test_a_late_pending_notification_never_moves_settlement_back(client, order, midtrans):
    midtrans.add(responses.GET, STATUS_URL, json=status_answer_for(SETTLEMENT))
    post(client, SETTLEMENT)
    pending = signed(
        SNAP_NOTIFICATION_PENDING,
        order_id=SETTLEMENT["order_id"],
        gross_amount="150000.00",
        transaction_id=SETTLEMENT["transaction_id"],
    )
    midtrans.replace(
        responses.GET,
        STATUS_URL,
        json=status_answer_for(SETTLEMENT, transaction_status="pending", status_code="201"),
    )
    assert post(client, pending).status_code == 200
    assert txn_status(client) == "settlement"


def test_new_unknown_fields_never_break_parsing(client, order, midtrans):
    body = signed(new_field={"nested": [1, 2]}, issuer="gopay", metadata={"x": 1}, acquirer="gopay")
    midtrans.add(responses.GET, STATUS_URL, json=status_answer_for(SETTLEMENT))
    assert post(client, body).json["outcome"] == "applied"


def test_unknown_orders_are_stored_as_unmatched_and_answered_200(client, order, midtrans):
    resp = post(client, PAYMENT_LINK_NOTIFICATION)
    assert resp.status_code == 200
    assert resp.json["outcome"] == "unmatched"
    assert notifications(client) == [("unmatched", True)]
    assert len([c for c in midtrans.calls if c.request.method == "GET"]) == 0


def test_an_amount_mismatch_is_flagged_and_not_paid(client, app_key, midtrans):
    snap_ok(midtrans)
    client.post(
        "/charge", json={"order_id": SETTLEMENT["order_id"], "amount": 1000}, headers=app_key
    )
    midtrans.add(responses.GET, STATUS_URL, json=status_answer_for(SETTLEMENT))
    resp = post(client, SETTLEMENT)
    assert resp.status_code == 200
    assert resp.json["outcome"] == "flagged"
    with client.application.app_context():
        txn = db.session.query(Transaction).one()
        assert txn.status == "pending"
        assert "150000.00" in txn.flag


def test_status_api_down_keeps_it_unconfirmed_for_the_worker(client, order, midtrans):
    from app.payments import confirm_notification

    midtrans.add(responses.GET, STATUS_URL, body=requests.ConnectionError("down"))
    resp = post(client, SETTLEMENT)
    assert resp.status_code == 200
    assert resp.json["outcome"] == "unconfirmed"
    assert txn_status(client) == "pending"

    midtrans.replace(responses.GET, STATUS_URL, json=status_answer_for(SETTLEMENT))
    app = client.application
    with app.app_context():
        note = db.session.query(Notification).one()
        assert note.next_attempt_at is not None and note.attempts == 1
        receipt = confirm_notification(note.id, midtrans=gateway(app).midtrans)
    assert receipt.outcome == "applied"
    assert txn_status(client) == "settlement"


def test_expire_sample_with_status_code_202_is_accepted(client, app_key, midtrans):
    snap_ok(midtrans)
    client.post(
        "/charge",
        json={"order_id": SNAP_NOTIFICATION_EXPIRE["order_id"], "amount": 50000},
        headers=app_key,
    )
    url = f"{API_BASE}/v2/{SNAP_NOTIFICATION_EXPIRE['order_id']}/status"
    midtrans.add(
        responses.GET, url, json=status_answer_for(SNAP_NOTIFICATION_EXPIRE, status_code="407")
    )
    assert post(client, SNAP_NOTIFICATION_EXPIRE).json["outcome"] == "applied"
    assert txn_status(client) == "expire"


def test_database_failure_is_503_so_midtrans_retries(client, order, midtrans):
    with client.application.app_context():
        with db.engine.begin() as conn:
            conn.execute(
                text("DROP TABLE notifications CASCADE")
                if db.engine.dialect.name == "postgresql"
                else text("DROP TABLE notifications")
            )
    resp = post(client, SETTLEMENT)
    assert resp.status_code == 503
    assert resp.json["error"]["code"] == "service_unavailable"


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps({**SETTLEMENT, "order_id": "ORDER\u0000-1"}).encode(),
        b'{"order_id": "A\x00"}',
        b"[" * 30_000 + b"]" * 30_000,
    ],
    ids=["escaped NUL", "raw NUL", "deep nesting"],
)
def test_hostile_bodies_are_stored_and_refused_never_a_5xx(client, order, raw):
    resp = post(client, raw)
    assert resp.status_code in {400, 403}
    assert notifications(client) == [("rejected", False)]
