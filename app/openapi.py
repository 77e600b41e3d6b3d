"""Blueprint "openapi": the API reference, `GET /openapi.json` (OpenAPI 3.1) and `GET /docs`.

The document is built from the code's own models, so it cannot drift from what is enforced:
the charge body from `schemas.charge_request_schema()` (the parser's tables and limits), the
error codes of each status from the `GatewayError` hierarchy and the HTTP error table in
`errors`, order statuses and notification outcomes from the models' enums, the notification's
required fields from the code that checks them. `tests/test_openapi.py` runs schemathesis
against the running app with this document, and checks that every public route is in it.
"""

from __future__ import annotations

import functools
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify, render_template

from . import midtrans as _midtrans  # noqa: F401 - its GatewayError subclasses count too
from .errors import (
    HTTP_CODES,
    ChargeInProgressError,
    ForbiddenError,
    GatewayError,
    InvalidNotificationError,
    InvalidSignatureError,
    InvalidStateError,
    OrderConflictError,
    RefundInProgressError,
)
from .models import NotificationOutcome, TxStatus
from .payments.actions import REASON_MAX, REFUND_KEY_RE
from .payments.lifecycle import PRIVATE_FIELDS
from .payments.notifications import SIGNED_FIELDS
from .payments.outcomes import OUTCOMES
from .payments.records import CURSOR_PATTERN
from .schemas import (
    AMOUNT_MAX,
    CORE_PAYMENT_TYPES,
    ORDER_ID_MAX,
    ORDER_ID_RE,
    charge_request_schema,
)

bp = Blueprint("openapi", __name__)

ROOT = Path(__file__).resolve().parent.parent
JSON = "application/json"

# The body and header of a Midtrans notification the gateway reads (it checks each is a
# non-empty string; the signature covers the first three).
NOTIFICATION_REQUIRED = (*SIGNED_FIELDS, "transaction_status")
# The webhook answers a rejected notification with these codes (see app/webhooks.py).
NOTIFICATION_ERRORS = {
    error.status: error.code for error in (InvalidNotificationError, InvalidSignatureError)
}

# When each status is answered, as the contract (SPEC.md) puts it.
STATUS_MEANING = {
    400: "The body is not a JSON object, a field is missing or invalid, or Midtrans rejected "
    "the details (`midtrans_rejected`). `details.field` names the field.",
    401: "Missing or wrong `X-App-Code` / `X-Api-Key`, or the app is disabled.",
    403: "The notification's `signature_key` does not match.",
    404: "Unknown endpoint, or an order this app never created.",
    409: "The order_id is already used with different details (`order_conflict`), or its "
    "payment link is being created by another request (`charge_in_progress`, with "
    "`Retry-After`).",
    413: "The body is larger than 64 KiB.",
    429: "A rate limit is exceeded: this app's, or its address's for calls with a wrong app "
    "code or API key, or for rejected notifications; retry after `Retry-After` seconds.",
    502: "Midtrans answered with an error or garbage, or rejected the gateway's server key.",
    503: "The gateway cannot serve this now (e.g. its database is unreachable); retry.",
    504: "Midtrans did not answer within `MIDTRANS_TIMEOUT`.",
}


