"""The only place that talks to Midtrans.

It uses the official `midtransclient` package (the user's choice) and fixes what it gets wrong:
- it calls `requests` with no timeout and no connection reuse: its clients call Midtrans
  through `MidtransTransport` (app/midtrans_transport.py), one pool of kept-alive connections
  per process, every call over within `MIDTRANS_TIMEOUT`, the whole call;
- building its clients costs about as much as a call: they are built once per settings and
  timeout and shared by every thread (a call changes nothing on them);
- its default header and proxy dicts are shared between instances: every client gets fresh ones;
- its base URLs are class constants: they are set on each client's own `api_config`;
- it raises one exception type for very different failures: they are mapped here to errors that
  say what happened and carry the HTTP status the gateway answers with.

Nothing here knows about the database or `flask.request`. Secrets never leave: no exception
raised from here carries Midtrans's raw answer or the server key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import midtransclient
import requests
from midtransclient.error_midtrans import JSONDecodeError as MidtransJSONError

from .config import MidtransSettings
from .errors import (
    GatewayError,
    MidtransAuthError,
    MidtransRejectedError,
    MidtransTimeoutError,
    MidtransUnavailableError,
)
from .metrics import record_midtrans_call
from .midtrans_transport import MidtransTransport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapLink:
    token: str
    redirect_url: str


# What Midtrans's `status_code` says beside each `transaction_status`: two tables, because a
# notification and the status API disagree (an expiry is "202" in a notification, "407" from
# the status API).
# In a notification: the codes Midtrans sends with each status (a status not listed here, one
# Midtrans adds later, may come with any code).
NOTIFICATION_STATUS_CODES: dict[str, frozenset[str]] = {
    "pending": frozenset({"201"}),
    "authorize": frozenset({"200", "201"}),
    "capture": frozenset({"200", "201"}),
    "settlement": frozenset({"200"}),
    "deny": frozenset({"202", "200"}),
    "cancel": frozenset({"202", "200"}),
    "expire": frozenset({"202", "407"}),
    "failure": frozenset({"202", "500", "502", "503"}),
    "refund": frozenset({"200"}),
    "partial_refund": frozenset({"200"}),
    "chargeback": frozenset({"200"}),
    "partial_chargeback": frozenset({"200"}),
}
# From the status API (GET /v2/<order_id>/status): the one code each status comes with.
STATUS_API_CODES: dict[str, str] = {
    "pending": "201",
    "authorize": "200",
    "capture": "200",
    "settlement": "200",
    "deny": "202",
    "cancel": "200",
    "expire": "407",
    "failure": "202",
    "refund": "200",
    "partial_refund": "200",
    "chargeback": "200",
    "partial_chargeback": "200",
}


def signature_for(order_id: str, status_code: str, gross_amount: str, server_key: str) -> str:
    """Midtrans's notification signature: sha512 over the literal strings, concatenated."""
    return hashlib.sha512(
        (order_id + status_code + gross_amount + server_key).encode("utf-8")
    ).hexdigest()


