"""Midtrans's two secrets checks: the notification signature and the server-key Basic auth."""

import base64
import binascii
import hashlib
import hmac


def signature_key(order_id: str, status_code: str, gross_amount: str, server_key: str) -> str:
    """sha512 hex of the literal strings, exactly as Midtrans signs notifications and statuses."""
    return hashlib.sha512(f"{order_id}{status_code}{gross_amount}{server_key}".encode()).hexdigest()


def is_server_key(authorization: str | None, server_key: str) -> bool:
    """True when the header is `Basic base64(server_key + ":")`; the password part is ignored."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        username = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(username.encode(), server_key.encode())
