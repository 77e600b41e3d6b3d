"""The dashboard's own tables: login sessions, login throttling, and the audit log.

Sessions and throttles live in the database, not in process memory, so every gunicorn worker
sees the same logins, logouts and waits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false as sa_false

from ..extensions import db
from ..models import UTCDateTime, utcnow


class AdminSession(db.Model):
    """One logged-in browser. The cookie carries a random id; only its SHA-256 is stored, so a
    copy of the database cannot be replayed as a cookie. Logout deletes the row."""

    __tablename__ = "admin_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admins.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # The password was right but the second factor is still to come: not logged in yet.
    mfa_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())


class LoginThrottle(db.Model):
    """A leaky bucket of recent failed password checks (`app.admin.throttle`): of one address
    for one username, or, with `username` "", of one address for any username. Kept for
    usernames that exist and that do not alike, so a wait reveals nothing about an account."""

    __tablename__ = "admin_login_throttles"
    __table_args__ = (UniqueConstraint("address", "username"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(64))  # an IPv4 address or an IPv6 /64
    username: Mapped[str] = mapped_column(String(80))
    level: Mapped[float] = mapped_column(Float, default=0.0)  # failures not yet forgotten
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditEntry(db.Model):
    """Who did what, when, from where, with the state before and after. Never a secret."""

    __tablename__ = "admin_audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    admin_id: Mapped[int | None] = mapped_column(
        ForeignKey("admins.id", ondelete="SET NULL"), nullable=True
    )
    username: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40), index=True)
    target: Mapped[str | None] = mapped_column(String(120), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    before: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
