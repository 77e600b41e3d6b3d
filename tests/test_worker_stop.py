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
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import responses
from sqlalchemy import select, update

from app.extensions import db
from app.models import App, CallbackAttempt, CallbackEvent, Transaction

REPO = Path(__file__).resolve().parents[1]
MARGIN = 3.0  # seconds beyond the bound for the process to wind down on a loaded machine
APPS = ("north", "south", "east")  # three lanes in flight at once
EVENTS_PER_APP = 3


class SlowServer:
    """An HTTP endpoint on 127.0.0.1 that answers each request after `delay` seconds (204 for
    a POST, `answer(path)` as JSON for a GET); `arrivals` holds (monotonic time, path)."""

    def __init__(self, delay: float, answer=None):
        self.arrivals: list[tuple[float, str]] = []
        self.released = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.arrivals.append((time.monotonic(), self.path))
                server.released.wait(delay)
                self._answer(204, b"")

            def do_GET(self):
                server.arrivals.append((time.monotonic(), self.path))
                server.released.wait(delay)
                self._answer(200, json.dumps(answer(self.path)).encode())

            def _answer(self, status: int, body: bytes):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the worker gave up on us: what some tests want

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def since(self, moment: float) -> list[str]:
        return [path for at, path in self.arrivals if at >= moment]

    def close(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers():
    made: list[SlowServer] = []

    def make(delay: float, answer=None) -> SlowServer:
        made.append(SlowServer(delay, answer))
        return made[-1]

    yield make
    for server in made:
        server.close()


@pytest.fixture
def env(env):
    env["CALLBACK_ALLOWED_HOSTS"] = "127.0.0.1"
    return env


def charge(client, headers, midtrans, order_id: str) -> None:
    midtrans.upsert(
        responses.POST,
        "https://app.midtrans.test/snap/v1/transactions",
        json={"token": "t", "redirect_url": "https://pay.example/t"},
        status=201,
    )
    answer = client.post("/charge", json={"order_id": order_id, "amount": 7000}, headers=headers)
    assert answer.status_code == 201, answer.get_data(as_text=True)


def hook_app(cli, code: str, url: str) -> dict[str, str]:
    out = cli("apps", "create", code, "--name", code, "--callback-url", url).output
    return {"X-App-Code": code, "X-Api-Key": out.strip().splitlines()[-1]}


def settled_answer(midtrans_order_id: str) -> dict:
    """Midtrans's status answer for a paid order of 7000."""
    return {
        "status_code": "200",
        "transaction_id": f"tx-{midtrans_order_id}",
        "order_id": midtrans_order_id,
        "gross_amount": "7000.00",
        "currency": "IDR",
        "payment_type": "gopay",
        "transaction_status": "settlement",
        "fraud_status": "accept",
    }


class Worker:
    """`flask --app wsgi worker` as systemd runs it; its output is collected."""

    def __init__(self, env: dict[str, str], **settings: str):
        process_env = {**os.environ, **env, "LOG_LEVEL": "INFO", **settings}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--interval", "0.2"],
            cwd=REPO,
            env=process_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self):
        for line in self.process.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def sigterm(self, timeout: float) -> tuple[float, float, int | None]:
        """SIGTERM; (when it was sent, seconds until the process exited, exit code)."""
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        return sent, time.monotonic() - sent, code

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._reader.join(5)
        self.process.stdout.close()


@pytest.fixture
def worker_process():
    started: list[Worker] = []

    def start(env, **settings) -> Worker:
        started.append(Worker(env, **settings))
        return started[-1]

    yield start
    for worker in started:
        worker.close()


