"""Issue 15 over real HTTP (gunicorn + the simulator + the worker): a client app runs its own
payments' lifecycle, and its callbacks tell it every step, in order.

- pay -> partial refund -> full refund;
- a card held by the fraud check (challenge) -> approve -> paid;
- a WHMCS-style billing client (examples/whmcs_client.py and .php, as a user would run them):
  an invoice whose link died is reopened, paid on its second link, then refunded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from e2e.servers import hooked_client_app, post_charge
from kit.endpoints import CallbackReceiver

from bench.processes import flask_cli

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[2]


class Client:
    """A client app with a callback URL (a verifying receiver), allowed to refund."""

    def __init__(self, stack, code: str):
        self.stack = stack
        self.receiver = CallbackReceiver()
        client_app, self.worker = hooked_client_app(stack, self.receiver, code)
        self.code, self.headers = code, client_app.headers
        flask_cli(stack.env, stack.workdir, "apps", "allow-refunds", code)

    def charge(self, order_id: str, amount: int, **extra) -> dict:
        return post_charge(self.stack.gateway_url, self.headers, order_id, amount, **extra).json()

    def act(self, order_id: str, action: str, body: dict | None = None, expect: int = 200):
        answer = requests.post(
            f"{self.stack.gateway_url}/transactions/{order_id}/{action}",
            json=body,
            headers=self.headers,
            timeout=30,
        )
        assert answer.status_code == expect, answer.text
        return answer.json()

    def customer(self, order_id: str, action: str, **body) -> None:
        """The customer (or Midtrans) at the simulator's control API."""
        answer = requests.post(
            f"{self.stack.simulator_url}/_sim/transactions/{self.code}-{order_id}/{action}",
            json=body,
            timeout=10,
        )
        assert answer.status_code == 200, answer.text

    def callbacks_until(self, order_id: str, last: str, timeout: float = 20) -> list[str]:
        """The outcomes the app's callbacks told, in order, once `last` arrived (the
        "pending" of the customer choosing a method left out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            told = [e["data"]["outcome"] for e in self.receiver.events(order_id)]
            outcomes = [o for o in told if o != "pending"]
            if outcomes and outcomes[-1] == last:
                return outcomes
            time.sleep(0.1)
        raise AssertionError(f"{order_id}: callbacks {outcomes}, never {last}")

    def close(self) -> None:
        self.worker.stop()
        self.receiver.close()
        assert not self.receiver.unverified(), self.receiver.unverified()


@pytest.fixture(scope="module")
def client(stack):
    running = Client(stack, f"life{int(time.time() * 1000) % 10**8}")
    yield running
    running.close()


def test_pay_then_refund_in_part_then_in_full(client):
    client.charge("ORD-1", 100000)
    client.customer("ORD-1", "pay", payment_type="gopay")
    assert client.callbacks_until("ORD-1", "paid") == ["paid"]

    part = client.act("ORD-1", "refund", {"amount": 30000, "reason": "one item back"})
    assert part["outcome"] == "partially_refunded" and part["refunded_amount"] == 30000
    rest = client.act("ORD-1", "refund", {"reason": "the rest", "refund_key": "rest-1"})
    assert rest["outcome"] == "refunded" and rest["refunded_amount"] == 100000
    again = client.act("ORD-1", "refund", {"reason": "the rest", "refund_key": "rest-1"})
    assert again["refunded_amount"] == 100000  # the same refund: answered, not made twice

    assert client.callbacks_until("ORD-1", "refunded") == [
        "paid",
        "partially_refunded",
        "refunded",
    ]
    record = requests.get(
        f"{client.stack.gateway_url}/transactions/ORD-1", headers=client.headers, timeout=10
    ).json()
    assert [e["to_status"] for e in record["events"]][-2:] == ["partial_refund", "refund"]


def test_a_challenged_card_is_approved_and_paid(client):
    client.charge("ORD-2", 50000)
    client.customer("ORD-2", "pay", payment_type="credit_card", fraud_status="challenge")
    assert client.callbacks_until("ORD-2", "challenge") == ["challenge"]

    approved = client.act("ORD-2", "approve")

    assert approved["outcome"] == "paid" and approved["fraud_status"] == "accept"
    assert client.callbacks_until("ORD-2", "paid") == ["challenge", "paid"]
    assert client.act("ORD-2", "deny", expect=409)["error"]["code"] == "invalid_state"


def test_an_authorized_card_is_captured_for_less_and_paid(client):
    token = requests.get(
        f"{client.stack.simulator_url}/v2/token",
        params={
            "client_key": "SB-Mid-client-simulator",
            "card_number": "4811111111111114",
            "card_exp_month": "12",
            "card_exp_year": "2030",
            "card_cvv": "123",
        },
        timeout=10,
    ).json()["token_id"]
    held = client.charge(
        "HOTEL-1",
        500000,
        payment_type="credit_card",
        token_id=token,
        credit_card={"type": "authorize"},
    )
    assert held["transaction_status"] == "authorize" and held["outcome"] == "authorized"
    assert client.callbacks_until("HOTEL-1", "authorized") == ["authorized"]

    too_much = client.act("HOTEL-1", "capture", {"amount": 500001}, expect=400)
    assert too_much["error"]["details"]["field"] == "amount"
    captured = client.act("HOTEL-1", "capture", {"amount": 420000})  # the final bill

    assert captured["outcome"] == "paid" and captured["amount"] == 420000
    assert client.callbacks_until("HOTEL-1", "paid") == ["authorized", "paid"]
    # A retry of the capture is answered, not made twice; another amount is refused.
    assert client.act("HOTEL-1", "capture", {"amount": 420000})["amount"] == 420000
    assert client.act("HOTEL-1", "capture", {"amount": 400000}, expect=409)["error"]["code"] == (
        "invalid_state"
    )


def test_cancelling_a_link_nobody_opened_stops_it(client):
    client.charge("ORD-3", 25000)
    cancelled = client.act("ORD-3", "cancel")
    assert cancelled["outcome"] == "cancelled"
    assert cancelled["token"] is None and cancelled["redirect_url"] is None


def test_a_cancelled_link_renewed_revokes_the_old_page_and_only_the_new_one_is_paid(client):
    """The payer cannot pay both: the renewal of a link nobody opened uses the same Midtrans
    order id, and Midtrans's new token revokes the old page."""
    first = client.charge("ORD-4", 40000)
    old_page = first["redirect_url"]
    assert requests.get(old_page, timeout=10).status_code == 200
    assert client.act("ORD-4", "cancel")["outcome"] == "cancelled"

    renewed = client.charge("ORD-4", 45000)

    assert renewed["token"] != first["token"]
    assert requests.get(old_page, timeout=10).status_code == 404  # revoked
    assert requests.get(renewed["redirect_url"], timeout=10).status_code == 200
    client.customer("ORD-4", "pay", payment_type="bank_transfer", bank="bca")
    assert client.callbacks_until("ORD-4", "paid") == ["cancelled", "paid"]
    record = requests.get(
        f"{client.stack.gateway_url}/transactions/ORD-4", headers=client.headers, timeout=10
    ).json()
    assert (record["outcome"], record["amount"]) == ("paid", 45000)
    assert [e["to_status"] for e in record["events"]][-2:] == ["pending", "settlement"]


