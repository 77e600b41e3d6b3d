"""Request ids, Prometheus metrics and rate limits: what ops need to run the gateway.

- Every request gets an id (`X-Request-ID` accepted when sane, else made), returned in the
  response and written in every log line of that request.
- `GET /metrics` in Prometheus format, safe under several gunicorn workers (multiprocess mode
  when `PROMETHEUS_MULTIPROC_DIR` is set, as `gunicorn.conf.py` does). Not public: answered to
  loopback clients, or to `Authorization: Bearer <METRICS_TOKEN>`.
- Rate limits per client app (`RATELIMIT_PER_APP`) and per IP on the admin login
  (`RATELIMIT_LOGIN`), shared between hosts through `RATELIMIT_STORAGE_URI` (e.g. Redis).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import threading
import time
import uuid

from flask import Blueprint, Flask, Response, abort, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits.storage import MemoryStorage
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from .extensions import db
from .logs import request_id_var
from .metrics import HTTP_LATENCY, HTTP_REQUESTS

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")

bp = Blueprint("ops", __name__)


class ThreadSafeMemoryStorage(MemoryStorage):
    """limits' in-memory storage, safe under gunicorn's threads.

    MemoryStorage (limits 5.8) restarts its expiry timer without a lock, so two threads may
    start the same timer ("threads can only be started once", a 500 under load). Counting
    under one lock per process costs microseconds.
    """

    STORAGE_SCHEME = ["gateway-memory"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._gateway_lock = threading.RLock()

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


def client_app_key() -> str:
    """Rate-limit bucket of an API call: the app it claims to be, else the caller's address."""
    code = request.headers.get("X-App-Code", "")
    return f"app:{code[:64]}" if code else f"ip:{get_remote_address()}"


class BacklogCollector:
    """Backlogs read from the database at scrape time (the same for every worker)."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        from .models import CallbackEvent, CallbackState, Notification, Transaction

        now = time.time()
        with self.app.app_context():
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
            db.session.commit()
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
    from flask import current_app

    if not _allowed_to_scrape(current_app.config.get("METRICS_TOKEN", "")):
        abort(404)
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    body = generate_latest(registry)
    body += generate_latest(current_app.extensions["backlog_registry"])
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def init_observability(app: Flask, *, metrics_token: str, per_app: str, login: str, storage: str):
    app.config["METRICS_TOKEN"] = metrics_token
    backlog = CollectorRegistry()
    backlog.register(BacklogCollector(app))
    app.extensions["backlog_registry"] = backlog
    app.config["RATELIMIT_STORAGE_URI"] = storage_uri(storage)
    app.config["RATELIMIT_PER_APP"] = per_app
    app.config["RATELIMIT_LOGIN"] = login

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
