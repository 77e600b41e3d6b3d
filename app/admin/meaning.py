"""How the dashboard names and colours what a payment means. The facts themselves (which
statuses are paid, which may be cancelled, the SQL for an outcome) live in
`app.payments.outcomes`, so a filter, a total and a badge never disagree with a client."""

from __future__ import annotations

import re

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


# What the dashboard shows of words the gateway stores or names in English (Midtrans's
# statuses, notification outcomes, callback states, link states, event sources, audit
# actions). The records, the API and callbacks keep the English word; only its display is
# translated, and a word not listed here is shown as it is.
STATUS_WORDS = {
    "pending": _l("pending"),
    "authorize": _l("authorize"),
    "capture": _l("capture"),
    "settlement": _l("settlement"),
    "deny": _l("deny"),
    "cancel": _l("cancel"),
    "expire": _l("expire"),
    "failure": _l("failure"),
    "refund": _l("refund"),
    "partial_refund": _l("partial refund"),
    "chargeback": _l("chargeback"),
    "partial_chargeback": _l("partial chargeback"),
    # fraud_status
    "accept": _l("accept"),
    "challenge": _l("challenge"),
}

NOTIFICATION_WORDS = {
    "received": _l("received"),
    "rejected": _l("rejected"),
    "unmatched": _l("unmatched"),
    "unconfirmed": _l("unconfirmed"),
    "applied": _l("applied"),
    "unchanged": _l("unchanged"),
    "flagged": _l("flagged"),
}

CALLBACK_WORDS = {
    "pending": _l("pending"),
    "delivered": _l("delivered"),
    "failed": _l("failed"),
    "transaction.updated": _l("order updated"),
}

LINK_WORDS = {
    "creating": _l("creating"),
    "created": _l("created"),
    "failed": _l("failed"),
    "unknown": _l("unknown"),
}

SOURCE_WORDS = {
    "charge": _l("charge"),
    "notification": _l("notification"),
    "status": _l("status check"),
    "reconciliation": _l("reconciliation"),
    "admin": _l("admin"),
    "client": _l("client app"),
    "recovery": _l("recovery"),
}

AUDIT_WORDS = {
    "login_ok": _l("login"),
    "login_failed": _l("failed login"),
    "logout": _l("logout"),
    "app_create": _l("app created"),
    "app_rotate_key": _l("app key rotated"),
    "app_disable": _l("app disabled"),
    "app_enable": _l("app enabled"),
    "app_edit": _l("app edited"),
    "app_callback_url": _l("callback URL changed"),
    "app_callback_enable": _l("callbacks re-enabled"),
    "app_callback_rotate_secret": _l("signing secret rotated"),
    "callback_resend": _l("callback resent"),
    "callback_recover": _l("failed callbacks recovered"),
    "transaction_sync": _l("order synced"),
    "transaction_cancel": _l("payment cancelled"),
    "transaction_expire": _l("payment expired"),
    "transaction_refund": _l("payment refunded"),
    "transaction_approve": _l("payment approved"),
    "transaction_deny": _l("payment denied"),
    "transaction_capture": _l("payment captured"),
    "admin_create": _l("admin created"),
    "password_change": _l("password changed"),
    "mfa_enable": _l("two-factor sign-in on"),
    "mfa_disable": _l("two-factor sign-in off"),
    "mfa_recovery_codes": _l("new recovery codes"),
    "mfa_reset": _l("two-factor sign-in reset"),
    "mfa_required": _l("two-factor sign-in requirement"),
}


# The alert conditions (app/alerts.py) as the overview names them.
ALERT_WORDS = {
    "order_flagged": _l("Order flagged"),
    "callback_disabled": _l("Callback endpoint disabled"),
    "midtrans_auth": _l("Midtrans rejected the server key"),
    "notifications_unconfirmed": _l("Notifications unconfirmed for over an hour"),
    "worker_down": _l("Worker not running"),
}


def word(words: dict, value) -> str:
    """`value`'s label in `words`, or `value` itself when it has none."""
    if value is None:
        return ""
    label = words.get(str(value))
    return str(label) if label is not None else str(value)


