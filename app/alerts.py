"""Alerts: trouble reaches the operator's chat without anyone watching the dashboard.

Five conditions are watched, each by polling the database (never by hooks inside
`app.payments`, so the rules of payments stay free of it):

- `order_flagged`: an order got a flag (amount mismatch, paid after the gateway expired it,
  a second payment, ...): the timeline events written with a flag since the last check;
- `callback_disabled`: a client app's callback endpoint was disabled (410 or too many
  failures): open while any app's endpoint is disabled;
- `midtrans_auth`: Midtrans rejected the server key (MidtransAuthError): an order whose last
  error says so since the last check, or a rejected call of the worker itself;
- `notifications_unconfirmed`: a notification still unconfirmed an hour after it arrived;
- `worker_down`: the worker's heartbeat (written every round) is older than WORKER_STALE.

The worker checks all five every minute. A worker cannot see its own absence, so the web
processes check `worker_down` too (on `/readyz` and the dashboard's overview, at most once a
minute per process); the worker's own check closes the condition once it beats again. Every
check locks the condition's row, so the worker and any number of gunicorn workers never send
the same news twice.

A condition opens with news and is announced to ALERT_WEBHOOK_URL at most once per WINDOW:
news arriving within the window waits (merged) for the window's end. An event condition (a
flag, a rejected key) stays open for RECENT after its last news; a state condition (an endpoint
disabled, notifications unconfirmed, the worker silent) while the state lasts. The dashboard's
overview shows the open ones.

The POST is JSON that Slack (`text`) and Discord (`content`) take as it is, with the condition
itself under `alert`; it goes through the callbacks' HTTP client (the same address policy:
`CALLBACK_ALLOWED_HOSTS`, no private addresses, deadline) and is signed per Standard Webhooks
with ALERT_SIGNING_SECRET when one is set.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import JSON, Boolean, Integer, String, Text, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from .callback_sender import CallbackClient
from .database import reading, writing
from .errors import MidtransAuthError
from .extensions import db
from .models import (
    App,
    Notification,
    NotificationOutcome,
    Transaction,
    TransactionEvent,
    UTCDateTime,
    utcnow,
)
from .services import gateway

log = logging.getLogger(__name__)

WINDOW = timedelta(minutes=15)  # at most one alert per condition in this time
RECENT = timedelta(hours=1)  # an event condition stays open this long after its last news
UNCONFIRMED_AFTER = timedelta(hours=1)
WORKER_STALE = timedelta(minutes=10)  # a round (rationed status calls) may take minutes
HEARTBEAT_EVERY = 30.0  # seconds, in the worker
WEB_CHECK_EVERY = 60.0  # seconds, per web process
ITEMS_KEPT = 20  # orders or apps named in one alert at most
TEXT_MAX = 1900  # Discord takes 2000 characters of `content`


class Condition(enum.StrEnum):
    ORDER_FLAGGED = "order_flagged"
    CALLBACK_DISABLED = "callback_disabled"
    MIDTRANS_AUTH = "midtrans_auth"
    NOTIFICATIONS_UNCONFIRMED = "notifications_unconfirmed"
    WORKER_DOWN = "worker_down"


TITLES = {
    Condition.ORDER_FLAGGED: "Order flagged",
    Condition.CALLBACK_DISABLED: "Callback endpoint disabled",
    Condition.MIDTRANS_AUTH: "Midtrans rejected the server key",
    Condition.NOTIFICATIONS_UNCONFIRMED: "Notifications unconfirmed for over an hour",
    Condition.WORKER_DOWN: "Worker not running",
}


class Alert(db.Model):
    """One watched condition: open or closed, its latest news, when it was last sent."""

    __tablename__ = "alerts"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    state: Mapped[str] = mapped_column(String(10), default="closed")  # open | closed
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)  # English, as sent
    facts: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    pending: Mapped[bool] = mapped_column(Boolean, default=False)  # news not sent yet
    last_news_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_count: Mapped[int] = mapped_column(Integer, default=0)
    # Where the last check stopped (an event id, a time), for the conditions made of events.
    cursor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cursor_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def title(self) -> str:
        return TITLES.get(self.key, self.key)


class WorkerHeartbeat(db.Model):
    """The worker's sign of life: `beat_at` is written at every round (at most every 30 s)."""

    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)


# -- what each check finds ------------------------------------------------------------------


