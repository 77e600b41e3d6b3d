"""Snap create: auth, Midtrans's validation wording, tokens, expiry, and the payment page."""

import re
from datetime import datetime, timedelta, timezone

import pytest

WIB = timezone(timedelta(hours=7))
UNAUTHORIZED = {
    "error_messages": [
        "Access denied due to unauthorized transaction, please check client or server key",
        "Visit https://snap-docs.midtrans.com/#request-headers for more details",
    ]
}


def create(client, auth, body):
    return client.post("/snap/v1/transactions", json=body, headers=auth)


def details(order_id="ORDER-1", amount=150000):
    return {"transaction_details": {"order_id": order_id, "gross_amount": amount}}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic U0ItTWlkLXNlcnZlci13cm9uZzo="}, {"Authorization": "Bearer x"}],
    ids=["missing", "wrong key", "not basic"],
)
def test_create_without_the_server_key_is_refused_with_midtrans_body(client, headers):
    answer = client.post("/snap/v1/transactions", json=details(), headers=headers)

    assert answer.status_code == 401
    assert answer.json == UNAUTHORIZED


def test_create_answers_a_token_and_a_redirect_url_on_the_simulator(client, auth):
    answer = create(client, auth, details())

    assert answer.status_code == 201
    token = answer.json["token"]
    assert re.fullmatch(r"[0-9a-f-]{36}", token)
    assert answer.json["redirect_url"] == f"http://localhost/snap/v4/redirection/{token}"


@pytest.mark.parametrize(
    ("body", "messages"),
    [
        (
            {},
            [
                "transaction_details.order_id is required",
                "transaction_details.gross_amount is required",
            ],
        ),
        (details(amount="150000"), ["transaction_details.gross_amount is not a number"]),
        (details(amount=1500.5), ["transaction_details.gross_amount must be an integer"]),
        (
            details(amount=0),
            ["transaction_details.gross_amount must be greater than or equal to 0.01"],
        ),
        (details(order_id="X" * 51), ["transaction_details.order_id is too long"]),
        (details(order_id="has space"), ["transaction_details.order_id is invalid"]),
        (
            {**details(), "item_details": [{"name": "VPS", "price": 100000, "quantity": 1}]},
            ["transaction_details.gross_amount is not equal to the sum of item_details"],
        ),
        (
            {**details(), "item_details": [{"price": 150000, "quantity": 1}]},
            ["item_details.name is required"],
        ),
    ],
    ids=["empty", "string", "decimal", "zero", "long id", "bad char", "items sum", "item name"],
)
def test_invalid_create_is_400_with_midtrans_messages(client, auth, body, messages):
    answer = create(client, auth, body)

    assert answer.status_code == 400
    assert answer.json == {"error_messages": messages}


def test_items_whose_prices_sum_to_the_amount_are_accepted(client, auth):
    items = [
        {"id": "VPS", "name": "VPS", "price": 50000, "quantity": 3},
        {"name": "Discount", "price": -10000, "quantity": 1},
    ]
    answer = create(client, auth, {**details(amount=140000), "item_details": items})

    assert answer.status_code == 201


def test_a_body_that_is_not_json_is_400(client, auth):
    answer = client.post(
        "/snap/v1/transactions", data="{not json", headers={**auth, "Content-Type": "text/plain"}
    )

    assert answer.status_code == 400
    assert answer.json == {"error_messages": ["There was a problem in the JSON you submitted"]}


def test_an_order_id_with_a_payment_is_taken(client, auth):
    assert create(client, auth, details("ORDER-1")).status_code == 201
    client.post("/_sim/transactions/ORDER-1/choose")

    again = create(client, auth, details("ORDER-1", 99000))

    assert again.status_code == 400
    assert again.json == {"error_messages": ["transaction_details.order_id has already been taken"]}


def test_a_paid_order_id_is_taken_too(client, auth):
    create(client, auth, details("ORDER-1"))
    client.post("/_sim/transactions/ORDER-1/pay", json={"payment_type": "gopay"})

    again = create(client, auth, details("ORDER-1"))

    assert again.status_code == 400
    assert again.json == {"error_messages": ["transaction_details.order_id has already been taken"]}


