"""Logging in and out, the language switch, and the admins themselves."""

from __future__ import annotations

import math

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from sqlalchemy import select

from ..auth import hash_password, verify_password
from ..extensions import db
from ..models import Admin
from ..observability import limiter
from . import audit, bp, safe_next
from .forms import AdminCreateForm, LanguageForm, LoginForm, PasswordChangeForm
from .i18n import LANGUAGES
from .sessions import (
    LoginResult,
    check_credentials,
    end_other_sessions,
    end_session,
    start_session,
)


def _login_limit() -> str:
    return current_app.config["RATELIMIT_LOGIN"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"], key_func=get_remote_address)
def login():
    if g.admin is not None:
        return redirect(url_for("admin.overview"))
    form = LoginForm()
    if form.validate_on_submit():
        username = form.username.data.strip()
        # No admin's name has a control character (PostgreSQL refuses a NUL in the lookup).
        if username.isprintable():
            result = check_credentials(username, form.password.data)
        else:
            result = LoginResult(None)
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
            detail="locked" if result.locked_for else None,
        )
        if result.locked_for:
            minutes = max(1, math.ceil(result.locked_for.total_seconds() / 60))
            flash(
                _(
                    "Too many failed logins. Try again in %(minutes)d minute(s).",
                    minutes=minutes,
                ),
                "error",
            )
        else:
            flash(_("Wrong username or password."), "error")
        return render_template("admin/login.html", form=form), 401
    return render_template("admin/login.html", form=form)


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


@bp.route("/account", methods=["GET", "POST"])
def account():
    form = PasswordChangeForm()
    if form.validate_on_submit():
        admin = g.admin
        if not verify_password(admin.password_hash, form.current.data):
            form.current.errors.append(_("The current password is wrong."))
        else:
            admin.password_hash = hash_password(form.new.data)
            db.session.commit()
            end_other_sessions(admin)
            audit.record("password_change", target=f"admin:{admin.username}")
            flash(_("Your password was changed. Other sessions were logged out."), "success")
            return redirect(url_for("admin.account"))
    return render_template("admin/account.html", form=form), 400 if form.errors else 200


@bp.route("/admins", methods=["GET", "POST"])
def admins():
    form = AdminCreateForm()
    if form.validate_on_submit():
        username = form.username.data
        if db.session.execute(select(Admin.id).where(Admin.username == username)).first():
            form.username.errors.append(_("An admin with this username already exists."))
        else:
            db.session.add(
                Admin(username=username, password_hash=hash_password(form.password.data))
            )
            db.session.commit()
            audit.record("admin_create", target=f"admin:{username}", after={"username": username})
            flash(_("Admin %(name)s was added.", name=username), "success")
            return redirect(url_for("admin.admins"))
    everyone = db.session.execute(select(Admin).order_by(Admin.username)).scalars().all()
    status = 400 if form.errors else 200
    return render_template("admin/admins.html", form=form, admins=everyone), status
