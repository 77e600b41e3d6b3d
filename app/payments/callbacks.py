"""Callbacks to client apps through an outbox: written with the change, delivered by the worker.

An event is a row written in the same database transaction as the state change it reports, so
a crash between the two is impossible: nothing is lost. The worker delivers due events with
retries on a jittered schedule of about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and
24 h (about three and a half days in all), honouring `Retry-After` on 429 and 503. The events
of one order go out in order: one waits while an earlier one of the same order is retrying.
`410 Gone` disables the endpoint at once; an endpoint failing for five days is disabled too,
and its admin sees why. Failed events can be sent again one by one or all since a time.

One client app's endpoint never holds up another's callbacks: each app's events go out one
after another on a lane of their own, several lanes at once (`DELIVERY_THREADS`), and an
attempt ends at `CALLBACK_TIMEOUT` whatever the endpoint does. Several worker processes may
deliver at once: an event is claimed (a conditional UPDATE, re-checking its turn) right before
its attempt, for longer than an attempt can last, so it is never sent twice at once.
"""

from __future__ import annotations

import json
import logging
import math
import random
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from flask import Flask, current_app
from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import aliased

from ..apps import disable_endpoint
from ..callback_sender import CallbackClient, DeliveryResult
from ..database import lock_row, reading, writing
from ..errors import BusyError, NotFoundError
from ..extensions import db
from ..models import App, CallbackAttempt, CallbackEvent, CallbackState, Transaction

log = logging.getLogger(__name__)

EVENT_TYPE = "transaction.updated"
RETRY_SCHEDULE = [
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
]
JITTER = 0.1
MIN_RETRY_AFTER = RETRY_SCHEDULE[0]
MAX_RETRY_AFTER = timedelta(hours=24)
DISABLE_AFTER = timedelta(days=5)
CLAIM_LEASE = timedelta(minutes=2)
# A claim outlasts the attempt's deadline by this much at least (recording the attempt).
CLAIM_MARGIN = timedelta(minutes=1)
BATCH = 50
PER_APP = 10  # events of one app in a batch, so one app's backlog cannot fill it
DELIVERY_THREADS = 4  # lanes (apps) delivering at once in one process


def new_event_id() -> str:
    return "msg_" + secrets.token_hex(12)


def enqueue_update(txn: Transaction, view: dict) -> CallbackEvent | None:
    """Add a `transaction.updated` event for the order's client app, in the caller's unit of
    work: the event commits with the change it reports, or neither does. It goes to the
    order's own callback URL when the client gave one, else to the app's."""
    client_app = txn.app
    if not (txn.callback_url or client_app.callback_url):
        return None
    now = datetime.now(UTC)
    payload = {"type": EVENT_TYPE, "timestamp": now.isoformat(), "data": view}
    event = CallbackEvent(
        event_id=new_event_id(),
        app_id=client_app.id,
        transaction_id=txn.id,
        type=EVENT_TYPE,
        payload=json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str),
        state=CallbackState.PENDING,
        next_attempt_at=now,
    )
    db.session.add(event)
    return event


def _secrets_in_use(client_app: App, now: datetime) -> list[str]:
    keys = [client_app.signing_secret] if client_app.signing_secret else []
    if (
        client_app.previous_signing_secret
        and client_app.previous_secret_expires_at
        and now < client_app.previous_secret_expires_at
    ):
        keys.append(client_app.previous_signing_secret)
    return keys


def _not_after_an_earlier_pending_one():
    """The event is the oldest pending one of its order: the events of one order go out in
    order, one waiting while an earlier one is retrying."""
    earlier = aliased(CallbackEvent)
    return ~exists().where(
        and_(
            earlier.transaction_id == CallbackEvent.transaction_id,
            earlier.state == CallbackState.PENDING,
            earlier.id < CallbackEvent.id,
        )
    )


