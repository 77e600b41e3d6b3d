"""The audit log: every admin action, who did it, from where, and what it changed."""

from __future__ import annotations

from typing import Any

from flask import g, has_request_context, request

from ..database import writing
from ..extensions import db
from .models import AuditEntry

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
