"""Client-app API keys and admin passwords.

API keys are 128+ random bits from `secrets`, so one SHA-256 is enough to store them (a slow
hash protects guessable secrets; these are not guessable). They are shown once and never logged.
Admin passwords are guessable, so they get argon2id at parameters above the OWASP ASVS minimum.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import itertools
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import g, request
from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from .database import reading, writing
from .errors import AuthenticationError
from .extensions import db
from .models import App
from .observability import failed_authentication
from .services import gateway

API_KEY_BYTES = 20  # 160 bits, 40 hex characters
MIN_IMPORTED_KEY_LENGTH = 32
LAST_USED_RESOLUTION = timedelta(minutes=1)
_FORGET = "gateway_forget_apps"  # session.info: caches to empty once the unit commits
log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class ClientApp:
    """What a request needs of the app that made it: no secret, no ORM object (it is shared
    by the requests of one process, each with a session of its own)."""

    id: int
    code: str
    order_prefix: str
    allow_refunds: bool
    can_sign: bool  # has a signing secret, so an order may name its own callback_url

    @classmethod
    def of(cls, client_app: App) -> ClientApp:
        return cls(
            id=client_app.id,
            code=client_app.code,
            order_prefix=client_app.order_prefix,
            allow_refunds=client_app.allow_refunds,
            can_sign=bool(client_app.signing_secret),
        )


class _HostEpoch:
    """A 16-byte file on this host that changes whenever an app's key, state or rights change
    (`forget_apps`), so every process on the host drops what it cached at its next request:
    the command line and the dashboard in another worker act at once here. Without the file
    (no writable instance folder) only the time bound applies, as it does across hosts."""

    RETRY_OPEN = 1.0  # seconds between tries to open a file that could not be opened

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._retry_at = 0.0

    def _open(self) -> int | None:
        fd = self._fd
        if fd is not None and os.fstat(fd).st_nlink:
            return fd
        if fd is None and time.monotonic() < self._retry_at:
            return None
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                self._fd, self._retry_at = None, time.monotonic() + self.RETRY_OPEN
            if fd is not None:
                os.close(fd)  # the file was removed: follow the new one
            return self._fd

    def read(self) -> bytes:
        try:
            fd = self._open()
            return os.pread(fd, 16, 0) if fd is not None else b""
        except OSError:  # e.g. another thread just followed a new file: no match, a re-read
            return b""

    def bump(self) -> None:
        try:
            fd = self._open()
            if fd is not None:
                os.pwrite(fd, secrets.token_bytes(16), 0)
                return
        except OSError:
            pass
        log.warning("could not update %s: other processes wait out the bound", self.path)


class AuthCache:
    """Authenticated apps by (app code, SHA-256 of the presented key), trusted for `seconds`.

    The bound: an entry never outlives `seconds` counted from *before* the database read it
    came from, so a change committed in any process on any host is seen at most `seconds`
    later. In this process (and on this host, through `_HostEpoch`) it is seen at once: a
    change empties the cache, and a read that began before it is never stored."""

    MAX_ENTRIES = 10_000

    def __init__(self, seconds: float, epoch_path: Path | None = None, *, clock=time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self._entries: dict[tuple[str, str], tuple[ClientApp, float, int, bytes]] = {}
        self._generations = itertools.count(1)
        self._generation = 0
        self._epoch = _HostEpoch(epoch_path) if epoch_path is not None and seconds > 0 else None
        self.last_used: dict[int, datetime | None] = {}  # app id -> when this process last saw

    def _host_epoch(self) -> bytes:
        return self._epoch.read() if self._epoch is not None else b""

    def get(self, code: str, key_hash: str) -> ClientApp | None:
        entry = self._entries.get((code, key_hash))
        if entry is None:
            return None
        client_app, read_at, generation, epoch = entry
        if (
            generation != self._generation
            or self.clock() - read_at >= self.seconds
            or epoch != self._host_epoch()
        ):
            self._entries.pop((code, key_hash), None)
            return None
        return client_app

    def begin(self) -> tuple[float, int, bytes]:
        """Taken before the database read whose result may be stored."""
        return self.clock(), self._generation, self._host_epoch()

    def put(self, code: str, key_hash: str, client_app: ClientApp, begun) -> None:
        read_at, generation, epoch = begun
        if self.seconds <= 0 or generation != self._generation:
            return  # something changed while it was read: not trusted beyond this request
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[(code, key_hash)] = (client_app, read_at, generation, epoch)

    def clear(self, *, host: bool = False) -> None:
        self._generation = next(self._generations)
        self._entries.clear()
        if host and self._epoch is not None:
            self._epoch.bump()


def forget_apps() -> None:
    """An app's key, state or rights change in the current unit of work: this process forgets
    every app it authenticated, now and again once the unit commits (a request that read the
    old row meanwhile is not kept), and so does every other process on this host."""
    cache = gateway().auth_cache
    cache.clear()
    db.session().info.setdefault(_FORGET, set()).add(cache)


@event.listens_for(Session, "after_commit")
def _forget_after_commit(session: Session) -> None:
    for cache in session.info.pop(_FORGET, ()):
        cache.clear(host=True)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    for cache in session.info.pop(_FORGET, ()):
        cache.clear()


def authenticate_app(code: str | None, key: str | None) -> ClientApp:
    """The active client app these headers belong to; every failure is the same
    AuthenticationError. A success is remembered for AUTH_CACHE_SECONDS (see AuthCache)."""
    presented = hash_api_key(key or "")
    cache = gateway().auth_cache
    if code and key:
        cached = cache.get(code, presented)
        if cached is not None:
            _touch(cached, cache)
            return cached
    begun = cache.begin()
    client_app = None
    # A code with a control character is no app's (PostgreSQL would refuse a NUL anyway).
    if code and len(code) <= 64 and code.isprintable():
        with reading():
            client_app = db.session.execute(
                select(App).where(App.code == code)
            ).scalar_one_or_none()
    stored = client_app.key_hash if client_app is not None else _DUMMY_HASH
    if (
        not hmac.compare_digest(stored, presented)
        or client_app is None
        or not key
        or not client_app.active
    ):
        raise AuthenticationError()
    found = ClientApp.of(client_app)
    cache.last_used.setdefault(found.id, client_app.last_used_at)
    cache.put(code, presented, found, begun)
    _touch(found, cache)
    return found


def _touch(client_app: ClientApp, cache: AuthCache) -> None:
    """Record use at most once a minute, in one conditional statement (no lock upgrade)."""
    now = datetime.now(UTC)
    last = cache.last_used.get(client_app.id)
    if last is not None and now - last < LAST_USED_RESOLUTION:
        return
    cache.last_used[client_app.id] = now
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
