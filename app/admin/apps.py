"""An app's pages: the list; creating and editing an app; its API key (rotate, disable, enable);
its callback endpoint (enable it again, rotate the signing secret). Its callback delivery log
is `callback_log.py`.

The rules live in `app.apps` and `app.payments`; these views check the form, call them, audit
and render. A change and its audit entry are one unit of work.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import apps as app_service
from ..database import lock_row, reading, writing
from ..errors import GatewayError, InvalidRequestError, NotFoundError
from ..models import App
from ..services import gateway
from . import audit, bp
from .audit import app_snapshot, app_target
from .common import (
    apps_by_id,
    field_error,
    safe_next,
)
from .forms import AppCreateForm, AppEditForm, ConfirmedActionForm, ConfirmForm


def policy_kwargs() -> dict[str, Any]:
    """What `app.apps.set_callback_url` needs to judge a URL: the allowed hosts, and whether
    real money is at stake (https required)."""
    return {
        "policy": gateway().callback_policy,
        "production": gateway().settings.midtrans.is_production,
    }


def _locked_app(app_id: int) -> App:
    """The app's row, locked for the write unit in hand and read afresh (another admin or the
    worker may have changed it since the page was read)."""
    client_app = lock_row(App, app_id)
    if client_app is None:
        raise NotFoundError(f"no app {app_id}")
    return client_app


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _show_key(new_key: app_service.NewKey, *, created: bool) -> Response:
    """The API key (and a new signing secret), this once; the page is never cached."""
    page = render_template(
        "admin/app_key.html",
        client_app=new_key.client_app,
        key=new_key.key,
        created=created,
        signing_secret=new_key.signing_secret,
    )
    return _no_store(current_app.make_response(page))


def show_secret(client_app: App, secret: str, *, rotated: bool) -> Response:
    """The signing secret, this once; the page is never cached."""
    page = render_template(
        "admin/callback_secret.html",
        client_app=client_app,
        secret=secret,
        rotated=rotated,
        overlap_until=client_app.previous_secret_expires_at if rotated else None,
    )
    return _no_store(current_app.make_response(page))


# -- the apps and their keys -----------------------------------------------------------------


@bp.get("/apps")
def apps():
    with reading():
        everyone = list(apps_by_id().values())
        return render_template("admin/apps.html", apps=everyone, form=ConfirmForm())


@bp.route("/apps/new", methods=["GET", "POST"])
def app_new():
    form = AppCreateForm()
    if form.validate_on_submit():
        prefix = form.order_prefix.data or None
        if form.no_prefix.data:
            prefix = ""
        try:
            with writing():
                new_key = app_service.create_client_app(
                    code=form.code.data,
                    name=form.name.data,
                    order_prefix=prefix,
                    callback_url=form.callback_url.data or None,
                    **policy_kwargs(),
                )
                audit.record(
                    "app_create",
                    target=app_target(new_key.client_app),
                    after=app_snapshot(new_key.client_app),
                )
        except GatewayError as err:
            field_error(form, err)
        else:
            return _show_key(new_key, created=True)
    return render_template(
        "admin/app_form.html", form=form, client_app=None
    ), 400 if form.errors else 200


@bp.route("/apps/<int:app_id>", methods=["GET", "POST"])
def app_edit(app_id: int):
    with reading():
        client_app = app_service.get_app_or_raise(app_id)
    form = AppEditForm(obj=client_app)
    if form.validate_on_submit():
        saved = _save_app(app_id, form)
        if saved is not None:
            return saved
    with reading():  # a refused save was rolled back: the app is read again
        return render_template(
            "admin/app_form.html",
            form=form,
            client_app=client_app,
            confirm_form=ConfirmedActionForm(formdata=None),
            action_form=ConfirmForm(formdata=None),
            now=datetime.now(UTC),
        ), 400 if form.errors else 200


def _save_app(app_id: int, form: AppEditForm) -> Response | None:
    """Name, prefix and callback URL in one write: a refused URL changes nothing else. The
    URL is set only when it changed, so saving a name never re-enables a disabled endpoint."""
    new_url = form.callback_url.data or None
    try:
        with writing():
            client_app = _locked_app(app_id)
            before = app_snapshot(client_app)
            url_changed = new_url != client_app.callback_url
            secret = None
            if url_changed:
                secret = app_service.set_callback_url(client_app, new_url, **policy_kwargs())
            app_service.edit_app(app_id, name=form.name.data, order_prefix=form.order_prefix.data)
            if form.allow_refunds.data != client_app.allow_refunds:
                app_service.set_refunds_allowed(app_id, form.allow_refunds.data)
            _audit_save(client_app, before, app_snapshot(client_app), url_changed, secret)
    except GatewayError as err:
        field_error(form, err)
        return None
    if secret:
        return show_secret(client_app, secret, rotated=False)
    if url_changed and new_url is None:
        flash(_("App %(code)s was saved; its callbacks are stopped.", code=client_app.code), "info")
    else:
        flash(_("App %(code)s was saved.", code=client_app.code), "success")
    return redirect(url_for("admin.apps"))


def _audit_save(
    client_app: App, before: dict, after: dict, url_changed: bool, secret: str | None
) -> None:
    """An edit of the details, and a change of the callback URL, are entries of their own."""
    target = app_target(client_app)
    details_changed = any(before[k] != after[k] for k in ("name", "order_prefix", "allow_refunds"))
    if details_changed or not url_changed:
        audit.record("app_edit", target=target, before=before, after=after)
    if url_changed:
        new_url = after["callback_url"]
        detail = "callbacks stopped" if new_url is None else "callback URL set"
        if secret:
            detail += "; new signing secret shown once"
        audit.record(
            "app_callback_url",
            target=target,
            before={"callback_url": before["callback_url"]},
            after={"callback_url": new_url},
            detail=detail,
        )


@bp.post("/apps/<int:app_id>/rotate")
def app_rotate(app_id: int):
    with writing():
        client_app = _locked_app(app_id)
        if not ConfirmedActionForm().validate():
            flash(_("Tick the box to confirm: the old key stops working at once."), "error")
            return redirect(url_for("admin.app_edit", app_id=app_id))
        before = app_snapshot(client_app)
        new_key = app_service.rotate_key(app_id)
        audit.record(
            "app_rotate_key",
            target=app_target(client_app),
            before=before,
            after=app_snapshot(new_key.client_app),
        )
    return _show_key(new_key, created=False)


@bp.post("/apps/<int:app_id>/<any(disable, enable):action>")
def app_toggle(app_id: int, action: str):
    with writing():
        client_app = _locked_app(app_id)
        before = app_snapshot(client_app)
        app_service.set_active(app_id, action == "enable")
        audit.record(
            f"app_{action}",
            target=app_target(client_app),
            before=before,
            after=app_snapshot(client_app),
        )
    if action == "enable":
        flash(_("App %(code)s is enabled.", code=client_app.code), "success")
    else:
        flash(
            _("App %(code)s is disabled: its requests now get 401.", code=client_app.code), "info"
        )
    return redirect(url_for("admin.apps"))


# -- the callback endpoint -------------------------------------------------------------------


def _back(app_id: int) -> str:
    return safe_next(request.form.get("next"), url_for("admin.app_edit", app_id=app_id))


@bp.post("/apps/<int:app_id>/callbacks/enable")
def callback_enable(app_id: int):
    """Deliver to a disabled endpoint again: setting the same URL again re-enables it."""
    try:
        with writing():
            client_app = _locked_app(app_id)
            if not client_app.callback_url:
                flash(_("This app has no callback URL to enable."), "error")
                return redirect(_back(app_id))
            before = app_snapshot(client_app)
            secret = app_service.set_callback_url(
                client_app, client_app.callback_url, **policy_kwargs()
            )
            audit.record(
                "app_callback_enable",
                target=app_target(client_app),
                before=before,
                after=app_snapshot(client_app),
                detail="new signing secret issued" if secret else None,
            )
    except InvalidRequestError as err:
        flash(_("The callback URL is refused: %(message)s", message=err.message), "error")
        return redirect(_back(app_id))
    flash(_("Callbacks of %(code)s are enabled again.", code=client_app.code), "success")
    if secret:
        return show_secret(client_app, secret, rotated=False)
    return redirect(_back(app_id))


@bp.post("/apps/<int:app_id>/callbacks/rotate-secret")
def callback_rotate_secret(app_id: int):
    if not ConfirmedActionForm().validate():
        flash(_("Tick the box to confirm first."), "error")
        return redirect(url_for("admin.app_edit", app_id=app_id))
    with writing():
        client_app = _locked_app(app_id)
        if not client_app.signing_secret:
            flash(_("This app has no signing secret yet: set a callback URL first."), "error")
            return redirect(url_for("admin.app_edit", app_id=app_id))
        secret = app_service.rotate_callback_secret(client_app)
        until = client_app.previous_secret_expires_at
        audit.record(
            "app_callback_rotate_secret",
            target=app_target(client_app),
            detail=f"the previous secret also signs until {until:%Y-%m-%d %H:%M} UTC"
            if until
            else None,
        )
    return show_secret(client_app, secret, rotated=True)
