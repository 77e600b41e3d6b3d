"""What an admin or a client app does to a payment at Midtrans: cancel, expire, approve, deny,
capture, refund (SPEC "Payment actions and records for client apps").

Each action checks the order's outcome first (the gateway's own rules, `RULES`), asks Midtrans
to act, then applies what Midtrans's status API says, never the action's own answer. A state
Midtrans refuses to change (its 412) is `InvalidStateError`, like the gateway's own refusal; any
other refusal (400, 404, 406, ...) is `MidtransActionRejectedError` (400 `midtrans_rejected`),
never a 502: Midtrans answered, and said no to the request.

Every action but refund is idempotent: repeated when the order already is where the action
leads (`RULES[action].done`: cancelled, expired, approved, denied, captured), it answers the
order as it is, without asking Midtrans again (no new event, no new callback).

Refunds are kept by their `refund_key` (one `Refund` row per order and key, claimed before
Midtrans is called): the same key again answers the first result and never refunds twice, a
request arriving while the first is still at Midtrans waits for its result, and one left
unanswered (a timeout, a crash) is sent again with the same key, which Midtrans dedupes too.
A key Midtrans refused keeps its refusal for the same details (the same answer again, Midtrans
not asked), but nothing was refunded under it: the same key with corrected details (another
amount, reason or `direct`) is a new request under that key.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from ..database import reading, writing
from ..errors import (
    ForbiddenError,
    GatewayError,
    InvalidRequestError,
    InvalidStateError,
    MidtransRejectedError,
    OrderConflictError,
    RefundInProgressError,
)
from ..extensions import db
from ..midtrans import Midtrans, MidtransActionRejectedError, MidtransRefusedError
from ..models import App, EventSource, Refund, RefundState, Transaction, TxStatus
from ..schemas import parse_amount
from .lifecycle import Applied, locked_transaction, record_change, status_view
from .outcomes import (
    CANCELLABLE,
    EXPIRABLE,
    REFUNDABLE_OUTCOMES,
    Outcome,
    outcome_of,
)
from .status import get_transaction_by_id_or_raise, get_transaction_or_raise, sync_transaction

ACTIONS = ("cancel", "expire", "approve", "deny", "capture", "refund")


@dataclass(frozen=True)
class Rule:
    """Which outcomes allow an action, how a refusal reads ("a paid order cannot be ..."), and
    the state the action leads to (a repeat there answers the order as it is: idempotent)."""

    allowed: frozenset[Outcome]
    verb: str
    done: Callable[[str | None, str | None], bool] | None = None


def _is(*outcomes: Outcome) -> Callable[[str | None, str | None], bool]:
    return lambda status, fraud_status: outcome_of(status, fraud_status) in outcomes


def _denied(status: str | None, fraud_status: str | None) -> bool:
    return status == TxStatus.DENY or (status == TxStatus.CAPTURE and fraud_status == "deny")


def _captured(status: str | None, fraud_status: str | None) -> bool:
    return status == TxStatus.CAPTURE and outcome_of(status, fraud_status) == Outcome.PAID


# The one table of what may be done to an order, for the API and the dashboard alike.
RULES: dict[str, Rule] = {
    "cancel": Rule(CANCELLABLE, "cancelled", _is(Outcome.CANCELLED)),
    "expire": Rule(EXPIRABLE, "expired", _is(Outcome.EXPIRED)),
    # Approved: an accepted capture, or its settlement the next day.
    "approve": Rule(
        frozenset({Outcome.CHALLENGE}), "approved (only a challenge can)", _is(Outcome.PAID)
    ),
    "deny": Rule(frozenset({Outcome.CHALLENGE}), "denied (only a challenge can)", _denied),
    "capture": Rule(
        frozenset({Outcome.AUTHORIZED}), "captured (only an authorized card can)", _captured
    ),
    # Refunds are idempotent by their refund_key instead.
    "refund": Rule(REFUNDABLE_OUTCOMES, "refunded (only a paid order can)"),
}
REFUND_KEY_RE = re.compile(r"[A-Za-z0-9\-_~.:]{1,50}")
REASON_MAX = 255
# A late payment on an order the gateway stopped itself is looked for this long (daily).
RECHECK_AFTER_LOCAL_STOP = timedelta(days=1)
# How often a request repeating a refund still at Midtrans looks for its result.
REFUND_POLL = 0.2
# Added to MIDTRANS_TIMEOUT: a refund still "requesting" after that was never answered.
REFUND_GRACE = timedelta(seconds=5)

Result = tuple[Transaction, Applied | None]


def allows(action: str, outcome: Outcome) -> bool:
    """Whether an order with this outcome may have `action` done to it."""
    return outcome in RULES[action].allowed


def already_done(action: str, txn: Transaction) -> bool:
    """Whether the order already is where `action` leads: a repeat answers it as it is."""
    done = RULES[action].done
    return done is not None and done(txn.status, txn.fraud_status)


def check_allowed(txn: Transaction, action: str) -> None:
    outcome = outcome_of(txn.status, txn.fraud_status)
    if not allows(action, outcome):
        raise InvalidStateError(f"a {outcome} order cannot be {RULES[action].verb}")


def _at_midtrans(
    txn_id: int,
    action: str,
    call: Callable[[str], Any],
    *,
    midtrans: Midtrans,
    source: EventSource,
    then_sync: bool = True,
    passes: frozenset[str] = frozenset(),
) -> Result | None:
    """Ask Midtrans to act on the order's payment, then apply its status API's word. A refusal
    whose status code is in `passes` is the caller's to handle."""
    txn = get_transaction_by_id_or_raise(txn_id)
    ident = txn.midtrans_transaction_id or txn.midtrans_order_id
    try:
        call(ident)
    except MidtransRefusedError as err:
        code = err.midtrans_status_code
        if code in passes:
            raise
        if code != "412":
            raise MidtransActionRejectedError(action, err) from None
        if then_sync and RULES[action].done is not None:
            # A retry racing the first request: Midtrans already did it. Its word decides.
            try:
                synced = sync_transaction(txn_id, midtrans=midtrans, source=source)
            except GatewayError:
                synced = None
            if synced is not None and already_done(action, synced[0]):
                return synced
        raise InvalidStateError(
            f"Midtrans cannot change this payment's status now ({err.message})"
        ) from None
    return sync_transaction(txn_id, midtrans=midtrans, source=source) if then_sync else None


