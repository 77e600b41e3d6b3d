"""What the dashboard pages show: overview figures, filtered transaction lists, CSV export.

Read-only; dates are shown and filtered in WIB (UTC+7, Indonesia has no daylight saving),
the time Midtrans and the admins use, and stored in UTC.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import (
    App,
    CallbackAttempt,
    CallbackEvent,
    CallbackState,
    Notification,
    Transaction,
    utcnow,
)
from ..payments.outcomes import OUTCOMES, Outcome, is_paid, outcome_of
from . import meaning
from .models import AuditEntry

WIB = timezone(timedelta(hours=7), "WIB")
PAGE_SIZE = 50


def wib_midnight(day: date) -> datetime:
    """The start of `day` in Jakarta, in UTC (SQLite compares stored times as UTC text)."""
    return datetime.combine(day, time(), tzinfo=WIB).astimezone(UTC)


def today_wib() -> date:
    return utcnow().astimezone(WIB).date()


def wib_to_utc(moment: datetime) -> datetime:
    """A time typed in Jakarta (a datetime-local input, naive) as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=WIB)
    return moment.astimezone(UTC)


# -- overview --------------------------------------------------------------------------------
# Money is counted by outcome (`app.payments.outcomes`), never by Midtrans's raw status: a
# challenged card capture is money on hold, not a sale. "Paid" money is what the merchant kept:
# the amounts of the orders a client may fulfil (`is_paid`: settled, accepted captures, and
# paid orders partly refunded or charged back) less what was given back. A fee the payer added
# through Midtrans's fee imposition is not the merchant's and is left out.


@dataclass
class Tally:
    count: int = 0
    amount: int = 0  # the orders' own amounts
    refunded: int = 0  # what Midtrans gave back of them

    @property
    def kept(self) -> int:
        return self.amount - self.refunded

    def add(self, count: int, amount: int, refunded: int) -> None:
        self.count += count
        self.amount += amount
        self.refunded += refunded


@dataclass
class Period:
    label: str
    by_outcome: dict[str, Tally] = field(default_factory=dict)  # in OUTCOMES order
    paid: Tally = field(default_factory=Tally)  # the orders a client may fulfil

    @property
    def count(self) -> int:
        return sum(t.count for t in self.by_outcome.values())

    @property
    def failed(self) -> int:
        return sum(t.count for o, t in self.by_outcome.items() if o in meaning.UNSUCCESSFUL)

    @property
    def success_rate(self) -> float | None:
        """Paid among the orders that finished one way or the other (waiting ones left out)."""
        paid, failed = self.paid.count, self.failed
        return paid / (paid + failed) if paid + failed else None


def _groups(start: datetime, end: datetime) -> list[tuple[str, str | None, int, int, int]]:
    """(status, fraud_status, count, amount, refunded) of the orders with a link made in
    [start, end): grouped in SQL, given their meaning by `outcome_of` in Python."""
    rows = db.session.execute(
        select(
            Transaction.status,
            Transaction.fraud_status,
            func.count(),
            func.coalesce(func.sum(Transaction.amount), 0),
            func.coalesce(func.sum(Transaction.refunded_amount), 0),
        )
        .where(Transaction.created_at >= start, Transaction.created_at < end)
        .where(Transaction.snap_token.is_not(None))
        .group_by(Transaction.status, Transaction.fraud_status)
    ).all()
    return [(s, f, int(c), int(a), int(r)) for s, f, c, a, r in rows]


def _period(label: str, start: datetime, end: datetime) -> Period:
    tallies: dict[str, Tally] = {}
    paid = Tally()
    for status, fraud, count, amount, refunded in _groups(start, end):
        tallies.setdefault(outcome_of(status, fraud), Tally()).add(count, amount, refunded)
        if is_paid(status, fraud):
            paid.add(count, amount, refunded)
    by_outcome = {o: tallies[o] for o in OUTCOMES if o in tallies}
    return Period(label, by_outcome, paid)


@dataclass
class DayBar:
    day: date
    paid: int  # may be fulfilled (partly refunded ones too)
    pending: int  # waiting: for the customer, a capture, or a decision on a challenge
    failed: int  # failed, expired, cancelled
    other: int  # refunded, charged back

    @property
    def total(self) -> int:
        return self.paid + self.pending + self.failed + self.other


def _day_bar(day: date) -> DayBar:
    bar = DayBar(day, 0, 0, 0, 0)
    for status, fraud, count, _amount, _refunded in _groups(
        wib_midnight(day), wib_midnight(day + timedelta(days=1))
    ):
        outcome = outcome_of(status, fraud)
        if is_paid(status, fraud):
            bar.paid += count
        elif outcome in meaning.WAITING:
            bar.pending += count
        elif outcome in meaning.UNSUCCESSFUL:
            bar.failed += count
        else:
            bar.other += count
    return bar


