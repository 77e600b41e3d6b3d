"""GET /status/<order_id>: live from Midtrans, applied to the row, forward only."""

from __future__ import annotations

from functools import partial

import requests
import responses
import support
from support import status_url

from app.extensions import db
from app.models import Transaction, TransactionEvent

SETTLED = {
    "status_code": "200",
    "status_message": "Success, transaction is found",
    "transaction_id": "e67a2012-3208-4b3e-a3c1-111111111111",
    "order_id": "INV-2025-001",
    "merchant_id": "G000000000",
    "gross_amount": "150000.00",
    "currency": "IDR",
    "payment_type": "bank_transfer",
    "transaction_time": "2026-11-21 10:00:00",
    "transaction_status": "settlement",
    "settlement_time": "2026-11-21 10:05:00",
    "fraud_status": "accept",
    "va_numbers": [{"bank": "bca", "va_number": "12345678901"}],
    "signature_key": "deadbeef" * 16,
}
NOT_FOUND = {"status_code": "404", "status_message": "Transaction doesn't exist.", "id": "x"}


charge = partial(support.charge, order_id="INV-2025-001", amount=150000)


def stored(client, order_id="INV-2025-001") -> Transaction:
    with client.application.app_context():
        txn = db.session.query(Transaction).filter_by(order_id=order_id).one()
        db.session.expunge(txn)
        return txn


def test_before_the_customer_picks_a_method_the_order_is_pending(client, app_key, midtrans):
    charge(client, app_key, midtrans)
    midtrans.add(responses.GET, status_url("INV-2025-001"), json=NOT_FOUND, status=200)

    resp = client.get("/status/INV-2025-001", headers=app_key)

    assert resp.status_code == 200
    body = resp.json
    assert body["transaction_status"] == "pending"
    assert body["order_id"] == "INV-2025-001"
    assert body["live"] is True
    assert body["gross_amount"] == "150000.00"
    assert body["redirect_url"].endswith("tok-INV-2025-001")


def test_midtrans_404_as_http_status_also_means_pending(client, app_key, midtrans):
    charge(client, app_key, midtrans)
    midtrans.add(responses.GET, status_url("INV-2025-001"), json=NOT_FOUND, status=404)
    assert client.get("/status/INV-2025-001", headers=app_key).json["transaction_status"] == (
        "pending"
    )


def test_after_payment_the_answer_is_midtrans_live_status_without_secrets(
    client, app_key, midtrans
):
    charge(client, app_key, midtrans)
    midtrans.add(responses.GET, status_url("INV-2025-001"), json=SETTLED)

    resp = client.get("/status/INV-2025-001", headers=app_key)

    body = resp.json
    assert resp.status_code == 200
    assert body["transaction_status"] == "settlement"
    assert body["fraud_status"] == "accept"
    assert body["id"] == SETTLED["transaction_id"]
    assert body["status_code"] == "200"
    assert body["status_message"] == "Success, transaction is found"
    assert body["va_numbers"] == SETTLED["va_numbers"]
    assert body["live"] is True
    assert "signature_key" not in body and "merchant_id" not in body
    txn = stored(client)
    assert (txn.status, txn.payment_type) == ("settlement", "bank_transfer")
    with client.application.app_context():
        moves = [
            (e.from_status, e.to_status, e.source)
            for e in db.session.query(TransactionEvent).order_by(TransactionEvent.id)
        ]
    assert moves == [(None, "pending", "charge"), ("pending", "settlement", "status")]


def test_the_status_call_uses_the_midtrans_order_id_with_prefix(client, shop_key, midtrans):
    charge(client, shop_key, midtrans, order_id="O-1", amount=10)
    midtrans.add(responses.GET, status_url("shop-O-1"), json=NOT_FOUND)
    assert client.get("/status/O-1", headers=shop_key).status_code == 200
    assert midtrans.calls[-1].request.url == status_url("shop-O-1")


def test_midtrans_down_answers_from_records_with_live_false(client, app_key, midtrans):
    charge(client, app_key, midtrans)
    midtrans.add(responses.GET, status_url("INV-2025-001"), json=SETTLED)
    client.get("/status/INV-2025-001", headers=app_key)

    midtrans.replace(
        responses.GET, status_url("INV-2025-001"), body=requests.ConnectionError("down")
    )
    resp = client.get("/status/INV-2025-001", headers=app_key)

    assert resp.status_code == 200
    assert resp.json["live"] is False
    assert resp.json["transaction_status"] == "settlement"
    assert resp.json["id"] == SETTLED["transaction_id"]
    assert "signature_key" not in resp.json


def test_midtrans_errors_and_timeouts_also_fall_back_to_records(client, app_key, midtrans):
    charge(client, app_key, midtrans)
    for failure in (
        {"status": 500, "json": {"status_code": "500"}},
        {"status": 200, "body": "<html>"},
        {"body": requests.ReadTimeout()},
    ):
        midtrans.upsert(responses.GET, status_url("INV-2025-001"), **failure)
        resp = client.get("/status/INV-2025-001", headers=app_key)
        assert resp.status_code == 200
        assert (resp.json["live"], resp.json["transaction_status"]) == (False, "pending")


def test_a_stale_pending_answer_never_moves_a_settled_order_back(client, app_key, midtrans):
    charge(client, app_key, midtrans)
    midtrans.add(responses.GET, status_url("INV-2025-001"), json=SETTLED)
    client.get("/status/INV-2025-001", headers=app_key)
    pending = {**SETTLED, "transaction_status": "pending", "status_code": "201"}
    midtrans.replace(responses.GET, status_url("INV-2025-001"), json=pending)

    resp = client.get("/status/INV-2025-001", headers=app_key)

    assert resp.json["transaction_status"] == "settlement"
    assert stored(client).status == "settlement"


def test_settlement_may_still_become_refund(client, app_key, midtrans):
    charge(client, app_key, midtrans)
    midtrans.add(responses.GET, status_url("INV-2025-001"), json=SETTLED)
    client.get("/status/INV-2025-001", headers=app_key)
    midtrans.replace(
        responses.GET, status_url("INV-2025-001"), json={**SETTLED, "transaction_status": "refund"}
    )
    assert client.get("/status/INV-2025-001", headers=app_key).json["transaction_status"] == (
        "refund"
    )


def test_an_amount_mismatch_is_not_applied(client, app_key, midtrans):
    charge(client, app_key, midtrans)
    midtrans.add(
        responses.GET, status_url("INV-2025-001"), json={**SETTLED, "gross_amount": "1000.00"}
    )
    resp = client.get("/status/INV-2025-001", headers=app_key)
    assert resp.json["transaction_status"] == "pending"
    assert stored(client).status == "pending"


def test_another_apps_order_is_404(client, app_key, shop_key, midtrans):
    charge(client, app_key, midtrans)
    resp = client.get("/status/INV-2025-001", headers=shop_key)
    assert resp.status_code == 404
    assert resp.json["error"]["code"] == "not_found"
    assert not [c for c in midtrans.calls if c.request.method == "GET"]


def test_unknown_order_is_404(client, app_key, midtrans):
    resp = client.get("/status/NOPE", headers=app_key)
    assert resp.status_code == 404
    assert len(midtrans.calls) == 0


def test_an_order_whose_link_was_never_created_is_404(client, app_key, midtrans):
    midtrans.add(responses.POST, "https://app.midtrans.test/snap/v1/transactions", status=500)
    client.post("/charge", json={"order_id": "NEVER", "amount": 5}, headers=app_key)
    assert client.get("/status/NEVER", headers=app_key).status_code == 404