# The English texts the gateway writes into an order's timeline, flag, last error, a
# notification's reason or an audit entry's detail, matched whole; the named parts keep
# their values (ids, amounts), a `reason` part is translated in turn, a `status*` part is a
# Midtrans status. A text none of them matches is shown as stored.
_ = _l
DETAIL_TEXTS = [
    (r"Snap link created \(attempt (?P<n>\d+)\)", _("Snap link created (attempt %(n)s)")),
    (
        r"Core (?P<kind>\S+) payment created \(attempt (?P<n>\d+)\)",
        _("Core %(kind)s payment created (attempt %(n)s)"),
    ),
    (
        r"link expired unpaid \(Midtrans has no transaction\); renewing",
        _("link expired unpaid (Midtrans has no transaction); renewing"),
    ),
    (
        r"Snap link expired unpaid \(Midtrans has no transaction\)",
        _("Snap link expired unpaid (Midtrans has no transaction)"),
    ),
    (
        r"cancel before the customer chose a payment method \(Midtrans has no transaction\)",
        _("cancel before the customer chose a payment method (Midtrans has no transaction)"),
    ),
    (
        r"expire before the customer chose a payment method \(Midtrans has no transaction\)",
        _("expire before the customer chose a payment method (Midtrans has no transaction)"),
    ),
    (
        r"recovered: not in the database \(restored from an older backup\?\)",
        _("recovered: not in the database (restored from an older backup?)"),
    ),
    (
        r"recovered: not in the database \(restored from an older backup\?\); "
        r"Midtrans order (?P<id>.+)",
        _("recovered: not in the database (restored from an older backup?); Midtrans order %(id)s"),
    ),
    (
        r"Midtrans answered for order (?P<id>.+); (?P<status>\S*) not applied",
        _("Midtrans answered for order %(id)s; %(status)s not applied"),
    ),
    (
        r"amount mismatch under earlier attempt (?P<id>\S+): (?P<reason>.+); "
        r"(?P<status>\S*) not applied",
        _("amount mismatch under earlier attempt %(id)s: %(reason)s; %(status)s not applied"),
    ),
    (
        r"amount mismatch: (?P<reason>.+); (?P<status>\S*) not applied",
        _("amount mismatch: %(reason)s; %(status)s not applied"),
    ),
    (r"amount mismatch: (?P<reason>.+)", _("amount mismatch: %(reason)s")),
    (r"gross_amount (?P<value>'.*')", _("gross_amount %(value)s")),
    (
        r"gross_amount (?P<gross>\S+) is not original_amount (?P<original>\S+) "
        r"plus the fee (?P<fee>\S+)",
        _("gross_amount %(gross)s is not original_amount %(original)s plus the fee %(fee)s"),
    ),
    (
        r"Midtrans says (?P<gross>.+), the order is (?P<amount>\d+)",
        _("Midtrans says %(gross)s, the order is %(amount)s"),
    ),
    (
        r"paid after the gateway expired it \(Midtrans says (?P<status>\S+)\)",
        _("paid after the gateway expired it (Midtrans says %(status)s)"),
    ),
    (
        r"Midtrans says (?P<status>\S+) after the gateway marked the order (?P<status2>\S+)",
        _("Midtrans says %(status)s after the gateway marked the order %(status2)s"),
    ),
    (
        r"Midtrans has a pending payment under (?P<id>\S+), an earlier attempt of this "
        r"order: the payer may still pay it",
        _(
            "Midtrans has a pending payment under %(id)s, an earlier attempt of this order: "
            "the payer may still pay it"
        ),
    ),
    (
        r"second payment: Midtrans says (?P<status>\S+) under (?P<id>\S+), an earlier "
        r"attempt, while the order is (?P<outcome>\S+) under (?P<current>\S+): refund one",
        _(
            "second payment: Midtrans says %(status)s under %(id)s, an earlier attempt, while "
            "the order is %(outcome)s under %(current)s: refund one"
        ),
    ),
    (
        r"paid under an earlier attempt (?P<id>\S+) \(Midtrans says (?P<status>\S+)\) after "
        r"the order got a newer one \((?P<newer>\S+)\): make sure the newer one is not paid too",
        _(
            "paid under an earlier attempt %(id)s (Midtrans says %(status)s) after the order "
            "got a newer one (%(newer)s): make sure the newer one is not paid too"
        ),
    ),
    (
        r"another payment at Midtrans under (?P<id>.+)",
        _("another payment at Midtrans under %(id)s"),
    ),
    (
        r"Midtrans has a transaction \((?P<status>\S+)\) for (?P<id>\S+), a Snap link no "
        r"client was shown \(its attempt was abandoned\): check the payment",
        _(
            "Midtrans has a transaction (%(status)s) for %(id)s, a Snap link no client was "
            "shown (its attempt was abandoned): check the payment"
        ),
    ),
    (
        r"adopted: Midtrans already held a payment under (?P<id>.+)",
        _("adopted: Midtrans already held a payment under %(id)s"),
    ),
    (
        r"attempt (?P<n>\d+) abandoned: its Snap call never finished \(the gateway process "
        r"likely died\); Midtrans has no transaction for it",
        _(
            "attempt %(n)s abandoned: its Snap call never finished (the gateway process likely "
            "died); Midtrans has no transaction for it"
        ),
    ),
    (
        r"attempt (?P<n>\d+) abandoned: its Snap call never finished \(the gateway process "
        r"likely died\), yet Midtrans has a transaction \((?P<status>\S+)\) for it",
        _(
            "attempt %(n)s abandoned: its Snap call never finished (the gateway process likely "
            "died), yet Midtrans has a transaction (%(status)s) for it"
        ),
    ),
    (
        r"no order with this order_id at this gateway",
        _("no order with this order_id at this gateway"),
    ),
    (r"status API says (?P<status>\S+)", _("status API says %(status)s")),
    (
        r"never confirmed in (?P<n>\d+) days: (?P<reason>.+)",
        _("never confirmed in %(n)s days: %(reason)s"),
    ),
    (
        r"(?P<reason>.+) \(first (?P<n>\d+) of (?P<total>\d+) bytes kept\)",
        _("%(reason)s (first %(n)s of %(total)s bytes kept)"),
    ),
    (r"signature_key does not match", _("signature_key does not match")),
    (
        r"status_code (?P<code>\S+) does not fit transaction_status (?P<value>\S+)",
        _("status_code %(code)s does not fit transaction_status %(value)s"),
    ),
    (r"body is not JSON \(or nested too deeply\)", _("body is not JSON (or nested too deeply)")),
    (r"body is not a JSON object", _("body is not a JSON object")),
    (
        r"body holds a lone surrogate escape \(not valid Unicode\)",
        _("body holds a lone surrogate escape (not valid Unicode)"),
    ),
    (r"(?P<field>\S+) is missing or not a string", _("%(field)s is missing or not a string")),
    (r"flagged", _("flagged")),
    (r"failed: unexpected error", _("failed: unexpected error")),
    (r"failed: (?P<reason>.+)", _("failed: %(reason)s")),
    (r"new signing secret issued", _("new signing secret issued")),
    (r"with a TOTP code", _("with a TOTP code")),
    (r"with a recovery code, (?P<n>\d+) left", _("with a recovery code, %(n)s left")),
    (r"wrong code at the second step", _("wrong code at the second step")),
    (r"wrong password or code", _("wrong password or code")),
    (r"from the command line", _("from the command line")),
    (r"amount (?P<amount>\d+)", _("amount %(amount)s")),
    (
        r"amount (?P<amount>\d+), refund_key (?P<key>\S+): (?P<text>.*)",
        _("amount %(amount)s, refund_key %(key)s: %(text)s"),
    ),
    (r"app (?P<app>\S+), order (?P<id>.+)", _("app %(app)s, order %(id)s")),
    (
        r"the previous secret also signs until (?P<until>.+) UTC",
        _("the previous secret also signs until %(until)s UTC"),
    ),
    (
        r"failed since (?P<since>.+) WIB: (?P<n>\d+) queued again",
        _("failed since %(since)s WIB: %(n)s queued again"),
    ),
    (r"callback URL set", _("callback URL set")),
    (r"callbacks stopped", _("callbacks stopped")),
    (r"new signing secret shown once", _("new signing secret shown once")),
    (r"wrong current password", _("wrong current password")),
    (
        r"refused unchecked: the address waits (?P<n>\d+) s",
        _("refused unchecked: the address waits %(n)s s"),
    ),
    (r"the address now waits (?P<n>\d+) s", _("the address now waits %(n)s s")),
    # Last: a detail made of parts ("callback URL set; new signing secret shown once"),
    # each part in the dashboard's language.
    (r"(?P<reason>[^;]+); (?P<reason_rest>.+)", _("%(reason)s; %(reason_rest)s")),
]
del _
_DETAIL_PATTERNS = [(re.compile(pattern, re.DOTALL), text) for pattern, text in DETAIL_TEXTS]


def detail_text(text: str | None, depth: int = 0) -> str:
    """A stored English text (see DETAIL_TEXTS) in the dashboard's language."""
    if not text:
        return text or ""
    if depth > 3:
        return text
    for pattern, label in _DETAIL_PATTERNS:
        found = pattern.fullmatch(text)
        if found is None:
            continue
        parts = {}
        for name, value in found.groupdict().items():
            if name.startswith("reason"):
                value = detail_text(value, depth + 1)
            elif name.startswith("status"):
                value = word(STATUS_WORDS, value)
            elif name == "outcome":
                value = word(LABELS, value)
            parts[name] = value
        return str(label) % parts if parts else str(label)
    return text
