"""What a client app reads from the gateway's own records, without a call to Midtrans: its
orders, newest change first, one order with its timeline, and the public settings its pages
need (`GET /transactions`, `GET /transactions/<order_id>`, `GET /config`).

Pages are cut by a keyset cursor (the last row's change time and id), so a page costs the same
however deep the client reads, and an order changed meanwhile is never shown twice on the way
down; a client that keeps a list in step asks again with `updated_since`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select

from ..config import MidtransSettings
from ..database import reading
from ..errors import InvalidRequestError, NotFoundError
from ..models import App, Transaction, TransactionEvent, TxStatus
from .lifecycle import status_view
from .outcomes import OUTCOMES, outcome_condition

LIMIT_DEFAULT = 50
LIMIT_MAX = 200
NEW3DS_JS_PATH = "/v2/assets/js/midtrans-new-3ds.min.js"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ROW_ID_MAX = 2**31 - 1
LIMIT_RE = re.compile(r"[0-9]{1,4}")
# Every cursor this pattern allows is one the list can continue from (the OpenAPI document
# says the same), up to year 2286 and row ids of 10 digits.
CURSOR_PATTERN = r"^[0-9]{1,16}\.[0-9]{1,10}$"
CURSOR_RE = re.compile(CURSOR_PATTERN)
RFC3339_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def client_visible():
    """The orders a client app sees: those with a payment link or a payment at Midtrans (an
    attempt that never got either is nothing the client can act on)."""
    return or_(
        Transaction.snap_token.is_not(None), Transaction.midtrans_transaction_id.is_not(None)
    )


@dataclass(frozen=True)
class ListQuery:
    outcome: str | None = None
    status: str | None = None
    updated_since: datetime | None = None
    limit: int = LIMIT_DEFAULT
    after: tuple[datetime, int] | None = None  # the cursor: the last row seen

    @classmethod
    def parse(cls, args) -> ListQuery:
        """From the query string; a bad value (an empty one too) is 400 naming its parameter,
        and nothing is read."""
        outcome = args.get("outcome")
        if outcome is not None and outcome not in OUTCOMES:
            raise InvalidRequestError(
                f"outcome must be one of {', '.join(OUTCOMES)}", field="outcome"
            )
        status = args.get("status")
        if status is not None and status not in {str(s) for s in TxStatus}:
            raise InvalidRequestError(
                f"status must be one of {', '.join(str(s) for s in TxStatus)}", field="status"
            )
        since = args.get("updated_since")
        raw_limit = args.get("limit", str(LIMIT_DEFAULT))
        if not (LIMIT_RE.fullmatch(raw_limit) and 1 <= int(raw_limit) <= LIMIT_MAX):
            raise InvalidRequestError(
                f"limit must be a whole number from 1 to {LIMIT_MAX}", field="limit"
            )
        cursor = args.get("cursor")
        return cls(
            outcome=outcome,
            status=status,
            updated_since=_moment(since, "updated_since") if since is not None else None,
            limit=int(raw_limit),
            after=_decode_cursor(cursor) if cursor is not None else None,
        )


def _moment(raw: str, field: str) -> datetime:
    """An RFC 3339 time (what OpenAPI's `date-time` means), in UTC. Times at the edge of
    the calendar that Python cannot hold are clamped: they still sort before or after every
    order."""
    if not RFC3339_RE.fullmatch(raw):
        raise InvalidRequestError(
            f"{field} must be an ISO 8601 time with its zone, e.g. 2026-01-31T17:00:00+07:00",
            field=field,
        )
    text = raw.upper().replace("Z", "+00:00")
    text = text[:17] + "59" + text[19:] if text[17:19] == "60" else text  # a leap second
    year_zero = text.startswith("0000")
    try:
        moment = datetime.fromisoformat("0001" + text[4:] if year_zero else text)
    except ValueError:  # a month 13, a day 32, an hour 25
        raise InvalidRequestError(f"{field} is not a real time", field=field) from None
    try:
        return datetime.min.replace(tzinfo=UTC) if year_zero else moment.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 pushed past the calendar by its offset
        edge = datetime.min if moment.year == 1 else datetime.max
        return edge.replace(tzinfo=UTC)


def _encode_cursor(txn: Transaction) -> str:
    """`<microseconds since 1970>.<row id>` of the last row of a page: opaque to clients."""
    moment = txn.updated_at.astimezone(UTC) - EPOCH
    micros = (moment.days * 86_400 + moment.seconds) * 1_000_000 + moment.microseconds
    return f"{micros}.{txn.id}"


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    if not CURSOR_RE.fullmatch(cursor):
        raise InvalidRequestError(
            "cursor is not one this API gave (pass next_cursor as it came)", field="cursor"
        )
    micros, row_id = cursor.split(".")
    # Row ids are 32-bit: a larger one sorts after every row (PostgreSQL refuses to compare).
    return EPOCH + timedelta(microseconds=int(micros)), min(int(row_id), ROW_ID_MAX)


def list_transactions(*, client_app: App, query: ListQuery) -> dict[str, Any]:
    """`{"data": [status objects], "next_cursor": str | None}`: the app's own orders only."""
    conditions = [Transaction.app_id == client_app.id, client_visible()]
    if query.outcome:
        conditions.append(outcome_condition(query.outcome))
    if query.status:
        conditions.append(Transaction.status == query.status)
    if query.updated_since:
        conditions.append(Transaction.updated_at >= query.updated_since)
    if query.after:
        moment, row_id = query.after
        conditions.append(
            or_(
                Transaction.updated_at < moment,
                and_(Transaction.updated_at == moment, Transaction.id < row_id),
            )
        )
    statement = (
        select(Transaction)
        .where(*conditions)
        .order_by(Transaction.updated_at.desc(), Transaction.id.desc())
        .limit(query.limit + 1)
    )
    with reading() as session:
        rows = session.execute(statement).scalars().all()
    page, more = rows[: query.limit], len(rows) > query.limit
    return {
        "data": [record_view(txn) for txn in page],
        "next_cursor": _encode_cursor(page[-1]) if more else None,
    }


def record_view(txn: Transaction) -> dict[str, Any]:
    """An order as the records hold it: the `/status` object, marked as not live, with the
    time of its last change."""
    view = status_view(txn, live=False)
    view["status_message"] = (txn.midtrans_response or {}).get("status_message")
    view["updated_at"] = txn.updated_at.astimezone(UTC).isoformat()
    view["created_at"] = txn.created_at.astimezone(UTC).isoformat()
    return view


def transaction_record(*, client_app: App, order_id: str) -> dict[str, Any]:
    """One of the app's orders from the records, with its timeline (oldest event first)."""
    with reading() as session:
        txn = session.execute(
            select(Transaction).where(
                Transaction.app_id == client_app.id,
                Transaction.order_id == order_id,
                client_visible(),
            )
        ).scalar_one_or_none()
        if txn is None:
            raise NotFoundError("no order with this order_id for this app")
        events = (
            session.execute(
                select(TransactionEvent)
                .where(TransactionEvent.transaction_id == txn.id)
                .order_by(TransactionEvent.created_at, TransactionEvent.id)
            )
            .scalars()
            .all()
        )
    view = record_view(txn)
    view["events"] = [
        {
            "at": event.created_at.astimezone(UTC).isoformat(),
            "from_status": event.from_status,
            "to_status": event.to_status,
            "fraud_status": event.fraud_status,
            "source": event.source,
            "detail": event.detail,
        }
        for event in events
    ]
    return view


def client_config(midtrans: MidtransSettings) -> dict[str, Any]:
    """What a client's page needs for Snap.js and card tokenization. The client key is public
    by design (Midtrans's JS sends it from the browser); nothing secret is here."""
    snap_root = midtrans.snap_base_url.rstrip("/").removesuffix("/v1")
    return {
        "client_key": midtrans.client_key,
        "is_production": midtrans.is_production,
        "snap_js_url": f"{snap_root}/snap.js",
        "new3ds_js_url": midtrans.api_base_url.rstrip("/") + NEW3DS_JS_PATH,
    }
