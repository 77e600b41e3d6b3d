"""The gateway reaches Midtrans over kept-alive connections shared by every thread of a process,
each call over within MIDTRANS_TIMEOUT whatever Midtrans does, and its failures are the errors
the gateway has always answered with. Real HTTP against servers on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import urllib3
from kit.endpoints import SocketServer

from app.deadlines import Deadline, set_current_deadline, watched_pool_classes
from app.errors import MidtransTimeoutError, MidtransUnavailableError
from app.services import gateway


class Midtrans(SocketServer):
    """Midtrans's status API over HTTP/1.1 with keep-alive: each connection is counted when
    accepted and answers every request on it with the status of the order in its path. From
    the `drip_from`-th request on (counted over all connections) the answer comes a byte
    every `drip` seconds; `silent` answers nothing at all."""

    def __init__(self, *, drip: float = 0.0, drip_from: int = 0, silent: bool = False):
        self.drip, self.drip_from, self.silent = drip, drip_from, silent
        self.served = 0
        self.lock = threading.Lock()
        super().__init__()

    def serve(self, conn):
        with conn:
            buffered = b""
            try:
                while True:
                    while b"\r\n\r\n" not in buffered:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buffered += chunk
                    head, _, buffered = buffered.partition(b"\r\n\r\n")
                    lines = head.decode("latin-1").split("\r\n")
                    length = next(
                        (
                            int(h.split(":")[1])
                            for h in lines
                            if h.lower().startswith("content-length")
                        ),
                        0,
                    )
                    while len(buffered) < length:
                        buffered += conn.recv(65536)
                    buffered = buffered[length:]
                    with self.lock:
                        self.served += 1
                        number = self.served
                    if self.silent:
                        self.closed.wait(30)
                        return
                    self.answer(conn, lines[0].split(" ")[1], dripping=0 < self.drip_from <= number)
            except OSError:
                pass

    def answer(self, conn, path, *, dripping):
        order_id = path.split("/")[2]
        body = json.dumps(
            {
                "status_code": "200",
                "transaction_status": "settlement",
                "order_id": order_id,
                "transaction_id": f"trx-{order_id}",
                "gross_amount": "10000.00",
            }
        ).encode()
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        if not dripping:
            conn.sendall(head % len(body) + body)
            return
        conn.sendall(head % len(body))
        for byte in body:
            conn.sendall(bytes([byte]))
            time.sleep(self.drip)


@pytest.fixture
def upstream(request):
    server = Midtrans(**getattr(request, "param", {}))
    yield server
    server.close()


@pytest.fixture
def env(env, upstream):
    env["MIDTRANS_API_BASE_URL"] = f"http://127.0.0.1:{upstream.port}"
    env["MIDTRANS_TIMEOUT"] = "1"
    return env


def test_calls_from_one_thread_then_another_share_one_kept_alive_connection(app, upstream):
    midtrans = gateway(app).midtrans
    for order_id in ("A-1", "A-2", "A-3"):
        assert midtrans.get_status(order_id)["order_id"] == order_id
    with ThreadPoolExecutor(max_workers=1) as other_thread:
        assert other_thread.submit(midtrans.get_status, "B-1").result()["order_id"] == "B-1"
    # The notification endpoint's shorter timeout uses the same pool.
    assert midtrans.get_status("C-1", timeout=0.5)["order_id"] == "C-1"
    assert upstream.served == 5
    assert upstream.connections == 1


def test_many_threads_at_once_each_get_their_own_answer_over_a_bounded_set_of_connections(
    app, upstream
):
    midtrans = gateway(app).midtrans
    start = threading.Barrier(16)

    def ask(n: int) -> list[str]:
        start.wait()
        return [midtrans.get_status(f"T{n}-{i}")["order_id"] for i in range(20)]

    with ThreadPoolExecutor(max_workers=16) as threads:
        answers = list(threads.map(ask, range(16)))

    assert answers == [[f"T{n}-{i}" for i in range(20)] for n in range(16)]
    assert upstream.served == 320
    assert upstream.connections <= 16
    # All kept: another burst opens no connection.
    before = upstream.connections
    with ThreadPoolExecutor(max_workers=16) as threads:
        list(threads.map(lambda n: midtrans.get_status(f"U{n}"), range(16)))
    assert upstream.connections == before


@pytest.mark.parametrize("upstream", [{"drip": 0.05, "drip_from": 2}], indirect=True)
def test_an_answer_dripping_on_a_kept_alive_connection_is_cut_at_the_timeout(app, upstream):
    midtrans = gateway(app).midtrans
    assert midtrans.get_status("FAST-1")["order_id"] == "FAST-1"
    started = time.monotonic()
    with pytest.raises(MidtransTimeoutError) as raised:
        midtrans.get_status("DRIP-1")  # the whole answer would take about 7 s
    assert time.monotonic() - started < 1.8
    assert raised.value.message == "Midtrans did not answer within 1 seconds"
    assert upstream.connections == 1  # the dripping answer came on the kept-alive connection


@pytest.mark.parametrize("upstream", [{"silent": True}], indirect=True)
def test_midtrans_not_answering_is_a_timeout_error(app, upstream):
    started = time.monotonic()
    with pytest.raises(MidtransTimeoutError):
        gateway(app).midtrans.get_status("SILENT-1")
    assert time.monotonic() - started < 1.8


def test_midtrans_unreachable_is_an_unavailable_error_without_the_server_key(app, upstream):
    upstream.close()
    with pytest.raises(MidtransUnavailableError) as raised:
        gateway(app).midtrans.get_status("DOWN-1")
    assert raised.value.message == "could not connect to Midtrans"
    assert not isinstance(raised.value, MidtransTimeoutError)
    assert gateway(app).midtrans.settings.server_key not in repr(raised.value.__dict__)


def test_a_connection_back_in_its_pool_is_out_of_reach_of_the_deadline_of_the_call_that_used_it(
    upstream,
):
    """The call is over and its connection is back in the pool (another thread may take it)
    when the call's deadline comes: the connection stays open."""
    pools = urllib3.PoolManager()
    pools.pool_classes_by_scheme = watched_pool_classes()
    url = f"http://127.0.0.1:{upstream.port}/v2/ORDER-1/status"
    deadline = Deadline(30)
    set_current_deadline(deadline)
    try:
        assert pools.request("GET", url, retries=False).json()["order_id"] == "ORDER-1"
    finally:
        set_current_deadline(None)
    deadline.expire()
    deadline.close()
    assert pools.request("GET", url, retries=False).json()["order_id"] == "ORDER-1"
    assert upstream.connections == 1