def _due_events(
    now: datetime, limit: int, *, skip_apps: frozenset[int] = frozenset()
) -> dict[int, list[int]]:
    """Due events by app, each app's in the order they are due, the app whose event is due
    first first; at most PER_APP an app (apps in `skip_apps` left out)."""
    rank = (
        func.row_number()
        .over(
            partition_by=CallbackEvent.app_id,
            order_by=(CallbackEvent.next_attempt_at, CallbackEvent.id),
        )
        .label("rank")
    )
    due = (
        select(CallbackEvent.id, CallbackEvent.app_id, CallbackEvent.next_attempt_at, rank)
        .join(App, App.id == CallbackEvent.app_id)
        .join(Transaction, Transaction.id == CallbackEvent.transaction_id)
        .where(
            CallbackEvent.state == CallbackState.PENDING,
            CallbackEvent.next_attempt_at <= now,
            or_(CallbackEvent.claimed_until.is_(None), CallbackEvent.claimed_until < now),
            # The order's own URL, or the app's while its endpoint is not disabled.
            or_(
                Transaction.callback_url.is_not(None),
                and_(App.callback_url.is_not(None), App.callback_disabled_at.is_(None)),
            ),
            *([App.id.not_in(skip_apps)] if skip_apps else []),
            _not_after_an_earlier_pending_one(),
        )
        .subquery()
    )
    with reading():
        rows = db.session.execute(
            select(due.c.id, due.c.app_id)
            .where(due.c.rank <= PER_APP)
            .order_by(due.c.next_attempt_at, due.c.id)
            .limit(limit)
        ).all()
    lanes: dict[int, list[int]] = {}
    for event_id, app_id in rows:
        lanes.setdefault(app_id, []).append(event_id)
    return lanes


def claim_lease(client: CallbackClient) -> timedelta:
    """How long a claim holds: longer than any attempt can last (CALLBACK_TIMEOUT)."""
    return max(CLAIM_LEASE, timedelta(seconds=client.timeout) + CLAIM_MARGIN)


def _claim(event_id: int, now: datetime, lease: timedelta = CLAIM_LEASE) -> bool:
    """Claim the event if it is still its turn (due, unclaimed, the oldest pending one of
    its order): another worker may have delivered or rescheduled it since it was listed."""
    with writing():
        claimed = db.session.execute(
            update(CallbackEvent)
            .where(
                CallbackEvent.id == event_id,
                CallbackEvent.state == CallbackState.PENDING,
                CallbackEvent.next_attempt_at <= now,
                or_(CallbackEvent.claimed_until.is_(None), CallbackEvent.claimed_until < now),
                _not_after_an_earlier_pending_one(),
            )
            .values(claimed_until=now + lease)
            .execution_options(synchronize_session=False)
        )
    return claimed.rowcount == 1


def _retry_after_delay(seconds: float) -> timedelta | None:
    """`Retry-After` within the schedule's bounds (5 s .. 24 h); None if it is no number."""
    if math.isnan(seconds):
        return None
    low, high = MIN_RETRY_AFTER.total_seconds(), MAX_RETRY_AFTER.total_seconds()
    return timedelta(seconds=min(max(seconds, low), high))


def _next_delay(attempts: int, retry_after: float | None) -> timedelta | None:
    """How long until the next try after `attempts` failures; None once retries are spent."""
    if attempts > len(RETRY_SCHEDULE):
        return None
    if retry_after is not None:
        delay = _retry_after_delay(retry_after)
        if delay is not None:
            return delay
    base = RETRY_SCHEDULE[attempts - 1]
    return base * random.uniform(1 - JITTER, 1 + JITTER)


def deliver_event(event_id: int, *, client: CallbackClient, now: datetime | None = None) -> str:
    """Make one attempt at a claimed event and record it; the event's state afterwards."""
    now = now or datetime.now(UTC)
    with reading():
        event = db.session.get(CallbackEvent, event_id, populate_existing=True)
        client_app = event.app
        order_url = event.transaction.callback_url
        url = order_url or client_app.callback_url
        msg_id, body = event.event_id, event.payload.encode("utf-8")
        keys = _secrets_in_use(client_app, now)

    try:
        result = client.deliver(url, msg_id=msg_id, body=body, secrets_in_use=keys)
    except Exception as err:  # the attempt is recorded whatever happened
        log.exception("callback %s: the attempt failed unexpectedly", msg_id)
        result = DeliveryResult(None, 0, None, f"failed: {type(err).__name__}")

    with writing():
        state = _record_attempt(event_id, url, result, now, app_endpoint=order_url is None)
    log.info(
        "callback %s to app %s: %s (%s)",
        msg_id,
        client_app.code,
        state,
        result.status_code or result.error,
    )
    return state


