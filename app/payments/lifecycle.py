"""The order lifecycle: which status may follow which, applying Midtrans's word, the status
object clients see. Every source of truth (status call, notification, reconciliation, admin)
goes through `apply_midtrans_status`, so the ordering rules live in one place."""

from __future__ import annotations

import enum
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from ..database import lock_row, reading, writing
from ..extensions import db
from ..midtrans import STATUS_API_CODES
from ..models import (
    EventSource,
    LinkState,
    PaymentAttempt,
    Transaction,
    TransactionEvent,
    TxStatus,
)
from ..schemas import ECHOED_FIELDS
from .callbacks import enqueue_update
from .outcomes import (
    PARTLY_REVERSED,
    UNSUCCESSFUL,
    Outcome,
    check_amount,
    is_paid,
    needs_checking,
    outcome_of,
    refunded_total,
)

log = logging.getLogger(__name__)

# When the worker first asks about an order that is waiting on Midtrans again.
RECHECK_SOON = timedelta(minutes=2)

# The moves Midtrans makes from each status. Anything else is stale or a replay and is
# ignored: pending never overwrites settlement; settlement may still be refunded, charged
# back, or reversed to deny; failures and full refunds are final.
NEXT: dict[str, set[str]] = {
    TxStatus.PENDING: set(TxStatus) - {TxStatus.PENDING},
    TxStatus.AUTHORIZE: {
        TxStatus.CAPTURE,
        TxStatus.SETTLEMENT,
        TxStatus.CANCEL,
        TxStatus.DENY,
        TxStatus.EXPIRE,
        TxStatus.FAILURE,
    },
    TxStatus.CAPTURE: {
        TxStatus.SETTLEMENT,
        TxStatus.CANCEL,
        TxStatus.DENY,
        TxStatus.REFUND,
        TxStatus.PARTIAL_REFUND,
        TxStatus.CHARGEBACK,
        TxStatus.PARTIAL_CHARGEBACK,
    },
    TxStatus.SETTLEMENT: {
        TxStatus.REFUND,
        TxStatus.PARTIAL_REFUND,
        TxStatus.CHARGEBACK,
        TxStatus.PARTIAL_CHARGEBACK,
        TxStatus.DENY,
    },
    TxStatus.PARTIAL_REFUND: {TxStatus.REFUND, TxStatus.CHARGEBACK, TxStatus.PARTIAL_CHARGEBACK},
    TxStatus.PARTIAL_CHARGEBACK: {TxStatus.CHARGEBACK},
}


def _closure(moves: dict[str, set[str]]) -> dict[str, set[str]]:
    """Every status reachable from each one: the status API reports the truth now, so an
    order may jump over states whose answers it never saw (authorize -> chargeback)."""
    reach = {status: set(nxt) for status, nxt in moves.items()}
    changed = True
    while changed:
        changed = False
        for targets in reach.values():
            extra = set().union(*(reach.get(t, set()) for t in targets)) - targets
            if extra:
                targets |= extra
                changed = True
    return reach


FORWARD = _closure(NEXT)

# Fields of Midtrans's status answer a client must never see.
PRIVATE_FIELDS = {"signature_key", "merchant_id"}


def can_move(current: str, new: str, *, current_fraud: str | None, new_fraud: str | None) -> bool:
    """Whether Midtrans saying `new` should change an order that is `current`."""
    if new == current:
        # A challenged capture settles its fraud review (challenge -> accept or deny) in place;
        # a partial refund or chargeback may grow.
        if current_fraud == "challenge" and new_fraud in {"accept", "deny"}:
            return True
        return new in PARTLY_REVERSED
    return new in FORWARD.get(current, set())


def locked_transaction(txn_id: int) -> Transaction:
    return lock_row(Transaction, txn_id)


def order_of_midtrans_id(midtrans_order_id: str) -> Transaction | None:
    """The order that used this Midtrans order id, for its current attempt or an earlier
    one (a renewed order's first link, paid late), in the caller's unit; None if none."""
    txn = db.session.execute(
        select(Transaction).where(Transaction.midtrans_order_id == midtrans_order_id)
    ).scalar_one_or_none()
    if txn is not None:
        return txn
    return db.session.execute(
        select(Transaction)
        .join(PaymentAttempt, PaymentAttempt.transaction_id == Transaction.id)
        .where(PaymentAttempt.midtrans_order_id == midtrans_order_id)
    ).scalar_one_or_none()


