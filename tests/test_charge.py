"""POST /charge: validation, what reaches Midtrans, replay, conflict, retries, failures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses
from support import SNAP_URL, basic_auth, cli_for, make_app, snap_ok, snap_rejects

from app.extensions import db
from app.models import Transaction, TransactionEvent

USER_DOC_BODY = {
    "order_id": "INV-2025-001",
    "amount": 150000,
    "customer_details": {
        "first_name": "Budi",
        "last_name": "Santoso",
        "email": "budi@example.com",
        "phone": "08123456789",
    },
    "item_details": [{"id": "VPS-01", "price": 150000, "quantity": 1, "name": "Cloud VPS Basic"}],
}


def sent_body(call) -> dict:
    return json.loads(call.request.body)


def snap_calls(rsps) -> list:
    return [c for c in rsps.calls if c.request.url == SNAP_URL]


def test_user_document_example_creates_a_snap_link(client, app_key, midtrans):
    snap_ok(midtrans, token="0f8736b5-2f1f-40bd-b3ad-0ef0a06d3443")

    resp = client.post("/charge", json=USER_DOC_BODY, headers=app_key)

    assert resp.status_code == 201
    body = resp.json
    expires_at = datetime.fromisoformat(body.pop("expires_at"))  # Snap's 24 hours
    assert timedelta(hours=23, minutes=59) < expires_at - datetime.now(UTC) <= timedelta(hours=24)
    assert body == {
        "token": "0f8736b5-2f1f-40bd-b3ad-0ef0a06d3443",
        "redirect_url": "https://app.sandbox.midtrans.com/snap/v4/redirection/"
        "0f8736b5-2f1f-40bd-b3ad-0ef0a06d3443",
        "order_id": "INV-2025-001",
        "outcome": "pending",
    }
    (call,) = snap_calls(midtrans)
    assert call.request.headers["Authorization"] == basic_auth()
    assert call.request.headers["Content-Type"] == "application/json"
    assert "X-Override-Notification" not in call.request.headers
    assert sent_body(call) == {
        "transaction_details": {"order_id": "INV-2025-001", "gross_amount": 150000},
        "item_details": USER_DOC_BODY["item_details"],
        "customer_details": USER_DOC_BODY["customer_details"],
    }


def test_app_order_prefix_is_what_midtrans_sees(client, shop_key, midtrans):
    snap_ok(midtrans)
    resp = client.post("/charge", json={"order_id": "A-1", "amount": 1000}, headers=shop_key)
    assert resp.status_code == 201
    assert resp.json["order_id"] == "A-1"
    assert sent_body(snap_calls(midtrans)[0])["transaction_details"]["order_id"] == "shop-A-1"


def test_notification_url_is_sent_as_override_header(env, build_app, midtrans):
    env["MIDTRANS_NOTIFICATION_URL"] = "https://pay.example.com/notification"
    flask_app = build_app(env)
    headers = make_app(cli_for(flask_app), "shop")
    snap_ok(midtrans)
    resp = flask_app.test_client().post(
        "/charge", json={"order_id": "N-1", "amount": 5000}, headers=headers
    )
    assert resp.status_code == 201
    call = snap_calls(midtrans)[0]
    assert call.request.headers["X-Override-Notification"] == "https://pay.example.com/notification"


def test_snap_options_are_passed_through(client, app_key, midtrans):
    snap_ok(midtrans)
    body = {
        "order_id": "OPT-1",
        "amount": 20000,
        "enabled_payments": ["bca_va", "gopay"],
        "credit_card": {"secure": True, "type": "authorize"},
        "expiry": {"unit": "minutes", "duration": 60},
        "callbacks": {"finish": "https://shop.example.com/done"},
        "custom_field1": "note",
        "unknown_field": "ignored",
    }
    assert client.post("/charge", json=body, headers=app_key).status_code == 201
    sent = sent_body(snap_calls(midtrans)[0])
    assert sent["enabled_payments"] == ["bca_va", "gopay"]
    assert sent["credit_card"] == {"secure": True, "type": "authorize"}
    assert sent["expiry"] == {"unit": "minutes", "duration": 60}
    assert sent["callbacks"] == {"finish": "https://shop.example.com/done"}
    assert sent["custom_field1"] == "note"
    assert "unknown_field" not in sent


INVALID = [
    ({"amount": 1000}, "order_id"),
    ({"order_id": "", "amount": 1000}, "order_id"),
    ({"order_id": 123, "amount": 1000}, "order_id"),
    ({"order_id": "A" * 51, "amount": 1000}, "order_id"),
    ({"order_id": "INV/1", "amount": 1000}, "order_id"),
    ({"order_id": "INV 1", "amount": 1000}, "order_id"),
    ({"order_id": "..", "amount": 1000}, "order_id"),
    ({"order_id": "INV-1"}, "amount"),
    ({"order_id": "INV-1", "amount": 0}, "amount"),
    ({"order_id": "INV-1", "amount": -1}, "amount"),
    ({"order_id": "INV-1", "amount": 1.5}, "amount"),
    ({"order_id": "INV-1", "amount": 100.0}, "amount"),
    ({"order_id": "INV-1", "amount": "100"}, "amount"),
    ({"order_id": "INV-1", "amount": True}, "amount"),
    ({"order_id": "INV-1", "amount": 10**16}, "amount"),
    (
        {"order_id": "INV-1", "amount": 1000, "item_details": [{"price": 500, "quantity": 1}]},
        "item_details[0].name",
    ),
    (
        {
            "order_id": "INV-1",
            "amount": 1000,
            "item_details": [{"price": 500, "quantity": 1, "name": "half"}],
        },
        "item_details",
    ),
    (
        {
            "order_id": "INV-1",
            "amount": 1000,
            "item_details": [{"price": "1000", "quantity": 1, "name": "x"}],
        },
        "item_details[0].price",
    ),
    (
        {
            "order_id": "INV-1",
            "amount": 1000,
            "item_details": [{"price": 1000, "quantity": 0, "name": "x"}],
        },
        "item_details[0].quantity",
    ),
    ({"order_id": "INV-1", "amount": 1000, "item_details": {}}, "item_details"),
    ({"order_id": "INV-1", "amount": 1000, "customer_details": "Budi"}, "customer_details"),
    (
        {"order_id": "INV-1", "amount": 1000, "customer_details": {"email": "not-an-email"}},
        "customer_details.email",
    ),
    (
        {"order_id": "INV-1", "amount": 1000, "customer_details": {"phone": "call me"}},
        "customer_details.phone",
    ),
    ({"order_id": "INV-1", "amount": 1000, "enabled_payments": "gopay"}, "enabled_payments"),
    ({"order_id": "INV-1", "amount": 1000, "credit_card": {"secure": "yes"}}, "credit_card.secure"),
    ({"order_id": "INV-1", "amount": 1000, "expiry": {"duration": 0}}, "expiry.duration"),
    ({"order_id": "INV-1", "amount": 1000, "custom_field1": 5}, "custom_field1"),
]


@pytest.mark.parametrize(("body", "field"), INVALID)
def test_invalid_input_is_refused_naming_the_field_and_never_reaches_midtrans(
    client, app_key, midtrans, body, field
):
    resp = client.post("/charge", json=body, headers=app_key)
    assert resp.status_code == 400, resp.json
    assert resp.json["error"]["code"] == "invalid_request"
    assert resp.json["error"]["details"]["field"] == field
    assert field.split("[")[0].split(".")[0] in resp.json["error"]["message"]
    assert len(midtrans.calls) == 0
    with client.application.app_context():
        assert db.session.query(Transaction).count() == 0


@pytest.mark.parametrize(
    "data", [b"", b"not json", b"[1, 2]", b'"text"', b'{"order_id": "A", "amount": 1']
)
def test_body_that_is_not_a_json_object_is_400(client, app_key, midtrans, data):
    resp = client.post(
        "/charge", data=data, headers={**app_key, "Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "invalid_request"
    assert len(midtrans.calls) == 0


def test_order_id_limit_counts_the_prefix(client, shop_key, midtrans):
    snap_ok(midtrans)
    ok = client.post("/charge", json={"order_id": "A" * 45, "amount": 1}, headers=shop_key)
    assert ok.status_code == 201
    too_long = client.post("/charge", json={"order_id": "B" * 46, "amount": 1}, headers=shop_key)
    assert too_long.status_code == 400
    assert "45" in too_long.json["error"]["message"]
    assert "shop-" in too_long.json["error"]["message"]


def test_fifty_characters_without_prefix_and_negative_discount_items_are_fine(
    client, app_key, midtrans
):
    snap_ok(midtrans)
    body = {
        "order_id": "A" * 50,
        "amount": 9000,
        "item_details": [
            {"price": 10000, "quantity": 1, "name": "Hosting"},
            {"price": -1000, "quantity": 1, "name": "Discount"},
        ],
    }
    assert client.post("/charge", json=body, headers=app_key).status_code == 201


def test_identical_request_is_replayed_without_a_second_midtrans_call(client, app_key, midtrans):
    snap_ok(midtrans, token="first")
    first = client.post("/charge", json=USER_DOC_BODY, headers=app_key)
    again = client.post("/charge", json=USER_DOC_BODY, headers=app_key)
    assert first.status_code == again.status_code == 201
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(snap_calls(midtrans)) == 1


def test_key_order_and_unknown_fields_do_not_break_replay(client, app_key, midtrans):
    snap_ok(midtrans)
    client.post("/charge", json={"order_id": "R-1", "amount": 500}, headers=app_key)
    replay = client.post(
        "/charge", json={"amount": 500, "order_id": "R-1", "note": "x"}, headers=app_key
    )
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_same_order_with_other_details_is_409_and_changes_nothing(client, app_key, midtrans):
    snap_ok(midtrans)
    client.post("/charge", json=USER_DOC_BODY, headers=app_key)
    other = {**USER_DOC_BODY, "amount": 99000, "item_details": None}
    resp = client.post("/charge", json=other, headers=app_key)
    assert resp.status_code == 409
    assert resp.json["error"]["code"] == "order_conflict"
    assert len(snap_calls(midtrans)) == 1
    with client.application.app_context():
        assert db.session.query(Transaction).one().amount == 150000


def test_two_apps_may_use_the_same_order_id(client, app_key, shop_key, midtrans):
    snap_ok(midtrans, token="a")
    assert (
        client.post("/charge", json={"order_id": "X-1", "amount": 10}, headers=app_key).status_code
        == 201
    )
    snap_ok(midtrans, token="b")
    resp = client.post("/charge", json={"order_id": "X-1", "amount": 20}, headers=shop_key)
    assert resp.status_code == 201
    sent = [sent_body(c)["transaction_details"]["order_id"] for c in snap_calls(midtrans)]
    assert sent == ["X-1", "shop-X-1"]


def test_apps_whose_midtrans_ids_would_collide_do_not_block_each_other(
    client, app_key, shop_key, midtrans
):
    """`biling` has no prefix: its order "shop-7" would be shop's "7" at Midtrans."""
    snap_ok(midtrans)
    assert (
        client.post("/charge", json={"order_id": "7", "amount": 10}, headers=shop_key).status_code
        == 201
    )
    resp = client.post("/charge", json={"order_id": "shop-7", "amount": 10}, headers=app_key)
    assert resp.status_code == 201
    first, second = (sent_body(c)["transaction_details"]["order_id"] for c in snap_calls(midtrans))
    assert first == "shop-7"
    assert second != first and second.startswith("shop-7~")