class Midtrans:
    """Calls to Midtrans Snap and Core API with one set of settings."""

    def __init__(self, settings: MidtransSettings):
        self.settings = settings
        # Clients by (kind, timeout), for the settings they were built with: built once (a
        # build cost about a third of a /charge) and shared by every thread.
        self._built: tuple[MidtransSettings | None, dict] = (None, {})
        self._lock = threading.Lock()

    # -- building clients ------------------------------------------------------------------

    def _client(self, kind: str, timeout: float | None = None):
        settings = self.settings
        seconds = settings.timeout if timeout is None else min(timeout, settings.timeout)
        built_for, clients = self._built
        client = clients.get((kind, seconds)) if built_for is settings else None
        if client is None:
            with self._lock:
                if self._built[0] is not settings:
                    self._built = (settings, {})
                clients = self._built[1]
                client = clients.get((kind, seconds))
                if client is None:
                    client = clients[(kind, seconds)] = self._build(settings, kind, seconds)
        return client

    @staticmethod
    def _build(settings: MidtransSettings, kind: str, timeout: float):
        headers = {}
        # Every create (a Snap link, a Core charge) tells Midtrans where to notify.
        if kind in ("snap", "core_charge") and settings.notification_url:
            headers["X-Override-Notification"] = settings.notification_url
        cls = midtransclient.Snap if kind == "snap" else midtransclient.CoreApi
        client = cls(
            is_production=settings.is_production,
            server_key=settings.server_key,
            client_key=settings.client_key,
            custom_headers={},
            proxies={},
        )
        config = client.api_config
        # Fresh dicts: midtransclient's defaults are shared between every instance.
        config.custom_headers = headers
        config.proxies = {}
        config.CORE_SANDBOX_BASE_URL = config.CORE_PRODUCTION_BASE_URL = settings.api_base_url
        config.SNAP_SANDBOX_BASE_URL = config.SNAP_PRODUCTION_BASE_URL = settings.snap_base_url
        client.http_client.http_client = MidtransTransport(timeout)
        return client

    def _snap(self) -> midtransclient.Snap:
        return self._client("snap")

    def _core(self, timeout: float | None = None) -> midtransclient.CoreApi:
        return self._client("core", timeout)

    # -- calls -----------------------------------------------------------------------------

    def create_snap(self, payload: dict[str, Any]) -> SnapLink:
        """Create a Snap transaction; its token and redirect URL, or a mapped error."""
        answer = self._call("snap_create", lambda: self._snap().create_transaction(payload))
        token, url = answer.get("token"), answer.get("redirect_url")
        if not isinstance(token, str) or not isinstance(url, str) or not token or not url:
            raise MidtransUnavailableError("Midtrans answered without a token or redirect_url")
        return SnapLink(token=token, redirect_url=url)

    def charge_core(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A Core API charge (`/v2/charge`): Midtrans's answer with the payment details (VA
        number, bill key, QR, 3DS URL), or a mapped error: a refusal of the details (HTTP 200
        with a 4xx `status_code` included) is `MidtransRejectedError`, the order id already
        taken `MidtransOrderTakenError`."""
        answer = self._call("core_charge", lambda: self._client("core_charge").charge(payload))
        if not answer.get("transaction_status") or not answer.get("transaction_id"):
            raise MidtransUnavailableError("Midtrans answered the charge without a transaction")
        return answer

    def get_status(
        self, order_or_transaction_id: str, *, timeout: float | None = None
    ) -> dict[str, Any] | None:
        """Midtrans's status object, or None when Midtrans says the transaction doesn't exist.

        A Snap order has no Core transaction until the customer picks a payment method, so
        None is the normal answer for a fresh order. `timeout` shortens MIDTRANS_TIMEOUT for
        callers that must answer quickly (the notification endpoint).
        """
        core = self._core(timeout)
        try:
            return self._call("status", lambda: core.transactions.status(order_or_transaction_id))
        except _NotFound:
            return None

    def cancel(self, ident: str) -> dict[str, Any]:
        return self._call("cancel", lambda: self._core().transactions.cancel(ident))

    def expire(self, ident: str) -> dict[str, Any]:
        return self._call("expire", lambda: self._core().transactions.expire(ident))

    def refund(self, ident: str, body: dict[str, Any], *, direct: bool = False) -> dict[str, Any]:
        """A refund; `direct` uses Midtrans's direct refund (money back through the payment
        channel at once, where Midtrans offers it: cards, GoPay, QRIS)."""
        if direct:
            return self._call("refund", lambda: self._core().transactions.refundDirect(ident, body))
        return self._call("refund", lambda: self._core().transactions.refund(ident, body))

    def approve(self, ident: str) -> dict[str, Any]:
        return self._call("approve", lambda: self._core().transactions.approve(ident))

    def deny(self, ident: str) -> dict[str, Any]:
        return self._call("deny", lambda: self._core().transactions.deny(ident))

    def capture(self, transaction_id: str, amount: int) -> dict[str, Any]:
        """Capture `amount` of an authorized card payment (a pre-authorization)."""
        body = {"transaction_id": transaction_id, "gross_amount": amount}
        return self._call("capture", lambda: self._core().capture(body))

    def signature_matches(
        self, *, order_id: str, status_code: str, gross_amount: str, signature: str
    ) -> bool:
        try:
            expected = signature_for(order_id, status_code, gross_amount, self.settings.server_key)
        except UnicodeEncodeError:  # a lone surrogate: no notification Midtrans signed
            return False
        # As bytes: compare_digest refuses str with non-ASCII characters (a forged signature).
        presented = signature.lower().encode("utf-8", "surrogatepass")
        return hmac.compare_digest(expected.encode("ascii"), presented)

    # -- error mapping ---------------------------------------------------------------------

    def _call(self, operation: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        started = time.perf_counter()
        outcome = "ok"
        try:
            answer = fn()
            if not isinstance(answer, dict):
                outcome = "bad_response"
                raise MidtransUnavailableError("Midtrans answered with an unexpected JSON value")
            return answer
        except requests.Timeout:
            outcome = "timeout"
            raise MidtransTimeoutError(
                f"Midtrans did not answer within {self.settings.timeout:g} seconds"
            ) from None
        except requests.RequestException:
            outcome = "unreachable"
            raise MidtransUnavailableError("could not connect to Midtrans") from None
        except MidtransJSONError:
            outcome = "bad_response"
            raise MidtransUnavailableError(
                "Midtrans answered with something that is not JSON"
            ) from None
        except midtransclient.MidtransAPIError as err:
            outcome, mapped = _map_api_error(operation, err)
            raise mapped from None
        finally:
            elapsed = time.perf_counter() - started
            record_midtrans_call(operation, outcome, elapsed)
            log.log(
                logging.DEBUG if outcome in {"ok", "not_found"} else logging.WARNING,
                "midtrans %s %s in %.0f ms",
                operation,
                outcome,
                elapsed * 1000,
            )


class _NotFound(Exception):
    """Midtrans says the transaction doesn't exist (HTTP 404 or body status_code 404)."""