def _example_env(client) -> dict[str, str]:
    return {
        **os.environ,
        "GATEWAY_URL": client.stack.gateway_url,
        "APP_CODE": client.headers["X-App-Code"],
        "API_KEY": client.headers["X-Api-Key"],
    }


def _python_example(client, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "whmcs_client.py"), *args],
        env=_example_env(client),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(done.stdout)


def _php_example(client, *args: str) -> dict:
    php = shutil.which("php")
    done = subprocess.run(
        [php, str(ROOT / "examples" / "whmcs_client.php"), *args],
        env=_example_env(client),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(done.stdout)


def _php_with_curl() -> bool:
    php = shutil.which("php")
    return bool(php) and (
        subprocess.run([php, "-r", 'exit(function_exists("curl_init") ? 0 : 1);']).returncode == 0
    )


@pytest.mark.parametrize("language", ["python", "php"])
def test_a_billing_client_reopens_a_dead_invoice_and_refunds_it(client, language):
    if language == "php" and not _php_with_curl():
        message = "php with the curl extension is not installed (apt-get install php-cli php-curl)"
        if os.environ.get("REQUIRE_PHP"):
            pytest.fail(message)
        pytest.skip(message)
    example = _python_example if language == "python" else _php_example
    invoice = f"WHMCS-{language}-1"

    first = example(client, "pay", invoice, "150000")
    assert first["order_id"] == invoice and first["redirect_url"] and first["expires_at"]
    assert example(client, "pay", invoice, "150000")["token"] == first["token"]  # same link

    client.act(invoice, "expire")  # the invoice went unpaid; the billing system reopens it
    second = example(client, "pay", invoice, "150000")
    assert second["token"] != first["token"] and second["expires_at"]
    client.customer(invoice, "pay", payment_type="qris")  # paid on the second link
    assert client.callbacks_until(invoice, "paid")[-1] == "paid"
    assert example(client, "status", invoice)["outcome"] == "paid"
    assert example(client, "pay", invoice, "150000")["outcome"] == "paid"  # never charged again

    if language == "python":
        refunded = example(client, "refund", invoice, "--amount", "50000", "--key", "cn-1")
    else:
        refunded = example(client, "refund", invoice, "50000", "goodwill", "cn-1")
    assert refunded["outcome"] == "partially_refunded" and refunded["refunded_amount"] == 50000
