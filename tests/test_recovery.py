"""Payments the database lost (a restore from an older backup) are recovered from Midtrans's
word, and a /charge retry never dead-ends on Midtrans's "order_id has already been taken"."""

from __future__ import annotations

import json

import pytest
import requests
import responses
from support import API_BASE, SNAP_URL, make_app, signed, snap_ok, snap_rejects, status_answer

from app.extensions import db
from app.models import CallbackEvent, Notification, Transaction, TransactionEvent
from app.payments import confirm_due_notifications
from app.services import gateway

pytestmark = pytest.mark.usefixtures("loopback_callbacks")


@pytest.fixture
def shop(cli) -> dict[str, str]:
    """An app with the default prefix `shop-` and a callback URL."""
    return make_app(cli, "shop", "--callback-url", "http://127.0.0.1:9/hook")


def settled(midtrans_order_id: str, amount: int = 150000, **changes) -> dict:
    """Midtrans's status answer (and, signed, its notification) for a paid order."""
    return status_answer(midtrans_order_id, amount=amount, **changes)


def notify(client, body: dict):
    raw = json.dumps(signed(body))
    return client.post("/notification", data=raw, content_type="application/json")


def orders(client) -> list[Transaction]:
    with client.application.app_context():
        return db.session.query(Transaction).order_by(Transaction.id).all()


def test_a_paid_order_the_database_lost_is_recovered_for_its_app(client, shop, midtrans):
    midtrans.add(responses.GET, f"{API_BASE}/v2/shop-INV-9/status", json=settled("shop-INV-9"))

    resp = notify(client, settled("shop-INV-9"))

    assert resp.status_code == 200 and resp.json["outcome"] == "applied"
    [txn] = orders(client)
    assert (txn.order_id, txn.midtrans_order_id, txn.amount) == ("INV-9", "shop-INV-9", 150000)
    assert (txn.status, txn.flag.startswith("recovered")) == ("settlement", True)
    with client.application.app_context():
        sent = [json.loads(e.payload)["data"] for e in db.session.query(CallbackEvent)]
        sources = [e.source for e in db.session.query(TransactionEvent)]
        note = db.session.query(Notification).one()
    assert [(s["order_id"], s["outcome"]) for s in sent] == [("INV-9", "paid")]
    assert sources == ["recovery", "recovery"]
    assert note.transaction_id == txn.id

    # The client reads it, and its retry of /charge answers the status, never a 400.
    view = client.get("/status/INV-9", headers=shop).json
    assert (view["outcome"], view["amount"]) == ("paid", 150000)
    retry = client.post("/charge", json={"order_id": "INV-9", "amount": 150000}, headers=shop)
    assert retry.status_code == 200 and retry.json["outcome"] == "paid"
    assert not [c for c in midtrans.calls if c.request.url == SNAP_URL]


def test_a_later_attempts_suffix_is_not_part_of_the_order_id(client, shop, midtrans):
    mid = "shop-INV-10~0a1b2c"
    midtrans.add(responses.GET, f"{API_BASE}/v2/{mid}/status", json=settled(mid))
    notify(client, settled(mid))
    [txn] = orders(client)
    assert (txn.order_id, txn.midtrans_order_id) == ("INV-10", mid)


def test_an_order_with_a_fee_is_recovered_for_the_order_amount(client, shop, midtrans):
    answer = settled(
        "shop-INV-11", 154440, original_amount="150000.00", customer_imposed_payment_fee="4440.00"
    )
    midtrans.add(responses.GET, f"{API_BASE}/v2/shop-INV-11/status", json=answer)
    notify(client, answer)
    [txn] = orders(client)
    assert (txn.amount, txn.customer_imposed_fee, txn.status) == (150000, 4440, "settlement")


@pytest.mark.parametrize("order_id", ["other-INV-1", "INV-1"], ids=["other prefix", "no prefix"])
def test_an_order_no_app_claims_is_unmatched_without_asking_midtrans(
    client, shop, cli, midtrans, order_id
):
    make_app(cli, "legacy", "--order-prefix", "")  # an app without a prefix claims nothing
    resp = notify(client, settled(order_id))
    assert resp.status_code == 200 and resp.json["outcome"] == "unmatched"
    assert orders(client) == []
    assert not [c for c in midtrans.calls if c.request.method == "GET"]


