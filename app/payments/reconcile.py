"""What the worker does on a schedule: ask Midtrans about orders still pending, confirm
notifications that could not be confirmed on arrival, expire links nobody paid, settle Snap
calls a crashed process left unfinished.

Midtrans retries a notification only a few times over about six hours, so a lost one would
leave an order "pending" although the customer paid: the most common complaint about payment
integrations. Asking Midtrans ourselves, on a schedule, closes that gap.

Several workers may run at once. Each row is claimed with one conditional UPDATE (claimed
until a time in the future) before it is worked on, which works the same on SQLite and
PostgreSQL, and a claim left by a crashed worker simply runs out.

Status calls are rationed (`StatusCallBudget`): after the worker was stopped for a long time,
a backlog of overdue orders drains at a bounded rate instead of hitting Midtrans all at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import literal, or_, select, update

from ..database import reading, writing
from ..errors import GatewayError
from ..extensions import db
from ..midtrans import Midtrans
from ..models import (
    EventSource,
    LinkState,
    Notification,
    NotificationOutcome,
    Transaction,
)
from .charges import ATTEMPT_GRACE
from .lifecycle import (
    apply_midtrans_status,
    expire_unpaid_link,
    flag_order,
    locked_transaction,
)
from .notifications import confirm_notification
from .outcomes import needs_checking

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=2)
# When to ask Midtrans about a pending order, counted from its link's creation; then daily.
# Offsets that passed while the worker was stopped are skipped, not made up one by one.
CHECK_OFFSETS = [
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(hours=24),
]
DAILY = timedelta(hours=24)
# Never ask about the same order again sooner than this after a check.
MIN_GAP = timedelta(minutes=1)
AFTER_EXPIRY = timedelta(minutes=1)
RETRY_SOON = timedelta(minutes=5)
# An order the gateway expired itself (no Midtrans transaction when its link died) is still
# asked about once a day this many times, in case the notification of a late payment is lost.
CHECKS_AFTER_GATEWAY_EXPIRY = 3
# Status calls the reconciler makes per minute at most (per worker process); the rest wait.
STATUS_CALLS_PER_MINUTE = 120
BATCH = 50


class StatusCallBudget:
    """At most `per_minute` status calls in any 60 seconds (a sliding window).

    The worker keeps one for its whole life, so a backlog of overdue orders is drained at a
    bounded rate across rounds; the orders beyond it are left as they are (not claimed, their
    `next_check_at` untouched) and come up again when the window has room.
    """

    WINDOW = 60.0

    def __init__(
        self,
        per_minute: int = STATUS_CALLS_PER_MINUTE,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self._clock = clock
        self._spent: deque[float] = deque()

    def remaining(self) -> int:
        now = self._clock()
        while self._spent and self._spent[0] <= now - self.WINDOW:
            self._spent.popleft()
        return self.per_minute - len(self._spent)

    def take(self) -> bool:
        """Spend one call; False when this minute's calls are used up."""
        if self.remaining() <= 0:
            return False
        self._spent.append(self._clock())
        return True

    def give_back(self) -> None:
        """Return the call last taken (it was not made: another worker had the row)."""
        if self._spent:
            self._spent.pop()


def _claim(model, row_id: int, now: datetime) -> bool:
    """Take a row for this worker; False when another worker holds it."""
    with writing():
        result = db.session.execute(
            update(model)
            .where(model.id == row_id)
            .where(or_(model.claimed_until.is_(None), model.claimed_until < now))
            .values(claimed_until=now + CLAIM_LEASE)
            .execution_options(synchronize_session=False)
        )
    return result.rowcount == 1


def _due(model, due_column, now: datetime, limit: int, *extra) -> list[int]:
    with reading():
        return list(
            db.session.execute(
                select(model.id)
                .where(due_column.is_not(None), due_column <= now, *extra)
                .where(or_(model.claimed_until.is_(None), model.claimed_until < now))
                .order_by(due_column)
                .limit(limit)
            ).scalars()
        )


def next_check(txn: Transaction, now: datetime, answer: dict | None) -> tuple[datetime | None, int]:
    """When to ask Midtrans again about an order just checked, and the new `check_count`.

    An order awaiting Midtrans is asked at the first of CHECK_OFFSETS (from its link's
    creation) still ahead, `check_count` being that offset's position, then daily; right
    after its payment deadline; never sooner than MIN_GAP. An order the gateway expired
    itself is asked once a day, CHECKS_AFTER_GATEWAY_EXPIRY times (`check_count` counts
    them). Any other order is not asked again.
    """
    if needs_checking(txn.status, txn.fraud_status):
        return _scheduled(txn, now, answer)
    if txn.status_by_gateway and txn.check_count + 1 < CHECKS_AFTER_GATEWAY_EXPIRY:
        return now + DAILY, txn.check_count + 1
    return None, txn.check_count + 1


