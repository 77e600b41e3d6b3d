"""What every Snap and Core API request goes through before its view: it is recorded, delayed
by `latency_ms`, hit by the configured fault, then authenticated with the server key."""

import dataclasses
import threading
import time
from collections import deque

from flask import Request, current_app, request

from .bodies import INTERNAL_ERROR, UNAUTHORIZED_SNAP, UNAVAILABLE, core_error
from .cards import Vault
from .notifier import Notifier
from .settings import Settings
from .signing import is_server_key
from .store import Store
from .transactions import now

LOG_SIZE = 10_000
PUBLIC_ENDPOINTS = ("core.card_token",)
MAX_NOTIFICATION_URLS = 3
NON_JSON_PAGE = (
    "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
)


class RequestLog:
    """The last LOG_SIZE API requests, without their Authorization header."""

    def __init__(self):
        self._entries: deque[dict] = deque(maxlen=LOG_SIZE)
        self._lock = threading.Lock()

    def record(self, incoming: Request) -> None:
        headers = {k: v for k, v in incoming.headers.items() if k.lower() != "authorization"}
        entry = {
            "method": incoming.method,
            "path": incoming.full_path.rstrip("?"),
            "headers": headers,
            "json": incoming.get_json(silent=True),
            "time": now().isoformat(timespec="milliseconds"),
        }
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclasses.dataclass
class Simulator:
    settings: Settings
    notifier: Notifier
    store: Store
    requests: RequestLog
    vault: Vault = dataclasses.field(default_factory=Vault)


def simulator() -> Simulator:
    return current_app.extensions["simulator"]


def guard(scope: str):
    """before_request of the Snap and Core API blueprints; `scope` is "snap" or "core"."""
    sim = simulator()
    sim.requests.record(request)
    settings = sim.settings
    if settings.latency_ms:
        time.sleep(settings.latency_ms / 1000)
    fault = settings.take_fault(scope)
    if fault == "hang":
        time.sleep(settings.hang_seconds)  # then answer normally: the outcome a client never saw
    elif fault == "non_json":
        return NON_JSON_PAGE, 502, {"Content-Type": "text/html"}
    elif fault in (500, 503):
        message = INTERNAL_ERROR if fault == 500 else UNAVAILABLE
        if scope == "snap":
            return {"error_messages": [message]}, fault
        return core_error(str(fault), message), fault
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None  # called from the payer's browser with the client key, checked in the view
    if not is_server_key(request.headers.get("Authorization"), settings.server_key):
        if scope == "snap":
            return UNAUTHORIZED_SNAP, 401
        return core_error("401", "Unknown Merchant server_key/id"), 401
    return None


def notification_urls(default: str | None) -> list[str]:
    """Where this transaction's notifications go: `X-Override-Notification` replaces the default
    URL, `X-Append-Notification` adds to it; each takes up to 3 comma-separated URLs."""
    override = _urls(request.headers.get("X-Override-Notification"))
    if override:
        return override
    return ([default] if default else []) + _urls(request.headers.get("X-Append-Notification"))


def _urls(header: str | None) -> list[str]:
    urls = [url.strip() for url in (header or "").split(",") if url.strip()]
    return urls[:MAX_NOTIFICATION_URLS]