# -- cancel, expire ------------------------------------------------------------------------


def cancel_transaction(txn_id: int, *, midtrans: Midtrans, source=EventSource.ADMIN) -> Result:
    """Cancel a payment that is not paid (pending, authorized, or challenged)."""
    return _stop(txn_id, "cancel", TxStatus.CANCEL, midtrans=midtrans, source=source)


def expire_transaction(txn_id: int, *, midtrans: Midtrans, source=EventSource.ADMIN) -> Result:
    """Expire a pending payment so it can no longer be paid."""
    return _stop(txn_id, "expire", TxStatus.EXPIRE, midtrans=midtrans, source=source)


def _stop(txn_id: int, action: str, status: str, *, midtrans: Midtrans, source) -> Result:
    txn = get_transaction_by_id_or_raise(txn_id)
    if already_done(action, txn):
        return txn, Applied.UNCHANGED
    check_allowed(txn, action)
    call = midtrans.cancel if action == "cancel" else midtrans.expire
    try:
        return _at_midtrans(
            txn_id, action, call, midtrans=midtrans, source=source, passes=frozenset({"404"})
        )
    except MidtransRefusedError:  # its 404, the one passed through
        pass
    # Midtrans has no transaction: nobody chose a payment method on the Snap page yet.
    return _stop_locally(txn_id, action, status, source=source)


