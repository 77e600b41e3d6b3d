"""HTTP notifications: a delivery queue worked by background threads, retried like Midtrans.

Midtrans retries a notification that did not get a 2xx answer: once after a 500, 4 times after
a 503, twice after a 400 or 404, and 5 times after anything else (another status, a refused
connection, a timeout), the waits growing to about 6 hours in all. `time_factor` scales
those waits so a test can run the whole policy in seconds.

Notifications of one order always go through the same worker, so they leave in the order the
state changed, unless the `reorder` switch holds them back and releases them reversed.
"""

import dataclasses
import heapq
import itertools
import threading
import time
from collections import deque
from datetime import datetime

import requests

from .settings import Settings
from .transactions import WIB

RETRIES_BY_STATUS = {500: 1, 503: 4, 400: 2, 404: 2}
RETRIES_OTHERWISE = 5
RETRY_WAITS = (60, 300, 1800, 5400, 14400)  # seconds before retry 1..5: 6.1 hours in all
TIMEOUT = 15  # seconds Midtrans waits for a notification's answer
WORKERS = 8
LOG_SIZE = 10_000


@dataclasses.dataclass(frozen=True)
class Delivery:
    order_id: str
    url: str
    body: dict
    attempt: int = 1


def retries_allowed(status: int | None) -> int:
    """How many retries follow a failed first attempt answered with `status` (None: no answer)."""
    return RETRIES_BY_STATUS.get(status, RETRIES_OTHERWISE)


class Notifier:
    """Never blocks the caller: `notify` only queues; threads start on the first notification."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._queues = [_Queue() for _ in range(WORKERS)]
        self._timers: list[tuple[float, int, Delivery]] = []
        self._timers_changed = threading.Condition()
        self._sequence = itertools.count()
        self._held: dict[str, list[Delivery]] = {}
        self._lock = threading.Lock()
        self._log: deque[dict] = deque(maxlen=LOG_SIZE)
        self._started = False
        self._local = threading.local()

    def notify(self, order_id: str, urls: list[str], body: dict, *, final: bool) -> None:
        """Queue `body` for every URL; with `reorder` on, hold an order's notifications until
        its `final` one, then send them newest first."""
        copies = 2 if self._settings.duplicate else 1
        deliveries = [Delivery(order_id, url, body) for url in urls for _ in range(copies)]
        if not deliveries:
            return
        with self._lock:
            if self._settings.reorder:
                self._held.setdefault(order_id, []).extend(deliveries)
                if not final:
                    return
                deliveries = self._held.pop(order_id)[::-1]
            self._dispatch(deliveries)

    def release_held(self) -> None:
        """Send everything `reorder` still holds (newest first), as when it is switched off."""
        with self._lock:
            held, self._held = self._held, {}
            for deliveries in held.values():
                self._dispatch(deliveries[::-1])

    def log(self) -> list[dict]:
        with self._lock:
            return list(self._log)

    def reset(self) -> None:
        with self._lock:
            self._held.clear()
            self._log.clear()
            for worker_queue in self._queues:
                worker_queue.clear()
        with self._timers_changed:
            self._timers.clear()

    def _dispatch(self, deliveries: list[Delivery]) -> None:
        if not self._started:
            self._start()
        for delivery in deliveries:
            self._queues[hash(delivery.order_id) % WORKERS].put(delivery)

    def _start(self) -> None:
        self._started = True
        for worker_queue in self._queues:
            threading.Thread(target=self._work, args=(worker_queue,), daemon=True).start()
        threading.Thread(target=self._schedule, daemon=True).start()

    def _work(self, worker_queue: "_Queue") -> None:
        while True:
            delivery = worker_queue.get()
            status = self._send(delivery)
            if status is not None and 200 <= status < 300:
                continue
            if delivery.attempt <= retries_allowed(status):
                wait = RETRY_WAITS[delivery.attempt - 1] * self._settings.time_factor
                retry = dataclasses.replace(delivery, attempt=delivery.attempt + 1)
                with self._timers_changed:
                    heapq.heappush(
                        self._timers, (time.monotonic() + wait, next(self._sequence), retry)
                    )
                    self._timers_changed.notify()

    def _schedule(self) -> None:
        """Move retries whose wait is over onto their order's worker queue."""
        while True:
            with self._timers_changed:
                while not self._timers or self._timers[0][0] > time.monotonic():
                    timeout = self._timers[0][0] - time.monotonic() if self._timers else None
                    self._timers_changed.wait(timeout)
                _, _, delivery = heapq.heappop(self._timers)
            with self._lock:
                self._dispatch([delivery])

    def _send(self, delivery: Delivery) -> int | None:
        session = getattr(self._local, "session", None) or requests.Session()
        self._local.session = session
        entry = {
            "order_id": delivery.order_id,
            "url": delivery.url,
            "body": delivery.body,
            "attempt": delivery.attempt,
            "time": datetime.now(WIB).isoformat(timespec="milliseconds"),
        }
        try:
            answer = session.post(delivery.url, json=delivery.body, timeout=TIMEOUT)
            entry.update(status=answer.status_code, answer=answer.text[:500], error=None)
        except requests.RequestException as error:
            entry.update(status=None, answer=None, error=f"{type(error).__name__}: {error}")
        with self._lock:
            self._log.append(entry)
        return entry["status"]


class _Queue:
    """A FIFO that can be emptied by `reset` (queue.SimpleQueue cannot)."""

    def __init__(self):
        self._items: deque[Delivery] = deque()
        self._ready = threading.Condition()

    def put(self, item: Delivery) -> None:
        with self._ready:
            self._items.append(item)
            self._ready.notify()

    def get(self) -> Delivery:
        with self._ready:
            while not self._items:
                self._ready.wait()
            return self._items.popleft()

    def clear(self) -> None:
        with self._ready:
            self._items.clear()
