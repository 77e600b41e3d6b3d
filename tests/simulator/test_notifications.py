"""Notifications: Midtrans's field shapes, signatures, status codes and where they are sent.

The app runs in-process; its delivery threads post over real HTTP to a local receiver.
"""

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from simulator import create_app

# The fields of Midtrans's own signed notification fixtures, per status and payment type.
FIXTURE_FIELDS = {
    "pending": {
        "transaction_time",
        "transaction_status",
        "transaction_id",
        "status_message",
        "status_code",
        "signature_key",
        "payment_type",
        "order_id",
        "merchant_id",
        "gross_amount",
        "currency",
    },
}
FIXTURE_FIELDS["expire"] = FIXTURE_FIELDS["pending"]
FIXTURE_FIELDS["settlement"] = FIXTURE_FIELDS["pending"] | {"fraud_status"}
FIXTURE_FIELDS["refund"] = FIXTURE_FIELDS["settlement"] | {
    "settlement_time",
    "refund_amount",
    "refund_key",
}
FIXTURE_FIELDS["partial_refund"] = FIXTURE_FIELDS["refund"]
WIB = timezone(timedelta(hours=7))


def is_signed(body: dict, server_key: str) -> bool:
    text = body["order_id"] + body["status_code"] + body["gross_amount"] + server_key
    return body["signature_key"] == hashlib.sha512(text.encode()).hexdigest()


@pytest.fixture
def notify_here(receiver):
    """Headers that send an order's notifications to the receiver."""
    return {"X-Override-Notification": receiver.url}


@pytest.mark.parametrize(
    ("payment_type", "steps", "status"),
    [
        ("bank_transfer", ["choose"], "pending"),
        ("qris", ["expire"], "expire"),
        ("credit_card", ["pay", "pay"], "settlement"),
        ("gopay", ["pay", "refund 50000"], "partial_refund"),
        ("credit_card", ["pay", "pay", "refund"], "refund"),
    ],
)
def test_notifications_have_midtrans_fixture_fields_and_signature(
    client,
    auth,
    server_key,
    snap_order,
    receiver,
    notify_here,
    wait_until,
    payment_type,
    steps,
    status,
):
    snap_order("ORDER-1", 150000, headers=notify_here)
    for step in steps:
        if step.startswith("refund"):
            amount = {"amount": int(step.split()[1])} if " " in step else {}
            client.post("/v2/ORDER-1/refund", json={"refund_key": "k", **amount}, headers=auth)
        else:
            client.post(f"/_sim/transactions/ORDER-1/{step}", json={"payment_type": payment_type})

    received = wait_until(
        lambda: [r for r in receiver.received if r.json()["transaction_status"] == status]
    )

    body = received[-1].json()
    assert FIXTURE_FIELDS[status] <= set(body)
    assert all(isinstance(body[field], str) for field in FIXTURE_FIELDS[status])
    assert body["status_message"] == "midtrans payment notification"
    assert (body["payment_type"], body["gross_amount"], body["currency"]) == (
        payment_type,
        "150000.00",
        "IDR",
    )
    assert is_signed(body, server_key)
    assert received[-1].headers["Content-Type"] == "application/json"


def test_bank_transfer_notifications_carry_the_va_number(client, snap_order, receiver, notify_here):
    snap_order("ORDER-1", headers=notify_here)

    chosen = client.post("/_sim/transactions/ORDER-1/choose", json={"bank": "bri"}).json
    body = receiver.arrived(1)[0].json()

    assert body["va_numbers"] == chosen["va_numbers"]
    assert "actions" not in body


