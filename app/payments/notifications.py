"""Midtrans HTTP notifications: verified, stored, confirmed, then applied forward only.

Midtrans's signature covers order_id, status_code and gross_amount, not transaction_status or
fraud_status, so a notification is a hint, never the truth: the state applied is the one the
status API confirms. Notifications come duplicated and out of order; the lifecycle rules make a
stale one harmless. Every verified one is stored as received, and one that cannot be
confirmed now is kept for the worker, so none is lost. A forged or malformed one raises
`InvalidSignatureError` or `InvalidNotificationError` once it is stored as its first 4 KiB with
the reason (never applied), as long as its sender is admitted (RATELIMIT_REJECTED_NOTIFICATIONS:
beyond it, nothing is stored).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..database import writing
from ..errors import GatewayError, InvalidNotificationError, InvalidSignatureError
from ..extensions import db
from ..midtrans import NOTIFICATION_STATUS_CODES, Midtrans
from ..models import EventSource, Notification, NotificationOutcome
from .lifecycle import (
    Applied,
    apply_in_unit,
    attempt_amount,
    flag_order,
    locked_transaction,
    order_of_midtrans_id,
)
from .outcomes import check_amount
from .recovery import RECOVERED_FLAG, claimed_by_an_app, recover_order

log = logging.getLogger(__name__)

MAX_STORED_BODY = 65_536
# A rejected (forged or malformed) notification is kept for an admin to look at, not to
# process: its first 4 KiB (a real Midtrans notification is 1 to 2 KiB) and its reason.
REJECTED_EXCERPT = 4_096
# The notification endpoint answers quickly: a slower status API leaves it to the worker.
INLINE_CONFIRM_TIMEOUT = 3.0
# When the worker tries again to confirm a notification, after 1, 2, 3 ... failures.
CONFIRM_BACKOFF = [
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=3),
    timedelta(hours=6),
]
CONFIRM_GIVE_UP = timedelta(days=3)
SIGNED_FIELDS = ("order_id", "status_code", "gross_amount", "signature_key")
# What no database column takes: NUL (PostgreSQL refuses it) and lone surrogates (a JSON
# escape such as "\ud800" decodes to one; no encoding can write it).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Receipt:
    """What became of a verified notification: it is stored, and Midtrans may stop sending
    it (a rejected one raises instead)."""

    outcome: NotificationOutcome
    reason: str | None = None
    notification_id: int | None = None


def _parse(raw: bytes) -> tuple[dict, str | None]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}, "body is not JSON (or nested too deeply)"
    if not isinstance(body, dict):
        return {}, "body is not a JSON object"
    # Midtrans writes valid Unicode; a lone surrogate (JSON "\ud800") is not text at all.
    # An escaped pair (an emoji) decodes to one character and is not caught here.
    pending: list = [body]
    while pending:  # no recursion: the body may be nested as deep as the decoder allows
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str) and LONE_SURROGATE.search(value):
            return body, "body holds a lone surrogate escape (not valid Unicode)"
    for name in (*SIGNED_FIELDS, "transaction_status"):
        if not isinstance(body.get(name), str) or not body[name]:
            return body, f"{name} is missing or not a string"
    return body, None


def _storable(text: str) -> str:
    """NUL and lone surrogates cannot be stored: keep them visible as escapes instead."""
    return UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _text(body: dict, name: str, limit: int) -> str | None:
    value = body.get(name)
    return _storable(value)[:limit] if isinstance(value, str) else None


def receive_notification(
    *,
    raw: bytes,
    remote_addr: str | None,
    midtrans: Midtrans,
    admit_rejected: Callable[[], None] | None = None,
) -> Receipt:
    """Parse, verify, store, apply what the status API confirms, answer.

    A rejected notification raises `InvalidNotificationError` (`InvalidSignatureError` for a
    forged one) once it is stored as an excerpt (REJECTED_EXCERPT) with its reason;
    `admit_rejected()` is asked first and raises when its sender is over its limit, and then
    nothing is stored. Verified notifications are never limited."""
    body, problem = _parse(raw)
    note = _as_received(raw, body, remote_addr)
    try:
        _verify(body, problem, midtrans)
    except InvalidNotificationError as rejection:
        _store_rejected(note, raw, rejection, admit_rejected)
        raise
    about = _store_verified(note, body)
    if about is None:  # unmatched, or finished already (an amount that does not fit)
        return Receipt(note.outcome, note.reason, note.id)
    return _confirm(note, about, midtrans=midtrans, timeout=INLINE_CONFIRM_TIMEOUT)


def _as_received(raw: bytes, body: dict, remote_addr: str | None) -> Notification:
    """The notification's row, not stored yet: the body as received and its main fields."""
    return Notification(
        body=_storable(raw[:MAX_STORED_BODY].decode("utf-8", "replace")),
        remote_addr=(remote_addr or "")[:64] or None,
        order_id=_text(body, "order_id", 255),
        midtrans_transaction_id=_text(body, "transaction_id", 255),
        transaction_status=_text(body, "transaction_status", 64),
        status_code=_text(body, "status_code", 16),
        gross_amount=_text(body, "gross_amount", 64),
        payment_type=_text(body, "payment_type", 64),
        outcome=NotificationOutcome.RECEIVED,
    )