def _scheduled(txn: Transaction, now: datetime, answer: dict | None) -> tuple[datetime, int]:
    """The next check of an order awaiting Midtrans: the missed offsets are skipped."""
    position = len(CHECK_OFFSETS)
    when = now + DAILY
    for index, offset in enumerate(CHECK_OFFSETS):
        if txn.attempt_started_at + offset > now:
            position, when = index, txn.attempt_started_at + offset
            break
    deadline = _payment_deadline(txn, answer)
    if deadline is not None and now < deadline + AFTER_EXPIRY < when:
        when = deadline + AFTER_EXPIRY  # look again right after it can no longer be paid
    return max(when, now + MIN_GAP), position


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
    with reading():
        txn = db.session.get(Transaction, txn_id, populate_existing=True)
        ident, attempt = txn.midtrans_order_id, txn.attempt
    try:
        answer = midtrans.get_status(ident)
    except GatewayError as err:
        log.warning("reconcile %s: %s", ident, err.message)
        _reschedule(txn_id, now + RETRY_SOON)
        return "error"
    outcome = "unchanged"
    if answer is not None:
        txn, applied = apply_midtrans_status(txn_id, answer, source=EventSource.RECONCILIATION)
        outcome = str(applied)
    with writing():
        txn = locked_transaction(txn_id)
        # The customer never picked a payment method and the link is dead: the gateway
        # expires it and keeps asking a few days in case a payment does turn up.
        if answer is None and expire_unpaid_link(
            txn,
            attempt,
            source=EventSource.RECONCILIATION,
            detail="Snap link expired unpaid (Midtrans has no transaction)",
            now=now,
            grace=AFTER_EXPIRY,
        ):
            txn.next_check_at, txn.check_count = now + DAILY, 0
            outcome = "expired"
        else:
            txn.next_check_at, txn.check_count = next_check(txn, now, answer)
        txn.claimed_until = None
    return outcome


def _reschedule(txn_id: int, when: datetime) -> None:
    """Midtrans could not be asked: try again soon, without spending a scheduled check."""
    with writing():
        txn = locked_transaction(txn_id)
        txn.next_check_at = when if txn.next_check_at is not None else None
        txn.claimed_until = None


def reconcile_due_orders(
    *, midtrans: Midtrans, now: datetime | None = None, budget: StatusCallBudget | None = None
) -> int:
    """Check the orders whose turn has come, one status call each, as many as `budget` allows
    (a fresh STATUS_CALLS_PER_MINUTE when none is given); how many were checked."""
    now = now or datetime.now(UTC)
    budget = budget or StatusCallBudget()
    room = min(BATCH, budget.remaining())
    if room <= 0:
        return 0
    due = _due(Transaction, Transaction.next_check_at, now, room)
    return _each_claimed(due, budget, now, "reconciled", reconcile_order, midtrans=midtrans)


def _each_claimed(ids, budget: StatusCallBudget, now: datetime, done_as: str, work, **kw) -> int:
    """Claim each order in turn and work on it (one status call each) while the budget
    lasts; an order another worker holds costs nothing. How many were worked on."""
    done = 0
    for txn_id in ids:
        if not budget.take():
            break
        if not _claim(Transaction, txn_id, now):
            budget.give_back()
            continue
        outcome = work(txn_id, now=now, **kw)
        log.info("%s transaction %s: %s", done_as, txn_id, outcome)
        done += 1
    return done


# -- attempts a crashed process left `creating` ----------------------------------------------


def attempt_deadline(midtrans: Midtrans) -> timedelta:
    """How long after its start a Snap call has surely ended, answered or not (as /charge
    reckons it)."""
    return timedelta(seconds=midtrans.settings.timeout) + ATTEMPT_GRACE


