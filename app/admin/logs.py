"""The logs: Midtrans's notifications as received (all, of one outcome, about one order) and
the admins' audit log."""

from __future__ import annotations

from flask import abort, render_template, request
from sqlalchemy import func, select

from ..database import reading
from ..extensions import db
from ..models import Notification, NotificationOutcome, Transaction
from . import bp
from .audit import ACTIONS
from .common import Page, order_filter, page_number, paginate
from .models import AuditEntry
from .transactions_queries import notifications_about


@bp.get("/notifications")
def notifications():
    outcome = request.args.get("outcome") or None
    if outcome not in set(NotificationOutcome):
        outcome = None
    with reading():
        order = order_filter(request.args.get("txn", type=int))
        page = notifications_page(outcome, page_number(), txn=order)
        args = {k: v for k, v in {"outcome": outcome, "txn": order and order.id}.items() if v}
        return render_template(
            "admin/notifications.html",
            page=page,
            outcome=outcome,
            outcomes=[o.value for o in NotificationOutcome],
            order=order,
            args=args,
        )


@bp.get("/notifications/<int:notification_id>")
def notification(notification_id: int):
    """One notification with its whole body (the lists show the start of each)."""
    with reading():
        found = db.session.get(Notification, notification_id)
        if found is None:
            abort(404)
        return render_template("admin/notification.html", n=found)


@bp.get("/audit")
def audit_log():
    action = request.args.get("action") or None
    if action not in ACTIONS:
        action = None
    with reading():
        page = audit_page(action, page_number())
        return render_template("admin/audit.html", page=page, action=action, actions=ACTIONS)


def notifications_page(outcome: str | None, page: int, *, txn: Transaction | None = None) -> Page:
    """Notifications, newest first: all, those of one outcome, and/or those about one order."""
    query = select(Notification)
    count = select(func.count()).select_from(Notification)
    if outcome:
        query = query.where(Notification.outcome == outcome)
        count = count.where(Notification.outcome == outcome)
    if txn is not None:
        query = query.where(notifications_about(txn))
        count = count.where(notifications_about(txn))
    return paginate(query.order_by(Notification.id.desc()), count, page)


def audit_page(action: str | None, page: int) -> Page:
    query = select(AuditEntry)
    count = select(func.count()).select_from(AuditEntry)
    if action:
        query = query.where(AuditEntry.action == action)
        count = count.where(AuditEntry.action == action)
    return paginate(query.order_by(AuditEntry.id.desc()), count, page)
