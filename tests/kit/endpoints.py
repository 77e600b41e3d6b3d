"""HTTP endpoints on 127.0.0.1 for tests, each served by a thread of this process.

`CallbackReceiver` is a client app's callback URL: it verifies every callback with the
`standardwebhooks` package (as a client app would), keeps each one, and answers what the test
queued (204 otherwise). `LocalServer` is the plain server under it, for other fakes (Midtrans's
status API, an endpoint that takes its time). `SocketServer` is a bare TCP listener, for
endpoints that misbehave below HTTP (drip bytes, cut connections, proxy a database).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Received:
    """One request as it arrived (`at`: time.monotonic() once its body was read), and what
    became of it."""

    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0  # what was answered (0 until then)
    event: dict | None = None  # a verified callback's body
    problem: str | None = None  # why a callback did not verify
    note: str = ""  # what the endpoint chose to do, in the test's words

    @property
    def webhook_id(self) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == "webhook-id"), None)

    def json(self) -> Any:
        return json.loads(self.body)


class LocalServer:
    """An HTTP server on 127.0.0.1: every request (any method) is kept in `requests` and
    answered with `respond(request)`'s (status, headers, body). An answer the client no longer
    waits for is dropped. `down()` closes the socket, `up()` listens again on the same port;
    `close()` also sets `released`, which a slow `respond` waits on."""

    def __init__(
        self,
        respond: Callable[[Received], Answer] | None = None,
        *,
        port: int = 0,
        path: str = "",
    ):
        self._respond = respond
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self.up()
        self.url = self.at(path)

    def respond(self, request: Received) -> Answer:
        return self._respond(request) if self._respond else (204, {}, b"")

    def at(self, path: str) -> str:
        """This server's URL with another path (one server, several endpoints)."""
        return f"http://127.0.0.1:{self.port}{path}"

    def arrived(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Every request so far, once at least `count` have arrived (waiting for them)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
                have = len(self.requests)
            assert time.monotonic() < deadline, f"got {have} requests, wanted {count}"
            time.sleep(0.02)

    def since(self, moment: float) -> list[str]:
        """Paths of the requests that arrived at or after `moment` (time.monotonic())."""
        with self.lock:
            return [r.path for r in self.requests if r.at >= moment]

    def up(self) -> None:
        local = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = Received(
                    time.monotonic(), self.command, self.path, dict(self.headers), body
                )
                with local.lock:
                    local.requests.append(request)
                status, headers, content = local.respond(request)
                request.status = status
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                except OSError:
                    pass  # the gateway stopped waiting: what some tests want

            do_GET = do_POST = _handle

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        self.released.set()
        self.down()


class CallbackReceiver(LocalServer):
    """A client app's callback URL. With `verify` (the default) each callback is checked with
    `standardwebhooks` against `secret` (set it once `apps create` has printed it): one that
    does not verify is kept with its `problem` and answered 400. Otherwise the answer is the
    next of `answers` the test queued (a status, or (status, headers) or (status, headers,
    body)), else 204; `delay` seconds later."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        verify: bool = True,
        path: str = "/updates",
        port: int = 0,
        delay: float = 0.0,
    ):
        self.secret = secret
        self.verify = verify
        self.delay = delay
        self.answers: list[int | tuple] = []
        super().__init__(port=port, path=path)

    @property
    def received(self) -> list[Received]:
        return self.requests

    def respond(self, request: Received) -> Answer:
        if self.verify:
            try:
                if not self.secret:
                    raise ValueError("the receiver has no signing secret")
                request.event = Webhook(self.secret).verify(request.body, request.headers)
            except Exception as err:  # a callback that does not verify is a failure
                request.problem = f"{type(err).__name__}: {err}"
        answer = self.answer(request)
        if isinstance(answer, int):
            answer = (answer, {})
        status, headers, body = (*answer, b"")[:3]
        return status, headers, body

    def answer(self, request: Received) -> int | tuple:
        """The status, or (status, headers[, body]), to answer `request` with (a subclass may
        misbehave)."""
        if request.problem is not None:
            return 400, {}
        if self.delay:
            self.released.wait(self.delay)
        with self.lock:
            return self.answers.pop(0) if self.answers else (204, {})

    def unverified(self) -> list[str]:
        with self.lock:
            return [r.problem for r in self.requests if r.problem is not None]

    def events(self, order_id: str | None = None, *, once: bool = True) -> list[dict]:
        """The verified callbacks (of `order_id`) in the order they arrived; with `once`, one
        per webhook-id (a retry is the same event), where it first arrived."""
        seen: dict[object, dict] = {}
        with self.lock:
            for i, request in enumerate(self.requests):
                event = request.event
                if event is not None and order_id in (None, event["data"]["order_id"]):
                    seen.setdefault(request.webhook_id if once else i, event)
        return list(seen.values())

    def statuses(self, order_id: str, *, once: bool = True) -> list[str]:
        return [e["data"]["transaction_status"] for e in self.events(order_id, once=once)]

    def settled_since(self, moment: float) -> set[str]:
        """Orders of the verified settlement callbacks that arrived at or after `moment`."""
        with self.lock:
            return {
                r.event["data"]["order_id"]
                for r in self.requests
                if r.event is not None
                and r.at >= moment
                and r.event["data"]["transaction_status"] == "settlement"
            }

    def wait_for(
        self, order_id: str, status: str, *, after: str | None = None, timeout: float = 20
    ) -> dict:
        """The data of the order's first callback with `status` (after its first with
        `after`, if given), waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            events = [e["data"] for e in self.events(order_id)]
            if after is not None:
                seen = [e["transaction_status"] for e in events]
                events = events[seen.index(after) + 1 :] if after in seen else []
            for data in events:
                if data["transaction_status"] == status:
                    return data
            assert time.monotonic() < deadline, (
                f"no {status} callback for {order_id}; so far {self.statuses(order_id)}"
            )
            time.sleep(0.1)


class SocketServer:
    """A TCP listener on 127.0.0.1 (or `host`): each connection is counted in `connections`
    as it is accepted, then handed to `serve(conn)` in a thread of its own (by default it is
    closed at once). `close()` stops listening and sets `closed`."""

    def __init__(self, host: str = "127.0.0.1", family: int = socket.AF_INET):
        self.connections = 0
        self.closed = threading.Event()
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.bind((host, 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        conn.close()

    def close(self) -> None:
        self.closed.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress
        except OSError:
            pass
        self.listener.close()