def _verify(body: dict, problem: str | None, midtrans: Midtrans) -> None:
    """Raise unless Midtrans sent this: well formed (no `problem` parsing it), signed with
    the server key, and a status_code that fits its transaction_status."""
    if problem is not None:
        raise InvalidNotificationError(problem)
    if not midtrans.signature_matches(
        order_id=body["order_id"],
        status_code=body["status_code"],
        gross_amount=body["gross_amount"],
        signature=body["signature_key"],
    ):
        raise InvalidSignatureError("signature_key does not match")
    expected = NOTIFICATION_STATUS_CODES.get(body["transaction_status"])
    if expected is not None and body["status_code"] not in expected:
        raise InvalidNotificationError(
            f"status_code {body['status_code']} does not fit "
            f"transaction_status {body['transaction_status']}"
        )


def _store_rejected(
    note: Notification,
    raw: bytes,
    rejection: InvalidNotificationError,
    admit_rejected: Callable[[], None] | None,
) -> None:
    """Keep the first REJECTED_EXCERPT bytes with the reason, for an admin to look at (not
    when `admit_rejected()` raises: its sender is over its limit)."""
    if admit_rejected is not None:
        admit_rejected()
    kept = f" (first {REJECTED_EXCERPT} of {len(raw)} bytes kept)"
    note.body = _storable(raw[:REJECTED_EXCERPT].decode("utf-8", "replace"))
    note.outcome = NotificationOutcome.REJECTED
    note.reason = rejection.reason + (kept if len(raw) > REJECTED_EXCERPT else "")
    note.processed_at = datetime.now(UTC)
    with writing():
        db.session.add(note)
    rejection.notification_id = note.id
    log.warning("notification %s rejected: %s", note.id, rejection.reason)


@dataclass(frozen=True)
class _About:
    """What confirming a stored notification needs: its order (None: one to recover), the
    Midtrans order id to ask about."""

    txn_id: int | None
    ident: str | None


def _store_verified(note: Notification, body: dict) -> _About | None:
    """Store the notification with its order, in one write before Midtrans is asked (so none
    is lost if the process dies meanwhile). With no order here, one an app's prefix claims is
    recovered from Midtrans when confirmed; any other is `unmatched`, done. A signed amount
    that does not fit the attempt is flagged in the same unit (Midtrans is not asked). None
    when nothing is left to confirm."""
    note.signature_valid = True
    with writing():
        txn = order_of_midtrans_id(body["order_id"])
        if txn is None and not claimed_by_an_app(body["order_id"]):
            note.outcome = NotificationOutcome.UNMATCHED
            note.reason = "no order with this order_id at this gateway"
            note.processed_at = datetime.now(UTC)
        note.transaction_id = txn.id if txn is not None else None
        db.session.add(note)
        about = None
        if txn is None:
            about = _About(None, None) if note.outcome != NotificationOutcome.UNMATCHED else None
        else:
            db.session.flush()  # the note's id, for the flag's event
            about = _check_amount(note, txn)
    if note.outcome == NotificationOutcome.UNMATCHED:
        log.warning("notification %s for unknown order %s", note.id, note.order_id)
    return about


def _check_amount(note: Notification, txn) -> _About | None:
    """In the unit that reads the note's order: the attempt it is about, or None once the
    note is finished as flagged because its signed amount does not fit that attempt."""
    ident = note.order_id or txn.midtrans_order_id
    charged = attempt_amount(txn, note.order_id) if note.order_id else None
    amount = check_amount(_as_sent(note), charged if charged is not None else txn.amount)
    if amount.fits:
        return _About(txn.id, ident)
    _finish_in_unit(
        note, NotificationOutcome.FLAGGED, f"amount mismatch: {amount.reason}", flag_txn=txn.id
    )
    return None


