"""Core API: charge shapes per method, status codes per state, actions, refunds, signatures."""

import binascii
import hashlib
import re
from datetime import datetime, timedelta

import pytest

from simulator.signing import signature_key
from simulator.transactions import WIB

MIDTRANS_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def charge(client, auth, order_id, payment_type, amount=150000, **extra):
    body = {
        "payment_type": payment_type,
        "transaction_details": {"order_id": order_id, "gross_amount": amount},
        **extra,
    }
    return client.post("/v2/charge", json=body, headers=auth)


def status(client, auth, key):
    return client.get(f"/v2/{key}/status", headers=auth).json


def post(client, auth, path, body=None):
    return client.post(path, json=body or {}, headers=auth)


@pytest.mark.parametrize(("bank", "digits"), [("bca", 11), ("bni", 16), ("bri", 16)])
def test_bank_transfer_charge_answers_a_pending_va(client, auth, bank, digits):
    answer = charge(client, auth, "ORDER-1", "bank_transfer", bank_transfer={"bank": bank})

    body = answer.json
    assert answer.status_code == 200
    assert body["status_code"] == "201"
    assert body["status_message"] == "Success, Bank Transfer transaction is created"
    assert (body["transaction_status"], body["fraud_status"]) == ("pending", "accept")
    assert (body["gross_amount"], body["currency"]) == ("150000.00", "IDR")
    assert body["va_numbers"][0]["bank"] == bank
    assert re.fullmatch(rf"\d{{{digits}}}", body["va_numbers"][0]["va_number"])
    assert re.fullmatch(MIDTRANS_TIME, body["transaction_time"])
    assert re.fullmatch(MIDTRANS_TIME, body["expiry_time"])


def test_a_custom_va_number_is_padded_into_the_bank_format(client, auth):
    transfer = {"bank": "bca", "va_number": "42"}

    body = charge(client, auth, "ORDER-1", "bank_transfer", bank_transfer=transfer).json

    assert body["va_numbers"][0]["va_number"] == "12345000042"


def test_permata_answers_a_permata_va_number(client, auth):
    body = charge(client, auth, "O-1", "bank_transfer", bank_transfer={"bank": "permata"}).json

    assert "va_numbers" not in body
    assert re.fullmatch(r"\d{16}", body["permata_va_number"])


def test_echannel_answers_a_bill_key_and_mandiri_biller_code(client, auth):
    body = charge(client, auth, "ORDER-1", "echannel").json

    assert body["status_code"] == "201"
    assert body["biller_code"] == "70012"
    assert re.fullmatch(r"\d{12}", body["bill_key"])


def test_gopay_answers_qr_deeplink_status_and_cancel_actions(client, auth):
    body = charge(client, auth, "ORDER-1", "gopay").json

    actions = {action["name"]: action for action in body["actions"]}
    assert list(actions) == ["generate-qr-code", "deeplink-redirect", "get-status", "cancel"]
    assert actions["deeplink-redirect"]["url"].startswith("gojek://gopay/merchanttransfer?")
    assert actions["cancel"]["method"] == "POST"
    qr = client.get(actions["generate-qr-code"]["url"])
    assert (qr.status_code, qr.mimetype) == (200, "image/png")
    assert qr.data.startswith(b"\x89PNG")


def test_gopay_deeplink_returns_to_the_charges_gopay_callback_url(client, auth):
    """Midtrans's Core GoPay charge takes its deeplink return as `gopay.callback_url`."""
    gopay = {"enable_callback": True, "callback_url": "posapp://paid"}
    body = charge(client, auth, "ORDER-1", "gopay", gopay=gopay).json

    actions = {action["name"]: action for action in body["actions"]}
    assert actions["deeplink-redirect"]["url"].endswith("&callback_url=posapp://paid")


def test_qris_answers_a_qr_string_with_a_valid_crc(client, auth):
    body = charge(client, auth, "ORDER-1", "qris", amount=75000).json

    qr_string = body["qr_string"]
    assert body["acquirer"] == "gopay"
    assert "540575000" in qr_string  # tag 54, length 05, the amount
    payload, crc = qr_string[:-4], qr_string[-4:]
    assert payload.endswith("6304")
    assert crc == f"{binascii.crc_hqx(payload.encode(), 0xFFFF):04X}"  # CRC-16/CCITT-FALSE


