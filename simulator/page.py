"""The pages a payer's browser opens: the Snap payment page a redirect_url opens, the QR images
its actions point to, the 3DS page of a Core card charge and a stand-in for Midtrans's card JS.

Plain HTML forms: picking a method creates the pending Midtrans transaction, the buttons
then pay, fail, expire or cancel it. A card is paid or denied directly, with no pending step.
Only the methods in the order's `enabled_payments` are offered (all when it is absent).

The 3DS page (`/v2/token/rba/redirect/<masked card>-<transaction_id>`, the charge's
`redirect_url`) takes the OTP 112233: right, the charge ends as its test card says; wrong or
Fail, it is denied; the notification follows. The result JSON is posted to the parent window
(an iframe opened by MidtransNew3ds.authenticate), or, with `?callback_url=` (from
MidtransNew3ds.redirect), the browser goes there with `?response=<the JSON>`.
"""

import json
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for

from .api import simulator
from .bodies import charge_body, status_body
from .cards import OTP
from .methods import BANKS, method_fields, qr_png, qr_svg
from .store import page_closed
from .transactions import Transaction, TransactionNotFound, TransitionNotAllowed, now

bp = Blueprint("page", __name__)

# form value -> (label, the enabled_payments names that offer it)
METHODS = {
    f"bank_transfer:{bank}": (f"{bank.upper()} Virtual Account", {f"{bank}_va", "bank_transfer"})
    for bank in BANKS
}
METHODS["echannel"] = ("Mandiri Bill", {"echannel"})
METHODS["gopay"] = ("GoPay", {"gopay"})
METHODS["qris"] = ("QRIS", {"other_qris", "qris"})
METHODS["credit_card"] = ("Card", {"credit_card"})


# The icon browsers ask every page of the simulator for (its pages link to it, too).
FAVICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<rect width="16" height="16" rx="3" fill="#0b2e4f"/>'
    '<text x="8" y="12" font-family="sans-serif" font-size="10" font-weight="bold" '
    'text-anchor="middle" fill="#fff">S</text></svg>'
)


@bp.get("/favicon.ico")
def favicon():
    icon = Response(FAVICON_SVG, mimetype="image/svg+xml")
    icon.cache_control.public, icon.cache_control.max_age = True, 86400
    return icon


@bp.get("/snap/v4/redirection/<token>")
def show(token):
    return _render(_order(token))


@bp.post("/snap/v4/redirection/<token>/choose")
def choose(token):
    tx = _order(token)
    value = request.form.get("method", "")
    if value not in _offered(tx) or value == "credit_card":
        abort(400)
    payment_type, _, bank = value.partition(":")
    return _change(tx, lambda store: store.choose(tx.order_id, payment_type, bank or None))


@bp.post("/snap/v4/redirection/<token>/<any(pay, fail, expire, cancel):action>")
def act(token, action):
    tx = _order(token)
    if not tx.chosen and page_closed(tx, now()):
        return _render(tx, error="The payment page has expired")
    card = request.form.get("payment_type") == "credit_card"
    if card and "credit_card" not in _offered(tx):
        abort(400)
    choose = ("credit_card", None) if card else None
    return _change(tx, lambda store: store.act(tx.order_id, action, choose=choose))


@bp.get("/v2/<any(gopay, qris):kind>/<transaction_id>/qr-code")
def qr_code(kind, transaction_id):
    try:
        tx = simulator().store.find(transaction_id)
    except TransactionNotFound:
        abort(404)
    if tx.payment_type != kind:
        abort(404)
    return Response(qr_png(tx.method["qr_string"]), mimetype="image/png")


@bp.route("/v2/token/rba/redirect/<key>", methods=["GET", "POST"])
@bp.route("/v2/token/redirect/<key>", methods=["GET", "POST"], endpoint="token_3ds")
def three_ds(key):
    """3DS for a Core card charge (key: "<masked card>-<transaction_id>"), or for a card token
    asked with secure=true (the older flow; key: the token)."""
    sim = simulator()
    transaction_id = key[-36:]
    try:
        tx = sim.store.find(transaction_id)
    except TransactionNotFound:
        tx = None
    if tx is None and not key.count("-") >= 2:
        abort(404)
    masked = key[:11] if tx is None else tx.card["masked"] if tx.card else key[:11]
    amount = tx.gross_amount if tx else None
    if request.method == "GET":
        return render_template("three_ds.html", masked_card=masked, amount=amount, otp=OTP)
    passed = request.form.get("action") == "authenticate" and request.form.get("otp") == OTP
    if tx is None:  # a token's 3DS: the token is good to charge once authenticated
        result = {"status_code": "200" if passed else "202", "token_id": key}
    else:
        try:
            tx = sim.store.authenticate(tx.transaction_id, passed=passed)
        except TransitionNotAllowed as failure:
            page = render_template(
                "three_ds.html", masked_card=masked, amount=amount, otp=OTP, error=failure.message
            )
            return page, 409
        result = charge_body(tx, merchant_id=sim.settings.merchant_id)
    callback = request.args.get("callback_url")
    if callback and callback.startswith(("http://", "https://")):
        separator = "&" if "?" in callback else "?"
        return redirect(callback + separator + urlencode({"response": json.dumps(result)}), 303)
    return render_template("three_ds.html", masked_card=masked, amount=amount, result=result)


@bp.get("/v2/assets/js/midtrans-new-3ds.min.js")
def new_3ds_js():
    """A stand-in for Midtrans's card JS that talks to this simulator."""
    script = render_template("midtrans-new-3ds.js", base=request.url_root)
    return Response(script, mimetype="application/javascript")


def _order(token: str) -> Transaction:
    try:
        return simulator().store.find_by_token(token)
    except TransactionNotFound:
        abort(404)


def _offered(tx: Transaction) -> dict[str, str]:
    """Form value -> label of the methods this order may be paid with."""
    enabled = tx.request.get("enabled_payments")
    return {
        value: label
        for value, (label, names) in METHODS.items()
        if not isinstance(enabled, list) or names & set(enabled)
    }


def _change(tx: Transaction, change):
    try:
        change(simulator().store)
    except TransactionNotFound:
        return _render(tx, error="Choose a payment method first")
    except TransitionNotAllowed as error:
        return _render(_order(tx.token), error=error.message)
    return redirect(url_for("page.show", token=tx.token), code=303)


def _render(tx: Transaction, error: str | None = None):
    settings = simulator().settings
    status = fields = None
    if tx.chosen:
        status = status_body(tx, server_key=settings.server_key, merchant_id=settings.merchant_id)
        fields = method_fields(tx)
    offered = _offered(tx)
    page = render_template(
        "payment.html",
        tx=tx,
        status=status,
        fields=fields,
        qr=qr_svg(tx.method["qr_string"]) if "qr_string" in tx.method else None,
        methods={value: label for value, label in offered.items() if value != "credit_card"},
        card="credit_card" in offered,
        expired=not tx.chosen and page_closed(tx, now()),
        error=error,
    )
    return page, 409 if error else 200
