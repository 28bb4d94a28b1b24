"""Exact money: integer minor units inside the pipeline, Decimal at the edges, JSON numbers on the wire.

CI holds money as NUMERIC(14,2), quantities as NUMERIC(14,3) and unit prices as NUMERIC(14,4). Inside
the pipeline they travel as integers (cents, thousandths, ten-thousandths) in int64 columns: exact,
fast and small. Xero wants JSON numbers; `dumps_exact` writes a Decimal as the number it is, without
passing through binary floating point, and `loads_exact` reads numbers back as Decimal.
"""

from __future__ import annotations

import json
import re
import secrets
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")
GST_RATE = Decimal("0.15")


def cents_to_decimal(cents: int) -> Decimal:
    """123456 -> Decimal('1234.56')."""
    return Decimal(int(cents)).scaleb(-2)


def decimal_to_cents(amount: Decimal | str | int) -> int:
    """Decimal('1234.56') -> 123456; refuses amounts with more than two decimals."""
    value = Decimal(str(amount)) if not isinstance(amount, Decimal) else amount
    cents = value * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{amount} has more than two decimal places")
    return int(cents)


def scaled_to_decimal(value: int, places: int) -> Decimal:
    """An integer in units of 10**-places as a Decimal: (1500, 3) -> Decimal('1.500')."""
    return Decimal(int(value)).scaleb(-places)


def round_half_up(value: Decimal, exponent: Decimal = CENT) -> Decimal:
    """Commercial rounding (0.005 -> 0.01), the rule CI and Xero both use for money."""
    return value.quantize(exponent, rounding=ROUND_HALF_UP)


def gst_inclusive_cents(total_incl_cents: int, rate: Decimal = GST_RATE) -> int:
    """The GST inside a GST-inclusive amount, rounded half up to the cent (15 % -> amount x 3/23)."""
    tax = Decimal(int(total_incl_cents)) * rate / (1 + rate)
    return int(tax.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _with_markers(value: Any, marker: str) -> Any:
    if isinstance(value, Decimal):
        return f"{marker}{value}"
    if isinstance(value, dict):
        return {k: _with_markers(v, marker) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_with_markers(v, marker) for v in value]
    return value


def dumps_exact(obj: Any) -> str:
    """JSON text in which every Decimal is written as a JSON number with exactly its digits.

    The json module can only write floats as numbers; a float would be exact for 2-decimal amounts in
    practice, but "in practice" is not the standard for books. Decimals are first written as marked
    strings (the marker is random per call, so no user text can imitate it) and then unquoted.
    """
    marker = f"@dec{secrets.token_hex(6)}@"
    text = json.dumps(_with_markers(obj, marker), ensure_ascii=False, separators=(",", ":"))
    return re.sub(rf'"{re.escape(marker)}(-?[0-9]+(?:\.[0-9]+)?(?:E[+-]?[0-9]+)?)"', r"\1", text)


def loads_exact(text: str | bytes) -> Any:
    """Parse JSON reading every non-integer number as Decimal (integers stay int)."""
    return json.loads(text, parse_float=Decimal)