def _stop_locally(txn_id: int, action: str, status: str, *, source) -> Result:
    """Record the stop in the gateway (the link is no longer served, the order can be
    renewed) and keep asking Midtrans daily for a few days: the Snap page itself stays
    payable until it expires, and a payment that turns up is applied and flagged."""
    now = datetime.now(UTC)
    with writing():
        txn = locked_transaction(txn_id)
        if already_done(action, txn):  # a repeat got here first
            return txn, Applied.UNCHANGED
        check_allowed(txn, action)  # still: a notification may have moved it meanwhile
        if txn.midtrans_transaction_id is not None:
            raise InvalidStateError("Midtrans now holds a payment for this order; try again")
        record_change(
            txn,
            status,
            fraud_status=None,
            source=source,
            detail=f"{action} before the customer chose a payment method "
            "(Midtrans has no transaction)",
        )
        txn.status_by_gateway = True
        txn.next_check_at, txn.check_count = now + RECHECK_AFTER_LOCAL_STOP, 0
    return txn, Applied.CHANGED


# -- approve, deny, capture ----------------------------------------------------------------


def decide_challenge(
    txn_id: int, action: str, *, midtrans: Midtrans, source=EventSource.ADMIN
) -> Result:
    """Approve or deny a card payment held by Midtrans's fraud check (`challenge`)."""
    txn = get_transaction_by_id_or_raise(txn_id)
    if already_done(action, txn):
        return txn, Applied.UNCHANGED
    check_allowed(txn, action)
    call = midtrans.approve if action == "approve" else midtrans.deny
    return _at_midtrans(txn_id, action, call, midtrans=midtrans, source=source)


def capture_transaction(
    txn_id: int, *, amount: int | None, midtrans: Midtrans, source=EventSource.ADMIN
) -> Result:
    """Capture an authorized card payment (a pre-authorization): all of it, or `amount`."""
    txn = get_transaction_by_id_or_raise(txn_id)
    if already_done("capture", txn):
        if amount is not None and amount != txn.amount:
            raise InvalidStateError(
                f"this order is already captured, for {txn.amount}; a capture cannot be changed"
            )
        return txn, Applied.UNCHANGED
    check_allowed(txn, "capture")
    if amount is None:
        amount = txn.amount
    parse_amount(amount, "amount")
    if amount > txn.amount:
        raise InvalidRequestError(
            f"a capture cannot exceed the authorized amount ({txn.amount})", field="amount"
        )
    authorized = txn.amount
    if amount != authorized:
        # A partial capture (a hotel's final bill below its pre-authorization): what is
        # captured is the order's amount from now on, set before Midtrans is asked so that its
        # word (the status API, or a notification racing this request) matches it.
        _set_amount(txn_id, amount, expected=authorized)
    try:
        _at_midtrans(
            txn_id,
            "capture",
            lambda _ident: midtrans.capture(txn.midtrans_transaction_id, amount),
            midtrans=midtrans,
            source=source,
            then_sync=False,
        )
    except (InvalidStateError, MidtransRejectedError):
        if amount != authorized:  # Midtrans said no: nothing was captured
            _set_amount(txn_id, authorized, expected=amount)
        raise
    return sync_transaction(txn_id, midtrans=midtrans, source=source)


def _set_amount(txn_id: int, amount: int, *, expected: int) -> None:
    with writing():
        locked = locked_transaction(txn_id)
        if locked.amount != expected or not allows(
            "capture", outcome_of(locked.status, locked.fraud_status)
        ):
            raise InvalidStateError("the order changed meanwhile; look at it again")
        locked.amount = amount


# -- refunds -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundRequest:
    amount: int | None  # None: all that is left
    reason: str
    refund_key: str
    direct: bool = False

    @classmethod
    def parse(cls, body: Any) -> RefundRequest:
        """From a client's JSON body; a bad field is 400 naming it."""
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise InvalidRequestError("request body must be a JSON object")
        amount = body.get("amount")
        if amount is not None:
            parse_amount(amount, "amount")
        reason = body.get("reason", "")
        if not isinstance(reason, str) or len(reason) > REASON_MAX or "\x00" in reason:
            raise InvalidRequestError(
                f"reason must be text of at most {REASON_MAX} characters", field="reason"
            )
        key = body.get("refund_key")
        if key is None:
            key = uuid.uuid4().hex
        if not isinstance(key, str) or not REFUND_KEY_RE.fullmatch(key):
            raise InvalidRequestError(
                "refund_key must be 1 to 50 characters of A-Z a-z 0-9 - _ ~ . :",
                field="refund_key",
            )
        direct = body.get("direct", False)
        if not isinstance(direct, bool):
            raise InvalidRequestError("direct must be true or false", field="direct")
        return cls(amount=amount, reason=reason, refund_key=key, direct=direct)


