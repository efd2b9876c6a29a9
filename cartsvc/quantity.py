"""Exact decimal quantities and prices, and their integer form for Lua.

Lua in Redis only has doubles, where 0.1 + 0.2 is not 0.3. Quantities therefore
travel to the scripts as whole thousandths (`milli`), which doubles hold exactly up
to 2**53, and are stored in Redis as plain decimal strings an operator can read.
"""

from __future__ import annotations

from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    Context,
    Decimal,
    InvalidOperation,
    localcontext,
)

QUANTITY_SCALE = 1000
QUANTITY_PLACES = 3
_CENT = Decimal("0.01")
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def parse_decimal(value: object) -> Decimal | None:
    """A finite Decimal from a JSON number, or None for anything else."""
    if isinstance(value, bool):
        return None

    if isinstance(value, int):
        return Decimal(value)

    if isinstance(value, Decimal) and value.is_finite():
        return value

    return None


def parse_decimal_text(text: str) -> Decimal | None:
    """A finite Decimal from text such as `0.1` or `45.90`, or None."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None

    return value if value.is_finite() else None


def to_milli(quantity: Decimal) -> int | None:
    """Whole thousandths of a quantity, or None when it is finer than that."""
    # Exactly: in the default context (28 digits, exponents down to -999999),
    # 1.000...0001 with 31 digits would round to 1, and 1E-2000000 flush to 0,
    # and both would pass as whole thousandths.
    with localcontext(_EXACT):
        scaled = quantity * QUANTITY_SCALE
        whole = scaled.to_integral_value()

    if scaled != whole:
        return None

    return int(scaled)


def from_milli(milli: int) -> Decimal:
    return (Decimal(milli) / QUANTITY_SCALE).normalize()


def canonical(value: Decimal) -> str:
    """The shortest plain text of a decimal: `1`, `0.3`, `45.9`, never `1E+1`."""
    if value == 0:
        # Not "-0": the scripts read a sign as no number at all.
        return "0"

    whole = value.to_integral_value()
    if value == whole:
        # Formatting, not quantize(): quantize raises past 28 digits (1e30).
        return format(whole, "f")

    return format(value.normalize(), "f")


def json_number(value: Decimal) -> int | float:
    """A quantity or price for a JSON answer: whole numbers as ints."""
    if value == value.to_integral_value():
        return int(value)

    return float(value)


def to_cents(value: Decimal) -> float:
    return float(value.quantize(_CENT, rounding="ROUND_HALF_UP"))
