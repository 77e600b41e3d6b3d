"""Issue 13 item 3: the worker stops cleanly and promptly on SIGTERM (systemd's stop).

The real `flask --app wsgi worker` process, client apps' endpoints and Midtrans's status API on
127.0.0.1, each keeping when every request arrived. SIGTERM comes while the worker has work in
hand and more waiting: it must finish what it holds (a callback attempt ends by
CALLBACK_TIMEOUT, a status call by MIDTRANS_TIMEOUT), record it, start nothing new, and exit 0
well within the unit's `TimeoutStopSec`. SQLite, or PostgreSQL where TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses
from kit.endpoints import LocalServer, Received
from sqlalchemy import select, update
from support import charge, hook_app, status_answer

from app.extensions import db
from app.models import App, CallbackAttempt, CallbackEvent, Transaction
from bench.processes import FLASK, REPO, Piped

MARGIN = 3.0  # seconds beyond the bound for the process to wind down on a loaded machine
APPS = ("north", "south", "east")  # three lanes in flight at once
EVENTS_PER_APP = 3


class SlowServer(LocalServer):
    """An HTTP endpoint on 127.0.0.1 that answers each request after `delay` seconds (204 for
    a POST, `answer(path)` as JSON for a GET); `requests` keeps when each arrived."""

    def __init__(self, delay: float, answer=None):
        self.delay, self.answer = delay, answer
        super().__init__()

    def respond(self, request: Received) -> tuple[int, dict, bytes]:
        self.released.wait(self.delay)
        if request.method == "GET":
            body = json.dumps(self.answer(request.path)).encode()
            return 200, {"Content-Type": "application/json"}, body
        return 204, {}, b""


@pytest.fixture
def servers(served):
    def make(delay: float, answer=None) -> SlowServer:
        return served(SlowServer(delay, answer))

    return make


pytestmark = pytest.mark.usefixtures("loopback_callbacks")


def settled_answer(midtrans_order_id: str) -> dict:
    """Midtrans's status answer for a paid order of 7000."""
    return status_answer(midtrans_order_id, amount=7000, payment_type="gopay")


def start_worker(env: dict[str, str], **settings: str) -> Piped:
    """`flask --app wsgi worker` as systemd runs it; its output is collected."""
    process_env = {**os.environ, **env, "LOG_LEVEL": "INFO", **settings}
    argv = [*FLASK, "worker", "--interval", "0.2"]
    return Piped(argv, env=process_env, cwd=REPO)


@pytest.fixture
def worker_process():
    started: list[Piped] = []

    def start(env, **settings) -> Piped:
        started.append(start_worker(env, **settings))
        return started[-1]

    yield start
    for worker in started:
        worker.close()


def wait_until(check, timeout: float, what: str, worker: Piped) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline or not worker.alive():
            pytest.fail(f"{what}: not within {timeout} s\n{worker.output()}")
        time.sleep(0.02)


def sigterm_with_a_slow_midtrans(env, servers, worker_process, orders: int):
    """The worker against a Midtrans whose status API takes 2 s an answer (MIDTRANS_TIMEOUT
    3 s), SIGTERM once the first status call is in hand: it exits 0 within the call's bound
    and asks Midtrans nothing after the signal. The slow Midtrans, and seconds to exit."""
    slow_midtrans = servers(2.0, lambda path: settled_answer(path.split("/")[2]))
    midtrans_timeout = 3.0
    worker = worker_process(
        env, MIDTRANS_API_BASE_URL=slow_midtrans.url, MIDTRANS_TIMEOUT=str(midtrans_timeout)
    )
    wait_until(lambda: slow_midtrans.requests, 20, "the first status call", worker)
    time.sleep(0.5)
    sent, took, code = worker.signal(signal.SIGTERM, orders * midtrans_timeout + 20)
    output = worker.output()

    assert code == 0, output
    asked_after = slow_midtrans.since(sent)
    assert asked_after == [], f"status calls after SIGTERM: {asked_after}\n{output}"
    assert took < midtrans_timeout + MARGIN, f"{took:.1f} s\n{output}"
    return slow_midtrans, took


