"""Midtrans's fee imposition (the "customer-imposed payment fee" set per channel in the merchant's
dashboard): the payer pays the order's amount plus a fee, fixed when the payment method is chosen.
The transaction's gross_amount, its signatures and its refund limit then include the fee, and
every body that states gross_amount also states the split.

A rule is what `POST /_sim/config` takes as `fee_imposition` (and the control API per order):
`{"fee": 4440}` in rupiah, `{"percent": 2}` of the order's amount (rounded half up to whole
rupiah), or both added; `"placement"` is "metadata" (`metadata.extra_info.gross_amount_info`,
the default) or "top" (`original_amount` and `customer_imposed_payment_fee` beside gross_amount,
as some channels send them); `"payment_types"` limits it to those channels (all when absent).
"""

from decimal import ROUND_HALF_UP, Decimal

from .methods import PAYMENT_TYPES
from .transactions import Transaction, midtrans_amount

PLACEMENTS = ("metadata", "top")
RULE_FIELDS = ("fee", "percent", "placement", "payment_types")
NO_FEE = {"fee": 0, "percent": 0, "placement": "metadata", "payment_types": None}


def parse_rule(value) -> dict | None:
    """A checked rule with every field filled in, or None for off; ValueError says what is wrong."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError('fee_imposition must be an object like {"fee": 4440}, or null')
    unknown = sorted(set(value) - set(RULE_FIELDS))
    if unknown:
        raise ValueError(f"fee_imposition takes only {', '.join(RULE_FIELDS)}, not {unknown}")
    if "fee" not in value and "percent" not in value:
        raise ValueError("fee_imposition needs fee (rupiah) or percent, or both")
    return {
        "fee": _fee(value.get("fee", 0)),
        "percent": _percent(value.get("percent", 0)),
        "placement": _placement(value.get("placement", "metadata")),
        "payment_types": _payment_types(value.get("payment_types")),
    }


def fee_for(rule: dict | None, amount: int, payment_type: str) -> int:
    """What the payer adds to an order of `amount` paid by `payment_type`; 0 when `rule` is off
    or leaves that channel out."""
    if rule is None:
        return 0
    if rule["payment_types"] is not None and payment_type not in rule["payment_types"]:
        return 0
    share = Decimal(amount) * Decimal(str(rule["percent"])) / 100
    return rule["fee"] + int(share.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def breakdown(tx: Transaction) -> dict:
    """The split of `tx`'s gross_amount in its placement, to merge into a body; {} with no fee."""
    if not tx.imposed_fee:
        return {}
    split = {
        "original_amount": midtrans_amount(tx.original_amount),
        "customer_imposed_payment_fee": midtrans_amount(tx.imposed_fee),
    }
    if tx.fee_placement == "top":
        return split
    info = {**split, "gross_amount": midtrans_amount(tx.gross_amount)}
    return {"metadata": {"extra_info": {"gross_amount_info": info}}}


def _fee(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("fee_imposition.fee must be a whole number of rupiah >= 0")
    return value


def _percent(value) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise ValueError("fee_imposition.percent must be a number from 0 to 100")
    return value


def _placement(value) -> str:
    if value not in PLACEMENTS:
        raise ValueError(f"fee_imposition.placement must be one of {PLACEMENTS}")
    return value


def _payment_types(value) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(kind in PAYMENT_TYPES for kind in value):
        raise ValueError(f"fee_imposition.payment_types must be a list of {PAYMENT_TYPES}")
    return list(value)
