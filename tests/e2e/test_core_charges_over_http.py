"""Core API charges and renewal over real HTTP: gunicorn, the simulator as Midtrans, a worker
delivering callbacks to a receiver. A POS sells with a QRIS code, a billing system prints a VA
number or a Mandiri bill at creation, a shop charges a tokenized card with 3-D Secure, and a
reopened invoice is paid on its second link."""

from __future__ import annotations

import time
from urllib.parse import urlparse

import pytest
import requests
from e2e.servers import post_charge

pytestmark = pytest.mark.timeout(120)

SIMULATOR_CLIENT_KEY = "SB-Mid-client-simulator"
OTP = "112233"


def new_order(prefix: str) -> str:
    return f"{prefix}-{int(time.time() * 1000)}"


def midtrans_id(gateway, headers, order_id: str) -> str:
    (row,) = gateway.db.rows(
        "SELECT t.midtrans_order_id FROM transactions t JOIN apps a ON a.id = t.app_id "
        "WHERE a.code = :code AND t.order_id = :order_id",
        code=headers["X-App-Code"],
        order_id=order_id,
    )
    return row["midtrans_order_id"]


def pay_at_simulator(gateway, midtrans_order_id: str) -> None:
    paid = requests.post(
        f"{gateway.simulator_url}/_sim/transactions/{midtrans_order_id}/pay", json={}, timeout=10
    )
    assert paid.status_code == 200, paid.text


def status(gateway, headers, order_id: str) -> dict:
    answer = requests.get(f"{gateway.gateway_url}/status/{order_id}", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_pos_sells_with_a_qris_code(gateway, client_with_callbacks):
    headers, receiver = client_with_callbacks
    order_id = new_order("QR")
    created = post_charge(
        gateway.gateway_url,
        headers,
        order_id,
        27000,
        payment_type="qris",
        custom_expiry={"expiry_duration": 15, "unit": "minute"},
        custom_field1="till-2",
    ).json()
    assert created["qr_string"].startswith("000201")
    assert created["qr_url"].startswith(gateway.simulator_url)
    assert (created["outcome"], created["payment_type"]) == ("pending", "qris")
    image = requests.get(created["qr_url"], timeout=10)
    assert image.headers["Content-Type"] == "image/png"
    pending = receiver.wait_for(order_id, "pending")
    assert pending["qr_string"] == created["qr_string"] and pending["custom_field1"] == "till-2"

    pay_at_simulator(gateway, midtrans_id(gateway, headers, order_id))

    paid = receiver.wait_for(order_id, "settlement")
    assert paid["outcome"] == "paid" and paid["paid"] is True
    assert status(gateway, headers, order_id)["outcome"] == "paid"
    assert not receiver.unverified()


def test_a_billing_system_prints_a_bca_va_number_at_creation(gateway, client_with_callbacks):
    headers, receiver = client_with_callbacks
    order_id = new_order("VA")
    created = post_charge(
        gateway.gateway_url, headers, order_id, 150000, payment_type="bank_transfer", bank="bca"
    ).json()
    (va,) = created["va_numbers"]
    assert va["bank"] == "bca" and va["va_number"].isdigit()
    # The details stay available while the invoice waits.
    waiting = status(gateway, headers, order_id)
    assert waiting["va_numbers"] == created["va_numbers"] and waiting["outcome"] == "pending"
    again = post_charge(
        gateway.gateway_url, headers, order_id, 150000, payment_type="bank_transfer", bank="bca"
    )
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == created

    pay_at_simulator(gateway, midtrans_id(gateway, headers, order_id))

    receiver.wait_for(order_id, "settlement")
    assert status(gateway, headers, order_id)["outcome"] == "paid"


def test_a_mandiri_bill_at_creation(gateway, client_with_callbacks):
    headers, receiver = client_with_callbacks
    order_id = new_order("MB")
    created = post_charge(
        gateway.gateway_url,
        headers,
        order_id,
        88000,
        payment_type="echannel",
        bill_info1="Invoice:",
        bill_info2="Hosting",
    ).json()
    assert created["biller_code"] == "70012" and created["bill_key"].isdigit()

    pay_at_simulator(gateway, midtrans_id(gateway, headers, order_id))

    receiver.wait_for(order_id, "settlement")


def card_token(gateway, number: str) -> str:
    """What Midtrans's card JS does in the payer's browser: a token for the card, asked with
    the client key `GET /config` gives."""
    config = requests.get(
        f"{gateway.gateway_url}/config", headers=gateway.headers, timeout=10
    ).json()
    answer = requests.get(
        f"{gateway.simulator_url}/v2/token",
        params={
            "client_key": config["client_key"] or SIMULATOR_CLIENT_KEY,
            "card_number": number,
            "card_exp_month": "12",
            "card_exp_year": str(time.gmtime().tm_year + 1),
            "card_cvv": "123",
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["token_id"]


@pytest.mark.parametrize(
    ("otp", "status_after", "outcome"), [(OTP, "capture", "paid"), ("000000", "deny", "failed")]
)
def test_a_card_with_3ds(gateway, client_with_callbacks, otp, status_after, outcome):
    headers, receiver = client_with_callbacks
    order_id = new_order("CC")
    created = post_charge(
        gateway.gateway_url,
        headers,
        order_id,
        250000,
        payment_type="credit_card",
        token_id=card_token(gateway, "4811111111111114"),
        authentication=True,
    ).json()
    assert created["transaction_status"] == "pending" and created["redirect_url"]

    page = urlparse(created["redirect_url"])
    done = requests.post(
        f"{gateway.simulator_url}{page.path}",
        data={"otp": otp, "action": "authenticate"},
        timeout=10,
    )
    assert done.status_code == 200, done.text

    data = receiver.wait_for(order_id, status_after)
    assert data["outcome"] == outcome
    assert status(gateway, headers, order_id)["outcome"] == outcome


def test_a_reopened_invoice_is_paid_on_its_second_link(gateway, client_with_callbacks):
    headers, receiver = client_with_callbacks
    order_id = new_order("INV")
    first = post_charge(gateway.gateway_url, headers, order_id, 99000).json()
    first_id = midtrans_id(gateway, headers, order_id)
    expired = requests.post(
        f"{gateway.simulator_url}/_sim/transactions/{first_id}/expire", json={}, timeout=10
    )
    assert expired.status_code == 200, expired.text
    receiver.wait_for(order_id, "expire")
    assert status(gateway, headers, order_id)["token"] is None

    second = post_charge(gateway.gateway_url, headers, order_id, 99000).json()

    assert second["token"] != first["token"] and second["expires_at"]
    second_id = midtrans_id(gateway, headers, order_id)
    assert second_id != first_id and second_id.startswith(first_id + "~")
    pay_at_simulator(gateway, second_id)
    receiver.wait_for(order_id, "settlement", after="expire")
    assert status(gateway, headers, order_id)["outcome"] == "paid"
    assert receiver.statuses(order_id) == ["pending", "expire", "pending", "settlement"]
    assert not receiver.unverified()
