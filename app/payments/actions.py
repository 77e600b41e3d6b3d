"""What an operator (and, through the API, a client app) does to a payment at Midtrans:
cancel, expire, refund. Each checks the order's outcome first, asks Midtrans to act, then
applies what Midtrans's status API says, never the action's own answer."""

from __future__ import annotations

from ..errors import InvalidRequestError
from ..midtrans import Midtrans
from ..models import EventSource, Transaction
from ..schemas import parse_amount
from .lifecycle import Applied
from .outcomes import CANCELLABLE, EXPIRABLE, REFUNDABLE_OUTCOMES, outcome_of
from .status import get_transaction_by_id_or_raise, sync_transaction


def _act_then_sync(
    txn_id: int, action, *, midtrans: Midtrans
) -> tuple[Transaction, Applied | None]:
    txn = get_transaction_by_id_or_raise(txn_id)
    ident = txn.midtrans_transaction_id or txn.midtrans_order_id
    action(ident)
    # The status API, not the action's answer, is the truth that gets applied.
    return sync_transaction(txn_id, midtrans=midtrans, source=EventSource.ADMIN)


def _allowed(txn_id: int, outcomes: frozenset, action: str) -> None:
    txn = get_transaction_by_id_or_raise(txn_id)
    outcome = outcome_of(txn.status, txn.fraud_status)
    if outcome not in outcomes:
        raise InvalidRequestError(f"a {outcome} order cannot be {action}")


def cancel_transaction(txn_id: int, *, midtrans: Midtrans):
    """Cancel a payment that is not paid (pending, authorized, or challenged) at Midtrans."""
    _allowed(txn_id, CANCELLABLE, "cancelled")
    return _act_then_sync(txn_id, midtrans.cancel, midtrans=midtrans)


def expire_transaction(txn_id: int, *, midtrans: Midtrans):
    """Expire a pending payment at Midtrans so it can no longer be paid."""
    _allowed(txn_id, EXPIRABLE, "expired")
    return _act_then_sync(txn_id, midtrans.expire, midtrans=midtrans)


def refundable_amount(txn: Transaction) -> int:
    """What is left to refund: what the payer paid (fee included) less what was given back."""
    return txn.amount + (txn.customer_imposed_fee or 0) - (txn.refunded_amount or 0)


def refund_transaction(
    txn_id: int, *, amount: int, reason: str, refund_key: str, midtrans: Midtrans
):
    """Refund `amount` of a settled payment.

    `refund_key` is made once per refund form, so a repeated click or a retried request sends
    the same key and Midtrans refunds only once."""
    txn = get_transaction_by_id_or_raise(txn_id)
    if outcome_of(txn.status, txn.fraud_status) not in REFUNDABLE_OUTCOMES:
        raise InvalidRequestError(
            f"only a paid order can be refunded (this one is "
            f"{outcome_of(txn.status, txn.fraud_status)})"
        )
    parse_amount(amount, "amount")
    left = refundable_amount(txn)
    if amount > left:
        raise InvalidRequestError(
            f"a refund cannot exceed what is left to refund ({left})", field="amount"
        )
    body = {"refund_key": refund_key[:50], "amount": amount, "reason": reason[:255]}
    return _act_then_sync(txn_id, lambda ident: midtrans.refund(ident, body), midtrans=midtrans)
