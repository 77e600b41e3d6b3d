"""MIDTRANS_TIMEOUT bounds a whole call to Midtrans, not each socket read: Midtrans answering a
byte at a time cannot hold a /charge, a /status or the worker. Kept-alive connections are
still reused between calls. Real HTTP against a server on 127.0.0.1."""

from __future__ import annotations

import time

import pytest
from kit.endpoints import SocketServer

from app.errors import MidtransTimeoutError
from app.services import gateway

ANSWER = b'{"status_code": "404", "status_message": "Transaction doesn\'t exist."}'


class Server(SocketServer):
    """Answers every request on 127.0.0.1, at once or dripping `drip` seconds per byte."""

    def __init__(self, drip: float | None = None, drip_headers: bool = False):
        self.drip, self.drip_headers = drip, drip_headers
        super().__init__()

    def serve(self, conn):
        with conn:
            try:
                while conn.recv(65536):
                    head = (
                        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(ANSWER)
                    )
                    if self.drip is None:
                        conn.sendall(head + ANSWER)
                        continue
                    if not self.drip_headers:
                        conn.sendall(head)
                    for byte in (head if self.drip_headers else b"") + ANSWER:
                        conn.sendall(bytes([byte]))
                        time.sleep(self.drip)
            except OSError:
                pass


@pytest.fixture
def server(request):
    s = Server(*getattr(request, "param", ()))
    yield s
    s.close()


@pytest.fixture
def env(env, server):
    env["MIDTRANS_API_BASE_URL"] = f"http://127.0.0.1:{server.port}"
    env["MIDTRANS_TIMEOUT"] = "1"
    return env


@pytest.mark.parametrize(
    "server", [(0.05, False), (0.05, True)], ids=["body", "headers"], indirect=True
)
def test_an_answer_dripping_past_the_timeout_is_cut_at_the_timeout(app, server, midtrans):
    client = gateway(app).midtrans
    started = time.monotonic()
    with pytest.raises(MidtransTimeoutError):
        client.get_status("DRIP-1")  # the whole answer would take 3 to 6 s
    assert time.monotonic() - started < 1.8


def test_kept_alive_connections_are_reused_between_calls(app, server, midtrans):
    client = gateway(app).midtrans
    for _ in range(5):
        assert client.get_status("FAST-1") is None  # Midtrans's 404: no transaction
    assert server.connections == 1


def test_a_shorter_timeout_for_one_call_is_a_whole_call_deadline_too(app, midtrans):
    slow = Server(drip=0.05)
    try:
        client = gateway(app).midtrans
        client.settings = type(client.settings)(
            **{**client.settings.__dict__, "api_base_url": f"http://127.0.0.1:{slow.port}"}
        )
        started = time.monotonic()
        with pytest.raises(MidtransTimeoutError):
            client.get_status("DRIP-2", timeout=0.5)
        assert time.monotonic() - started < 1.2
    finally:
        slow.close()