def _map_api_error(operation: str, err: midtransclient.MidtransAPIError) -> tuple[str, Exception]:
    body = err.api_response_dict if isinstance(err.api_response_dict, dict) else {}
    try:
        body_code = int(body.get("status_code") or 0)
    except (TypeError, ValueError):
        body_code = 0
    http = err.http_status_code
    code = body_code if http < 400 else http

    if code == 401 or http == 401:
        return "auth_failed", MidtransAuthError()
    if code == 404 and operation == "status":
        return "not_found", _NotFound()
    if code >= 500:
        return "server_error", MidtransUnavailableError(f"Midtrans answered with an error ({code})")
    messages = body.get("error_messages")
    if operation == "core_charge" and 400 <= code < 500:
        found = body.get("validation_messages") or messages
        if not isinstance(found, list) or not found:
            found = [str(body.get("status_message") or "charge refused")]
        found = [str(m) for m in found]
        if code == 406:  # "conflict with the current state": the order id is taken
            return "rejected", MidtransOrderTakenError(found)
        return "rejected", MidtransRejectedError(found)
    if operation == "snap_create" and code == 400:
        if not isinstance(messages, list) or not messages:
            messages = [str(body.get("status_message") or "request rejected")]
        return "rejected", MidtransRejectedError([str(m) for m in messages])
    message = body.get("status_message") or (messages[0] if isinstance(messages, list) else "")
    text = f"Midtrans refused the {operation} request ({code})"
    if message:
        text += f": {message}"
    return "refused", MidtransRefusedError(
        text, midtrans_status_code=str(code), midtrans_message=str(message or "")
    )


class MidtransRefusedError(MidtransUnavailableError):
    """Midtrans answered a Core call with a 4xx status (e.g. 412 "cannot modify the status").
    The caller says what it means; `app.payments.actions` maps it (`_at_midtrans`)."""

    def __init__(self, message: str, *, midtrans_status_code: str, midtrans_message: str = ""):
        super().__init__(message, details={"midtrans_status_code": midtrans_status_code})
        self.midtrans_status_code = midtrans_status_code
        self.midtrans_message = midtrans_message


class MidtransActionRejectedError(MidtransRejectedError):
    """Midtrans refused an action on a payment (a refund, capture, ... answered 400, 404, 406:
    any 4xx but its 412 "cannot modify the status", which is `InvalidStateError`): Midtrans
    answered and rejected the request's details, 400 `midtrans_rejected` as for /charge."""

    def __init__(self, operation: str, refused: MidtransRefusedError):
        messages = [refused.midtrans_message] if refused.midtrans_message else []
        GatewayError.__init__(
            self,
            refused.message,
            details={
                "midtrans_messages": messages,
                "midtrans_status_code": refused.midtrans_status_code,
            },
        )
        self.messages = messages
        self.operation = operation


class MidtransOrderTakenError(MidtransRejectedError):
    """Midtrans already has a transaction under this order id (a Core charge's 406)."""