def settle_abandoned_attempts(
    *, midtrans: Midtrans, now: datetime | None = None, budget: StatusCallBudget | None = None
) -> int:
    """Settle the attempts a process that died during its Snap call left `creating`.

    Nobody else will finish them: the row would stay `creating` for good, and a Snap order
    may exist at Midtrans (even be paid) that no client was ever shown. Each is asked about
    once; how many were settled or found finished.
    """
    now = now or datetime.now(UTC)
    budget = budget or StatusCallBudget()
    room = min(BATCH, budget.remaining())
    if room <= 0:
        return 0
    cutoff = now - attempt_deadline(midtrans)
    # `creating` is written into the SQL, not bound: PostgreSQL's generic plan for a prepared
    # statement (psycopg prepares repeated ones) can then use a partial index on
    # attempt_started_at WHERE link_state = 'creating', which covers only the calls in flight.
    with reading():
        ids = list(
            db.session.execute(
                select(Transaction.id)
                .where(
                    Transaction.link_state
                    == literal(str(LinkState.CREATING), literal_execute=True),
                    Transaction.attempt_started_at < cutoff,
                )
                .where(or_(Transaction.claimed_until.is_(None), Transaction.claimed_until < now))
                .order_by(Transaction.attempt_started_at)
                .limit(room)
            ).scalars()
        )
    return _each_claimed(
        ids, budget, now, "abandoned attempt of", settle_attempt, midtrans=midtrans
    )


def settle_attempt(txn_id: int, *, midtrans: Midtrans, now: datetime) -> str:
    """Ask Midtrans about one claimed, abandoned attempt and settle it; what happened.

    No transaction at Midtrans: the link state becomes `unknown` (a Snap order may exist
    there unseen, so the next /charge uses a fresh Midtrans order id). A transaction: the
    same, its status is applied and the order flagged, as someone paid (or began paying) on
    a link no client was shown. Midtrans unreachable: left for the next pass.
    """
    with reading():
        txn = db.session.get(Transaction, txn_id, populate_existing=True)
        ident, attempt = txn.midtrans_order_id, txn.attempt
        abandoned = _is_abandoned(txn, attempt, now, midtrans)
    if not abandoned:
        _release(txn_id)
        return "finished meanwhile"
    try:
        answer = midtrans.get_status(ident)
    except GatewayError as err:
        log.warning("abandoned attempt %s: %s", ident, err.message)
        _release(txn_id)
        return "error"
    with writing():
        txn = locked_transaction(txn_id)
        txn.claimed_until = None
        if not _is_abandoned(txn, attempt, now, midtrans):
            # The Snap call ended after all, or a /charge started a new attempt: not ours.
            return "finished meanwhile"
        _settle_abandoned(txn, attempt, answer, now)
    if answer is None:
        return "abandoned"
    apply_midtrans_status(txn_id, answer, source=EventSource.RECONCILIATION)
    return "flagged"


def _settle_abandoned(txn: Transaction, attempt: int, answer: dict | None, now: datetime) -> None:
    """The (locked) order's abandoned attempt ends `unknown`; with a transaction at Midtrans
    the order is flagged, and watched while that transaction may still move."""
    txn.link_state = LinkState.UNKNOWN
    if answer is None:
        txn.last_error = (
            f"attempt {attempt} abandoned: its Snap call never finished (the gateway process "
            "likely died); Midtrans has no transaction for it"
        )
        return
    found = str(answer.get("transaction_status") or "unknown")
    txn.last_error = (
        f"attempt {attempt} abandoned: its Snap call never finished (the gateway process "
        f"likely died), yet Midtrans has a transaction ({found}) for it"
    )
    flag_order(
        txn,
        f"Midtrans has a transaction ({found}) for {txn.midtrans_order_id}, a Snap link no "
        "client was shown (its attempt was abandoned): check the payment",
        source=EventSource.RECONCILIATION,
    )
    if needs_checking(answer.get("transaction_status"), answer.get("fraud_status")):
        txn.next_check_at, txn.check_count = _scheduled(txn, now, answer)


def _is_abandoned(txn: Transaction, attempt: int, now: datetime, midtrans: Midtrans) -> bool:
    return (
        txn.attempt == attempt
        and txn.link_state == LinkState.CREATING
        and txn.attempt_started_at < now - attempt_deadline(midtrans)
    )


def _release(txn_id: int) -> None:
    with writing():
        db.session.execute(
            update(Transaction)
            .where(Transaction.id == txn_id)
            .values(claimed_until=None)
            .execution_options(synchronize_session=False)
        )


def confirm_due_notifications(
    *, midtrans: Midtrans, now: datetime | None = None, stop: threading.Event | None = None
) -> int:
    """Confirm the notifications the status API could not confirm on arrival (not rationed:
    a backlog must never delay a real payment), up to when `stop` is set (SIGTERM)."""
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
        if stop is not None and stop.is_set():
            break
        if _claim(Notification, note_id, now):
            receipt = confirm_notification(note_id, midtrans=midtrans)
            log.info("notification %s confirmed: %s", note_id, receipt.outcome)
            done += 1
    return done