@pytest.mark.parametrize(
    ("answer_after", "callback_timeout"),
    [(3.0, 5.0), (30.0, 2.0)],
    ids=["endpoint-answers-in-3s", "endpoint-slower-than-the-timeout"],
)
def test_sigterm_during_deliveries_finishes_the_attempts_in_hand_and_starts_none(
    app, env, client, cli, midtrans, servers, worker_process, answer_after, callback_timeout
):
    endpoints = {code: servers(answer_after) for code in APPS}
    for code, endpoint in endpoints.items():
        headers = hook_app(cli, code, endpoint.url + "/hook").headers
        for n in range(EVENTS_PER_APP):
            charge(client, headers, midtrans, f"{code}-{n}")

    worker = worker_process(env, CALLBACK_TIMEOUT=str(callback_timeout))
    wait_until(
        lambda: all(e.requests for e in endpoints.values()),
        20,
        "every app's first callback reached its endpoint",
        worker,
    )
    time.sleep(0.5)  # each lane is now in the middle of its attempt
    sent, took, code = worker.signal(signal.SIGTERM, callback_timeout + 20)
    output = worker.output()

    assert code == 0, output
    assert took < callback_timeout + MARGIN, f"{took:.1f} s\n{output}"
    assert "worker stopped" in output, output
    assert {c: e.since(sent) for c, e in endpoints.items()} == {c: [] for c in APPS}, output
    assert all(len(e.requests) == 1 for e in endpoints.values()), output

    with app.app_context():
        attempts = db.session.execute(
            select(App.code, CallbackAttempt.status_code, CallbackAttempt.error)
            .join(CallbackEvent, CallbackEvent.id == CallbackAttempt.callback_event_id)
            .join(App, App.id == CallbackEvent.app_id)
        ).all()
        events = db.session.execute(
            select(CallbackEvent.state, CallbackEvent.attempts, CallbackEvent.claimed_until)
        ).all()
    # The attempt in hand on each lane was recorded, whatever its end; nothing else was tried.
    assert sorted(code for code, _, _ in attempts) == sorted(APPS)
    if answer_after < callback_timeout:
        assert {(status, error) for _, status, error in attempts} == {(204, None)}
        assert sorted(e.state for e in events).count("delivered") == len(APPS)
    else:
        assert {status for _, status, _ in attempts} == {None}
        assert all(re.search(r"no answer in \d+ s", error) for _, _, error in attempts)
    assert all(e.claimed_until is None for e in events)  # no claim left behind
    assert sum(e.attempts for e in events) == len(APPS)
    print(f"SIGTERM to exit: {took:.2f} s (CALLBACK_TIMEOUT {callback_timeout:g} s)")


def test_sigterm_during_a_reconciliation_round_with_a_slow_midtrans_starts_no_new_status_call(
    app, env, client, app_key, midtrans, servers, worker_process
):
    """A round of due status checks (one order after another) while Midtrans takes 2 s an
    answer: SIGTERM lets the call in hand finish and asks about no further order."""
    orders = [f"R-{n}" for n in range(6)]
    for order_id in orders:
        charge(client, app_key, midtrans, order_id)
    with app.app_context():
        db.session.execute(
            update(Transaction).values(next_check_at=datetime.now(UTC) - timedelta(seconds=5))
        )
        db.session.commit()

    slow_midtrans, took = sigterm_with_a_slow_midtrans(env, servers, worker_process, len(orders))
    with app.app_context():
        checked = db.session.execute(
            select(Transaction.order_id).where(Transaction.status == "settlement")
        ).scalars()
        # The order in hand was settled and recorded; the others wait for the next start.
        assert len(list(checked)) == len(slow_midtrans.requests) == 1
    print(f"SIGTERM to exit: {took:.2f} s (a status call in hand, MIDTRANS_TIMEOUT 3 s)")


def test_sigterm_while_confirming_notifications_with_a_slow_midtrans_starts_no_new_status_call(
    app, env, client, app_key, midtrans, servers, worker_process
):
    """Notifications the status API could not confirm on arrival, due again, while Midtrans
    takes 2 s an answer: SIGTERM lets the confirmation in hand finish and starts no other."""
    from support import API_BASE, signed

    from app.models import Notification

    orders = [f"N-{n}" for n in range(6)]
    for order_id in orders:
        charge(client, app_key, midtrans, order_id)
        midtrans.add(
            responses.GET,
            f"{API_BASE}/v2/{order_id}/status",
            body=requests.ConnectionError("Midtrans is down"),
        )
        body = signed(settled_answer(order_id))
        answer = client.post("/notification", json=body)
        assert answer.status_code == 200 and answer.json["outcome"] == "unconfirmed", answer.json
    with app.app_context():
        db.session.execute(
            update(Notification).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=5))
        )
        db.session.commit()

    sigterm_with_a_slow_midtrans(env, servers, worker_process, len(orders))
