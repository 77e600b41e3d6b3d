"""The whole path with nobody polling: the customer pays (or Midtrans refunds) at the simulator,
the simulator notifies the gateway, the gateway confirms and applies it, and the worker delivers
a signed `transaction.updated` to the client app's callback receiver within seconds."""

from __future__ import annotations

import base64
import json
import time

import pytest
import requests
from e2e.servers import SIMULATOR_KEY, post_charge

pytestmark = pytest.mark.timeout(90)


def test_a_paid_then_refunded_order_reaches_the_client_without_polling(
    gateway, client_with_callbacks
):
    headers, receiver = client_with_callbacks
    order_id = f"CB-{int(time.time() * 1000)}"
    post_charge(gateway.gateway_url, headers, order_id, 99000)
    receiver.wait_for(order_id, "pending", timeout=15)

    midtrans_id = f"{headers['X-App-Code']}-{order_id}"
    paid = requests.post(
        f"{gateway.simulator_url}/_sim/transactions/{midtrans_id}/pay",
        json={"payment_type": "gopay"},
        timeout=10,
    )
    assert paid.status_code == 200, paid.text
    receiver.wait_for(order_id, "settlement", timeout=15)

    auth = "Basic " + base64.b64encode(f"{SIMULATOR_KEY}:".encode()).decode()
    refund = requests.post(
        f"{gateway.simulator_url}/v2/{midtrans_id}/refund",
        json={"refund_key": f"rf-{order_id}", "amount": 99000, "reason": "out of stock"},
        headers={"Authorization": auth},
        timeout=10,
    )
    assert json.loads(refund.text)["status_code"] == "200", refund.text
    receiver.wait_for(order_id, "refund", timeout=15)

    assert not receiver.unverified()
    assert receiver.statuses(order_id, once=False) == ["pending", "settlement", "refund"]
    settled = next(
        e
        for e in receiver.events(order_id, once=False)
        if e["data"]["transaction_status"] == "settlement"
    )
    assert settled["type"] == "transaction.updated"
    assert settled["data"]["payment_type"] == "gopay"
    assert "signature_key" not in settled["data"]
