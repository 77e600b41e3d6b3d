"""One order at Midtrans and the state machine that moves it.

An order created through Snap has no Midtrans transaction until the customer picks a payment
method (`payment_type` stays None and the status API answers "Transaction doesn't exist.");
an order created through Core `/v2/charge` has one from the start.
"""

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone

WIB = timezone(timedelta(hours=7), "WIB")


def now() -> datetime:
    return datetime.now(WIB)


def midtrans_time(moment: datetime | None) -> str | None:
    """Midtrans writes times in Jakarta time without a zone: "2026-05-27 14:30:00"."""
    return moment.astimezone(WIB).strftime("%Y-%m-%d %H:%M:%S") if moment else None


def midtrans_amount(rupiah: int) -> str:
    """Midtrans answers amounts as strings with two decimals: 150000 -> "150000.00"."""
    return f"{rupiah}.00"


class TransactionNotFound(Exception):
    """No order or transaction with this id, or a Snap order whose method is not chosen yet."""


class OrderIdTaken(Exception):
    """The order_id was used before; Midtrans never reuses one."""


class TransitionNotAllowed(Exception):
    """The transaction's current status does not allow this change (Midtrans's 412)."""

    def __init__(self, message: str = "Merchant cannot modify the status of the transaction"):
        super().__init__(message)
        self.message = message


@dataclasses.dataclass
class Refund:
    refund_chargeback_id: int
    refund_key: str
    amount: int
    reason: str
    created_at: datetime


@dataclasses.dataclass
class Transaction:
    """`method` holds what the chosen payment type needs (bank, VA number, bill key, QR string...).

    `expires_at` is when an unpaid order dies: the Snap token expiry before a method is chosen,
    the payment's `expiry_time` after.

    `page_expires_at` ends a Snap page (its `page_expiry`) before the order's own expiry.

    `card` is what a Core card charge decided (cards.py): the test card's `outcome`, whether it
    is an `authorize` (pre-authorization) and whether 3DS is still to be done. An authorized
    card keeps its `authorized_amount`; a capture may take less.

    `gross_amount` is what the payer is asked for: the order's amount, plus `imposed_fee` once
    a method is chosen under fee imposition (see fees.py). `fee_rule` is this order's own rule
    from the control API; None follows the global setting.
    """

    order_id: str
    gross_amount: int
    created_at: datetime
    expires_at: datetime
    notification_urls: list[str]
    base_url: str
    request: dict
    token: str | None = None
    expiry_given: bool = False
    transaction_id: str | None = None
    payment_type: str | None = None
    method: dict = dataclasses.field(default_factory=dict)
    transaction_status: str | None = None
    fraud_status: str | None = None
    transaction_time: datetime | None = None
    settlement_time: datetime | None = None
    refunds: list[Refund] = dataclasses.field(default_factory=list)
    fee_rule: dict | None = None
    imposed_fee: int = 0
    fee_placement: str = "metadata"
    page_expires_at: datetime | None = None
    card: dict | None = None
    authorized_amount: int = 0

    @property
    def chosen(self) -> bool:
        return self.payment_type is not None

    @property
    def original_amount(self) -> int:
        """The order's own amount, without the fee the payer was charged on top."""
        return self.gross_amount - self.imposed_fee

    @property
    def refunded_amount(self) -> int:
        return sum(refund.amount for refund in self.refunds)

    def snapshot(self) -> "Transaction":
        """A copy safe to read outside the store's lock (`method` is replaced, never mutated)."""
        return dataclasses.replace(self, refunds=list(self.refunds))

    def start_payment(
        self,
        transaction_id: str,
        payment_type: str,
        method: dict,
        *,
        status: str,
        fraud_status: str,
        expires_at: datetime,
    ) -> None:
        """Create the Midtrans transaction: "pending", or "capture" for a card charged at once."""
        self.transaction_id = transaction_id
        self.payment_type = payment_type
        self.method = method
        self.transaction_status = status
        self.fraud_status = fraud_status
        self.transaction_time = now()
        self.expires_at = expires_at

    def impose_fee(self, fee: int, placement: str) -> None:
        """Pass Midtrans's payment fee to the payer; once, before the payment starts."""
        self.gross_amount += fee
        self.imposed_fee = fee
        self.fee_placement = placement