def test_an_order_midtrans_does_not_know_is_not_invented(client, shop, midtrans):
    midtrans.add(
        responses.GET,
        f"{API_BASE}/v2/shop-INV-12/status",
        json={"status_code": "404", "status_message": "Transaction doesn't exist."},
        status=404,
    )
    resp = notify(client, settled("shop-INV-12"))
    assert resp.json["outcome"] == "unmatched"
    assert orders(client) == []


def test_recovery_waits_for_midtrans_and_the_worker_finishes_it(client, shop, midtrans):
    url = f"{API_BASE}/v2/shop-INV-13/status"
    midtrans.add(responses.GET, url, body=requests.ConnectionError("down"))

    resp = notify(client, settled("shop-INV-13"))

    assert resp.status_code == 200 and resp.json["outcome"] == "unconfirmed"
    assert orders(client) == []
    midtrans.replace(responses.GET, url, json=settled("shop-INV-13"))
    with client.application.app_context():
        note = db.session.query(Notification).one()
        confirm_due_notifications(
            midtrans=gateway(client.application).midtrans, now=note.next_attempt_at
        )
    [txn] = orders(client)
    assert (txn.order_id, txn.status) == ("INV-13", "settlement")


def test_a_repeated_notification_recovers_one_order(client, shop, midtrans):
    midtrans.add(responses.GET, f"{API_BASE}/v2/shop-INV-14/status", json=settled("shop-INV-14"))
    for _ in range(3):
        assert notify(client, settled("shop-INV-14")).status_code == 200
    assert len(orders(client)) == 1


# -- /charge meets "order_id has already been taken" ----------------------------------------

TAKEN = {"error_messages": ["transaction_details.order_id has already been taken"]}


def test_a_taken_order_id_with_a_payment_is_adopted(client, shop, midtrans):
    midtrans.add(responses.POST, SNAP_URL, json=TAKEN, status=400)
    midtrans.add(responses.GET, f"{API_BASE}/v2/shop-INV-20/status", json=settled("shop-INV-20"))

    resp = client.post("/charge", json={"order_id": "INV-20", "amount": 150000}, headers=shop)

    assert resp.status_code == 200
    assert (resp.json["order_id"], resp.json["outcome"], resp.json["paid"]) == (
        "INV-20",
        "paid",
        True,
    )
    [txn] = orders(client)
    assert txn.flag.startswith("adopted")
    again = client.post("/charge", json={"order_id": "INV-20", "amount": 150000}, headers=shop)
    assert again.status_code == 200 and again.json["outcome"] == "paid"


def test_a_taken_order_id_without_a_payment_is_retried_with_a_fresh_id(client, shop, midtrans):
    snap_calls = []

    def snap(request):
        body = json.loads(request.body)
        snap_calls.append(body["transaction_details"]["order_id"])
        if len(snap_calls) == 1:
            return 400, {}, json.dumps(TAKEN)
        return 201, {}, json.dumps({"token": "tok-2", "redirect_url": "https://x/tok-2"})

    midtrans.add_callback(responses.POST, SNAP_URL, callback=snap)
    midtrans.add(
        responses.GET,
        f"{API_BASE}/v2/shop-INV-21/status",
        json={"status_code": "404", "status_message": "Transaction doesn't exist."},
        status=404,
    )

    resp = client.post("/charge", json={"order_id": "INV-21", "amount": 5000}, headers=shop)

    assert resp.status_code == 201 and resp.json["token"] == "tok-2"
    assert snap_calls[0] == "shop-INV-21"
    assert snap_calls[1].startswith("shop-INV-21~") and len(snap_calls) == 2


def test_other_rejections_still_fail_with_the_same_id_kept(client, shop, midtrans):
    snap_rejects(midtrans, 400, "transaction_details.gross_amount is not equal")
    resp = client.post("/charge", json={"order_id": "INV-22", "amount": 5000}, headers=shop)
    assert resp.status_code == 400
    snap_ok(midtrans)
    midtrans.replace(
        responses.POST, SNAP_URL, json={"token": "t", "redirect_url": "https://x/t"}, status=201
    )
    resp = client.post("/charge", json={"order_id": "INV-22", "amount": 5000}, headers=shop)
    assert resp.status_code == 201
    assert orders(client)[0].midtrans_order_id == "shop-INV-22"
