"""Template filters and helpers: rupiah amounts, WIB times, what a payment means."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from flask import Flask
from markupsafe import Markup, escape

from ..payments.outcomes import is_paid, outcome_of
from . import meaning
from .common import WIB


def rupiah(amount: int | None) -> str:
    if amount is None:
        return "-"
    return "Rp " + f"{amount:,}".replace(",", ".")


def wib(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if moment is None:
        return "-"
    return moment.astimezone(WIB).strftime(fmt) + " WIB"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def audit_changes(before: dict | None, after: dict | None) -> list[tuple[str, str, str]]:
    """What an admin action changed, field by field: (field, before, after), the unchanged
    fields left out; a value absent on one side shows as an empty string."""
    before, after = before or {}, after or {}
    changes = []
    for field in sorted(set(before) | set(after)):
        old, new = before.get(field), after.get(field)
        if old != new:
            changes.append((field, _shown(old), _shown(new)))
    return changes


def _shown(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def pretty_json(raw) -> str:
    """A notification body as received, indented when it is JSON."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return raw
    return json.dumps(raw, indent=2, ensure_ascii=False, sort_keys=True)


BODY_PREVIEW_BYTES = 3000  # a real Midtrans notification, indented and escaped, is < 2 KB


@dataclass(frozen=True)
class Clipped:
    html: Markup
    clipped: bool  # something was left out


def clip_html(text: str | None, limit: int = BODY_PREVIEW_BYTES) -> Clipped:
    """The start of `text`, HTML-escaped, taking at most `limit` bytes of the page: escaping
    and UTF-8 are counted, so a body of quotes or emoji cannot make a list long either."""
    text = text or ""
    if len(text) * 6 <= limit:  # no character escapes to more than 6 bytes
        return Clipped(escape(text), False)
    pieces, size = [], 0
    for char in text:
        piece = str(escape(char))
        size += len(piece.encode("utf-8", "replace"))
        if size > limit:
            return Clipped(Markup("".join(pieces)) + "\u2026", True)
        pieces.append(piece)
    return Clipped(Markup("".join(pieces)), False)


def callback_status(payload: str) -> str | None:
    """The order status a callback body reports (`data.transaction_status`), if readable."""
    try:
        data = json.loads(payload).get("data") or {}
    except (ValueError, AttributeError):
        return None
    status = data.get("transaction_status") if isinstance(data, dict) else None
    return status if isinstance(status, str) else None


def register_filters(app: Flask) -> None:
    app.jinja_env.filters.update(
        rupiah=rupiah,
        wib=wib,
        percent=percent,
        pretty_json=pretty_json,
        callback_status=callback_status,
    )
    app.jinja_env.globals.update(
        outcome_of=outcome_of,
        is_paid=is_paid,
        clip_html=clip_html,
        audit_changes=audit_changes,
        OUTCOME_LABELS=meaning.LABELS,
        OUTCOME_KINDS=meaning.KINDS,
    )
