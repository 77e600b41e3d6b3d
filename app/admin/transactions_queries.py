"""What the transaction pages read: the filtered list, its CSV export, and an order's newest
notifications and callbacks. Read-only."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Select, func, or_, select

from ..extensions import db
from ..models import App, CallbackEvent, Notification, Transaction
from ..payments.outcomes import is_paid, outcome_of
from . import meaning
from .common import WIB, Page, like_pattern, paginate, wib_midnight


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
            pattern = like_pattern(self.q)
            query = query.where(
                or_(
                    Transaction.order_id.like(pattern, escape="\\"),
                    Transaction.midtrans_order_id.like(pattern, escape="\\"),
                    Transaction.midtrans_transaction_id.like(pattern, escape="\\"),
                )
            )
        return query


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


def notifications_about(txn: Transaction):
    """A notification about this order: matched to it, or naming its Midtrans order id."""
    return or_(
        Notification.transaction_id == txn.id,
        Notification.order_id == txn.midtrans_order_id,
    )


def notifications_of(txn: Transaction, limit: int = ORDER_PAGE_ROWS) -> Newest:
    """The newest notifications about this order, and their number."""
    total = db.session.execute(
        select(func.count()).select_from(Notification).where(notifications_about(txn))
    ).scalar_one()
    items = db.session.execute(
        select(Notification)
        .where(notifications_about(txn))
        .order_by(Notification.id.desc())
        .limit(limit)
    ).scalars()
    return Newest(list(items), total)


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