def refundable_amount(txn: Transaction) -> int:
    """What is left to refund: what the payer paid (fee included) less what was given back."""
    return txn.amount + (txn.customer_imposed_fee or 0) - (txn.refunded_amount or 0)


def refund_transaction(
    txn_id: int,
    *,
    amount: int | None,
    reason: str,
    refund_key: str,
    midtrans: Midtrans,
    direct: bool = False,
    requested_by: str = "admin",
    source=EventSource.ADMIN,
) -> Result:
    """Refund `amount` (all that is left when None) of a paid order, once per `refund_key`."""
    # A NUL typed into the dashboard's reason is kept visible as an escape (PostgreSQL text
    # cannot hold one); the API refuses it instead.
    reason = reason.replace("\x00", "\\u0000")[:REASON_MAX]
    request = RefundRequest.parse(
        {"amount": amount, "reason": reason, "refund_key": refund_key, "direct": direct}
    )
    return refund(txn_id, request, midtrans=midtrans, requested_by=requested_by, source=source)


def refund(
    txn_id: int, request: RefundRequest, *, midtrans: Midtrans, requested_by: str, source
) -> Result:
    in_flight = timedelta(seconds=midtrans.settings.timeout) + REFUND_GRACE
    record_id, ours = _claim_refund(txn_id, request, requested_by, in_flight=in_flight)
    if not ours:
        return _answer_of(txn_id, record_id, in_flight=in_flight)
    with reading():
        record = _refund_row(record_id)
    body = {"refund_key": record.refund_key, "amount": record.amount, "reason": record.reason}
    try:
        _at_midtrans(
            txn_id,
            "refund",
            lambda ident: midtrans.refund(ident, body, direct=record.direct),
            midtrans=midtrans,
            source=source,
            then_sync=False,
        )
    except (InvalidStateError, MidtransRejectedError) as err:
        # Midtrans said no (a 4xx): final for this key and these details; the same request
        # again answers the same (corrected details may use the key again: `_claim_refund`).
        _end_refund(record_id, RefundState.REFUSED, error=err)
        raise
    # (A timeout or an outage leaves the refund "requesting": the next try sends it again.)
    # Done only once the order shows it: a repeat waiting on this key answers the order as it
    # is then, so it must not see the refund done and the order not yet refunded.
    try:
        return sync_transaction(txn_id, midtrans=midtrans, source=source)
    finally:
        _end_refund(record_id, RefundState.DONE)


def _refund_row(record_id: int) -> Refund:
    return db.session.get(Refund, record_id, populate_existing=True)


def _claim_refund(
    txn_id: int, request: RefundRequest, requested_by: str, *, in_flight: timedelta
) -> tuple[int, bool]:
    """The refund record of this key, and whether this request is the one to send it."""
    now = datetime.now(UTC)
    with writing() as session:
        txn = locked_transaction(txn_id)  # one claim per order at a time
        record = session.execute(
            select(Refund).where(
                Refund.transaction_id == txn.id, Refund.refund_key == request.refund_key
            )
        ).scalar_one_or_none()
        other_details = record is not None and (
            (request.amount is not None and request.amount != record.amount)
            or request.direct != record.direct
        )
        if record is not None and record.state == RefundState.REFUSED:
            # Nothing was refunded under this key: corrected details are a new request.
            if not (other_details or request.reason != record.reason):
                return record.id, False  # the same request: the same refusal
        elif record is not None:
            if other_details:
                raise OrderConflictError(
                    f"refund_key {request.refund_key} was already used with other details "
                    f"(amount {record.amount}); use a new key for a new refund"
                )
            stale = record.state == RefundState.REQUESTING and record.updated_at + in_flight < now
            if stale:  # never answered (a timeout, a crash): this request sends it again
                record.updated_at = now
            return record.id, stale
        check_allowed(txn, "refund")
        in_flight_total = session.execute(
            select(func.coalesce(func.sum(Refund.amount), 0)).where(
                Refund.transaction_id == txn.id, Refund.state == RefundState.REQUESTING
            )
        ).scalar_one()
        left = refundable_amount(txn) - in_flight_total
        amount = left if request.amount is None else request.amount
        if left < 1:
            raise InvalidStateError("nothing is left to refund (other refunds are under way)")
        if amount > left:
            raise InvalidRequestError(
                f"a refund cannot exceed what is left to refund ({left})", field="amount"
            )
        if record is None:
            record = Refund(transaction_id=txn.id, refund_key=request.refund_key)
            session.add(record)
        record.amount, record.reason, record.direct = amount, request.reason, request.direct
        record.state, record.error, record.updated_at = RefundState.REQUESTING, None, now
        record.requested_by = requested_by[:100]
        session.flush()
        return record.id, True


