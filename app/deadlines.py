"""A whole-call deadline for outbound HTTP: the end of one call (to Midtrans, or one callback
attempt to a client app), enforced on every socket the call uses.

Socket timeouts alone are per operation: a peer dripping a byte a second never trips them, and
a call meant to last 10 s lasts minutes. When a deadline comes, a timer shuts its sockets down,
which ends at once whatever connect, send or read (of the status line, the headers or the body)
is blocked on them. Connections register themselves with the calling thread's deadline
(`watched_pool_classes`), new ones when they connect and kept-alive ones when they are reused.
"""

from __future__ import annotations

import socket
import threading
import time

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_calls = threading.local()  # .deadline: the Deadline of the call this thread is making


class Deadline:
    """The end of one call, `seconds` from now; `close()` when the call is over."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def left(self) -> float:
        return max(0.0, self.ends - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        # A duplicate descriptor of the same connection: shutting it down ends the connection
        # even after TLS has wrapped (and detached) the socket object urllib3 holds. Closing
        # the duplicate later leaves a kept-alive connection open for the next call.
        duplicate = sock.dup()
        with self._lock:
            self._sockets.append(duplicate)
            if self.expired:
                shutdown(duplicate)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                shutdown(sock)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the other side


def current_deadline() -> Deadline | None:
    return getattr(_calls, "deadline", None)


def set_current_deadline(deadline: Deadline | None) -> None:
    _calls.deadline = deadline


def _watched(base):
    class Watched(base):
        """Registers its socket with the calling thread's deadline on every request."""

        def connect(self):
            super().connect()
            self._watch()

        def request(self, *args, **kwargs):
            if self.sock is not None:  # a kept-alive connection, reused for this call
                self._watch()
            return super().request(*args, **kwargs)

        def _watch(self):
            deadline = current_deadline()
            if deadline is not None and self.sock is not None:
                deadline.watch(self.sock)

    return Watched


def watched_pool_classes() -> dict[str, type]:
    """urllib3 pool classes (for `PoolManager.pool_classes_by_scheme`) whose connections
    obey the calling thread's deadline."""
    http = type("WatchedHTTP", (_watched(HTTPConnection),), {})
    https = type("WatchedHTTPS", (_watched(HTTPSConnection),), {})
    return {
        "http": type("WatchedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
        "https": type("WatchedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
    }