def error_codes_by_status() -> dict[int, list[str]]:
    """Every error code the gateway can answer with, grouped by HTTP status."""
    codes: dict[int, set[str]] = defaultdict(set)
    pending = [GatewayError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls is not GatewayError and cls.public:
            codes[cls.status].add(cls.code)
    for status, code in HTTP_CODES.items():
        codes[status].add(code)
    return {status: sorted(found) for status, found in sorted(codes.items())}


# The 409s answered with `Retry-After`: the same request is under way, retry shortly.
RETRY_LATER = {ChargeInProgressError.code, RefundInProgressError.code}
# What each 409 of the payment actions means (SPEC "Payment actions and records for client
# apps"); the codes are the error classes'.
ACTION_CONFLICTS = {
    InvalidStateError.code: "the order's state does not allow the action (the gateway's rules, "
    'or Midtrans\'s 412 "cannot modify the status"), with a message that says why, e.g. a '
    "cancel of an expired order",
    OrderConflictError.code: "the `refund_key` was already used with other details for a "
    "refund done or under way",
    RefundInProgressError.code: "the same `refund_key` is being refunded right now by another "
    "request (with `Retry-After`)",
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _error_response(status: int, codes: list[str], description: str | None = None) -> dict:
    schema = {
        "allOf": [
            _ref("Error"),
            {"properties": {"error": {"properties": {"code": {"enum": codes}}}}},
        ]
    }
    response: dict[str, Any] = {
        "description": description or STATUS_MEANING[status],
        "content": {JSON: {"schema": schema}},
    }
    if status == 429:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before the next call.",
                "required": True,
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        }
    waits = sorted(set(codes) & RETRY_LATER)
    if status == 409 and waits:
        response["headers"] = {
            "Retry-After": {
                "description": f"With `{'` or `'.join(waits)}`: seconds to wait before retrying.",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        }
    return response


def _errors(*statuses: int) -> dict[str, dict]:
    codes = error_codes_by_status()
    return {str(status): _error_response(status, codes[status]) for status in statuses}


def _json(description: str, schema: dict, **extra: Any) -> dict:
    return {"description": description, "content": {JSON: {"schema": schema}}, **extra}


# What the payer needs for a Core API payment: in the create answer, and in /status while the
# payment is pending.
PAYMENT_DETAILS: dict[str, dict] = {
    "va_numbers": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"bank": {"type": "string"}, "va_number": {"type": "string"}},
        },
        "description": "bank_transfer (not permata): the VA number to pay.",
    },
    "permata_va_number": {"type": "string"},
    "bill_key": {"type": "string", "description": "echannel (Mandiri)."},
    "biller_code": {"type": "string", "description": "echannel (Mandiri)."},
    "qr_string": {
        "type": "string",
        "description": "qris: the QRIS payload to draw as a QR code.",
    },
    "qr_url": {"type": "string", "description": "gopay and qris: Midtrans's QR image (PNG)."},
    "deeplink_url": {
        "type": "string",
        "description": "gopay: opens the GoPay app on the payer's phone.",
    },
    "actions": {"type": "array", "items": {"type": "object"}},
}