def overview() -> dict:
    today = today_wib()
    start_today = wib_midnight(today)
    tomorrow = wib_midnight(today + timedelta(days=1))
    week_start = wib_midnight(today - timedelta(days=6))
    days = [_day_bar(today - timedelta(days=offset)) for offset in range(6, -1, -1)]
    attention = meaning.outcomes_condition(meaning.UNSUCCESSFUL | {Outcome.CHALLENGE})
    failures = (
        db.session.execute(
            select(Transaction)
            .where(or_(attention, Transaction.flag.is_not(None)))
            .order_by(Transaction.updated_at.desc(), Transaction.id.desc())
            .limit(10)
        )
        .scalars()
        .all()
    )
    return {
        "today": _period("today", start_today, tomorrow),
        "week": _period("week", week_start, tomorrow),
        "days": days,
        "failures": failures,
    }


def chart(days: list[DayBar], *, width: int = 640, height: int = 220) -> dict:
    """Geometry of a stacked bar chart (one bar a day), drawn as inline SVG by the template."""
    top, bottom, left = 16, 36, 36
    plot_h = height - top - bottom
    peak = max([d.total for d in days] + [1])
    slot = (width - left) / len(days)
    bars = []
    for i, d in enumerate(days):
        x = left + i * slot + slot * 0.2
        y = top + plot_h
        segments = []
        for kind in ("paid", "pending", "failed", "other"):
            value = getattr(d, kind)
            h = plot_h * value / peak
            if value:
                segments.append({"kind": kind, "y": round(y - h, 1), "h": round(h, 1)})
            y -= h
        bars.append(
            {
                "x": round(x, 1),
                "w": round(slot * 0.6, 1),
                "label": d.day.strftime("%d/%m"),
                "total": d.total,
                "segments": segments,
                "label_x": round(x + slot * 0.3, 1),
                "total_y": round(y - 4, 1),
            }
        )
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "peak": peak,
        "axis_y": top + plot_h,
        "top": top,
        "left": left,
        "label_y": height - bottom + 18,
    }


# -- transactions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TxFilter:
    app_id: int | None = None
    status: str | None = None  # Midtrans's raw transaction_status
    outcome: str | None = None  # SPEC's outcome (one of OUTCOMES)
    date_from: date | None = None
    date_to: date | None = None
    q: str = ""

    def apply(self, query: Select) -> Select:
        if self.app_id:
            query = query.where(Transaction.app_id == self.app_id)
        if self.status:
            query = query.where(Transaction.status == self.status)
        if self.outcome:
            query = query.where(meaning.outcome_condition(self.outcome))
        if self.date_from:
            query = query.where(Transaction.created_at >= wib_midnight(self.date_from))
        if self.date_to:
            query = query.where(
                Transaction.created_at < wib_midnight(self.date_to + timedelta(days=1))
            )
        if self.q:
            pattern = "%" + _escape_like(self.q) + "%"
            query = query.where(
                or_(
                    Transaction.order_id.like(pattern, escape="\\"),
                    Transaction.midtrans_order_id.like(pattern, escape="\\"),
                    Transaction.midtrans_transaction_id.like(pattern, escape="\\"),
                )
            )
        return query


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass
class Page:
    items: list
    page: int
    pages: int
    total: int


def paginate(query: Select, count_query: Select, page: int) -> Page:
    total = db.session.execute(count_query).scalar_one()
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(page, 1), pages)
    items = (
        db.session.execute(query.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).scalars().all()
    )
    return Page(list(items), page, pages, total)


def transactions_page(flt: TxFilter, page: int) -> Page:
    query = flt.apply(select(Transaction)).order_by(
        Transaction.created_at.desc(), Transaction.id.desc()
    )
    count = flt.apply(select(func.count()).select_from(Transaction))
    return paginate(query, count, page)


CSV_COLUMNS = (
    "created_at_wib",
    "app",
    "order_id",
    "midtrans_order_id",
    "amount",
    "status",
    "fraud_status",
    "payment_type",
    "midtrans_transaction_id",
    "flag",
    "updated_at_wib",
    # Added later, after the first columns so spreadsheets reading by position keep working.
    "outcome",
    "paid",
    "refunded_amount",
    "customer_imposed_fee",
)