def _end_refund(record_id: int, state: str, *, error: GatewayError | None = None) -> None:
    with writing() as session:
        session.execute(
            update(Refund)
            .where(Refund.id == record_id)
            .values(
                state=state,
                updated_at=datetime.now(UTC),
                error=(
                    {
                        "status": error.status,
                        "code": error.code,
                        "message": error.message,
                        "details": error.details,
                    }
                    if error is not None
                    else None
                ),
            )
        )


def _answer_of(txn_id: int, record_id: int, *, in_flight: timedelta) -> Result:
    """What the first request with this key got: its order after the refund, or its refusal
    again. While it is still at Midtrans, wait for it (up to MIDTRANS_TIMEOUT and a bit)."""
    deadline = time.monotonic() + in_flight.total_seconds()
    while True:
        with reading():
            record = _refund_row(record_id)
        if record.state == RefundState.DONE:
            return get_transaction_by_id_or_raise(txn_id), Applied.UNCHANGED
        if record.state == RefundState.REFUSED:
            raise _refusal(record.error or {})
        if time.monotonic() >= deadline:
            raise RefundInProgressError(
                f"refund_key {record.refund_key} is being refunded right now; retry shortly",
                headers={"Retry-After": "2"},
            )
        time.sleep(REFUND_POLL)


def _refusal(stored: dict[str, Any]) -> GatewayError:
    details = stored.get("details")
    error = GatewayError(
        str(stored.get("message") or "Midtrans refused this refund"),
        details=details if isinstance(details, dict) else None,
    )
    error.status = int(stored.get("status") or InvalidStateError.status)
    error.code = str(stored.get("code") or InvalidStateError.code)
    return error


# -- for client apps -----------------------------------------------------------------------


def client_action(
    *, client_app: App, order_id: str, action: str, body: Any, midtrans: Midtrans
) -> dict[str, Any]:
    """A client app's action on its own order (another app's is 404, as for /status); the
    object `GET /status` answers, after the change."""
    txn = get_transaction_or_raise(client_app=client_app, order_id=order_id)
    source = EventSource.CLIENT
    if action in ("cancel", "expire"):
        stop = cancel_transaction if action == "cancel" else expire_transaction
        txn, _ = stop(txn.id, midtrans=midtrans, source=source)
    elif action in ("approve", "deny"):
        txn, _ = decide_challenge(txn.id, action, midtrans=midtrans, source=source)
    elif action == "capture":
        amount = _capture_amount(body)
        txn, _ = capture_transaction(txn.id, amount=amount, midtrans=midtrans, source=source)
    elif action == "refund":
        if not client_app.allow_refunds:
            raise ForbiddenError(
                "this app may not refund through the API; an admin allows it with "
                f"`flask --app wsgi apps allow-refunds {client_app.code}` or in the dashboard"
            )
        request = RefundRequest.parse(body)
        txn, _ = refund(
            txn.id, request, midtrans=midtrans, requested_by=f"app:{client_app.code}", source=source
        )
    else:  # pragma: no cover - the route only lets ACTIONS through
        raise InvalidRequestError(f"unknown action {action}")
    return status_view(txn, live=True)


def _capture_amount(body: Any) -> int | None:
    if body is None:
        return None
    if not isinstance(body, dict):
        raise InvalidRequestError("request body must be a JSON object")
    amount = body.get("amount")
    if amount is not None:
        parse_amount(amount, "amount")
    return amount
