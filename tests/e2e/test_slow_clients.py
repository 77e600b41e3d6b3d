"""Slow clients against the gateway under the shipped gunicorn.conf.py (gthread).

gthread gives each connection to a thread that reads the request with no time limit, so
clients dripping header bytes used to hold every thread and /healthz went unanswered.
gunicorn.conf.py makes the worker's event loop read the request instead (headers, and a body
of up to 64 KiB), with no thread, and drops a client that has not sent it within
REQUEST_READ_TIMEOUT. These tests check both, and that ordinary HTTP/1.1 (kept-alive,
pipelined, split across packets, Expect: 100-continue) works as before.
"""

from __future__ import annotations

import re
import socket
import time
from urllib.parse import urlsplit

import requests
from e2e.servers import REPO

SLOW_CLIENTS = 100  # the e2e gateway has 2 workers x 8 threads: 16 threads in all
REQUEST_READ_TIMEOUT = float(
    re.search(
        r"^REQUEST_READ_TIMEOUT = ([0-9.]+)$", (REPO / "gunicorn.conf.py").read_text(), re.M
    ).group(1)
)


def address(gateway) -> tuple[str, int]:
    parts = urlsplit(gateway.gateway_url)
    return parts.hostname, parts.port


def exchange(gateway, *chunks: bytes, pause: float = 0.0, wait: float = 5.0) -> bytes:
    """Send raw bytes (pausing between chunks); everything answered until the server closes."""
    with socket.create_connection(address(gateway), timeout=wait) as conn:
        for chunk in chunks:
            conn.sendall(chunk)
            time.sleep(pause)
        answer = b""
        while data := conn.recv(65536):
            answer += data
    return answer


def closed_by_server(conn: socket.socket) -> bool:
    conn.settimeout(2)
    try:
        return conn.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_slow_header_clients_do_not_stop_healthz(gateway):
    slow = []
    try:
        for n in range(SLOW_CLIENTS):  # half of them drip headers, half a body
            conn = socket.create_connection(address(gateway), timeout=5)
            if n % 2:
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n")
            else:
                conn.sendall(
                    b"POST /notification HTTP/1.1\r\nHost: gateway\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
                )
            slow.append(conn)
        started = time.monotonic()
        latencies, next_drip = [], started
        while time.monotonic() < started + REQUEST_READ_TIMEOUT + 3:
            if time.monotonic() >= next_drip:  # one more byte from each, every second
                for conn in slow:
                    try:
                        conn.send(b"X")
                    except OSError:
                        pass  # already dropped by the gateway
                next_drip += 1.0
            sent = time.monotonic()
            answer = requests.get(f"{gateway.gateway_url}/healthz", timeout=3)
            latencies.append(time.monotonic() - sent)
            assert answer.status_code == 200
            time.sleep(0.25)
        # Measured at 2 to 20 ms on a 2-core machine; 100 slow clients used to leave it
        # unanswered.
        assert len(latencies) >= 20 and max(latencies) < 1.0, latencies
        assert sum(closed_by_server(conn) for conn in slow) == SLOW_CLIENTS
    finally:
        for conn in slow:
            conn.close()


def test_a_client_silent_after_connecting_is_dropped(gateway):
    with socket.create_connection(address(gateway), timeout=REQUEST_READ_TIMEOUT + 5) as conn:
        started = time.monotonic()
        assert conn.recv(1) == b""
        assert REQUEST_READ_TIMEOUT - 1 <= time.monotonic() - started <= REQUEST_READ_TIMEOUT + 3


def test_headers_split_over_several_packets_are_served(gateway):
    answer = exchange(
        gateway,
        b"GET /healthz HTTP/1.1\r\n",
        b"Host: gateway\r\nX-Request-ID: split-1\r\n",
        b"Connection: close\r\n\r\n",
        pause=0.3,
    )
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"split-1" in answer


def test_a_body_sent_after_the_headers_is_read(gateway):
    answer = exchange(
        gateway,
        b"POST /notification HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\nConnection: close\r\n\r\n",
        b"{}",
        pause=0.5,
    )
    assert answer.startswith(b"HTTP/1.1 400 ")  # the body arrived: a malformed notification
    assert b"order_id is missing" in answer


def test_expect_100_continue_is_answered_before_the_body(gateway):
    with socket.create_connection(address(gateway), timeout=5) as conn:
        conn.sendall(
            b"POST /notification HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        assert conn.recv(25).startswith(b"HTTP/1.1 100 Continue")
        conn.sendall(b"{}")
        answer = b""
        while data := conn.recv(65536):
            answer += data
    assert b"HTTP/1.1 400 " in answer and b"order_id is missing" in answer


def test_kept_alive_and_pipelined_requests_are_served(gateway):
    with requests.Session() as session:
        answers = [session.get(f"{gateway.gateway_url}/healthz", timeout=5) for _ in range(20)]
    assert {a.status_code for a in answers} == {200}
    two = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"
    answer = exchange(gateway, two + two.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    assert answer.count(b"HTTP/1.1 200 ") == 2


def test_oversized_or_malformed_headers_are_refused_at_once(gateway):
    huge = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"a" * 1000) for n in range(40))
    started = time.monotonic()
    assert exchange(gateway, b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n" + huge).startswith(
        b"HTTP/1.1 431 "
    )
    many = b"".join(b"X-%d: a\r\n" % n for n in range(60)) + b"\r\n"
    assert exchange(gateway, b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n" + many).startswith(
        b"HTTP/1.1 431 "
    )
    bare_lf = b"GET /healthz HTTP/1.1\nHost: gateway\n\n"
    assert exchange(gateway, bare_lf).startswith(b"HTTP/1.1 400 ")
    assert time.monotonic() - started < 3
