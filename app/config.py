"""Settings from the environment (or `.env` in the working directory; real variables win).

The names are a public contract (SPEC.md): operators and outside checks start the gateway with
them. Everything is read and checked once, at start-up, so a bad value stops the process with a
clear message instead of failing the first payment: `wsgi.py` turns a ConfigError into one line
on stderr (the CLI, the worker, systemd's journal), and `gunicorn.conf.py` runs the same checks
before gunicorn starts a worker.

This module imports nothing else of the gateway, so `gunicorn.conf.py` can load it on its own.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import load_dotenv

SANDBOX_API = "https://api.sandbox.midtrans.com"
PRODUCTION_API = "https://api.midtrans.com"
SANDBOX_SNAP = "https://app.sandbox.midtrans.com/snap/v1"
PRODUCTION_SNAP = "https://app.midtrans.com/snap/v1"

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# A disabled app or a rotated key must not keep working for long anywhere.
MAX_AUTH_CACHE_SECONDS = 60


MAKE_SECRET_KEY = 'python3 -c "import secrets; print(secrets.token_hex(32))"'
MIN_SECRET_KEY = 32
# A random key of 32+ characters practically never holds one character 8 times in a row or
# the same 8 characters twice (about 1 in 5 million for token_hex(32)); a made-up one often does.
_LONG_RUN = re.compile(r"(.)\1{7}", re.DOTALL)


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names it (never a secret value)."""


def secret_key_weakness(key: str) -> str | None:
    """Why `key` is no random secret (None when it looks like one): too short, a tiny alphabet,
    a long run of one character or a repeated pattern."""
    if len(key) < MIN_SECRET_KEY:
        return f"it has {len(key)} characters, fewer than {MIN_SECRET_KEY}"
    if (different := len(set(key))) < 8:
        return f"it uses only {different} different character{'s' if different > 1 else ''}"
    if _LONG_RUN.search(key):
        return "it repeats one character 8 times in a row"
    pieces = [key[i : i + 8] for i in range(len(key) - 7)]
    if len(set(pieces)) < len(pieces):
        return "it repeats a pattern"
    return None


