"""Dashboard pages: overview, app keys, transactions, notifications, audit log."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime

from flask import (
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import select

from .. import apps as app_service
from .. import payments
from ..errors import GatewayError, NotFoundError
from ..extensions import db
from ..models import Notification, NotificationOutcome, Transaction, TransactionEvent, TxStatus
from ..payments.outcomes import OUTCOMES, REFUNDABLE_OUTCOMES
from ..services import gateway
from . import audit, bp, callbacks, meaning, queries, search_term
from .audit import ACTIONS
from .forms import (
    AppCreateForm,
    AppEditForm,
    ConfirmedActionForm,
    ConfirmForm,
    RefundForm,
    TxFilterForm,
)

log = logging.getLogger(__name__)


def _page_number() -> int:
    return request.args.get("page", 1, type=int) or 1


# -- overview --------------------------------------------------------------------------------


@bp.get("/")
def overview():
    data = queries.overview()
    return render_template(
        "admin/overview.html", data=data, chart=queries.chart(data["days"]), apps=_apps()
    )


def _apps():
    return queries.apps_by_id()


# -- app keys --------------------------------------------------------------------------------


@bp.get("/apps")
def apps():
    return render_template("admin/apps.html", apps=list(_apps().values()), form=ConfirmForm())


def _show_key(new_key: app_service.NewKey, *, created: bool) -> Response:
    response = current_app.make_response(
        render_template(
            "admin/app_key.html",
            app=new_key.app,
            key=new_key.key,
            created=created,
            signing_secret=new_key.signing_secret,
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/apps/new", methods=["GET", "POST"])
def app_new():
    form = AppCreateForm()
    if form.validate_on_submit():
        prefix = form.order_prefix.data or None
        if form.no_prefix.data:
            prefix = ""
        try:
            new_key = app_service.create_client_app(
                code=form.code.data,
                name=form.name.data,
                order_prefix=prefix,
                callback_url=form.callback_url.data or None,
                **callbacks.policy_kwargs(),
            )
        except GatewayError as err:
            db.session.rollback()
            _field_error(form, err)
        else:
            audit.record(
                "app_create",
                target=f"app:{new_key.app.code}",
                after=callbacks.snapshot(new_key.app),
            )
            return _show_key(new_key, created=True)
    return render_template("admin/app_form.html", form=form, app=None), 400 if form.errors else 200


def _field_error(form, err: GatewayError) -> None:
    field = getattr(form, err.details.get("field") or "", None)
    if field is not None:
        field.errors = [*field.errors, err.message]
    else:
        flash(err.message, "error")


@bp.route("/apps/<int:app_id>", methods=["GET", "POST"])
def app_edit(app_id: int):
    client_app = app_service.get_app_or_raise(app_id)
    form = AppEditForm(obj=client_app)
    if form.validate_on_submit():
        saved = _save_app(app_id, form)
        if saved is not None:
            return saved
    return render_template(
        "admin/app_form.html",
        form=form,
        app=client_app,
        confirm_form=ConfirmedActionForm(formdata=None),
        action_form=ConfirmForm(formdata=None),
        now=datetime.now(UTC),
    ), 400 if form.errors else 200


def _save_app(app_id: int, form: AppEditForm) -> Response | None:
    """Name, prefix and callback URL in one write: a refused URL changes nothing else. The
    URL is set only when it changed, so saving a name never re-enables a disabled endpoint."""
    client_app = callbacks.lock_app(app_id)
    before = callbacks.snapshot(client_app)
    new_url = form.callback_url.data or None
    url_changed = new_url != client_app.callback_url
    secret = None
    try:
        if url_changed:
            secret = app_service.set_callback_url(client_app, new_url, **callbacks.policy_kwargs())
        app_service.edit_app(app_id, name=form.name.data, order_prefix=form.order_prefix.data)
    except GatewayError as err:
        db.session.rollback()
        _field_error(form, err)
        return None
    after = callbacks.snapshot(client_app)
    target = f"app:{client_app.code}"
    details_changed = any(before[k] != after[k] for k in ("name", "order_prefix"))
    if details_changed or not url_changed:
        audit.record("app_edit", target=target, before=before, after=after)
    if url_changed:
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
    if secret:
        return callbacks.show_secret(client_app, secret, rotated=False)
    if url_changed and new_url is None:
        flash(_("App %(code)s was saved; its callbacks are stopped.", code=client_app.code), "info")
    else:
        flash(_("App %(code)s was saved.", code=client_app.code), "success")
    return redirect(url_for("admin.apps"))


@bp.post("/apps/<int:app_id>/rotate")
def app_rotate(app_id: int):
    client_app = app_service.get_app_or_raise(app_id)
    if not ConfirmedActionForm().validate():
        flash(_("Tick the box to confirm: the old key stops working at once."), "error")
        return redirect(url_for("admin.app_edit", app_id=app_id))
    before = app_service.snapshot(client_app)
    new_key = app_service.rotate_key(app_id)
    audit.record(
        "app_rotate_key",
        target=f"app:{client_app.code}",
        before=before,
        after=app_service.snapshot(new_key.app),
    )
    return _show_key(new_key, created=False)


@bp.post("/apps/<int:app_id>/<any(disable, enable):action>")
def app_toggle(app_id: int, action: str):
    client_app = app_service.get_app_or_raise(app_id)
    before = app_service.snapshot(client_app)
    app_service.set_active(app_id, action == "enable")
    audit.record(
        f"app_{action}",
        target=f"app:{client_app.code}",
        before=before,
        after=app_service.snapshot(client_app),
    )
    if action == "enable":
        flash(_("App %(code)s is enabled.", code=client_app.code), "success")
    else:
        flash(
            _("App %(code)s is disabled: its requests now get 401.", code=client_app.code), "info"
        )
    return redirect(url_for("admin.apps"))


# -- transactions ----------------------------------------------------------------------------


def _day(field) -> date | None:
    """A date filter the query can use: none when invalid, or the first or last day there
    is (its Jakarta midnight in UTC lies outside what a datetime holds: a 500)."""
    if field.errors or field.data is None or not date.min < field.data < date.max:
        return None
    return field.data


def _filter_form() -> tuple[TxFilterForm, queries.TxFilter]:
    form = TxFilterForm(request.args, meta={"csrf": False})
    apps = _apps()
    form.app.choices = [("", _("All apps"))] + [(str(a.id), a.code) for a in apps.values()]
    form.status.choices = [("", _("All statuses"))] + [(s.value, s.value) for s in TxStatus]
    form.outcome.choices = [("", _("All outcomes"))] + meaning.outcome_choices()
    form.validate()
    # Only an app that exists: "²" passes isdigit() but not int(), a huge number overflows.
    app_id = int(form.app.data) if form.app.data in {str(i) for i in apps} else None
    status = form.status.data if form.status.data in set(TxStatus) else None
    outcome = form.outcome.data if form.outcome.data in OUTCOMES else None
    flt = queries.TxFilter(
        app_id=app_id,
        status=status,
        outcome=outcome,
        date_from=_day(form.date_from),
        date_to=_day(form.date_to),
        q=search_term(form.q.data),
    )
    return form, flt


@bp.get("/transactions")
def transactions():
    form, flt = _filter_form()
    page = queries.transactions_page(flt, _page_number())
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("admin/transactions.html", form=form, page=page, apps=_apps(), args=args)


@bp.get("/transactions.csv")
def transactions_csv():
    _, flt = _filter_form()
    stamp = datetime.now(queries.WIB).strftime("%Y%m%d-%H%M")
    return Response(
        stream_with_context(queries.transactions_csv(flt)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="transactions-{stamp}.csv"'},
    )


def _get_transaction(txn_id: int) -> Transaction:
    try:
        return payments.get_transaction_by_id_or_raise(txn_id)
    except NotFoundError:
        abort(404)


@bp.get("/transactions/<int:txn_id>")
def transaction(txn_id: int):
    txn = _get_transaction(txn_id)
    events = (
        db.session.execute(
            select(TransactionEvent)
            .where(TransactionEvent.transaction_id == txn.id)
            .order_by(TransactionEvent.id)
        )
        .scalars()
        .all()
    )
    outcome = meaning.outcome_of_txn(txn)
    # What may still be refunded: Midtrans refuses more than was paid and not yet given back.
    refund_form = RefundForm(formdata=None, amount=max(txn.amount - txn.refunded_amount, 0))
    # Made once per rendered form: a double submit sends the same key, and Midtrans refunds once.
    refund_form.refund_key.data = secrets.token_urlsafe(18)
    return render_template(
        "admin/transaction.html",
        txn=txn,
        events=events,
        notifications=queries.notifications_of(txn),
        callback_events=queries.callback_events_of(txn),
        sync_form=ConfirmForm(formdata=None),
        confirm_form=ConfirmedActionForm(formdata=None),
        refund_form=refund_form,
        can_refund=outcome in REFUNDABLE_OUTCOMES,
        can_cancel=outcome in meaning.CANCELLABLE,
        can_expire=outcome in meaning.EXPIRABLE,
    )


def _run_action(txn: Transaction, action: str, call: Callable, *, detail: str | None = None):
    """Call Midtrans through `app.payments`, audit the outcome, flash it: never a 500."""
    before = {"status": txn.status, "fraud_status": txn.fraud_status}
    target = f"transaction:{txn.id}:{txn.midtrans_order_id}"
    try:
        txn, applied = call()
    except GatewayError as err:
        db.session.rollback()
        audit.record(action, target=target, before=before, detail=f"failed: {err.message}")
        flash(_("Midtrans said: %(message)s", message=err.message), "error")
    except Exception:  # an unexpected answer must not turn the button into a 500 page
        db.session.rollback()
        log.exception("admin %s of transaction %s failed", action, target)
        audit.record(action, target=target, before=before, detail="failed: unexpected error")
        flash(_("The action failed unexpectedly; see the gateway's log."), "error")
    else:
        after = {"status": txn.status, "fraud_status": txn.fraud_status}
        note = detail if applied is not None else "Midtrans has no record of this order yet"
        audit.record(action, target=target, before=before, after=after, detail=note)
        if applied is None:
            flash(_("Midtrans has no payment for this order yet (no method chosen)."), "info")
        else:
            flash(
                _(
                    "Done. The order is now %(status)s (%(outcome)s).",
                    status=txn.status,
                    outcome=meaning.LABELS[meaning.outcome_of_txn(txn)],
                ),
                "success",
            )
    return redirect(url_for("admin.transaction", txn_id=txn.id))


@bp.post("/transactions/<int:txn_id>/sync")
def transaction_sync(txn_id: int):
    txn = _get_transaction(txn_id)
    midtrans = gateway().midtrans
    return _run_action(
        txn, "transaction_sync", lambda: payments.sync_transaction(txn.id, midtrans=midtrans)
    )


@bp.post("/transactions/<int:txn_id>/<any(cancel, expire):action>")
def transaction_stop(txn_id: int, action: str):
    txn = _get_transaction(txn_id)
    if not ConfirmedActionForm().validate():
        flash(_("Tick the box to confirm first."), "error")
        return redirect(url_for("admin.transaction", txn_id=txn.id))
    midtrans = gateway().midtrans
    operation = payments.cancel_transaction if action == "cancel" else payments.expire_transaction
    return _run_action(txn, f"transaction_{action}", lambda: operation(txn.id, midtrans=midtrans))


@bp.post("/transactions/<int:txn_id>/refund")
def transaction_refund(txn_id: int):
    txn = _get_transaction(txn_id)
    form = RefundForm()
    if not form.validate():
        for field in (form.confirm, form.amount, form.reason, form.refund_key):
            if field.errors:
                flash(f"{field.label.text}: {field.errors[0]}", "error")
                break
        return redirect(url_for("admin.transaction", txn_id=txn.id))
    midtrans = gateway().midtrans
    return _run_action(
        txn,
        "transaction_refund",
        lambda: payments.refund_transaction(
            txn.id,
            amount=form.amount.data,
            reason=form.reason.data,
            refund_key=form.refund_key.data,
            midtrans=midtrans,
        ),
        detail=f"amount {form.amount.data}, refund_key {form.refund_key.data}: {form.reason.data}",
    )


# -- notifications and audit -----------------------------------------------------------------


@bp.get("/notifications")
def notifications():
    outcome = request.args.get("outcome") or None
    if outcome not in set(NotificationOutcome):
        outcome = None
    order = _order_filter(request.args.get("txn", type=int))
    page = queries.notifications_page(outcome, _page_number(), txn=order)
    args = {k: v for k, v in {"outcome": outcome, "txn": order and order.id}.items() if v}
    return render_template(
        "admin/notifications.html",
        page=page,
        outcome=outcome,
        outcomes=[o.value for o in NotificationOutcome],
        order=order,
        args=args,
    )


def _order_filter(txn_id: int | None) -> Transaction | None:
    """The order a `txn=` filter names; None for no such row (or a number beyond INTEGER)."""
    if txn_id is None or not 0 < txn_id < 2**31:
        return None
    return db.session.get(Transaction, txn_id)


@bp.get("/notifications/<int:notification_id>")
def notification(notification_id: int):
    """One notification with its whole body (the lists show the start of each)."""
    found = db.session.get(Notification, notification_id)
    if found is None:
        abort(404)
    return render_template("admin/notification.html", n=found)


@bp.get("/audit")
def audit_log():
    action = request.args.get("action") or None
    if action not in ACTIONS:
        action = None
    page = queries.audit_page(action, _page_number())
    return render_template("admin/audit.html", page=page, action=action, actions=ACTIONS)


# Which menu entry a page belongs to.
SECTIONS = {
    "app_new": "apps",
    "app_edit": "apps",
    "callback_log": "apps",
    "callback_event": "apps",
    "transaction": "transactions",
    "notification": "notifications",
    "account": "admins",
}


@bp.context_processor
def _layout():
    endpoint = (request.endpoint or "").removeprefix("admin.")
    return {"admin": g.get("admin"), "nav_section": "admin." + SECTIONS.get(endpoint, endpoint)}
