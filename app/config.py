"""Settings from the environment (or `.env` in the working directory; real variables win).

The names are a public contract (SPEC.md): operators and outside checks start the gateway with
them. Everything is read and checked once, at start-up, so a bad value stops the process with a
clear message instead of failing the first payment.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import load_dotenv

SANDBOX_API = "https://api.sandbox.midtrans.com"
PRODUCTION_API = "https://api.midtrans.com"
SANDBOX_SNAP = "https://app.sandbox.midtrans.com/snap/v1"
PRODUCTION_SNAP = "https://app.midtrans.com/snap/v1"

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names it (never its value)."""


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


def _number(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds") from None
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0")
    return value


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
    ratelimit_storage_uri: str = "memory://"
    secret_key_is_ephemeral: bool = False

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
                    "SECRET_KEY is required when MIDTRANS_IS_PRODUCTION=true "
                    "(generate one with: python -c 'import secrets; print(secrets.token_hex(32))')"
                )
            # Outside production a per-process random key is safe (never guessable); it only
            # means admin sessions do not survive a restart or span several workers.
            secret_key, ephemeral = secrets.token_hex(32), True
        elif is_production and (len(secret_key) < 16 or secret_key == "change-me"):
            raise ConfigError("SECRET_KEY is too weak for production: use 32 random bytes")

        database_url = env.get("DATABASE_URL", "").strip()
        if not database_url:
            database_url = f"sqlite:///{Path(instance_path).resolve() / 'gateway.db'}"
        elif database_url.startswith("postgres://"):
            database_url = "postgresql+psycopg://" + database_url[len("postgres://") :]
        elif database_url.startswith("postgresql://"):
            database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]

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

        log_format = env.get("LOG_FORMAT", "text").strip().lower() or "text"
        if log_format not in {"text", "json"}:
            raise ConfigError("LOG_FORMAT must be text or json")
        return cls(
            secret_key=secret_key,
            database_url=database_url,
            midtrans=midtrans,
            log_level=(env.get("LOG_LEVEL", "INFO").strip() or "INFO").upper(),
            log_file=env.get("LOG_FILE", "").strip(),
            log_format=log_format,
            callback_allowed_hosts=env.get("CALLBACK_ALLOWED_HOSTS", "").strip(),
            callback_timeout=_number(env, "CALLBACK_TIMEOUT", 15.0),
            proxy_hops=_hops(env),
            metrics_token=env.get("METRICS_TOKEN", "").strip(),
            ratelimit_per_app=_rate(env, "RATELIMIT_PER_APP", "600 per minute"),
            ratelimit_login=_rate(env, "RATELIMIT_LOGIN", "10 per minute"),
            ratelimit_storage_uri=env.get("RATELIMIT_STORAGE_URI", "").strip() or "memory://",
            secret_key_is_ephemeral=ephemeral,
        )