def _schemas() -> dict[str, dict]:
    text_or_null = {"type": ["string", "null"]}
    all_codes = sorted(
        {c for found in error_codes_by_status().values() for c in found}
        | set(NOTIFICATION_ERRORS.values())
        | {"http_error", "internal_error"}
    )
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "additionalProperties": False,
                    "properties": {
                        "code": {"type": "string", "enum": all_codes},
                        "message": {"type": "string"},
                        "details": {
                            "type": "object",
                            "properties": {
                                "field": {"type": "string"},
                                "midtrans_messages": {"type": "array", "items": {"type": "string"}},
                                "midtrans_status_code": {"type": "string"},
                            },
                        },
                    },
                }
            },
            "example": {
                "error": {
                    "code": "invalid_request",
                    "message": "amount must be a whole number of rupiah",
                    "details": {"field": "amount"},
                }
            },
        },
        "ChargeRequest": charge_request_schema(),
        "Charge": {
            "description": (
                "A Snap payment link (without `payment_type`), or a Core API charge's payment "
                "details (with it). Both say until when they can be paid (`expires_at`)."
            ),
            "oneOf": [
                {
                    "title": "Snap link",
                    "type": "object",
                    "required": ["token", "redirect_url", "order_id", "expires_at", "outcome"],
                    "properties": {
                        "token": {"type": "string", "description": "Snap token (for Snap.js)."},
                        "redirect_url": {
                            "type": "string",
                            "format": "uri",
                            "description": "The payment page to send the customer to.",
                        },
                        "order_id": {"type": "string", "description": "Your order id, as sent."},
                        "expires_at": {
                            "type": ["string", "null"],
                            "format": "date-time",
                            "description": "When the link can no longer be paid; after it, "
                            "the same order_id makes a new link (renewal).",
                        },
                        "outcome": {
                            "enum": OUTCOMES,
                            "description": "`pending` for a new link; a replay for an order "
                            "paid meanwhile says `paid` (it is never charged again).",
                        },
                    },
                },
                {
                    "title": "Core API payment",
                    "type": "object",
                    "required": [
                        "order_id",
                        "id",
                        "payment_type",
                        "transaction_status",
                        "outcome",
                        "expires_at",
                    ],
                    "not": {"required": ["token"]},
                    "properties": {
                        "order_id": {"type": "string", "description": "Your order id, as sent."},
                        "id": {"type": "string", "description": "Midtrans's transaction id."},
                        "payment_type": {"enum": list(CORE_PAYMENT_TYPES)},
                        "transaction_status": {"enum": [str(s) for s in TxStatus]},
                        "fraud_status": text_or_null,
                        "status_message": text_or_null,
                        "outcome": {"enum": OUTCOMES},
                        "expires_at": {
                            "type": ["string", "null"],
                            "format": "date-time",
                            "description": "When the payment can no longer be paid (Midtrans's "
                            "`expiry_time`, in UTC).",
                        },
                        **PAYMENT_DETAILS,
                        "redirect_url": {
                            "type": "string",
                            "description": "credit_card with 3-D Secure: the bank's page.",
                        },
                        "expiry_time": {"type": "string"},
                    },
                },
            ],
        },
        "Status": {
            "type": "object",
            "description": (
                "Midtrans's answer about the order, with the client's order id and the status "
                "this gateway holds. Payment instructions Midtrans returns (`va_numbers`, "
                "`permata_va_number`, `bill_key`, `biller_code`, `actions`, `expiry_time`, ...) "
                "are passed on; "
                + " and ".join(f"`{name}`" for name in sorted(PRIVATE_FIELDS))
                + " never are. Act on `outcome` (fulfil only when it is `paid`), not on "
                "`transaction_status`: a `capture` under `fraud_status` `challenge` is money "
                "on hold, not a sale."
            ),
            "required": [
                "order_id",
                "id",
                "transaction_status",
                "fraud_status",
                "payment_type",
                "gross_amount",
                "currency",
                "transaction_time",
                "outcome",
                "paid",
                "amount",
                "refunded_amount",
                "live",
            ],
            "properties": {
                "order_id": {"type": "string"},
                "id": {**text_or_null, "description": "Midtrans's transaction id."},
                "transaction_status": {"enum": [str(s) for s in TxStatus]},
                "fraud_status": text_or_null,
                "status_code": text_or_null,
                "status_message": text_or_null,
                "payment_type": text_or_null,
                "gross_amount": {"type": "string", "examples": ["150000.00"]},
                "currency": {"type": "string", "examples": ["IDR"]},
                "transaction_time": text_or_null,
                "expiry_time": text_or_null,
                "redirect_url": {
                    **text_or_null,
                    "description": "The payment link while it can be paid; null once it is "
                    "dead (expired, cancelled, paid, or replaced by a renewal).",
                },
                "token": {**text_or_null, "description": "The Snap token of that link."},
                "expires_at": {
                    **text_or_null,
                    "description": "Until when the current link or Core payment can be paid.",
                },
                **PAYMENT_DETAILS,
                "metadata": {
                    "description": "Your own `metadata` from `/charge`, as sent.",
                },
                **{
                    f"custom_field{n}": {
                        "type": "string",
                        "description": f"Your own custom_field{n} from `/charge`, as sent.",
                    }
                    for n in (1, 2, 3)
                },
                "outcome": {
                    "enum": OUTCOMES,
                    "description": "What the payment means, derived from transaction_status "
                    "and fraud_status: only `paid` may trigger fulfilment.",
                },
                "paid": {
                    "type": "boolean",
                    "description": "true when outcome is `paid`, or the order was paid before "
                    "a partial refund or chargeback.",
                },
                "amount": {"type": "integer", "description": "The order's amount (rupiah)."},
                "refunded_amount": {
                    "type": "integer",
                    "description": "What Midtrans has refunded or charged back in all.",
                },
                "original_amount": {
                    "type": "integer",
                    "description": "Present when Midtrans's fee imposition added a fee: the "
                    "order's part of what the payer paid.",
                },
                "customer_imposed_fee": {
                    "type": "integer",
                    "description": "The fee Midtrans's fee imposition added to the payment.",
                },
                "live": {
                    "type": "boolean",
                    "description": "false: Midtrans could not be reached; this is the last "
                    "status the gateway knows.",
                },
                **{name: {"not": {}} for name in sorted(PRIVATE_FIELDS)},
            },
        },
        "Record": {
            "description": (
                "An order as the gateway's records hold it (no Midtrans call): the `Status` "
                'object with `"live": false`, and when it was made and last changed.'
            ),
            "allOf": [
                _ref("Status"),
                {
                    "type": "object",
                    "required": ["created_at", "updated_at"],
                    "properties": {
                        "created_at": {"type": "string", "format": "date-time"},
                        "updated_at": {"type": "string", "format": "date-time"},
                    },
                },
            ],
        },
        "TransactionList": {
            "type": "object",
            "required": ["data", "next_cursor"],
            "properties": {
                "data": {"type": "array", "items": _ref("Record")},
                "next_cursor": {
                    **text_or_null,
                    "description": "Pass as `cursor` for the next page; null on the last.",
                },
            },
        },
        "TransactionRecord": {
            "allOf": [
                _ref("Record"),
                {
                    "type": "object",
                    "required": ["events"],
                    "properties": {
                        "events": {
                            "type": "array",
                            "description": "The order's timeline, oldest first.",
                            "items": {
                                "type": "object",
                                "required": ["at", "to_status", "source"],
                                "properties": {
                                    "at": {"type": "string", "format": "date-time"},
                                    "from_status": text_or_null,
                                    "to_status": {"type": "string"},
                                    "fraud_status": text_or_null,
                                    "source": {"type": "string"},
                                    "detail": text_or_null,
                                },
                            },
                        }
                    },
                },
            ],
        },
        "RefundRequest": {
            "type": "object",
            "properties": {
                "amount": {
                    "type": ["integer", "null"],
                    "minimum": 1,
                    "maximum": AMOUNT_MAX,
                    "description": "Rupiah to give back; all that is left when left out (or null).",
                },
                "reason": {"type": "string", "maxLength": REASON_MAX, "pattern": "^[^\\x00]*$"},
                "refund_key": {
                    "type": ["string", "null"],
                    "pattern": "^" + REFUND_KEY_RE.pattern + "$",
                    "description": "Your id of this refund: the same key again answers the "
                    "first result and never refunds twice. Made by the gateway when left out "
                    "(or null).",
                },
                "direct": {
                    "type": "boolean",
                    "description": "Midtrans's direct refund (cards, GoPay, QRIS).",
                },
            },
        },
        "CaptureRequest": {
            "type": "object",
            "properties": {
                "amount": {
                    "type": ["integer", "null"],
                    "minimum": 1,
                    "maximum": AMOUNT_MAX,
                    "description": "Rupiah to capture (at most what was authorized; all when "
                    "left out or null). What is captured becomes the order's amount.",
                }
            },
        },
        "ClientConfig": {
            "type": "object",
            "description": "Public settings for Snap.js and card tokenization on your page.",
            "required": ["client_key", "is_production", "snap_js_url", "new3ds_js_url"],
            "properties": {
                "client_key": {"type": "string"},
                "is_production": {"type": "boolean"},
                "snap_js_url": {"type": "string", "format": "uri"},
                "new3ds_js_url": {"type": "string", "format": "uri"},
            },
        },
        "Notification": {
            "type": "object",
            "description": "Midtrans's HTTP notification, as Midtrans sends it.",
            "required": list(NOTIFICATION_REQUIRED),
            "properties": {
                **{name: {"type": "string", "minLength": 1} for name in NOTIFICATION_REQUIRED},
                "transaction_id": {"type": "string"},
                "payment_type": {"type": "string"},
                "fraud_status": {"type": "string"},
            },
        },
        "NotificationReceipt": {
            "type": "object",
            "required": ["status", "outcome"],
            "properties": {
                "status": {"const": "ok"},
                "outcome": {"enum": [str(o) for o in NotificationOutcome]},
            },
        },
        "Readiness": {
            "type": "object",
            "required": ["status", "checks"],
            "properties": {
                "status": {"enum": ["ready", "not ready"]},
                "checks": {
                    "type": "object",
                    "properties": {
                        "database": {"enum": ["ok", "unreachable"]},
                        "midtrans_server_key": {"enum": ["ok", "missing"]},
                    },
                },
            },
        },
    }


