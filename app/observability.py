"""Request ids, Prometheus metrics and rate limits: what ops need to run the gateway.

- Every request gets an id (`X-Request-ID` accepted when sane, else made), returned in the
  response and written in every log line of that request.
- `GET /metrics` in Prometheus format, safe under several gunicorn workers (multiprocess mode
  when `PROMETHEUS_MULTIPROC_DIR` is set, as `gunicorn.conf.py` does). Not public: answered to
  loopback clients, or to `Authorization: Bearer <METRICS_TOKEN>`.
- Rate limits per client app (`RATELIMIT_PER_APP`), counted only once the app is
  authenticated, so nobody can spend another app's allowance by sending its (public) app code;
  per IP on failed API authentication (`RATELIMIT_FAILED_AUTH`), on rejected Midtrans
  notifications (`RATELIMIT_REJECTED_NOTIFICATIONS`; verified ones are never limited) and on
  the admin login (`RATELIMIT_LOGIN`); shared between hosts through `RATELIMIT_STORAGE_URI`
  (e.g. Redis). A failing storage lets everything through: a limit never stops payments.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import math
import os
import re
import threading
import time
import uuid

from flask import Blueprint, Flask, Response, abort, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from .database import reading
from .errors import GatewayError
from .extensions import db
from .logs import request_id_var
from .metrics import HTTP_LATENCY, HTTP_REQUESTS
from .services import gateway

log = logging.getLogger(__name__)

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")

# Per client address. A real app gets no 401 at all; a flood of wrong keys (or an app with
# a stale key) is told to back off. Rejected notifications are stored (4 KiB each), so their
# limit bounds how fast one address can grow the database: 60 an hour is ~240 KiB.

AUTH_FAILURES = Counter(
    "gateway_auth_failures_total",
    "Client API calls refused for a missing or wrong app code or API key, by whether the "
    "caller's address was over RATELIMIT_FAILED_AUTH (answered 429 instead of 401)",
    ["limited"],
)
RATE_LIMITED = Counter(
    "gateway_rate_limited_total",
    "Requests answered 429, by the limit they were over",
    ["limit"],
)

bp = Blueprint("ops", __name__)


class ThreadSafeMemoryStorage(MemoryStorage):
    """limits' in-memory storage, safe under gunicorn's threads, without a thread per request.

    MemoryStorage (limits 5.8) drops expired counters from a `threading.Timer` that it starts
    again (a new thread) on every count once the last one ran out, 10 ms later: nearly every
    request started a thread and waited for it to start, and two threads could start the same
    timer ("threads can only be started once", a 500 under load). Here expired counters are
    dropped in the counting thread, at most once a second (a counter past its window already
    reads as 0: dropping it only frees memory), under one lock per process held for
    microseconds.
    """

    STORAGE_SCHEME = ["gateway-memory"]
    SWEEP_EVERY = 1.0  # seconds

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._gateway_lock = threading.RLock()
        self._next_sweep = time.monotonic() + self.SWEEP_EVERY

    def _MemoryStorage__schedule_expiry(self) -> None:  # replaces the timer thread
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.SWEEP_EVERY
            self._MemoryStorage__expire_events()

    def incr(self, *args, **kwargs):
        with self._gateway_lock:
            return super().incr(*args, **kwargs)

    def decr(self, *args, **kwargs):
        with self._gateway_lock:
            return super().decr(*args, **kwargs)

    def acquire_entry(self, *args, **kwargs):
        with self._gateway_lock:
            return super().acquire_entry(*args, **kwargs)

    def acquire_sliding_window_entry(self, *args, **kwargs):
        with self._gateway_lock:
            return super().acquire_sliding_window_entry(*args, **kwargs)


def storage_uri(setting: str) -> str:
    """`memory://` means the thread-safe in-memory storage above."""
    return "gateway-memory://" if setting.startswith("memory://") else setting


# Only decorated routes are limited (the API per app, the login per IP). A sliding-window
# counter is nearly as fair as a moving window and costs one counter per window, not a log.
# If the shared storage (Redis) fails, requests are let through and the error is logged: a
# rate limit must never stop payments.
limiter = Limiter(
    key_func=get_remote_address,
    default_limits=[],
    headers_enabled=True,
    strategy="sliding-window-counter",
    swallow_errors=True,
)


class RateLimitedError(GatewayError):
    """Over a limit counted by hand (failed authentication, rejected notifications)."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


def client_app_key() -> str:
    """Rate-limit bucket of an authenticated API call: its app (never a claimed app code)."""
    return f"app:{g.client_app.code}"


@functools.lru_cache(maxsize=32)
def _items(limit: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(limit))


