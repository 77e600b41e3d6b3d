"""A whole-call deadline for outbound HTTP: the end of one call (to Midtrans, or one callback
attempt to a client app), enforced on every socket the call uses.

Socket timeouts alone are per operation: a peer dripping a byte a second never trips them, and
a call meant to last 10 s lasts minutes. When a deadline comes, a timer shuts its sockets down,
which ends at once whatever connect, send or read (of the status line, the headers or the body)
is blocked on them. Connections register themselves with the calling thread's deadline
(`watched_pool_classes`), new ones when they connect and kept-alive ones when they are reused,
and leave it when they go back to their pool: a connection another thread takes next is never
shut down by the deadline of the call that used it before.
"""

from __future__ import annotations

import heapq
import os
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
        self.closed = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        _reaper.add(self)

    def left(self) -> float:
        return max(0.0, self.ends - time.monotonic())

    def watch(self, sock: socket.socket) -> socket.socket:
        """Shut `sock` down when the deadline comes; the duplicate watched (for `forget`)."""
        # A duplicate descriptor of the same connection: shutting it down ends the connection
        # even after TLS has wrapped (and detached) the socket object urllib3 holds. Closing
        # the duplicate later leaves a kept-alive connection open for the next call.
        duplicate = sock.dup()
        with self._lock:
            self._sockets.append(duplicate)
            if self.expired:
                shutdown(duplicate)
        return duplicate

    def forget(self, duplicate: socket.socket) -> None:
        """Stop watching a connection (it goes back to its pool for another call)."""
        with self._lock:
            if duplicate in self._sockets:
                self._sockets.remove(duplicate)
                duplicate.close()

    def expire(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.expired = True
            for sock in self._sockets:
                shutdown(sock)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


class _Reaper:
    """One thread per process that expires deadlines when they come (a thread per call cost
    about 0.3 ms on every call to Midtrans). Started on first use, and again in a process
    forked from one that had it (gunicorn's workers): threads do not survive a fork."""

    def __init__(self):
        self._pid = None
        self._wake = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._count = 0

    def reset_after_fork(self) -> None:
        # A lock held by another thread at the fork would never be released in the child.
        self._pid, self._wake, self._heap = None, threading.Condition(), []

    def add(self, deadline: Deadline) -> None:
        with self._wake:
            if self._pid != os.getpid():
                self._pid, self._heap = os.getpid(), []
                threading.Thread(target=self._run, name="deadlines", daemon=True).start()
            self._count += 1
            heapq.heappush(self._heap, (deadline.ends, self._count, deadline))
            if self._heap[0][2] is deadline:
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][2].closed:
                    heapq.heappop(self._heap)  # ended in time: nothing to do
                if not self._heap:
                    self._wake.wait()
                    continue
                ends, _, deadline = self._heap[0]
                wait = ends - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._heap)
            deadline.expire()


_reaper = _Reaper()
os.register_at_fork(after_in_child=_reaper.reset_after_fork)


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
        """Registers its socket with the calling thread's deadline on every request, and
        leaves it (`unwatch`) when it goes back to its pool."""

        _watched_by: tuple[Deadline, socket.socket] | None = None

        def connect(self):
            super().connect()
            self._watch()

        def request(self, *args, **kwargs):
            if self.sock is not None:  # a kept-alive connection, reused for this call
                self._watch()
            return super().request(*args, **kwargs)

        def _watch(self):
            deadline = current_deadline()
            if deadline is None or self.sock is None:
                return
            if self._watched_by is not None:
                if self._watched_by[0] is deadline:
                    return  # connected for this call, then sent on (HTTPS)
                self.unwatch()
            self._watched_by = (deadline, deadline.watch(self.sock))

        def unwatch(self):
            if self._watched_by is not None:
                deadline, duplicate = self._watched_by
                self._watched_by = None
                deadline.forget(duplicate)

    return Watched


def _watched_pool(base):
    class WatchedPool(base):
        def _put_conn(self, conn):
            # Before another thread can take it: from here on only its next call's deadline
            # may shut it down. (One the deadline already shut down is found dropped and
            # replaced by urllib3 when it is next taken.)
            if conn is not None:
                conn.unwatch()
            super()._put_conn(conn)

    return WatchedPool


def watched_pool_classes() -> dict[str, type]:
    """urllib3 pool classes (for `PoolManager.pool_classes_by_scheme`) whose connections
    obey the calling thread's deadline."""
    http = type("WatchedHTTP", (_watched(HTTPConnection),), {})
    https = type("WatchedHTTPS", (_watched(HTTPSConnection),), {})
    return {
        "http": type(
            "WatchedHTTPPool", (_watched_pool(HTTPConnectionPool),), {"ConnectionCls": http}
        ),
        "https": type(
            "WatchedHTTPSPool", (_watched_pool(HTTPSConnectionPool),), {"ConnectionCls": https}
        ),
    }