def _version() -> str:
    try:
        return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "0"


APP_AUTH = [{"appCode": [], "apiKey": []}]


# An order id as /charge accepts it (any other is no order: 404), prefix left out.
ORDER_ID_PARAM = {
    "name": "order_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": ORDER_ID_RE.pattern, "maxLength": ORDER_ID_MAX},
}
ACTION_DOCS = {
    "cancel": ("Cancel a payment that is not paid (pending, authorized, challenge)", None),
    "expire": ("Expire a pending payment so it can no longer be paid", None),
    "approve": ("Approve a card payment held by Midtrans's fraud check (challenge)", None),
    "deny": ("Deny a card payment held by Midtrans's fraud check (challenge)", None),
    "capture": ("Capture an authorized card payment (pre-authorization)", "CaptureRequest"),
    "refund": ("Refund a paid order, all or part, once per refund_key", "RefundRequest"),
}


# Where each action leads (`app.payments.actions.RULES[...].done`): a repeat there is a 200.
DONE_WORDS = {
    "cancel": "cancelled",
    "expire": "expired",
    "approve": "approved (a `capture` with `fraud_status` `accept`, or its `settlement`)",
    "deny": "denied (`deny`)",
    "capture": "captured (a `capture` with `fraud_status` `accept`; another `amount` is 409)",
}


