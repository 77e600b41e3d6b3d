"""The worker process (`flask --app wsgi worker`): runs the scheduled jobs until SIGTERM.

Each round runs every job once; a round that found nothing to do waits `interval` seconds.
Status calls to Midtrans by the reconciler are rationed per minute for the process's whole
life (`--max-status-calls`), so a backlog after a long stop drains at a bounded rate.
Callbacks to client apps go out on threads of their own beside the rounds (a lane per app,
a few at once: `payments.callbacks.CallbackDispatcher`), so reconciliation and notification
confirmation never wait behind a client app's endpoint, nor one app's callbacks behind
another's. `--once` runs one round with one delivery pass in it.
SIGTERM or SIGINT lets the current items finish (a callback attempt ends by CALLBACK_TIMEOUT),
then the process exits 0, so systemd can stop or restart it at any time without losing work
(claims left behind simply run out).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

from flask import Flask

from . import alerts, payments
from .callback_sender import CallbackClient
from .payments.callbacks import DELIVERY_THREADS, CallbackDispatcher
from .payments.reconcile import (
    STATUS_CALLS_PER_MINUTE,
    StatusCallBudget,
    settle_abandoned_attempts,
)
from .services import gateway

log = logging.getLogger(__name__)


# How often to look for Snap calls a crashed process left `creating` (a scan of that state).
ABANDONED_SWEEP_EVERY = 60.0
# How often the alert conditions are checked (app/alerts.py); the first round checks them.
ALERT_CHECK_EVERY = 60.0


def every(seconds: float, job: Callable[[], int]) -> Callable[[], int]:
    """`job`, run at most once per `seconds` (the first call runs it); 0 when skipped."""
    last: float | None = None

    def run() -> int:
        nonlocal last
        now = time.monotonic()
        if last is not None and now - last < seconds:
            return 0
        last = now
        return job()

    return run


class StoppingBudget(StatusCallBudget):
    """The worker's status-call budget, spent once `stop` is set: a round stops asking
    Midtrans after the order in hand (each of its calls ends by MIDTRANS_TIMEOUT), so a
    SIGTERM is not held up by the rest of a round of due checks."""

    def __init__(self, per_minute: int, stop: threading.Event):
        super().__init__(per_minute)
        self._stop = stop

    def remaining(self) -> int:
        return 0 if self._stop.is_set() else super().remaining()


def callback_client(app: Flask) -> CallbackClient:
    return CallbackClient(
        gateway(app).callback_policy,
        timeout=gateway(app).settings.callback_timeout,
    )


def jobs(
    app: Flask,
    *,
    status_calls_per_minute: int = STATUS_CALLS_PER_MINUTE,
    callbacks: bool = True,
    stop: threading.Event | None = None,
) -> list[tuple[str, Callable[[], int]]]:
    """The round's jobs; with `callbacks`, a callback delivery pass last (the running worker
    delivers them on its own threads instead). Once `stop` is set, no further status call."""
    midtrans = gateway(app).midtrans
    client = callback_client(app)
    # One budget for every round: the cap holds per minute, not per round.
    stop = stop or threading.Event()
    budget = StoppingBudget(status_calls_per_minute, stop)
    round_jobs = [
        # First: a round stuck in a job below leaves the heartbeat stale (`worker_down`).
        ("heartbeat", every(alerts.HEARTBEAT_EVERY, alerts.beat)),
        (
            "confirm notifications",
            lambda: payments.confirm_due_notifications(midtrans=midtrans, stop=stop),
        ),
        (
            "settle abandoned attempts",
            every(
                ABANDONED_SWEEP_EVERY,
                lambda: settle_abandoned_attempts(midtrans=midtrans, budget=budget),
            ),
        ),
        (
            "reconcile orders",
            lambda: payments.reconcile_due_orders(midtrans=midtrans, budget=budget),
        ),
    ]
    if callbacks:
        round_jobs.append(
            ("deliver callbacks", lambda: payments.deliver_due_callbacks(client=client))
        )
    # Last: it sees what this round's jobs found (a flag, a rejected server key).
    round_jobs.append(("check alerts", every(ALERT_CHECK_EVERY, lambda: _checked_alerts(client))))
    return round_jobs


def _checked_alerts(client: CallbackClient) -> int:
    alerts.check_and_send(client)
    return 0  # not work done: a quiet round still waits its interval


def run_round(
    app: Flask,
    round_jobs: list[tuple[str, Callable[[], int]]],
    stop: threading.Event | None = None,
) -> int:
    """Run every job once (none after `stop` is set); how many items they handled."""
    handled = 0
    for name, job in round_jobs:
        if stop is not None and stop.is_set():
            break
        with app.app_context():  # its end discards whatever the job left in the session
            try:
                handled += job()
            except Exception:
                # One bad round must not kill the worker; the next round tries again.
                log.exception("worker job %r failed", name)
    return handled


def run_worker(
    app: Flask,
    *,
    interval: float = 5.0,
    once: bool = False,
    status_calls_per_minute: int = STATUS_CALLS_PER_MINUTE,
) -> None:
    stop = threading.Event()

    def request_stop(signum, _frame):
        log.info(
            "worker: %s received, stopping after the current item", signal.Signals(signum).name
        )
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)
    log.info(
        "worker started (interval %.1fs, at most %d status calls a minute)",
        interval,
        status_calls_per_minute,
    )
    round_jobs = jobs(
        app, status_calls_per_minute=status_calls_per_minute, callbacks=once, stop=stop
    )
    deliveries = None
    if not once:
        dispatcher = CallbackDispatcher(app, callback_client(app), threads=DELIVERY_THREADS)
        deliveries = threading.Thread(
            target=dispatcher.run, args=(stop,), kwargs={"interval": interval}, name="callbacks"
        )
        deliveries.start()
    try:
        while not stop.is_set():
            handled = run_round(app, round_jobs, stop)
            if once:
                break
            if handled == 0:
                stop.wait(interval)
    finally:
        stop.set()
        if deliveries is not None:
            deliveries.join()  # the attempts in hand: each ends by CALLBACK_TIMEOUT
    log.info("worker stopped")
