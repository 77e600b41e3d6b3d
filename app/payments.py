"""The payment rules: creating Snap charges, reading status, moving orders forward only.

Nothing here knows about HTTP requests; Midtrans is reached only through `app.midtrans`.
Every unit of work that reads and then writes starts with `begin_write()` and locks the row it
changes, so several gunicorn workers (and later the worker process) never race or deadlock.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .database import begin_write
from .errors import (
    ChargeInProgressError,
    GatewayError,
    MidtransAuthError,
    MidtransRejectedError,
    NotFoundError,
    OrderConflictError,
)
from .extensions import db
from .midtrans import Midtrans
from .models import App, EventSource, LinkState, Transaction, TransactionEvent, TxStatus
from .schemas import ORDER_ID_MAX, ChargeRequest

log = logging.getLogger(__name__)

# Added to MIDTRANS_TIMEOUT: after that long a "creating" attempt has surely ended (crashed).
ATTEMPT_GRACE = timedelta(seconds=30)

PAID = {TxStatus.CAPTURE, TxStatus.SETTLEMENT}

# Which statuses each status may move to. Anything else is stale or a replay and is ignored:
# pending never overwrites settlement; settlement may still be refunded, charged back, or
# reversed to deny; failures and full refunds are final.
FORWARD: dict[str, set[str]] = {
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
    TxStatus.PARTIAL_REFUND: {
        TxStatus.PARTIAL_REFUND,
        TxStatus.REFUND,
        TxStatus.CHARGEBACK,
        TxStatus.PARTIAL_CHARGEBACK,
    },
    TxStatus.PARTIAL_CHARGEBACK: {TxStatus.PARTIAL_CHARGEBACK, TxStatus.CHARGEBACK},
}

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


@dataclass(frozen=True)
class ChargeResult:
    transaction: Transaction
    replayed: bool


# -- POST /charge --------------------------------------------------------------------------


def create_charge(*, app: App, charge: ChargeRequest, midtrans: Midtrans) -> ChargeResult:
    """Reserve the order before calling Midtrans so a repeat or a race cannot charge twice.

    The identical request again answers the stored link (a replay); other details for an
    order that has a link are a conflict. After a failed or timed-out attempt, the next
    request tries again, with a fresh Midtrans order id when Midtrans may hold the old one.
    """
    in_flight = timedelta(seconds=midtrans.settings.timeout) + ATTEMPT_GRACE
    txn, attempt = _reserve(app, charge, in_flight=in_flight)
    if attempt is None:
        return ChargeResult(txn, replayed=True)
    try:
        link = midtrans.create_snap(charge.snap_payload(txn.midtrans_order_id))
    except (MidtransRejectedError, MidtransAuthError) as err:
        # Midtrans refused it: no order exists there, the same id may be used again.
        _end_attempt(txn.id, attempt, LinkState.FAILED, error=err)
        raise
    except GatewayError as err:
        # Timeout, garbage or 5xx: Midtrans may have created an order nobody can see.
        _end_attempt(txn.id, attempt, LinkState.UNKNOWN, error=err)
        raise
    except BaseException as err:
        _end_attempt(txn.id, attempt, LinkState.UNKNOWN, error=err)
        raise
    return ChargeResult(_link_created(txn.id, attempt, link), replayed=False)


def _reserve(
    app: App, charge: ChargeRequest, *, in_flight: timedelta
) -> tuple[Transaction, int | None]:
    """The order's row, locked and marked `creating`; attempt None means replay the link."""
    fingerprint = charge.fingerprint()
    for _ in range(5):
        begin_write()
        txn = db.session.execute(
            select(Transaction)
            .where(Transaction.app_id == app.id, Transaction.order_id == charge.order_id)
            .with_for_update()
        ).scalar_one_or_none()
        if txn is None:
            txn = Transaction(
                app_id=app.id,
                order_id=charge.order_id,
                midtrans_order_id=_free_midtrans_order_id(app.order_prefix + charge.order_id),
                amount=charge.amount,
                request_fingerprint=fingerprint,
                request_body=charge.as_dict(),
                link_state=LinkState.CREATING,
                attempt=1,
            )
            db.session.add(txn)
            try:
                db.session.commit()
            except IntegrityError:
                # Another worker inserted the same order (or took that Midtrans id) meanwhile.
                db.session.rollback()
                continue
            return txn, 1
        result = _reuse(txn, charge, fingerprint, in_flight=in_flight)
        db.session.commit()
        return txn, result
    raise ChargeInProgressError("the order is being created by another request; retry shortly")


def _reuse(
    txn: Transaction, charge: ChargeRequest, fingerprint: str, *, in_flight: timedelta
) -> int | None:
    """Decide what a request for an order that already has a row does (row is locked)."""
    now = datetime.now(UTC)
    if txn.link_state == LinkState.CREATED:
        if txn.request_fingerprint != fingerprint:
            raise OrderConflictError(
                f"order_id {charge.order_id} was already charged with different details",
                details={"field": "order_id"},
            )
        return None
    if txn.link_state == LinkState.CREATING and now - txn.attempt_started_at < in_flight:
        raise ChargeInProgressError(
            f"a payment link for order_id {charge.order_id} is being created; retry shortly",
            headers={"Retry-After": "2"},
        )
    # The last attempt failed or its outcome is unknown; no link was ever shown, so the
    # request (even with corrected details) gets a new attempt.
    reuse_id = txn.link_state == LinkState.FAILED
    txn.attempt += 1
    txn.attempt_started_at = now
    txn.link_state = LinkState.CREATING
    txn.amount = charge.amount
    txn.request_fingerprint = fingerprint
    txn.request_body = charge.as_dict()
    if not reuse_id:
        txn.midtrans_order_id = _free_midtrans_order_id(
            txn.app.order_prefix + charge.order_id, fresh=True
        )
    return txn.attempt


