"""Reading an order's status live from Midtrans."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from ..database import reading
from ..errors import GatewayError, MidtransAuthError, NotFoundError
from ..extensions import db
from ..midtrans import Midtrans
from ..models import App, EventSource, Transaction
from .lifecycle import Applied, apply_midtrans_status, status_view

log = logging.getLogger(__name__)


def get_transaction_or_raise(*, client_app: App, order_id: str) -> Transaction:
    """The client app's order that has a payment link or a payment at Midtrans; another app's
    or an unknown one is 404."""
    with reading():
        txn = db.session.execute(
            select(Transaction).where(
                Transaction.app_id == client_app.id, Transaction.order_id == order_id
            )
        ).scalar_one_or_none()
    if txn is None or (txn.snap_token is None and txn.midtrans_transaction_id is None):
        raise NotFoundError(f"no order {order_id} for this app")
    return txn


def refresh_status(*, client_app: App, order_id: str, midtrans: Midtrans) -> dict[str, Any]:
    """The order's status live from Midtrans, applied to the row; the row's own when Midtrans
    cannot be reached (`live: false`)."""
    txn = get_transaction_or_raise(client_app=client_app, order_id=order_id)
    try:
        answer = midtrans.get_status(txn.midtrans_order_id)
    except GatewayError as err:
        level = logging.ERROR if isinstance(err, MidtransAuthError) else logging.WARNING
        log.log(level, "status of %s from records: %s", txn.midtrans_order_id, err.message)
        return status_view(txn, live=False)
    if answer is None:
        return status_view(txn, live=True)
    txn, _ = apply_midtrans_status(txn.id, answer, source=EventSource.STATUS)
    return status_view(txn, answer, live=True)


def get_transaction_by_id_or_raise(txn_id: int) -> Transaction:
    """The order as the database holds it now (read afresh)."""
    with reading():
        txn = db.session.get(Transaction, txn_id, populate_existing=True)
    if txn is None:
        raise NotFoundError(f"no transaction {txn_id}")
    return txn


def sync_transaction(
    txn_id: int, *, midtrans: Midtrans, source: EventSource = EventSource.ADMIN
) -> tuple[Transaction, Applied | None]:
    """Ask Midtrans for the order's status and apply it; None when Midtrans has no record.

    Midtrans errors propagate (an admin pressing "sync" wants to see them)."""
    txn = get_transaction_by_id_or_raise(txn_id)
    answer = midtrans.get_status(txn.midtrans_order_id)
    if answer is None:
        return txn, None
    return apply_midtrans_status(txn.id, answer, source=source)
