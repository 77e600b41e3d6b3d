"""The control API under /_sim/ (JSON, no auth) that tests and benchmarks drive, and the
dashboard page listing transactions and every notification sent."""

from flask import Blueprint, render_template, request

from .api import simulator
from .bodies import status_body
from .fees import NO_FEE, parse_rule
from .methods import BANKS, PAYMENT_TYPES
from .store import DEFAULT_METHOD
from .transactions import TransactionNotFound, TransitionNotAllowed

bp = Blueprint("control", __name__, url_prefix="/_sim")


@bp.errorhandler(TransactionNotFound)
def _not_found(error):
    return {"error": f"no order {error}"}, 404


@bp.errorhandler(TransitionNotAllowed)
def _not_allowed(error):
    return {"error": error.message}, 409


@bp.errorhandler(ValueError)
def _invalid(error):
    return {"error": str(error)}, 400


@bp.get("/")
def dashboard():
    sim = simulator()
    return render_template(
        "dashboard.html",
        transactions=sim.store.all(),
        notifications=sim.notifier.log()[::-1],
        settings=sim.settings.as_dict(),
    )


@bp.post("/transactions/<order_id>/<any(pay, fail, expire, cancel, choose):action>")
def act(order_id, action):
    """Body (optional): {"payment_type", "bank", "fraud_status"}; an order without a method
    gets that one (bank transfer BCA when none is given) before the action. A fee rule in the
    body (as for `fee` below) is this order's own, fixed as its method is chosen."""
    sim = simulator()
    body = request.get_json(silent=True) or {}
    wanted = _method(body)
    rule = _fee_rule(body)
    tx = sim.store.find_order(order_id)
    if wanted and tx.chosen and wanted[0] != tx.payment_type:
        raise TransitionNotAllowed(f"This order is already paid by {tx.payment_type}")
    if rule is not None:
        sim.store.set_fee_rule(order_id, rule)
    if action == "choose":
        tx = sim.store.choose(order_id, *(wanted or DEFAULT_METHOD))
    else:
        options = {"fraud_status": body["fraud_status"]} if "fraud_status" in body else {}
        if options and options["fraud_status"] not in ("accept", "challenge"):
            raise ValueError("fraud_status must be accept or challenge")
        tx = sim.store.act(order_id, action, choose=wanted or DEFAULT_METHOD, **options)
    settings = sim.settings
    return status_body(tx, server_key=settings.server_key, merchant_id=settings.merchant_id)


@bp.post("/transactions/<order_id>/fee")
def set_fee(order_id):
    """Body {"fee_imposition": rule or null for no fee} or {"fee": rupiah}: this order's own fee
    imposition, beating the global one, for when its customer picks a method on the page."""
    rule = _fee_rule(request.get_json(silent=True) or {})
    if rule is None:
        raise ValueError('send {"fee_imposition": {...} or null} or {"fee": rupiah}')
    tx = simulator().store.set_fee_rule(order_id, rule)
    return {"order_id": tx.order_id, "fee_imposition": tx.fee_rule}


@bp.post("/settlement-time")
def settlement_time():
    """Run Midtrans's settlement time now (tests cannot wait for 16:00 WIB the next day): every
    undecided challenge is cancelled, every captured card settled, each notified."""
    return simulator().store.settlement_time()


@bp.get("/transactions")
def transactions():
    return [
        {
            "order_id": tx.order_id,
            "token": tx.token,
            "transaction_id": tx.transaction_id,
            "payment_type": tx.payment_type,
            "transaction_status": tx.transaction_status,
            "gross_amount": tx.gross_amount,
            "customer_imposed_payment_fee": tx.imposed_fee,
            "notification_urls": tx.notification_urls,
        }
        for tx in simulator().store.all()
    ]


@bp.get("/config")
def config():
    return simulator().settings.as_dict()


@bp.post("/config")
def set_config():
    sim = simulator()
    changes = request.get_json(silent=True)
    if not isinstance(changes, dict):
        raise ValueError("send a JSON object of settings")
    sim.settings.update(changes)
    if changes.get("reorder") is False:
        sim.notifier.release_held()
    return sim.settings.as_dict()


@bp.get("/requests")
def requests_received():
    return simulator().requests.entries()


@bp.get("/notifications")
def notifications_sent():
    return simulator().notifier.log()


@bp.post("/reset")
def reset():
    """Forget every order, request and notification, and restore the start-up settings."""
    sim = simulator()
    sim.store.reset()
    sim.vault.reset()
    sim.notifier.reset()
    sim.requests.clear()
    sim.settings.reset()
    return {"reset": True}


def _fee_rule(body: dict) -> dict | None:
    """The order's own fee rule from `fee_imposition` (null: no fee even when the global one is
    on) or its shorthand `"fee": rupiah`; None when the body sets neither."""
    if "fee" in body and "fee_imposition" in body:
        raise ValueError("send fee or fee_imposition, not both")
    if "fee" in body:
        return parse_rule({"fee": body["fee"]})
    if "fee_imposition" in body:
        return parse_rule(body["fee_imposition"]) or NO_FEE
    return None


def _method(body: dict) -> tuple[str, str | None] | None:
    payment_type = body.get("payment_type")
    if payment_type is None:
        return None
    if payment_type not in PAYMENT_TYPES:
        raise ValueError(f"payment_type must be one of {PAYMENT_TYPES}")
    if payment_type != "bank_transfer":
        return payment_type, None
    bank = body.get("bank", "bca")
    if bank not in BANKS:
        raise ValueError(f"bank must be one of {BANKS}")
    return payment_type, bank
