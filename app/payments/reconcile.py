"""What the worker does on a schedule: ask Midtrans about orders still pending, confirm
notifications that could not be confirmed on arrival, expire links nobody paid.

Midtrans retries a notification only a few times over about six hours, so a lost one would
leave an order "pending" although the customer paid: the most common complaint about payment
integrations. Asking Midtrans ourselves, on a schedule, closes that gap.

Several workers may run at once. Each row is claimed with one conditional UPDATE (claimed
until a time in the future) before it is worked on, which works the same on SQLite and
PostgreSQL, and a claim left by a crashed worker simply runs out.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update

from ..database import begin_write
from ..errors import GatewayError
from ..extensions import db
from ..midtrans import Midtrans
from ..models import EventSource, Notification, NotificationOutcome, Transaction, TxStatus
from .lifecycle import apply_midtrans_status, locked_transaction, record_change
from .notifications import confirm_notification

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=2)
# When to ask Midtrans about a pending order, counted from its link's creation; then daily.
CHECK_OFFSETS = [
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(hours=24),
]
DAILY = timedelta(hours=24)
AFTER_EXPIRY = timedelta(minutes=1)
RETRY_SOON = timedelta(minutes=5)
BATCH = 50


def _claim(model, row_id: int, now: datetime) -> bool:
    """Take a row for this worker; False when another worker holds it."""
    result = db.session.execute(
        update(model)
        .where(model.id == row_id)
        .where(or_(model.claimed_until.is_(None), model.claimed_until < now))
        .values(claimed_until=now + CLAIM_LEASE)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def _due(model, due_column, now: datetime, limit: int, *extra) -> list[int]:
    ids = db.session.execute(
        select(model.id)
        .where(due_column.is_not(None), due_column <= now, *extra)
        .where(or_(model.claimed_until.is_(None), model.claimed_until < now))
        .order_by(due_column)
        .limit(limit)
    ).scalars()
    result = list(ids)
    db.session.commit()
    return result


def next_check(txn: Transaction, now: datetime, answer: dict | None) -> datetime | None:
    """When to ask again about a still-pending order."""
    if txn.status != TxStatus.PENDING and not (
        txn.status == TxStatus.CAPTURE and txn.fraud_status == "challenge"
    ):
        return None
    if txn.check_count < len(CHECK_OFFSETS):
        when = txn.attempt_started_at + CHECK_OFFSETS[txn.check_count]
    else:
        when = now + DAILY
    deadline = _payment_deadline(txn, answer)
    if deadline is not None and now < deadline + AFTER_EXPIRY < when:
        when = deadline + AFTER_EXPIRY  # look again right after it can no longer be paid
    return max(when, now + timedelta(seconds=1))


def _payment_deadline(txn: Transaction, answer: dict | None) -> datetime | None:
    """Midtrans's expiry_time of the chosen method (Jakarta time), else the link's expiry."""
    expiry = (answer or {}).get("expiry_time")
    if isinstance(expiry, str):
        try:
            local = datetime.strptime(expiry, "%Y-%m-%d %H:%M:%S")
            return (local - timedelta(hours=7)).replace(tzinfo=UTC)
        except ValueError:
            pass
    return txn.expires_at


def reconcile_order(txn_id: int, *, midtrans: Midtrans, now: datetime) -> str:
    """Ask Midtrans about one claimed order and apply its answer; what happened, in a word."""
    txn = db.session.get(Transaction, txn_id, populate_existing=True)
    ident = txn.midtrans_order_id
    db.session.commit()
    try:
        answer = midtrans.get_status(ident)
    except GatewayError as err:
        log.warning("reconcile %s: %s", ident, err.message)
        _reschedule(txn_id, now + RETRY_SOON)
        return "error"
    if answer is not None:
        txn, applied = apply_midtrans_status(txn_id, answer, source=EventSource.RECONCILIATION)
        outcome = str(applied)
    else:
        outcome = "unchanged"
        if txn.expires_at is not None and now >= txn.expires_at + AFTER_EXPIRY:
            # The customer never picked a payment method and the link is dead.
            begin_write()
            txn = locked_transaction(txn_id)
            if txn.status == TxStatus.PENDING:
                record_change(
                    txn,
                    TxStatus.EXPIRE,
                    fraud_status=None,
                    source=EventSource.RECONCILIATION,
                    detail="Snap link expired unpaid (Midtrans has no transaction)",
                )
                outcome = "expired"
            db.session.commit()
    begin_write()
    txn = locked_transaction(txn_id)
    txn.check_count += 1
    txn.next_check_at = next_check(txn, now, answer)
    txn.claimed_until = None
    db.session.commit()
    return outcome


def _reschedule(txn_id: int, when: datetime) -> None:
    """Midtrans could not be asked: try again soon, without spending a scheduled check."""
    begin_write()
    txn = locked_transaction(txn_id)
    txn.next_check_at = when if txn.next_check_at is not None else None
    txn.claimed_until = None
    db.session.commit()


def reconcile_due_orders(*, midtrans: Midtrans, now: datetime | None = None) -> int:
    """Check every order whose turn has come; how many were checked."""
    now = now or datetime.now(UTC)
    done = 0
    for txn_id in _due(Transaction, Transaction.next_check_at, now, BATCH):
        if _claim(Transaction, txn_id, now):
            outcome = reconcile_order(txn_id, midtrans=midtrans, now=now)
            log.info("reconciled transaction %s: %s", txn_id, outcome)
            done += 1
    return done


def confirm_due_notifications(*, midtrans: Midtrans, now: datetime | None = None) -> int:
    """Confirm the notifications the status API could not confirm on arrival."""
    now = now or datetime.now(UTC)
    done = 0
    due = _due(
        Notification,
        Notification.next_attempt_at,
        now,
        BATCH,
        Notification.outcome == NotificationOutcome.UNCONFIRMED,
    )
    for note_id in due:
        if _claim(Notification, note_id, now):
            receipt = confirm_notification(note_id, midtrans=midtrans)
            log.info("notification %s confirmed: %s", note_id, receipt.outcome)
            done += 1
    return done
