"""What an app's callback pages read: its delivery log (filtered, paged), how many events are
in each state, and the attempts of one event. Read-only."""

from __future__ import annotations

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import CallbackAttempt, CallbackEvent, CallbackState, Transaction
from .common import Page, like_pattern, paginate


def _callback_filter(
    query: Select, app_id: int, state: str | None, q: str, txn_id: int | None = None
) -> Select:
    query = query.where(CallbackEvent.app_id == app_id)
    if state:
        query = query.where(CallbackEvent.state == state)
    if txn_id is not None:
        query = query.where(CallbackEvent.transaction_id == txn_id)
    if q:
        pattern = like_pattern(q)
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


def callback_attempts(event_id: int) -> list[CallbackAttempt]:
    return list(
        db.session.execute(
            select(CallbackAttempt)
            .where(CallbackAttempt.callback_event_id == event_id)
            .order_by(CallbackAttempt.id)
        ).scalars()
    )