# What may be done next to the order an answer names (its `order_id` is the client's).
ACTION_LINKS = {
    f"{action.capitalize()}Transaction": {
        "operationId": f"{action}Transaction",
        "parameters": {"order_id": "$response.body#/order_id"},
    }
    for action in ACTION_DOCS
}


def _action_paths() -> dict[str, dict]:
    paths = {}
    for action, (summary, body) in ACTION_DOCS.items():
        refunds = action == "refund"
        conflicts = [InvalidStateError.code]
        if refunds:  # a refund_key used with other details; one being refunded right now
            conflicts += [OrderConflictError.code, RefundInProgressError.code]
        conflict_text = "; ".join(f"`{code}`: {ACTION_CONFLICTS[code]}" for code in conflicts)
        if refunds:
            repeats = (
                " Idempotent by `refund_key` (one is made when it is left out): the same key "
                "again answers the first result and Midtrans refunds once. A key Midtrans "
                "refused answers the same refusal for the same details, and may be used again "
                "with corrected ones (nothing was refunded under it). Only for apps an admin "
                "allowed to refund (`apps allow-refunds`): others get 403 `forbidden`."
            )
        else:
            repeats = (
                f" Idempotent: repeated when the order already is {DONE_WORDS[action]}, it "
                "answers 200 with the order as it is, without asking Midtrans again and "
                "without a new callback; any other state that does not allow it is 409."
            )
        operation: dict[str, Any] = {
            "operationId": f"{action}Transaction",
            "tags": ["client API"],
            "summary": summary,
            "description": (
                "Answers the object `GET /status` returns, after the change (a callback is "
                "sent too). A state that does not allow it is 409 `invalid_state`; a request "
                "Midtrans rejects otherwise is 400 `midtrans_rejected`; another app's order "
                "is 404." + repeats
            ),
            "security": APP_AUTH,
            "parameters": [ORDER_ID_PARAM],
            "responses": {
                "200": _json("The order after the change.", _ref("Status"), links=ACTION_LINKS),
                **_errors(400, 401, 404, 413, 429, 502, 504),
                "409": _error_response(409, conflicts, conflict_text + "."),
                **({"403": _error_response(403, [ForbiddenError.code])} if refunds else {}),
            },
        }
        if body:
            operation["requestBody"] = {
                "required": False,
                "content": {JSON: {"schema": _ref(body)}},
            }
        paths[f"/transactions/{{order_id}}/{action}"] = {"post": operation}
    return paths