@dataclass
class Finding:
    """What a check saw: whether the condition holds now (`active`), and news to announce
    (`summary` and `facts`; None: nothing new)."""

    active: bool
    summary: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)


def _since(row: Alert, now: datetime) -> datetime:
    return row.cursor_at or (now - RECENT)


def _recently(row: Alert, now: datetime) -> bool:
    return row.last_news_at is not None and now - row.last_news_at < RECENT


def check_order_flagged(row: Alert, now: datetime) -> Finding:
    """Timeline events that carry their order's flag (`flag_order` writes the reason on one),
    after the last one seen (the last hour's on the first check)."""
    query = (
        select(TransactionEvent, Transaction)
        .join(Transaction, Transaction.id == TransactionEvent.transaction_id)
        .where(Transaction.flag.isnot(None), TransactionEvent.detail.isnot(None))
        .order_by(TransactionEvent.id)
        .limit(500)
    )
    if row.cursor_id is not None:
        query = query.where(TransactionEvent.id > row.cursor_id)
    else:
        query = query.where(TransactionEvent.created_at >= now - RECENT)
    rows = db.session.execute(query).all()
    if row.cursor_id is None:
        row.cursor_id = db.session.scalar(select(func.max(TransactionEvent.id))) or 0
    if rows:
        row.cursor_id = max(row.cursor_id, rows[-1][0].id)
    orders = {}
    for event, txn in rows:
        if event.detail.startswith(txn.flag):
            orders[txn.id] = {"order_id": txn.order_id, "flag": txn.flag}
    if not orders:
        return Finding(_recently(row, now))
    items = list(orders.values())
    named = "; ".join(f"{o['order_id']}: {o['flag']}" for o in items[:5])
    return Finding(
        True,
        f"{len(items)} order(s) flagged: {named}",
        {"count": len(items), "orders": items[:ITEMS_KEPT]},
    )


def check_callback_disabled(row: Alert, now: datetime) -> Finding:
    disabled = db.session.scalars(
        select(App)
        .where(App.callback_disabled_at.isnot(None), App.callback_url.isnot(None))
        .order_by(App.callback_disabled_at)
    ).all()
    since = _since(row, now)
    new = [a for a in disabled if a.callback_disabled_at > since]
    if new:
        row.cursor_at = max(a.callback_disabled_at for a in new)
    elif row.cursor_at is None:
        row.cursor_at = now
    if not new:
        return Finding(bool(disabled))
    apps = [{"app": a.code, "reason": a.callback_disabled_reason or ""} for a in new]
    named = "; ".join(f"{a['app']} ({a['reason']})" for a in apps[:5])
    return Finding(
        True,
        f"{len(apps)} callback endpoint(s) disabled: {named}",
        {"count": len(apps), "apps": apps[:ITEMS_KEPT]},
    )


AUTH_MESSAGE = MidtransAuthError().message
AUTH_LOOKBACK = timedelta(days=1)
_process_auth_failures = 0.0  # the worker's own rejected calls already counted


def auth_failures_in_process() -> float:
    """Calls of this process that Midtrans rejected for the server key (its metrics)."""
    from .metrics import MIDTRANS_CALLS

    total = 0.0
    for metric in MIDTRANS_CALLS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("outcome") == "auth_failed":
                total += sample.value
    return total


def check_midtrans_auth(row: Alert, now: datetime) -> Finding:
    global _process_auth_failures
    since = _since(row, now)
    orders = db.session.scalars(
        select(Transaction.order_id)
        .where(
            # Orders of the last day (an indexed bound: a key rejected on an older order's
            # renewal is seen by the worker's own calls, which use the same key).
            Transaction.created_at > since - AUTH_LOOKBACK,
            Transaction.last_error == AUTH_MESSAGE,
            Transaction.updated_at > since,
        )
        .limit(ITEMS_KEPT)
    ).all()
    row.cursor_at = now
    seen = auth_failures_in_process()
    calls = max(0, int(seen - _process_auth_failures))
    _process_auth_failures = seen
    if not orders and not calls:
        return Finding(_recently(row, now))
    return Finding(
        True,
        f"{AUTH_MESSAGE} ({len(orders)} order(s) failed, {calls} worker call(s) rejected)",
        {"orders": list(orders), "worker_calls": calls},
    )