def wait_until(check, timeout: float, what: str, worker: Worker) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline or worker.process.poll() is not None:
            pytest.fail(f"{what}: not within {timeout} s\n{worker.output()}")
        time.sleep(0.02)


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
        headers = hook_app(cli, code, endpoint.url + "/hook")
        for n in range(EVENTS_PER_APP):
            charge(client, headers, midtrans, f"{code}-{n}")

    worker = worker_process(env, CALLBACK_TIMEOUT=str(callback_timeout))
    wait_until(
        lambda: all(e.arrivals for e in endpoints.values()),
        20,
        "every app's first callback reached its endpoint",
        worker,
    )
    time.sleep(0.5)  # each lane is now in the middle of its attempt
    sent, took, code = worker.sigterm(timeout=callback_timeout + 20)
    output = worker.output()

    assert code == 0, output
    assert took < callback_timeout + MARGIN, f"{took:.1f} s\n{output}"
    assert "worker stopped" in output, output
    assert {c: e.since(sent) for c, e in endpoints.items()} == {c: [] for c in APPS}, output
    assert all(len(e.arrivals) == 1 for e in endpoints.values()), output

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

    slow_midtrans = servers(2.0, lambda path: settled_answer(path.split("/")[2]))
    midtrans_timeout = 3.0
    worker = worker_process(
        env,
        MIDTRANS_API_BASE_URL=slow_midtrans.url,
        MIDTRANS_TIMEOUT=str(midtrans_timeout),
    )
    wait_until(lambda: slow_midtrans.arrivals, 20, "the first status call", worker)
    time.sleep(0.5)
    sent, took, code = worker.sigterm(timeout=len(orders) * midtrans_timeout + 20)
    output = worker.output()

    assert code == 0, output
    asked_after = slow_midtrans.since(sent)
    assert asked_after == [], f"status calls after SIGTERM: {asked_after}\n{output}"
    assert took < midtrans_timeout + MARGIN, f"{took:.1f} s\n{output}"
    with app.app_context():
        checked = db.session.execute(
            select(Transaction.order_id).where(Transaction.status == "settlement")
        ).scalars()
        # The order in hand was settled and recorded; the others wait for the next start.
        assert len(list(checked)) == len(slow_midtrans.arrivals) == 1
    print(f"SIGTERM to exit: {took:.2f} s (a status call in hand, MIDTRANS_TIMEOUT 3 s)")


def test_sigterm_while_confirming_notifications_with_a_slow_midtrans_starts_no_new_status_call(
    app, env, client, app_key, midtrans, servers, worker_process
):
    """Notifications the status API could not confirm on arrival, due again, while Midtrans
    takes 2 s an answer: SIGTERM lets the confirmation in hand finish and starts no other."""
    from support import API_BASE, SERVER_KEY

    from app.midtrans import signature_for
    from app.models import Notification

    orders = [f"N-{n}" for n in range(6)]
    for order_id in orders:
        charge(client, app_key, midtrans, order_id)
        midtrans.add(
            responses.GET,
            f"{API_BASE}/v2/{order_id}/status",
            body=requests.ConnectionError("Midtrans is down"),
        )
        body = {**settled_answer(order_id), "status_code": "200"}
        body["signature_key"] = signature_for(order_id, "200", body["gross_amount"], SERVER_KEY)
        answer = client.post("/notification", json=body)
        assert answer.status_code == 200 and answer.json["outcome"] == "unconfirmed", answer.json
    with app.app_context():
        db.session.execute(
            update(Notification).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=5))
        )
        db.session.commit()

    slow_midtrans = servers(2.0, lambda path: settled_answer(path.split("/")[2]))
    midtrans_timeout = 3.0
    worker = worker_process(
        env, MIDTRANS_API_BASE_URL=slow_midtrans.url, MIDTRANS_TIMEOUT=str(midtrans_timeout)
    )
    wait_until(lambda: slow_midtrans.arrivals, 20, "the first status call", worker)
    time.sleep(0.5)
    sent, took, code = worker.sigterm(timeout=len(orders) * midtrans_timeout + 20)
    output = worker.output()

    assert code == 0, output
    asked_after = slow_midtrans.since(sent)
    assert asked_after == [], f"status calls after SIGTERM: {asked_after}\n{output}"
    assert took < midtrans_timeout + MARGIN, f"{took:.1f} s\n{output}"
