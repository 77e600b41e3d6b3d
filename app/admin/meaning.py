"""What the dashboard says a payment means, derived from `app.payments.outcomes` only.

Nothing here lists which Midtrans statuses are paid: the rows the database must find for an
outcome (`outcome_condition`) are worked out once from `outcome_of` itself, so a filter, a
total and a badge can never disagree with what a client is told.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, and_, false, or_

from ..models import Transaction, TxStatus
from ..payments.outcomes import OUTCOMES, Outcome, outcome_of

# Midtrans's `fraud_status` values. Any other text (or none) is treated by `outcome_of` as the
# case none of these names; the tests check every status against each and against others.
FRAUD_STATUSES = ("accept", "challenge", "deny")

# Groups of outcomes the overview counts and charts (local: `payments.outcomes` has no names
# for them yet).
UNSUCCESSFUL = frozenset({Outcome.FAILED, Outcome.EXPIRED, Outcome.CANCELLED})
WAITING = frozenset({Outcome.PENDING, Outcome.AUTHORIZED, Outcome.CHALLENGE})
# What an admin may do, by outcome: stop a payment that is not paid (SPEC: cancel/expire),
# expire one only while the customer may still pay.
CANCELLABLE = frozenset({Outcome.PENDING, Outcome.AUTHORIZED, Outcome.CHALLENGE})
EXPIRABLE = frozenset({Outcome.PENDING})

LABELS = {
    Outcome.PAID: _l("paid"),
    Outcome.CHALLENGE: _l("needs a decision"),
    Outcome.AUTHORIZED: _l("authorized"),
    Outcome.PENDING: _l("pending"),
    Outcome.FAILED: _l("failed"),
    Outcome.EXPIRED: _l("expired"),
    Outcome.CANCELLED: _l("cancelled"),
    Outcome.REFUNDED: _l("refunded"),
    Outcome.PARTIALLY_REFUNDED: _l("partially refunded"),
    Outcome.CHARGEBACK: _l("chargeback"),
}

# Badge colour of each outcome (classes of static/admin.css).
KINDS = {
    Outcome.PAID: "ok",
    Outcome.CHALLENGE: "wait",
    Outcome.AUTHORIZED: "wait",
    Outcome.PENDING: "wait",
    Outcome.FAILED: "bad",
    Outcome.EXPIRED: "bad",
    Outcome.CANCELLED: "bad",
    Outcome.REFUNDED: "other",
    Outcome.PARTIALLY_REFUNDED: "other",
    Outcome.CHARGEBACK: "other",
}


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


def outcome_choices() -> list[tuple[str, str]]:
    return [(o, str(LABELS[Outcome(o)])) for o in OUTCOMES]


def outcome_of_txn(txn) -> Outcome:
    return outcome_of(txn.status, txn.fraud_status)
