"""How the dashboard names and colours what a payment means. The facts themselves (which
statuses are paid, which may be cancelled, the SQL for an outcome) live in
`app.payments.outcomes`, so a filter, a total and a badge never disagree with a client."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from ..payments.outcomes import (  # noqa: F401 - the dashboard's names for the shared facts
    CANCELLABLE,
    EXPIRABLE,
    OUTCOMES,
    UNSUCCESSFUL,
    WAITING,
    Outcome,
    outcome_condition,
    outcome_of,
    outcomes_condition,
)

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


def outcome_choices() -> list[tuple[str, str]]:
    return [(o, str(LABELS[Outcome(o)])) for o in OUTCOMES]


def outcome_of_txn(txn) -> Outcome:
    return outcome_of(txn.status, txn.fraud_status)
