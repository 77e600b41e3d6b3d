"""POST /charge: reserve the order, create the Snap link, never charge twice."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..auth import ClientApp
from ..callback_sender import AddressPolicy, UnsafeCallbackURL
from ..database import writing
from ..errors import (
    ChargeInProgressError,
    GatewayError,
    InvalidRequestError,
    MidtransAuthError,
    MidtransRejectedError,
    MidtransUnavailableError,
    OrderConflictError,
)
from ..extensions import db
from ..midtrans import Midtrans, MidtransOrderTakenError, MidtransRefusedError
from ..models import EventSource, LinkState, Transaction, TransactionEvent, TxStatus
from ..schemas import ORDER_ID_MAX, ChargeRequest
from .callbacks import enqueue_update
from .lifecycle import (
    Applied,
    apply_in_unit,
    apply_midtrans_status,
    expire_unpaid_link,
    flag_order,
    keep_current_attempt_id,
    link_alive,
    locked_transaction,
    record_attempt_id,
    status_view,
)
from .outcomes import UNSUCCESSFUL, Outcome, outcome_of
from .recovery import RECOVERED
from .status import get_transaction_by_id_or_raise

log = logging.getLogger(__name__)

# Snap's token lifetime when the request sets neither `expiry` nor `page_expiry`.
DEFAULT_LINK_LIFETIME = timedelta(hours=24)
# The worker first asks Midtrans about a pending order this long after its link was made.
FIRST_CHECK = timedelta(minutes=2)

# New attempts with a fresh Midtrans order id after Midtrans said the id was taken.
TAKEN_RETRIES = 1
# Added to MIDTRANS_TIMEOUT: after that long a "creating" attempt has surely ended (crashed).
ATTEMPT_GRACE = timedelta(seconds=30)


# Rounds of "the last link looks dead: ask Midtrans, then decide" one /charge may make.
RENEWAL_CHECKS = 2
# Stands for "ask Midtrans about the order's current payment before renewing it".
CHECK_FIRST = -1


@dataclass(frozen=True)
class ChargeResult:
    transaction: Transaction
    replayed: bool
    adopted: bool = False  # Midtrans already held a payment under the order's id: no new link

    @property
    def has_link(self) -> bool:
        """Whether the answer is something to pay (a link, a Core charge's details); else it
        is the order's status: Midtrans already holds its payment (adopted, or the order was
        rebuilt from Midtrans's word after a restore)."""
        txn = self.transaction
        return not self.adopted and (txn.snap_token is not None or txn.payment_details is not None)


# How long a Core payment lives when Midtrans's answer has no expiry_time and the request
# set no custom_expiry (Midtrans's defaults).
CORE_LIFETIMES = {
    "bank_transfer": timedelta(hours=24),
    "echannel": timedelta(hours=24),
    "gopay": timedelta(minutes=15),
    "qris": timedelta(minutes=15),
    "credit_card": timedelta(hours=24),
}
# What a Core charge's answer holds for the payer, kept for replays and `GET /status`.
DETAIL_FIELDS = (
    "status_message",  # the charge's own (a card: "Deny by Bank [BNI] ...")
    "va_numbers",
    "permata_va_number",
    "bill_key",
    "biller_code",
    "qr_string",
    "acquirer",
    "actions",
    "redirect_url",
    "expiry_time",
)
# Midtrans's `actions` by name, and the field the answer gives each one's URL in.
ACTION_FIELDS = {"generate-qr-code": "qr_url", "deeplink-redirect": "deeplink_url"}
JAKARTA = timedelta(hours=7)


def payment_details(answer: dict) -> dict:
    """The payer's part of a Core charge's answer: VA numbers, bill key, QR string and
    image URL, GoPay's deeplink, the 3DS page, the payment's expiry."""
    details = {k: answer[k] for k in DETAIL_FIELDS if answer.get(k) is not None}
    for action in answer.get("actions") or []:
        if isinstance(action, dict) and action.get("name") in ACTION_FIELDS:
            details[ACTION_FIELDS[action["name"]]] = action.get("url")
    return details


def midtrans_time(text: object) -> datetime | None:
    """Midtrans's "2026-11-27 10:00:00" (Jakarta time) in UTC; None when unreadable."""
    if not isinstance(text, str):
        return None
    try:
        return (datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S") - JAKARTA).replace(tzinfo=UTC)
    except ValueError:
        return None


def core_deadline(answer: dict, charge: ChargeRequest, now: datetime) -> datetime:
    """When a Core payment can no longer be paid: Midtrans's expiry_time, else the request's
    custom_expiry, else Midtrans's default lifetime for the payment type."""
    found = midtrans_time(answer.get("expiry_time"))
    if found is not None:
        return found
    assert charge.core is not None
    if charge.core.expiry_span is not None:
        return now + charge.core.expiry_span
    return now + CORE_LIFETIMES.get(charge.core.payment_type, DEFAULT_LINK_LIFETIME)


def charge_answer(txn: Transaction) -> dict:
    """The 201 answer of a create, a replay or a renewal: the link (or a Core charge's
    payment details) and when it stops being payable."""
    expires_at = txn.expires_at.astimezone(UTC).isoformat() if txn.expires_at else None
    if txn.payment_details is not None:
        return {
            "order_id": txn.order_id,
            "id": txn.midtrans_transaction_id,
            "payment_type": txn.payment_type,
            "transaction_status": txn.status,
            "fraud_status": txn.fraud_status,
            "outcome": str(outcome_of(txn.status, txn.fraud_status)),
            "expires_at": expires_at,
            **txn.payment_details,
        }
    return {
        "token": txn.snap_token,
        "redirect_url": txn.redirect_url,
        "order_id": txn.order_id,
        "expires_at": expires_at,
        # What the payment means now: "pending" for a new link; a replay for an order paid
        # meanwhile says "paid" (never charged again).
        "outcome": str(outcome_of(txn.status, txn.fraud_status)),
    }


# -- POST /charge --------------------------------------------------------------------------


def create_charge(
    *,
    client_app: ClientApp,
    charge: ChargeRequest,
    midtrans: Midtrans,
    callback_policy: AddressPolicy | None = None,
) -> ChargeResult:
    """Reserve the order before calling Midtrans so a repeat or a race cannot charge twice.

    The identical request again answers the stored link (a replay); other details for an
    order that has a link are a conflict. After a failed or timed-out attempt, the next
    request tries again, with a fresh Midtrans order id when Midtrans may hold the old one.
    An order's own `callback_url` is judged by `callback_policy` (the rules of the app's URL)
    before anything is written.
    """
    if charge.callback_url is not None:
        check_order_callback_url(
            client_app,
            charge.callback_url,
            policy=callback_policy,
            production=midtrans.settings.is_production,
        )
    in_flight = timedelta(seconds=midtrans.settings.timeout) + ATTEMPT_GRACE
    checks = 0
    for _ in range(TAKEN_RETRIES + 1 + RENEWAL_CHECKS):
        txn, attempt = _reserve(client_app, charge, in_flight=in_flight, checked=checks)
        if attempt is None:
            return ChargeResult(txn, replayed=True)
        if attempt == CHECK_FIRST:
            # The link looks dead, but Midtrans may hold a payment for it that nobody has
            # told the gateway of yet: ask, cancel a pending one, then decide again.
            _settle_before_renewal(txn.id, txn.attempt, midtrans=midtrans)
            checks += 1
            continue
        try:
            if charge.core is not None:
                made = midtrans.charge_core(charge.core_payload(txn.midtrans_order_id))
            else:
                made = midtrans.create_snap(charge.snap_payload(txn.midtrans_order_id))
        except MidtransRejectedError as err:
            if not _order_id_taken(err):
                # Midtrans refused the details: no order exists there, the id may be reused.
                _end_attempt(txn.id, attempt, LinkState.FAILED, error=err)
                raise
            adopted = _adopt_taken_order(txn.id, attempt, midtrans=midtrans, error=err)
            if adopted is not None:
                return ChargeResult(adopted, replayed=False, adopted=True)
            continue  # the id is taken by an order nobody paid: a fresh one next time
        except MidtransAuthError as err:
            _end_attempt(txn.id, attempt, LinkState.FAILED, error=err)
            raise
        except GatewayError as err:
            # Timeout, garbage or 5xx: Midtrans may have created an order nobody can see.
            _end_attempt(txn.id, attempt, LinkState.UNKNOWN, error=err)
            raise
        except BaseException as err:
            _end_attempt(txn.id, attempt, LinkState.UNKNOWN, error=err)
            raise
        if charge.core is not None:
            return ChargeResult(_core_created(txn.id, attempt, made, charge), replayed=False)
        return ChargeResult(_link_created(txn.id, attempt, made, charge), replayed=False)
    raise MidtransUnavailableError(
        "Midtrans keeps saying the order id is taken; the next attempt uses a fresh one"
    )


def check_order_callback_url(
    client_app: ClientApp, url: str, *, policy: AddressPolicy | None, production: bool
) -> None:
    """An order's own callback URL passes the app URL's rules (no private address unless
    CALLBACK_ALLOWED_HOSTS allows it, https in production), and the app can sign for it."""
    if not client_app.can_sign:
        raise InvalidRequestError(
            "callback_url needs the app's signing secret to sign its callbacks, and this app "
            "has none: ask an admin to set the app's callback URL (dashboard, or "
            "`flask --app wsgi apps set-callback CODE URL`), which prints the secret once",
            field="callback_url",
        )
    if policy is None:
        raise InvalidRequestError("callback_url cannot be checked here", field="callback_url")
    try:
        policy.check_url(url, require_https=production)
    except UnsafeCallbackURL as err:
        raise InvalidRequestError(f"callback_url: {err}", field="callback_url") from None


def _order_id_taken(err: MidtransRejectedError) -> bool:
    """Midtrans's 400 for an order id it has seen before ("... has already been taken",
    "... sudah digunakan"): the database lost an attempt (a restore), or another attempt
    is unaccounted for. A Core charge says so with its 406."""
    if isinstance(err, MidtransOrderTakenError):
        return True
    return any("order_id" in m and ("taken" in m or "sudah digunakan" in m) for m in err.messages)


def _adopt_taken_order(
    txn_id: int, attempt: int, *, midtrans: Midtrans, error: MidtransRejectedError
) -> Transaction | None:
    """Midtrans already has an order under this id. With a payment there, the order is that
    payment (the client sees its status, never a dead end); without one, the attempt ends
    `unknown` so the next one uses a fresh Midtrans order id."""
    txn = get_transaction_by_id_or_raise(txn_id)
    try:
        answer = midtrans.get_status(txn.midtrans_order_id)
    except GatewayError:
        _end_attempt(txn_id, attempt, LinkState.UNKNOWN, error=error)
        raise
    if answer is None:
        _end_attempt(txn_id, attempt, LinkState.UNKNOWN, error=error)
        return None
    with writing():
        txn = locked_transaction(txn_id)
        if txn.attempt == attempt and txn.link_state == LinkState.CREATING:
            txn.link_state = LinkState.CREATED
            txn.last_error = None
            flag_order(
                txn,
                f"adopted: Midtrans already held a payment under {txn.midtrans_order_id}",
                source=EventSource.CHARGE,
            )
    txn, _ = apply_midtrans_status(txn_id, answer, source=EventSource.CHARGE)
    return txn


def link_deadline(charge: ChargeRequest, created_at: datetime) -> datetime:
    """When the Snap link can no longer lead to a payment (Snap's rules, seed 003 "Expiry").

    The page lives for `page_expiry` when given. The payment's own `expiry` counts from its
    `start_time` when given (an absolute end), else from the token's creation; without either,
    the token lives 24 hours. The worker expires an order only after this, and only when
    Midtrans has no transaction for it; a payment Midtrans reports later still wins.
    """
    expiry, page = charge.expiry, charge.page_expiry
    start = expiry.start_time if expiry is not None else None
    pay_end = (start or created_at) + expiry.span if expiry is not None else None
    if page is not None:
        end = created_at + page.span
        return min(end, pay_end) if start is not None and pay_end is not None else end
    return pay_end if pay_end is not None else created_at + DEFAULT_LINK_LIFETIME


def _settle_before_renewal(txn_id: int, attempt: int, *, midtrans: Midtrans) -> None:
    """Before an order whose link looks dead (its deadline passed, still `pending` here) is
    renewed: Midtrans's word on its payment is applied; a payment still pending there is
    cancelled first, so the payer cannot pay the old one and the new one; no payment there
    at all makes the order `expire` (the gateway's word, as the worker does at the link's
    end). Midtrans unreachable: the error propagates and nothing is renewed."""
    txn = get_transaction_by_id_or_raise(txn_id)
    ident = txn.midtrans_order_id
    answer = midtrans.get_status(ident)
    if answer is None:
        with writing():
            expire_unpaid_link(
                locked_transaction(txn_id),
                attempt,
                source=EventSource.CHARGE,
                detail="link expired unpaid (Midtrans has no transaction); renewing",
            )
        return
    if str(answer.get("transaction_status")) == TxStatus.PENDING:
        try:
            answer = midtrans.cancel(ident)
        except MidtransRefusedError:
            # Midtrans refused to cancel (412: it moved meanwhile): what is it now? (Any
            # other error, Midtrans unreachable, propagates: nothing is renewed.)
            answer = midtrans.get_status(ident) or {}
        answer = {"order_id": ident, **answer} if answer else answer
    if answer:
        apply_midtrans_status(txn_id, answer, source=EventSource.CHARGE)


def _reserve(
    client_app: ClientApp, charge: ChargeRequest, *, in_flight: timedelta, checked: int = 0
) -> tuple[Transaction, int | None]:
    """The order's row, locked and marked `creating`; attempt None means replay the link,
    CHECK_FIRST ask Midtrans before renewing it."""
    fingerprint = charge.fingerprint()
    for _ in range(5):
        try:
            with writing():
                txn = db.session.execute(
                    select(Transaction)
                    .where(
                        Transaction.app_id == client_app.id,
                        Transaction.order_id == charge.order_id,
                    )
                    .with_for_update()
                    .execution_options(populate_existing=True)
                ).scalar_one_or_none()
                if txn is None:
                    txn = _new_order(client_app, charge, fingerprint)
                    attempt = 1
                else:
                    attempt = _reuse(txn, charge, fingerprint, in_flight=in_flight, checked=checked)
        except IntegrityError:
            # Another worker inserted the same order (or took that Midtrans id) meanwhile.
            continue
        return txn, attempt
    raise ChargeInProgressError("the order is being created by another request; retry shortly")


def _new_order(client_app: ClientApp, charge: ChargeRequest, fingerprint: str) -> Transaction:
    txn = Transaction(
        app_id=client_app.id,
        order_id=charge.order_id,
        midtrans_order_id=_free_midtrans_order_id(client_app.order_prefix + charge.order_id),
        amount=charge.amount,
        request_fingerprint=fingerprint,
        request_body=charge.as_dict(),
        callback_url=charge.callback_url,
        link_state=LinkState.CREATING,
        attempt=1,
        attempt_owner=process_identity(),
    )
    db.session.add(txn)
    db.session.flush()
    record_attempt_id(txn, txn.midtrans_order_id)
    return txn


def _reuse(
    txn: Transaction,
    charge: ChargeRequest,
    fingerprint: str,
    *,
    in_flight: timedelta,
    checked: int = 0,
) -> int | None:
    """Decide what a request for an order that already has a row does (row is locked)."""
    now = datetime.now(UTC)
    if txn.request_fingerprint == RECOVERED:
        # Rebuilt from Midtrans's word after a restore: the client's retry is that order.
        if charge.amount != txn.amount:
            raise OrderConflictError(
                f"order_id {charge.order_id} was already paid at Midtrans for {txn.amount}",
                details={"field": "amount"},
            )
        txn.request_fingerprint, txn.request_body = fingerprint, charge.as_dict()
        return None
    renewing = False
    if txn.link_state == LinkState.CREATED:
        outcome = outcome_of(txn.status, txn.fraud_status)
        if outcome in UNSUCCESSFUL:
            renewing = True  # the last link is dead (expired, cancelled, denied): renew
        elif outcome == Outcome.PENDING and not link_alive(txn, now):
            if checked >= RENEWAL_CHECKS:
                raise ChargeInProgressError(
                    f"order_id {charge.order_id}'s last payment could not be settled at "
                    "Midtrans yet; retry shortly",
                    headers={"Retry-After": "5"},
                )
            return CHECK_FIRST
        elif txn.request_fingerprint != fingerprint:
            raise OrderConflictError(
                f"order_id {charge.order_id} was already charged with different details"
                + ("" if outcome == Outcome.PENDING else f" and is {outcome}"),
                details={"field": "order_id"},
            )
        else:
            return None  # the link is still payable, or the order is paid: never again
    if (
        txn.link_state == LinkState.CREATING
        and now - txn.attempt_started_at < in_flight
        and not owner_gone(txn.attempt_owner)
    ):
        raise ChargeInProgressError(
            f"a payment link for order_id {charge.order_id} is being created; retry shortly",
            headers={"Retry-After": "2"},
        )
    if (
        not renewing
        and txn.midtrans_transaction_id is not None
        and outcome_of(txn.status, txn.fraud_status) not in UNSUCCESSFUL
    ):
        # Midtrans holds a live or paid payment for an attempt whose link nobody saw (an
        # abandoned attempt the worker found): a new one could make the customer pay twice.
        raise OrderConflictError(
            f"order_id {charge.order_id} already has a payment at Midtrans "
            f"({outcome_of(txn.status, txn.fraud_status)}); it is not charged again",
            details={"field": "order_id"},
        )
    # The last attempt failed or its outcome is unknown (no link was ever shown), or its link
    # is dead (a renewal): the request, even with other details, gets a new attempt.
    reuse_id = txn.link_state == LinkState.FAILED or (renewing and _midtrans_holds_none(txn))
    if not reuse_id:
        keep_current_attempt_id(txn)  # with the amount it charged, before that changes
    txn.attempt += 1
    txn.attempt_started_at = now
    txn.attempt_owner = process_identity()
    txn.link_state = LinkState.CREATING
    txn.amount = charge.amount
    txn.request_fingerprint = fingerprint
    txn.request_body = charge.as_dict()
    txn.callback_url = charge.callback_url
    if not reuse_id:
        txn.midtrans_order_id = _free_midtrans_order_id(
            txn.app.order_prefix + charge.order_id, fresh=True
        )
        record_attempt_id(txn, txn.midtrans_order_id)
    return txn.attempt


def _midtrans_holds_none(txn: Transaction) -> bool:
    """Whether a renewal may charge under the order's current Midtrans order id again: the
    gateway itself ended its attempt (the link expired, or was cancelled or expired, before
    the payer chose a method) and Midtrans holds no transaction for it. A new Snap token for
    that id revokes the old link's page (seed 004: an order id is taken only by a pending or
    paid transaction), so the payer cannot pay the old link and the new one. Wherever Midtrans
    may hold a payment (a Core charge, a denied card, an unknown outcome), the renewal takes a
    fresh id; should a payer have chosen a method on the old page meanwhile, Midtrans answers
    "order id taken" and that payment is adopted (`_adopt_taken_order`)."""
    return txn.status_by_gateway and txn.midtrans_transaction_id is None


def process_identity() -> str:
    """This process as "host:pid:start time": unique even when a pid is reused."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_started(pid)}"


def _process_started(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def owner_gone(owner: str | None) -> bool:
    """True when the process that began an attempt is known to be dead (a gunicorn worker
    killed mid-call), so a retry need not wait out MIDTRANS_TIMEOUT plus grace. Only a
    process on this host can be checked; any other is presumed alive."""
    host, _, rest = (owner or "").partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit() or started in ("", "?"):
        return False
    return _process_started(int(pid)) != started  # "?" when gone; another value when reused


def _free_midtrans_order_id(base: str, *, fresh: bool = False) -> str:
    """`base` if no order uses it yet, else `base` (shortened) with a random suffix.

    The suffix keeps a retry after an unknown outcome from hitting Midtrans's "order_id has
    already been taken", and keeps two apps whose prefixes overlap from blocking each other.
    """
    candidate = base
    for _ in range(10):
        if not fresh:
            taken = db.session.execute(
                select(Transaction.id).where(Transaction.midtrans_order_id == candidate)
            ).first()
            if taken is None:
                return candidate
        fresh = False
        suffix = "~" + secrets.token_hex(3)
        candidate = base[: ORDER_ID_MAX - len(suffix)] + suffix
    raise RuntimeError("could not find a free Midtrans order id")


def _end_attempt(txn_id: int, attempt: int, state: LinkState, *, error: BaseException) -> None:
    with writing():
        txn = locked_transaction(txn_id)
        if txn.attempt == attempt and txn.link_state == LinkState.CREATING:
            txn.link_state = state
            txn.last_error = getattr(error, "message", type(error).__name__)


def _link_created(txn_id: int, attempt: int, link, charge: ChargeRequest) -> Transaction:
    with writing():
        txn = locked_transaction(txn_id)
        # Still this attempt and still in flight: a Snap answer that comes after the worker
        # settled the attempt as abandoned must not overwrite what it found.
        if txn.attempt == attempt and txn.link_state == LinkState.CREATING:
            txn.snap_token = link.token
            txn.redirect_url = link.redirect_url
            # Counted from Snap's answer, which follows the token's own clock: never too early.
            _attempt_created(txn, "Snap link", expires_at=link_deadline(charge, datetime.now(UTC)))
            enqueue_update(txn, status_view(txn, live=True))
        return txn


def _attempt_created(txn: Transaction, what: str, *, expires_at: datetime | None) -> None:
    """The (locked) order's attempt has its payment at Midtrans now (`what`: a Snap link, a
    Core payment): it starts over as pending, payable until `expires_at`, first checked soon;
    its timeline says so (and what it was, when this renews a dead link)."""
    renewed = _fresh_payment(txn)
    txn.link_state = LinkState.CREATED
    txn.last_error = None
    txn.expires_at = expires_at
    txn.next_check_at = txn.attempt_started_at + FIRST_CHECK
    txn.check_count = 0
    db.session.add(
        TransactionEvent(
            transaction_id=txn.id,
            from_status=renewed,
            to_status=TxStatus.PENDING,
            source=EventSource.CHARGE,
            detail=f"{what} created (attempt {txn.attempt})"
            + (f", renewing the order (was {renewed})" if renewed else ""),
        )
    )


def _fresh_payment(txn: Transaction) -> str | None:
    """The (locked) order starts over on its new attempt: pending, no Midtrans payment yet
    (the earlier attempt's stays Midtrans's, found by its own order id). What it was before
    when this renews a dead link, else None."""
    renewed = None
    if txn.midtrans_transaction_id is not None or txn.status != TxStatus.PENDING:
        renewed = str(txn.status)
    txn.status, txn.fraud_status, txn.status_by_gateway = TxStatus.PENDING, None, False
    txn.midtrans_transaction_id = txn.midtrans_response = txn.payment_type = None
    txn.payment_details = None
    txn.customer_imposed_fee = None
    txn.refunded_amount = 0
    return renewed


def _core_created(txn_id: int, attempt: int, answer: dict, charge: ChargeRequest) -> Transaction:
    """Keep a Core charge's answer: its payment details (served while it is pending), its
    deadline, and its status applied as any of Midtrans's answers (a card may be paid, or
    declined, at once)."""
    with writing():
        txn = locked_transaction(txn_id)
        if txn.attempt != attempt or txn.link_state != LinkState.CREATING:
            return txn  # the worker settled this attempt meanwhile: what it found stands
        kind = answer.get("payment_type") or charge.payment_type
        txn.snap_token = None
        txn.redirect_url = answer.get("redirect_url")  # a card's 3-D Secure page
        _attempt_created(
            txn,
            f"Core {kind} payment",
            expires_at=core_deadline(answer, charge, datetime.now(UTC)),
        )
        txn.payment_details = payment_details(answer)
        txn.payment_type = kind
        applied = apply_in_unit(
            txn, {"order_id": txn.midtrans_order_id, **answer}, source=EventSource.CHARGE
        )
        if applied != Applied.CHANGED:
            enqueue_update(txn, status_view(txn, live=True))  # still pending: its details
        return txn
