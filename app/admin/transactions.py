"""The transaction pages: the filtered list, its CSV export, an order's page, and what an admin
does to an order at Midtrans (sync, cancel, expire, refund) through `app.payments`."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import date, datetime

from flask import (
    Response,
    abort,
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

from .. import payments
from ..database import reading
from ..errors import GatewayError, NotFoundError
from ..extensions import db
from ..models import Transaction, TransactionEvent, TxStatus
from ..payments.actions import allows
from ..payments.outcomes import OUTCOMES
from ..qr import qr_svg
from ..services import gateway
from . import audit, bp, meaning
from . import transactions_queries as queries
from .common import WIB, apps_by_id, page_number, search_term
from .forms import CaptureForm, ConfirmedActionForm, ConfirmForm, RefundForm, TxFilterForm

log = logging.getLogger(__name__)


def _day(field) -> date | None:
    """A date filter the query can use: none when invalid, or the first or last day there
    is (its Jakarta midnight in UTC lies outside what a datetime holds: a 500)."""
    if field.errors or field.data is None or not date.min < field.data < date.max:
        return None
    return field.data


def _filter_form() -> tuple[TxFilterForm, queries.TxFilter]:
    form = TxFilterForm(request.args, meta={"csrf": False})
    apps = apps_by_id()
    form.app.choices = [("", _("All apps"))] + [(str(a.id), a.code) for a in apps.values()]
    form.status.choices = [("", _("All statuses"))] + [
        (s.value, meaning.word(meaning.STATUS_WORDS, s.value)) for s in TxStatus
    ]
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
    with reading():
        form, flt = _filter_form()
        page = queries.transactions_page(flt, page_number())
        args = {k: v for k, v in request.args.items() if k != "page" and v}
        return render_template(
            "admin/transactions.html", form=form, page=page, apps=apps_by_id(), args=args
        )


@bp.get("/transactions.csv")
def transactions_csv():
    with reading():
        _, flt = _filter_form()
    stamp = datetime.now(WIB).strftime("%Y%m%d-%H%M")
    return Response(
        stream_with_context(_csv_chunks(flt)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="transactions-{stamp}.csv"'},
    )


def _csv_chunks(flt: queries.TxFilter):
    """The export as it is streamed: one read, however long the download takes."""
    with reading():
        yield from queries.transactions_csv(flt)


def _get_transaction(txn_id: int) -> Transaction:
    """The order, read in a unit of its own (none stays open across a call to Midtrans)."""
    try:
        with reading():
            return payments.get_transaction_by_id_or_raise(txn_id)
    except NotFoundError:
        abort(404)


@bp.get("/transactions/<int:txn_id>")
def transaction(txn_id: int):
    with reading():
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
        # What may still be refunded (the fee the payer paid included): the form's default.
        left_to_refund = max(payments.refundable_amount(txn), 0)
        refund_form = RefundForm(formdata=None, amount=left_to_refund)
        # Made once per rendered form: a double submit sends the same key, and Midtrans refunds
        # once.
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
            capture_form=CaptureForm(formdata=None, amount=txn.amount),
            qr_svg=qr_svg,  # the Core payment's QR, drawn from its stored payload
            left_to_refund=left_to_refund,
            # What the page offers is what `app.payments` allows (one table, `RULES`).
            can_refund=allows("refund", outcome),
            can_decide=allows("approve", outcome),
            can_capture=allows("capture", outcome),
            can_cancel=allows("cancel", outcome),
            can_expire=allows("expire", outcome),
        )


def _unconfirmed(txn: Transaction) -> Response | None:
    """Back to the order page when the action's confirm box was not ticked; None when it was."""
    if ConfirmedActionForm().validate():
        return None
    flash(_("Tick the box to confirm first."), "error")
    return redirect(url_for("admin.transaction", txn_id=txn.id))


def _run_action(txn: Transaction, action: str, call: Callable, *, detail: str | None = None):
    """Call Midtrans through `app.payments` (which keeps its own units of work, none open
    across the call), audit the outcome, flash it: never a 500."""
    before = {"status": txn.status, "fraud_status": txn.fraud_status}
    target = f"transaction:{txn.id}:{txn.midtrans_order_id}"
    try:
        txn, applied = call()
    except GatewayError as err:
        audit.record(action, target=target, before=before, detail=f"failed: {err.message}")
        flash(_("Midtrans said: %(message)s", message=err.message), "error")
    except Exception:  # an unexpected answer must not turn the button into a 500 page
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
    if refused := _unconfirmed(txn):
        return refused
    midtrans = gateway().midtrans
    operation = payments.cancel_transaction if action == "cancel" else payments.expire_transaction
    return _run_action(txn, f"transaction_{action}", lambda: operation(txn.id, midtrans=midtrans))


def _refused(form, txn: Transaction, fields) -> Response:
    """Back to the order page with the first field's error (checked in `fields`' order)."""
    for field in fields:
        if field.errors:
            flash(f"{field.label.text}: {field.errors[0]}", "error")
            break
    return redirect(url_for("admin.transaction", txn_id=txn.id))


@bp.post("/transactions/<int:txn_id>/refund")
def transaction_refund(txn_id: int):
    txn = _get_transaction(txn_id)
    form = RefundForm()
    if not form.validate():
        return _refused(form, txn, (form.confirm, form.amount, form.reason, form.refund_key))
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
            requested_by=f"admin:{g.admin.username}",
        ),
        detail=f"amount {form.amount.data}, refund_key {form.refund_key.data}: {form.reason.data}",
    )


@bp.post("/transactions/<int:txn_id>/<any(approve, deny):action>")
def transaction_decide(txn_id: int, action: str):
    """Approve or deny a payment Midtrans's fraud check holds (`challenge`)."""
    txn = _get_transaction(txn_id)
    if refused := _unconfirmed(txn):
        return refused
    midtrans = gateway().midtrans
    return _run_action(
        txn,
        f"transaction_{action}",
        lambda: payments.decide_challenge(txn.id, action, midtrans=midtrans),
    )


@bp.post("/transactions/<int:txn_id>/capture")
def transaction_capture(txn_id: int):
    """Capture an authorized card payment, all of it or less."""
    txn = _get_transaction(txn_id)
    form = CaptureForm()
    if not form.validate():
        return _refused(form, txn, (form.confirm, form.amount))
    midtrans = gateway().midtrans
    return _run_action(
        txn,
        "transaction_capture",
        lambda: payments.capture_transaction(txn.id, amount=form.amount.data, midtrans=midtrans),
        detail=f"amount {form.amount.data}",
    )
