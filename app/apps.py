"""Client apps: the rules shared by the command line and the dashboard.

Creating, editing, rotating and disabling apps, and their callback endpoints. Keys and signing
secrets are returned once, to be shown once; only a key's hash is stored. Every change that
authentication relies on calls `auth.forget_apps()`: at once in this process and on this host,
within AUTH_CACHE_SECONDS on other hosts.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from .auth import check_imported_key, forget_apps, generate_api_key, hash_api_key, key_hint
from .callback_sender import AddressPolicy, UnsafeCallbackURL, new_signing_secret
from .database import writing
from .errors import InvalidRequestError, NotFoundError
from .extensions import db
from .models import App

log = logging.getLogger(__name__)

# After a rotation the old secret signs too, so the client can switch without missing one.
PREVIOUS_SECRET_OVERLAP = timedelta(hours=24)
APP_CODE_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
PREFIX_RE = re.compile(r"^[A-Za-z0-9\-_~.]{0,40}$")


@dataclass(frozen=True)
class NewKey:
    client_app: App
    key: str  # shown once, never stored
    signing_secret: str | None = None  # shown once, when a callback URL was set


def get_app_or_raise(app_id: int) -> App:
    client_app = db.session.get(App, app_id)
    if client_app is None:
        raise NotFoundError(f"no app {app_id}")
    return client_app


def _check_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidRequestError("the name must be 1 to 200 characters", field="name")
    if any(unicodedata.category(ch) in {"Cc", "Cs"} for ch in name):
        # NUL, line breaks and other control characters (PostgreSQL refuses a NUL).
        raise InvalidRequestError("the name must not contain control characters", field="name")
    return name


def _check_prefix(prefix: str, *, app_id: int | None) -> str:
    if not PREFIX_RE.match(prefix):
        raise InvalidRequestError(
            "the order prefix may only contain letters, digits and - _ ~ . (max 40)",
            field="order_prefix",
        )
    # Two apps with one prefix could block each other's order ids at Midtrans.
    query = select(App.code).where(App.order_prefix == prefix)
    if app_id is not None:
        query = query.where(App.id != app_id)
    other = db.session.execute(query).scalar()
    if other is not None:
        raise InvalidRequestError(
            f"app {other} already uses this order prefix", field="order_prefix"
        )
    return prefix


def create_client_app(
    *,
    code: str,
    name: str,
    order_prefix: str | None,
    api_key: str | None = None,
    callback_url: str | None = None,
    policy: AddressPolicy | None = None,
    production: bool = False,
) -> NewKey:
    """Create an app; `order_prefix` None means the default `<code>-`; `api_key` imports a key
    a client already uses (from an older gateway) instead of making one."""
    code = code.strip()
    if not APP_CODE_RE.match(code):
        raise InvalidRequestError(
            "the code may only contain letters, digits, - and _ (max 64)", field="code"
        )
    with writing():
        if db.session.execute(select(App.id).where(App.code == code)).first():
            raise InvalidRequestError(f"an app with code {code} already exists", field="code")
        name = _check_name(name)
        prefix = _check_prefix(f"{code}-" if order_prefix is None else order_prefix, app_id=None)
        if api_key is not None:
            try:
                check_imported_key(api_key)
            except ValueError as err:
                raise InvalidRequestError(str(err), field="api_key") from None
        key = api_key or generate_api_key()
        client_app = App(
            code=code,
            name=name,
            key_hash=hash_api_key(key),
            key_hint=key_hint(key),
            order_prefix=prefix,
        )
        secret = None
        if callback_url:
            secret = set_callback_url(
                client_app, callback_url, policy=policy or AddressPolicy(), production=production
            )
        db.session.add(client_app)
    return NewKey(client_app, key, secret)


def rotate_key(app_id: int) -> NewKey:
    """A new key; the old one stops working at once."""
    key = generate_api_key()
    with writing():
        client_app = get_app_or_raise(app_id)
        client_app.key_hash, client_app.key_hint = hash_api_key(key), key_hint(key)
        forget_apps()
    return NewKey(client_app, key)


def set_active(app_id: int, active: bool) -> App:
    with writing():
        client_app = get_app_or_raise(app_id)
        client_app.active = active
        forget_apps()
    return client_app


def set_refunds_allowed(app_id: int, allowed: bool) -> App:
    """Let the app refund its paid orders through the API (`POST /transactions/<id>/refund`),
    or stop it. Off for every app until an admin turns it on: a refund moves money out."""
    with writing():
        client_app = get_app_or_raise(app_id)
        client_app.allow_refunds = allowed
        forget_apps()
    return client_app


def edit_app(app_id: int, *, name: str, order_prefix: str) -> App:
    """Rename, or change the prefix of future orders (existing orders keep theirs)."""
    with writing():
        client_app = get_app_or_raise(app_id)
        name, prefix = _check_name(name), _check_prefix(order_prefix, app_id=client_app.id)
        client_app.name, client_app.order_prefix = name, prefix
        forget_apps()
    return client_app


def set_callback_url(
    client_app: App, url: str | None, *, policy: AddressPolicy, production: bool
) -> str | None:
    """Point the app's callbacks at `url` (None or "" stops them); the caller commits.

    Returns a new signing secret when the app had none (shown once), else None. Setting a
    URL also re-enables an endpoint that was disabled after failures.
    """
    forget_apps()  # whether the app can sign for an order's own callback_url may change
    if not url:
        client_app.callback_url = None
        return None
    try:
        policy.check_url(url, require_https=production)
    except UnsafeCallbackURL as err:
        raise InvalidRequestError(str(err), field="callback_url") from None
    client_app.callback_url = url
    enable_endpoint(client_app)
    if client_app.signing_secret:
        return None
    secret = new_signing_secret()
    client_app.signing_secret = secret
    return secret


def rotate_callback_secret(client_app: App) -> str:
    """A new signing secret; the old one keeps signing for 24 hours. The caller commits."""
    secret = new_signing_secret()
    rotate_signing_secret(client_app, secret)
    return secret


def enable_endpoint(client_app: App) -> None:
    """Deliver to the app's endpoint again (after it was disabled); the caller commits."""
    client_app.callback_disabled_at = None
    client_app.callback_disabled_reason = None
    client_app.callback_failing_since = None


def disable_endpoint(client_app: App, now: datetime, reason: str) -> None:
    """Stop delivering to the app's endpoint (410 Gone, or failing for days); the caller
    commits. Its admin sees `reason`; setting the URL or "enable" delivers again."""
    client_app.callback_disabled_at = now
    client_app.callback_disabled_reason = reason[:255]
    log.error("callbacks to app %s disabled: %s", client_app.code, reason)


def rotate_signing_secret(client_app: App, new_secret: str) -> None:
    """Sign with both secrets for a day, so the client can switch without missing one."""
    if client_app.signing_secret:
        client_app.previous_signing_secret = client_app.signing_secret
        client_app.previous_secret_expires_at = datetime.now(UTC) + PREVIOUS_SECRET_OVERLAP
    client_app.signing_secret = new_secret