def test_midtrans_validation_error_is_400_with_its_messages(client, app_key, midtrans):
    messages = ["transaction_details.gross_amount is not equal to the sum of item_details"]
    snap_rejects(midtrans, 400, *messages)
    resp = client.post("/charge", json={"order_id": "M-1", "amount": 10}, headers=app_key)
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "midtrans_rejected"
    assert resp.json["error"]["details"]["midtrans_messages"] == messages


def test_midtrans_rejecting_the_server_key_is_502_without_the_key(client, app_key, midtrans):
    snap_rejects(midtrans, 401, "Access denied due to unauthorized transaction")
    resp = client.post("/charge", json={"order_id": "K-1", "amount": 10}, headers=app_key)
    assert resp.status_code == 502
    assert resp.json["error"]["code"] == "midtrans_auth_failed"
    assert "server key" in resp.json["error"]["message"]
    assert "SB-Mid-server" not in resp.get_data(as_text=True)


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        (
            {"status": 500, "json": {"status_code": "500", "status_message": "oops"}},
            502,
            "midtrans_unavailable",
        ),
        ({"status": 503, "body": "<html>Service Unavailable</html>"}, 502, "midtrans_unavailable"),
        ({"status": 200, "body": "not json at all"}, 502, "midtrans_unavailable"),
        ({"status": 201, "json": {"token": "only"}}, 502, "midtrans_unavailable"),
        ({"body": requests.ConnectionError("refused")}, 502, "midtrans_unavailable"),
        ({"body": requests.ReadTimeout("slow")}, 504, "midtrans_timeout"),
        (
            {"status": 200, "json": {"status_code": "400", "error_messages": ["bad email"]}},
            400,
            "midtrans_rejected",
        ),
        (
            {"status": 200, "json": {"status_code": "401", "status_message": "no"}},
            502,
            "midtrans_auth_failed",
        ),
    ],
)
def test_midtrans_failures_are_mapped(client, app_key, midtrans, answer, status, code):
    midtrans.add(responses.POST, SNAP_URL, **answer)
    resp = client.post("/charge", json={"order_id": "F-1", "amount": 10}, headers=app_key)
    assert resp.status_code == status
    assert resp.json["error"]["code"] == code
    assert "not json at all" not in resp.get_data(as_text=True)