def _as_sent(note: Notification) -> dict:
    """The notification's fields as Midtrans sent them (the signed gross_amount at least)."""
    try:
        body = json.loads(note.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    body["gross_amount"] = note.gross_amount
    return body


def confirm_notification(
    note_id: int, *, midtrans: Midtrans, timeout: float | None = None
) -> Receipt:
    """Ask the status API what is true now and apply it; keep it for later if Midtrans is
    unreachable. Safe to call again for the same notification (the worker does)."""
    with writing():  # writes only when the amount does not fit (the note is then finished)
        note = _fresh_note(note_id)
        txn = note.transaction
        about = _check_amount(note, txn) if txn is not None else _About(None, None)
    if about is None:
        return Receipt(note.outcome, note.reason, note.id)
    return _confirm(note, about, midtrans=midtrans, timeout=timeout)


def _confirm(
    note: Notification, about: _About, *, midtrans: Midtrans, timeout: float | None
) -> Receipt:
    """Ask the status API about the stored note's attempt (no transaction open meanwhile),
    then apply the answer and finish the note in one write."""
    if about.txn_id is None:
        return _recover(note, midtrans=midtrans, timeout=timeout)
    try:
        # By the signed order_id: the transaction_id is not covered by the signature, so a
        # replayed notification carrying another order's id must not pick what is confirmed.
        answer = midtrans.get_status(about.ident, timeout=timeout)
    except GatewayError as err:
        return _postpone(note.id, f"status API: {err.message}")
    if answer is None:
        return _postpone(note.id, "status API does not know the transaction yet")
    reason = None
    if answer.get("transaction_status") != note.transaction_status:
        reason = f"status API says {answer.get('transaction_status')}"
    with writing():
        applied = apply_in_unit(
            locked_transaction(about.txn_id),
            answer,
            source=EventSource.NOTIFICATION,
            notification_id=note.id,
        )
        outcome = {
            Applied.CHANGED: NotificationOutcome.APPLIED,
            Applied.UNCHANGED: NotificationOutcome.UNCHANGED,
            Applied.FLAGGED: NotificationOutcome.FLAGGED,
        }[applied]
        _finish_in_unit(_fresh_note(note.id), outcome, reason)
    return Receipt(outcome, reason, note.id)


def _recover(note: Notification, *, midtrans: Midtrans, timeout: float | None) -> Receipt:
    """A verified notification for an order the database does not hold (a restore from an
    older backup): rebuild the order from the status API, or keep trying while Midtrans
    cannot be asked. Answered only once the order, or the note to retry, is stored."""
    try:
        txn = recover_order(note.order_id, midtrans=midtrans, timeout=timeout)
    except GatewayError as err:
        return _postpone(note.id, f"unknown order, not recovered yet: {err.message}")
    if txn is None:
        return _finish(
            note.id,
            NotificationOutcome.UNMATCHED,
            "no order with this order_id at this gateway, and none Midtrans can tell of",
        )
    return _finish(note.id, NotificationOutcome.APPLIED, RECOVERED_FLAG, attach_txn=txn.id)


def _finish(
    note_id: int,
    outcome: NotificationOutcome,
    reason: str | None,
    *,
    flag_txn: int | None = None,
    attach_txn: int | None = None,
) -> Receipt:
    with writing():
        _finish_in_unit(
            _fresh_note(note_id), outcome, reason, flag_txn=flag_txn, attach_txn=attach_txn
        )
    return Receipt(outcome, reason, note_id)


def _fresh_note(note_id: int) -> Notification:
    return db.session.get(Notification, note_id, populate_existing=True)


def _finish_in_unit(
    note: Notification,
    outcome: NotificationOutcome,
    reason: str | None,
    *,
    flag_txn: int | None = None,
    attach_txn: int | None = None,
) -> None:
    """The note is done (`outcome`, `reason`), in the caller's write unit; `flag_txn` puts
    its order in front of a person with the reason."""
    note.outcome, note.reason = outcome, reason
    if attach_txn is not None:
        note.transaction_id = attach_txn
    note.processed_at = datetime.now(UTC)
    note.next_attempt_at = note.claimed_until = None
    if flag_txn is not None:
        flag_order(
            locked_transaction(flag_txn),
            reason or "flagged",
            source=EventSource.NOTIFICATION,
            notification_id=note.id,
        )


def _postpone(note_id: int, reason: str) -> Receipt:
    with writing():
        note = db.session.get(Notification, note_id, populate_existing=True)
        now = datetime.now(UTC)
        note.attempts += 1
        note.reason = reason
        note.claimed_until = None
        if now - note.received_at > CONFIRM_GIVE_UP:
            note.outcome = NotificationOutcome.FLAGGED
            note.reason = f"never confirmed in {CONFIRM_GIVE_UP.days} days: {reason}"
            note.next_attempt_at = None
        else:
            note.outcome = NotificationOutcome.UNCONFIRMED
            delay = CONFIRM_BACKOFF[min(note.attempts, len(CONFIRM_BACKOFF)) - 1]
            note.next_attempt_at = now + delay
    log.warning("notification %s not confirmed yet: %s", note_id, reason)
    return Receipt(note.outcome, note.reason, note_id)
