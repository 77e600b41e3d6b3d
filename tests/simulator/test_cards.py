"""Cards on the Core API: tokens for Midtrans's sandbox test cards, 3DS, pre-authorization and
capture, fraud challenges decided or cancelled at settlement time, and the card JS stand-in."""

import re
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest

from simulator.settings import DEFAULT_CLIENT_KEY
from simulator.transactions import WIB

NEXT_YEAR = str(datetime.now(WIB).year + 1)


def token(client, number="4811 1111 1111 1114", **extra):
    params = {
        "client_key": DEFAULT_CLIENT_KEY,
        "card_number": number,
        "card_exp_month": "12",
        "card_exp_year": NEXT_YEAR,
        "card_cvv": "123",
        **extra,
    }
    return client.get("/v2/token", query_string=params)


def charge(client, auth, order_id, card, amount=150000):
    body = {
        "payment_type": "credit_card",
        "transaction_details": {"order_id": order_id, "gross_amount": amount},
        "credit_card": card,
    }
    return client.post("/v2/charge", json=body, headers=auth).json


def card_of(client, number, **options):
    return {"token_id": token(client, number).json["token_id"], **options}


def status(client, auth, key):
    return client.get(f"/v2/{key}/status", headers=auth).json


def three_ds(client, redirect_url, otp="112233", action="authenticate", query=""):
    path = urlparse(redirect_url).path
    return client.post(path + query, data={"otp": otp, "action": action})


# -- the token ------------------------------------------------------------------------------


def test_a_token_needs_only_the_client_key(client):
    answer = token(client)

    assert answer.status_code == 200
    body = answer.json
    assert (body["status_code"], body["status_message"]) == ("200", "OK, success request new token")
    assert re.fullmatch(r"481111-1114-[0-9a-f-]{36}", body["token_id"])
    assert "redirect_url" not in body
    assert answer.headers["Access-Control-Allow-Origin"] == "*"


def test_a_token_with_a_wrong_client_key_is_401(client):
    answer = token(client, client_key="SB-Mid-client-wrong")

    assert (answer.status_code, answer.json["status_code"]) == (401, "401")


@pytest.mark.parametrize(
    ("number", "month", "year", "message"),
    [
        ("4811 1111 1111 1115", "12", NEXT_YEAR, "card_number does not match with luhn algorithm"),
        ("", "12", NEXT_YEAR, "card_number is required"),
        ("4811 1111 1111 1114", "13", NEXT_YEAR, "card_exp_month must be between 01 and 12"),
        ("4811 1111 1111 1114", "01", "2020", "card_exp_year/card_exp_month is expired"),
    ],
)
def test_an_invalid_card_is_400(client, number, month, year, message):
    answer = token(client, number, card_exp_month=month, card_exp_year=year)

    assert answer.status_code == 400
    assert answer.json["status_code"] == "400"
    assert answer.json["validation_messages"] == [message]


def test_the_older_secure_token_flow_gets_a_3ds_redirect_url(client):
    body = token(client, secure="true", gross_amount="10000").json

    assert body["redirect_url"].endswith(f"/v2/token/redirect/{body['token_id']}")
    assert client.get(urlparse(body["redirect_url"]).path).status_code == 200


def test_a_token_is_good_for_one_charge(client, auth):
    card = card_of(client, "4811111111111114")
    charge(client, auth, "ORDER-1", card)

    again = charge(client, auth, "ORDER-2", card)

    assert again["status_code"] == "411"
    assert status(client, auth, "ORDER-2")["status_code"] == "404"


# -- charges by test card ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "code", "transaction_status", "fraud_status", "message"),
    [
        ("4811111111111114", "200", "capture", "accept", "Success, Credit Card transaction is"),
        ("4011111111111112", "200", "capture", "accept", "Success, Credit Card transaction is"),
        ("4111111111111111", "201", "capture", "challenge", "Challenge by FDS"),
        ("4611111111111116", "202", "deny", "deny", "Denied by FDS"),
        ("4911111111111113", "202", "deny", "accept", "Deny by Bank [BNI] with code [05]"),
    ],
)
def test_a_charge_without_3ds_ends_as_the_test_card_says(
    client, auth, receiver, number, code, transaction_status, fraud_status, message
):
    client.post("/_sim/config", json={"notification_url": receiver.url})

    body = charge(client, auth, "ORDER-1", card_of(client, number))

    assert (body["status_code"], body["transaction_status"]) == (code, transaction_status)
    assert body["fraud_status"] == fraud_status
    assert body["status_message"].startswith(message)
    assert body["masked_card"] == f"{number[:6]}-{number[-4:]}"
    assert "redirect_url" not in body
    notified = receiver.arrived(1)[0].json()
    assert (notified["transaction_status"], notified["fraud_status"]) == (
        transaction_status,
        fraud_status,
    )