def test_retry_after_timeout_gets_a_usable_link_under_a_fresh_midtrans_id(
    client, app_key, midtrans
):
    midtrans.add(responses.POST, SNAP_URL, body=requests.ReadTimeout("slow"))
    first = client.post("/charge", json=USER_DOC_BODY, headers=app_key)
    assert first.status_code == 504

    midtrans.replace(
        responses.POST,
        SNAP_URL,
        json={"token": "t2", "redirect_url": "https://app.sandbox.midtrans.com/snap/v4/x/t2"},
        status=201,
    )
    retry = client.post("/charge", json=USER_DOC_BODY, headers=app_key)
    assert retry.status_code == 201
    assert retry.json["token"] == "t2"
    assert "Idempotent-Replayed" not in retry.headers
    ids = [sent_body(c)["transaction_details"]["order_id"] for c in snap_calls(midtrans)]
    assert ids[0] == "INV-2025-001"
    assert ids[1].startswith("INV-2025-001~") and len(ids[1]) <= 50

    replay = client.post("/charge", json=USER_DOC_BODY, headers=app_key)
    assert replay.json["token"] == "t2"
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert len(snap_calls(midtrans)) == 2


def test_retry_after_rejection_may_fix_the_details_and_reuses_the_id(client, app_key, midtrans):
    snap_rejects(midtrans, 400, "bad phone")
    body = {"order_id": "FIX-1", "amount": 10, "customer_details": {"phone": "0812345678"}}
    assert client.post("/charge", json=body, headers=app_key).status_code == 400
    midtrans.replace(
        responses.POST, SNAP_URL, json={"token": "ok", "redirect_url": "https://x/ok"}, status=201
    )
    fixed = {"order_id": "FIX-1", "amount": 10}
    resp = client.post("/charge", json=fixed, headers=app_key)
    assert resp.status_code == 201
    ids = [sent_body(c)["transaction_details"]["order_id"] for c in snap_calls(midtrans)]
    assert ids == ["FIX-1", "FIX-1"]


