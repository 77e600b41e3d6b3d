"""Fixtures for the simulator's tests: the Flask app and test client, a real HTTP receiver for
notifications, and the simulator running as its own process (`python -m simulator`)."""

import base64
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests
from kit.endpoints import CallbackReceiver

from bench.processes import clean_env, free_port, spawn, wait_until_ready
from simulator import create_app
from simulator.settings import DEFAULT_CLIENT_KEY
from simulator.transactions import WIB

SERVER_KEY = "SB-Mid-server-simtest"
REPO = Path(__file__).resolve().parents[2]


def basic_auth(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@pytest.fixture
def server_key() -> str:
    return SERVER_KEY


@pytest.fixture
def auth(server_key) -> dict[str, str]:
    return basic_auth(server_key)


@pytest.fixture
def app():
    return create_app({"SERVER_KEY": SERVER_KEY})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def snap_order(client, auth):
    """Create a Snap order through the API: `snap_order("ORDER-1", 150000, headers={...})`."""

    def create(order_id: str, amount: int = 150000, *, headers=None, **extra) -> dict:
        body = {"transaction_details": {"order_id": order_id, "gross_amount": amount}, **extra}
        answer = client.post(
            "/snap/v1/transactions", json=body, headers={**auth, **(headers or {})}
        )
        assert answer.status_code == 201, answer.json
        return answer.json

    return create


@pytest.fixture
def card_token(client):
    """A card token from GET /v2/token, as the payer's browser gets it with the client key:
    `card_token()` (a card that pays), `card_token("4111111111111111")` (another test card)."""

    def token(number: str = "4811111111111114") -> str:
        answer = client.get(
            "/v2/token",
            query_string={
                "client_key": DEFAULT_CLIENT_KEY,
                "card_number": number,
                "card_exp_month": "12",
                "card_exp_year": str(datetime.now(WIB).year + 1),
                "card_cvv": "123",
            },
        )
        assert answer.status_code == 200, answer.json
        return answer.json["token_id"]

    return token


@pytest.fixture
def wait_until():
    """Poll `condition` until it returns something truthy, which is returned."""

    def wait(condition, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while not (result := condition()):
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.02)
        return result

    return wait


@pytest.fixture
def receiver(served):
    """A merchant's notification endpoint (`kit.endpoints.CallbackReceiver`, unverified: these
    are Midtrans's notifications): it keeps each POST and answers the statuses queued in
    `answers`, then 204, after `delay` seconds. `url` is its /notification, `at(path)` another
    path on it, `arrived(count)` waits for that many."""
    return served(CallbackReceiver(verify=False, path="/notification"))


@pytest.fixture(scope="session")
def simulator_process(tmp_path_factory):
    """`python -m simulator` (its own command line, as README runs it) on a free port, started
    once for the session with `bench.processes`; yields its URL."""
    port = free_port()
    argv = [sys.executable, "-m", "simulator", "--port", str(port), "--server-key", SERVER_KEY]
    log_dir = tmp_path_factory.mktemp("simulator")
    process = spawn("simulator", argv, env=clean_env(), cwd=REPO, log_dir=log_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, f"{url}/_sim/config", timeout=15)
        yield url
    finally:
        process.stop(timeout=5)


@pytest.fixture
def simulator_url(simulator_process):
    """The running simulator, reset to a clean state for this test."""
    requests.post(f"{simulator_process}/_sim/reset", timeout=5).raise_for_status()
    return simulator_process
