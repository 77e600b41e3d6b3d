"""Every order the simulator knows, in memory, behind one lock.

Each change happens under the lock and queues its notification before the lock is released,
so notifications leave in the order the changes happened. Every method returns a snapshot.
"""

import threading
import uuid
from datetime import datetime

from . import cards, fees, transactions
from .bodies import notification_body
from .methods import LIFETIMES, new_method
from .notifier import Notifier
from .settings import Settings
from .transactions import (
    OrderIdTaken,
    Refund,
    Transaction,
    TransactionNotFound,
    TransitionNotAllowed,
)

DEFAULT_METHOD = ("bank_transfer", "bca")


class Store:
    def __init__(self, settings: Settings, notifier: Notifier):
        self._settings = settings
        self._notifier = notifier
        self._lock = threading.Lock()
        self._orders: dict[str, Transaction] = {}
        self._by_transaction_id: dict[str, Transaction] = {}
        self._by_token: dict[str, Transaction] = {}

    def add(self, tx: Transaction) -> Transaction:
        """Keep a new order from Snap (method not chosen yet). An order_id whose earlier Snap
        order has no payment yet gets this new order, and the earlier token stops working
        (Midtrans: "only the latest one is active"); one with a payment raises OrderIdTaken."""
        with self._lock:
            earlier = self._orders.get(tx.order_id)
            if earlier is not None and not earlier.chosen:
                del self._orders[tx.order_id]
                self._by_token.pop(earlier.token, None)
            self._reserve(tx)
            if tx.token:
                self._by_token[tx.token] = tx
            return tx.snapshot()

    def charge(
        self, tx: Transaction, payment_type: str, bank: str | None, card: dict | None = None
    ) -> Transaction:
        """Keep a new order created by Core /v2/charge: pending, or, for a card (`card` from
        cards.py), waiting for 3DS or ended at once as the test card says."""
        with self._lock:
            self._reserve(tx)
            if payment_type != "credit_card":
                self._start_payment(tx, payment_type, bank)
                return tx.snapshot()
            tx.card = card
            tx.authorized_amount = tx.gross_amount
            if card["three_ds"]:
                self._start_payment(tx, payment_type, bank)
            else:
                self._start_payment(tx, payment_type, bank, **_card_result(card))
            return tx.snapshot()

    def authenticate(self, transaction_id: str, *, passed: bool) -> Transaction:
        """The payer finished (or failed) 3DS for a pending card charge."""
        with self._lock:
            tx = self._by_transaction_id.get(transaction_id)
            if tx is None or tx.payment_type != "credit_card":
                raise TransactionNotFound(transaction_id)
            if tx.transaction_status != "pending" or not (tx.card or {}).get("three_ds"):
                raise TransitionNotAllowed("3DS authentication is already done")
            result = _card_result(tx.card) if passed else {"status": "deny"}
            tx.transaction_status = result["status"]
            tx.fraud_status = result.get("fraud_status", tx.fraud_status)
            tx.card = {**tx.card, "three_ds": False}
            self._notify(tx)
            return tx.snapshot()

    def capture(self, key: str, amount: int | None) -> Transaction:
        """POST /v2/capture: an authorized card is captured, all of it or `amount`."""
        with self._lock:
            tx = self._chosen(key)
            transactions.capture(tx, amount)
            self._notify(tx)
            return tx.snapshot()

    def settlement_time(self) -> dict[str, list[str]]:
        """What Midtrans does at settlement time (next day, 16:00 WIB): challenges nobody
        decided are cancelled, captured cards are settled."""
        with self._lock:
            done: dict[str, list[str]] = {"cancelled": [], "settled": []}
            for tx in self._orders.values():
                if transactions.challenged(tx):
                    tx.transaction_status = "cancel"
                    done["cancelled"].append(tx.order_id)
                elif tx.payment_type == "credit_card" and tx.transaction_status == "capture":
                    transactions.apply(tx, "pay")
                    done["settled"].append(tx.order_id)
                else:
                    continue
                self._notify(tx)
            return done

    def find(self, key: str) -> Transaction:
        """By order id or transaction id; an order without a chosen method does not exist yet."""
        with self._lock:
            return self._chosen(key).snapshot()

    def find_order(self, order_id: str) -> Transaction:
        """By order id, chosen or not (for the control API)."""
        with self._lock:
            return self._get_order(order_id).snapshot()

    def find_by_token(self, token: str) -> Transaction:
        with self._lock:
            tx = self._by_token.get(token)
            if tx is None:
                raise TransactionNotFound(token)
            return tx.snapshot()

    def choose(self, order_id: str, payment_type: str, bank: str | None) -> Transaction:
        """The customer picks a method on the Snap page: the Midtrans transaction is born."""
        with self._lock:
            tx = self._get_order(order_id)
            if tx.chosen:
                raise TransitionNotAllowed("A payment method was already chosen for this order")
            if page_closed(tx, transactions.now()):
                raise TransitionNotAllowed("The payment page has expired")
            self._start_payment(tx, payment_type, bank)
            return tx.snapshot()

    def set_fee_rule(self, order_id: str, rule: dict) -> Transaction:
        """Give one order its own fee rule (fees.NO_FEE for none), beating the global one; only
        until its method is chosen, since Midtrans fixes the fee then."""
        with self._lock:
            tx = self._get_order(order_id)
            if tx.chosen:
                raise TransitionNotAllowed(
                    "The fee is fixed when the payment method is chosen; this order has one"
                )
            tx.fee_rule = rule
            return tx.snapshot()

    def act(self, key: str, event: str, *, choose: tuple | None = None, **options) -> Transaction:
        """Apply a state machine event by order or transaction id.

        With `choose` (payment type, bank), an order still without a method first gets that one
        (an order with a method keeps its own), as the payment page and control API want; a
        card paid or failed that way is captured or denied at once, without a pending step.
        `options` may set that card's fraud_status.
        """
        with self._lock:
            tx = self._orders.get(key) or self._by_transaction_id.get(key)
            if tx is None or (not tx.chosen and choose is None):
                raise TransactionNotFound(key)
            if not tx.chosen and choose[0] == "credit_card" and event in ("pay", "fail"):
                status = "capture" if event == "pay" else "deny"
                self._start_payment(tx, *choose, status=status, **options)
                return tx.snapshot()
            if not tx.chosen:
                self._start_payment(tx, *choose)
            transactions.apply(tx, event)
            self._notify(tx)
            return tx.snapshot()

    def refund(self, key: str, **details) -> tuple[Transaction, Refund]:
        with self._lock:
            tx = self._chosen(key)
            count = len(tx.refunds)
            any_method = self._settings.refund_any_method
            record = transactions.refund(tx, any_method=any_method, **details)
            if len(tx.refunds) > count:
                self._notify(tx)
            return tx.snapshot(), record

    def expire_overdue(self, moment: datetime) -> int:
        """Expire pending payments past their expiry_time, as Midtrans's scheduler does."""
        with self._lock:
            overdue = [
                tx
                for tx in self._orders.values()
                if tx.transaction_status == "pending" and tx.expires_at <= moment
            ]
            for tx in overdue:
                transactions.apply(tx, "expire")
                self._notify(tx)
            return len(overdue)

    def all(self) -> list[Transaction]:
        with self._lock:
            return [tx.snapshot() for tx in self._orders.values()]

    def reset(self) -> None:
        with self._lock:
            self._orders.clear()
            self._by_transaction_id.clear()
            self._by_token.clear()

    def _reserve(self, tx: Transaction) -> None:
        if tx.order_id in self._orders:
            raise OrderIdTaken(tx.order_id)
        self._orders[tx.order_id] = tx

    def _chosen(self, key: str) -> Transaction:
        tx = self._orders.get(key) or self._by_transaction_id.get(key)
        if tx is None or not tx.chosen:
            raise TransactionNotFound(key)
        return tx

    def _get_order(self, order_id: str) -> Transaction:
        tx = self._orders.get(order_id)
        if tx is None:
            raise TransactionNotFound(order_id)
        return tx

    def _start_payment(
        self,
        tx: Transaction,
        payment_type: str,
        bank: str | None,
        *,
        status: str = "pending",
        fraud_status: str = "accept",
    ) -> None:
        self._impose_fee(tx, payment_type)
        transaction_id = str(uuid.uuid4())
        method = new_method(payment_type, bank, tx=tx, transaction_id=transaction_id)
        lifetime = LIFETIMES[payment_type]
        expires_at = tx.expires_at if tx.expiry_given else transactions.now() + lifetime
        tx.start_payment(
            transaction_id,
            payment_type,
            method,
            status=status,
            fraud_status=fraud_status,
            expires_at=expires_at,
        )
        self._by_transaction_id[transaction_id] = tx
        self._notify(tx)

    def _impose_fee(self, tx: Transaction, payment_type: str) -> None:
        """The order's own fee rule, else the global one, as the payment starts."""
        rule = tx.fee_rule if tx.fee_rule is not None else self._settings.fee_imposition
        fee = fees.fee_for(rule, tx.gross_amount, payment_type)
        if fee:
            tx.impose_fee(fee, rule["placement"])

    def _notify(self, tx: Transaction) -> None:
        settings = self._settings
        body = notification_body(
            tx, server_key=settings.server_key, merchant_id=settings.merchant_id
        )
        final = tx.transaction_status != "pending"
        self._notifier.notify(tx.order_id, tx.notification_urls, body, final=final)


def _card_result(card: dict) -> dict:
    """Status and fraud status of a card charge as its test card ends it."""
    outcome = card["outcome"]
    held = "authorize" if card["authorize"] else "capture"
    if outcome == cards.CHALLENGE:
        return {"status": held, "fraud_status": "challenge"}
    if outcome == cards.DENY_FDS:
        return {"status": "deny", "fraud_status": "deny"}
    if outcome == cards.DENY_BANK:
        return {"status": "deny", "fraud_status": "accept"}
    return {"status": held, "fraud_status": "accept"}


def page_closed(tx: Transaction, moment: datetime) -> bool:
    """A Snap page past its order's expiry or its own page_expiry takes no method any more."""
    ends = [tx.expires_at] + ([tx.page_expires_at] if tx.page_expires_at else [])
    return min(ends) <= moment