@pytest.mark.parametrize(
    "method, url, params, data, headers",
    [
        ("get", "https://api.sandbox.midtrans.com/v2/shop-O-1~x_y.z/status", {}, None, {}),
        ("get", "http://127.0.0.1:5001/v2/an order;id%2F/status", {}, None, {}),
        ("get", "HTTPS://API.Example.com/v2/O-1/status", {"a": "1"}, None, {}),
        ("post", "https://api.sandbox.midtrans.com/v2/O-1/cancel", None, "{}", {}),
        (
            "post",
            "https://app.sandbox.midtrans.com/snap/v1/transactions",
            None,
            '{"transaction_details": {"order_id": "O-1", "gross_amount": 10000}}',
            {"X-Override-Notification": "https://pay.example.com/notification"},
        ),
        ("post", "https://api.sandbox.midtrans.com/v2/O-1/approve", None, None, {}),
    ],
)
def test_the_request_sent_is_the_one_requests_would_send(method, url, params, data, headers):
    """What midtransclient passes (its own headers on top), prepared by the transport and by
    `requests.Session`: the same method, URL, headers and body on the wire."""
    from app.midtrans_transport import _prepare

    sent = {
        "content-type": "application/json",
        "accept": "application/json",
        "user-agent": "midtransclient-python/1.4.2",
        **headers,
    }
    auth = requests.auth.HTTPBasicAuth("SB-Mid-server-key", "")
    ours = _prepare(method, url, params, data, sent, auth)
    theirs = requests.Session().prepare_request(
        requests.Request(method, url, params=params, data=data, headers=sent, auth=auth)
    )
    assert (ours.method, ours.url, ours.body) == (theirs.method, theirs.url, theirs.body)
    assert dict(ours.headers) == dict(theirs.headers)
    assert _prepare(method, url, params, data, sent, auth).headers == theirs.headers  # again
