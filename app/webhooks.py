"""Blueprint "webhooks": Midtrans's HTTP notifications. Thin: one call, one answer.

A rejected notification raises `InvalidNotificationError` (400) or `InvalidSignatureError`
(403), over its sender's limit `RateLimitedError` (429): each answers as every gateway error
does (app/errors.py)."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request
from sqlalchemy.exc import DBAPIError

from . import payments
from .errors import DATABASE_RETRY_AFTER, InvalidNotificationError, ServiceUnavailableError
from .metrics import NOTIFICATIONS
from .models import NotificationOutcome
from .observability import RateLimitedError, admit_rejected_notification
from .services import gateway

bp = Blueprint("webhooks", __name__)
log = logging.getLogger(__name__)


@bp.post("/notification")
def notification():
    try:
        receipt = payments.receive_notification(
            raw=request.get_data(cache=False),
            remote_addr=request.remote_addr,
            midtrans=gateway().midtrans,
            admit_rejected=lambda: admit_rejected_notification(request.remote_addr),
        )
    except (InvalidNotificationError, RateLimitedError):
        NOTIFICATIONS.labels(str(NotificationOutcome.REJECTED)).inc()
        raise
    except DBAPIError:
        # The database is down or locked (nothing was stored): say so, so Midtrans delivers
        # it again.
        log.exception("notification not stored: database error")
        raise ServiceUnavailableError(
            "the gateway could not store the notification; please retry",
            headers={"Retry-After": DATABASE_RETRY_AFTER},
        ) from None
    NOTIFICATIONS.labels(str(receipt.outcome)).inc()
    return jsonify({"status": "ok", "outcome": receipt.outcome}), 200