def test_retry_after_a_midtrans_server_error_uses_a_fresh_id(client, app_key, midtrans):
    midtrans.add(responses.POST, SNAP_URL, json={"status_code": "500"}, status=500)
    assert (
        client.post("/charge", json={"order_id": "S-1", "amount": 5}, headers=app_key).status_code
        == 502
    )
    midtrans.replace(
        responses.POST, SNAP_URL, json={"token": "ok", "redirect_url": "https://x/ok"}, status=201
    )
    assert (
        client.post("/charge", json={"order_id": "S-1", "amount": 5}, headers=app_key).status_code
        == 201
    )
    ids = [sent_body(c)["transaction_details"]["order_id"] for c in snap_calls(midtrans)]
    assert ids[0] == "S-1" and ids[1].startswith("S-1~")


def test_a_created_link_is_recorded_with_a_charge_event(client, app_key, midtrans):
    snap_ok(midtrans, token="tok-9")
    client.post("/charge", json=USER_DOC_BODY, headers=app_key)
    with client.application.app_context():
        txn = db.session.query(Transaction).one()
        assert (txn.status, txn.link_state, txn.snap_token) == ("pending", "created", "tok-9")
        assert txn.amount == 150000
        event = db.session.query(TransactionEvent).one()
        assert (event.from_status, event.to_status, event.source) == (None, "pending", "charge")
