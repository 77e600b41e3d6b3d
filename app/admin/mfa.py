"""Two-factor sign-in in the dashboard: setting it up (QR code, confirm with a code, recovery
codes shown once), new recovery codes, turning it off, and requiring it for every admin.
The rules are `app.admin_mfa`'s; the second step of a login is in `account`."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import admin_mfa
from ..database import writing
from ..errors import GatewayError
from ..qr import qr_svg
from . import audit, bp
from .account import account_page, admins_page, answer_refused
from .forms import MfaConfirmForm, MfaProofForm, RequireMfaForm
from .sessions import check_code, check_current_password, end_other_sessions


@bp.route("/account/mfa", methods=["GET", "POST"])
def mfa_setup():
    """Set MFA up: the current password (a borrowed session must not be able to lock the
    owner out with a phone of its own) and a code from the new secret turn it on."""
    admin = g.admin
    if admin_mfa.is_enabled(admin.id):
        return redirect(url_for("admin.account"))
    form = MfaConfirmForm()
    if not form.validate_on_submit():
        return _setup_page(form), 400 if form.errors else 200
    target = f"admin:{admin.username}"
    check = check_current_password(admin, form.password.data, remote_addr=request.remote_addr)
    refused = answer_refused(
        check, action="mfa_enable", field=form.password, page=lambda: _setup_page(form)
    )
    if refused is not None:
        return refused
    try:
        codes = admin_mfa.confirm_enrolment(admin, form.code.data)
    except GatewayError:
        form.code.errors.append(_("The code is wrong. Check the time on your phone."))
        return _setup_page(form), 400
    with writing():
        end_other_sessions(admin)
        audit.record("mfa_enable", target=target)
    flash(_("Two-factor sign-in is on. Other sessions were logged out."), "success")
    return render_template("admin/mfa_codes.html", codes=codes)


def _setup_page(form: MfaConfirmForm) -> str:
    enrolment = admin_mfa.begin_enrolment(g.admin)
    secret = enrolment.secret
    return render_template(
        "admin/mfa_setup.html",
        form=form,
        qr=qr_svg(enrolment.uri),
        secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        required=admin_mfa.required(),
    )


def _unproved(prefix: str, action: str, slot: str):
    """None when the admin, with two-factor sign-in on, proved it is them for `action` (the
    password or a TOTP code in the account page's form `slot`); else the answer: the form's
    errors, back to the account page (two-factor sign-in is off), or the refused proof,
    audited and throttled like a login."""
    form = MfaProofForm(prefix=prefix)
    if not form.validate_on_submit():
        return account_page(**{slot: form}), 400
    if not admin_mfa.is_enabled(g.admin.id):
        return redirect(url_for("admin.account"))
    admin, text = g.admin, form.proof.data
    if admin_mfa.looks_like_totp(text):
        check = check_code(admin, text, remote_addr=request.remote_addr, recovery=False)
    else:
        check = check_current_password(admin, text, remote_addr=request.remote_addr)
    return answer_refused(
        check,
        action=action,
        field=form.proof,
        page=lambda: account_page(**{slot: form}),
        or_code=True,
    )


@bp.post("/account/mfa/recovery-codes")
def mfa_recovery_codes():
    refused = _unproved("codes", "mfa_recovery_codes", "codes_form")
    if refused is not None:
        return refused
    codes = admin_mfa.new_recovery_codes(g.admin.id)
    audit.record("mfa_recovery_codes", target=f"admin:{g.admin.username}")
    flash(_("New recovery codes were made; the old ones no longer work."), "success")
    return render_template("admin/mfa_codes.html", codes=codes)


@bp.post("/account/mfa/disable")
def mfa_disable():
    refused = _unproved("off", "mfa_disable", "off_form")
    if refused is not None:
        return refused
    admin_mfa.disable(g.admin.id)
    audit.record("mfa_disable", target=f"admin:{g.admin.username}")
    flash(_("Two-factor sign-in is off."), "success")
    return redirect(url_for("admin.account"))


@bp.post("/admins/require-mfa")
def require_mfa():
    form = RequireMfaForm()
    if not form.validate_on_submit():
        return admins_page(require_form=form), 400
    on = bool(form.require.data)
    if on and not admin_mfa.is_enabled(g.admin.id):
        form.require.errors.append(_("Set up two-factor sign-in for yourself first."))
        return admins_page(require_form=form), 400
    with writing():
        if admin_mfa.set_required(on):
            audit.record("mfa_required", before={"required": not on}, after={"required": on})
    if on:
        flash(_("Every admin must now use two-factor sign-in."), "success")
    else:
        flash(_("Two-factor sign-in is now up to each admin."), "success")
    return redirect(url_for("admin.admins"))