def check_notifications_unconfirmed(row: Alert, now: datetime) -> Finding:
    older = now - UNCONFIRMED_AFTER
    count, oldest = db.session.execute(
        select(func.count(), func.min(Notification.received_at)).where(
            Notification.outcome == NotificationOutcome.UNCONFIRMED,
            Notification.received_at < older,
        )
    ).one()
    if not count:
        return Finding(False)
    if row.state == "open":
        return Finding(True)  # announced when it opened
    oldest_text = _iso(_aware(oldest))
    return Finding(
        True,
        f"{count} notification(s) unconfirmed for over an hour (the oldest received "
        f"{oldest_text}): Midtrans's status API cannot confirm them",
        {"count": count, "oldest_received_at": oldest_text},
    )


WORKER = "worker"


def check_worker_down(row: Alert, now: datetime) -> Finding:
    beat = db.session.get(WorkerHeartbeat, WORKER)
    if beat is None:
        return Finding(False)  # no worker ever ran here: nothing to compare with
    last = _aware(beat.beat_at)
    if now - last <= WORKER_STALE:
        return Finding(False)
    if row.state == "open":
        return Finding(True)
    minutes = int((now - last).total_seconds() // 60)
    return Finding(
        True,
        f"no worker heartbeat for {minutes} minutes (last {_iso(last)}): callbacks, "
        "reconciliation and notification confirmation have stopped",
        {"last_heartbeat": _iso(last), "minutes": minutes},
    )


CHECKS = {
    Condition.ORDER_FLAGGED: check_order_flagged,
    Condition.CALLBACK_DISABLED: check_callback_disabled,
    Condition.MIDTRANS_AUTH: check_midtrans_auth,
    Condition.NOTIFICATIONS_UNCONFIRMED: check_notifications_unconfirmed,
    Condition.WORKER_DOWN: check_worker_down,
}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


# -- state, the window, sending -------------------------------------------------------------


def _merge(old: dict | None, new: dict) -> dict:
    """News waiting for the window's end, merged with newer news of the same condition."""
    if not old:
        return new
    merged = dict(new)
    for name in ("orders", "apps"):
        if name in old or name in new:
            merged[name] = (old.get(name, []) + new.get(name, []))[:ITEMS_KEPT]
    for name in ("count", "worker_calls"):
        if isinstance(old.get(name), int) and isinstance(new.get(name), int):
            merged[name] = old[name] + new[name]
    return merged


def _locked(key: str) -> Alert:
    row = db.session.execute(
        select(Alert)
        .where(Alert.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if row is None:
        row = Alert(key=key, state="closed", pending=False, sent_count=0)
        db.session.add(row)
        db.session.flush()
    return row


def apply(row: Alert, finding: Finding, now: datetime, *, sending: bool) -> dict | None:
    """Record `finding` on the (locked) row; the payload to send now, if the window allows."""
    if finding.summary is not None:
        row.facts = _merge(row.facts if row.pending else None, finding.facts)
        row.summary = finding.summary
        if row.pending and row.facts.get("count", 0) > finding.facts.get("count", 0):
            row.summary = f"{finding.summary} (and earlier news: {row.facts['count']} in all)"
        row.pending = True
        row.last_news_at = now
    if finding.active and row.state != "open":
        row.state, row.opened_at, row.closed_at = "open", now, None
    elif not finding.active and row.state == "open":
        row.state, row.closed_at, row.pending = "closed", now, False
    if not row.pending:
        return None
    if not sending:
        row.pending = False  # no webhook: the dashboard shows it, nothing waits
        return None
    last = _aware(row.last_sent_at) if row.last_sent_at else None
    if last is not None and now - last < WINDOW:
        return None  # the window is not over: the news waits
    row.pending = False
    row.last_sent_at = now
    row.sent_count = (row.sent_count or 0) + 1
    return payload(row, now)


def payload(row: Alert, now: datetime) -> dict:
    title = TITLES.get(row.key, row.key)
    text = f"[midtrans-gateway] {title}: {row.summary}"
    if len(text) > TEXT_MAX:
        text = text[: TEXT_MAX - 1] + "\u2026"
    return {
        "text": text,  # Slack
        "content": text,  # Discord
        "alert": {
            "condition": row.key,
            "title": title,
            "state": row.state,
            "summary": row.summary,
            "facts": row.facts or {},
            "opened_at": _iso(_aware(row.opened_at)) if row.opened_at else None,
            "sent_at": _iso(now),
        },
    }


def check(
    conditions: list[Condition] | None = None,
    *,
    now: datetime | None = None,
    settings=None,
) -> list[dict]:
    """Check `conditions` (all by default) and record what they find; the payloads due now,
    each already counted as sent (the caller sends them: `send`)."""
    settings = settings or gateway().settings
    sending = bool(settings.alert_webhook_url)
    due = []
    for condition in conditions or list(Condition):
        moment = now or datetime.now(UTC)
        try:
            with writing():
                row = _locked(condition)
                body = apply(row, CHECKS[condition](row, moment), moment, sending=sending)
        except IntegrityError:
            continue  # another process made the row just now: its check counts this time
        if body is not None:
            due.append(body)
    return due


def alert_client(flask_app: Flask | None = None) -> CallbackClient:
    services = gateway(flask_app)
    return CallbackClient(services.callback_policy, timeout=services.settings.callback_timeout)


def send(body: dict, *, settings, client: CallbackClient) -> bool:
    """POST one alert; whether the endpoint took it (a failure is logged, never raised: the
    next news of the condition is the next try)."""
    raw = json.dumps(body, ensure_ascii=False, sort_keys=True).encode()
    msg_id = f"alert_{body['alert']['condition']}_{secrets.token_hex(8)}"
    signing = [settings.alert_signing_secret] if settings.alert_signing_secret else []
    result = client.deliver(
        settings.alert_webhook_url, msg_id=msg_id, body=raw, secrets_in_use=signing
    )
    if result.delivered:
        log.info("alert %s sent", body["alert"]["condition"])
        return True
    log.warning(
        "alert %s not taken: %s",
        body["alert"]["condition"],
        result.error or f"HTTP {result.status_code}",
    )
    return False


def check_and_send(client: CallbackClient | None = None) -> int:
    """The worker's job: every condition checked, what is due sent; how many were sent."""
    settings = gateway().settings
    due = check()
    client = client or alert_client()
    return sum(send(body, settings=settings, client=client) for body in due)


# -- the worker's heartbeat, and the web processes' look at it ------------------------------


def beat(now: datetime | None = None) -> int:
    """Write the worker's heartbeat (a job of every round); 0: it handled no item."""
    moment = now or datetime.now(UTC)
    with writing():
        row = db.session.get(WorkerHeartbeat, WORKER)
        if row is None:
            db.session.add(WorkerHeartbeat(name=WORKER, beat_at=moment, pid=os.getpid()))
        else:
            row.beat_at, row.pid = moment, os.getpid()
    return 0


_web_lock = threading.Lock()
_web_checked: float | None = None


def check_worker_from_web() -> None:
    """From a web request (`/readyz`, the overview), at most once a minute per process: is
    the worker alive? An alert due is sent on a thread of its own, so the request never waits
    for the chat's endpoint. Never raises: a probe must answer."""
    global _web_checked
    with _web_lock:
        moment = time.monotonic()
        if _web_checked is not None and moment - _web_checked < WEB_CHECK_EVERY:
            return
        _web_checked = moment
    try:
        if not _worker_news():
            return  # a read only: a probe or a page view writes nothing when all is as known
        settings = gateway().settings
        due = check([Condition.WORKER_DOWN], settings=settings)
    except Exception:  # noqa: BLE001 - the database may be down: /readyz says so itself
        log.warning("alerts: the worker check failed", exc_info=True)
        return
    if due:
        client = alert_client(current_app)
        for body in due:
            threading.Thread(
                target=send,
                args=(body,),
                kwargs={"settings": settings, "client": client},
                name="alert",
                daemon=True,
            ).start()


def _worker_news() -> bool:
    """Whether a check of `worker_down` would change anything: the heartbeat's staleness
    differs from the condition's state, or news waits to be sent."""
    with reading():
        heartbeat = db.session.get(WorkerHeartbeat, WORKER)
        row = db.session.get(Alert, Condition.WORKER_DOWN.value)
        stale = (
            heartbeat is not None and datetime.now(UTC) - _aware(heartbeat.beat_at) > WORKER_STALE
        )
        is_open = row is not None and row.state == "open"
        return stale != is_open or (is_open and row.pending)


def open_alerts() -> list[Alert]:
    """The conditions open now, for the dashboard's overview."""
    with reading():
        return list(
            db.session.scalars(select(Alert).where(Alert.state == "open").order_by(Alert.opened_at))
        )
