"""Midtrans simulator: a local Midtrans sandbox for the demo, the tests and the benchmarks.

It speaks the Snap and Core APIs the way Midtrans documents them, shows a payment page where
you play the customer, and sends signed HTTP notifications with Midtrans's retry policy. All
state lives in memory (one process) and is lost on restart.

Run it
------
    python -m simulator --port 5001 \\
        --server-key SB-Mid-server-simulator --client-key SB-Mid-client-simulator \\
        --notification-url http://127.0.0.1:5000/notification \\
        --latency-ms 0 --time-factor 1 --host 127.0.0.1

Each option may come from the environment instead: SIMULATOR_PORT, SIMULATOR_HOST,
SIMULATOR_SERVER_KEY (default `SB-Mid-server-simulator`), SIMULATOR_CLIENT_KEY (default
`SB-Mid-client-simulator`), SIMULATOR_NOTIFICATION_URL,
SIMULATOR_LATENCY_MS, SIMULATOR_TIME_FACTOR; `--log-requests` logs every HTTP request. It is
served by Werkzeug's threaded server (one thread per connection, one process, since the state
is in memory), which copes with hundreds of concurrent connections. Point the gateway at it with
`MIDTRANS_API_BASE_URL=http://127.0.0.1:5001`, `MIDTRANS_SNAP_BASE_URL=http://127.0.0.1:5001/snap/v1`
and `MIDTRANS_SERVER_KEY=SB-Mid-server-simulator`.

Midtrans APIs (Basic auth: the server key as user name, empty password)
-----------------------------------------------------------------------
- `POST /snap/v1/transactions` -> 201 `{"token", "redirect_url"}`; 400 `{"error_messages": [...]}`
  with Midtrans's wording (order_id required, at most 50 characters, taken once it has a
  payment; gross_amount an integer >= 1 equal to the sum of item_details); 401 on a wrong key.
  The same order_id before any payment makes a new token and the first page stops working.
  `expiry` is honoured (24 hours by default), `page_expiry` ends the page sooner.
  `X-Override-Notification` (replaces the default notification URL) and
  `X-Append-Notification` (adds to it), up to 3 comma-separated URLs each, are kept per order.
- `GET {redirect_url}` (`/snap/v4/redirection/<token>`): the payment page. Pick BCA, BNI, BRI or
  Permata VA, Mandiri bill, GoPay, QRIS or card (only those in `enabled_payments`, if given);
  then Pay, Fail (deny), Expire or Cancel. A card is captured or denied at once.
- `POST /v2/charge` for bank_transfer (bca, bni, bri, permata, cimb), echannel, gopay, qris
  and credit_card, with `custom_expiry` ({"expiry_duration", "unit", optional "order_time"}).
  A card charge takes a `token_id` from `GET /v2/token` (client key in the query, no server
  key; Midtrans's sandbox test cards, see cards.py: accept, challenge, denied by FDS or bank)
  or any made-up token (the accept card). `authentication: true` answers pending with a
  `redirect_url` to a 3DS page (OTP 112233) that ends the charge and notifies;
  `credit_card.type: "authorize"` ends in `authorize`, captured by `POST /v2/capture`
  `{"transaction_id", "gross_amount"}` (all of it by default, never more). An issued token
  charged twice answers "411".
- `GET /v2/assets/js/midtrans-new-3ds.min.js`: a stand-in for Midtrans's card JS
  (`MidtransNew3ds.getCardToken`, `authenticate`, `redirect`) that talks to this simulator.
- `GET /v2/<order_id or transaction_id>/status`; `POST /v2/<id>/cancel|expire|approve|deny|refund`
  and `/v2/<id>/refund/online/direct` (`{"refund_key", "amount", "reason"}`): only a
  settlement (or a captured card the fraud check accepted) of a card, GoPay or QRIS; bank
  transfers and Mandiri bill answer "412" as on Midtrans. Errors carry their
  code in the body with HTTP 200, as Midtrans does: unknown ids (and Snap orders whose customer
  has not chosen a method yet) answer `{"status_code": "404", "status_message": "Transaction
  doesn't exist."}`, forbidden changes `"412"`, charge validation `"400"`, a reused order_id
  `"406"`. A wrong key is a real HTTP 401.

Notifications are posted as JSON to the order's URLs on every change of status, signed with
`sha512(order_id + status_code + gross_amount + server_key)`, from background threads. A
non-2xx answer is retried like Midtrans: once after 500, 4 times after 503, twice after 400 or
404, 5 times otherwise, after waits of 1, 5, 30, 90 and 240 minutes multiplied by the time factor
(`--time-factor 0.001` runs the 6-hour policy in 22 seconds). Unpaid payments expire at their
expiry_time by themselves.

Control API (JSON, no auth)
---------------------------
- `POST /_sim/transactions/<order_id>/pay|fail|expire|cancel|choose`, optional body
  `{"payment_type": "bank_transfer", "bank": "bca"}` (or echannel, gopay, qris, credit_card,
  with `"fraud_status": "challenge"` for a card waiting for approve/deny). An order whose
  customer has not chosen yet gets that method (BCA VA by default) first; a card is captured
  or denied directly, and `pay` on a captured card settles it. Answers the status object; 404
  for an unknown order, 409 when the status does not allow the action.
- `POST /_sim/config` with any of: `latency_ms`, `fault` (null, 500, 503, "non_json" = an HTML
  502 page, "hang" = sleep `hang_seconds`, default 30, then answer normally), `fault_scope`
  ("snap", "core", "all"), `fault_count` (next N API requests, null = until switched off),
  `hang_seconds`, `core_errors_as_http` (default true: every Core error with its code as HTTP
  status too; false is the legacy HTTP 200 style), `status_404_as_http` (in the legacy style,
  answer unknown ids with a real HTTP 404 all the same),
  `refund_any_method` (let a VA or Mandiri bill be refunded), `duplicate`
  (send each notification twice), `reorder` (hold an order's notifications until its final one,
  then send them newest first; switching it off releases what is held), `time_factor`,
  `notification_url`, `fee_imposition` (below). `GET /_sim/config` shows them.
- Fee imposition (Midtrans passing its payment fee to the payer; off by default):
  `POST /_sim/config {"fee_imposition": {"fee": 4440}}` (rupiah), `{"percent": 2}` (of the
  order's amount, rounded half up) or both, with optional `"placement": "metadata"` (default:
  `metadata.extra_info.gross_amount_info`) or `"top"` (`original_amount` and
  `customer_imposed_payment_fee` beside gross_amount) and `"payment_types": [...]`; null is off.
  It applies to payments whose method is chosen later: Snap orders when the customer picks one,
  Core charges at charge time. gross_amount then includes the fee everywhere (signatures and the
  refund limit too), and every body stating it carries the split. One Snap order gets its own
  rule, beating the global one, with `POST /_sim/transactions/<order_id>/fee` or in the body of
  the actions above, as `{"fee_imposition": rule or null for none}` or `{"fee": 4440}`, until
  its method is chosen (409 after).
- `GET /_sim/requests`: the API requests received (method, path, headers without
  Authorization, JSON body, time). `GET /_sim/notifications`: every notification attempt (url,
  body, attempt, status answered or error, time). Both keep the last 10,000.
- `POST /_sim/settlement-time`: Midtrans's daily settlement now: undecided challenges are
  cancelled, captured cards settled; answers `{"cancelled": [...], "settled": [...]}`.
- `GET /_sim/transactions`: the orders as JSON. `POST /_sim/reset`: forget everything.
- `GET /_sim/`: a page listing transactions and every notification with the answer it got.
"""

