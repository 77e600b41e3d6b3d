"""Callbacks to client apps through an outbox: written with the change, delivered by the worker.

An event is a row written in the same database transaction as the state change it reports, so
a crash between the two is impossible: nothing is lost. The worker delivers due events with
retries on a jittered schedule of about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and
24 h (about three and a half days in all), honouring `Retry-After` on 429 and 503. The events
of one order go out in order: one waits while an earlier one of the same order is retrying.
`410 Gone` disables the endpoint at once; an endpoint failing for five days is disabled too,
and its admin sees why. Failed events can be sent again one by one or all since a time.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import aliased

from ..callbacks import CallbackClient
from ..database import begin_write, lock_row
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
MAX_RETRY_AFTER = timedelta(hours=24)
DISABLE_AFTER = timedelta(days=5)
PREVIOUS_SECRET_OVERLAP = timedelta(hours=24)
CLAIM_LEASE = timedelta(minutes=2)
BATCH = 50


def new_event_id() -> str:
    return "msg_" + secrets.token_hex(12)


def enqueue_update(txn: Transaction, view: dict) -> CallbackEvent | None:
    """Add a `transaction.updated` event for the order's app, in the caller's transaction."""
    app = txn.app
    if not app.callback_url:
        return None
    now = datetime.now(UTC)
    payload = {"type": EVENT_TYPE, "timestamp": now.isoformat(), "data": view}
    event = CallbackEvent(
        event_id=new_event_id(),
        app_id=app.id,
        transaction_id=txn.id,
        type=EVENT_TYPE,
        payload=json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str),
        state=CallbackState.PENDING,
        next_attempt_at=now,
    )
    db.session.add(event)
    return event


def _secrets_in_use(app: App, now: datetime) -> list[str]:
    keys = [app.signing_secret] if app.signing_secret else []
    if (
        app.previous_signing_secret
        and app.previous_secret_expires_at
        and now < app.previous_secret_expires_at
    ):
        keys.append(app.previous_signing_secret)
    return keys


def _due_event_ids(now: datetime, limit: int) -> list[int]:
    earlier = aliased(CallbackEvent)
    ids = db.session.execute(
        select(CallbackEvent.id)
        .join(App, App.id == CallbackEvent.app_id)
        .where(
            CallbackEvent.state == CallbackState.PENDING,
            CallbackEvent.next_attempt_at <= now,
            or_(CallbackEvent.claimed_until.is_(None), CallbackEvent.claimed_until < now),
            App.callback_url.is_not(None),
            App.callback_disabled_at.is_(None),
            ~exists().where(
                and_(
                    earlier.transaction_id == CallbackEvent.transaction_id,
                    earlier.state == CallbackState.PENDING,
                    earlier.id < CallbackEvent.id,
                )
            ),
        )
        .order_by(CallbackEvent.next_attempt_at, CallbackEvent.id)
        .limit(limit)
    ).scalars()
    result = list(ids)
    db.session.commit()
    return result


def _claim(event_id: int, now: datetime) -> bool:
    claimed = db.session.execute(
        update(CallbackEvent)
        .where(
            CallbackEvent.id == event_id,
            CallbackEvent.state == CallbackState.PENDING,
            or_(CallbackEvent.claimed_until.is_(None), CallbackEvent.claimed_until < now),
        )
        .values(claimed_until=now + CLAIM_LEASE)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return claimed.rowcount == 1


def _next_delay(attempts: int, retry_after: float | None) -> timedelta | None:
    """How long until the next try after `attempts` failures; None once retries are spent."""
    if attempts > len(RETRY_SCHEDULE):
        return None
    if retry_after is not None:
        return min(timedelta(seconds=retry_after), MAX_RETRY_AFTER)
    base = RETRY_SCHEDULE[attempts - 1]
    return base * random.uniform(1 - JITTER, 1 + JITTER)


def deliver_event(event_id: int, *, client: CallbackClient, now: datetime | None = None) -> str:
    """Make one attempt at a claimed event and record it; the event's state afterwards."""
    now = now or datetime.now(UTC)
    event = db.session.get(CallbackEvent, event_id, populate_existing=True)
    app = event.app
    url, msg_id, body = app.callback_url, event.event_id, event.payload.encode("utf-8")
    keys = _secrets_in_use(app, now)
    db.session.commit()

    result = client.deliver(url, msg_id=msg_id, body=body, secrets_in_use=keys)

    begin_write()
    event = lock_row(CallbackEvent, event_id)
    app = lock_row(App, event.app_id)
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
        app.callback_failing_since = None
    else:
        event.last_error = result.error or f"HTTP {result.status_code}"
        app.callback_failing_since = app.callback_failing_since or now
        retry_after = result.retry_after if result.status_code in {429, 503} else None
        delay = _next_delay(event.attempts, retry_after)
        if result.status_code == 410:
            _disable(app, now, "the endpoint answered 410 Gone")
            delay = None
        elif now - app.callback_failing_since >= DISABLE_AFTER:
            _disable(app, now, f"failing since {app.callback_failing_since:%Y-%m-%d %H:%M} UTC")
        if delay is None:
            event.state, event.next_attempt_at = CallbackState.FAILED, None
        else:
            event.next_attempt_at = now + delay
    state = event.state
    db.session.commit()
    log.info(
        "callback %s to app %s: %s (%s)",
        msg_id,
        app.code,
        state,
        result.status_code or result.error,
    )
    return state


def _disable(app: App, now: datetime, reason: str) -> None:
    app.callback_disabled_at = now
    app.callback_disabled_reason = reason[:255]
    log.error("callbacks to app %s disabled: %s", app.code, reason)


def deliver_due_callbacks(*, client: CallbackClient, now: datetime | None = None) -> int:
    """Deliver every event whose turn has come; how many attempts were made."""
    now = now or datetime.now(UTC)
    done = 0
    for event_id in _due_event_ids(now, BATCH):
        if _claim(event_id, now):
            deliver_event(event_id, client=client, now=now)
            done += 1
    return done


def resend_event(event_id: int) -> CallbackEvent:
    """Queue one event again, now, with the same webhook-id and bytes (not while a worker is
    delivering it: that would send it twice at once)."""
    begin_write()
    event = lock_row(CallbackEvent, event_id)
    now = datetime.now(UTC)
    if event is None:
        db.session.rollback()
        raise NotFoundError(f"no callback event {event_id}")
    if event.claimed_until is not None and event.claimed_until > now:
        db.session.rollback()
        raise BusyError("a worker is delivering this event right now; retry shortly")
    event.state, event.claimed_until = CallbackState.PENDING, None
    event.next_attempt_at = now
    db.session.commit()
    return event


def recover_failed(app_id: int, since: datetime) -> int:
    """Queue again every failed event of the app created since `since`; how many."""
    now = datetime.now(UTC)
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
    db.session.commit()
    return result.rowcount


def enable_endpoint(app: App) -> None:
    """Deliver to the app's endpoint again (after it was disabled); caller commits."""
    app.callback_disabled_at = None
    app.callback_disabled_reason = None
    app.callback_failing_since = None


def rotate_signing_secret(app: App, new_secret: str) -> None:
    """Sign with both secrets for a day, so the client can switch without missing one."""
    if app.signing_secret:
        app.previous_signing_secret = app.signing_secret
        app.previous_secret_expires_at = datetime.now(UTC) + PREVIOUS_SECRET_OVERLAP
    app.signing_secret = new_secret
