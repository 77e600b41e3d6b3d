"""The worker process (`flask --app wsgi worker`): runs the scheduled jobs until SIGTERM.

Each round runs every job once; a round that found nothing to do waits `interval` seconds.
SIGTERM or SIGINT lets the current item finish, then the process exits 0, so systemd can stop
or restart it at any time without losing work (claims left behind simply run out).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from flask import Flask

from . import payments
from .callbacks import CallbackClient
from .extensions import db

log = logging.getLogger(__name__)


def jobs(app: Flask) -> list[tuple[str, Callable[[], int]]]:
    midtrans = app.extensions["midtrans"]
    callbacks = CallbackClient(
        app.extensions["callback_policy"],
        timeout=app.extensions["settings"].callback_timeout,
    )
    return [
        ("confirm notifications", lambda: payments.confirm_due_notifications(midtrans=midtrans)),
        ("reconcile orders", lambda: payments.reconcile_due_orders(midtrans=midtrans)),
        ("deliver callbacks", lambda: payments.deliver_due_callbacks(client=callbacks)),
    ]


def run_round(app: Flask, round_jobs: list[tuple[str, Callable[[], int]]]) -> int:
    """Run every job once; how many items they handled."""
    handled = 0
    for name, job in round_jobs:
        with app.app_context():
            try:
                handled += job()
            except Exception:
                # One bad round must not kill the worker; the next round tries again.
                db.session.rollback()
                log.exception("worker job %r failed", name)
    return handled


def run_worker(app: Flask, *, interval: float = 5.0, once: bool = False) -> None:
    stop = threading.Event()

    def request_stop(signum, _frame):
        log.info(
            "worker: %s received, stopping after the current item", signal.Signals(signum).name
        )
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)
    log.info("worker started (interval %.1fs)", interval)
    round_jobs = jobs(app)
    while not stop.is_set():
        handled = run_round(app, round_jobs)
        if once:
            break
        if handled == 0:
            stop.wait(interval)
    log.info("worker stopped")
