"""Core API: /v2/charge, /v2/{id}/status and the actions that change a transaction.

Errors carry their code in the body (`"status_code": "412"`) and, as Midtrans answers today,
as the HTTP status too (a validation error is HTTP 400). Switching `core_errors_as_http` off
gives Midtrans's older style, HTTP 200 with the code only in the body (401 and injected faults
excepted), which both of Midtrans's official clients are also ready for; `status_404_as_http`
then still makes "Transaction doesn't exist." a real HTTP 404.

`GET /v2/token` is the card token endpoint the payer's browser calls with the client key (no
server key); cards.py says what each test card does.
"""

from flask import Blueprint, request, url_for

from . import cards
from .api import guard, notification_urls, simulator
from .bodies import (
    action_body,
    capture_body,
    charge_body,
    core_error,
    not_found,
    refund_body,
    status_body,
)
from .methods import LIFETIMES
from .transactions import (
    OrderIdTaken,
    Transaction,
    TransactionNotFound,
    TransitionNotAllowed,
    now,
)
from .validation import InvalidRequest, custom_expiry, parse_order, parse_payment

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
TOKEN_INVALID = "Token id is missing, invalid, or timed out"
UNKNOWN_CLIENT_KEY = (
    "Access denied due to unauthorized transaction, please check client or server key"
)
CAPTURED = "Success, Credit Card capture transaction is successful"


def error(code: str, message: str, **extra):
    """A Core error: its code as the HTTP status, or HTTP 200 in the legacy style."""
    http = int(code) if simulator().settings.core_errors_as_http else 200
    return core_error(code, message, **extra), http


@bp.errorhandler(TransactionNotFound)
def _not_found(_error):
    settings = simulator().settings
    http = 404 if settings.status_404_as_http or settings.core_errors_as_http else 200
    return not_found(), http


@bp.errorhandler(TransitionNotAllowed)
def _not_allowed(failure):
    return error("412", failure.message)


@bp.errorhandler(InvalidRequest)
def _invalid(failure):
    return error("400", INVALID_PAYLOAD, validation_messages=failure.messages)


@bp.get("/token")
def card_token():
    """The card token, for the payer's browser (midtrans-new-3ds.min.js) or a client library:
    the query carries client_key, card_number, card_exp_month, card_exp_year, card_cvv; the
    older 3DS flow adds `secure=true` (and gross_amount) and gets a `redirect_url`."""
    sim = simulator()
    params = request.args
    if params.get("client_key") != sim.settings.client_key:
        return core_error("401", UNKNOWN_CLIENT_KEY), 401
    card, problems = cards.card_errors(params, now())
    if problems:
        return error("400", INVALID_PAYLOAD, validation_messages=problems)
    token = sim.vault.issue(card)
    body = {
        "status_code": "200",
        "status_message": cards.TOKEN_OK,
        "validation_messages": [cards.TOKEN_OK],
        "token_id": token,
        "hash": f"{card.masked}-{card.brand}",
    }
    if params.get("secure") == "true":
        body["bank"] = params.get("bank") or "bni"
        body["redirect_url"] = url_for("page.token_3ds", key=token, _external=True)
    return body


@bp.after_request
def _token_for_any_page(answer):
    """The card token is asked from the merchant's page, on another origin."""
    if request.endpoint == "core.card_token":
        answer.headers["Access-Control-Allow-Origin"] = "*"
    return answer


@bp.post("/charge")
def charge():
    sim = simulator()
    body = request.get_json(silent=True)
    order = parse_order(body)
    payment_type, bank = parse_payment(body)
    created = now()
    expires_at = custom_expiry(body, created)
    tx = Transaction(
        order_id=order.order_id,
        gross_amount=order.gross_amount,
        created_at=created,
        expires_at=expires_at or created + LIFETIMES[payment_type],
        expiry_given=expires_at is not None,
        notification_urls=notification_urls(sim.settings.notification_url),
        base_url=request.url_root,
        request=body,
    )
    card = None
    if payment_type == "credit_card":
        details = body["credit_card"]
        found = sim.vault.take(str(details["token_id"]))
        if found is None:
            return error("411", TOKEN_INVALID)
        card = {
            "masked": found.masked,
            "outcome": found.outcome,
            "authorize": details.get("type") == "authorize",
            "three_ds": details.get("authentication") is True,
        }
    try:
        tx = sim.store.charge(tx, payment_type, bank, card)
    except OrderIdTaken:
        return error("406", DUPLICATE_ORDER)
    answer = charge_body(tx, merchant_id=sim.settings.merchant_id)
    if tx.payment_type == "credit_card" and tx.transaction_status == "pending":
        key = f"{tx.card['masked']}-{tx.transaction_id}"
        answer["redirect_url"] = url_for("page.three_ds", key=key, _external=True)
    return answer


@bp.post("/capture")
def capture():
    """Capture an `authorize` card: {"transaction_id", "gross_amount"} (all when left out)."""
    sim = simulator()
    body = request.get_json(silent=True) or {}
    key, amount = body.get("transaction_id"), body.get("gross_amount")
    if not key:
        raise InvalidRequest(["transaction_id is required"])
    if amount is not None and (
        isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 1
    ):
        raise InvalidRequest(["gross_amount must be a positive number"])
    if amount is not None and amount != int(amount):
        raise InvalidRequest(["gross_amount must be an integer"])
    tx = sim.store.capture(str(key), None if amount is None else int(amount))
    return capture_body(tx, CAPTURED, merchant_id=sim.settings.merchant_id)


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
