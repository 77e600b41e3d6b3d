"""Cards: Midtrans's sandbox test cards, the card token (`GET /v2/token`) and what a charge with
a token does.

The test cards are those Midtrans documents for its sandbox (any future expiry, CVV 123, 3DS
OTP 112233). Each behaves the same with or without 3DS here: with `authentication: true` the
charge waits (pending, `redirect_url`) until the 3DS page is completed, then ends as the card
says; without it, the charge ends at once.

- accept: 4811 1111 1111 1114, 4411 1111 1111 1118, 4011 1111 1111 1112,
  5211 1111 1111 1117, 5410 1111 1111 1116, 5481 1611 1111 1081
- challenge by FDS (capture, fraud_status challenge): 4511 1111 1111 1117,
  4111 1111 1111 1111, 5510 1111 1111 1115, 5110 1111 1111 1119
- denied by FDS (fraud_status deny): 4611 1111 1111 1116, 4211 1111 1111 1110,
  5411 1111 1111 1115, 5210 1111 1111 1118
- denied by the bank: 4911 1111 1111 1113, 4711 1111 1111 1115, 4311 1111 1111 1119,
  5111 1111 1111 1118, 5511 1111 1111 1114, 5310 1111 1111 1117

Any other number that passes the Luhn check is accepted. A token issued here is good for one
charge; a second use, or a `token_id` the simulator never issued, answers 411 "Token id is
missing, invalid, or timed out" as Midtrans does.
"""

import dataclasses
import threading
import uuid
from datetime import datetime

OTP = "112233"
ACCEPT, CHALLENGE, DENY_FDS, DENY_BANK = "accept", "challenge", "deny_fds", "deny_bank"
TEST_CARDS = {
    "4811111111111114": ACCEPT,
    "4411111111111118": ACCEPT,
    "4011111111111112": ACCEPT,
    "5211111111111117": ACCEPT,
    "5410111111111116": ACCEPT,
    "5481161111111081": ACCEPT,
    "4511111111111117": CHALLENGE,
    "4111111111111111": CHALLENGE,
    "5510111111111115": CHALLENGE,
    "5110111111111119": CHALLENGE,
    "4611111111111116": DENY_FDS,
    "4211111111111110": DENY_FDS,
    "5411111111111115": DENY_FDS,
    "5210111111111118": DENY_FDS,
    "4911111111111113": DENY_BANK,
    "4711111111111115": DENY_BANK,
    "4311111111111119": DENY_BANK,
    "5111111111111118": DENY_BANK,
    "5511111111111114": DENY_BANK,
    "5310111111111117": DENY_BANK,
}
TOKEN_OK = "OK, success request new token"
TOKEN_INVALID = "One or more parameters in the payload is invalid."


@dataclasses.dataclass(frozen=True)
class Card:
    number: str

    @property
    def masked(self) -> str:
        """Midtrans's masked_card: the first 6 digits and the last 4, "481111-1114"."""
        return f"{self.number[:6]}-{self.number[-4:]}"

    @property
    def outcome(self) -> str:
        return TEST_CARDS.get(self.number, ACCEPT)

    @property
    def brand(self) -> str:
        return {"4": "visa", "5": "mastercard", "3": "jcb"}.get(self.number[0], "visa")


def luhn_ok(number: str) -> bool:
    total = 0
    for position, digit in enumerate(reversed(number)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def card_errors(params, today: datetime) -> tuple[Card | None, list[str]]:
    """The card in GET /v2/token's query, or Midtrans-style validation messages."""
    number = "".join(str(params.get("card_number", "")).split())
    month, year = str(params.get("card_exp_month", "")), str(params.get("card_exp_year", ""))
    cvv = str(params.get("card_cvv", ""))
    errors = []
    if not number:
        errors.append("card_number is required")
    elif not number.isdigit() or not 13 <= len(number) <= 19:
        errors.append("card_number is invalid")
    elif not luhn_ok(number):
        errors.append("card_number does not match with luhn algorithm")
    if not (month.isdigit() and 1 <= int(month) <= 12):
        errors.append("card_exp_month must be between 01 and 12")
    if not (year.isdigit() and len(year) in (2, 4)):
        errors.append("card_exp_year is invalid")
    elif not errors or "card_exp_month" not in errors[-1]:
        full_year = int(year) + (2000 if len(year) == 2 else 0)
        if month.isdigit() and (full_year, int(month)) < (today.year, today.month):
            errors.append("card_exp_year/card_exp_month is expired")
    if cvv and not (cvv.isdigit() and len(cvv) in (3, 4)):
        errors.append("card_cvv is invalid")
    return (None if errors else Card(number)), errors


class Vault:
    """Issued card tokens, each good for one charge."""

    def __init__(self):
        self._tokens: dict[str, Card] = {}
        self._lock = threading.Lock()

    def issue(self, card: Card) -> str:
        token = f"{card.masked}-{uuid.uuid4()}"
        with self._lock:
            self._tokens[token] = card
        return token

    def take(self, token: str) -> Card | None:
        """The card behind an issued `token`, which is used up; None for a token used before
        or never issued here."""
        with self._lock:
            return self._tokens.pop(token, None)

    def reset(self) -> None:
        with self._lock:
            self._tokens.clear()