def test_card_charge_without_3ds_is_captured_and_accepted(client, auth, card_token):
    card = {"token_id": card_token()}

    body = charge(client, auth, "ORDER-1", "credit_card", credit_card=card).json

    assert body["status_code"] == "200"
    assert body["status_message"] == "Success, Credit Card transaction is successful"
    assert (body["transaction_status"], body["fraud_status"]) == ("capture", "accept")
    assert body["masked_card"] == "481111-1114"


@pytest.mark.parametrize(
    ("body", "messages"),
    [
        (
            {"transaction_details": {"order_id": "O-1", "gross_amount": 1}},
            ["payment_type is required"],
        ),
        (
            {"payment_type": "bank_transfer", "bank_transfer": {"bank": "xyz"}},
            ["bank_transfer.bank must be one of bca, bni, bri, permata, cimb"],
        ),
        ({"payment_type": "credit_card"}, ["credit_card.token_id is required"]),
    ],
)
def test_invalid_charge_is_a_400_in_the_body(client, auth, body, messages):
    body.setdefault("transaction_details", {"order_id": "O-1", "gross_amount": 1000})

    answer = client.post("/v2/charge", json=body, headers=auth)

    assert answer.status_code == 400
    assert answer.json["status_code"] == "400"
    assert answer.json["status_message"] == "One or more parameters in the payload is invalid."
    assert answer.json["validation_messages"] == messages


def test_charging_an_order_id_twice_is_406(client, auth):
    charge(client, auth, "ORDER-1", "gopay")

    again = charge(client, auth, "ORDER-1", "qris").json

    assert again["status_code"] == "406"


def test_core_refuses_a_wrong_server_key_with_401(client):
    wrong = {"Authorization": "Basic U0ItTWlkLXNlcnZlci13cm9uZzo="}

    answer = client.get("/v2/ORDER-1/status", headers=wrong)

    assert answer.status_code == 401
    assert answer.json["status_code"] == "401"


def test_status_is_found_by_order_id_and_by_transaction_id(client, auth):
    created = charge(client, auth, "ORDER-1", "echannel").json

    by_order = status(client, auth, "ORDER-1")
    by_id = status(client, auth, created["transaction_id"])

    assert by_order["status_message"] == "Success, transaction is found"
    assert by_order["transaction_id"] == by_id["transaction_id"] == created["transaction_id"]
    assert by_order["merchant_id"] == "G000000000"


def test_status_is_signed_with_the_midtrans_formula(client, auth, server_key):
    charge(client, auth, "ORDER-1", "gopay", amount=150000)

    body = status(client, auth, "ORDER-1")

    expected = hashlib.sha512(f"ORDER-1201150000.00{server_key}".encode()).hexdigest()
    assert body["signature_key"] == expected


@pytest.mark.parametrize(
    ("order_id", "code", "amount", "signature"),
    [
        (
            "ORDER-sandbox-0001",
            "200",
            "150000.00",
            "d65b4adf15335095fe1bfafe24964d48009dcc2989393e13570b0c9852ea60df"
            "0040b1a9646b9c9ef9433317f77acc8e387c59998dc20f5bd93fff93d23672e4",
        ),
        (
            "ORDER-sandbox-0003",
            "202",
            "50000.00",
            "a51d1bd2aa8b1dca9228f3827cd641b6dadf52ebb9ed40fb45db6a06dbb33de7"
            "cde8e80caa93dfb5e6beeaaf44f698dc7f6f56edd46556eddaa2a774ff7692c6",
        ),
    ],
)
def test_signature_matches_midtrans_published_notifications(order_id, code, amount, signature):
    """Known answers from Midtrans's own signed fixtures (server key SB-Mid-server-test)."""
    assert signature_key(order_id, code, amount, "SB-Mid-server-test") == signature


def test_unknown_ids_answer_404(client, auth):
    answer = client.get("/v2/NOPE/status", headers=auth)
    assert (answer.status_code, answer.json["status_code"]) == (404, "404")
    for action in ("cancel", "expire", "approve", "deny", "refund"):
        answer = post(client, auth, f"/v2/NOPE/{action}")
        assert (answer.status_code, answer.json["status_code"]) == (404, "404")