def _record_attempt(
    event_id: int, url: str, result: DeliveryResult, now: datetime, *, app_endpoint: bool = True
) -> str:
    """Record an attempt on the (locked) event and schedule what follows; its state. An
    order's own URL (not `app_endpoint`) failing, even with 410, ends that order's events
    only: the app's endpoint is neither marked failing nor disabled by it."""
    event = lock_row(CallbackEvent, event_id)
    client_app = lock_row(App, event.app_id)
    db.session.add(
        CallbackAttempt(
            callback_event_id=event.id,
            attempted_at=now,
            url=url,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            response_excerpt=result.excerpt,
            error=result.error,
        )
    )
    event.attempts += 1
    event.claimed_until = None
    if result.delivered:
        event.state, event.delivered_at, event.last_error = CallbackState.DELIVERED, now, None
        event.next_attempt_at = None
        if app_endpoint:
            client_app.callback_failing_since = None
        return event.state
    event.last_error = result.error or f"HTTP {result.status_code}"
    if app_endpoint:
        client_app.callback_failing_since = client_app.callback_failing_since or now
    retry_after = result.retry_after if result.status_code in {429, 503} else None
    delay = _next_delay(event.attempts, retry_after)
    if not app_endpoint:
        if result.status_code == 410:
            delay = None  # that order's URL is gone: its events end, the app's go on
    elif result.status_code == 410:
        disable_endpoint(client_app, now, "the endpoint answered 410 Gone")
        delay = None
    elif now - client_app.callback_failing_since >= DISABLE_AFTER:
        disable_endpoint(
            client_app, now, f"failing since {client_app.callback_failing_since:%Y-%m-%d %H:%M} UTC"
        )
    if delay is None:
        event.state, event.next_attempt_at = CallbackState.FAILED, None
    else:
        event.next_attempt_at = now + delay
    return event.state


def _deliver_lane(
    flask_app: Flask,
    event_ids: list[int],
    *,
    client: CallbackClient,
    now: datetime | None,
    stop: threading.Event | None = None,
) -> int:
    """Deliver one app's events one after another (they go to one endpoint: a slow endpoint
    holds its own lane only); how many attempts were made. Stops between events on `stop`."""
    done = 0
    lease = claim_lease(client)
    with flask_app.app_context():
        for event_id in event_ids:
            if stop is not None and stop.is_set():
                break
            at = now or datetime.now(UTC)
            try:
                if _claim(event_id, at, lease):
                    deliver_event(event_id, client=client, now=at)
                    done += 1
            except Exception:
                # One bad event must not stop the lane (its unit was rolled back); its claim
                # runs out and it is retried.
                log.exception("callback event %s: delivery failed", event_id)
    return done


def deliver_due_callbacks(
    *,
    client: CallbackClient,
    now: datetime | None = None,
    threads: int = DELIVERY_THREADS,
    stop: threading.Event | None = None,
) -> int:
    """Deliver every event whose turn has come, each app's on its own lane, `threads` apps at
    once; returns when all are done: how many attempts were made."""
    lanes = list(_due_events(now or datetime.now(UTC), BATCH).values())
    if not lanes:
        return 0
    flask_app = current_app._get_current_object()
    if len(lanes) == 1 or threads <= 1:
        return sum(
            _deliver_lane(flask_app, ids, client=client, now=now, stop=stop) for ids in lanes
        )
    with ThreadPoolExecutor(min(threads, len(lanes)), thread_name_prefix="callbacks") as pool:
        done = [
            pool.submit(_deliver_lane, flask_app, ids, client=client, now=now, stop=stop)
            for ids in lanes
        ]
    return sum(future.result() for future in done)


