"""Dashboard forms. Every one carries a CSRF token (Flask-WTF); labels are translated lazily."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
)
from wtforms.validators import DataRequired, EqualTo, Length, NumberRange, Optional, Regexp

from ..admins import MIN_PASSWORD, USERNAME_RE


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _callback_url_field(description) -> StringField:
    return StringField(
        _l("Callback URL"),
        validators=[Optional(), Length(max=2000)],
        filters=[_strip],
        description=description,
    )


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=80)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1024)])


class LanguageForm(FlaskForm):
    lang = HiddenField()
    next = HiddenField()


class ConfirmForm(FlaskForm):
    """A button that changes something: the CSRF token is the only field."""


class ConfirmedActionForm(FlaskForm):
    """An action that cannot be undone: the admin ticks a box first."""

    confirm = BooleanField(_l("Yes, I am sure"), validators=[DataRequired()])


class AppCreateForm(FlaskForm):
    code = StringField(
        _l("Code"),
        validators=[DataRequired(), Regexp(r"^[A-Za-z0-9_\-]{1,64}$")],
        description=_l("Sent as X-App-Code. Letters, digits, - and _."),
    )
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    order_prefix = StringField(
        _l("Order prefix"),
        validators=[Optional(), Length(max=40)],
        description=_l("Prepended to order ids at Midtrans. Empty: the code and a dash."),
    )
    no_prefix = BooleanField(_l("No prefix (an app moved from an older gateway)"))
    callback_url = _callback_url_field(
        _l("Optional. Payment updates are POSTed here, signed (Standard Webhooks).")
    )


class AppEditForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    order_prefix = StringField(
        _l("Order prefix"),
        validators=[Length(max=40)],
        description=_l("Applies to new orders only; existing orders keep their Midtrans id."),
    )
    callback_url = _callback_url_field(
        _l("Payment updates are POSTed here, signed. Empty: no callbacks.")
    )
    allow_refunds = BooleanField(
        _l("May refund its paid orders through the API"),
        description=_l("A refund moves money out: allow it only for apps that need it."),
    )


class CallbackRecoverForm(FlaskForm):
    since = DateTimeLocalField(
        _l("Failed since (WIB)"), format="%Y-%m-%dT%H:%M", validators=[DataRequired()]
    )


class RefundForm(FlaskForm):
    amount = IntegerField(_l("Amount (Rp)"), validators=[DataRequired(), NumberRange(min=1)])
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=255)])
    refund_key = HiddenField(validators=[DataRequired(), Length(min=8, max=50)])
    confirm = BooleanField(_l("Yes, refund this payment"), validators=[DataRequired()])


class CaptureForm(FlaskForm):
    amount = IntegerField(_l("Amount (Rp)"), validators=[DataRequired(), NumberRange(min=1)])
    confirm = BooleanField(_l("Yes, capture this payment"), validators=[DataRequired()])


class TxFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search form changes nothing

    app = SelectField(_l("App"), coerce=str, validate_choice=False)
    status = SelectField(_l("Midtrans status"), coerce=str, validate_choice=False)
    outcome = SelectField(_l("Outcome"), coerce=str, validate_choice=False)
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("To"), validators=[Optional()])
    q = StringField(_l("Order id"), validators=[Optional(), Length(max=100)])


def _password_and_repeat(name: str, label, repeat_label) -> tuple[PasswordField, PasswordField]:
    """A password an admin sets (the rules of `app.admins`), and the same typed again; `name`
    is the first field's, the one the repeat must equal."""
    return (
        PasswordField(label, validators=[DataRequired(), Length(min=MIN_PASSWORD, max=1024)]),
        PasswordField(
            repeat_label,
            validators=[DataRequired(), EqualTo(name, message=_l("The passwords do not match."))],
        ),
    )


class PasswordChangeForm(FlaskForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired()])
    new, repeat = _password_and_repeat("new", _l("New password"), _l("Repeat the new password"))


class AdminCreateForm(FlaskForm):
    username = StringField(
        _l("Username"), validators=[DataRequired(), Regexp(USERNAME_RE), Length(max=80)]
    )
    password, repeat = _password_and_repeat("password", _l("Password"), _l("Repeat the password"))


class LoginCodeForm(FlaskForm):
    """The second step of a login: a TOTP code or a recovery code."""

    code = StringField(
        _l("Code"),
        validators=[DataRequired(), Length(max=64)],
        filters=[_strip],
        description=_l("The 6-digit code from your authenticator app, or a recovery code."),
    )


class MfaConfirmForm(FlaskForm):
    password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=1024)])
    code = StringField(
        _l("Code from the app"),
        validators=[DataRequired(), Length(max=64)],
        filters=[_strip],
        description=_l("The 6-digit code the app shows now."),
    )


class MfaProofForm(FlaskForm):
    """Recovery codes and turning MFA off: the password, or a code from the app, first."""

    proof = PasswordField(
        _l("Your password or a code from your authenticator app"),
        validators=[DataRequired(), Length(max=1024)],
    )


class RequireMfaForm(FlaskForm):
    require = BooleanField(_l("Every admin must use two-factor sign-in"))
