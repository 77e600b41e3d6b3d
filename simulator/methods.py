"""What each payment method looks like: VA numbers, Mandiri bill keys, QR strings, card details.

`new_method` invents the instructions when a method is chosen; `method_fields` renders them
with Midtrans's field names for charge answers, status answers and notifications.
"""

import binascii
import io
import secrets
from datetime import timedelta

import segno

from .transactions import Transaction, midtrans_amount, midtrans_time

PAYMENT_TYPES = ("bank_transfer", "echannel", "gopay", "qris", "credit_card")
BANKS = ("bca", "bni", "bri", "permata", "cimb")
BILLER_CODE = "70012"  # Midtrans's Mandiri biller code
MERCHANT_NAME = "MIDTRANS SIMULATOR"

# (fixed company prefix, length of the part a merchant may choose with bca_va.va_number etc.);
# the lengths are those of Midtrans's documented charge answers (tests/midtrans_samples.py):
# BCA 11, BNI 16, BRI 16 (8578000000111111 for va_number "111111"), Permata 16.
_VA_FORMATS = {
    "bca": ("12345", 6),
    "bni": ("98812345", 8),
    "bri": ("8578", 12),
    "permata": ("8778", 12),
    "cimb": ("8277", 12),
}

# How long an unpaid payment lives when the merchant set no expiry (Midtrans's defaults).
LIFETIMES = {
    "bank_transfer": timedelta(hours=24),
    "echannel": timedelta(hours=24),
    "gopay": timedelta(minutes=15),
    "qris": timedelta(minutes=15),
    "credit_card": timedelta(hours=24),
}

CHARGE_MESSAGES = {
    "bank_transfer": "Success, Bank Transfer transaction is created",
    "permata": "Success, PERMATA VA transaction is successful",
    "echannel": "OK, Mandiri Bill transaction is successful",
    "gopay": "GO-PAY transaction is created",
    "qris": "QRIS transaction is created",
    "credit_card": "Success, Credit Card transaction is successful",
    "challenge": "Challenge by FDS",
    "deny_fds": "Denied by FDS",
    "deny_bank": "Deny by Bank [{bank}] with code [05] and message [Do not Honor]",
}


def new_method(payment_type: str, bank: str | None, *, tx: Transaction, transaction_id: str):
    """Instructions for paying `tx`; custom VA numbers from the create request are honoured
    the Midtrans way (zero-padded in front when short, cut at the end when long)."""
    if payment_type == "bank_transfer":
        prefix, length = _VA_FORMATS[bank]
        custom = _custom_va(tx.request, bank)
        unique = custom.rjust(length, "0")[:length] if custom else _digits(length)
        return {"bank": bank, "va_number": prefix + unique}
    if payment_type == "echannel":
        return {"bill_key": _digits(12), "biller_code": BILLER_CODE}
    if payment_type in ("gopay", "qris"):
        return {"qr_string": qris_string(tx.gross_amount, transaction_id)}
    card = tx.request.get("credit_card") or {}
    return {
        "masked_card": (tx.card or {}).get("masked", "481111-1114"),
        "bank": card.get("bank") or "bni",
        "card_type": "credit",
        "approval_code": _digits(13),
    }


def method_fields(tx: Transaction, *, answer: str = "charge") -> dict:
    """Method-specific fields for a charge `answer` (also the payment page's), a "status" or a
    "notification". As Midtrans documents them: only the charge answer carries the QR string
    and the actions (the status API and notifications do not repeat them), GoPay's charge
    answer adds GoPay's channel response, and `payment_amounts` (the VA's payments so far) comes
    with the status and the notification, not with the charge."""
    method, base = tx.method, tx.base_url
    charge = answer == "charge"
    if tx.payment_type == "bank_transfer":
        if method["bank"] == "permata":
            fields = {"permata_va_number": method["va_number"]}
        else:
            fields = {"va_numbers": [{"bank": method["bank"], "va_number": method["va_number"]}]}
        if not charge:
            paid_at = midtrans_time(tx.settlement_time)
            fields["payment_amounts"] = (
                [{"paid_at": paid_at, "amount": _amount(tx)}] if paid_at else []
            )
        return fields
    if tx.payment_type == "echannel":
        return {"bill_key": method["bill_key"], "biller_code": method["biller_code"]}
    if tx.payment_type == "credit_card":
        if tx.transaction_status == "pending":  # 3DS still to be done: no bank answer yet
            return {k: method[k] for k in ("masked_card", "bank", "card_type")}
        denied = tx.transaction_status == "deny"
        return {
            **method,
            "channel_response_code": "05" if denied else "00",
            "channel_response_message": "Do not Honor" if denied else "Approved",
            "eci": "05",
        }
    fields = {"acquirer": "gopay"} if tx.payment_type == "qris" else {}
    if not charge:
        return fields
    qr_url = f"{base}v2/{tx.payment_type}/{tx.transaction_id}/qr-code"
    actions = [{"name": "generate-qr-code", "method": "GET", "url": qr_url}]
    if tx.payment_type == "qris":
        return {**fields, "qr_string": method["qr_string"], "actions": actions}
    return {
        "actions": [*actions, *_gopay_actions(tx)],
        "channel_response_code": "200",
        "channel_response_message": "Success",
    }


