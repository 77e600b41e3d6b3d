"""Callbacks to client apps in the dashboard: the endpoint's state, re-enabling it, rotating the
signing secret, the delivery log with every attempt, resending one event or all failed since a
time. The rules live in `app.apps` and `app.payments`; these views check, call, audit, render.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from .. import apps as app_service
from .. import payments
from ..database import begin_write, lock_row
from ..errors import GatewayError
from ..extensions import db
from ..models import App, CallbackEvent, CallbackState, Transaction
from ..services import gateway
from . import audit, bp, queries, safe_next, search_term
from .forms import CallbackRecoverForm, ConfirmedActionForm, ConfirmForm

STATES = [s.value for s in CallbackState]


def policy_kwargs() -> dict[str, Any]:
    """What `app.apps.set_callback_url` needs to judge a URL: the allowed hosts, and whether
    real money is at stake (https required)."""
    return {
        "policy": gateway().callback_policy,
        "production": gateway().settings.midtrans.is_production,
    }


def lock_app(app_id: int) -> App:
    """Start a write unit and lock the app's row, read afresh (another admin or the worker may
    have changed it since the page was read)."""
    begin_write()
    client_app = lock_row(App, app_id)
    if client_app is None:
        db.session.rollback()
        abort(404)
    return client_app


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def snapshot(client_app: App) -> dict[str, Any]:
    """What the audit log keeps of an app, its callback endpoint included (never a secret)."""
    return {
        **app_service.snapshot(client_app),
        "callback_url": client_app.callback_url,
        "callback_disabled_at": _iso(client_app.callback_disabled_at),
        "callback_disabled_reason": client_app.callback_disabled_reason,
        "callback_failing_since": _iso(client_app.callback_failing_since),
    }


def show_secret(client_app: App, secret: str, *, rotated: bool) -> Response:
    """The signing secret, this once; the page is never cached."""
    response = current_app.make_response(
        render_template(
            "admin/callback_secret.html",
            app=client_app,
            secret=secret,
            rotated=rotated,
            overlap_until=client_app.previous_secret_expires_at if rotated else None,
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _target(client_app: App) -> str:
    return f"app:{client_app.code}"


def _back(app_id: int) -> str:
    return safe_next(request.form.get("next"), url_for("admin.app_edit", app_id=app_id))


def _note_if_not_sending(client_app: App) -> None:
    if not client_app.callback_url:
        flash(_("This app has no callback URL: nothing is sent until one is set."), "info")
    elif client_app.callback_disabled_at:
        flash(_("Callbacks of this app are disabled: nothing is sent until re-enabled."), "info")


# -- the endpoint ----------------------------------------------------------------------------


@bp.post("/apps/<int:app_id>/callbacks/enable")
def callback_enable(app_id: int):
    """Deliver to a disabled endpoint again: setting the same URL again re-enables it."""
    client_app = lock_app(app_id)
    if not client_app.callback_url:
        db.session.rollback()
        flash(_("This app has no callback URL to enable."), "error")
        return redirect(_back(app_id))
    before = snapshot(client_app)
    try:
        secret = app_service.set_callback_url(
            client_app, client_app.callback_url, **policy_kwargs()
        )
    except GatewayError as err:
        db.session.rollback()
        flash(_("The callback URL is refused: %(message)s", message=err.message), "error")
        return redirect(_back(app_id))
    db.session.commit()
    audit.record(
        "app_callback_enable",
        target=_target(client_app),
        before=before,
        after=snapshot(client_app),
        detail="new signing secret issued" if secret else None,
    )
    flash(_("Callbacks of %(code)s are enabled again.", code=client_app.code), "success")
    if secret:
        return show_secret(client_app, secret, rotated=False)
    return redirect(_back(app_id))


@bp.post("/apps/<int:app_id>/callbacks/rotate-secret")
def callback_rotate_secret(app_id: int):
    if not ConfirmedActionForm().validate():
        flash(_("Tick the box to confirm first."), "error")
        return redirect(url_for("admin.app_edit", app_id=app_id))
    client_app = lock_app(app_id)
    if not client_app.signing_secret:
        db.session.rollback()
        flash(_("This app has no signing secret yet: set a callback URL first."), "error")
        return redirect(url_for("admin.app_edit", app_id=app_id))
    secret = app_service.rotate_callback_secret(client_app)
    db.session.commit()
    until = client_app.previous_secret_expires_at
    audit.record(
        "app_callback_rotate_secret",
        target=_target(client_app),
        detail=f"the previous secret also signs until {until:%Y-%m-%d %H:%M} UTC"
        if until
        else None,
    )
    return show_secret(client_app, secret, rotated=True)


# -- the delivery log ------------------------------------------------------------------------


def _default_since(client_app: App) -> datetime:
    """Where "recover" starts by default: when the endpoint began failing, else a day ago."""
    start = client_app.callback_failing_since or datetime.now(UTC) - timedelta(days=1)
    return start.astimezone(queries.WIB).replace(tzinfo=None, second=0, microsecond=0)


@bp.get("/apps/<int:app_id>/callbacks")
def callback_log(app_id: int):
    client_app = app_service.get_app_or_raise(app_id)
    state = request.args.get("state") or None
    if state not in STATES:
        state = None
    q = search_term(request.args.get("q"))
    order = _order_of(app_id, request.args.get("txn", type=int))
    page = queries.callback_events_page(
        app_id,
        state=state,
        q=q,
        page=request.args.get("page", 1, type=int) or 1,
        txn_id=order.id if order else None,
    )
    args = {k: v for k, v in {"state": state, "q": q, "txn": order and order.id}.items() if v}
    return render_template(
        "admin/callbacks.html",
        app=client_app,
        page=page,
        state=state,
        states=STATES,
        q=q,
        order=order,
        args=args,
        counts=queries.callback_counts(app_id),
        form=ConfirmForm(formdata=None),
        recover_form=CallbackRecoverForm(formdata=None, since=_default_since(client_app)),
    )


def _order_of(app_id: int, txn_id: int | None) -> Transaction | None:
    """The app's order a `txn=` filter names; None for anything else (no such row, another
    app's order, a number beyond the database's INTEGER)."""
    if txn_id is None or not 0 < txn_id < 2**31:
        return None
    txn = db.session.get(Transaction, txn_id)
    return txn if txn is not None and txn.app_id == app_id else None


def _get_event(app_id: int, event_pk: int) -> CallbackEvent:
    event = db.session.get(CallbackEvent, event_pk)
    if event is None or event.app_id != app_id:
        abort(404)
    return event


@bp.get("/apps/<int:app_id>/callbacks/<int:event_pk>")
def callback_event(app_id: int, event_pk: int):
    event = _get_event(app_id, event_pk)
    return render_template(
        "admin/callback_event.html",
        app=event.app,
        event=event,
        attempts=queries.callback_attempts(event.id),
        form=ConfirmForm(formdata=None),
    )


@bp.post("/apps/<int:app_id>/callbacks/<int:event_pk>/resend")
def callback_resend(app_id: int, event_pk: int):
    event = _get_event(app_id, event_pk)
    client_app, order_id = event.app, event.transaction.order_id
    before = {"state": event.state, "attempts": event.attempts}
    event = payments.resend_event(event.id)
    audit.record(
        "callback_resend",
        target=f"callback:{event.event_id}",
        before=before,
        after={"state": event.state},
        detail=f"app {client_app.code}, order {order_id}",
    )
    flash(
        _("Callback %(id)s is queued again, with the same webhook-id.", id=event.event_id),
        "success",
    )
    _note_if_not_sending(client_app)
    default = url_for("admin.callback_event", app_id=app_id, event_pk=event.id)
    return redirect(safe_next(request.form.get("next"), default))


@bp.post("/apps/<int:app_id>/callbacks/recover")
def callback_recover(app_id: int):
    client_app = app_service.get_app_or_raise(app_id)
    form = CallbackRecoverForm()
    # The first day there is cannot be moved from WIB to UTC (an overflow, a 500).
    if not form.validate() or form.since.data.year < 2:
        flash(_("Give the date and time (WIB) to recover failed callbacks from."), "error")
        return redirect(url_for("admin.callback_log", app_id=app_id))
    since = queries.wib_to_utc(form.since.data)
    count = payments.recover_failed(app_id, since)
    audit.record(
        "callback_recover",
        target=_target(client_app),
        detail=f"failed since {since.astimezone(queries.WIB):%Y-%m-%d %H:%M} WIB: "
        f"{count} queued again",
    )
    flash(
        ngettext(
            "%(num)d failed callback is queued again.",
            "%(num)d failed callbacks are queued again.",
            count,
        ),
        "success",
    )
    if count:
        _note_if_not_sending(client_app)
    return redirect(url_for("admin.callback_log", app_id=app_id, state="pending"))
