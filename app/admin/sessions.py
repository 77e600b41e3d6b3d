"""Admin logins: server-side session records, timeouts, and throttled password checks.

The signed Flask cookie holds only a random session id. The record behind it is created at
login (a new id every time, so a planted cookie is useless), checked on every request against
an idle and an absolute timeout, and deleted at logout, so a copied old cookie is refused.

An admin with MFA gets, after the right password, a *pending* session: it opens no page but
the second step, ends after `PENDING_TIMEOUT`, and is replaced by a new session (a new id)
once the code is right.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import session
from sqlalchemy import delete, select, update

from .. import admin_mfa
from ..auth import hash_password, verify_password
from ..database import reading, writing
from ..extensions import db
from ..models import Admin, utcnow
from . import throttle
from .models import AdminSession

IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
PENDING_TIMEOUT = timedelta(minutes=5)  # password right, second step still to come
TOUCH_EVERY = timedelta(seconds=60)  # last_seen_at is written at most this often
SESSION_KEY = "admin_sid"


@functools.cache
def _dummy_password_hash() -> str:
    """Verified against when the username is unknown, so that case costs the same time."""
    return hash_password(secrets.token_hex(16))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def normalize_username(username: str) -> str:
    """A typed username as it is looked up and throttled: trimmed, at most 80 characters, and
    nothing the database cannot compare (a NUL, a lone surrogate) left in it."""
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in username.strip()[:80])


@dataclass(frozen=True)
class LoginResult:
    admin: Admin | None
    wait: timedelta | None = None  # refused unchecked: this address must wait this long
    wait_if_wrong: timedelta | None = None  # wrong, and the next try must wait this long
    how: str | None = None  # a second-step code: "totp" or "recovery"

    @property
    def ok(self) -> bool:
        return self.admin is not None


def check_credentials(username: str, password: str, *, remote_addr: str | None) -> LoginResult:
    """The admin these credentials belong to, unless they are wrong or the address must wait
    (`app.admin.throttle`).

    Every username, existing or not, is throttled the same way, and a waiting address is
    refused before any password is checked, so neither the answer nor its timing says whether
    the account exists or whether the password was right.
    """
    username = normalize_username(username)
    attempt = throttle.begin_attempt(username, remote_addr)
    if attempt.refused:
        return LoginResult(None, wait=attempt.wait)
    with reading():  # ended before the slow hash
        admin = db.session.execute(
            select(Admin).where(Admin.username == username)
        ).scalar_one_or_none()
    valid = verify_password(admin.password_hash if admin else _dummy_password_hash(), password)
    if valid and admin is not None:
        throttle.password_was_right(username, remote_addr)
        return LoginResult(admin)
    return LoginResult(None, wait_if_wrong=attempt.wait_if_wrong)


def check_current_password(admin: Admin, password: str, *, remote_addr: str | None) -> LoginResult:
    """The account page's "current password", throttled like a login: a stolen session must
    not be a way to guess the password that would take the account over."""
    attempt = throttle.begin_attempt(admin.username, remote_addr)
    if attempt.refused:
        return LoginResult(None, wait=attempt.wait)
    if verify_password(admin.password_hash, password):
        throttle.password_was_right(admin.username, remote_addr)
        return LoginResult(admin)
    return LoginResult(None, wait_if_wrong=attempt.wait_if_wrong)


def check_code(
    admin: Admin, code: str, *, remote_addr: str | None, recovery: bool = True
) -> LoginResult:
    """A second-step code (TOTP, or with `recovery` also a recovery code) of `admin`, throttled
    like a password (`app.admin.throttle.begin_code_attempt`); a right one is used up."""
    attempt = throttle.begin_code_attempt(admin.username, remote_addr)
    if attempt.refused:
        return LoginResult(None, wait=attempt.wait)
    if recovery:
        how = admin_mfa.check_second_factor(admin.id, code)
    else:
        how = "totp" if admin_mfa.verify_totp(admin.id, code) else None
    if how is not None:
        throttle.code_was_right(admin.username, remote_addr)
        return LoginResult(admin, how=how)
    return LoginResult(None, wait_if_wrong=attempt.wait_if_wrong)


def start_session(
    admin: Admin, *, ip: str | None, user_agent: str | None, mfa_pending: bool = False
) -> None:
    """Log `admin` in with a brand-new session id (whatever the browser had is dropped); with
    `mfa_pending`, only as far as the second step."""
    token = secrets.token_urlsafe(32)
    with writing():
        end_session()
        db.session.add(
            AdminSession(
                token_hash=_token_hash(token),
                admin_id=admin.id,
                ip=ip,
                user_agent=(user_agent or "")[:255] or None,
                mfa_pending=mfa_pending,
            )
        )
    lang = session.get("lang")
    session.clear()  # also drops the old CSRF token
    session[SESSION_KEY] = token
    if lang:
        session["lang"] = lang


def end_session() -> None:
    """Delete this browser's session record, so its cookie is dead even if replayed."""
    token = session.get(SESSION_KEY)
    if isinstance(token, str):
        with writing():
            db.session.execute(
                delete(AdminSession).where(AdminSession.token_hash == _token_hash(token))
            )
    session.pop(SESSION_KEY, None)


def end_other_sessions(admin: Admin) -> None:
    """Log `admin` out everywhere but here (after a password change)."""
    token = session.get(SESSION_KEY)
    keep = _token_hash(token) if isinstance(token, str) else ""
    with writing():
        db.session.execute(
            delete(AdminSession).where(
                AdminSession.admin_id == admin.id, AdminSession.token_hash != keep
            )
        )


def current_admin() -> tuple[Admin | None, str | None]:
    """The logged-in admin, or None and why not ("expired" when a session timed out,
    "pending" when the second step of the login is still to come, or took too long)."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str):
        return None, None
    with reading():  # most requests only read: on SQLite they never wait for a writer
        record = db.session.execute(
            select(AdminSession).where(AdminSession.token_hash == _token_hash(token))
        ).scalar_one_or_none()
        admin = db.session.get(Admin, record.admin_id) if record is not None else None
    now = utcnow()
    if record is not None and record.mfa_pending:  # its end is `pending_admin`'s to tell
        return None, "pending"
    if record is None or _expired(record, now):
        if record is not None:
            with writing():
                db.session.execute(delete(AdminSession).where(AdminSession.id == record.id))
        session.pop(SESSION_KEY, None)
        return None, "expired"
    if now - record.last_seen_at >= TOUCH_EVERY:
        with writing():
            db.session.execute(
                update(AdminSession).where(AdminSession.id == record.id).values(last_seen_at=now)
            )
    return admin, None


def pending_admin() -> tuple[Admin | None, str | None]:
    """The admin whose password was right and whose second step is awaited, or None and why
    not ("expired" when the pending session timed out)."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str):
        return None, None
    with reading():
        record = db.session.execute(
            select(AdminSession).where(
                AdminSession.token_hash == _token_hash(token), AdminSession.mfa_pending
            )
        ).scalar_one_or_none()
        admin = db.session.get(Admin, record.admin_id) if record is not None else None
    if record is None:
        return None, None
    if _expired(record, utcnow()):
        end_session()
        return None, "expired"
    return admin, None


def _expired(record: AdminSession, now: datetime) -> bool:
    if record.mfa_pending and now - record.created_at > PENDING_TIMEOUT:
        return True
    return now - record.last_seen_at > IDLE_TIMEOUT or now - record.created_at > ABSOLUTE_TIMEOUT