class CallbackDispatcher:
    """Keeps callbacks moving beside the worker's other jobs, on threads of their own, so
    reconciliation never waits behind a client app's endpoint and one app's slow endpoint
    never delays another's callbacks: a lane per app (one event at a time), at most
    `threads` lanes at once, a new lane started as soon as one is free.

    `run(stop)` polls for due events until `stop` is set, then lets the lanes finish the
    attempt in hand (bounded by CALLBACK_TIMEOUT) and returns."""

    def __init__(
        self,
        flask_app: Flask,
        client: CallbackClient,
        *,
        threads: int = DELIVERY_THREADS,
        min_gap: float = 0.1,
    ):
        self.app = flask_app
        self.client = client
        self.threads = threads
        self.min_gap = min_gap  # between two polls, so a failing lane cannot spin
        self.delivered = 0
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="callbacks")
        self._busy: set[int] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()

    def poll(self) -> int:
        """Start lanes for apps with due events that have none running; how many."""
        with self._lock:
            busy = frozenset(self._busy)
        free = self.threads - len(busy)
        if free <= 0 or self._stop.is_set():
            return 0
        with self.app.app_context():
            lanes = _due_events(datetime.now(UTC), BATCH, skip_apps=busy)
        started = 0
        for app_id, event_ids in list(lanes.items())[:free]:
            with self._lock:
                self._busy.add(app_id)
            self._pool.submit(self._lane, app_id, event_ids)
            started += 1
        return started

    def _lane(self, app_id: int, event_ids: list[int]) -> None:
        try:
            done = _deliver_lane(self.app, event_ids, client=self.client, now=None, stop=self._stop)
            with self._lock:
                self.delivered += done
        except Exception:
            log.exception("callback lane of app %s failed", app_id)
        finally:
            with self._lock:
                self._busy.discard(app_id)
            self._wake.set()

    def busy(self) -> int:
        with self._lock:
            return len(self._busy)

    def run(self, stop: threading.Event, *, interval: float = 5.0) -> None:
        """Poll until `stop`: at once when a lane finishes (the next event of an order may be
        due), else every `interval` seconds. Then finish the attempts in hand."""
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    self.poll()
                except Exception:
                    log.exception("looking for due callbacks failed")
                if stop.wait(self.min_gap):
                    break
                self._wait_for_wake(stop, interval)
        finally:
            self.close()

    def _wait_for_wake(self, stop: threading.Event, interval: float) -> None:
        """Up to `interval` seconds; a lane finishing or `stop` (looked at twice a second)
        ends the wait early."""
        waited, step = 0.0, min(interval, 0.5)
        while waited < interval and not stop.is_set():
            if self._wake.wait(step):
                return
            waited += step

    def close(self) -> None:
        """No new attempts; wait for the ones in hand (each ends by CALLBACK_TIMEOUT)."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


def resend_event(event_id: int) -> CallbackEvent:
    """Queue one event again, now, with the same webhook-id and bytes (not while a worker is
    delivering it: that would send it twice at once)."""
    with writing():
        event = lock_row(CallbackEvent, event_id)
        now = datetime.now(UTC)
        if event is None:
            raise NotFoundError(f"no callback event {event_id}")
        if event.claimed_until is not None and event.claimed_until > now:
            raise BusyError("a worker is delivering this event right now; retry shortly")
        event.state, event.claimed_until = CallbackState.PENDING, None
        event.next_attempt_at = now
    return event


def recover_failed(app_id: int, since: datetime) -> int:
    """Queue again every failed event of the app created since `since`; how many."""
    now = datetime.now(UTC)
    with writing():
        result = db.session.execute(
            update(CallbackEvent)
            .where(
                CallbackEvent.app_id == app_id,
                CallbackEvent.state == CallbackState.FAILED,
                CallbackEvent.created_at >= since,
            )
            .values(state=CallbackState.PENDING, next_attempt_at=now, claimed_until=None)
            .execution_options(synchronize_session=False)
        )
    return result.rowcount