def test_unknown_ids_answer_404_in_a_200_body_in_the_legacy_style(client, auth):
    client.post("/_sim/config", json={"core_errors_as_http": False})
    for path in ("/v2/NOPE/status",):
        answer = client.get(path, headers=auth)
        assert (answer.status_code, answer.json["status_code"]) == (200, "404")
    for action in ("cancel", "expire", "approve", "deny", "refund"):
        answer = post(client, auth, f"/v2/NOPE/{action}")
        assert (answer.status_code, answer.json["status_code"]) == (200, "404")


def test_the_404_switch_makes_unknown_ids_a_real_http_404_in_the_legacy_style(client, auth):
    client.post("/_sim/config", json={"core_errors_as_http": False, "status_404_as_http": True})

    answer = client.get("/v2/NOPE/status", headers=auth)

    assert answer.status_code == 404
    assert answer.json["status_message"] == "Transaction doesn't exist."


@pytest.mark.parametrize("payment_type", ["echannel", "gopay"])
def test_cancel_of_a_pending_transaction(client, auth, payment_type):
    charge(client, auth, "ORDER-1", payment_type)

    body = post(client, auth, "/v2/ORDER-1/cancel").json

    assert body["status_code"] == "200"
    assert body["status_message"] == "Success, transaction is canceled"
    assert status(client, auth, "ORDER-1")["transaction_status"] == "cancel"


def test_cancel_of_a_captured_card_voids_it(client, auth, card_token):
    charge(client, auth, "ORDER-1", "credit_card", credit_card={"token_id": card_token()})

    body = post(client, auth, "/v2/ORDER-1/cancel").json

    assert (body["status_code"], body["transaction_status"]) == ("200", "cancel")


def test_expire_of_a_pending_transaction_answers_407(client, auth):
    charge(client, auth, "ORDER-1", "qris")

    body = post(client, auth, "/v2/ORDER-1/expire").json

    assert body["status_code"] == "407"
    assert body["transaction_status"] == "expire"
    assert status(client, auth, "ORDER-1")["status_code"] == "407"


@pytest.mark.parametrize("action", ["expire", "cancel", "approve", "deny"])
def test_settled_transactions_cannot_be_modified(client, auth, action):
    charge(client, auth, "ORDER-1", "gopay")
    client.post("/_sim/transactions/ORDER-1/pay")

    body = post(client, auth, f"/v2/ORDER-1/{action}").json

    assert body["status_code"] == "412"
    assert body["status_message"] == "Merchant cannot modify the status of the transaction"
    assert status(client, auth, "ORDER-1")["transaction_status"] == "settlement"


def test_refund_of_a_pending_transaction_is_412(client, auth):
    charge(client, auth, "ORDER-1", "gopay")

    body = post(client, auth, "/v2/ORDER-1/refund", {"amount": 1000}).json

    assert body["status_code"] == "412"


def test_partial_then_full_refund(client, auth):
    charge(client, auth, "ORDER-1", "gopay", amount=150000)
    client.post("/_sim/transactions/ORDER-1/pay")

    first = post(client, auth, "/v2/ORDER-1/refund", {"refund_key": "r1", "amount": 50000}).json
    partial = status(client, auth, "ORDER-1")
    rest = post(client, auth, "/v2/ORDER-1/refund/online/direct", {"refund_key": "r2"}).json
    full = status(client, auth, "ORDER-1")

    assert (first["status_code"], first["transaction_status"]) == ("200", "partial_refund")
    assert (first["refund_amount"], first["refund_key"]) == ("50000.00", "r1")
    assert (partial["status_code"], partial["refund_amount"]) == ("200", "50000.00")
    assert rest["refund_amount"] == "100000.00"
    assert full["transaction_status"] == "refund"
    assert [r["refund_key"] for r in full["refunds"]] == ["r1", "r2"]


def test_a_repeated_refund_key_refunds_only_once(client, auth):
    charge(client, auth, "ORDER-1", "gopay", amount=150000)
    client.post("/_sim/transactions/ORDER-1/pay")

    post(client, auth, "/v2/ORDER-1/refund", {"refund_key": "r1", "amount": 50000})
    again = post(client, auth, "/v2/ORDER-1/refund", {"refund_key": "r1", "amount": 50000}).json

    assert again["refund_chargeback_id"] == 1
    assert status(client, auth, "ORDER-1")["refund_amount"] == "50000.00"


