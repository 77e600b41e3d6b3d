"""The Snap payment page a redirect_url opens, and the QR images its actions point to.

Plain HTML forms: picking a method creates the pending Midtrans transaction, the buttons
then pay, fail, expire or cancel it. A card is paid or denied directly, with no pending step.
"""

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for

from .api import simulator
from .bodies import status_body
from .methods import BANKS, method_fields, qr_png, qr_svg
from .transactions import TransactionNotFound, TransitionNotAllowed, now

bp = Blueprint("page", __name__)

METHODS = [(f"bank_transfer:{bank}", f"{bank.upper()} Virtual Account") for bank in BANKS]
METHODS += [("echannel", "Mandiri Bill"), ("gopay", "GoPay"), ("qris", "QRIS")]


@bp.get("/snap/v4/redirection/<token>")
def show(token, error=None):
    sim = simulator()
    try:
        tx = sim.store.find_by_token(token)
    except TransactionNotFound:
        abort(404)
    status = fields = None
    if tx.chosen:
        settings = sim.settings
        status = status_body(tx, server_key=settings.server_key, merchant_id=settings.merchant_id)
        fields = method_fields(tx)
    qr = qr_svg(tx.method["qr_string"]) if "qr_string" in tx.method else None
    page = render_template(
        "payment.html",
        tx=tx,
        status=status,
        fields=fields,
        qr=qr,
        methods=METHODS,
        expired=not tx.chosen and tx.expires_at <= now(),
        error=error,
    )
    return page, 409 if error else 200


@bp.post("/snap/v4/redirection/<token>/choose")
def choose(token):
    payment_type, _, bank = request.form.get("method", "").partition(":")
    if (f"{payment_type}:{bank}" if bank else payment_type) not in dict(METHODS):
        abort(400)
    return _change(
        token, lambda store, order_id: store.choose(order_id, payment_type, bank or None)
    )


@bp.post("/snap/v4/redirection/<token>/<any(pay, fail, expire, cancel):action>")
def act(token, action):
    card = request.form.get("payment_type") == "credit_card"
    choose = ("credit_card", None) if card else None
    return _change(token, lambda store, order_id: store.act(order_id, action, choose=choose))


@bp.get("/v2/<any(gopay, qris):kind>/<transaction_id>/qr-code")
def qr_code(kind, transaction_id):
    try:
        tx = simulator().store.find(transaction_id)
    except TransactionNotFound:
        abort(404)
    if tx.payment_type != kind:
        abort(404)
    return Response(qr_png(tx.method["qr_string"]), mimetype="image/png")


def _change(token, change):
    store = simulator().store
    try:
        tx = store.find_by_token(token)
        change(store, tx.order_id)
    except TransactionNotFound:
        abort(404)
    except TransitionNotAllowed as error:
        return show(token, error=error.message)
    return redirect(url_for("page.show", token=token), code=303)
