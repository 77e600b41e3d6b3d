"""What a client app reads from the gateway's own records, without a call to Midtrans: its
orders, newest change first, one order with its timeline, and the public settings its pages
need (`GET /transactions`, `GET /transactions/<order_id>`, `GET /config`).

Pages are cut by a keyset cursor (the last row's change time and id), so a page costs the same
however deep the client reads, and an order changed meanwhile is never shown twice on the way
down; a client that keeps a list in step asks again with `updated_since`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
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
        """From the query string; a bad value is 400 naming its parameter, nothing is read."""
        outcome = args.get("outcome") or None
        if outcome is not None and outcome not in OUTCOMES:
            raise InvalidRequestError(
                f"outcome must be one of {', '.join(OUTCOMES)}", field="outcome"
            )
        status = args.get("status") or None
        if status is not None and status not in {str(s) for s in TxStatus}:
            raise InvalidRequestError(
                f"status must be one of {', '.join(str(s) for s in TxStatus)}", field="status"
            )
        since = args.get("updated_since") or None
        raw_limit = args.get("limit") or str(LIMIT_DEFAULT)
        if (
            not raw_limit.isascii()
            or not raw_limit.isdigit()
            or not 1 <= int(raw_limit) <= LIMIT_MAX
        ):
            raise InvalidRequestError(
                f"limit must be a whole number from 1 to {LIMIT_MAX}", field="limit"
            )
        cursor = args.get("cursor") or None
        return cls(
            outcome=outcome,
            status=status,
            updated_since=_moment(since, "updated_since") if since else None,
            limit=int(raw_limit),
            after=_decode_cursor(cursor) if cursor else None,
        )


def _moment(raw: str, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidRequestError(
            f"{field} must be an ISO 8601 time with its zone, e.g. 2026-01-31T17:00:00+07:00",
            field=field,
        )
    return moment.astimezone(UTC)


def _encode_cursor(txn: Transaction) -> str:
    raw = json.dumps([txn.updated_at.astimezone(UTC).isoformat(), txn.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, row_id = json.loads(raw)
        after = datetime.fromisoformat(moment), int(row_id)
        if after[0].tzinfo is None:
            raise ValueError
        return after
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidRequestError(
            "cursor is not one this API gave (pass next_cursor as it came)", field="cursor"
        ) from None


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
