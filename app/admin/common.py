"""What several dashboard pages share: the page number, safe redirects, search text, paging,
Jakarta days, the apps by id, and the `txn=` filter.

Dates are shown and filtered in WIB (UTC+7, Indonesia has no daylight saving), the time
Midtrans and the admins use, and stored in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from urllib.parse import urlsplit

from flask import flash, request
from sqlalchemy import Select, select

from ..errors import GatewayError
from ..extensions import db
from ..models import App, Transaction

WIB = timezone(timedelta(hours=7), "WIB")
PAGE_SIZE = 50


def page_number() -> int:
    """The `page=` of a list (1 when missing or not a number)."""
    return request.args.get("page", 1, type=int) or 1


def safe_next(target: str | None, default: str) -> str:
    """Only a path inside the dashboard: never another host (no open redirect), and nothing
    a Location header cannot carry (a CR or LF there was a 500). Anything else: `default`."""
    if not target or not target.isprintable() or "\\" in target:
        return default  # isprintable: no control, format or line-separator character
    parts = urlsplit(target)
    inside = parts.path == "/admin" or parts.path.startswith("/admin/")
    if parts.scheme or parts.netloc or not inside:
        return default
    return target


def search_term(raw: str | None, limit: int = 100) -> str:
    """A search box's text as the database can take it: control characters (NUL, which
    PostgreSQL refuses in text, CR, LF, ...) taken out, spaces trimmed, at most `limit` long."""
    return "".join(ch for ch in (raw or "") if ch.isprintable()).strip()[:limit]


def field_error(form, err: GatewayError) -> None:
    """A rule's refusal shown at the form field it names, else as a message on the page."""
    field = getattr(form, err.details.get("field") or "", None)
    if field is not None:
        field.errors = [*field.errors, err.message]
    else:
        flash(err.message, "error")


def like_pattern(text: str) -> str:
    """`text` anywhere in a column, for `.like(pattern, escape="\\")`: its own % and _ match
    only themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "%" + escaped + "%"


def wib_midnight(day: date) -> datetime:
    """The start of `day` in Jakarta, in UTC (SQLite compares stored times as UTC text)."""
    return datetime.combine(day, time(), tzinfo=WIB).astimezone(UTC)


@dataclass
class Page:
    items: list
    page: int
    pages: int
    total: int


def paginate(query: Select, count_query: Select, page: int) -> Page:
    """Page `page` of `query` (PAGE_SIZE rows); a page beyond the last shows the last."""
    total = db.session.execute(count_query).scalar_one()
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(page, 1), pages)
    items = (
        db.session.execute(query.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).scalars().all()
    )
    return Page(list(items), page, pages, total)


def apps_by_id() -> dict[int, App]:
    """Every client app by id, in code order: names in lists, choices of the app filter."""
    return {a.id: a for a in db.session.execute(select(App).order_by(App.code)).scalars()}


def order_filter(txn_id: int | None, *, app_id: int | None = None) -> Transaction | None:
    """The order a `txn=` filter names (of app `app_id` only, when given); None for anything
    else (no such row, another app's order, a number beyond the database's INTEGER)."""
    if txn_id is None or not 0 < txn_id < 2**31:
        return None
    txn = db.session.get(Transaction, txn_id)
    if txn is None or (app_id is not None and txn.app_id != app_id):
        return None
    return txn