def test_a_refund_above_what_is_left_is_412_and_changes_nothing(client, auth):
    charge(client, auth, "ORDER-1", "gopay", amount=150000)
    client.post("/_sim/transactions/ORDER-1/pay")
    post(client, auth, "/v2/ORDER-1/refund", {"amount": 100000})

    body = post(client, auth, "/v2/ORDER-1/refund", {"amount": 60000}).json

    assert body["status_code"] == "412"
    assert status(client, auth, "ORDER-1")["refund_amount"] == "100000.00"


def test_a_challenged_card_waits_for_approve(client, auth, snap_order):
    snap_order("ORDER-1")
    card = {"payment_type": "credit_card", "fraud_status": "challenge"}
    client.post("/_sim/transactions/ORDER-1/pay", json=card)
    challenged = status(client, auth, "ORDER-1")

    approved = post(client, auth, "/v2/ORDER-1/approve").json

    assert (challenged["status_code"], challenged["fraud_status"]) == ("201", "challenge")
    assert approved["status_message"] == "Success, transaction is approved"
    assert (approved["transaction_status"], approved["fraud_status"]) == ("capture", "accept")


def test_a_challenged_card_can_be_denied(client, auth, snap_order):
    snap_order("ORDER-1")
    card = {"payment_type": "credit_card", "fraud_status": "challenge"}
    client.post("/_sim/transactions/ORDER-1/pay", json=card)

    denied = post(client, auth, "/v2/ORDER-1/deny").json

    assert (denied["status_code"], denied["transaction_status"]) == ("202", "deny")


def test_cimb_answers_a_va_number(client, auth):
    body = charge(client, auth, "ORDER-1", "bank_transfer", bank_transfer={"bank": "cimb"}).json

    assert body["status_code"] == "201"
    assert body["va_numbers"][0]["bank"] == "cimb"
    assert re.fullmatch(r"\d{16}", body["va_numbers"][0]["va_number"])


@pytest.mark.parametrize(
    ("unit", "duration", "delta"),
    [
        ("minute", 15, timedelta(minutes=15)),
        ("hour", 2, timedelta(hours=2)),
        ("day", 1, timedelta(days=1)),
    ],
)
def test_custom_expiry_sets_the_expiry_time(client, auth, unit, duration, delta):
    start = datetime.now(WIB).replace(microsecond=0)
    expiry = {
        "order_time": start.strftime("%Y-%m-%d %H:%M:%S +0700"),
        "expiry_duration": duration,
        "unit": unit,
    }

    body = charge(client, auth, "ORDER-1", "qris", custom_expiry=expiry).json

    expected = (start + delta).strftime("%Y-%m-%d %H:%M:%S")
    assert body["expiry_time"] == expected
    assert status(client, auth, "ORDER-1")["expiry_time"] == expected


