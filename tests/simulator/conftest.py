"""Fixtures for the simulator's tests: the Flask app and test client, a real HTTP receiver for
notifications, and the simulator running as its own process (`python -m simulator`)."""

import base64
import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from simulator import create_app

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
def wait_until():
    """Poll `condition` until it returns something truthy, which is returned."""

    def wait(condition, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while not (result := condition()):
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.02)
        return result

    return wait


class Receiver:
    """A merchant's notification endpoint: records each POST and answers the next status
    queued in `answers` (200 once they run out), after `delay` seconds."""

    def __init__(self):
        self.received: list[dict] = []
        self.answers: list[int] = []
        self.delay = 0.0
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._changed:
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    receiver.received.append(
                        {
                            "path": self.path,
                            "content_type": self.headers.get("Content-Type"),
                            "body": json.loads(raw),
                            "time": time.monotonic(),
                        }
                    )
                    receiver._changed.notify_all()
                time.sleep(receiver.delay)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, path: str = "/notification") -> str:
        return f"http://127.0.0.1:{self._server.server_port}{path}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict]:
        """Wait until `count` notifications arrived; return all received."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"got {len(self.received)} notifications, wanted {count}"
                self._changed.wait(left)
            return list(self.received)

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def simulator_process(tmp_path_factory):
    """`python -m simulator` on a free port, started once for the session; yields its URL."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("simulator") / "simulator.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "simulator", "--port", str(port), "--server-key", SERVER_KEY],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                requests.get(f"{url}/_sim/config", timeout=1).raise_for_status()
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"simulator did not start:\n{log_path.read_text()}"
                    ) from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def simulator_url(simulator_process):
    """The running simulator, reset to a clean state for this test."""
    requests.post(f"{simulator_process}/_sim/reset", timeout=5).raise_for_status()
    return simulator_process
