"""Orders Midtrans knows and this gateway's database does not: after a restore from a backup
older than the payment, a verified notification names an order the gateway has never seen.

Answering "unknown order" would make Midtrans stop retrying and the client never hear of a
payment that really happened. Instead the order is recreated from Midtrans's own word (the
status API, never the notification's unsigned fields) under the app whose order prefix its
Midtrans order id carries, flagged for a person, and its status applied with the usual
callback.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy import select

from ..database import reading, writing
from ..extensions import db
from ..midtrans import Midtrans
from ..models import App, EventSource, LinkState, Transaction, TxStatus
from ..schemas import ORDER_ID_RE
from .lifecycle import apply_midtrans_status, flag_order
from .outcomes import gross_amount_info, rupiah

log = logging.getLogger(__name__)

RECOVERED = "recovered"  # the request fingerprint of an order rebuilt from Midtrans's word
RECOVERED_FLAG = "recovered: not in the database (restored from an older backup?)"
# The suffix a retry after an unknown outcome adds to the Midtrans order id (charges.py).
ATTEMPT_SUFFIX = re.compile(r"~[0-9a-f]{6}$")


def owner_of(midtrans_order_id: str) -> tuple[App, str] | None:
    """The app whose order prefix the Midtrans order id carries, and the client's order id.

    The longest prefix wins; a tie is ambiguous, and an ambiguous order is never given to
    either app. An app without a prefix claims nothing: the same Midtrans account may serve
    other systems, whose orders must never turn into this app's."""
    matches = [
        client_app
        for client_app in db.session.execute(select(App)).scalars()
        if client_app.order_prefix and midtrans_order_id.startswith(client_app.order_prefix)
    ]
    if not matches:
        return None
    longest = max(len(client_app.order_prefix) for client_app in matches)
    best = [client_app for client_app in matches if len(client_app.order_prefix) == longest]
    if len(best) != 1:
        return None
    order_id = ATTEMPT_SUFFIX.sub("", midtrans_order_id[longest:])
    if not ORDER_ID_RE.fullmatch(order_id) or set(order_id) == {"."}:
        return None
    return best[0], order_id


def claimed_by_an_app(midtrans_order_id: str) -> bool:
    with reading():
        return owner_of(midtrans_order_id) is not None


def _order_amount(answer: dict) -> int | None:
    """The order's own amount: Midtrans's `original_amount` under fee imposition, else its
    gross amount; None when it is not a whole number of rupiah."""
    info = gross_amount_info(answer)
    amount = rupiah(info.get("original_amount")) or rupiah(answer.get("gross_amount"))
    if amount is None or amount < 1 or amount != int(amount):
        return None
    return int(amount)


def recover_order(
    midtrans_order_id: str, *, midtrans: Midtrans, timeout: float | None = None
) -> Transaction | None:
    """Recreate an order Midtrans has a transaction for; None when no app claims it or
    Midtrans has none. Midtrans being unreachable raises (the caller tries again later)."""
    if not claimed_by_an_app(midtrans_order_id):
        return None
    answer = midtrans.get_status(midtrans_order_id, timeout=timeout)
    if answer is None or answer.get("order_id", midtrans_order_id) != midtrans_order_id:
        return None
    amount = _order_amount(answer)
    if amount is None:
        log.error(
            "order %s not recovered: amount %r", midtrans_order_id, answer.get("gross_amount")
        )
        return None
    with writing():
        txn = db.session.execute(
            select(Transaction).where(Transaction.midtrans_order_id == midtrans_order_id)
        ).scalar_one_or_none()
        if txn is not None:  # recovered meanwhile (a duplicate notification, another worker)
            return txn
        txn = _recreate(midtrans_order_id, amount)
        if txn is None:
            return None
        app_code = txn.app.code
    log.error("order %s recovered from Midtrans for app %s", midtrans_order_id, app_code)
    txn, _ = apply_midtrans_status(txn.id, answer, source=EventSource.RECOVERY)
    return txn


def _recreate(midtrans_order_id: str, amount: int) -> Transaction | None:
    """The order's row rebuilt (or an earlier attempt's row pointed at it) and flagged, in the
    caller's unit; None when no app claims it any more, or the client's order holds another
    payment (flagged)."""
    owner = owner_of(midtrans_order_id)
    if owner is None:
        return None
    client_app, order_id = owner
    txn = db.session.execute(
        select(Transaction)
        .where(Transaction.app_id == client_app.id, Transaction.order_id == order_id)
        .with_for_update()
    ).scalar_one_or_none()
    if txn is None:
        txn = Transaction(
            app_id=client_app.id,
            order_id=order_id,
            midtrans_order_id=midtrans_order_id,
            amount=amount,
            request_fingerprint=RECOVERED,
            request_body={},
            link_state=LinkState.CREATED,
            status=TxStatus.PENDING,
            midtrans_order_ids=[midtrans_order_id],
        )
        db.session.add(txn)
        db.session.flush()
    elif txn.midtrans_transaction_id is None and txn.amount == amount:
        # The backup holds an earlier attempt of this order (no payment at Midtrans under
        # it); the payment was made under a later attempt's id: follow it.
        txn.midtrans_order_id = midtrans_order_id
        txn.midtrans_order_ids = [*(txn.midtrans_order_ids or []), midtrans_order_id]
        txn.link_state = LinkState.CREATED
    else:
        flag_order(
            txn,
            f"another payment at Midtrans under {midtrans_order_id}",
            source=EventSource.RECOVERY,
        )
        return None
    flag_order(
        txn,
        RECOVERED_FLAG,
        detail=f"{RECOVERED_FLAG}; Midtrans order {midtrans_order_id}",
        source=EventSource.RECOVERY,
    )
    return txn