def record_attempt_id(txn: Transaction, midtrans_order_id: str) -> None:
    """Keep a Midtrans order id an attempt of the (flushed) order uses, with its amount."""
    txn.midtrans_order_ids = [*(txn.midtrans_order_ids or []), midtrans_order_id]
    db.session.add(
        PaymentAttempt(
            transaction_id=txn.id, midtrans_order_id=midtrans_order_id, amount=txn.amount
        )
    )


def keep_current_attempt_id(txn: Transaction) -> None:
    """Before the (locked) order moves to a new Midtrans order id: its current one has its
    row (an order rebuilt after a restore got none) with the amount its last attempt charged
    (an id used again after a refused or unopened attempt may have charged another amount),
    so Midtrans's later word about it still finds the order and is judged by that amount."""
    kept = db.session.execute(
        select(PaymentAttempt).where(PaymentAttempt.midtrans_order_id == txn.midtrans_order_id)
    ).scalar_one_or_none()
    if kept is None:
        db.session.add(
            PaymentAttempt(
                transaction_id=txn.id, midtrans_order_id=txn.midtrans_order_id, amount=txn.amount
            )
        )
    else:
        kept.amount = txn.amount


def attempt_amount(txn: Transaction, midtrans_order_id: str) -> int:
    """What the order's attempt under this Midtrans order id charged (a renewal may have
    changed the amount since), in the caller's unit."""
    if midtrans_order_id == txn.midtrans_order_id:
        return txn.amount
    amount = db.session.execute(
        select(PaymentAttempt.amount).where(
            PaymentAttempt.midtrans_order_id == midtrans_order_id,
            PaymentAttempt.transaction_id == txn.id,
        )
    ).scalar_one_or_none()
    return amount if amount is not None else txn.amount


def link_alive(txn: Transaction, now: datetime | None = None) -> bool:
    """Whether the order's link (or Core payment details) can still lead to a payment: made,
    still waiting for the payer, and its deadline not passed. A dead link is never served."""
    if txn.link_state != LinkState.CREATED or outcome_of(txn.status, txn.fraud_status) != (
        Outcome.PENDING
    ):
        return False
    return txn.expires_at is None or (now or datetime.now(UTC)) < txn.expires_at


def expire_unpaid_link(
    txn: Transaction,
    attempt: int,
    *,
    source: EventSource,
    detail: str,
    now: datetime | None = None,
    grace: timedelta = timedelta(0),
) -> bool:
    """Midtrans has no transaction for the (locked) order's attempt `attempt` and its link is
    dead (`grace` past its deadline): the gateway expires the order in its own name
    (`status_by_gateway`), so a payment Midtrans reports later still wins, flagged. False,
    changing nothing, when the order moved on meanwhile (another attempt, a payment)."""
    if not (
        txn.attempt == attempt
        and txn.link_state == LinkState.CREATED
        and txn.status == TxStatus.PENDING
        and txn.expires_at is not None
        and (now or datetime.now(UTC)) >= txn.expires_at + grace
    ):
        return False
    record_change(txn, TxStatus.EXPIRE, fraud_status=None, source=source, detail=detail)
    txn.status_by_gateway = True
    return True