def _flag(env: dict[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{name} must be true or false")


# A call to Midtrans or a client app lasts at most this long: the worker's SIGTERM waits for
# the one in hand, and systemd's TimeoutStopSec=60 (midtrans-gateway-worker.service) must
# outlast it with room to spare.
MAX_CALL_SECONDS = 50.0


def _number(
    env: dict[str, str], name: str, default: float, *, maximum: float = MAX_CALL_SECONDS
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be greater than 0")
    if value > maximum:
        raise ConfigError(
            f"{name} must be at most {maximum:g} seconds (the worker's stop waits for a call "
            "in hand, within systemd's TimeoutStopSec=60)"
        )
    return value


def _auth_cache_seconds(env: dict[str, str]) -> float:
    """AUTH_CACHE_SECONDS: how long a process trusts an API key it checked (0: never). A
    disabled app or a rotated key is refused by every process at most this much later."""
    raw = env.get("AUTH_CACHE_SECONDS", "").strip()
    if not raw:
        return 5.0
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError("AUTH_CACHE_SECONDS must be a number of seconds") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_AUTH_CACHE_SECONDS:
        raise ConfigError(f"AUTH_CACHE_SECONDS must be 0 to {MAX_AUTH_CACHE_SECONDS} seconds")
    return value


def _database_url(env: dict[str, str], instance_path: str) -> str:
    """DATABASE_URL in the form SQLAlchemy needs, checked now (the driver too) rather than at
    the first query. The message never shows the URL: it may hold a password."""
    database_url = env.get("DATABASE_URL", "").strip()
    if not database_url:
        return f"sqlite:///{Path(instance_path).resolve() / 'gateway.db'}"
    if database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgres://") :]
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    example = (
        "postgresql://USER:PASSWORD@127.0.0.1:5432/gateway "
        "or sqlite:////opt/midtrans_flask/instance/gateway.db"
    )
    try:
        url = make_url(database_url)
    except (ArgumentError, ValueError):
        raise ConfigError(f"DATABASE_URL is not a database URL: use e.g. {example}") from None
    if url.get_backend_name() not in {"postgresql", "sqlite"}:
        raise ConfigError(f"DATABASE_URL must be a PostgreSQL or SQLite URL, e.g. {example}")
    try:
        url.get_dialect().import_dbapi()
    except ImportError as err:
        raise ConfigError(
            f"DATABASE_URL needs the Python driver {err.name or url.drivername!r}, which is not "
            "installed: use postgresql://... (psycopg, in requirements.txt) or sqlite:///..."
        ) from None
    except Exception:  # noqa: BLE001 - an unknown driver name
        raise ConfigError(f"DATABASE_URL names an unknown driver: use e.g. {example}") from None
    return database_url


def check_log_file(path: str) -> str:
    """The file LOG_FILE names, with symlinks resolved (so that /opt/midtrans_flask/app.log ->
    logs/app.log rotates inside logs/), once it can be appended to and its folder written (a
    rotation renames files there). Opening it creates it, as logging would."""
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    hint = (
        "under the systemd units the gateway may write only in instance/ and logs/, "
        "e.g. LOG_FILE=/opt/midtrans_flask/logs/app.log"
    )
    if not os.path.isdir(folder):
        raise ConfigError(
            f"LOG_FILE {path}: the folder {folder} does not exist (make it, writable by the "
            "user the gateway runs as)"
        )
    try:
        with open(target, "a"):
            pass
    except OSError as err:
        raise ConfigError(f"LOG_FILE {path} cannot be written ({err.strerror}): {hint}") from None
    if not os.access(folder, os.W_OK):
        raise ConfigError(
            f"LOG_FILE {path} is in a folder the gateway cannot write (rotating the log renames "
            f"files there): {hint}"
        )
    return target


def _log_level(env: dict[str, str]) -> str:
    level = (env.get("LOG_LEVEL", "INFO").strip() or "INFO").upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
    return level


def _hops(env: dict[str, str]) -> int:
    raw = env.get("PROXY_FIX_HOPS", "").strip() or "0"
    if not raw.isdigit() or int(raw) > 5:
        raise ConfigError("PROXY_FIX_HOPS must be a whole number from 0 to 5")
    return int(raw)


def _rate(env: dict[str, str], name: str, default: str) -> str:
    from limits import parse_many

    raw = env.get(name, "").strip() or default
    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(f"{name} must look like '600 per minute' or '10/second'") from None
    return raw


MAKE_ALERT_SECRET = (
    'python3 -c "import base64, secrets; '
    "print('whsec_' + base64.b64encode(secrets.token_bytes(32)).decode())\""
)


def _allowed_host_names(allowed_hosts: str) -> set[str]:
    """The host names (not addresses or networks) CALLBACK_ALLOWED_HOSTS lets through, which,
    as for callback URLs, may also be reached over plain http in production."""
    names = set()
    for item in (part.strip() for part in allowed_hosts.split(",")):
        if not item:
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            names.add(item.lower().strip("[]"))
    return names


def _alert_webhook_url(env: dict[str, str], *, is_production: bool) -> str:
    """ALERT_WEBHOOK_URL checked like a callback URL when it is set (the address itself is
    checked by the callbacks' HTTP client on every connection: CALLBACK_ALLOWED_HOSTS)."""
    url = env.get("ALERT_WEBHOOK_URL", "").strip()
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise ConfigError("ALERT_WEBHOOK_URL is not a URL") from None
    if parts.scheme not in {"http", "https"} or not host:
        raise ConfigError("ALERT_WEBHOOK_URL must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise ConfigError("ALERT_WEBHOOK_URL must not contain credentials")
    if len(url) > 2000:
        raise ConfigError("ALERT_WEBHOOK_URL is too long (2000 characters at most)")
    allowed = _allowed_host_names(env.get("CALLBACK_ALLOWED_HOSTS", ""))
    if is_production and parts.scheme != "https" and host.lower() not in allowed:
        raise ConfigError("ALERT_WEBHOOK_URL must use https when MIDTRANS_IS_PRODUCTION=true")
    return url


def _alert_signing_secret(env: dict[str, str], *, url: str) -> str:
    secret = env.get("ALERT_SIGNING_SECRET", "").strip()
    if not secret:
        return ""
    if not url:
        raise ConfigError("ALERT_SIGNING_SECRET is set but ALERT_WEBHOOK_URL is not")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not secret.startswith("whsec_") or len(key) < 24:
        raise ConfigError(
            "ALERT_SIGNING_SECRET must be whsec_ followed by at least 24 base64-encoded random "
            f"bytes: make one with {MAKE_ALERT_SECRET}"
        )
    return secret


@dataclass(frozen=True)
class MidtransSettings:
    server_key: str = field(repr=False)
    client_key: str = ""
    merchant_id: str = ""
    is_production: bool = False
    api_base_url: str = SANDBOX_API
    snap_base_url: str = SANDBOX_SNAP
    timeout: float = 10.0
    notification_url: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.server_key)


@dataclass(frozen=True)
class Settings:
    secret_key: str = field(repr=False)
    database_url: str
    midtrans: MidtransSettings
    log_level: str = "INFO"
    log_file: str = ""
    log_format: str = "text"
    callback_allowed_hosts: str = ""
    callback_timeout: float = 15.0
    proxy_hops: int = 0
    metrics_token: str = field(default="", repr=False)
    ratelimit_per_app: str = "600 per minute"
    ratelimit_login: str = "10 per minute"
    ratelimit_failed_auth: str = "60 per minute"
    ratelimit_rejected_notifications: str = "60 per hour"
    ratelimit_storage_uri: str = "memory://"
    auth_cache_seconds: float = 5.0
    secret_key_is_ephemeral: bool = False
    alert_webhook_url: str = field(default="", repr=False)
    alert_signing_secret: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, *, instance_path: str = "instance"):
        """Read settings; with `env` None, from os.environ after loading `.env` (env wins)."""
        if env is None:
            load_dotenv(Path.cwd() / ".env", override=False)
            env = dict(os.environ)
        is_production = _flag(env, "MIDTRANS_IS_PRODUCTION")

        secret_key = env.get("SECRET_KEY", "").strip()
        ephemeral = False
        if not secret_key:
            if is_production:
                raise ConfigError(
                    "SECRET_KEY is required when MIDTRANS_IS_PRODUCTION=true: "
                    f"make one with {MAKE_SECRET_KEY}"
                )
            # Outside production a per-process random key is safe (never guessable); it only
            # means admin sessions do not survive a restart or span several workers.
            secret_key, ephemeral = secrets.token_hex(32), True
        elif is_production and (weakness := secret_key_weakness(secret_key)):
            raise ConfigError(
                f"SECRET_KEY is not a strong random key ({weakness}), which production needs: "
                f"make one with {MAKE_SECRET_KEY}"
            )

        database_url = _database_url(env, instance_path)

        midtrans = MidtransSettings(
            server_key=env.get("MIDTRANS_SERVER_KEY", "").strip(),
            client_key=env.get("MIDTRANS_CLIENT_KEY", "").strip(),
            merchant_id=env.get("MIDTRANS_MERCHANT_ID", "").strip(),
            is_production=is_production,
            api_base_url=(
                env.get("MIDTRANS_API_BASE_URL", "").strip()
                or (PRODUCTION_API if is_production else SANDBOX_API)
            ).rstrip("/"),
            snap_base_url=(
                env.get("MIDTRANS_SNAP_BASE_URL", "").strip()
                or (PRODUCTION_SNAP if is_production else SANDBOX_SNAP)
            ).rstrip("/"),
            timeout=_number(env, "MIDTRANS_TIMEOUT", 10.0),
            notification_url=env.get("MIDTRANS_NOTIFICATION_URL", "").strip(),
        )
        if is_production and midtrans.server_key.startswith("SB-"):
            raise ConfigError(
                "MIDTRANS_IS_PRODUCTION=true but MIDTRANS_SERVER_KEY is a sandbox key (SB-...)"
            )

        alert_webhook_url = _alert_webhook_url(env, is_production=is_production)
        alert_signing_secret = _alert_signing_secret(env, url=alert_webhook_url)

        log_format = env.get("LOG_FORMAT", "text").strip().lower() or "text"
        if log_format not in {"text", "json"}:
            raise ConfigError("LOG_FORMAT must be text or json")
        return cls(
            secret_key=secret_key,
            database_url=database_url,
            midtrans=midtrans,
            log_level=_log_level(env),
            log_file=env.get("LOG_FILE", "").strip(),
            log_format=log_format,
            callback_allowed_hosts=env.get("CALLBACK_ALLOWED_HOSTS", "").strip(),
            callback_timeout=_number(env, "CALLBACK_TIMEOUT", 15.0),
            proxy_hops=_hops(env),
            metrics_token=env.get("METRICS_TOKEN", "").strip(),
            ratelimit_per_app=_rate(env, "RATELIMIT_PER_APP", "600 per minute"),
            ratelimit_login=_rate(env, "RATELIMIT_LOGIN", "10 per minute"),
            ratelimit_failed_auth=_rate(env, "RATELIMIT_FAILED_AUTH", "60 per minute"),
            ratelimit_rejected_notifications=_rate(
                env, "RATELIMIT_REJECTED_NOTIFICATIONS", "60 per hour"
            ),
            ratelimit_storage_uri=env.get("RATELIMIT_STORAGE_URI", "").strip() or "memory://",
            auth_cache_seconds=_auth_cache_seconds(env),
            secret_key_is_ephemeral=ephemeral,
            alert_webhook_url=alert_webhook_url,
            alert_signing_secret=alert_signing_secret,
        )


def check_start_up() -> Settings:
    """Every check the gateway makes when it starts (settings from the environment and `.env`,
    LOG_FILE writable), for `gunicorn.conf.py` to run before any worker starts."""
    settings = Settings.from_env()
    if settings.log_file:
        check_log_file(settings.log_file)
    return settings
