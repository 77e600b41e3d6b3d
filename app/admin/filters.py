"""Template filters and helpers: rupiah amounts, WIB times, what a payment means."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from flask import Flask
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from werkzeug.exceptions import default_exceptions

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
    """100.0% in English, 100,0% in Bahasa Indonesia (a decimal comma)."""
    if value is None:
        return "-"
    shown = f"{value * 100:.1f}%"
    return shown.replace(".", ",") if _indonesian() else shown


def number(value: int | None) -> str:
    """A whole number with thousands grouped: 1,234 in English, 1.234 in Indonesian."""
    if value is None:
        return "-"
    shown = f"{value:,}"
    return shown.replace(",", ".") if _indonesian() else shown


def _indonesian() -> bool:
    locale = get_locale()
    return locale is not None and locale.language == "id"


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


# The dashboard's words for the HTTP errors a person meets: (title, Werkzeug's default
# description translated). A message of the gateway's own is shown through detail_text.
HTTP_ERRORS = {
    400: (_l("Bad request"), _l("The browser sent a request this server could not understand.")),
    403: (_l("Forbidden"), _l("You do not have permission to open this page.")),
    404: (
        _l("Page not found"),
        _l("The page you asked for does not exist. If you typed its address, check it."),
    ),
    405: (_l("Method not allowed"), _l("This page cannot be used that way.")),
    413: (_l("Request too large"), _l("The data sent is larger than this server accepts.")),
    429: (_l("Too many requests"), _l("Too many requests: wait a moment and try again.")),
    500: (
        _l("Internal server error"),
        _l("Something went wrong on the server; the error was logged. Try again later."),
    ),
    503: (
        _l("Service unavailable"),
        _l("The service is unavailable for a moment. Try again later."),
    ),
}


@dataclass(frozen=True)
class ErrorWords:
    title: str
    message: str


def error_words(status: int, message: str | None) -> ErrorWords:
    """What an error page says: its title, and its message in the dashboard's language
    (Werkzeug's default description is replaced by ours)."""
    title, default = HTTP_ERRORS.get(status, ("", None))
    werkzeug_error = default_exceptions.get(status)
    if default is not None and (
        not message or (werkzeug_error is not None and message == werkzeug_error.description)
    ):
        return ErrorWords(str(title), str(default))
    return ErrorWords(str(title), meaning.detail_text(message))


def register_filters(app: Flask) -> None:
    app.jinja_env.filters.update(
        rupiah=rupiah,
        wib=wib,
        percent=percent,
        pretty_json=pretty_json,
        callback_status=callback_status,
        number=number,
        status_word=lambda value: meaning.word(meaning.STATUS_WORDS, value),
        notification_word=lambda value: meaning.word(meaning.NOTIFICATION_WORDS, value),
        callback_word=lambda value: meaning.word(meaning.CALLBACK_WORDS, value),
        link_word=lambda value: meaning.word(meaning.LINK_WORDS, value),
        source_word=lambda value: meaning.word(meaning.SOURCE_WORDS, value),
        audit_word=lambda value: meaning.word(meaning.AUDIT_WORDS, value),
        alert_word=lambda value: meaning.word(meaning.ALERT_WORDS, value),
        detail_text=meaning.detail_text,
    )
    app.jinja_env.globals.update(
        outcome_of=outcome_of,
        is_paid=is_paid,
        clip_html=clip_html,
        audit_changes=audit_changes,
        error_words=error_words,
        OUTCOME_LABELS=meaning.LABELS,
        OUTCOME_KINDS=meaning.KINDS,
    )
