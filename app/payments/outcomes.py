"""What a payment means: SPEC's `outcome`, the safe `paid` signal, and the amounts Midtrans
reports beside the order's own (refunds, the fee Midtrans's fee imposition added).

Midtrans's raw `transaction_status` and `fraud_status` stay as they are everywhere; every view,
callback, total and list derives what a client may act on from here, so the rule that only a
settlement or an accepted capture is a sale lives in one place.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_

from ..models import Transaction, TxStatus


class Outcome(enum.StrEnum):
    PAID = "paid"
    CHALLENGE = "challenge"
    AUTHORIZED = "authorized"
    PENDING = "pending"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"
    CHARGEBACK = "chargeback"


_BY_STATUS = {
    TxStatus.SETTLEMENT: Outcome.PAID,
    TxStatus.AUTHORIZE: Outcome.AUTHORIZED,
    TxStatus.PENDING: Outcome.PENDING,
    TxStatus.DENY: Outcome.FAILED,
    TxStatus.FAILURE: Outcome.FAILED,
    TxStatus.EXPIRE: Outcome.EXPIRED,
    TxStatus.CANCEL: Outcome.CANCELLED,
    TxStatus.REFUND: Outcome.REFUNDED,
    TxStatus.PARTIAL_REFUND: Outcome.PARTIALLY_REFUNDED,
    TxStatus.CHARGEBACK: Outcome.CHARGEBACK,
    TxStatus.PARTIAL_CHARGEBACK: Outcome.CHARGEBACK,
}

# Statuses in which the payer's money reached the merchant, with a part of it given back.
PARTLY_REVERSED = {TxStatus.PARTIAL_REFUND, TxStatus.PARTIAL_CHARGEBACK}
# Statuses Midtrans may still move on its own: the worker keeps asking about them.
AWAITING_MIDTRANS = {TxStatus.PENDING}
# Outcomes in which money was taken (and may be refunded).
REFUNDABLE_OUTCOMES = frozenset({Outcome.PAID, Outcome.PARTIALLY_REFUNDED})
# Midtrans's `fraud_status` values. Any other text (or none) is treated by `outcome_of` as the
# case none of these names; the tests check every status against each and against others.
FRAUD_STATUSES = ("accept", "challenge", "deny")

# Groups of outcomes the overview counts and charts. An order whose payment at Midtrans is
# UNSUCCESSFUL may be charged again (/charge makes a new attempt).
UNSUCCESSFUL = frozenset({Outcome.FAILED, Outcome.EXPIRED, Outcome.CANCELLED})
WAITING = frozenset({Outcome.PENDING, Outcome.AUTHORIZED, Outcome.CHALLENGE})
# What an admin or a client app may do, by outcome: stop a payment that is not paid (SPEC:
# cancel/expire); expire one only while the customer may still pay.
CANCELLABLE = frozenset({Outcome.PENDING, Outcome.AUTHORIZED, Outcome.CHALLENGE})
EXPIRABLE = frozenset({Outcome.PENDING})

# Every outcome a client may see, for filters and documentation.
OUTCOMES = [str(outcome) for outcome in Outcome]


def outcome_of(status: str | None, fraud_status: str | None) -> Outcome:
    """SPEC's outcome of a (transaction_status, fraud_status) pair.

    A capture is a sale only with `fraud_status: accept`; under `challenge` the money is held
    until a person approves or denies it, and a capture the fraud check denied is a failure.
    No Midtrans transaction yet (None), or a status Midtrans adds later, is still pending.
    """
    if status == TxStatus.CAPTURE:
        if fraud_status == "accept":
            return Outcome.PAID
        if fraud_status == "deny":
            return Outcome.FAILED
        return Outcome.CHALLENGE
    return _BY_STATUS.get(status or TxStatus.PENDING, Outcome.PENDING)


def is_paid(status: str | None, fraud_status: str | None) -> bool:
    """True when the order may be fulfilled: paid, or paid and then partly given back."""
    return outcome_of(status, fraud_status) == Outcome.PAID or status in PARTLY_REVERSED


def needs_checking(status: str | None, fraud_status: str | None) -> bool:
    """Whether Midtrans may still move the order without anyone acting: the worker asks."""
    return status in AWAITING_MIDTRANS or outcome_of(status, fraud_status) == Outcome.CHALLENGE


def rupiah(value: Any) -> Decimal | None:
    """Midtrans's amount strings ("150000.00") or numbers as a Decimal; None when absent or
    not a finite number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


