"""Snap API: POST /snap/v1/transactions creates an order and its payment page.

The same order_id again, while nobody has chosen a payment method on the first page, makes a
new token and page and the first one stops working (Midtrans: "it will revoke the old token,
only the latest one is active"); once a payment exists the order_id is taken (400).
`page_expiry` ({"duration", "unit"}) ends the page sooner than the order's `expiry`.
"""

import uuid

from flask import Blueprint, request, url_for

from .api import guard, notification_urls, simulator
from .transactions import OrderIdTaken, Transaction, now
from .validation import InvalidRequest, page_expiry, parse_order, snap_expiry

bp = Blueprint("snap", __name__, url_prefix="/snap/v1")
bp.before_request(lambda: guard("snap"))


@bp.post("/transactions")
def create_transaction():
    sim = simulator()
    body = request.get_json(silent=True)
    created = now()
    try:
        order = parse_order(body)
        expires_at, expiry_given = snap_expiry(body, created)
        page_expires_at = page_expiry(body, created)
    except InvalidRequest as error:
        return {"error_messages": error.messages}, 400
    token = str(uuid.uuid4())
    tx = Transaction(
        order_id=order.order_id,
        gross_amount=order.gross_amount,
        created_at=created,
        expires_at=expires_at,
        expiry_given=expiry_given,
        notification_urls=notification_urls(sim.settings.notification_url),
        base_url=request.url_root,
        request=body,
        token=token,
        page_expires_at=page_expires_at,
    )
    try:
        sim.store.add(tx)
    except OrderIdTaken:
        return {"error_messages": ["transaction_details.order_id has already been taken"]}, 400
    redirect_url = url_for("page.show", token=token, _external=True)
    return {"token": token, "redirect_url": redirect_url}, 201
