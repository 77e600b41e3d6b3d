"""Tables. Money is integer rupiah; times are UTC; no model method commits."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false as sa_false
from sqlalchemy.types import TypeDecorator

from .extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use datetime.now(UTC)")
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class TxStatus(enum.StrEnum):
    """Midtrans's `transaction_status` values (stored as text so a new one is never lost)."""

    PENDING = "pending"
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    SETTLEMENT = "settlement"
    DENY = "deny"
    CANCEL = "cancel"
    EXPIRE = "expire"
    FAILURE = "failure"
    REFUND = "refund"
    PARTIAL_REFUND = "partial_refund"
    CHARGEBACK = "chargeback"
    PARTIAL_CHARGEBACK = "partial_chargeback"


class LinkState(enum.StrEnum):
    """Where the Snap payment link of an order stands.

    `creating`: a Snap call is in flight; `created`: the client got a token; `failed`: Midtrans
    refused the request (no order exists there); `unknown`: the call timed out or got garbage, so
    Midtrans may hold an order nobody can see, and the next attempt must use a fresh order id.
    """

    CREATING = "creating"
    CREATED = "created"
    FAILED = "failed"
    UNKNOWN = "unknown"


class NotificationOutcome(enum.StrEnum):
    """What became of a Midtrans notification."""

    RECEIVED = "received"  # stored, not processed yet
    REJECTED = "rejected"  # bad signature or malformed: never applied
    UNMATCHED = "unmatched"  # authentic, but for an order this gateway does not know
    UNCONFIRMED = "unconfirmed"  # the status API could not be reached: the worker retries
    APPLIED = "applied"  # the confirmed status moved the order forward
    UNCHANGED = "unchanged"  # duplicate or stale: the order already was there or further
    FLAGGED = "flagged"  # amount mismatch: kept for an admin, not applied


class EventSource(enum.StrEnum):
    CHARGE = "charge"
    NOTIFICATION = "notification"
    STATUS = "status"
    RECONCILIATION = "reconciliation"
    ADMIN = "admin"
    CLIENT = "client"  # a client app's action through the API (cancel, refund, ...)
    RECOVERY = "recovery"  # rebuilt from Midtrans's word (the database had lost the order)


class App(db.Model):
    """A client application (billing system, shop, donation app) with its API key."""

    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64))
    key_hint: Mapped[str] = mapped_column(String(16), default="")
    order_prefix: Mapped[str] = mapped_column(String(40), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Callbacks (Standard Webhooks). The secrets must be kept to sign; they are never shown
    # again after creation. The previous secret keeps signing until it expires (rotation).
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    signing_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    previous_signing_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    callback_failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    callback_disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    callback_disabled_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Refunds through the API move money out: only for apps an admin allowed (SPEC).
    allow_refunds: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())

    def __repr__(self) -> str:
        return f"<App {self.code}>"


class Admin(db.Model):
    __tablename__ = "admins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<Admin {self.username}>"