def test_a_second_token_for_an_unpaid_order_revokes_the_first(client, auth):
    first = create(client, auth, details("ORDER-1")).json

    second = create(client, auth, details("ORDER-1", 99000))

    assert second.status_code == 201
    assert second.json["token"] != first["token"]
    assert client.get(first["redirect_url"]).status_code == 404
    chosen = client.post(f"{first['redirect_url']}/choose", data={"method": "qris"})
    assert chosen.status_code == 404
    page = client.get(second.json["redirect_url"])
    assert page.status_code == 200 and "Rp99.000" in page.get_data(as_text=True)
    client.post(f"{second.json['redirect_url']}/choose", data={"method": "qris"})
    status = client.get("/v2/ORDER-1/status", headers=auth).json
    assert (status["status_code"], status["gross_amount"]) == ("201", "99000.00")
    assert [tx["token"] for tx in client.get("/_sim/transactions").json] == [second.json["token"]]


def test_status_says_the_transaction_does_not_exist_before_a_method_is_chosen(
    client, auth, snap_order
):
    snap_order("ORDER-1")

    answer = client.get("/v2/ORDER-1/status", headers=auth)
    client.post("/_sim/config", json={"core_errors_as_http": False})
    legacy = client.get("/v2/ORDER-1/status", headers=auth)

    assert (answer.status_code, legacy.status_code) == (404, 200)
    assert legacy.json["status_code"] == "404"
    assert answer.json["status_code"] == "404"
    assert answer.json["status_message"] == "Transaction doesn't exist."
    assert re.fullmatch(r"[0-9a-f-]{36}", answer.json["id"])


def test_the_payment_page_shows_the_order_and_the_methods(client, snap_order):
    items = [{"id": "V1", "name": "Cloud VPS Basic", "price": 150000, "quantity": 1}]
    order = snap_order("INV-2025-001", 150000, item_details=items)

    page = client.get(order["redirect_url"]).get_data(as_text=True)

    assert "INV-2025-001" in page
    assert "Rp150.000" in page
    assert "Cloud VPS Basic" in page
    for label in ("BCA", "BNI", "BRI", "PERMATA", "Mandiri Bill", "GoPay", "QRIS", "card"):
        assert label in page
    assert "<script" not in page and "http" not in page.split("<main>")[1]


def test_the_page_offers_only_the_enabled_payments(client, snap_order):
    order = snap_order("ORDER-1", enabled_payments=["bca_va", "other_qris"])

    page = client.get(order["redirect_url"]).get_data(as_text=True)
    refused = client.post(f"{order['redirect_url']}/choose", data={"method": "gopay"})
    card = client.post(f"{order['redirect_url']}/pay", data={"payment_type": "credit_card"})

    assert "BCA Virtual Account" in page and "QRIS" in page
    assert "BNI" not in page and "GoPay" not in page and "Pay by card" not in page
    assert (refused.status_code, card.status_code) == (400, 400)


def test_paying_before_choosing_a_method_asks_for_one(client, snap_order):
    order = snap_order("ORDER-1")

    answer = client.post(f"{order['redirect_url']}/pay")

    assert answer.status_code == 409
    assert "Choose a payment method first" in answer.get_data(as_text=True)


def test_an_unknown_token_has_no_page(client):
    assert client.get("/snap/v4/redirection/no-such-token").status_code == 404


def test_choosing_bank_transfer_on_the_page_creates_a_pending_va(client, auth, snap_order):
    order = snap_order("ORDER-1")

    chosen = client.post(f"{order['redirect_url']}/choose", data={"method": "bank_transfer:bni"})
    page = client.get(order["redirect_url"]).get_data(as_text=True)
    status = client.get("/v2/ORDER-1/status", headers=auth).json

    assert chosen.status_code == 303
    assert status["transaction_status"] == "pending"
    assert status["va_numbers"][0]["bank"] == "bni"
    assert status["va_numbers"][0]["va_number"] in page


def test_the_page_shows_a_qr_code_as_inline_svg_for_qris(client, snap_order):
    order = snap_order("ORDER-1")

    client.post(f"{order['redirect_url']}/choose", data={"method": "qris"})
    page = client.get(order["redirect_url"]).get_data(as_text=True)

    assert '<div id="qr"><svg' in page


def test_paying_by_card_on_the_page_captures_without_a_pending_step(client, auth, snap_order):
    order = snap_order("ORDER-1")

    client.post(f"{order['redirect_url']}/pay", data={"payment_type": "credit_card"})
    status = client.get("/v2/ORDER-1/status", headers=auth).json

    assert status["payment_type"] == "credit_card"
    assert (status["transaction_status"], status["fraud_status"]) == ("capture", "accept")
    assert status["status_code"] == "200"


