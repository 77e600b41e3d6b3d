"""Blueprint "webhooks": Midtrans's HTTP notifications. Thin: one call, one answer."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request
from sqlalchemy.exc import DBAPIError

from . import payments
from .errors import DATABASE_RETRY_AFTER, ServiceUnavailableError, error_body
from .extensions import db
from .metrics import NOTIFICATIONS
from .observability import RateLimitedError, rejected_notification
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
            admit_rejected=lambda: rejected_notification(request.remote_addr),
        )
    except DBAPIError:
        # The database is down or locked: say so, so Midtrans delivers it again.
        db.session.rollback()
        log.exception("notification not stored: database error")
        raise ServiceUnavailableError(
            "the gateway could not store the notification; please retry",
            headers={"Retry-After": DATABASE_RETRY_AFTER},
        ) from None
    NOTIFICATIONS.labels(str(receipt.outcome)).inc()
    if receipt.retry_after is not None:  # rejected, and its sender over its limit: not stored
        raise RateLimitedError(
            "too many rejected notifications from this address; retry after the time in "
            "Retry-After",
            retry_after=receipt.retry_after,
        )
    if receipt.http_status >= 400:
        code = "invalid_signature" if receipt.http_status == 403 else "invalid_notification"
        return jsonify(error_body(code, receipt.reason or "rejected")), receipt.http_status
    return jsonify({"status": "ok", "outcome": receipt.outcome}), 200
