"""Client apps' callback endpoints: the rules shared by the CLI and the dashboard."""

from __future__ import annotations

from .callbacks import AddressPolicy, UnsafeCallbackURL, new_signing_secret
from .errors import InvalidRequestError
from .models import App
from .payments import enable_endpoint, rotate_signing_secret


def set_callback_url(
    app: App, url: str | None, *, policy: AddressPolicy, production: bool
) -> str | None:
    """Point the app's callbacks at `url` (None or "" stops them); the caller commits.

    Returns a new signing secret when the app had none (shown once), else None. Setting a
    URL also re-enables an endpoint that was disabled after failures.
    """
    if not url:
        app.callback_url = None
        return None
    try:
        policy.check_url(url, require_https=production)
    except UnsafeCallbackURL as err:
        raise InvalidRequestError(str(err), field="callback_url") from None
    app.callback_url = url
    enable_endpoint(app)
    if app.signing_secret:
        return None
    secret = new_signing_secret()
    app.signing_secret = secret
    return secret


def rotate_callback_secret(app: App) -> str:
    """A new signing secret; the old one keeps signing for 24 hours. The caller commits."""
    secret = new_signing_secret()
    rotate_signing_secret(app, secret)
    return secret
