"""Issue 13 item 4: two workers never have one callback in flight twice, even when a worker's
pass over an app's events lasts much longer than a claim.

Two workers' callback dispatchers run at once (threads here, each with its own database
connection, as two processes would have), against an endpoint that takes 0.4 s an answer and
records each request's webhook-id as it arrives. The claim is shortened to about 1 s,
so one lane's pass (8 events, over 3 s) outlasts it several times: a lease counted from the
start of the pass would let the other worker send the same events again meanwhile.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from kit.endpoints import CallbackReceiver
from sqlalchemy import func, select
from support import charge, hook_app

from app.callback_sender import CallbackClient
from app.extensions import db
from app.models import CallbackAttempt, CallbackEvent
from app.payments import callbacks as outbox
from app.payments.callbacks import CallbackDispatcher, claim_lease
from app.services import gateway

ANSWER_AFTER = 0.4
ATTEMPT_TIMEOUT = 0.6
EVENTS_PER_APP = 8


pytestmark = pytest.mark.usefixtures("loopback_callbacks")


@pytest.fixture
def endpoint(served):
    """Answers 204 after ANSWER_AFTER s; keeps every request (its webhook-id, when it came)."""
    return served(CallbackReceiver(verify=False, delay=ANSWER_AFTER, path="/hook"))


def test_two_workers_with_passes_longer_than_a_claim_send_each_event_once(
    app, client, cli, midtrans, endpoint, monkeypatch
):
    monkeypatch.setattr(outbox, "CLAIM_LEASE", timedelta(seconds=1))
    monkeypatch.setattr(outbox, "CLAIM_MARGIN", timedelta(seconds=0.5))
    for code in ("left", "right"):
        headers = hook_app(cli, code, endpoint.url).headers
        for n in range(EVENTS_PER_APP):
            charge(client, headers, midtrans, f"O-{n}")
    events = 2 * EVENTS_PER_APP
    callback_client = CallbackClient(gateway(app).callback_policy, timeout=ATTEMPT_TIMEOUT)
    lease = claim_lease(callback_client)
    pass_length = EVENTS_PER_APP * ANSWER_AFTER
    assert lease < timedelta(seconds=pass_length / 2)  # the premise: passes outlast claims

    stop = threading.Event()
    workers = [
        threading.Thread(
            target=CallbackDispatcher(app, callback_client, threads=2).run,
            args=(stop,),
            kwargs={"interval": 0.05},
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    try:
        deadline = time.monotonic() + 30
        while len(endpoint.requests) < events and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2 * lease.total_seconds())  # time for any second send to show up
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)

    ids = [request.webhook_id for request in endpoint.requests]
    assert len(ids) == len(set(ids)) == events, sorted(ids)
    with app.app_context():
        states = db.session.execute(
            select(CallbackEvent.state, func.count()).group_by(CallbackEvent.state)
        ).all()
        attempts = db.session.scalar(select(func.count()).select_from(CallbackAttempt))
    assert [(str(state), count) for state, count in states] == [("delivered", events)]
    assert attempts == events
