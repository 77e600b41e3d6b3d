"""Client-app API keys and admin passwords.

API keys are 128+ random bits from `secrets`, so one SHA-256 is enough to store them (a slow
hash protects guessable secrets; these are not guessable). They are shown once and never logged.
Admin passwords are guessable, so they get argon2id at parameters above the OWASP ASVS minimum.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import g, request
from sqlalchemy import or_, select, update

from .database import reading, writing
from .errors import AuthenticationError
from .extensions import db
from .models import App
from .observability import failed_authentication

API_KEY_BYTES = 20  # 160 bits, 40 hex characters
MIN_IMPORTED_KEY_LENGTH = 32
LAST_USED_RESOLUTION = timedelta(minutes=1)

# argon2id, 64 MiB, 3 passes, 4 lanes: above OWASP's minimum (19 MiB, 2 passes, 1 lane).
password_hasher = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4)

# Compared against when the app code is unknown, so that case costs the same as a wrong key.
_DUMMY_HASH = hashlib.sha256(b"no such app").hexdigest()


def generate_api_key() -> str:
    return secrets.token_hex(API_KEY_BYTES)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_hint(key: str) -> str:
    """The first characters of a key, enough for an admin to tell two keys apart."""
    return key[:4] + "…"


def check_imported_key(key: str) -> None:
    """An imported key (from an older gateway) must still be hard to guess."""
    if len(key) < MIN_IMPORTED_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise ValueError(
            f"an API key must be at least {MIN_IMPORTED_KEY_LENGTH} printable ASCII characters"
        )


def authenticate_app(code: str | None, key: str | None) -> App:
    """The active client app these headers belong to; every failure is the same
    AuthenticationError."""
    client_app = None
    # A code with a control character is no app's (PostgreSQL would refuse a NUL anyway).
    if code and len(code) <= 64 and code.isprintable():
        with reading():
            client_app = db.session.execute(
                select(App).where(App.code == code)
            ).scalar_one_or_none()
    stored = client_app.key_hash if client_app is not None else _DUMMY_HASH
    presented = hash_api_key(key or "")
    if (
        not hmac.compare_digest(stored, presented)
        or client_app is None
        or not key
        or not client_app.active
    ):
        raise AuthenticationError()
    _touch(client_app)
    return client_app


def _touch(client_app: App) -> None:
    """Record use at most once a minute, in one conditional statement (no lock upgrade)."""
    now = datetime.now(UTC)
    if client_app.last_used_at is not None and now - client_app.last_used_at < LAST_USED_RESOLUTION:
        return
    with writing():
        db.session.execute(
            update(App)
            .where(App.id == client_app.id)
            .where(or_(App.last_used_at.is_(None), App.last_used_at < now - LAST_USED_RESOLUTION))
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )


def require_app(view):
    """Authenticate the caller from `X-App-Code` and `X-Api-Key`; the app is `g.client_app`.

    A failure is counted against the caller's address (429 once over RATELIMIT_FAILED_AUTH),
    never against the app it named: app codes are not secret."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            g.client_app = authenticate_app(
                request.headers.get("X-App-Code"), request.headers.get("X-Api-Key")
            )
        except AuthenticationError:
            failed_authentication()
            raise
        return view(*args, **kwargs)

    return wrapper


def hash_password(password: str) -> str:
    return password_hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return password_hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
