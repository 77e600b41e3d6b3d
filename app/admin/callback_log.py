"""An app's callback delivery log: every event and attempt, resend one event (same
webhook-id), recover the failed ones since a time. The rules live in `app.payments`; a change
and its audit entry are one unit of work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from .. import apps as app_service
from .. import payments
from ..database import reading, writing
from ..extensions import db
from ..models import App, CallbackEvent, CallbackState
from . import audit, bp
from . import callback_log_queries as queries
from .audit import app_target
from .common import WIB, order_filter, page_number, safe_next, search_term
from .forms import CallbackRecoverForm, ConfirmForm

STATES = [s.value for s in CallbackState]


def _note_if_not_sending(client_app: App) -> None:
    if not client_app.callback_url:
        flash(_("This app has no callback URL: nothing is sent until one is set."), "info")
    elif client_app.callback_disabled_at:
        flash(_("Callbacks of this app are disabled: nothing is sent until re-enabled."), "info")


def _default_since(client_app: App) -> datetime:
    """Where "recover" starts by default: when the endpoint began failing, else a day ago."""
    start = client_app.callback_failing_since or datetime.now(UTC) - timedelta(days=1)
    return start.astimezone(WIB).replace(tzinfo=None, second=0, microsecond=0)


def _wib_to_utc(moment: datetime) -> datetime:
    """A time typed in Jakarta (a datetime-local input, naive) as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=WIB)
    return moment.astimezone(UTC)


@bp.get("/apps/<int:app_id>/callbacks")
def callback_log(app_id: int):
    state = request.args.get("state") or None
    if state not in STATES:
        state = None
    q = search_term(request.args.get("q"))
    with reading():
        client_app = app_service.get_app_or_raise(app_id)
        order = order_filter(request.args.get("txn", type=int), app_id=app_id)
        page = queries.callback_events_page(
            app_id, state=state, q=q, page=page_number(), txn_id=order.id if order else None
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


def _get_event(app_id: int, event_pk: int) -> CallbackEvent:
    event = db.session.get(CallbackEvent, event_pk)
    if event is None or event.app_id != app_id:
        abort(404)
    return event


@bp.get("/apps/<int:app_id>/callbacks/<int:event_pk>")
def callback_event(app_id: int, event_pk: int):
    with reading():
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
    with writing():
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
    form = CallbackRecoverForm()
    with writing():
        client_app = app_service.get_app_or_raise(app_id)
        # The first day there is cannot be moved from WIB to UTC (an overflow, a 500).
        if not form.validate() or form.since.data.year < 2:
            flash(_("Give the date and time (WIB) to recover failed callbacks from."), "error")
            return redirect(url_for("admin.callback_log", app_id=app_id))
        since = _wib_to_utc(form.since.data)
        count = payments.recover_failed(app_id, since)
        audit.record(
            "callback_recover",
            target=app_target(client_app),
            detail=f"failed since {since.astimezone(WIB):%Y-%m-%d %H:%M} WIB: {count} queued again",
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