def charge_message(tx: Transaction) -> str:
    if tx.payment_type == "bank_transfer" and tx.method["bank"] == "permata":
        return CHARGE_MESSAGES["permata"]
    if tx.payment_type == "credit_card" and tx.fraud_status == "challenge":
        return CHARGE_MESSAGES["challenge"]
    if tx.payment_type == "credit_card" and tx.transaction_status == "deny":
        key = "deny_fds" if tx.fraud_status == "deny" else "deny_bank"
        return CHARGE_MESSAGES[key].format(bank=tx.method["bank"].upper())
    return CHARGE_MESSAGES[tx.payment_type]


def deeplink(tx: Transaction) -> str:
    """GoPay's deeplink; it returns the payer to the Core charge's `gopay.callback_url` (with
    `enable_callback`), else to Snap's `callbacks.finish`."""
    gopay = tx.request.get("gopay") or {}
    finish = gopay.get("callback_url", "") if gopay.get("enable_callback") else ""
    finish = finish or (tx.request.get("callbacks") or {}).get("finish", "")
    return (
        f"gojek://gopay/merchanttransfer?tref={tx.transaction_id.replace('-', '')[:20].upper()}"
        f"&amount={tx.gross_amount}&activity=GP:RR&callback_url={finish}"
    )


def qris_string(amount: int, reference: str) -> str:
    """A dynamic QRIS payload in EMVCo layout with a valid CRC, as a QR scanner would read it."""
    account = _tlv("00", "COM.GO-JEK.WWW") + _tlv("01", "936009140000000000") + _tlv("03", "UMI")
    payload = (
        _tlv("00", "01")
        + _tlv("01", "12")
        + _tlv("26", account)
        + _tlv("52", "5499")
        + _tlv("53", "360")
        + _tlv("54", str(amount))
        + _tlv("58", "ID")
        + _tlv("59", MERCHANT_NAME)
        + _tlv("60", "JAKARTA")
        + _tlv("62", _tlv("05", reference.replace("-", "")[:25]))
        + "6304"
    )
    return payload + f"{binascii.crc_hqx(payload.encode(), 0xFFFF):04X}"  # CRC-16/CCITT-FALSE


def qr_svg(data: str) -> str:
    return segno.make(data, error="m").svg_inline(scale=4)


def qr_png(data: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(data, error="m").save(buffer, kind="png", scale=6)
    return buffer.getvalue()


def _gopay_actions(tx: Transaction) -> list[dict]:
    base, tid = tx.base_url, tx.transaction_id
    return [
        {"name": "deeplink-redirect", "method": "GET", "url": deeplink(tx)},
        {"name": "get-status", "method": "GET", "url": f"{base}v2/{tid}/status"},
        {"name": "cancel", "method": "POST", "url": f"{base}v2/{tid}/cancel", "fields": []},
    ]


def _custom_va(request: dict, bank: str) -> str:
    """The VA digits a merchant asked for: Snap's `bca_va` etc. or Core's `bank_transfer`."""
    snap = request.get(f"{bank}_va") or {}
    core = request.get("bank_transfer") or {}
    chosen = snap.get("va_number") or core.get("va_number") or ""
    return "".join(ch for ch in str(chosen) if ch.isdigit())


def _amount(tx: Transaction) -> str:
    return midtrans_amount(tx.gross_amount)


def _digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))


def _tlv(tag: str, value: str) -> str:
    return f"{tag}{len(value):02d}{value}"
