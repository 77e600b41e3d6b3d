"""The admin dashboard at /admin: one blueprint `bp`, its pages in a module a subject
(`overview`, `apps`, `transactions`, `logs`, `account`), what they share in `common`.

Views stay thin: they check the form, call `app.payments`, `app.apps` or `app.admins`, write
the audit entry and render. Every request except the login page needs a live server-side
session; every POST needs a CSRF token.
"""

from __future__ import annotations

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

from .. import admin_mfa
from ..errors import GatewayError
from . import models  # noqa: F401  (registers the tables)
from .i18n import init_i18n
from .security import csrf, init_security
from .sessions import current_admin

bp = Blueprint("admin", __name__, url_prefix="/admin")

PUBLIC_ENDPOINTS = {"admin.login", "admin.login_code", "admin.set_language"}
# What an admin who must set two-factor sign-in up may still open.
ENROLMENT_ENDPOINTS = {"admin.mfa_setup", "admin.logout", "admin.set_language"}


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
        if reason == "pending":  # the password was right; the second step comes first
            return redirect(url_for("admin.login_code", next=target))
        return redirect(url_for("admin.login", next=target))
    if (
        admin is not None
        and request.endpoint not in ENROLMENT_ENDPOINTS
        and admin_mfa.must_enrol(admin.id)
    ):
        flash(_("Every admin must use two-factor sign-in: set it up to go on."), "info")
        return redirect(url_for("admin.mfa_setup"))
    return None


@bp.after_request
def _no_store(response):
    # Dashboard pages show payment data and, once, API keys: never cache them.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(GatewayError)
def _gateway_error(err: GatewayError):
    return render_template("admin/error.html", status=err.status, message=err.message), err.status


# Which menu entry a page belongs to.
SECTIONS = {
    "app_new": "apps",
    "app_edit": "apps",
    "callback_log": "apps",
    "callback_event": "apps",
    "transaction": "transactions",
    "notification": "notifications",
    "account": "admins",
    "mfa_setup": "admins",
    "mfa_recovery_codes": "admins",
    "mfa_disable": "admins",
}


@bp.context_processor
def _layout():
    endpoint = (request.endpoint or "").removeprefix("admin.")
    return {"admin": g.get("admin"), "nav_section": "admin." + SECTIONS.get(endpoint, endpoint)}


from . import account, apps, callback_log, logs, mfa, overview, transactions  # noqa: E402,F401
