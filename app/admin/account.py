"""Logging in and out, the language switch, and the admins themselves."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta

from flask import flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_limiter.util import get_remote_address
from sqlalchemy import select

from .. import admin_mfa
from .. import admins as admin_service
from ..database import reading, writing
from ..errors import GatewayError
from ..extensions import db
from ..models import Admin
from ..observability import limiter
from ..services import gateway
from . import audit, bp
from .common import field_error, safe_next
from .forms import (
    AdminCreateForm,
    LanguageForm,
    LoginCodeForm,
    LoginForm,
    MfaProofForm,
    PasswordChangeForm,
    RequireMfaForm,
)
from .i18n import LANGUAGES
from .sessions import (
    LoginResult,
    check_code,
    check_credentials,
    check_current_password,
    end_other_sessions,
    end_session,
    pending_admin,
    start_session,
)


def _login_limit() -> str:
    return gateway().settings.ratelimit_login


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"], key_func=get_remote_address)
def login():
    if g.admin is not None:
        return redirect(url_for("admin.overview"))
    form = LoginForm()
    if form.validate_on_submit():
        username = form.username.data.strip()
        result = check_credentials(username, form.password.data, remote_addr=request.remote_addr)
        if result.ok and admin_mfa.is_enabled(result.admin.id):
            start_session(
                result.admin,
                ip=request.remote_addr,
                user_agent=request.user_agent.string,
                mfa_pending=True,
            )
            return redirect(url_for("admin.login_code", next=request.args.get("next")))
        if result.ok:
            start_session(
                result.admin, ip=request.remote_addr, user_agent=request.user_agent.string
            )
            g.admin = result.admin
            audit.record("login_ok", target=f"admin:{username}")
            return redirect(safe_next(request.args.get("next"), url_for("admin.overview")))
        audit.record(
            "login_failed",
            username=username,
            target=f"admin:{username}",
            detail=_throttle_detail(result),
        )
        return _login_refused(
            result,
            "admin/login.html",
            form,
            wrong=lambda: flash(_("Wrong username or password."), "error"),
            must_wait=lambda wait: _("Too many failed logins. Try again in %(wait)s.", wait=wait),
            next_try=lambda wait: _(
                "Too many failed logins: the next try is possible in %(wait)s.", wait=wait
            ),
        )
    return render_template("admin/login.html", form=form)


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"], key_func=get_remote_address)
def login_code():
    """The second step: the password was right; a TOTP or recovery code completes the login
    (a new session id). Wrong codes are throttled and audited like wrong passwords."""
    admin, reason = pending_admin()
    if admin is None:
        if reason == "expired":
            flash(_("The login took too long. Please log in again."), "info")
        return redirect(url_for("admin.login", next=request.args.get("next")))
    form = LoginCodeForm()
    if not form.validate_on_submit():
        return render_template("admin/login_code.html", form=form), 400 if form.errors else 200
    target = f"admin:{admin.username}"
    result = check_code(admin, form.code.data, remote_addr=request.remote_addr)
    if result.ok:
        start_session(admin, ip=request.remote_addr, user_agent=request.user_agent.string)
        g.admin = admin
        if result.how == "recovery":
            left = admin_mfa.state(admin.id).codes_left
            audit.record("login_ok", target=target, detail=f"with a recovery code, {left} left")
            flash(
                ngettext(
                    "You used a recovery code: %(num)d is left.",
                    "You used a recovery code: %(num)d are left.",
                    left,
                ),
                "info",
            )
        else:
            audit.record("login_ok", target=target, detail="with a TOTP code")
        return redirect(safe_next(request.args.get("next"), url_for("admin.overview")))
    detail = "wrong code at the second step"
    if result.wait or result.wait_if_wrong:
        detail += "; " + _throttle_detail(result)
    audit.record("login_failed", username=admin.username, target=target, detail=detail)
    return _login_refused(
        result,
        "admin/login_code.html",
        form,
        wrong=lambda: form.code.errors.append(_("The code is wrong.")),
        must_wait=lambda wait: _("Too many wrong codes. Try again in %(wait)s.", wait=wait),
        next_try=lambda wait: _(
            "Too many wrong codes: the next try is possible in %(wait)s.", wait=wait
        ),
    )


def _login_refused(
    result: LoginResult,
    page: str,
    form,
    *,
    wrong: Callable[[], None],
    must_wait: Callable[[str], str],
    next_try: Callable[[str], str],
):
    """A login step refused (its failure already audited): 429 with Retry-After and
    `must_wait` flashed while the address must wait; else 401 after `wrong`, with `next_try`
    flashed when one more wrong try makes the address wait."""
    if result.wait:
        flash(must_wait(_wait(result.wait)), "error")
        return _wait_answer(render_template(page, form=form), result.wait)
    wrong()
    if result.wait_if_wrong:
        flash(next_try(_wait(result.wait_if_wrong)), "error")
    return render_template(page, form=form), 401


def _wait(wait: timedelta) -> str:
    """A wait as people say it: whole seconds up to 90, whole minutes (rounded up) beyond."""
    seconds = max(1, math.ceil(wait.total_seconds()))
    if seconds <= 90:
        return ngettext("%(num)d second", "%(num)d seconds", seconds)
    minutes = math.ceil(seconds / 60)
    return ngettext("%(num)d minute", "%(num)d minutes", minutes)


def _wait_answer(body: str, wait: timedelta):
    """429 with Retry-After: the address must wait before its next password check."""
    seconds = str(max(1, math.ceil(wait.total_seconds())))
    g.retry_after = seconds  # kept by app.observability's after_request
    return body, 429, {"Retry-After": seconds}


def answer_refused(
    check: LoginResult, *, action: str, field, page: Callable[[], str], or_code: bool = False
):
    """None when `check` (the current password, or with `or_code` the password or a TOTP
    code) passed; else the page to answer with, `field` saying why and the refusal audited as
    `action`: 429 while the address must wait, else 400."""
    if check.ok:
        return None
    target = f"admin:{g.admin.username}"
    if check.wait:
        audit.record(action, target=target, detail=_throttle_detail(check))
        wait = _wait(check.wait)
        field.errors.append(
            _("Too many wrong tries. Try again in %(wait)s.", wait=wait)
            if or_code
            else _("Too many wrong passwords. Try again in %(wait)s.", wait=wait)
        )
        return _wait_answer(page(), check.wait)
    detail = "failed: wrong password or code" if or_code else "failed: wrong current password"
    if check.wait_if_wrong:
        detail += "; " + _throttle_detail(check)
    audit.record(action, target=target, detail=detail)
    if or_code:
        field.errors.append(_("The password or code is wrong."))
    else:
        field.errors.append(_("The current password is wrong."))
        if check.wait_if_wrong:
            field.errors.append(
                _(
                    "Too many wrong passwords: the next try is possible in %(wait)s.",
                    wait=_wait(check.wait_if_wrong),
                )
            )
    return page(), 400


def _throttle_detail(result: LoginResult) -> str | None:
    if result.wait:
        return f"refused unchecked: the address waits {math.ceil(result.wait.total_seconds())} s"
    if result.wait_if_wrong:
        return f"the address now waits {math.ceil(result.wait_if_wrong.total_seconds())} s"
    return None


@bp.post("/logout")
def logout():
    audit.record("logout", target=f"admin:{g.admin.username}")
    end_session()
    flash(_("You are logged out."), "info")
    return redirect(url_for("admin.login"))


@bp.post("/language")
def set_language():
    form = LanguageForm()
    if form.lang.data in LANGUAGES:
        session["lang"] = form.lang.data
    return redirect(safe_next(form.next.data, url_for("admin.overview")))


def account_page(form: PasswordChangeForm | None = None, **forms) -> str:
    """The account page: the password form, and two-factor sign-in (`app.admin.mfa`)."""
    return render_template(
        "admin/account.html",
        form=form or PasswordChangeForm(formdata=None),
        mfa=admin_mfa.state(g.admin.id),
        mfa_required=admin_mfa.required(),
        codes_form=forms.get("codes_form") or MfaProofForm(prefix="codes", formdata=None),
        off_form=forms.get("off_form") or MfaProofForm(prefix="off", formdata=None),
    )


@bp.route("/account", methods=["GET", "POST"])
def account():
    form = PasswordChangeForm()
    if form.validate_on_submit():
        admin = g.admin
        check = check_current_password(admin, form.current.data, remote_addr=request.remote_addr)
        refused = answer_refused(
            check, action="password_change", field=form.current, page=lambda: account_page(form)
        )
        if refused is not None:
            return refused
        admin_service.set_password(admin, form.new.data)
        with writing():
            end_other_sessions(admin)
            audit.record("password_change", target=f"admin:{admin.username}")
        flash(_("Your password was changed. Other sessions were logged out."), "success")
        return redirect(url_for("admin.account"))
    return account_page(form), 400 if form.errors else 200


@bp.route("/admins", methods=["GET", "POST"])
def admins():
    form = AdminCreateForm()
    if form.validate_on_submit():
        username = form.username.data
        try:
            admin_service.create_admin(username=username, password=form.password.data)
        except admin_service.AdminExistsError:
            form.username.errors.append(_("An admin with this username already exists."))
        except GatewayError as err:
            field_error(form, err)
        else:
            audit.record("admin_create", target=f"admin:{username}", after={"username": username})
            flash(_("Admin %(name)s was added.", name=username), "success")
            return redirect(url_for("admin.admins"))
    status = 400 if form.errors else 200
    return admins_page(form), status


def admins_page(form: AdminCreateForm | None = None, require_form: RequireMfaForm | None = None):
    """The admins, whether each uses two-factor sign-in, and the setting that requires it."""
    with reading():
        everyone = db.session.execute(select(Admin).order_by(Admin.username)).scalars().all()
    required = admin_mfa.required()
    return render_template(
        "admin/admins.html",
        form=form or AdminCreateForm(formdata=None),
        admins=everyone,
        mfa_on=admin_mfa.enabled_admin_ids(),
        mfa_required=required,
        require_form=require_form or RequireMfaForm(formdata=None, data={"require": required}),
    )
