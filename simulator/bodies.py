"""The JSON bodies Midtrans answers and notifies with, built from a transaction snapshot."""

import uuid

from .fees import breakdown
from .methods import charge_message, method_fields
from .signing import signature_key
from .transactions import (
    Refund,
    Transaction,
    midtrans_amount,
    midtrans_time,
    notification_status_code,
    status_code,
)

UNAUTHORIZED_SNAP = {
    "error_messages": [
        "Access denied due to unauthorized transaction, please check client or server key",
        "Visit https://snap-docs.midtrans.com/#request-headers for more details",
    ]
}
INTERNAL_ERROR = "Sorry, we encountered internal server error. We will fix this soon."
UNAVAILABLE = "Sorry, the service is temporarily unavailable. Please try again later."


def core_error(code: str, message: str, **extra) -> dict:
    """Core API errors carry the status in the body and a fresh request id."""
    return {"status_code": code, "status_message": message, **extra, "id": str(uuid.uuid4())}


def not_found() -> dict:
    return core_error("404", "Transaction doesn't exist.")


def status_body(tx: Transaction, *, server_key: str, merchant_id: str) -> dict:
    """GET /v2/{id}/status: signed like a notification but with the status API's codes; like
    Midtrans's, it does not repeat the charge's `actions` and `qr_string`."""
    code = status_code(tx)
    body = _common(tx, code, "Success, transaction is found", server_key, merchant_id)
    body.update(method_fields(tx, answer="status"))
    body.update(_refund_fields(tx, with_list=True))
    return body


def notification_body(tx: Transaction, *, server_key: str, merchant_id: str) -> dict:
    code = notification_status_code(tx)
    body = _common(tx, code, "midtrans payment notification", server_key, merchant_id)
    body.update(method_fields(tx, answer="notification"))
    body.update(_refund_fields(tx, with_list=False))
    return body


def charge_body(tx: Transaction, *, merchant_id: str) -> dict:
    """The answer to POST /v2/charge (no signature, as Midtrans answers it)."""
    body = {
        "status_code": status_code(tx),
        "status_message": charge_message(tx),
        **_identity(tx, merchant_id),
    }
    body.update(method_fields(tx))
    return body


def capture_body(tx: Transaction, message: str, *, merchant_id: str) -> dict:
    """Answer of POST /v2/capture: the card's fields beside the captured gross_amount."""
    body = {"status_code": status_code(tx), "status_message": message}
    body.update(_identity(tx, merchant_id))
    body.update(method_fields(tx))
    return body


def action_body(tx: Transaction, message: str, *, merchant_id: str) -> dict:
    """Answer of cancel, expire, approve and deny."""
    return {"status_code": status_code(tx), "status_message": message, **_identity(tx, merchant_id)}


def refund_body(tx: Transaction, refund: Refund, message: str, *, merchant_id: str) -> dict:
    return {
        "status_code": "200",
        "status_message": message,
        **_identity(tx, merchant_id),
        "refund_chargeback_id": refund.refund_chargeback_id,
        "refund_amount": midtrans_amount(refund.amount),
        "refund_key": refund.refund_key,
    }


def _identity(tx: Transaction, merchant_id: str) -> dict:
    """The fields every answer about a transaction shares, gross_amount's fee split included."""
    fields = {
        "transaction_id": tx.transaction_id,
        "order_id": tx.order_id,
        "merchant_id": merchant_id,
        "gross_amount": midtrans_amount(tx.gross_amount),
        "currency": "IDR",
        "payment_type": tx.payment_type,
        "transaction_time": midtrans_time(tx.transaction_time),
        "transaction_status": tx.transaction_status,
        "fraud_status": tx.fraud_status,
    }
    if tx.payment_type != "credit_card":
        fields["expiry_time"] = midtrans_time(tx.expires_at)
    if tx.settlement_time:
        fields["settlement_time"] = midtrans_time(tx.settlement_time)
    fields.update(breakdown(tx))
    return fields


def _common(tx: Transaction, code: str, message: str, server_key: str, merchant_id: str) -> dict:
    amount = midtrans_amount(tx.gross_amount)
    return {
        "status_code": code,
        "status_message": message,
        "signature_key": signature_key(tx.order_id, code, amount, server_key),
        **_identity(tx, merchant_id),
    }


def _refund_fields(tx: Transaction, *, with_list: bool) -> dict:
    if not tx.refunds:
        return {}
    latest = tx.refunds[-1]
    fields = {
        "refund_amount": midtrans_amount(tx.refunded_amount),
        "refund_key": latest.refund_key,
    }
    if with_list:
        fields["refunds"] = [
            {
                "refund_chargeback_id": refund.refund_chargeback_id,
                "refund_amount": midtrans_amount(refund.amount),
                "created_at": midtrans_time(refund.created_at),
                "reason": refund.reason,
                "refund_key": refund.refund_key,
                "refund_method": "",
            }
            for refund in tx.refunds
        ]
    return fields
