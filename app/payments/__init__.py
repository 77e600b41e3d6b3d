"""The payment rules. Nothing here knows about HTTP; Midtrans is reached only through
`app.midtrans`.

Words used the same way everywhere:
- a *client app* (model `App`, variable `client_app`, never a bare `app` where Flask's
  `current_app` is also in scope) is a tenant: a shop or system that charges through the gateway
  with its app code and API key;
- an *order* is a client app's `order_id` (model `Transaction`); its *attempts* at Midtrans
  each use a Midtrans order id (the app's prefix, the order id, a suffix after a lost attempt);
- a *notification* goes Midtrans -> gateway (`POST /notification`, `notifications.py`);
- a *callback* goes gateway -> client app (`transaction.updated`, written to the outbox in
  `callbacks.py` with the change it reports, sent over HTTP by `app/callback_sender.py`);
- an order is *flagged* (`lifecycle.flag_order`) when a person must look at it: the flag
  and, on its timeline, the reason.

Units of work (`app.database`): every change is one `with writing():` block, committed at
its end or not at all; a service function called inside another's unit joins it. A row that
is read and then changed is locked in that block (`lock_row`). Reads that precede a call to
Midtrans or a client app are `with reading():` blocks that end before the call: no
transaction, and on SQLite no write lock, is ever held across one."""

from .actions import (
    ACTIONS,
    cancel_transaction,
    capture_transaction,
    client_action,
    decide_challenge,
    expire_transaction,
    refund_transaction,
    refundable_amount,
)
from .callbacks import (
    deliver_due_callbacks,
    recover_failed,
    resend_event,
)
from .charges import ChargeResult, create_charge
from .lifecycle import Applied, apply_midtrans_status, can_move, status_view
from .notifications import Receipt, confirm_notification, receive_notification
from .reconcile import confirm_due_notifications, reconcile_due_orders
from .status import (
    get_transaction_by_id_or_raise,
    get_transaction_or_raise,
    refresh_status,
    sync_transaction,
)

__all__ = [
    "ACTIONS",
    "capture_transaction",
    "client_action",
    "decide_challenge",
    "refundable_amount",
    "Applied",
    "ChargeResult",
    "Receipt",
    "confirm_due_notifications",
    "deliver_due_callbacks",
    "recover_failed",
    "resend_event",
    "confirm_notification",
    "reconcile_due_orders",
    "receive_notification",
    "apply_midtrans_status",
    "can_move",
    "cancel_transaction",
    "expire_transaction",
    "get_transaction_by_id_or_raise",
    "refund_transaction",
    "sync_transaction",
    "create_charge",
    "get_transaction_or_raise",
    "refresh_status",
    "status_view",
]
