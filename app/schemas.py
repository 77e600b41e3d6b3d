"""Parsing of client requests into typed values. Every rejection names the field.

Invalid input never reaches Midtrans: what Midtrans would refuse is refused here first, with a
message a developer can act on. Unknown top-level fields are ignored (and left out of the
request's fingerprint), so a client sending extra data is not broken.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import InvalidRequestError

ORDER_ID_MAX = 50
ORDER_ID_RE = re.compile(r"^[A-Za-z0-9\-_~.]+$")
AMOUNT_MAX = 9_999_999_999_999
ITEM_NAME_MAX = 50
EMAIL_MAX = 255
PHONE_MAX = 19
OPTION_STRING_MAX = 255
START_TIME_MAX = 40
FINISH_URL_MAX = 1000
EXPIRY_DURATION_MAX = 999_999  # even in days, a date Python (and Midtrans) can still represent
# Spaces and control characters, spelled out: Python's `\s` and JSON Schema's (ECMA) `\s` differ,
# and the published schema must accept exactly what the parser accepts.
SPACE = r"\x00-\x20\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
NOT_BLANK = f"[^{SPACE}]"
NOT_BLANK_RE = re.compile(NOT_BLANK)
EMAIL_RE = re.compile(f"^[^@{SPACE}]{{1,64}}@[^@{SPACE}]+\\.[^@{SPACE}]{{2,}}$")
PHONE_RE = re.compile(r"^\+?[0-9][0-9 \-()]{3,18}$")
EXPIRY_UNITS = {"second", "seconds", "minute", "minutes", "hour", "hours", "day", "days"}
UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
CARD_TRANSACTION_TYPES = ("authorize", "authorize_capture")
FINISH_URL_SCHEMES = ("https://", "http://")
CALLBACK_URL_MAX = 2000

CUSTOMER_TEXT_FIELDS = {"first_name": 255, "last_name": 255}
ADDRESS_FIELDS = {
    "first_name": 255,
    "last_name": 255,
    "email": 255,
    "phone": 255,
    "address": 255,
    "city": 255,
    "postal_code": 10,
    "country_code": 3,
}
ITEM_TEXT_FIELDS = {"id": 50, "brand": 50, "category": 50, "merchant_name": 50, "url": 255}

# Snap options passed through as given, with the JSON type each must have.
OBJECT_OPTIONS = (
    "credit_card",
    "bca_va",
    "bni_va",
    "bri_va",
    "permata_va",
    "cimb_va",
    "echannel",
    "gopay",
    "shopeepay",
    "callbacks",
    "expiry",
    "page_expiry",
    "metadata",
    "uobezpay",
)
STRING_OPTIONS = ("user_id", "custom_field1", "custom_field2", "custom_field3")
CREDIT_CARD_TYPES = {
    "secure": bool,
    "save_card": bool,
    "bank": str,
    "channel": str,
    "installment": dict,
    "whitelist_bins": list,
    "blacklist_bins": list,
    "card_token": str,
    "dynamic_descriptor": dict,
}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _string(value: Any, name: str, *, max_len: int, required: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name} must be a string, not {_type_name(value)}", field=name)
    if required and not NOT_BLANK_RE.search(value):
        raise InvalidRequestError(f"{name} must not be empty", field=name)
    if len(value) > max_len:
        raise InvalidRequestError(f"{name} must be at most {max_len} characters", field=name)
    return value


def _object(value: Any, name: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{name} must be an object, not {_type_name(value)}", field=name)
    return value


def parse_amount(value: Any, name: str = "amount", *, minimum: int = 1) -> int:
    if value is None:
        raise InvalidRequestError(f"{name} is required", field=name)
    if not _is_int(value):
        if isinstance(value, float) and value.is_integer():
            hint = f" (send {int(value)}, without a decimal point)"
        else:
            hint = ""
        raise InvalidRequestError(
            f"{name} must be a whole number of rupiah as a JSON integer, "
            f"not {_type_name(value)}{hint}",
            field=name,
        )
    if value < minimum:
        raise InvalidRequestError(f"{name} must be at least {minimum}", field=name)
    if value > AMOUNT_MAX:
        raise InvalidRequestError(f"{name} must be at most {AMOUNT_MAX}", field=name)
    return value


def parse_order_id(value: Any, *, prefix: str) -> str:
    if value is None:
        raise InvalidRequestError("order_id is required", field="order_id")
    if not isinstance(value, str):
        raise InvalidRequestError(
            f"order_id must be a string, not {_type_name(value)}", field="order_id"
        )
    if not value:
        raise InvalidRequestError("order_id must not be empty", field="order_id")
    if not ORDER_ID_RE.fullmatch(value) or set(value) == {"."}:
        raise InvalidRequestError(
            "order_id may only contain letters, digits and - _ ~ . (no spaces or slashes)",
            field="order_id",
        )
    limit = ORDER_ID_MAX - len(prefix)
    if len(value) > limit:
        message = f"order_id must be at most {limit} characters"
        if prefix:
            message += (
                f" (Midtrans allows {ORDER_ID_MAX}, and this app's order prefix "
                f"'{prefix}' takes {len(prefix)})"
            )
        raise InvalidRequestError(message, field="order_id")
    return value


def _parse_items(value: Any, amount: int) -> list[dict]:
    if not isinstance(value, list):
        raise InvalidRequestError(
            f"item_details must be a list, not {_type_name(value)}", field="item_details"
        )
    if not value:
        raise InvalidRequestError("item_details must not be empty", field="item_details")
    items, total = [], 0
    for i, raw in enumerate(value):
        name = f"item_details[{i}]"
        item = _object(raw, name)
        price = item.get("price")
        if price is None:
            raise InvalidRequestError(f"{name}.price is required", field=f"{name}.price")
        if not _is_int(price):
            raise InvalidRequestError(
                f"{name}.price must be a whole number of rupiah as a JSON integer, "
                f"not {_type_name(price)}",
                field=f"{name}.price",
            )
        if abs(price) > AMOUNT_MAX:
            raise InvalidRequestError(f"{name}.price is too large", field=f"{name}.price")
        quantity = item.get("quantity")
        if quantity is None:
            raise InvalidRequestError(f"{name}.quantity is required", field=f"{name}.quantity")
        if not _is_int(quantity) or quantity < 1:
            raise InvalidRequestError(
                f"{name}.quantity must be an integer of at least 1", field=f"{name}.quantity"
            )
        if "name" not in item:
            raise InvalidRequestError(f"{name}.name is required", field=f"{name}.name")
        parsed = {
            "price": price,
            "quantity": quantity,
            "name": _string(item["name"], f"{name}.name", max_len=ITEM_NAME_MAX),
        }
        for key, max_len in ITEM_TEXT_FIELDS.items():
            if item.get(key) is not None:
                parsed[key] = _string(item[key], f"{name}.{key}", max_len=max_len)
        items.append(parsed)
        total += price * quantity
    if total != amount:
        raise InvalidRequestError(
            f"item_details add up to {total} (price x quantity), but amount is {amount}",
            field="item_details",
        )
    return items


def _parse_email(value: Any, name: str) -> str:
    email = _string(value, name, max_len=EMAIL_MAX)
    if not EMAIL_RE.fullmatch(email):
        raise InvalidRequestError(f"{name} is not a valid email address", field=name)
    return email


def _parse_phone(value: Any, name: str) -> str:
    phone = _string(value, name, max_len=PHONE_MAX)
    if not PHONE_RE.fullmatch(phone):
        raise InvalidRequestError(
            f"{name} must be 5 to 19 digits (spaces, dashes and a leading + allowed)", field=name
        )
    return phone


def _parse_address(value: Any, name: str) -> dict:
    address = _object(value, name)
    parsed = {}
    for key, max_len in ADDRESS_FIELDS.items():
        if address.get(key) is None:
            continue
        sub = f"{name}.{key}"
        if key == "email":
            parsed[key] = _parse_email(address[key], sub)
        elif key == "phone":
            parsed[key] = _parse_phone(address[key], sub)
        else:
            parsed[key] = _string(address[key], sub, max_len=max_len, required=False)
    return parsed


def _parse_customer(value: Any) -> dict:
    customer = _object(value, "customer_details")
    parsed: dict[str, Any] = {}
    for key, max_len in CUSTOMER_TEXT_FIELDS.items():
        if customer.get(key) is not None:
            parsed[key] = _string(
                customer[key], f"customer_details.{key}", max_len=max_len, required=False
            )
    if customer.get("email") is not None:
        parsed["email"] = _parse_email(customer["email"], "customer_details.email")
    if customer.get("phone") is not None:
        parsed["phone"] = _parse_phone(customer["phone"], "customer_details.phone")
    for key in ("billing_address", "shipping_address"):
        if customer.get(key) is not None:
            parsed[key] = _parse_address(customer[key], f"customer_details.{key}")
    return parsed


def _parse_expiry(value: Any, name: str, *, needs_unit: bool) -> dict:
    expiry = _object(value, name)
    duration = expiry.get("duration")
    if not _is_int(duration) or not 1 <= duration <= EXPIRY_DURATION_MAX:
        raise InvalidRequestError(
            f"{name}.duration must be an integer from 1 to {EXPIRY_DURATION_MAX}",
            field=f"{name}.duration",
        )
    unit = expiry.get("unit")
    if (needs_unit or unit is not None) and unit not in EXPIRY_UNITS:
        raise InvalidRequestError(
            f"{name}.unit must be one of second, minute, hour, day", field=f"{name}.unit"
        )
    if expiry.get("start_time") is not None:
        _string(expiry["start_time"], f"{name}.start_time", max_len=START_TIME_MAX)
    return expiry


@dataclass(frozen=True)
class Expiry:
    """A Snap `expiry` or `page_expiry`: how long, and from when (`start_time`, in UTC; None
    when absent or unreadable, and Midtrans then counts from the token's creation)."""

    span: timedelta
    start_time: datetime | None = None

    @classmethod
    def of(cls, expiry: dict) -> Expiry:
        """From an object `_parse_expiry` accepted (the unit defaults to minutes)."""
        unit = str(expiry.get("unit") or "minute").rstrip("s")
        span = timedelta(seconds=UNIT_SECONDS[unit] * expiry["duration"])
        return cls(span, _start_time(expiry.get("start_time")))


def _start_time(text: Any) -> datetime | None:
    """`start_time` ("2026-11-26 18:11:08 +0700") as UTC; None when absent or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S %z").astimezone(UTC)
    except ValueError:
        return None


def _parse_options(body: dict) -> dict:
    options: dict[str, Any] = {}
    for key in OBJECT_OPTIONS:
        if body.get(key) is not None:
            options[key] = _object(body[key], key)
    for key in STRING_OPTIONS:
        if body.get(key) is not None:
            options[key] = _string(body[key], key, max_len=OPTION_STRING_MAX)
    if body.get("enabled_payments") is not None:
        methods = body["enabled_payments"]
        if (
            not isinstance(methods, list)
            or not methods
            or not all(isinstance(m, str) and m for m in methods)
        ):
            raise InvalidRequestError(
                "enabled_payments must be a non-empty list of payment method names",
                field="enabled_payments",
            )
        options["enabled_payments"] = methods
    card = options.get("credit_card")
    if card is not None:
        for key, kind in CREDIT_CARD_TYPES.items():
            if card.get(key) is not None and not isinstance(card[key], kind):
                raise InvalidRequestError(
                    f"credit_card.{key} must be {_type_name(kind())}",
                    field=f"credit_card.{key}",
                )
        if card.get("type") is not None and card["type"] not in CARD_TRANSACTION_TYPES:
            raise InvalidRequestError(
                "credit_card.type must be authorize or authorize_capture", field="credit_card.type"
            )
    if "expiry" in options:
        _parse_expiry(options["expiry"], "expiry", needs_unit=True)
    if "page_expiry" in options:
        _parse_expiry(options["page_expiry"], "page_expiry", needs_unit=False)
    callbacks = options.get("callbacks")
    if callbacks is not None and callbacks.get("finish") is not None:
        finish = _string(callbacks["finish"], "callbacks.finish", max_len=FINISH_URL_MAX)
        if not finish.startswith(FINISH_URL_SCHEMES):
            raise InvalidRequestError(
                "callbacks.finish must be an http(s) URL", field="callbacks.finish"
            )
    return options


def _parse_callback_url(value: Any) -> str:
    """The order's own callback URL: an http(s) URL (whether its address may receive
    callbacks is the callback address policy's to say, when the order is made)."""
    url = _string(value, "callback_url", max_len=CALLBACK_URL_MAX)
    if not url.startswith(FINISH_URL_SCHEMES):
        raise InvalidRequestError(
            "callback_url must be an http(s) URL where this order's callbacks are sent "
            "(GoPay's deeplink return is gopay.callback_url)",
            field="callback_url",
        )
    return url


def _gopay_return_as_spec(body: dict) -> dict:
    """SPEC's GoPay charge takes `callback_url` as GoPay's deeplink return (where the GoPay
    app sends the payer back), sent to Midtrans as `gopay.callback_url`. So with
    `payment_type: gopay` a top-level `callback_url` is that, unless `gopay.callback_url`
    gives the return: then the top-level one is the order's own callback URL, as for any
    other charge."""
    gopay = body.get("gopay")
    if (
        body.get("payment_type") != "gopay"
        or body.get("callback_url") is None
        or (isinstance(gopay, dict) and gopay.get("callback_url") is not None)
    ):
        return body
    if gopay is not None and not isinstance(gopay, dict):
        return body  # refused as it stands, naming `gopay`
    moved = {k: v for k, v in body.items() if k != "callback_url"}
    moved["gopay"] = {**(gopay or {}), "callback_url": body["callback_url"]}
    return moved


# What a client sent for itself, echoed in `GET /status`, the records and every callback.
ECHOED_FIELDS = ("metadata", "custom_field1", "custom_field2", "custom_field3")

# Core API charges (`payment_type`): the payment types and their fields (SPEC "Core API
# charges"). Midtrans pads a short custom VA number and cuts a long one to its bank's length.
CORE_PAYMENT_TYPES = ("bank_transfer", "echannel", "gopay", "qris", "credit_card")
VA_BANKS = ("bca", "bni", "bri", "permata", "cimb")
VA_NUMBER_RE = re.compile(r"^[0-9]{1,18}$")
BILL_INFO_MAX = {"bill_info1": 10, "bill_info2": 30}
# Midtrans requires both labels of a Mandiri bill; these are its own example's.
BILL_INFO_DEFAULTS = {"bill_info1": "Payment:", "bill_info2": "Online purchase"}
QRIS_ACQUIRERS = ("gopay", "airpay shopee")
TOKEN_ID_MAX = 255
DEEPLINK_MAX = 1000
CUSTOM_EXPIRY_UNITS = ("minute", "hour", "day")
# Midtrans's longest payment expiry (its Core bank transfer and Mandiri bill pages: "min 20s,
# max 180 days"): a longer custom_expiry would reach Midtrans only to be refused there.
CUSTOM_EXPIRY_MAX = timedelta(days=180)
# Snap's options that mean nothing to a Core charge (its own fields replace them): refused
# with payment_type rather than dropped unseen.
SNAP_ONLY = {
    "enabled_payments": "payment_type",
    "expiry": "custom_expiry",
    "page_expiry": "custom_expiry",
    "callbacks": "the payment type's own fields",
    "bca_va": "bank and va_number",
    "bni_va": "bank and va_number",
    "bri_va": "bank and va_number",
    "permata_va": "bank and va_number",
    "cimb_va": "bank and va_number",
    "echannel": "bill_info1 and bill_info2",
    "shopeepay": "qris",
    "uobezpay": "another payment_type",
    "user_id": "token_id",
}
CORE_OWN = ("gopay", "credit_card")
# The credit_card options a Core card charge passes on (beside token_id and authentication).
CORE_CARD_OPTIONS = ("type", "bank", "installment", "channel", "dynamic_descriptor")


@dataclass(frozen=True)
class CoreCharge:
    """A Core API charge's own part of a `POST /charge`: its payment type, the fields the
    client sent for it (as sent: they are part of the request's details), and what goes to
    Midtrans beside the order (`payload`)."""

    payment_type: str
    fields: dict[str, Any]
    payload: dict[str, Any]
    expiry_span: timedelta | None = None  # custom_expiry, when given


def _parse_core(body: dict, options: dict) -> CoreCharge:
    kind = body.get("payment_type")
    if not isinstance(kind, str) or kind not in CORE_PAYMENT_TYPES:
        shown = kind if isinstance(kind, str) else _type_name(kind)
        raise InvalidRequestError(
            f"payment_type {str(shown)[:40]!r} is not supported; use one of "
            f"{', '.join(CORE_PAYMENT_TYPES)}, or leave it out for a Snap payment link",
            field="payment_type",
        )
    for key, instead in SNAP_ONLY.items():
        if body.get(key) is not None:
            raise InvalidRequestError(
                f"{key} is a Snap option; with payment_type use {instead}", field=key
            )
    if body.get("gopay") is not None and kind != "gopay":
        raise InvalidRequestError("gopay is only for payment_type gopay", field="gopay")
    if body.get("credit_card") is not None and kind != "credit_card":
        raise InvalidRequestError(
            "credit_card is only for payment_type credit_card", field="credit_card"
        )
    fields: dict[str, Any] = {"payment_type": kind}
    payload: dict[str, Any] = {"payment_type": kind}
    if kind == "bank_transfer":
        bank = body.get("bank")
        if bank not in VA_BANKS:
            raise InvalidRequestError(
                f"bank is required for bank_transfer: one of {', '.join(VA_BANKS)}", field="bank"
            )
        fields["bank"] = bank
        transfer = {"bank": bank}
        if body.get("va_number") is not None:
            number = body["va_number"]
            if not isinstance(number, str) or not VA_NUMBER_RE.fullmatch(number):
                raise InvalidRequestError(
                    "va_number must be a string of 1 to 18 digits (Midtrans pads or cuts it "
                    "to the bank's length)",
                    field="va_number",
                )
            fields["va_number"] = transfer["va_number"] = number
        payload["bank_transfer"] = transfer
    elif kind == "echannel":
        bill = dict(BILL_INFO_DEFAULTS)
        for key, max_len in BILL_INFO_MAX.items():
            if body.get(key) is not None:
                fields[key] = bill[key] = _string(body[key], key, max_len=max_len)
        payload["echannel"] = bill
    elif kind == "gopay":
        gopay = options.get("gopay")
        if gopay is not None:
            allowed = {"enable_callback", "callback_url"}
            for key in set(gopay) - allowed:
                raise InvalidRequestError(
                    f"gopay.{key} is not a GoPay charge field (gopay.callback_url is)",
                    field=f"gopay.{key}",
                )
            sent: dict[str, Any] = {}
            if gopay.get("callback_url") is not None:
                sent["enable_callback"] = True
                sent["callback_url"] = _string(
                    gopay["callback_url"], "gopay.callback_url", max_len=DEEPLINK_MAX
                )
            if gopay.get("enable_callback") is not None:
                if not isinstance(gopay["enable_callback"], bool):
                    raise InvalidRequestError(
                        "gopay.enable_callback must be a boolean", field="gopay.enable_callback"
                    )
                sent["enable_callback"] = gopay["enable_callback"]
            fields["gopay"] = payload["gopay"] = sent
    elif kind == "qris":
        if body.get("acquirer") is not None:
            if body["acquirer"] not in QRIS_ACQUIRERS:
                raise InvalidRequestError(
                    f"acquirer must be one of {', '.join(QRIS_ACQUIRERS)}", field="acquirer"
                )
            fields["acquirer"] = body["acquirer"]
            payload["qris"] = {"acquirer": body["acquirer"]}
    else:  # credit_card
        token = body.get("token_id")
        if token is None:
            raise InvalidRequestError(
                "token_id is required for credit_card: the card token Midtrans's card JS "
                "makes in the payer's browser with the client key (GET /config)",
                field="token_id",
            )
        fields["token_id"] = _string(token, "token_id", max_len=TOKEN_ID_MAX)
        card: dict[str, Any] = {"token_id": fields["token_id"]}
        if body.get("authentication") is not None:
            if not isinstance(body["authentication"], bool):
                raise InvalidRequestError(
                    "authentication must be a boolean (true: 3-D Secure)", field="authentication"
                )
            fields["authentication"] = card["authentication"] = body["authentication"]
        for key in CORE_CARD_OPTIONS:
            if (options.get("credit_card") or {}).get(key) is not None:
                card[key] = options["credit_card"][key]
        payload["credit_card"] = card
    span = None
    if body.get("custom_expiry") is not None:
        expiry = _object(body["custom_expiry"], "custom_expiry")
        duration = expiry.get("expiry_duration")
        if not _is_int(duration) or not 1 <= duration <= EXPIRY_DURATION_MAX:
            raise InvalidRequestError(
                f"custom_expiry.expiry_duration must be an integer from 1 to {EXPIRY_DURATION_MAX}",
                field="custom_expiry.expiry_duration",
            )
        unit = expiry.get("unit")
        if unit not in CUSTOM_EXPIRY_UNITS:
            raise InvalidRequestError(
                f"custom_expiry.unit must be one of {', '.join(CUSTOM_EXPIRY_UNITS)}",
                field="custom_expiry.unit",
            )
        span = timedelta(seconds=UNIT_SECONDS[unit] * duration)
        if span > CUSTOM_EXPIRY_MAX:
            raise InvalidRequestError(
                "custom_expiry may be at most 180 days (Midtrans's longest payment expiry)",
                field="custom_expiry.expiry_duration",
            )
        fields["custom_expiry"] = {"expiry_duration": duration, "unit": unit}
        payload["custom_expiry"] = dict(fields["custom_expiry"])
    return CoreCharge(kind, fields, payload, span)


@dataclass(frozen=True)
class ChargeRequest:
    """A validated `POST /charge` body."""

    order_id: str
    amount: int
    item_details: list[dict] | None = None
    customer_details: dict | None = None
    options: dict = field(default_factory=dict)  # Snap's options, passed on as given
    expiry: Expiry | None = None  # options' `expiry`, typed
    page_expiry: Expiry | None = None  # options' `page_expiry`, typed
    # Where this order's callbacks go instead of the app's URL (the gateway's, never sent to
    # Midtrans; GoPay's deeplink return is `gopay.callback_url`: `_gopay_return_as_spec`).
    callback_url: str | None = None
    core: CoreCharge | None = None  # with `payment_type`: a Core API charge, not a Snap link

    @classmethod
    def parse(cls, body: Any, *, prefix: str) -> ChargeRequest:
        if not isinstance(body, dict):
            raise InvalidRequestError("request body must be a JSON object")
        body = _gopay_return_as_spec(body)
        order_id = parse_order_id(body.get("order_id"), prefix=prefix)
        amount = parse_amount(body.get("amount"))
        items = None
        if body.get("item_details") is not None:
            items = _parse_items(body["item_details"], amount)
        customer = None
        if body.get("customer_details") is not None:
            customer = _parse_customer(body["customer_details"])
        options = _parse_options(body)
        callback_url = None
        if body.get("callback_url") is not None:
            callback_url = _parse_callback_url(body["callback_url"])
        core = None
        if "payment_type" in body:
            core = _parse_core(body, options)
        return cls(
            order_id,
            amount,
            items,
            customer,
            options,
            expiry=Expiry.of(options["expiry"]) if "expiry" in options else None,
            page_expiry=Expiry.of(options["page_expiry"]) if "page_expiry" in options else None,
            callback_url=callback_url,
            core=core,
        )

    def as_dict(self) -> dict:
        data: dict[str, Any] = {"order_id": self.order_id, "amount": self.amount}
        if self.item_details is not None:
            data["item_details"] = self.item_details
        if self.customer_details is not None:
            data["customer_details"] = self.customer_details
        data.update(self.options)
        if self.callback_url is not None:
            data["callback_url"] = self.callback_url
        if self.core is not None:
            data.update(self.core.fields)
        return data

    def echoed(self) -> dict[str, Any]:
        """The client's own fields every status object and callback carries back."""
        return {key: self.options[key] for key in ECHOED_FIELDS if key in self.options}

    def fingerprint(self) -> str:
        """Same details, same fingerprint: what decides replay (same) versus conflict (409)."""
        canonical = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def payment_type(self) -> str | None:
        return self.core.payment_type if self.core is not None else None

    def core_payload(self, midtrans_order_id: str) -> dict:
        """The body of Midtrans's Core `/v2/charge` for this request."""
        assert self.core is not None
        payload: dict[str, Any] = {
            **self.core.payload,
            "transaction_details": {"order_id": midtrans_order_id, "gross_amount": self.amount},
        }
        if self.item_details is not None:
            payload["item_details"] = self.item_details
        if self.customer_details is not None:
            payload["customer_details"] = self.customer_details
        # The core part carries gopay's and the card's fields as Midtrans's Core API has them.
        payload.update({k: v for k, v in self.options.items() if k not in CORE_OWN})
        return payload

    def snap_payload(self, midtrans_order_id: str) -> dict:
        payload: dict[str, Any] = {
            "transaction_details": {"order_id": midtrans_order_id, "gross_amount": self.amount}
        }
        if self.item_details is not None:
            payload["item_details"] = self.item_details
        if self.customer_details is not None:
            payload["customer_details"] = self.customer_details
        payload.update(self.options)
        return payload


# JSON Schema of the `POST /charge` body, built from the same tables and limits the parser
# uses, so the published API reference (app/openapi.py) cannot drift from what is enforced.
# What JSON Schema cannot say (item totals, the order prefix) is said in descriptions.
_JSON_TYPES = {bool: "boolean", str: "string", dict: "object", list: "array"}


def _text_schema(max_len: int, *, blank: bool = False, nullable: bool = True) -> dict:
    schema: dict[str, Any] = {"type": ["string", "null"] if nullable else "string"}
    schema["maxLength"] = max_len
    if not blank:
        schema["pattern"] = NOT_BLANK
    return schema


def _nullable_object(properties: dict, **extra: Any) -> dict:
    return {"type": ["object", "null"], "properties": properties, **extra}


def _expiry_schema(*, needs_unit: bool) -> dict:
    units = sorted(EXPIRY_UNITS)
    return _nullable_object(
        {
            "duration": {"type": "integer", "minimum": 1, "maximum": EXPIRY_DURATION_MAX},
            "unit": {"enum": units} if needs_unit else {"enum": [*units, None]},
            "start_time": _text_schema(START_TIME_MAX),
        },
        required=["duration", "unit"] if needs_unit else ["duration"],
    )


def _core_variants() -> list[dict]:
    """What `payment_type` asks of the other fields, one variant a payment type (JSON Schema
    `anyOf`, beside the Snap body without `payment_type`): each type's own fields,
    `custom_expiry`, and Snap's options (and the other types' objects) left out or null."""
    text = _text_schema
    null = {"type": "null"}
    common = {
        **{key: null for key in SNAP_ONLY},
        "custom_expiry": _nullable_object(
            {
                "expiry_duration": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": CUSTOM_EXPIRY_MAX // timedelta(minutes=1),
                    "description": "At most 180 days in all (Midtrans's longest).",
                },
                "unit": {"enum": list(CUSTOM_EXPIRY_UNITS)},
            },
            required=["expiry_duration", "unit"],
        ),
    }
    own: dict[str, tuple[list[str], dict]] = {
        "bank_transfer": (
            ["bank"],
            {
                "bank": {"enum": list(VA_BANKS)},
                "va_number": {"type": ["string", "null"], "pattern": VA_NUMBER_RE.pattern},
            },
        ),
        "echannel": ([], {key: text(n) for key, n in BILL_INFO_MAX.items()}),
        "gopay": (
            [],
            {
                "gopay": {
                    **_nullable_object(
                        {
                            "callback_url": text(DEEPLINK_MAX),
                            "enable_callback": {"type": ["boolean", "null"]},
                        }
                    ),
                    "additionalProperties": False,
                    "description": "GoPay's deeplink return: `callback_url` (Midtrans's "
                    "`gopay.callback_url`), where the GoPay app sends the payer back.",
                }
            },
        ),
        "qris": ([], {"acquirer": {"enum": [*QRIS_ACQUIRERS, None]}}),
        "credit_card": (
            ["token_id"],
            {
                "token_id": text(TOKEN_ID_MAX, nullable=False),
                "authentication": {"type": ["boolean", "null"]},
            },
        ),
    }
    variants = []
    for kind, (required, properties) in own.items():
        others = {key: null for key in CORE_OWN if key != kind}
        variants.append(
            {
                "title": kind,
                "required": ["payment_type", *required],
                "properties": {
                    "payment_type": {"const": kind},
                    **common,
                    **others,
                    **properties,
                },
            }
        )
    return variants


