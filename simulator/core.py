"""Core API: /v2/charge, /v2/{id}/status and the actions that change a transaction.

Errors follow Midtrans's habit of putting the code in the body (`"status_code": "412"`) with
HTTP 200; only 401 and injected faults use the HTTP status, and `status_404_as_http` makes
"Transaction doesn't exist." a real HTTP 404.
"""

from flask import Blueprint, request

from .api import guard, notification_urls, simulator
from .bodies import action_body, charge_body, core_error, not_found, refund_body, status_body
from .methods import LIFETIMES
from .transactions import (
    OrderIdTaken,
    Transaction,
    TransactionNotFound,
    TransitionNotAllowed,
    now,
)
from .validation import InvalidRequest, parse_order, parse_payment

bp = Blueprint("core", __name__, url_prefix="/v2")
bp.before_request(lambda: guard("core"))

ACTION_MESSAGES = {
    "cancel": "Success, transaction is canceled",
    "expire": "Success, transaction has expired",
    "approve": "Success, transaction is approved",
    "deny": "Success, transaction is denied",
}
DUPLICATE_ORDER = (
    "The request could not be completed due to a conflict with the current state of the "
    "target resource, please try again"
)
INVALID_PAYLOAD = "One or more parameters in the payload is invalid."


@bp.errorhandler(TransactionNotFound)
def _not_found(_error):
    return not_found(), 404 if simulator().settings.status_404_as_http else 200


@bp.errorhandler(TransitionNotAllowed)
def _not_allowed(error):
    return core_error("412", error.message)


@bp.errorhandler(InvalidRequest)
def _invalid(error):
    return core_error("400", INVALID_PAYLOAD, validation_messages=error.messages)


@bp.post("/charge")
def charge():
    sim = simulator()
    body = request.get_json(silent=True)
    order = parse_order(body)
    payment_type, bank = parse_payment(body)
    created = now()
    tx = Transaction(
        order_id=order.order_id,
        gross_amount=order.gross_amount,
        created_at=created,
        expires_at=created + LIFETIMES[payment_type],
        notification_urls=notification_urls(sim.settings.notification_url),
        base_url=request.url_root,
        request=body,
    )
    try:
        tx = sim.store.charge(tx, payment_type, bank)
    except OrderIdTaken:
        return core_error("406", DUPLICATE_ORDER)
    return charge_body(tx, merchant_id=sim.settings.merchant_id)


@bp.get("/<key>/status")
def status(key):
    sim = simulator()
    tx = sim.store.find(key)
    return status_body(tx, server_key=sim.settings.server_key, merchant_id=sim.settings.merchant_id)


@bp.post("/<key>/<any(cancel, expire, approve, deny):action>")
def act(key, action):
    sim = simulator()
    tx = sim.store.act(key, action)
    return action_body(tx, ACTION_MESSAGES[action], merchant_id=sim.settings.merchant_id)


@bp.post("/<key>/refund", defaults={"direct": False})
@bp.post("/<key>/refund/online/direct", defaults={"direct": True})
def refund(key, direct):
    sim = simulator()
    body = request.get_json(silent=True) or {}
    amount = body.get("amount")
    if amount is not None and (
        isinstance(amount, bool) or not isinstance(amount, int) or amount < 1
    ):
        raise InvalidRequest(["amount must be a positive integer"])
    tx, record = sim.store.refund(
        key,
        amount=amount,
        refund_key=body.get("refund_key"),
        reason=str(body.get("reason") or ""),
    )
    message = "Success, refund request is approved"
    if direct:
        message = "Success, refund request is approved by the bank"
    return refund_body(tx, record, message, merchant_id=sim.settings.merchant_id)
