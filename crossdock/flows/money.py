"""Exact money for the flow transforms: Decimal in, two-decimal strings out, half-up rounding."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from crossdock.engine.actions import StepFailed

CENT = Decimal("0.01")
HUNDRED = Decimal(100)


def dec(value: Any, what: str = "amount") -> Decimal:
    """A money or quantity value as Decimal (strings, ints and floats via their text form)."""
    if value is None or value == "":
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise StepFailed(f"{what} {value!r} is not a number.", category="validation") from None
    if not result.is_finite():
        raise StepFailed(f"{what} {value!r} is not a finite number.", category="validation")
    return result


def money(value: Decimal) -> str:
    """Two decimals, half-up (the storefront's and the ERPs' rounding)."""
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def pct(part: Decimal, whole: Decimal) -> Decimal:
    """`part` as a percentage of `whole`, two decimals; 0 when `whole` is 0."""
    if whole == 0:
        return Decimal("0.00")
    return (part / whole * HUNDRED).quantize(CENT, rounding=ROUND_HALF_UP)
