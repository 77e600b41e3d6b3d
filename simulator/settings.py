"""Runtime switches of the simulator: set at start-up, changed by `POST /_sim/config`."""

import dataclasses
import threading

from .fees import parse_rule

FAULTS = (None, 500, 503, "non_json", "hang")
FAULT_SCOPES = ("snap", "core", "all")
DEFAULT_SERVER_KEY = "SB-Mid-server-simulator"
DEFAULT_CLIENT_KEY = "SB-Mid-client-simulator"


@dataclasses.dataclass
class Settings:
    """Every field but the keys and the merchant id can be changed at run time; `reset()`
    restores start-up values.

    `fault_count` None means the fault hits every request until it is switched off; a number
    means only the next N requests in `fault_scope`, after which `fault` goes back to None.
    `fee_imposition` is a fee rule (fees.py) for payments whose method is chosen from now on.
    `core_errors_as_http` (on by default, as Midtrans answers) gives every Core API error its
    status_code as the HTTP status too; off is Midtrans's legacy style, HTTP 200 with the code in
    the body (401 excepted), where `status_404_as_http` still makes "Transaction doesn't exist."
    a real HTTP 404. `refund_any_method` lets bank transfers, Mandiri
    bill etc. be refunded, which Midtrans's API refuses.
    """

    server_key: str = DEFAULT_SERVER_KEY
    client_key: str = DEFAULT_CLIENT_KEY
    merchant_id: str = "G000000000"
    notification_url: str | None = None
    latency_ms: int = 0
    time_factor: float = 1.0
    fault: int | str | None = None
    fault_scope: str = "all"
    fault_count: int | None = None
    hang_seconds: float = 30.0
    status_404_as_http: bool = False
    core_errors_as_http: bool = True
    refund_any_method: bool = False
    duplicate: bool = False
    reorder: bool = False
    fee_imposition: dict | None = None

    def __post_init__(self):
        self._lock = threading.Lock()
        self._initial = dataclasses.asdict(self)

    def as_dict(self) -> dict:
        with self._lock:
            values = dataclasses.asdict(self)
        del values["server_key"]
        return values

    def update(self, changes: dict) -> None:
        """Apply all changes or none; ValueError names the first field that is wrong."""
        checked = {name: _check(name, value) for name, value in changes.items()}
        with self._lock:
            for name, value in checked.items():
                setattr(self, name, value)

    def reset(self) -> None:
        with self._lock:
            for name, value in self._initial.items():
                setattr(self, name, value)

    def take_fault(self, scope: str) -> int | str | None:
        """The fault to inject into this request of `scope` ("snap" or "core"), counting it down."""
        with self._lock:
            if self.fault is None or self.fault_scope not in ("all", scope):
                return None
            fault = self.fault
            if self.fault_count is not None:
                self.fault_count -= 1
                if self.fault_count <= 0:
                    self.fault, self.fault_count = None, None
            return fault


def _check(name: str, value):
    if name == "fee_imposition":
        return parse_rule(value)
    if name == "fault":
        if value not in FAULTS or isinstance(value, bool):
            raise ValueError(f"fault must be one of {FAULTS}")
    elif name == "fault_scope":
        if value not in FAULT_SCOPES:
            raise ValueError(f"fault_scope must be one of {FAULT_SCOPES}")
    elif name == "latency_ms":
        if not _is_whole(value, minimum=0):
            raise ValueError("latency_ms must be a whole number >= 0")
    elif name == "fault_count":
        if value is not None and not _is_whole(value, minimum=1):
            raise ValueError("fault_count must be a whole number >= 1, or null for always")
    elif name in ("time_factor", "hang_seconds"):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{name} must be a number >= 0")
    elif name in (
        "status_404_as_http",
        "core_errors_as_http",
        "refund_any_method",
        "duplicate",
        "reorder",
    ):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
    elif name == "notification_url":
        if value is not None and not (isinstance(value, str) and value.startswith("http")):
            raise ValueError("notification_url must be an http(s) URL or null")
    else:
        raise ValueError(f"{name} cannot be set")
    return value


def _is_whole(value, *, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum
