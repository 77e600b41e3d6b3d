"""The audit log: every admin action, who did it, from where, and what it changed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import g, has_request_context, request

from ..database import writing
from ..extensions import db
from ..models import App
from .models import AuditEntry

# Who an entry of the command line is (`flask --app wsgi apps|admins ...`), and what it says.
COMMAND_LINE = "cli"
FROM_COMMAND_LINE = "from the command line"

ACTIONS = (
    "login_ok",
    "login_failed",
    "logout",
    "app_create",
    "app_rotate_key",
    "app_disable",
    "app_enable",
    "app_edit",
    "app_callback_url",
    "app_callback_enable",
    "app_callback_rotate_secret",
    "callback_resend",
    "callback_recover",
    "transaction_sync",
    "transaction_cancel",
    "transaction_expire",
    "transaction_refund",
    "transaction_approve",
    "transaction_deny",
    "transaction_capture",
    "admin_create",
    "password_change",
    "mfa_enable",
    "mfa_disable",
    "mfa_recovery_codes",
    "mfa_reset",
    "mfa_required",
)


def _storable(text: str) -> str:
    """PostgreSQL text cannot hold NUL (a refund reason, a login name typed with one): the
    entry keeps it visible as an escape instead of failing after the action happened."""
    return text.replace("\x00", "\\u0000")


def record(
    action: str,
    *,
    target: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    detail: str | None = None,
    username: str | None = None,
) -> None:
    """Write one entry for the current request's admin (or `username` before a login, or for
    a command: no request, no address). Inside
    the unit of work of the action it records, it is committed with the action; alone, it is a
    unit of its own, so an action that happened is logged even if a later step fails."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    admin = g.get("admin")
    name = username if username is not None else admin.username if admin else "-"
    entry = AuditEntry(
        admin_id=admin.id if admin is not None else None,
        username=_storable(name)[:80],
        action=action,
        target=_storable(target)[:120] if target else None,
        ip=((request.remote_addr or "")[:64] or None) if has_request_context() else None,
        before=before,
        after=after,
        detail=_storable(detail)[:2000] if detail else None,
    )
    with writing():
        db.session.add(entry)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def app_snapshot(client_app: App) -> dict[str, Any]:
    """What the audit log keeps of an app, its callback endpoint included (never its key, the
    key's hash or a signing secret)."""
    return {
        "code": client_app.code,
        "name": client_app.name,
        "order_prefix": client_app.order_prefix,
        "active": client_app.active,
        "key_hint": client_app.key_hint,
        "allow_refunds": client_app.allow_refunds,
        "callback_url": client_app.callback_url,
        "callback_disabled_at": _iso(client_app.callback_disabled_at),
        "callback_disabled_reason": client_app.callback_disabled_reason,
        "callback_failing_since": _iso(client_app.callback_failing_since),
    }


def app_target(client_app: App) -> str:
    return f"app:{client_app.code}"
