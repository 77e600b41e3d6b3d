"""Blueprint "api": the client apps' endpoints. Thin: authenticate, parse, one call, answer."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from . import payments
from .auth import require_app
from .errors import InvalidRequestError, NotFoundError
from .midtrans import Midtrans
from .observability import RATE_LIMITED, client_app_key, limiter
from .payments import records
from .payments.charges import charge_answer
from .schemas import ORDER_ID_MAX, ORDER_ID_RE, ChargeRequest
from .services import gateway

bp = Blueprint("api", __name__)


def midtrans() -> Midtrans:
    return gateway().midtrans


def json_body():
    if not request.get_data(cache=True):
        raise InvalidRequestError("request body must be a JSON object")
    try:
        body = request.get_json(force=True, silent=True)
    except RecursionError:  # nested deeper than the JSON decoder goes: not a charge either
        body = None
    if body is None:
        raise InvalidRequestError("request body is not valid JSON")
    return body


def per_app_limit() -> str:
    return gateway().settings.ratelimit_per_app


def _app_limit_breached(_limit) -> None:
    RATE_LIMITED.labels("client_app").inc()


_app_limit = limiter.shared_limit(
    per_app_limit, scope="client-app", key_func=client_app_key, on_breach=_app_limit_breached
)


def client_call(view):
    """Authenticate, then count the call against that app's RATELIMIT_PER_APP.

    In this order, so that calls without the app's key (anyone can send its app code) never
    spend its allowance; they are counted per address instead (see `require_app`)."""
    return require_app(_app_limit(view))


@bp.post("/charge")
@client_call
def charge():
    client_app = g.client_app
    parsed = ChargeRequest.parse(json_body(), prefix=client_app.order_prefix)
    result = payments.create_charge(
        client_app=client_app,
        charge=parsed,
        midtrans=midtrans(),
        callback_policy=gateway().callback_policy,
    )
    txn = result.transaction
    if not result.has_link:  # the client gets the status, as GET /status would answer
        return jsonify(payments.status_view(txn, live=True)), 200
    response = jsonify(charge_answer(txn))
    response.status_code = 201
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("/status/<path:order_id>")
@client_call
def status(order_id: str):
    return jsonify(
        payments.refresh_status(
            client_app=g.client_app, order_id=_known_order_id(order_id), midtrans=midtrans()
        )
    )


def _known_order_id(order_id: str) -> str:
    """An order id /charge could have accepted; any other is no order of this app (a 404, and
    PostgreSQL would refuse a NUL in the query anyway)."""
    if len(order_id) > ORDER_ID_MAX or not ORDER_ID_RE.fullmatch(order_id):
        raise NotFoundError("no order with this order_id for this app")
    return order_id


@bp.get("/transactions")
@client_call
def transactions():
    query = records.ListQuery.parse(request.args)
    return jsonify(records.list_transactions(client_app=g.client_app, query=query))


@bp.get("/transactions/<order_id>")
@client_call
def transaction(order_id: str):
    record = records.transaction_record(client_app=g.client_app, order_id=_known_order_id(order_id))
    return jsonify(record)


@bp.get("/config")
@client_call
def config():
    return jsonify(records.client_config(gateway().settings.midtrans))


@client_call
def transaction_action(order_id: str, action: str):
    body = json_body() if request.get_data(cache=True) else None
    view = payments.client_action(
        client_app=g.client_app,
        order_id=_known_order_id(order_id),
        action=action,
        body=body,
        midtrans=midtrans(),
    )
    return jsonify(view)


# One route per action, so each is a path of its own in the API document.
for _action in payments.ACTIONS:
    bp.add_url_rule(
        f"/transactions/<order_id>/{_action}",
        endpoint=f"transaction_{_action}",
        view_func=transaction_action,
        methods=["POST"],
        defaults={"action": _action},
    )