def _free_midtrans_order_id(base: str, *, fresh: bool = False) -> str:
    """`base` if no order uses it yet, else `base` (shortened) with a random suffix.

    The suffix keeps a retry after an unknown outcome from hitting Midtrans's "order_id has
    already been taken", and keeps two apps whose prefixes overlap from blocking each other.
    """
    candidate = base
    for _ in range(10):
        if not fresh:
            taken = db.session.execute(
                select(Transaction.id).where(Transaction.midtrans_order_id == candidate)
            ).first()
            if taken is None:
                return candidate
        fresh = False
        suffix = "~" + secrets.token_hex(3)
        candidate = base[: ORDER_ID_MAX - len(suffix)] + suffix
    raise RuntimeError("could not find a free Midtrans order id")


def _locked(txn_id: int) -> Transaction:
    return db.session.execute(
        select(Transaction).where(Transaction.id == txn_id).with_for_update()
    ).scalar_one()


def _end_attempt(txn_id: int, attempt: int, state: LinkState, *, error: BaseException) -> None:
    db.session.rollback()
    begin_write()
    txn = _locked(txn_id)
    if txn.attempt == attempt and txn.link_state == LinkState.CREATING:
        txn.link_state = state
        txn.last_error = getattr(error, "message", type(error).__name__)
    db.session.commit()


def _link_created(txn_id: int, attempt: int, link) -> Transaction:
    begin_write()
    txn = _locked(txn_id)
    if txn.attempt == attempt:
        txn.link_state = LinkState.CREATED
        txn.snap_token = link.token
        txn.redirect_url = link.redirect_url
        txn.last_error = None
        txn.status = TxStatus.PENDING
        db.session.add(
            TransactionEvent(
                transaction_id=txn.id,
                from_status=None,
                to_status=TxStatus.PENDING,
                source=EventSource.CHARGE,
                detail=f"Snap link created (attempt {attempt})",
            )
        )
    db.session.commit()
    return txn


# -- GET /status ---------------------------------------------------------------------------


def get_transaction_or_raise(*, app: App, order_id: str) -> Transaction:
    """The app's order that has a payment link; another app's or an unknown one is 404."""
    txn = db.session.execute(
        select(Transaction).where(Transaction.app_id == app.id, Transaction.order_id == order_id)
    ).scalar_one_or_none()
    if txn is None or txn.snap_token is None:
        raise NotFoundError(f"no order {order_id} for this app")
    return txn


def refresh_status(*, app: App, order_id: str, midtrans: Midtrans) -> dict[str, Any]:
    """The order's status live from Midtrans, applied to the row; the row's own when Midtrans
    cannot be reached (`live: false`)."""
    txn = get_transaction_or_raise(app=app, order_id=order_id)
    db.session.commit()  # no read transaction held open across the Midtrans call
    try:
        answer = midtrans.get_status(txn.midtrans_order_id)
    except GatewayError as err:
        level = logging.ERROR if isinstance(err, MidtransAuthError) else logging.WARNING
        log.log(level, "status of %s from records: %s", txn.midtrans_order_id, err.message)
        return status_view(txn, live=False)
    if answer is None:
        return status_view(txn, live=True)
    txn = apply_midtrans_status(txn.id, answer, source=EventSource.STATUS)
    return status_view(txn, answer, live=True)


def _amount_of(answer: dict[str, Any]) -> Decimal | None:
    try:
        return Decimal(str(answer.get("gross_amount")))
    except (InvalidOperation, ValueError):
        return None


def apply_midtrans_status(
    txn_id: int,
    answer: dict[str, Any],
    *,
    source: EventSource,
    notification_id: int | None = None,
) -> Transaction:
    """Apply a status Midtrans confirmed, if it moves the order forward; log the change."""
    begin_write()
    txn = _locked(txn_id)
    new = str(answer.get("transaction_status") or "")
    new_fraud = answer.get("fraud_status")
    txn.midtrans_response = {k: v for k, v in answer.items() if k not in PRIVATE_FIELDS}
    txn.payment_type = answer.get("payment_type") or txn.payment_type
    txn.midtrans_transaction_id = answer.get("transaction_id") or txn.midtrans_transaction_id
    amount = _amount_of(answer)
    if new and amount is not None and amount != txn.amount:
        log.error(
            "amount mismatch on %s: Midtrans says %s, order is %s; not applied",
            txn.midtrans_order_id,
            answer.get("gross_amount"),
            txn.amount,
        )
        db.session.add(
            TransactionEvent(
                transaction_id=txn.id,
                from_status=txn.status,
                to_status=txn.status,
                source=source,
                notification_id=notification_id,
                detail=f"amount mismatch: Midtrans {answer.get('gross_amount')} "
                f"!= {txn.amount}; {new} not applied",
            )
        )
    elif new and can_move(txn.status, new, current_fraud=txn.fraud_status, new_fraud=new_fraud):
        db.session.add(
            TransactionEvent(
                transaction_id=txn.id,
                from_status=txn.status,
                to_status=new,
                fraud_status=new_fraud,
                source=source,
                notification_id=notification_id,
            )
        )
        txn.status = new
        txn.fraud_status = new_fraud
    db.session.commit()
    return txn


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