def gross_amount_info(body: dict[str, Any]) -> dict[str, Any]:
    """Where Midtrans puts fee imposition: `metadata.extra_info.gross_amount_info`, or
    `extra_info.gross_amount_info`, or the fields at the top level (some channels)."""
    for holder in (body.get("metadata"), body):
        if isinstance(holder, dict):
            extra = holder.get("extra_info")
            if isinstance(extra, dict) and isinstance(extra.get("gross_amount_info"), dict):
                return extra["gross_amount_info"]
    return body


@dataclass(frozen=True)
class AmountCheck:
    """Whether what Midtrans says was paid fits the order, and the fee the payer added."""

    fits: bool
    fee: int | None = None
    reason: str | None = None


def check_amount(body: dict[str, Any], order_amount: int) -> AmountCheck:
    """Does Midtrans's `gross_amount` (a notification's or a status answer's) fit the order?

    It fits when it equals the order's amount, or when Midtrans's fee imposition says the
    order part (`original_amount`) equals it and the fee makes up the rest. Anything else is
    a mismatch a person must look at: a client that ships goods on a wrong amount loses money.
    """
    if body.get("gross_amount") is None:
        return AmountCheck(True)  # nothing stated (an action's answer): nothing to compare
    gross = rupiah(body.get("gross_amount"))
    if gross is None:
        return AmountCheck(False, reason=f"gross_amount {str(body['gross_amount'])[:30]!r}")
    if gross == order_amount:
        return AmountCheck(True)
    info = gross_amount_info(body)
    original = rupiah(info.get("original_amount"))
    fee = rupiah(info.get("customer_imposed_payment_fee"))
    if original is not None and original == order_amount:
        if fee is None:
            fee = gross - original
        if fee >= 0 and original + fee == gross and fee == int(fee):
            return AmountCheck(True, fee=int(fee) or None)
        return AmountCheck(
            False,
            reason=f"gross_amount {gross} is not original_amount {original} plus the fee {fee}",
        )
    return AmountCheck(
        False,
        reason=f"Midtrans says {str(body.get('gross_amount'))[:30]}, the order is {order_amount}",
    )


def refunded_total(body: dict[str, Any]) -> int | None:
    """What Midtrans has given back in all: the sum of its `refunds` list (the status API),
    else its `refund_amount` (notifications carry the total there); None when it says none."""
    refunds = body.get("refunds")
    if isinstance(refunds, list) and refunds:
        amounts = [rupiah(r.get("refund_amount")) for r in refunds if isinstance(r, dict)]
        if amounts and all(a is not None for a in amounts):
            return int(sum(amounts))
    amount = rupiah(body.get("refund_amount"))
    return int(amount) if amount is not None else None


# -- the same facts in SQL ---------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    """What `outcome_of` makes of one Midtrans status: `default` for any fraud_status (none
    included) but those in `by_fraud`."""

    default: Outcome
    by_fraud: dict[str, Outcome]


def _rules() -> tuple[dict[str, _Rule], Outcome]:
    """Each known status's rule, and the outcome of a status Midtrans may add later."""
    rules = {}
    for status in TxStatus:
        default = outcome_of(status, None)
        by_fraud = {f: outcome_of(status, f) for f in FRAUD_STATUSES}
        rules[str(status)] = _Rule(default, {f: o for f, o in by_fraud.items() if o != default})
    return rules, outcome_of(None, None)


RULES, UNKNOWN_STATUS = _rules()


def outcome_condition(outcome: str) -> ColumnElement[bool]:
    """The SQL condition on `transactions` true exactly for the rows whose
    `outcome_of(status, fraud_status)` is `outcome` (nothing for an unknown outcome)."""
    status, fraud = Transaction.status, Transaction.fraud_status
    plain = [s for s, rule in RULES.items() if not rule.by_fraud and rule.default == outcome]
    clauses: list[ColumnElement[bool]] = [status.in_(plain)] if plain else []
    for name, rule in RULES.items():
        if not rule.by_fraud:
            continue
        if rule.default == outcome:
            others = list(rule.by_fraud)
            clauses.append(and_(status == name, or_(fraud.is_(None), fraud.not_in(others))))
        else:
            matching = [f for f, o in rule.by_fraud.items() if o == outcome]
            if matching:
                clauses.append(and_(status == name, fraud.in_(matching)))
    if UNKNOWN_STATUS == outcome:
        clauses.append(or_(status.is_(None), status.not_in(list(RULES))))
    return or_(*clauses) if clauses else false()


def outcomes_condition(outcomes) -> ColumnElement[bool]:
    return or_(*(outcome_condition(o) for o in outcomes))