def safe_cell(value) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, bool | int):
        return str(value)
    text = str(value)
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def _wib(moment: datetime | None) -> str:
    return moment.astimezone(WIB).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def transactions_csv(flt: TxFilter) -> Iterator[str]:
    """The filtered set as CSV, in chunks (no page limit)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    query = (
        flt.apply(select(Transaction, App.code).join(App, Transaction.app_id == App.id))
        .order_by(Transaction.created_at.desc(), Transaction.id.desc())
        .execution_options(yield_per=500)
    )
    for txn, code in db.session.execute(query):
        writer.writerow(
            [
                _wib(txn.created_at),
                safe_cell(code),
                safe_cell(txn.order_id),
                safe_cell(txn.midtrans_order_id),
                txn.amount,
                safe_cell(txn.status),
                safe_cell(txn.fraud_status),
                safe_cell(txn.payment_type),
                safe_cell(txn.midtrans_transaction_id),
                safe_cell(txn.flag),
                _wib(txn.updated_at),
                str(outcome_of(txn.status, txn.fraud_status)),
                "true" if is_paid(txn.status, txn.fraud_status) else "false",
                txn.refunded_amount,
                "" if txn.customer_imposed_fee is None else txn.customer_imposed_fee,
            ]
        )
        if buffer.tell() > 32_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def apps_by_id() -> dict[int, App]:
    return {a.id: a for a in db.session.execute(select(App).order_by(App.code)).scalars()}


# -- notifications and audit -----------------------------------------------------------------


def notifications_page(outcome: str | None, page: int, *, txn: Transaction | None = None) -> Page:
    """Notifications, newest first: all, those of one outcome, and/or those about one order."""
    query = select(Notification)
    count = select(func.count()).select_from(Notification)
    if outcome:
        query = query.where(Notification.outcome == outcome)
        count = count.where(Notification.outcome == outcome)
    if txn is not None:
        query = query.where(_about(txn))
        count = count.where(_about(txn))
    return paginate(query.order_by(Notification.id.desc()), count, page)


@dataclass
class Newest:
    """The newest rows of a list that may be long (anyone can post notifications naming an
    order), and how many there are in all: a page shows these and links to the rest."""

    items: list
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.items)


ORDER_PAGE_ROWS = 20  # notifications and callbacks shown on an order's page


def _about(txn: Transaction):
    """A notification about this order: matched to it, or naming its Midtrans order id."""
    return or_(
        Notification.transaction_id == txn.id,
        Notification.order_id == txn.midtrans_order_id,
    )


def notifications_of(txn: Transaction, limit: int = ORDER_PAGE_ROWS) -> Newest:
    """The newest notifications about this order, and their number."""
    total = db.session.execute(
        select(func.count()).select_from(Notification).where(_about(txn))
    ).scalar_one()
    items = db.session.execute(
        select(Notification).where(_about(txn)).order_by(Notification.id.desc()).limit(limit)
    ).scalars()
    return Newest(list(items), total)


def audit_page(action: str | None, page: int) -> Page:
    query = select(AuditEntry)
    count = select(func.count()).select_from(AuditEntry)
    if action:
        query = query.where(AuditEntry.action == action)
        count = count.where(AuditEntry.action == action)
    return paginate(query.order_by(AuditEntry.id.desc()), count, page)


# -- callbacks to client apps ----------------------------------------------------------------


def _callback_filter(
    query: Select, app_id: int, state: str | None, q: str, txn_id: int | None = None
) -> Select:
    query = query.where(CallbackEvent.app_id == app_id)
    if state:
        query = query.where(CallbackEvent.state == state)
    if txn_id is not None:
        query = query.where(CallbackEvent.transaction_id == txn_id)
    if q:
        pattern = "%" + _escape_like(q) + "%"
        query = query.join(Transaction, Transaction.id == CallbackEvent.transaction_id).where(
            or_(CallbackEvent.event_id == q, Transaction.order_id.like(pattern, escape="\\"))
        )
    return query


def callback_events_page(
    app_id: int, *, state: str | None, q: str, page: int, txn_id: int | None = None
) -> Page:
    """An app's callback events, newest first, with their orders loaded (those of one order
    only with `txn_id`)."""
    query = (
        _callback_filter(select(CallbackEvent), app_id, state, q, txn_id)
        .options(selectinload(CallbackEvent.transaction))
        .order_by(CallbackEvent.created_at.desc(), CallbackEvent.id.desc())
    )
    count = _callback_filter(select(func.count(CallbackEvent.id)), app_id, state, q, txn_id)
    return paginate(query, count, page)


def callback_counts(app_id: int) -> dict[str, int]:
    """How many events of the app are in each state (every state present, zero or not)."""
    rows = db.session.execute(
        select(CallbackEvent.state, func.count())
        .where(CallbackEvent.app_id == app_id)
        .group_by(CallbackEvent.state)
    ).all()
    counts = {state.value: 0 for state in CallbackState}
    counts.update({state: int(count) for state, count in rows})
    return counts


def callback_events_of(txn: Transaction, limit: int = ORDER_PAGE_ROWS) -> Newest:
    """The newest callback events of this order, and their number."""
    mine = CallbackEvent.transaction_id == txn.id
    total = db.session.execute(
        select(func.count()).select_from(CallbackEvent).where(mine)
    ).scalar_one()
    items = db.session.execute(
        select(CallbackEvent)
        .where(mine)
        .order_by(CallbackEvent.created_at.desc(), CallbackEvent.id.desc())
        .limit(limit)
    ).scalars()
    return Newest(list(items), total)


def callback_attempts(event_id: int) -> list[CallbackAttempt]:
    return list(
        db.session.execute(
            select(CallbackAttempt)
            .where(CallbackAttempt.callback_event_id == event_id)
            .order_by(CallbackAttempt.id)
        ).scalars()
    )