@pytest.mark.parametrize(
    ("action", "status", "notified", "status_api"),
    [
        ("choose", "pending", "201", "201"),
        ("pay", "settlement", "200", "200"),
        ("expire", "expire", "202", "407"),
        ("cancel", "cancel", "202", "200"),
        ("fail", "deny", "202", "202"),
    ],
)
def test_notification_status_codes_differ_from_the_status_api_where_midtrans_does(
    client, auth, snap_order, receiver, notify_here, action, status, notified, status_api
):
    snap_order("ORDER-1", headers=notify_here)
    client.post("/_sim/transactions/ORDER-1/choose", json={"payment_type": "echannel"})
    if action != "choose":
        client.post(f"/_sim/transactions/ORDER-1/{action}")

    body = receiver.arrived(1 if action == "choose" else 2)[-1].json()

    assert (body["transaction_status"], body["status_code"]) == (status, notified)
    assert client.get("/v2/ORDER-1/status", headers=auth).json["status_code"] == status_api


def test_an_order_notifies_each_change_in_order(client, snap_order, receiver, notify_here):
    snap_order("ORDER-1", headers=notify_here)

    client.post("/_sim/transactions/ORDER-1/pay", json={"payment_type": "gopay"})

    statuses = [r.json()["transaction_status"] for r in receiver.arrived(2)]
    assert statuses == ["pending", "settlement"]


def test_override_replaces_the_default_url(client, snap_order, receiver):
    client.post("/_sim/config", json={"notification_url": receiver.at("/default")})
    override = f"{receiver.at('/a')}, {receiver.at('/b')}"
    snap_order("ORDER-1", headers={"X-Override-Notification": override})

    client.post("/_sim/transactions/ORDER-1/choose")

    assert sorted(r.path for r in receiver.arrived(2)) == ["/a", "/b"]


def test_append_adds_to_the_default_url_up_to_three(client, snap_order, receiver):
    client.post("/_sim/config", json={"notification_url": receiver.at("/default")})
    appended = ",".join(receiver.at(f"/{name}") for name in "abcd")
    snap_order("ORDER-1", headers={"X-Append-Notification": appended})

    client.post("/_sim/transactions/ORDER-1/choose")

    received = receiver.arrived(4)
    assert sorted(r.path for r in received) == ["/a", "/b", "/c", "/default"]


def test_the_default_url_from_start_up_is_used(receiver):
    app = create_app({"SERVER_KEY": "k", "NOTIFICATION_URL": receiver.at("/start")})
    client = app.test_client()
    headers = {"Authorization": "Basic azo="}  # "k:"
    body = {"payment_type": "qris", "transaction_details": {"order_id": "O-1", "gross_amount": 10}}

    client.post("/v2/charge", json=body, headers=headers)

    assert receiver.arrived(1)[0].path == "/start"


def test_without_any_url_nothing_is_sent(client, snap_order):
    snap_order("ORDER-1")

    client.post("/_sim/transactions/ORDER-1/pay")

    assert client.get("/_sim/notifications").json == []


def test_a_pending_payment_expires_by_itself_at_its_expiry_time(
    client, auth, snap_order, receiver, notify_here
):
    start = (datetime.now(WIB) - timedelta(seconds=58)).strftime("%Y-%m-%d %H:%M:%S +0700")
    snap_order(
        "ORDER-1",
        headers=notify_here,
        expiry={"start_time": start, "unit": "minute", "duration": 1},
    )
    client.post("/_sim/transactions/ORDER-1/choose")

    received = receiver.arrived(2, timeout=6)

    assert [r.json()["transaction_status"] for r in received] == ["pending", "expire"]
    assert client.get("/v2/ORDER-1/status", headers=auth).json["transaction_status"] == "expire"


def test_the_dashboard_lists_transactions_and_notification_answers(
    client, snap_order, receiver, notify_here, wait_until
):
    snap_order("ORDER-DASH", headers=notify_here)
    receiver.answers = [503]
    client.post("/_sim/transactions/ORDER-DASH/choose")
    wait_until(lambda: client.get("/_sim/notifications").json)

    page = client.get("/_sim/").get_data(as_text=True)

    assert "ORDER-DASH" in page
    assert "HTTP 503" in page
