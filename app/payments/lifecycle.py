"""The order lifecycle: which status may follow which, applying Midtrans's word, the status
object clients see. Every source of truth (status call, notification, reconciliation, admin)
goes through `apply_midtrans_status`, so the ordering rules live in one place."""

from __future__ import annotations

import enum
import logging
from decimal import Decimal, InvalidOperation
from typing import Any

from ..database import begin_read, begin_write, lock_row
from ..extensions import db
from ..models import EventSource, Transaction, TransactionEvent, TxStatus
from .outbox import enqueue_update

log = logging.getLogger(__name__)

PAID = {TxStatus.CAPTURE, TxStatus.SETTLEMENT}

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

# Midtrans's status_code for each status, as its status API reports them.
STATUS_CODES = {
    TxStatus.PENDING: "201",
    TxStatus.AUTHORIZE: "200",
    TxStatus.CAPTURE: "200",
    TxStatus.SETTLEMENT: "200",
    TxStatus.DENY: "202",
    TxStatus.CANCEL: "200",
    TxStatus.EXPIRE: "407",
    TxStatus.FAILURE: "202",
    TxStatus.REFUND: "200",
    TxStatus.PARTIAL_REFUND: "200",
    TxStatus.CHARGEBACK: "200",
    TxStatus.PARTIAL_CHARGEBACK: "200",
}

# Fields of Midtrans's status answer a client must never see.
PRIVATE_FIELDS = {"signature_key", "merchant_id"}


def can_move(current: str, new: str, *, current_fraud: str | None, new_fraud: str | None) -> bool:
    """Whether Midtrans saying `new` should change an order that is `current`."""
    if new == current:
        # A challenged capture settles its fraud review (challenge -> accept or deny) in place;
        # a partial refund or chargeback may grow.
        if current_fraud == "challenge" and new_fraud in {"accept", "deny"}:
            return True
        return new in {TxStatus.PARTIAL_REFUND, TxStatus.PARTIAL_CHARGEBACK}
    return new in FORWARD.get(current, set())


def locked_transaction(txn_id: int) -> Transaction:
    return lock_row(Transaction, txn_id)


class Applied(enum.StrEnum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    FLAGGED = "flagged"


def _amount_of(answer: dict[str, Any]) -> Decimal | None:
    try:
        return Decimal(str(answer.get("gross_amount")))
    except (InvalidOperation, ValueError):
        return None


def record_change(
    txn: Transaction,
    new: str,
    *,
    fraud_status: str | None,
    source: EventSource,
    notification_id: int | None = None,
    detail: str | None = None,
) -> TransactionEvent:
    """Move the (locked) order to `new`, log the move and queue the app's callback, all in
    the caller's transaction: the change and its callback commit together or not at all."""
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
    if new != TxStatus.PENDING and not (new == TxStatus.CAPTURE and fraud_status == "challenge"):
        txn.next_check_at = None  # settled one way or the other: nothing left to reconcile
    enqueue_update(txn, status_view(txn, live=True))
    return event


def _flag(txn: Transaction, reason: str, *, source: EventSource, notification_id: int | None):
    log.error("order %s flagged: %s", txn.midtrans_order_id, reason)
    txn.flag = reason[:255]
    db.session.add(
        TransactionEvent(
            transaction_id=txn.id,
            from_status=txn.status,
            to_status=txn.status,
            fraud_status=txn.fraud_status,
            source=source,
            notification_id=notification_id,
            detail=reason,
        )
    )


def _nothing_to_apply(txn_id: int, answer: dict[str, Any]) -> bool:
    """True when Midtrans repeats what the order already holds: then no write (and on SQLite
    no write lock) is needed, which is the common case of `GET /status` and duplicates."""
    begin_read()
    txn = db.session.get(Transaction, txn_id, populate_existing=True)
    kept = {k: v for k, v in answer.items() if k not in PRIVATE_FIELDS}
    same = (
        txn.midtrans_response == kept
        and txn.status == answer.get("transaction_status")
        and txn.fraud_status == answer.get("fraud_status")
    )
    db.session.commit()
    return same


def apply_midtrans_status(
    txn_id: int,
    answer: dict[str, Any],
    *,
    source: EventSource,
    notification_id: int | None = None,
) -> tuple[Transaction, Applied]:
    """Apply a status Midtrans confirmed, if it moves the order forward; log the change.

    An answer about another order, or for another amount, is flagged for an admin and never
    applied: a client that ships goods on a wrong "settlement" loses money.
    """
    if _nothing_to_apply(txn_id, answer):
        return db.session.get(Transaction, txn_id), Applied.UNCHANGED
    begin_write()
    txn = locked_transaction(txn_id)
    new = str(answer.get("transaction_status") or "")
    new_fraud = answer.get("fraud_status")
    amount = _amount_of(answer)
    answered_for = answer.get("order_id")
    if answered_for is not None and answered_for != txn.midtrans_order_id:
        _flag(
            txn,
            f"Midtrans answered for order {answered_for!s:.60}; {new} not applied",
            source=source,
            notification_id=notification_id,
        )
        db.session.commit()
        return txn, Applied.FLAGGED
    txn.midtrans_response = {k: v for k, v in answer.items() if k not in PRIVATE_FIELDS}
    txn.payment_type = answer.get("payment_type") or txn.payment_type
    txn.midtrans_transaction_id = answer.get("transaction_id") or txn.midtrans_transaction_id
    if new and amount is not None and amount != txn.amount:
        _flag(
            txn,
            f"amount mismatch: Midtrans says {answer.get('gross_amount')!s:.30}, "
            f"the order is {txn.amount}; {new} not applied",
            source=source,
            notification_id=notification_id,
        )
        outcome = Applied.FLAGGED
    elif new and can_move(txn.status, new, current_fraud=txn.fraud_status, new_fraud=new_fraud):
        record_change(
            txn, new, fraud_status=new_fraud, source=source, notification_id=notification_id
        )
        outcome = Applied.CHANGED
    else:
        outcome = Applied.UNCHANGED
    db.session.commit()
    return txn, outcome


def status_view(
    txn: Transaction, answer: dict[str, Any] | None = None, *, live: bool
) -> dict[str, Any]:
    """The object `GET /status` answers (and, later, callbacks carry).

    Midtrans's fields and payment instructions come from its answer (or the last one kept),
    but the order id is the client's and the status is the one this gateway holds.
    """
    source = answer if answer is not None else (txn.midtrans_response or {})
    view = {k: v for k, v in source.items() if k not in PRIVATE_FIELDS}
    view.update(
        {
            "order_id": txn.order_id,
            "id": source.get("transaction_id") or txn.midtrans_transaction_id,
            "transaction_status": txn.status,
            "fraud_status": txn.fraud_status,
            "payment_type": source.get("payment_type") or txn.payment_type,
            "gross_amount": source.get("gross_amount") or f"{txn.amount}.00",
            "currency": source.get("currency") or "IDR",
            "redirect_url": txn.redirect_url,
            "token": txn.snap_token,
            "live": live,
        }
    )
    if source.get("transaction_status") != txn.status:
        # The kept answer is older than the status (e.g. a notification moved it on).
        view["status_code"] = STATUS_CODES.get(txn.status)
        view["status_message"] = None
    if not source:
        view["status_message"] = "Waiting for the customer to choose a payment method"
    if not live:
        view["status_message"] = "Midtrans could not be reached; this is the last known status"
    view.setdefault("transaction_time", None)
    return view
