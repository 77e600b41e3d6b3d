"""The payment rules. Nothing here knows about HTTP; Midtrans is reached only through
`app.midtrans`. Every unit of work that reads and then writes starts with `begin_write()` and
locks the row it changes, so several gunicorn workers and worker processes never race."""

from .actions import cancel_transaction, expire_transaction, refund_transaction
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
