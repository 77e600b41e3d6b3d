"""The admin dashboard at /admin: app keys, transactions, notifications, audit log.

Views stay thin: they check the form, call `app.payments` or `app.apps`, write the
audit entry and render. Every request except the login page needs a live server-side session;
every POST needs a CSRF token.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from werkzeug.routing import IntegerConverter

from ..errors import GatewayError
from . import models  # noqa: F401  (registers the tables)
from .i18n import init_i18n
from .security import csrf, init_security
from .sessions import current_admin

bp = Blueprint("admin", __name__, url_prefix="/admin")

PUBLIC_ENDPOINTS = {"admin.login", "admin.set_language"}


class RowIdConverter(IntegerConverter):
    """`<int:...>` in the dashboard's URLs is a row id: one beyond the database's INTEGER
    (32 bits) is no row, a 404, not an overflow in the database driver (a 500)."""

    def __init__(self, map, fixed_digits=0, min=None, max=2**31 - 1, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def init_admin(app: Flask, *, production: bool, translations: str) -> None:
    """CSRF, cookie flags and security headers (every response), translations, template
    helpers, bounded row ids in URLs. The blueprint itself is registered by `create_app`
    (after this, so its routes get the bounded converter)."""
    app.url_map.converters["int"] = RowIdConverter
    init_security(app, production=production)
    init_i18n(app, translations=translations)
    from .filters import register_filters

    register_filters(app)


def safe_next(target: str | None, default: str) -> str:
    """Only a path inside the dashboard: never another host (no open redirect), and nothing
    a Location header cannot carry (a CR or LF there was a 500). Anything else: `default`."""
    if not target or not target.isprintable() or "\\" in target:
        return default  # isprintable: no control, format or line-separator character
    parts = urlsplit(target)
    inside = parts.path == "/admin" or parts.path.startswith("/admin/")
    if parts.scheme or parts.netloc or not inside:
        return default
    return target


def search_term(raw: str | None, limit: int = 100) -> str:
    """A search box's text as the database can take it: control characters (NUL, which
    PostgreSQL refuses in text, CR, LF, ...) taken out, spaces trimmed, at most `limit` long."""
    return "".join(ch for ch in (raw or "") if ch.isprintable()).strip()[:limit]


@bp.before_request
def _require_login():
    if request.method not in {"GET", "HEAD", "OPTIONS"}:
        csrf.protect()
    admin, reason = current_admin()
    g.admin = admin
    if admin is None and request.endpoint not in PUBLIC_ENDPOINTS:
        if reason == "expired":
            flash(_("Your session has ended. Please log in again."), "info")
        target = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("admin.login", next=target))
    return None


@bp.after_request
def _no_store(response):
    # Dashboard pages show payment data and, once, API keys: never cache them.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(GatewayError)
def _gateway_error(err: GatewayError):
    return render_template("admin/error.html", status=err.status, message=err.message), err.status


from . import account, callbacks, views  # noqa: E402,F401  (routes)
