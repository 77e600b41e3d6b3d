"""The whole path with nobody polling: the customer pays (or Midtrans refunds) at the simulator,
the simulator notifies the gateway, the gateway confirms and applies it, and the worker delivers
a signed `transaction.updated` to the client app's callback receiver within seconds."""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from e2e.servers import REPO, SIMULATOR_KEY, flask_cli, spawn
from standardwebhooks import Webhook

pytestmark = pytest.mark.timeout(90)


class Receiver:
    """The client app's callback endpoint: verifies each callback, keeps the bodies."""

    def __init__(self):
        self.events: list[dict] = []
        self.secret: str | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                event = Webhook(receiver.secret).verify(body, dict(self.headers))
                receiver.events.append(event)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/updates"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def statuses(self, order_id: str) -> list[str]:
        return [
            e["data"]["transaction_status"]
            for e in self.events
            if e["data"]["order_id"] == order_id
        ]

    def wait_for(self, order_id: str, status: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while status not in self.statuses(order_id):
            assert time.monotonic() < deadline, f"callbacks so far: {self.statuses(order_id)}"
            time.sleep(0.1)


@pytest.fixture
def client_with_callbacks(gateway):
    receiver = Receiver()
    code = f"cb{int(time.time() * 1000) % 10**8}"
    env = {**gateway.env, "CALLBACK_ALLOWED_HOSTS": "127.0.0.1"}
    output = (
        flask_cli(
            env,
            gateway.workdir,
            "apps",
            "create",
            code,
            "--name",
            "shop with callbacks",
            "--callback-url",
            receiver.url,
        )
        .strip()
        .splitlines()
    )
    receiver.secret = next(line for line in output if line.startswith("Signing secret:"))[16:]
    headers = {"X-App-Code": code, "X-Api-Key": output[-1]}
    worker = spawn(
        f"worker-{code}",
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--interval", "0.2"],
        env={**env, "LOG_LEVEL": "INFO"},
        cwd=REPO,
        log_dir=gateway.workdir,
    )
    yield headers, receiver
    worker.stop()
    receiver.server.shutdown()
    receiver.server.server_close()


def test_a_paid_then_refunded_order_reaches_the_client_without_polling(
    gateway, client_with_callbacks
):
    headers, receiver = client_with_callbacks
    order_id = f"CB-{int(time.time() * 1000)}"
    created = requests.post(
        f"{gateway.gateway_url}/charge",
        json={"order_id": order_id, "amount": 99000},
        headers=headers,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    receiver.wait_for(order_id, "pending")

    midtrans_id = f"{headers['X-App-Code']}-{order_id}"
    paid = requests.post(
        f"{gateway.simulator_url}/_sim/transactions/{midtrans_id}/pay",
        json={"payment_type": "gopay"},
        timeout=10,
    )
    assert paid.status_code == 200, paid.text
    receiver.wait_for(order_id, "settlement")

    auth = "Basic " + base64.b64encode(f"{SIMULATOR_KEY}:".encode()).decode()
    refund = requests.post(
        f"{gateway.simulator_url}/v2/{midtrans_id}/refund",
        json={"refund_key": f"rf-{order_id}", "amount": 99000, "reason": "out of stock"},
        headers={"Authorization": auth},
        timeout=10,
    )
    assert json.loads(refund.text)["status_code"] == "200", refund.text
    receiver.wait_for(order_id, "refund")

    assert receiver.statuses(order_id) == ["pending", "settlement", "refund"]
    settled = next(
        e
        for e in receiver.events
        if e["data"]["order_id"] == order_id and e["data"]["transaction_status"] == "settlement"
    )
    assert settled["type"] == "transaction.updated"
    assert settled["data"]["payment_type"] == "gopay"
    assert "signature_key" not in settled["data"]