def test_custom_expiry_without_order_time_counts_from_the_charge(client, auth):
    before = datetime.now(WIB).replace(microsecond=0)
    expiry = {"expiry_duration": 30, "unit": "minute"}

    body = charge(client, auth, "ORDER-1", "gopay", custom_expiry=expiry).json

    expiry_time = datetime.strptime(body["expiry_time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=WIB)
    assert timedelta(minutes=30) <= expiry_time - before <= timedelta(minutes=30, seconds=2)


def test_a_custom_expiry_already_past_expires_the_payment(client, auth):
    start = (datetime.now(WIB) - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S +0700")
    expiry = {"order_time": start, "expiry_duration": 1, "unit": "minute"}
    charge(client, auth, "ORDER-1", "gopay", custom_expiry=expiry)

    client.application.extensions["simulator"].store.expire_overdue(datetime.now(WIB))

    assert status(client, auth, "ORDER-1")["status_code"] == "407"


@pytest.mark.parametrize(
    ("expiry", "message"),
    [
        (
            {"expiry_duration": 0, "unit": "minute"},
            "custom_expiry.expiry_duration must be a positive integer",
        ),
        (
            {"expiry_duration": 5, "unit": "week"},
            "custom_expiry.unit must be one of second, minute, hour, day",
        ),
        (
            {"expiry_duration": 5, "unit": "hour", "order_time": "yesterday"},
            "custom_expiry.order_time must be in format yyyy-MM-dd HH:mm:ss Z",
        ),
    ],
)
def test_an_invalid_custom_expiry_is_400(client, auth, expiry, message):
    body = charge(client, auth, "ORDER-1", "gopay", custom_expiry=expiry).json

    assert (body["status_code"], body["validation_messages"]) == ("400", [message])


def test_the_qris_qr_code_is_a_png_of_the_qr_string(client, auth):
    body = charge(client, auth, "ORDER-1", "qris").json

    qr = client.get(body["actions"][0]["url"])

    assert body["actions"][0]["name"] == "generate-qr-code"
    assert (qr.status_code, qr.mimetype) == (200, "image/png")
    assert qr.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert client.get(body["actions"][0]["url"].replace("qris", "gopay")).status_code == 404


@pytest.mark.parametrize(
    ("payment_type", "extra"),
    [("bank_transfer", {"bank_transfer": {"bank": "bca"}}), ("echannel", {})],
)
def test_methods_midtrans_cannot_refund_through_the_api_answer_412(
    client, auth, payment_type, extra
):
    charge(client, auth, "ORDER-1", payment_type, **extra)
    client.post("/_sim/transactions/ORDER-1/pay")

    refused = post(client, auth, "/v2/ORDER-1/refund", {"amount": 1000}).json
    direct = post(client, auth, "/v2/ORDER-1/refund/online/direct", {"amount": 1000}).json

    assert (refused["status_code"], refused["status_message"]) == (
        "412",
        "Transaction status cannot be updated.",
    )
    assert direct["status_code"] == "412"
    assert status(client, auth, "ORDER-1")["transaction_status"] == "settlement"


def test_the_refund_any_method_switch_lets_a_va_be_refunded(client, auth):
    charge(client, auth, "ORDER-1", "bank_transfer", bank_transfer={"bank": "bca"})
    client.post("/_sim/transactions/ORDER-1/pay")
    client.post("/_sim/config", json={"refund_any_method": True})

    body = post(client, auth, "/v2/ORDER-1/refund", {"amount": 1000}).json

    assert (body["status_code"], body["transaction_status"]) == ("200", "partial_refund")


@pytest.mark.parametrize("payment_type", ["gopay", "qris"])
def test_settled_e_wallets_are_refunded(client, auth, payment_type):
    charge(client, auth, "ORDER-1", payment_type)
    client.post("/_sim/transactions/ORDER-1/pay")

    body = post(client, auth, "/v2/ORDER-1/refund/online/direct", {"refund_key": "k1"}).json

    assert (body["status_code"], body["transaction_status"]) == ("200", "refund")
    assert body["status_message"] == "Success, refund request is approved by the bank"


def test_a_captured_card_is_refunded_but_a_challenged_one_is_not(client, auth, card_token):
    charge(client, auth, "PAID", "credit_card", credit_card={"token_id": card_token()})
    token = card_token("4111111111111111")  # a challenge card
    charge(client, auth, "HELD", "credit_card", credit_card={"token_id": token})

    paid = post(client, auth, "/v2/PAID/refund", {"amount": 1000}).json
    held = post(client, auth, "/v2/HELD/refund", {"amount": 1000}).json

    assert (paid["status_code"], paid["transaction_status"]) == ("200", "partial_refund")
    assert held["status_code"] == "412"


def test_core_errors_carry_their_code_as_the_http_status_by_default(client, auth):
    charge(client, auth, "ORDER-1", "gopay")

    invalid = charge(client, auth, "ORDER-2", "bank_transfer", bank_transfer={"bank": "xyz"})
    duplicate = charge(client, auth, "ORDER-1", "gopay")
    refused = post(client, auth, "/v2/ORDER-1/refund", {"amount": 1})
    unknown = client.get("/v2/NOPE/status", headers=auth)

    assert [a.status_code for a in (invalid, duplicate, refused, unknown)] == [400, 406, 412, 404]
    assert [a.json["status_code"] for a in (invalid, duplicate, refused, unknown)] == [
        "400",
        "406",
        "412",
        "404",
    ]