def charge_request_schema() -> dict:
    email = {"type": ["string", "null"], "maxLength": EMAIL_MAX, "pattern": EMAIL_RE.pattern}
    phone = {"type": ["string", "null"], "maxLength": PHONE_MAX, "pattern": PHONE_RE.pattern}
    address = _nullable_object(
        {
            key: email
            if key == "email"
            else phone
            if key == "phone"
            else _text_schema(n, blank=True)
            for key, n in ADDRESS_FIELDS.items()
        }
    )
    item = {
        "type": "object",
        "required": ["price", "quantity", "name"],
        "properties": {
            "price": {"type": "integer", "minimum": -AMOUNT_MAX, "maximum": AMOUNT_MAX},
            "quantity": {"type": "integer", "minimum": 1},
            "name": _text_schema(ITEM_NAME_MAX, nullable=False),
            **{key: _text_schema(n) for key, n in ITEM_TEXT_FIELDS.items()},
        },
    }
    customer = _nullable_object(
        {
            **{key: _text_schema(n, blank=True) for key, n in CUSTOMER_TEXT_FIELDS.items()},
            "email": email,
            "phone": phone,
            "billing_address": address,
            "shipping_address": address,
        }
    )
    options: dict[str, Any] = {key: {"type": ["object", "null"]} for key in OBJECT_OPTIONS}
    options.update({key: _text_schema(OPTION_STRING_MAX) for key in STRING_OPTIONS})
    options["credit_card"] = _nullable_object(
        {
            **{
                key: {"type": [_JSON_TYPES[kind], "null"]}
                for key, kind in CREDIT_CARD_TYPES.items()
            },
            "type": {"enum": [*CARD_TRANSACTION_TYPES, None]},
        }
    )
    options["expiry"] = _expiry_schema(needs_unit=True)
    options["page_expiry"] = _expiry_schema(needs_unit=False)
    finish = "^(?:" + "|".join(re.escape(s) for s in FINISH_URL_SCHEMES) + ")"
    options["callbacks"] = _nullable_object(
        {"finish": {"type": ["string", "null"], "maxLength": FINISH_URL_MAX, "pattern": finish}}
    )
    options["enabled_payments"] = {
        "type": ["array", "null"],
        "minItems": 1,
        "items": {"type": "string", "minLength": 1},
    }
    options["callback_url"] = {
        "type": ["string", "null"],
        "maxLength": CALLBACK_URL_MAX,
        "pattern": finish,
        "description": (
            "Where this order's callbacks go instead of the app's callback URL, signed with "
            "the app's signing secret (the app must have one). The same address rules as the "
            "app's URL apply. Not sent to Midtrans. With `payment_type: gopay` and no "
            "`gopay.callback_url` it is GoPay's deeplink return instead (SPEC), sent to "
            "Midtrans as `gopay.callback_url`."
        ),
    }
    options["payment_type"] = {
        "enum": list(CORE_PAYMENT_TYPES),
        "description": (
            "A Core API charge instead of a Snap link: the answer carries the payment details "
            "at once (VA number, Mandiri bill key, QR, GoPay deeplink, 3-D Secure page). Its "
            "own fields (`bank`, `va_number`, `bill_info1`, `bill_info2`, `gopay.callback_url`, "
            "`acquirer`, `token_id`, `authentication`, `custom_expiry`) count only with it; "
            "Snap's own options are refused with it."
        ),
    }
    return {
        "type": "object",
        "required": ["order_id", "amount"],
        "anyOf": [
            {"title": "Snap payment link", "properties": {"payment_type": False}},
            *_core_variants(),
        ],
        "properties": {
            "order_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": ORDER_ID_MAX,
                "pattern": ORDER_ID_RE.pattern,
                "not": {"pattern": r"^\.+$"},
                "description": (
                    f"Your order id. Midtrans sees the app's order prefix followed by it, and "
                    f"allows {ORDER_ID_MAX} characters in all: with the default prefix "
                    f"`<app code>-` the limit here is {ORDER_ID_MAX} minus the prefix's length."
                ),
            },
            "amount": {
                "type": "integer",
                "minimum": 1,
                "maximum": AMOUNT_MAX,
                "description": "Whole rupiah as a JSON integer: no decimal point, no string.",
            },
            "item_details": {
                "type": ["array", "null"],
                "minItems": 1,
                "items": item,
                "description": "`price` x `quantity` summed over the items must equal `amount`.",
            },
            "customer_details": customer,
            **options,
        },
        "description": "Unknown fields are ignored. Snap options are passed to Midtrans as given.",
    }
