"""Money and quantities: ``Decimal`` everywhere, one rounding rule.

The rule (docs/tariffs.md): every line item's amount is ``quantity × rate`` computed exactly and
rounded once, half-up to the cent. Subtotals, taxes and totals add rounded line amounts, so a
bill always adds up on paper. Quantities (kWh, kW, days) are exact decimals from integer
milli-unit sums and are never rounded before they are multiplied.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from meterledger.core.errors import InputError

__all__ = ["CENT", "ZERO", "dec", "kwh_of_milli", "money", "plain"]

CENT = Decimal("0.01")
ZERO = Decimal("0")
_MILLI_PER_KWH = Decimal(1_000_000)  # readings are mWh: 1 kWh = 10^6 mWh


def money(value: Decimal) -> Decimal:
    """The one rounding rule: half-up to the cent."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def dec(value: object, what: str = "value") -> Decimal:
    """A Decimal from YAML/JSON input: int, decimal string or float (by its shortest repr)."""
    if isinstance(value, bool):
        raise InputError(f"{what}: expected a number, got {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise InputError(f"{what}: not a number: {value!r}") from None
    else:
        raise InputError(f"{what}: expected a number, got {type(value).__name__}")
    if not result.is_finite():
        raise InputError(f"{what}: must be finite, got {value!r}")
    return result


def kwh_of_milli(milli: int) -> Decimal:
    """Exact kWh of an integer count of mWh."""
    return Decimal(int(milli)) / _MILLI_PER_KWH


def plain(value: Decimal) -> str:
    """A decimal as a plain string without exponent or trailing zeros beyond the cents
    (``12.5`` → ``"12.5"``, ``1E+3`` → ``"1000"``)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text