def count_against(limit: str, scope: str, key: str) -> int | None:
    """Count one event against `limit` (e.g. "60 per minute") for `key`: None while within
    it, else the seconds until the next is allowed. If the storage fails (Redis down), the
    event is let through and the error logged."""
    try:
        strategy = limiter.limiter
        over = [item for item in _items(limit) if not strategy.hit(item, scope, key)]
        if not over:
            return None
        resets = [strategy.get_window_stats(item, scope, key).reset_time for item in over]
    except Exception:  # noqa: BLE001 - any storage failure: let it through
        log.warning("rate limit %s not counted: its storage failed", scope, exc_info=True)
        return None
    return max(1, math.ceil(max(resets) - time.time()))


def failed_authentication() -> None:
    """An API call's app code or key was wrong: count it against the caller's address, and
    answer 429 instead of 401 once that address is over RATELIMIT_FAILED_AUTH. Only failures
    count, so the same address authenticating correctly is never held back by them (behind
    nginx with PROXY_FIX_HOPS=0 every caller has nginx's address)."""
    limit = gateway().settings.ratelimit_failed_auth
    wait = count_against(limit, "failed-auth", f"ip:{get_remote_address()}")
    AUTH_FAILURES.labels("yes" if wait else "no").inc()
    if wait:
        RATE_LIMITED.labels("failed_auth").inc()
        raise RateLimitedError(
            "too many calls with a wrong app code or API key from this address; "
            "retry after the time in Retry-After",
            retry_after=wait,
        )


def admit_rejected_notification(remote_addr: str | None) -> None:
    """A notification was rejected (forged or malformed): count it against its sender's
    address, and raise RateLimitedError (429, the rejection not stored) once that address is
    over RATELIMIT_REJECTED_NOTIFICATIONS."""
    limit = gateway().settings.ratelimit_rejected_notifications
    wait = count_against(limit, "rejected-notification", f"ip:{remote_addr or '-'}")
    if wait:
        RATE_LIMITED.labels("rejected_notification").inc()
        log.debug("notification from %s rejected, over its limit: not stored", remote_addr)
        raise RateLimitedError(
            "too many rejected notifications from this address; retry after the time in "
            "Retry-After",
            retry_after=wait,
        )


class BacklogCollector:
    """Backlogs read from the database at scrape time (the same for every worker)."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        from .models import CallbackEvent, CallbackState, Notification, Transaction

        now = time.time()
        with self.app.app_context(), reading():
            from datetime import UTC, datetime

            moment = datetime.fromtimestamp(now, UTC)
            outbox = db.session.execute(
                select(func.count()).where(CallbackEvent.state == CallbackState.PENDING)
            ).scalar_one()
            due = db.session.execute(
                select(func.count()).where(
                    Transaction.next_check_at.is_not(None), Transaction.next_check_at <= moment
                )
            ).scalar_one()
            unconfirmed = db.session.execute(
                select(func.count()).where(Notification.outcome == "unconfirmed")
            ).scalar_one()
        yield GaugeMetricFamily(
            "gateway_outbox_pending", "Callback events waiting for delivery", value=outbox
        )
        yield GaugeMetricFamily(
            "gateway_reconciliation_due", "Pending orders whose check is due", value=due
        )
        yield GaugeMetricFamily(
            "gateway_notifications_unconfirmed",
            "Notifications waiting for the status API",
            value=unconfirmed,
        )


def _allowed_to_scrape(token: str) -> bool:
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header[7:].encode(), token.encode())
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback and not token
    except ValueError:
        return False


@bp.get("/metrics")
def metrics():
    if not _allowed_to_scrape(gateway().settings.metrics_token):
        abort(404)
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    body = generate_latest(registry)
    body += generate_latest(gateway().backlog)
    # content_type, not mimetype: CONTENT_TYPE_LATEST has its charset already.
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def backlog_registry(app: Flask) -> CollectorRegistry:
    """The backlog gauges of `app`'s database, kept apart from the request metrics (built
    once, in `Gateway.build`)."""
    registry = CollectorRegistry()
    registry.register(BacklogCollector(app))
    return registry


def init_observability(app: Flask, *, storage: str) -> None:
    """Request ids, /metrics and rate limits; the limits are read from `gateway().settings`
    at each request."""
    app.config["RATELIMIT_STORAGE_URI"] = storage_uri(storage)  # Flask-Limiter reads it there

    # Registered before the limiter's, so it runs after it (Flask runs after_request hooks
    # last-registered first): the limiter's window never stands in for the gateway's own
    # Retry-After (a 409 "being created", a 503), and only answers that ask the client to
    # wait carry one (not a 201).
    @app.after_request
    def _own_retry_after(response):
        own = g.get("retry_after")
        if own is not None:
            response.headers["Retry-After"] = own
        elif response.status_code != 429:
            response.headers.pop("Retry-After", None)
        return response

    limiter.init_app(app)

    @app.before_request
    def _start():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        g.request_token = request_id_var.set(g.request_id)
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        HTTP_REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
        if "started" in g:
            HTTP_LATENCY.labels(endpoint).observe(time.perf_counter() - g.started)
        return response

    @app.teardown_request
    def _forget(_exc):
        token = g.pop("request_token", None)
        if token is not None:
            request_id_var.reset(token)

    app.register_blueprint(bp)