import threading
import time

from flask import Flask

from . import control, core, page, snap
from .api import RequestLog, Simulator
from .notifier import Notifier
from .settings import DEFAULT_CLIENT_KEY, DEFAULT_SERVER_KEY, Settings
from .store import Store
from .transactions import now

EXPIRY_SWEEP_SECONDS = 1.0


def create_app(config: dict | None = None) -> Flask:
    """`config` keys: SERVER_KEY, CLIENT_KEY, NOTIFICATION_URL, LATENCY_MS, TIME_FACTOR,
    MERCHANT_ID."""
    config = config or {}
    app = Flask(__name__)
    settings = Settings(
        server_key=config.get("SERVER_KEY") or DEFAULT_SERVER_KEY,
        client_key=config.get("CLIENT_KEY") or DEFAULT_CLIENT_KEY,
        merchant_id=config.get("MERCHANT_ID", "G000000000"),
        notification_url=config.get("NOTIFICATION_URL") or None,
        latency_ms=int(config.get("LATENCY_MS", 0)),
        time_factor=float(config.get("TIME_FACTOR", 1.0)),
    )
    notifier = Notifier(settings)
    store = Store(settings, notifier)
    app.extensions["simulator"] = Simulator(settings, notifier, store, RequestLog())
    app.json.sort_keys = False  # keep Midtrans's field order
    app.jinja_env.filters["rupiah"] = _rupiah
    for blueprint in (snap.bp, page.bp, core.bp, control.bp):
        app.register_blueprint(blueprint)
    threading.Thread(target=_expire_overdue_forever, args=(store,), daemon=True).start()
    return app


def _expire_overdue_forever(store: Store) -> None:
    while True:
        time.sleep(EXPIRY_SWEEP_SECONDS)
        store.expire_overdue(now())


def _rupiah(amount: int) -> str:
    """150000 -> "Rp150.000", the way Indonesian shops write prices."""
    return "Rp" + f"{amount:,}".replace(",", ".")