@pytest.mark.parametrize(
    ("button", "status", "code"),
    [("pay", "settlement", "200"), ("fail", "deny", "202"), ("expire", "expire", "407")]
    + [("cancel", "cancel", "200")],
)
def test_page_buttons_move_the_transaction(client, auth, snap_order, button, status, code):
    order = snap_order("ORDER-1")
    client.post(f"{order['redirect_url']}/choose", data={"method": "echannel"})

    client.post(f"{order['redirect_url']}/{button}")
    answer = client.get("/v2/ORDER-1/status", headers=auth).json

    assert (answer["transaction_status"], answer["status_code"]) == (status, code)


def test_a_button_the_status_does_not_allow_shows_an_error(client, snap_order):
    order = snap_order("ORDER-1")
    client.post(f"{order['redirect_url']}/choose", data={"method": "gopay"})
    client.post(f"{order['redirect_url']}/pay")

    answer = client.post(f"{order['redirect_url']}/expire")

    assert answer.status_code == 409
    assert "Merchant cannot modify the status of the transaction" in answer.get_data(as_text=True)


def test_the_finish_link_returns_to_the_merchant_with_the_result(client, snap_order):
    order = snap_order("ORDER-1", callbacks={"finish": "https://shop.example/done"})
    client.post(f"{order['redirect_url']}/choose", data={"method": "bank_transfer:bca"})
    client.post(f"{order['redirect_url']}/pay")

    page = client.get(order["redirect_url"]).get_data(as_text=True)

    expected = "https://shop.example/done?order_id=ORDER-1&amp;status_code=200"
    assert expected in page


def test_a_page_past_its_expiry_cannot_be_used(client, snap_order):
    start = (datetime.now(WIB) - timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S +0700")
    expiry = {"start_time": start, "unit": "minutes", "duration": 1}
    order = snap_order("ORDER-1", expiry=expiry)

    page = client.get(order["redirect_url"]).get_data(as_text=True)
    chosen = client.post(f"{order['redirect_url']}/choose", data={"method": "qris"})

    assert "expired" in page
    assert chosen.status_code == 409


def test_the_expiry_set_at_create_becomes_the_payment_expiry_time(client, auth, snap_order):
    start = datetime.now(WIB).replace(microsecond=0)
    expiry = {
        "start_time": start.strftime("%Y-%m-%d %H:%M:%S +0700"),
        "unit": "hour",
        "duration": 2,
    }
    order = snap_order("ORDER-1", expiry=expiry)

    client.post(f"{order['redirect_url']}/choose", data={"method": "bank_transfer:bri"})
    status = client.get("/v2/ORDER-1/status", headers=auth).json

    assert status["expiry_time"] == (start + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")


def test_an_invalid_expiry_is_400(client, auth):
    body = {**details(), "expiry": {"unit": "fortnight", "duration": 0}}

    answer = create(client, auth, body)

    assert answer.status_code == 400
    assert answer.json == {
        "error_messages": [
            "expiry.unit must be one of second, minute, hour, day",
            "expiry.duration must be a positive integer",
        ]
    }


def test_page_expiry_ends_the_page_before_the_order_expires(client, auth):
    body = {**details(), "page_expiry": {"duration": 1, "unit": "minutes"}}
    order = create(client, auth, body).json
    sim = client.application.extensions["simulator"]
    tx = sim.store._orders["ORDER-1"]
    tx.page_expires_at = tx.created_at - timedelta(seconds=1)  # a minute later, in effect

    page = client.get(order["redirect_url"]).get_data(as_text=True)
    chosen = client.post(f"{order['redirect_url']}/choose", data={"method": "qris"})
    card = client.post(f"{order['redirect_url']}/pay", data={"payment_type": "credit_card"})

    assert "expired" in page
    assert (chosen.status_code, card.status_code) == (409, 409)
    assert client.get("/v2/ORDER-1/status", headers=auth).json["status_code"] == "404"


def test_page_expiry_is_kept_per_order(client, auth):
    start = datetime.now(WIB)
    create(client, auth, {**details(), "page_expiry": {"duration": 2, "unit": "hour"}})

    tx = client.application.extensions["simulator"].store.find_order("ORDER-1")

    assert timedelta(hours=2) <= tx.page_expires_at - start <= timedelta(hours=2, seconds=2)
    assert tx.expires_at - start >= timedelta(hours=23)  # the order itself lives 24 hours


def test_an_invalid_page_expiry_is_400(client, auth):
    body = {**details(), "page_expiry": {"duration": -1, "unit": "days"}}

    answer = create(client, auth, body)

    assert answer.status_code == 400
    assert answer.json == {"error_messages": ["page_expiry.duration must be a positive integer"]}