def _paths() -> dict[str, dict]:
    notification_errors = {
        str(status): _error_response(status, [code]) for status, code in NOTIFICATION_ERRORS.items()
    }
    return {
        "/charge": {
            "post": {
                "operationId": "createCharge",
                "tags": ["client API"],
                "summary": "Create a Snap payment link, or a Core API charge (`payment_type`)",
                "description": (
                    "Repeating the identical request for the same order answers the same token "
                    "and URL (or payment details) again (201, `Idempotent-Replayed: true`) "
                    "without a second Midtrans call; the same order_id with different details "
                    "is 409 while its link can still be paid. A retry after a failed or "
                    "timed-out Midtrans call gets a usable payment link. Renewal: when the last "
                    "link is dead (`expires_at` passed unpaid, or the payment expired, was "
                    "cancelled, denied or failed), the same order_id makes a new attempt, with "
                    "new details if they changed (a pending payment is cancelled at Midtrans "
                    "first); a paid order is never charged again. With `payment_type` the "
                    "gateway makes a Core API charge and answers the payment details at once. "
                    "An order whose payment Midtrans already holds (adopted, or rebuilt after "
                    "a restore) answers 200 with its status."
                ),
                "security": APP_AUTH,
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("ChargeRequest")}},
                },
                "responses": {
                    "201": _json(
                        "The payment link.",
                        _ref("Charge"),
                        headers={
                            "Idempotent-Replayed": {
                                "description": "`true` when this repeats an earlier request.",
                                "schema": {"const": "true"},
                            }
                        },
                        links={
                            "GetStatus": {
                                "operationId": "getStatus",
                                "parameters": {"order_id": "$response.body#/order_id"},
                            },
                            **ACTION_LINKS,
                        },
                    ),
                    **_errors(400, 401, 413, 429, 502, 504),
                    "409": _error_response(
                        409, [ChargeInProgressError.code, OrderConflictError.code]
                    ),
                },
            }
        },
        "/status/{order_id}": {
            "get": {
                "operationId": "getStatus",
                "tags": ["client API"],
                "summary": "An order's status, live from Midtrans",
                "description": (
                    "Before the customer has chosen a payment method the status is `pending`. "
                    "When Midtrans cannot be reached the answer comes from the gateway's own "
                    'records with `"live": false` (still 200). Another app\'s order is 404.'
                ),
                "security": APP_AUTH,
                "parameters": [ORDER_ID_PARAM],
                "responses": {
                    "200": _json("The order's status.", _ref("Status")),
                    **_errors(401, 404, 429),
                },
            }
        },
        "/transactions": {
            "get": {
                "operationId": "listTransactions",
                "tags": ["client API"],
                "summary": "Your orders, newest change first, from the gateway's records",
                "description": (
                    "Pages follow `next_cursor`. To keep a list in step, ask again with "
                    "`updated_since` set to the newest `updated_at` you hold."
                ),
                "security": APP_AUTH,
                "parameters": [
                    {"name": "outcome", "in": "query", "schema": {"enum": OUTCOMES}},
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"enum": [str(s) for s in TxStatus]},
                    },
                    {
                        "name": "updated_since",
                        "in": "query",
                        "description": "ISO 8601 with its zone, e.g. 2026-01-31T17:00:00+07:00.",
                        "schema": {"type": "string", "format": "date-time"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "`next_cursor` of the page before.",
                        "schema": {"type": "string", "pattern": CURSOR_PATTERN},
                    },
                ],
                "responses": {
                    "200": _json("A page of orders.", _ref("TransactionList")),
                    **_errors(400, 401, 429),
                },
            }
        },
        "/transactions/{order_id}": {
            "get": {
                "operationId": "getTransaction",
                "tags": ["client API"],
                "summary": "One order from the gateway's records, with its timeline",
                "security": APP_AUTH,
                "parameters": [ORDER_ID_PARAM],
                "responses": {
                    "200": _json("The order.", _ref("TransactionRecord")),
                    **_errors(401, 404, 429),
                },
            }
        },
        **_action_paths(),
        "/config": {
            "get": {
                "operationId": "getConfig",
                "tags": ["client API"],
                "summary": "Public settings for Snap.js and Midtrans's card JS",
                "security": APP_AUTH,
                "responses": {
                    "200": _json("The settings.", _ref("ClientConfig")),
                    **_errors(401, 429),
                },
            }
        },
        "/notification": {
            "post": {
                "operationId": "receiveNotification",
                "tags": ["Midtrans"],
                "summary": "Midtrans HTTP notification (set this URL in the Midtrans dashboard)",
                "description": (
                    "Verified by `signature_key = sha512(order_id + status_code + gross_amount "
                    "+ server_key)`. The status applied is the one Midtrans's status API "
                    "confirms; a stale notification never moves an order backwards. Every "
                    "verified notification is stored as received; a rejected one as its first "
                    "4 KiB with the reason, up to RATELIMIT_REJECTED_NOTIFICATIONS per address "
                    "(beyond: 429, not stored). Verified notifications are never limited."
                ),
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("Notification")}},
                },
                "responses": {
                    "200": _json(
                        "Verified and stored (also for duplicates and unknown orders).",
                        _ref("NotificationReceipt"),
                    ),
                    **notification_errors,
                    **_errors(413, 429, 503),
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "tags": ["operations"],
                "summary": "Liveness: 200 while the process serves",
                "responses": {
                    "200": _json(
                        "Serving.",
                        {
                            "type": "object",
                            "required": ["status"],
                            "properties": {"status": {"const": "ok"}},
                        },
                    )
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "tags": ["operations"],
                "summary": "Readiness: database reachable and configuration complete",
                "responses": {
                    "200": _json("Ready.", _ref("Readiness")),
                    "503": _json("Not ready; `checks` says why.", _ref("Readiness")),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["operations"],
                "summary": "Prometheus metrics (loopback clients, or `Authorization: Bearer`)",
                "responses": {
                    "200": {
                        "description": "Prometheus text format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "404": _error_response(404, ["not_found"]),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "tags": ["documentation"],
                "summary": "This document",
                "responses": {"200": _json("OpenAPI 3.1.", {"type": "object"})},
            }
        },
        "/docs": {
            "get": {
                "operationId": "docs",
                "tags": ["documentation"],
                "summary": "This document, readable in a browser",
                "responses": {
                    "200": {
                        "description": "HTML page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


@functools.cache
def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of everything outside /admin."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "midtrans-gateway",
            "version": _version(),
            "description": (
                "A self-hosted payment gateway in front of Midtrans. Client apps call "
                "`POST /charge` and `GET /status/{order_id}` with their app code "
                "(`X-App-Code`) and API key (`X-Api-Key`), created by the gateway's admin "
                "(`flask --app wsgi apps create CODE --name NAME`). Every error is JSON: "
                '`{"error": {"code", "message", "details"}}`.'
            ),
        },
        "tags": [
            {"name": "client API", "description": "For client apps (billing systems, shops)."},
            {"name": "Midtrans", "description": "Called by Midtrans."},
            {"name": "operations", "description": "Probes and metrics for ops."},
            {"name": "documentation"},
        ],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "appCode": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-App-Code",
                    "description": "The app's code.",
                },
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Api-Key",
                    "description": "The app's API key (shown once when the app is created).",
                },
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(build_document())


@bp.get("/docs")
def docs():
    # Swagger UI from /static/docs (vendored, no CDN); its start-up script is a static file,
    # as the Content-Security-Policy allows no inline script.
    return render_template("docs.html")
