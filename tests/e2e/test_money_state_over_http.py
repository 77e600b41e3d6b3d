"""Issue 11 over real HTTP: what a payment means (`outcome`, amounts, the fee Midtrans's fee
imposition adds) as a client app sees it in `GET /status` and in its verified callbacks, with
the simulator notifying the gateway and the real worker process reconciling and delivering.

- A link the gateway expired itself (the worker found no Midtrans transaction after the link's
  deadline) still takes a late payment: settled, outcome paid, a callback, the order flagged.
- A payment Midtrans's fee imposition made larger than the order (the fee in
  `metadata.extra_info.gross_amount_info`, or at the top level) is paid, never an "amount
  mismatch": the client sees the order's amount, the fee and the original amount apart.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from e2e.servers import SIMULATOR_KEY, hooked_client_app, post_charge
from kit.endpoints import CallbackReceiver
from sqlalchemy import select, update

from app.models import Transaction

pytestmark = pytest.mark.timeout(120)

LATE_PAYMENTS = [
    {"payment_type": "bank_transfer", "bank": "permata"},  # chosen first, paid later
    {"payment_type": "gopay"},
    {"payment_type": "bank_transfer", "bank": "bca"},
    {"payment_type": "bank_transfer", "bank": "bni"},
    {"payment_type": "qris"},
    {"payment_type": "echannel"},
]
FEE = 4440
# What a payment means, beside Midtrans's raw status (SPEC "outcome and amounts").
MONEY = ("outcome", "paid", "amount", "original_amount", "customer_imposed_fee", "refunded_amount")


class Shop:
    """A client app with a callback URL, its receiver, and the gateway's database."""

    def __init__(self, stack, headers: dict[str, str], receiver: CallbackReceiver):
        self.stack = stack
        self.headers = headers
        self.receiver = receiver
        self.engine = stack.db.engine  # as the gateway's own: WAL, busy timeout on SQLite

    def midtrans_id(self, order_id: str) -> str:
        return f"{self.headers['X-App-Code']}-{order_id}"

    def charge(self, order_id: str, amount: int) -> None:
        post_charge(self.stack.gateway_url, self.headers, order_id, amount)

    def status(self, order_id: str) -> dict:
        answer = requests.get(
            f"{self.stack.gateway_url}/status/{order_id}", headers=self.headers, timeout=30
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def simulate(self, order_id: str, action: str, body: dict | None = None) -> dict:
        """The customer (or Midtrans) acting at the simulator's control API."""
        answer = requests.post(
            f"{self.stack.simulator_url}/_sim/transactions/{self.midtrans_id(order_id)}/{action}",
            json=body or {},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def row(self, order_id: str) -> dict:
        table = Transaction.__table__
        with self.engine.begin() as conn:
            found = conn.execute(
                select(table).where(table.c.midtrans_order_id == self.midtrans_id(order_id))
            )
            return dict(found.one()._mapping)

    def age(self, order_id: str, by: timedelta) -> None:
        """Move the order's link into the past, as if it had been created `by` ago, and make
        it due for the worker's next check now."""
        row, table = self.row(order_id), Transaction.__table__
        with self.engine.begin() as conn:
            conn.execute(
                update(table)
                .where(table.c.id == row["id"])
                .values(
                    created_at=row["created_at"] - by,
                    attempt_started_at=row["attempt_started_at"] - by,
                    expires_at=row["expires_at"] - by,
                    next_check_at=datetime.now(UTC) - timedelta(seconds=1),
                )
            )


@pytest.fixture(scope="module")
def shop(stack):
    """An app whose callbacks go to a verifying receiver, and `flask --app wsgi worker`
    (reconciling orders and delivering callbacks every 0.2 s) for the whole module."""
    receiver = CallbackReceiver()
    code = f"money{int(time.time() * 1000) % 10**8}"
    client_app, worker = hooked_client_app(stack, receiver, code, "shop that reads outcomes")
    running = Shop(stack, client_app.headers, receiver)
    yield running
    worker.stop()
    receiver.close()
    assert not receiver.unverified(), receiver.unverified()


@pytest.fixture
def fees(gateway):
    """Switch the simulator's fee imposition; off again afterwards."""

    def switch(rule: dict | None) -> None:
        requests.post(
            f"{gateway.simulator_url}/_sim/config", json={"fee_imposition": rule}, timeout=5
        ).raise_for_status()

    yield switch
    switch(None)


def test_late_payments_after_the_gateway_expired_the_link_are_paid_and_flagged(gateway, shop):
    run = int(time.time() * 1000)
    orders = {f"LATE-{run}-{i}": method for i, method in enumerate(LATE_PAYMENTS)}
    for order_id in orders:
        shop.charge(order_id, 150000)
        shop.receiver.wait_for(order_id, "pending")

    # Nobody chose a payment method and the link's 24 hours are over (the gateway's row is
    # aged; the simulator's Snap order keeps its own clock, so it can still be paid late).
    for order_id in orders:
        shop.age(order_id, timedelta(hours=25))
    for order_id in orders:
        expired = shop.receiver.wait_for(order_id, "expire")
        assert (expired["outcome"], expired["paid"]) == ("expired", False)
        row = shop.row(order_id)
        assert (row["status"], row["status_by_gateway"], row["flag"]) == ("expire", True, None)
        view = shop.status(order_id)  # Midtrans still has no transaction: the gateway's word
        assert (view["transaction_status"], view["outcome"]) == ("expire", "expired")

    # One customer picks a method (Midtrans now has a pending payment: the order reopens,
    # flagged) and pays later; the others pay at once. The simulator notifies the gateway.
    reopened = next(iter(orders))
    shop.simulate(reopened, "choose", orders[reopened])
    reopen = shop.receiver.wait_for(reopened, "pending", after="expire")
    assert (reopen["outcome"], reopen["paid"]) == ("pending", False)
    assert shop.row(reopened)["flag"], "a method chosen after the gateway's expiry is flagged"
    for order_id, method in orders.items():
        shop.simulate(order_id, "pay", method)
    for order_id, method in orders.items():
        paid = shop.receiver.wait_for(order_id, "settlement")
        assert (paid["outcome"], paid["paid"], paid["amount"]) == ("paid", True, 150000)
        assert paid["payment_type"] == method["payment_type"]
        view = shop.status(order_id)
        assert (view["transaction_status"], view["outcome"], view["paid"]) == (
            "settlement",
            "paid",
            True,
        )
        row = shop.row(order_id)
        assert (row["status"], row["status_by_gateway"]) == ("settlement", False)
        if order_id != reopened:
            assert (row["flag"] or "").startswith("paid after the gateway expired it"), row
        else:
            assert row["flag"], row

    time.sleep(1)  # room for a duplicate callback to show up, if the gateway made one
    for order_id in orders:
        late = [("pending", "pending")] if order_id == reopened else []
        assert [
            (e["data"]["transaction_status"], e["data"]["outcome"])
            for e in shop.receiver.events(order_id)
        ] == [("pending", "pending"), ("expire", "expired"), *late, ("settlement", "paid")]
    assert not shop.receiver.unverified(), shop.receiver.unverified()


def test_a_fee_imposed_payment_is_paid_with_the_fee_apart(gateway, shop, fees):
    run = int(time.time() * 1000)
    fees({"fee": FEE, "placement": "metadata"})
    order_id = f"FEE-{run}"
    shop.charge(order_id, 100000)
    shop.simulate(order_id, "pay", {"payment_type": "gopay"})

    paid = shop.receiver.wait_for(order_id, "settlement")
    view = shop.status(order_id)
    for seen in (paid, view):
        assert seen["gross_amount"] == "104440.00"  # Midtrans's figure, fee included
        assert {k: seen.get(k) for k in MONEY} == {
            "outcome": "paid",
            "paid": True,
            "amount": 100000,
            "original_amount": 100000,
            "customer_imposed_fee": FEE,
            "refunded_amount": 0,
        }
    assert shop.row(order_id)["flag"] is None
    assert [e["data"]["outcome"] for e in shop.receiver.events(order_id)] == ["pending", "paid"]

    # With the fee switched off, a payment carries no fee fields at all.
    fees(None)
    plain = f"PLAIN-{run}"
    shop.charge(plain, 100000)
    shop.simulate(plain, "pay", {"payment_type": "gopay"})
    paid = shop.receiver.wait_for(plain, "settlement")
    assert (paid["outcome"], paid["gross_amount"], paid["amount"]) == ("paid", "100000.00", 100000)
    assert "customer_imposed_fee" not in paid and "original_amount" not in paid
    assert not shop.receiver.unverified(), shop.receiver.unverified()


def test_an_orders_own_fee_at_the_top_level_is_paid_then_refunded_in_full(gateway, shop, fees):
    run = int(time.time() * 1000)
    fees({"percent": 2})  # the global rule, which the order's own beats
    order_id = f"TOPFEE-{run}"
    shop.charge(order_id, 250000)
    shop.simulate(
        order_id,
        "pay",
        {
            "payment_type": "bank_transfer",
            "bank": "bri",
            "fee_imposition": {"fee": 2500, "placement": "top"},
        },
    )

    paid = shop.receiver.wait_for(order_id, "settlement")
    view = shop.status(order_id)
    for seen in (paid, view):
        assert seen["gross_amount"] == "252500.00"
        assert {k: seen.get(k) for k in MONEY} == {
            "outcome": "paid",
            "paid": True,
            "amount": 250000,
            "original_amount": 250000,
            "customer_imposed_fee": 2500,
            "refunded_amount": 0,
        }

    # Midtrans refunds everything the payer paid, the fee included (a VA only with the
    # simulator's switch: Midtrans's API refunds no bank transfer).
    requests.post(
        f"{gateway.simulator_url}/_sim/config", json={"refund_any_method": True}, timeout=5
    )
    refund = requests.post(
        f"{gateway.simulator_url}/v2/{shop.midtrans_id(order_id)}/refund",
        json={"refund_key": f"rf-{order_id}", "reason": "cancelled order"},
        auth=(SIMULATOR_KEY, ""),
        timeout=10,
    ).json()
    assert (refund["status_code"], refund["refund_amount"]) == ("200", "252500.00"), refund
    refunded = shop.receiver.wait_for(order_id, "refund")
    assert {k: refunded.get(k) for k in MONEY} == {
        "outcome": "refunded",
        "paid": False,
        "amount": 250000,
        "original_amount": 250000,
        "customer_imposed_fee": 2500,
        "refunded_amount": 252500,
    }
    assert shop.status(order_id)["outcome"] == "refunded"
    assert shop.row(order_id)["flag"] is None
    assert [e["data"]["outcome"] for e in shop.receiver.events(order_id)] == [
        "pending",
        "paid",
        "refunded",
    ]
    assert not shop.receiver.unverified(), shop.receiver.unverified()