def test_a_3ds_charge_waits_then_the_otp_captures_it(client, auth, receiver):
    client.post("/_sim/config", json={"notification_url": receiver.url})
    card = card_of(client, "4811111111111114", authentication=True)

    body = charge(client, auth, "ORDER-1", card)
    page = client.get(urlparse(body["redirect_url"]).path)
    done = three_ds(client, body["redirect_url"])

    assert (body["status_code"], body["transaction_status"]) == ("201", "pending")
    assert body["status_message"] == "Success, Credit Card transaction is successful"
    assert re.search(r"/v2/token/rba/redirect/481111-1114-[0-9a-f-]{36}$", body["redirect_url"])
    assert "channel_response_code" not in body
    assert "112233" in page.get_data(as_text=True)
    assert done.status_code == 200
    assert '"transaction_status": "capture"' in done.get_data(as_text=True)
    assert "postMessage" in done.get_data(as_text=True)
    after = status(client, auth, "ORDER-1")
    assert (after["status_code"], after["transaction_status"]) == ("200", "capture")
    notified = [r.json()["transaction_status"] for r in receiver.arrived(2)]
    assert notified == ["pending", "capture"]


@pytest.mark.parametrize(("otp", "action"), [("000000", "authenticate"), ("112233", "fail")])
def test_a_wrong_otp_or_fail_denies_the_3ds_charge(client, auth, otp, action):
    body = charge(client, auth, "ORDER-1", card_of(client, "4811111111111114", authentication=True))

    three_ds(client, body["redirect_url"], otp=otp, action=action)

    after = status(client, auth, "ORDER-1")
    assert (after["status_code"], after["transaction_status"]) == ("202", "deny")


def test_a_bank_denial_card_is_denied_after_3ds(client, auth):
    body = charge(client, auth, "ORDER-1", card_of(client, "4911111111111113", authentication=True))

    three_ds(client, body["redirect_url"])

    assert status(client, auth, "ORDER-1")["transaction_status"] == "deny"


def test_the_3ds_page_takes_one_answer(client, auth):
    body = charge(client, auth, "ORDER-1", card_of(client, "4811111111111114", authentication=True))
    three_ds(client, body["redirect_url"])

    again = three_ds(client, body["redirect_url"], action="fail")

    assert again.status_code == 409
    assert status(client, auth, "ORDER-1")["transaction_status"] == "capture"


def test_the_3ds_page_returns_to_a_callback_url_with_the_result(client, auth):
    body = charge(client, auth, "ORDER-1", card_of(client, "4811111111111114", authentication=True))

    done = three_ds(client, body["redirect_url"], query="?callback_url=https://shop.example/3ds")

    assert done.status_code == 303
    target = urlparse(done.headers["Location"])
    assert (target.netloc, target.path) == ("shop.example", "/3ds")
    assert '"transaction_status": "capture"' in parse_qs(target.query)["response"][0]


# -- pre-authorization and capture --------------------------------------------------------


def test_authorize_then_capture_part_of_it(client, auth, receiver):
    client.post("/_sim/config", json={"notification_url": receiver.url})
    card = card_of(client, "4811111111111114", type="authorize")
    body = charge(client, auth, "ORDER-1", card, amount=500000)

    too_much = client.post(
        "/v2/capture",
        json={"transaction_id": body["transaction_id"], "gross_amount": 500001},
        headers=auth,
    ).json
    captured = client.post(
        "/v2/capture",
        json={"transaction_id": body["transaction_id"], "gross_amount": 300000},
        headers=auth,
    ).json
    twice = client.post(
        "/v2/capture", json={"transaction_id": body["transaction_id"]}, headers=auth
    ).json

    assert (body["status_code"], body["transaction_status"]) == ("200", "authorize")
    assert too_much["status_code"] == "412"
    assert captured["status_code"] == "200"
    assert captured["status_message"] == "Success, Credit Card capture transaction is successful"
    assert (captured["transaction_status"], captured["gross_amount"]) == ("capture", "300000.00")
    assert captured["masked_card"] == "481111-1114"
    assert twice["status_code"] == "412"
    notified = [r.json() for r in receiver.arrived(2)]
    assert [n["transaction_status"] for n in notified] == ["authorize", "capture"]
    assert notified[1]["gross_amount"] == "300000.00"