class Applied(enum.StrEnum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    FLAGGED = "flagged"


def record_change(
    txn: Transaction,
    new: str,
    *,
    fraud_status: str | None,
    source: EventSource,
    notification_id: int | None = None,
    detail: str | None = None,
    flag: bool = False,
) -> TransactionEvent:
    """Move the (locked) order to `new`, log the move and queue the app's callback, all in
    the caller's transaction: the change and its callback commit together or not at all.
    With `flag`, `detail` is also why a person must look at the order (`flag_order`)."""
    event = TransactionEvent(
        transaction_id=txn.id,
        from_status=txn.status,
        to_status=new,
        fraud_status=fraud_status,
        source=source,
        notification_id=notification_id,
        detail=detail,
    )
    db.session.add(event)
    txn.status, txn.fraud_status = new, fraud_status
    if not needs_checking(new, fraud_status):
        txn.next_check_at = None  # settled one way or the other: nothing left to reconcile
    elif txn.next_check_at is None:
        txn.next_check_at = datetime.now(UTC) + RECHECK_SOON  # waiting on Midtrans again
    enqueue_update(txn, status_view(txn, live=True))
    if flag:
        flag_order(txn, detail, source=source, notification_id=notification_id, event=event)
    return event


def flag_order(
    txn: Transaction,
    reason: str,
    *,
    source: EventSource,
    notification_id: int | None = None,
    detail: str | None = None,
    event: TransactionEvent | None = None,
) -> TransactionEvent:
    """Put the (locked) order in front of a person: `reason` is its flag, and its timeline
    always says why. The reason goes on `event` when the flag comes with a change of status
    (its detail), else on an event of its own (`detail`, when given, is the longer text)."""
    log.error("order %s flagged: %s", txn.midtrans_order_id, reason)
    txn.flag = reason[:255]
    if event is None:
        event = TransactionEvent(
            transaction_id=txn.id,
            from_status=txn.status,
            to_status=txn.status,
            fraud_status=txn.fraud_status,
            source=source,
            notification_id=notification_id,
            detail=detail or reason,
        )
        db.session.add(event)
    return event


def _repeats(txn: Transaction, answer: dict[str, Any]) -> bool:
    """True when Midtrans repeats what the order already holds: then no write (and on SQLite
    no write lock) is needed, which is the common case of `GET /status` and duplicates."""
    kept = {k: v for k, v in answer.items() if k not in PRIVATE_FIELDS}
    return (
        txn.midtrans_response == kept
        and txn.status == answer.get("transaction_status")
        and txn.fraud_status == answer.get("fraud_status")
    )


def apply_midtrans_status(
    txn_id: int,
    answer: dict[str, Any],
    *,
    source: EventSource,
    notification_id: int | None = None,
) -> tuple[Transaction, Applied]:
    """Apply a status Midtrans confirmed, if it moves the order forward; log the change.

    An answer about another order, or for another amount, is flagged for an admin and never
    applied: a client that ships goods on a wrong "settlement" loses money. A fee Midtrans's
    fee imposition added is not a mismatch when the order's part equals the order's amount.
    Midtrans's word always beats a status the gateway set itself (a link it expired): that
    correction is applied and flagged for a person, never dropped.
    """
    with reading():
        txn = db.session.get(Transaction, txn_id, populate_existing=True)
        if _repeats(txn, answer):
            return txn, Applied.UNCHANGED
    with writing():
        txn = locked_transaction(txn_id)
        return txn, _apply(txn, answer, source=source, notification_id=notification_id)


def apply_in_unit(
    txn: Transaction,
    answer: dict[str, Any],
    *,
    source: EventSource,
    notification_id: int | None = None,
) -> Applied:
    """`apply_midtrans_status` on an order the caller has locked, in the caller's unit."""
    return _apply(txn, answer, source=source, notification_id=notification_id)


def _apply(
    txn: Transaction, answer: dict[str, Any], *, source: EventSource, notification_id: int | None
) -> Applied:
    """`apply_midtrans_status` on the locked order, in the caller's unit."""
    new = str(answer.get("transaction_status") or "")
    new_fraud = answer.get("fraud_status")
    answered_for = answer.get("order_id")
    if (
        answered_for is not None
        and answered_for != txn.midtrans_order_id
        and answered_for in (txn.midtrans_order_ids or [])
    ):
        return _earlier_attempt(txn, str(answered_for), answer, source, notification_id)
    if answered_for is not None and answered_for != txn.midtrans_order_id:
        flag_order(
            txn,
            f"Midtrans answered for order {answered_for!s:.60}; {new} not applied",
            source=source,
            notification_id=notification_id,
        )
        return Applied.FLAGGED
    txn.midtrans_response = {k: v for k, v in answer.items() if k not in PRIVATE_FIELDS}
    txn.payment_type = answer.get("payment_type") or txn.payment_type
    txn.midtrans_transaction_id = answer.get("transaction_id") or txn.midtrans_transaction_id
    amount = check_amount(answer, txn.amount)
    refunded = refunded_total(answer)
    if new and amount.fee is not None:
        txn.customer_imposed_fee = amount.fee
    if new and not amount.fits:
        flag_order(
            txn,
            f"amount mismatch: {amount.reason}; {new} not applied",
            source=source,
            notification_id=notification_id,
        )
        return Applied.FLAGGED
    if not (new and _moves(txn, new, new_fraud, refunded)):
        _keep_fraud_status(txn, new, new_fraud)
        return Applied.UNCHANGED
    if new == TxStatus.REFUND and refunded is None:
        refunded = txn.amount + (txn.customer_imposed_fee or 0)
    if refunded is not None:
        txn.refunded_amount = max(refunded, txn.refunded_amount or 0)
    reason = _correction(txn, new, new_fraud)
    if reason is not None:
        txn.status_by_gateway = False
    record_change(
        txn,
        new,
        fraud_status=new_fraud,
        source=source,
        notification_id=notification_id,
        detail=reason,
        flag=reason is not None,
    )
    return Applied.CHANGED


def _earlier_attempt(
    txn: Transaction,
    midtrans_order_id: str,
    answer: dict[str, Any],
    source: EventSource,
    notification_id: int | None,
) -> Applied:
    """Midtrans's word about an earlier attempt of the (locked) order, one it left behind
    when it was renewed or retried. That attempt failing is no news. A payer still paying
    it, or money taken under it, is put in front of a person; money taken while the order
    has none under its current attempt makes that attempt the order's payment (applied,
    flagged: the newer link may still be paid too), never lost."""
    new = str(answer.get("transaction_status") or "")
    new_fraud = answer.get("fraud_status")
    outcome = outcome_of(new, new_fraud)
    if not new or outcome in UNSUCCESSFUL:
        return Applied.UNCHANGED
    if outcome == Outcome.PENDING:
        reason = (
            f"Midtrans has a pending payment under {midtrans_order_id}, an earlier attempt "
            "of this order: the payer may still pay it"
        )
        if txn.flag == reason:
            return Applied.UNCHANGED
        flag_order(txn, reason, source=source, notification_id=notification_id)
        return Applied.FLAGGED
    current = outcome_of(txn.status, txn.fraud_status)
    if current not in UNSUCCESSFUL and current != Outcome.PENDING:
        reason = (
            f"second payment: Midtrans says {new} under {midtrans_order_id}, an earlier "
            f"attempt, while the order is {current} under {txn.midtrans_order_id}: refund one"
        )
        if txn.flag != reason:
            flag_order(txn, reason, source=source, notification_id=notification_id)
        return Applied.FLAGGED
    charged = attempt_amount(txn, midtrans_order_id)
    amount = check_amount(answer, charged)
    if not amount.fits:
        flag_order(
            txn,
            f"amount mismatch under earlier attempt {midtrans_order_id}: {amount.reason}; "
            f"{new} not applied",
            source=source,
            notification_id=notification_id,
        )
        return Applied.FLAGGED
    newer = txn.midtrans_order_id
    # The order's payment is now the one under the earlier attempt: its link, not the newer
    # one's, is what was paid; the newer link is no longer served.
    txn.midtrans_order_id = midtrans_order_id
    txn.amount = charged
    txn.snap_token = txn.redirect_url = None
    txn.payment_details = None
    txn.status_by_gateway = False
    txn.midtrans_response = {k: v for k, v in answer.items() if k not in PRIVATE_FIELDS}
    txn.payment_type = answer.get("payment_type") or txn.payment_type
    txn.midtrans_transaction_id = answer.get("transaction_id")
    txn.customer_imposed_fee = amount.fee
    refunded = refunded_total(answer)
    txn.refunded_amount = refunded or 0
    reason = (
        f"paid under an earlier attempt {midtrans_order_id} (Midtrans says {new}) after the "
        f"order got a newer one ({newer}): make sure the newer one is not paid too"
    )
    record_change(
        txn,
        new,
        fraud_status=new_fraud,
        source=source,
        notification_id=notification_id,
        detail=reason,
        flag=True,
    )
    return Applied.CHANGED


def _moves(txn: Transaction, new: str, new_fraud: str | None, refunded: int | None) -> bool:
    """Whether Midtrans saying `new` (with `refunded` given back in all) changes the order."""
    if txn.status_by_gateway:
        if new == txn.status:
            txn.status_by_gateway = False  # Midtrans agrees: now it is its word
            return False
        return True
    if new == txn.status and new in PARTLY_REVERSED:
        # The same partial refund reported again (the refund's answer, then its
        # notification) is no change; only a growing amount is a new one.
        return refunded is not None and refunded > (txn.refunded_amount or 0)
    return can_move(txn.status, new, current_fraud=txn.fraud_status, new_fraud=new_fraud)


def _keep_fraud_status(txn: Transaction, new: str, new_fraud: str | None) -> None:
    """Midtrans's fraud_status for the status the (locked) order already has is kept as it
    says (a pending Core charge's `accept`), like its other fields: no move, no callback.
    Only when it changes nothing the order means: a capture's review is a move (`can_move`),
    and no word (None) never erases one."""
    if (
        new == txn.status
        and new_fraud is not None
        and new_fraud != txn.fraud_status
        and outcome_of(new, new_fraud) == outcome_of(txn.status, txn.fraud_status)
    ):
        txn.fraud_status = new_fraud


REOPENED = "after the gateway marked the order"


def _correction(txn: Transaction, new: str, new_fraud: str | None) -> str | None:
    """Why the order is flagged when Midtrans overrides a status the gateway set itself (None
    when it does not). An order reopened that way (a method chosen late) and then paid says
    so when paid."""
    reopened = bool(txn.flag and REOPENED in txn.flag)
    if not txn.status_by_gateway and not (reopened and is_paid(new, new_fraud)):
        return None
    if is_paid(new, new_fraud):
        return f"paid after the gateway expired it (Midtrans says {new})"
    return f"Midtrans says {new} {REOPENED} {txn.status}"


def status_view(
    txn: Transaction, answer: dict[str, Any] | None = None, *, live: bool
) -> dict[str, Any]:
    """The object `GET /status` answers (and, later, callbacks carry).

    Midtrans's fields and payment instructions come from its answer (or the last one kept),
    but the order id is the client's and the status is the one this gateway holds.
    """
    source = answer if answer is not None else (txn.midtrans_response or {})
    alive = link_alive(txn)
    view = {}
    if alive and txn.payment_details:
        # A Core charge's payment details (VA number, QR, ...): the status API does not repeat
        # them all (`actions`), and the payer needs them while the payment is pending.
        view.update(txn.payment_details)
    view.update({k: v for k, v in source.items() if k not in PRIVATE_FIELDS})
    view.update(
        {
            "order_id": txn.order_id,
            "id": source.get("transaction_id") or txn.midtrans_transaction_id,
            "transaction_status": txn.status,
            "fraud_status": txn.fraud_status,
            "payment_type": source.get("payment_type") or txn.payment_type,
            "gross_amount": source.get("gross_amount") or f"{txn.amount}.00",
            "currency": source.get("currency") or "IDR",
            "redirect_url": txn.redirect_url if alive else None,
            "token": txn.snap_token if alive else None,
            **money_view(txn),
            "live": live,
        }
    )
    if source.get("transaction_status") != txn.status:
        # The kept answer is older than the status (e.g. a notification moved it on).
        view["status_code"] = STATUS_API_CODES.get(txn.status)
        view["status_message"] = None
    if not source:
        view["status_message"] = "Waiting for the customer to choose a payment method"
    if not live:
        view["status_message"] = "Midtrans could not be reached; this is the last known status"
    view.setdefault("transaction_time", None)
    asked = txn.request_body or {}
    view.update({key: asked[key] for key in ECHOED_FIELDS if key in asked})
    return view


def money_view(txn: Transaction) -> dict[str, Any]:
    """What the payment means (SPEC "What a payment means"), beside Midtrans's raw status."""
    view = {
        "outcome": str(outcome_of(txn.status, txn.fraud_status)),
        "paid": is_paid(txn.status, txn.fraud_status),
        "amount": txn.amount,
        "refunded_amount": txn.refunded_amount or 0,
    }
    if txn.customer_imposed_fee:
        view["original_amount"] = txn.amount
        view["customer_imposed_fee"] = txn.customer_imposed_fee
    return view