class AdminMfa(db.Model):
    """An admin's second factor (`app.admin_mfa`): a TOTP secret, enabled only once a code
    from it was confirmed. The secret is stored as is (the gateway has no encryption key apart
    from SECRET_KEY); it is shown only while the admin sets it up, never afterwards."""

    __tablename__ = "admin_mfa"

    admin_id: Mapped[int] = mapped_column(
        ForeignKey("admins.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[str] = mapped_column(String(64))  # base32
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # last code used


class AdminRecoveryCode(db.Model):
    """A one-time recovery code: only its SHA-256 is stored; `used_at` once it was used."""

    __tablename__ = "admin_recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admins.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class GatewaySetting(db.Model):
    """A gateway-wide setting an admin changes in the dashboard (key and a short value)."""

    __tablename__ = "gateway_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Transaction(db.Model):
    """One client order and the Snap payment behind it.

    `order_id` is the client's; `midtrans_order_id` is what Midtrans sees (prefix + order id,
    plus a suffix when an earlier attempt's outcome was unknown).
    """

    __tablename__ = "transactions"
    __table_args__ = (
        UniqueConstraint("app_id", "order_id", name="uq_transactions_app_order"),
        # The worker's search for attempts a crashed process left `creating` (a few rows).
        Index(
            "ix_transactions_creating",
            "attempt_started_at",
            sqlite_where=text("link_state = 'creating'"),
            postgresql_where=text("link_state = 'creating'"),
        ),
        # GET /transactions: an app's orders, newest change first, by keyset pages.
        Index("ix_transactions_app_updated", "app_id", "updated_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), index=True)
    order_id: Mapped[str] = mapped_column(String(50))
    midtrans_order_id: Mapped[str] = mapped_column(String(50), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(32), default=TxStatus.PENDING, index=True)
    fraud_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    payment_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    midtrans_transaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    link_state: Mapped[str] = mapped_column(String(16), default=LinkState.CREATING)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    attempt_started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The process making the attempt ("host:pid:start"), so a retry can tell a crashed
    # attempt from one still in flight; and every Midtrans order id an attempt used, so no
    # Snap order made for this order is ever unaccounted for.
    attempt_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    midtrans_order_ids: Mapped[list | None] = mapped_column(JSON, nullable=True)
    snap_token: Mapped[str | None] = mapped_column(String(255), nullable=True)
    redirect_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A Core API charge's answer (what the payer needs: VA number, bill key, QR, 3DS URL),
    # kept for replays and `GET /status` while pending; None for a Snap link.
    payment_details: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # Where this order's callbacks go (the client's per-order `callback_url`), else the app's.
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    request_body: Mapped[dict] = mapped_column(JSON)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    midtrans_response: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    flag: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # True while `status` is one the gateway set itself (an unpaid link it expired), not
    # Midtrans's word: Midtrans's later answer still applies (flagged), never dropped.
    status_by_gateway: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=sa_false()
    )
    # What Midtrans has refunded (and charged back) in all, and the fee Midtrans's fee
    # imposition added to what the payer paid (None when none was added).
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    customer_imposed_fee: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Reconciliation: when the worker next asks Midtrans, how often it has, and its claim.
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    check_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    app: Mapped[App] = relationship()

    def __repr__(self) -> str:
        return f"<Transaction {self.midtrans_order_id} {self.status}>"


class PaymentAttempt(db.Model):
    """Every Midtrans order id an order's attempts used, so a notification or a status answer
    about an earlier attempt (a link paid late, after the order was renewed) still finds its
    order: it is applied and flagged, never lost."""

    __tablename__ = "payment_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("transactions.id"), index=True)
    midtrans_order_id: Mapped[str] = mapped_column(String(50), unique=True)
    amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # what it charged
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RefundState(enum.StrEnum):
    REQUESTING = "requesting"  # sent (or about to be) to Midtrans; the answer is not known yet
    DONE = "done"
    REFUSED = "refused"  # Midtrans (or the gateway's own rules) said no: final for this key


class Refund(db.Model):
    """One refund a client app (or an admin) asked for, under its `refund_key`: the same key
    again answers this record instead of refunding twice (Midtrans dedupes by the key too)."""

    __tablename__ = "refunds"
    __table_args__ = (UniqueConstraint("transaction_id", "refund_key", name="uq_refunds_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("transactions.id"), index=True)
    refund_key: Mapped[str] = mapped_column(String(50))
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(255), default="")
    direct: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default=RefundState.REQUESTING)
    error: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the refusal, as answered
    requested_by: Mapped[str] = mapped_column(String(100), default="")  # "api" or "admin:<name>"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class TransactionEvent(db.Model):
    """Every change of a transaction's state, in order: the timeline and the callbacks' source."""

    __tablename__ = "transaction_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("transactions.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_status: Mapped[str] = mapped_column(String(32))
    fraud_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    source: Mapped[str] = mapped_column(String(16))
    notification_id: Mapped[int | None] = mapped_column(
        ForeignKey("notifications.id"), nullable=True
    )
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Notification(db.Model):
    """A Midtrans HTTP notification exactly as received, and what became of it.

    Every one is kept, forged and duplicate ones too: it is the evidence behind each change
    and what the worker confirms when the status API was down at arrival.
    """

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    body: Mapped[str] = mapped_column(Text)
    remote_addr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    order_id: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    midtrans_transaction_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    transaction_status: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status_code: Mapped[str | None] = mapped_column(String(16), nullable=True)
    gross_amount: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payment_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    signature_valid: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str] = mapped_column(
        String(16), default=NotificationOutcome.RECEIVED, index=True
    )
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    transaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("transactions.id"), nullable=True, index=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    transaction: Mapped[Transaction | None] = relationship()


class CallbackState(enum.StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt
    DELIVERED = "delivered"  # the client answered 2xx
    FAILED = "failed"  # retries exhausted or endpoint gone (410): "recover" sends it again


class CallbackEvent(db.Model):
    """An event for a client app, written in the same database transaction as the change it
    reports (an outbox), so a crash can never lose it. `payload` holds the exact bytes sent
    on every attempt; `event_id` is the `webhook-id`, the same on every retry."""

    __tablename__ = "callback_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), index=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("transactions.id"), index=True)
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=CallbackState.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    app: Mapped[App] = relationship()
    transaction: Mapped[Transaction] = relationship()


class CallbackAttempt(db.Model):
    """One try at delivering an event: the delivery log admins read."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    callback_event_id: Mapped[int] = mapped_column(ForeignKey("callback_events.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    url: Mapped[str] = mapped_column(Text)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_excerpt: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
