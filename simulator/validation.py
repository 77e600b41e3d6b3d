"""Midtrans's checks on Snap create and Core charge bodies, with Midtrans's wording."""

import dataclasses
import re
from datetime import datetime, timedelta

from .methods import BANKS, PAYMENT_TYPES

ORDER_ID = re.compile(r"^[A-Za-z0-9\-_~.]+$")
SNAP_TOKEN_LIFETIME = timedelta(hours=24)
UNITS = {"second": "seconds", "minute": "minutes", "hour": "hours", "day": "days"}


class InvalidRequest(Exception):
    def __init__(self, messages: list[str]):
        super().__init__("; ".join(messages))
        self.messages = messages


@dataclasses.dataclass(frozen=True)
class Order:
    order_id: str
    gross_amount: int


def parse_order(body) -> Order:
    """transaction_details and item_details, checked as Snap and Core both check them."""
    if not isinstance(body, dict):
        raise InvalidRequest(["There was a problem in the JSON you submitted"])
    details = body.get("transaction_details")
    details = details if isinstance(details, dict) else {}
    errors = []
    order_id = details.get("order_id")
    order_id = str(order_id) if isinstance(order_id, str | int) else ""
    if not order_id:
        errors.append("transaction_details.order_id is required")
    elif len(order_id) > 50:
        errors.append("transaction_details.order_id is too long")
    elif not ORDER_ID.match(order_id):
        errors.append("transaction_details.order_id is invalid")
    amount = details.get("gross_amount")
    if amount is None:
        errors.append("transaction_details.gross_amount is required")
    elif isinstance(amount, bool) or not isinstance(amount, int | float):
        errors.append("transaction_details.gross_amount is not a number")
    elif amount != int(amount):
        errors.append("transaction_details.gross_amount must be an integer")
    elif amount < 1:
        errors.append("transaction_details.gross_amount must be greater than or equal to 0.01")
    errors.extend(_item_errors(body.get("item_details"), amount))
    if errors:
        raise InvalidRequest(errors)
    return Order(order_id, int(amount))


def snap_expiry(body: dict, created: datetime) -> tuple[datetime, bool]:
    """When the Snap order dies, and whether the merchant set it: 24 hours unless `expiry`."""
    expiry = body.get("expiry")
    if expiry is None:
        return created + SNAP_TOKEN_LIFETIME, False
    if not isinstance(expiry, dict):
        raise InvalidRequest(["expiry is invalid"])
    unit = str(expiry.get("unit", "")).lower().removesuffix("s")
    duration = expiry.get("duration")
    errors = []
    if unit not in UNITS:
        errors.append("expiry.unit must be one of second, minute, hour, day")
    if isinstance(duration, bool) or not isinstance(duration, int) or duration < 1:
        errors.append("expiry.duration must be a positive integer")
    start = created
    if expiry.get("start_time"):
        try:
            start = datetime.strptime(str(expiry["start_time"]), "%Y-%m-%d %H:%M:%S %z")
        except ValueError:
            errors.append("expiry.start_time must be in format yyyy-MM-dd HH:mm:ss Z")
    if errors:
        raise InvalidRequest(errors)
    return start + timedelta(**{UNITS[unit]: duration}), True


def page_expiry(body: dict, created: datetime) -> datetime | None:
    """When a Snap page stops taking a method (`page_expiry`), or None: the order's expiry."""
    expiry = body.get("page_expiry")
    if expiry is None:
        return None
    if not isinstance(expiry, dict):
        raise InvalidRequest(["page_expiry is invalid"])
    return created + _duration(expiry, "page_expiry", "duration")


def custom_expiry(body: dict, created: datetime) -> datetime | None:
    """A Core charge's `custom_expiry` {"order_time", "expiry_duration", "unit"} as its
    expiry_time, or None for the method's default lifetime."""
    expiry = body.get("custom_expiry")
    if expiry is None:
        return None
    if not isinstance(expiry, dict):
        raise InvalidRequest(["custom_expiry is invalid"])
    start = created
    if expiry.get("order_time"):
        try:
            start = datetime.strptime(str(expiry["order_time"]), "%Y-%m-%d %H:%M:%S %z")
        except ValueError:
            raise InvalidRequest(
                ["custom_expiry.order_time must be in format yyyy-MM-dd HH:mm:ss Z"]
            ) from None
    return start + _duration(expiry, "custom_expiry", "expiry_duration")


def _duration(expiry: dict, name: str, field: str) -> timedelta:
    unit = str(expiry.get("unit", "")).lower().removesuffix("s")
    duration = expiry.get(field)
    errors = []
    if unit not in UNITS:
        errors.append(f"{name}.unit must be one of second, minute, hour, day")
    if isinstance(duration, bool) or not isinstance(duration, int) or duration < 1:
        errors.append(f"{name}.{field} must be a positive integer")
    if errors:
        raise InvalidRequest(errors)
    return timedelta(**{UNITS[unit]: duration})


def parse_payment(body: dict) -> tuple[str, str | None]:
    """payment_type and, for bank transfers, the bank of a Core charge."""
    payment_type = body.get("payment_type")
    if not payment_type:
        raise InvalidRequest(["payment_type is required"])
    if payment_type not in PAYMENT_TYPES:
        raise InvalidRequest([f"payment_type {payment_type} is not supported"])
    if payment_type == "bank_transfer":
        bank = (body.get("bank_transfer") or {}).get("bank")
        if bank not in BANKS:
            raise InvalidRequest([f"bank_transfer.bank must be one of {', '.join(BANKS)}"])
        return payment_type, bank
    if payment_type == "credit_card":
        card = body.get("credit_card") or {}
        if not card.get("token_id"):
            raise InvalidRequest(["credit_card.token_id is required"])
        if card.get("type", "authorize_capture") not in ("authorize", "authorize_capture"):
            raise InvalidRequest(["credit_card.type must be one of authorize, authorize_capture"])
    return payment_type, None


def _item_errors(items, gross_amount) -> list[str]:
    if items is None:
        return []
    if not isinstance(items, list):
        return ["item_details is invalid"]
    errors, total = [], 0
    for item in items:
        item = item if isinstance(item, dict) else {}
        price, quantity = item.get("price"), item.get("quantity")
        for field, value in (("price", price), ("quantity", quantity)):
            if isinstance(value, bool) or not isinstance(value, int):
                errors.append(f"item_details.{field} is required and must be an integer")
        if not item.get("name"):
            errors.append("item_details.name is required")
        if isinstance(price, int) and isinstance(quantity, int):
            total += price * quantity
    if not errors and isinstance(gross_amount, int | float) and total != gross_amount:
        errors.append("transaction_details.gross_amount is not equal to the sum of item_details")
    return errors