def test_capture_takes_all_by_default_and_needs_a_transaction_id(client, auth):
    body = charge(client, auth, "ORDER-1", card_of(client, "4811111111111114", type="authorize"))

    missing = client.post("/v2/capture", json={}, headers=auth).json
    unknown = client.post("/v2/capture", json={"transaction_id": "nope"}, headers=auth).json
    captured = client.post(
        "/v2/capture", json={"transaction_id": body["transaction_id"]}, headers=auth
    ).json

    assert missing["status_code"] == "400"
    assert unknown["status_code"] == "404"
    assert (captured["transaction_status"], captured["gross_amount"]) == ("capture", "150000.00")


def test_an_authorization_can_be_cancelled(client, auth):
    charge(client, auth, "ORDER-1", card_of(client, "4811111111111114", type="authorize"))

    body = client.post("/v2/ORDER-1/cancel", json={}, headers=auth).json

    assert (body["status_code"], body["transaction_status"]) == ("200", "cancel")


def test_an_authorize_of_a_challenge_card_waits_for_approve(client, auth):
    charge(client, auth, "ORDER-1", card_of(client, "4111111111111111", type="authorize"))

    held = status(client, auth, "ORDER-1")
    approved = client.post("/v2/ORDER-1/approve", json={}, headers=auth).json

    assert (held["status_code"], held["transaction_status"]) == ("201", "authorize")
    assert (approved["transaction_status"], approved["fraud_status"]) == ("authorize", "accept")


# -- challenges ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "transaction_status", "fraud_status", "code"),
    [("approve", "capture", "accept", "200"), ("deny", "deny", "deny", "202")],
)
def test_a_challenge_card_is_decided_by_approve_or_deny(
    client, auth, action, transaction_status, fraud_status, code
):
    charge(client, auth, "ORDER-1", card_of(client, "4511111111111117"))

    decided = client.post(f"/v2/ORDER-1/{action}", json={}, headers=auth).json

    assert (decided["transaction_status"], decided["fraud_status"]) == (
        transaction_status,
        fraud_status,
    )
    assert status(client, auth, "ORDER-1")["status_code"] == code


def test_settlement_time_cancels_undecided_challenges_and_settles_captured_cards(
    client, auth, receiver
):
    client.post("/_sim/config", json={"notification_url": receiver.url})
    charge(client, auth, "HELD", card_of(client, "4111111111111111"))
    charge(client, auth, "PAID", card_of(client, "4811111111111114"))
    charge(client, auth, "VA", card_of(client, "4811111111111114", type="authorize"))
    receiver.arrived(3)

    done = client.post("/_sim/settlement-time").json

    assert done == {"cancelled": ["HELD"], "settled": ["PAID"]}
    assert status(client, auth, "HELD")["transaction_status"] == "cancel"
    assert status(client, auth, "PAID")["transaction_status"] == "settlement"
    assert status(client, auth, "VA")["transaction_status"] == "authorize"
    later = {r.json()["order_id"]: r.json()["transaction_status"] for r in receiver.arrived(5)[3:]}
    assert later == {"HELD": "cancel", "PAID": "settlement"}


# -- the card JS stand-in ------------------------------------------------------------------


def test_the_new3ds_js_stand_in_calls_this_simulator(client):
    answer = client.get("/v2/assets/js/midtrans-new-3ds.min.js")

    script = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert answer.mimetype == "application/javascript"
    assert '"http://localhost/"' in script
    for name in ("MidtransNew3ds", "getCardToken", "authenticate", "redirect", "v2/token?"):
        assert name in script


def test_a_card_expired_by_its_own_lifetime_is_not_offered_a_3ds_page(client, auth):
    start = (datetime.now(WIB) - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S +0700")
    card = card_of(client, "4811111111111114", authentication=True)
    body = {
        "payment_type": "credit_card",
        "transaction_details": {"order_id": "ORDER-1", "gross_amount": 1000},
        "credit_card": card,
        "custom_expiry": {"order_time": start, "expiry_duration": 1, "unit": "hour"},
    }
    charged = client.post("/v2/charge", json=body, headers=auth).json
    client.application.extensions["simulator"].store.expire_overdue(datetime.now(WIB))

    answer = three_ds(client, charged["redirect_url"])

    assert answer.status_code == 409
    assert status(client, auth, "ORDER-1")["transaction_status"] == "expire"