def challenged(tx: Transaction) -> bool:
    """A card the fraud detection holds for the merchant to approve or deny."""
    return tx.transaction_status in ("capture", "authorize") and tx.fraud_status == "challenge"


def status_code(tx: Transaction) -> str:
    """The status_code of GET status and of action answers: expire is "407" here."""
    if tx.transaction_status == "pending" or challenged(tx):
        return "201"
    return {"deny": "202", "expire": "407"}.get(tx.transaction_status, "200")


def notification_status_code(tx: Transaction) -> str:
    """The status_code of an HTTP notification: expire, cancel and deny are all "202" there."""
    if tx.transaction_status == "pending" or challenged(tx):
        return "201"
    return "202" if tx.transaction_status in ("expire", "cancel", "deny") else "200"


def apply(tx: Transaction, event: str) -> None:
    """Move `tx` by one of pay, fail, expire, cancel, approve, deny, or raise TransitionNotAllowed.

    A card goes pending (3DS) -> capture -> settlement, each step a `pay`; other methods go
    pending -> settlement. A capture under fraud challenge waits for approve or deny.
    """
    status, card = tx.transaction_status, tx.payment_type == "credit_card"
    held = challenged(tx)
    if event == "pay" and status == "pending":
        _move(tx, "capture" if card else "settlement")
    elif event == "pay" and status == "capture" and not held:
        _move(tx, "settlement")
    elif event == "fail" and status == "pending":
        _move(tx, "deny")
    elif event == "expire" and status == "pending":
        _move(tx, "expire")
    elif event == "cancel" and status in ("pending", "capture", "authorize"):
        _move(tx, "cancel")
    elif event == "approve" and held:
        tx.fraud_status = "accept"
    elif event == "deny" and held:
        tx.fraud_status = "deny"
        _move(tx, "deny")
    else:
        raise TransitionNotAllowed()


# Midtrans refunds through the API only these (and e-wallets the simulator does not offer);
# bank transfers, Mandiri bill and convenience stores are refunded by other means.
REFUNDABLE_TYPES = ("credit_card", "gopay", "qris")
REFUND_REFUSED = "Transaction status cannot be updated."


def refund(
    tx: Transaction,
    *,
    amount: int | None,
    refund_key: str | None,
    reason: str,
    any_method: bool = False,
) -> Refund:
    """Refund part or all of what is left of what was paid (an imposed fee included); the same
    refund_key again returns the first refund.

    Only a settled payment (or a captured card the fraud check accepted) of a refundable type
    can be refunded; `any_method` lifts the type rule (the `refund_any_method` switch).
    """
    for earlier in tx.refunds:
        if refund_key is not None and earlier.refund_key == refund_key:
            return earlier
    status = tx.transaction_status
    refundable_status = status in ("settlement", "partial_refund") or (
        status == "capture" and tx.fraud_status == "accept"
    )
    if not refundable_status or not (any_method or tx.payment_type in REFUNDABLE_TYPES):
        raise TransitionNotAllowed(REFUND_REFUSED)
    refundable = tx.gross_amount - tx.refunded_amount
    amount = refundable if amount is None else amount
    if amount > refundable:
        raise TransitionNotAllowed("Refund amount is greater than the refundable amount")
    record = Refund(
        refund_chargeback_id=len(tx.refunds) + 1,
        refund_key=refund_key or str(uuid.uuid4()),
        amount=amount,
        reason=reason,
        created_at=now(),
    )
    tx.refunds.append(record)
    tx.transaction_status = "refund" if tx.refunded_amount == tx.gross_amount else "partial_refund"
    return record


def capture(tx: Transaction, amount: int | None) -> None:
    """Capture an authorized card (pre-authorization), all of it or less."""
    if tx.transaction_status != "authorize" or tx.fraud_status != "accept":
        raise TransitionNotAllowed()
    amount = tx.authorized_amount if amount is None else amount
    if amount > tx.authorized_amount:
        raise TransitionNotAllowed("Capture amount is greater than the authorized amount")
    tx.gross_amount = amount
    _move(tx, "capture")


def _move(tx: Transaction, status: str) -> None:
    tx.transaction_status = status
    if status == "settlement":
        tx.settlement_time = now()
