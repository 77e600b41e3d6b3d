"""Errors that carry their own HTTP status, and the one JSON shape every API error takes.

    {"error": {"code": "invalid_request", "message": "...", "details": {"field": "amount"}}}

Outside `/admin` every error is JSON, including Flask's own (404, 405, 413). Messages never
contain secrets: they are written here or taken from Midtrans's `error_messages`, not from
exception text that might echo a request.
"""

from __future__ import annotations

import logging

import sqlalchemy.exc
from flask import Flask, current_app, g, jsonify, render_template, request
from sqlalchemy.exc import InterfaceError, OperationalError, PendingRollbackError
from werkzeug.exceptions import HTTPException

from .extensions import db

log = logging.getLogger(__name__)

# Seconds a client waits before retrying when the database is unavailable.
DATABASE_RETRY_AFTER = "5"


class GatewayError(Exception):
    status = 500
    code = "internal_error"
    public = True  # answered by the client API (and so listed in /openapi.json)

    def __init__(self, message: str, *, details: dict | None = None, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


class InvalidRequestError(GatewayError):
    status, code = 400, "invalid_request"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message, details={"field": field} if field else None)
        self.field = field


class AuthenticationError(GatewayError):
    status, code = 401, "unauthorized"

    def __init__(self):
        # One message for every cause, so a caller cannot tell which part was wrong.
        super().__init__("invalid app code or API key")


class NotFoundError(GatewayError):
    status, code = 404, "not_found"


class OrderConflictError(GatewayError):
    status, code = 409, "order_conflict"


class ChargeInProgressError(GatewayError):
    status, code = 409, "charge_in_progress"


class ForbiddenError(GatewayError):
    """The app is known, but not allowed to do this (e.g. refunds, until an admin allows)."""

    status, code = 403, "forbidden"


class InvalidStateError(GatewayError):
    """The order's state does not allow the action (the gateway's rules, or Midtrans's 412)."""

    status, code = 409, "invalid_state"


class RefundInProgressError(GatewayError):
    """The same refund_key is being refunded right now; retry after Retry-After."""

    status, code = 409, "refund_in_progress"


class BusyError(GatewayError):
    """Something else is working on the same thing right now (e.g. a worker delivering a
    callback an admin wants to resend). Dashboard only."""

    status, code = 409, "busy"
    public = False


class InvalidNotificationError(GatewayError):
    """A notification Midtrans cannot have sent as it is (not a JSON object, a signed field
    missing, a status_code that does not fit its status): stored as an excerpt with this
    reason, never applied. Answered to the notification's sender only, not to client apps."""

    status, code = 400, "invalid_notification"
    public = False

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
        self.notification_id: int | None = None  # the stored excerpt's, once stored


class InvalidSignatureError(InvalidNotificationError):
    """A notification whose `signature_key` does not match: forged, or signed with another
    server key."""

    status, code = 403, "invalid_signature"


class MidtransRejectedError(GatewayError):
    """Midtrans refused the request's details (Snap 400); its messages are passed on."""

    status, code = 400, "midtrans_rejected"

    def __init__(self, messages: list[str]):
        super().__init__(
            "Midtrans rejected the transaction: " + "; ".join(messages),
            details={"midtrans_messages": messages},
        )
        self.messages = messages


class MidtransAuthError(GatewayError):
    status, code = 502, "midtrans_auth_failed"

    def __init__(self):
        super().__init__(
            "Midtrans rejected the gateway's server key; the gateway's administrator must "
            "check MIDTRANS_SERVER_KEY and MIDTRANS_IS_PRODUCTION"
        )


class MidtransUnavailableError(GatewayError):
    """Midtrans answered with an error, garbage, or not at all (connection refused)."""

    status, code = 502, "midtrans_unavailable"


class MidtransTimeoutError(GatewayError):
    status, code = 504, "midtrans_timeout"


class ServiceUnavailableError(GatewayError):
    status, code = 503, "service_unavailable"


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    error: dict = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def _wants_html() -> bool:
    return request.path == "/admin" or request.path.startswith("/admin/")


HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _body_read_errors() -> tuple[type[Exception], ...]:
    """What gunicorn raises while the app reads a malformed body (a bad chunk size or chunk
    extension, a chunk without its CRLF): a client error it leaves to the app. Empty when
    gunicorn is not installed (the Flask test server raises none of these)."""
    try:
        from gunicorn.http.errors import ParseException
    except ImportError:  # pragma: no cover - gunicorn is a requirement, but not of the app
        return ()
    return (ParseException,)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(GatewayError)
    def _gateway_error(err: GatewayError):
        response = jsonify(error_body(err.code, err.message, err.details))
        response.status_code = err.status
        response.headers.update(err.headers)
        if "Retry-After" in err.headers:
            g.retry_after = err.headers["Retry-After"]  # the gateway's own, kept as it is
        return response

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        status = err.code or 500
        if _wants_html():
            response = current_app.make_response(
                (
                    render_template("admin/error.html", status=status, message=err.description),
                    status,
                )
            )
        else:
            messages = {
                404: "no such endpoint",
                405: f"method {request.method} is not allowed here",
                413: "request body is larger than 64 KiB",
                429: "too many requests; retry after the time in Retry-After",
            }
            body = error_body(HTTP_CODES.get(status, "http_error"), messages.get(status, err.name))
            response = jsonify(body)
            response.status_code = status
        for name, value in err.get_headers() or []:
            if name.lower() in {"retry-after", "allow"}:
                response.headers[name] = value
        return response

    def _unreadable_body(err: Exception):
        log.warning("request body could not be read: %s", type(err).__name__)
        message = "the request body is malformed (invalid chunked transfer encoding)"
        if _wants_html():
            return render_template("admin/error.html", status=400, message=message), 400
        response = jsonify(error_body("invalid_request", message))
        response.status_code = 400
        return response

    for error_class in _body_read_errors():
        app.register_error_handler(error_class, _unreadable_body)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PendingRollbackError)
    @app.errorhandler(sqlalchemy.exc.TimeoutError)
    def _database_unavailable(err: Exception):
        # The database is down, locked, read-only or full: nothing was changed (the
        # transaction is rolled back), the client may retry. Never a 500.
        db.session.rollback()
        # The driver's own message only: SQLAlchemy's text repeats the statement's parameters.
        cause = getattr(err, "orig", None) or err
        log.error(
            "database unavailable on %s %s: %s: %.200s",
            request.method,
            request.path,
            type(cause).__name__,
            str(cause) if cause is not err else "",
        )
        message = "the gateway's database is unavailable; nothing was changed, please retry"
        if _wants_html():
            response = current_app.make_response(
                (render_template("admin/error.html", status=503, message=message), 503)
            )
        else:
            response = jsonify(error_body(ServiceUnavailableError.code, message))
            response.status_code = 503
        response.headers["Retry-After"] = g.retry_after = DATABASE_RETRY_AFTER
        return response

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if _wants_html():
            message = "Something went wrong on our side; it has been logged."
            return render_template("admin/error.html", status=500, message=message), 500
        response = jsonify(error_body("internal_error", "internal server error"))
        response.status_code = 500
        return response
