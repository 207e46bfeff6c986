"""Units and exact quantities: every value is an integer count of milli-units of a base unit.

Energy is kept in mWh, reactive energy in mvarh, volume in mL. A decimal text converts to
milli-units exactly or not at all: a value finer than one milli-unit is an error, never rounded.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext

from meterledger.core.errors import InputError

__all__ = ["BaseUnit", "Quantity", "Unit", "milli_from_text", "text_from_milli"]

_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


class BaseUnit(enum.StrEnum):
    """What a channel measures, and so which units it can be delivered in."""

    WH = "Wh"
    VARH = "varh"
    LITRE = "L"


class Unit(enum.StrEnum):
    """A unit a reading may be delivered in. ``milli_per_unit`` converts to the base milli-unit."""

    WH = "Wh"
    KWH = "kWh"
    MWH = "MWh"
    VARH = "varh"
    KVARH = "kvarh"
    LITRE = "L"
    CUBIC_METRE = "m3"

    @property
    def base(self) -> BaseUnit:
        return _BASE[self]

    @property
    def milli_per_unit(self) -> int:
        return _MILLI[self]

    @property
    def decimals(self) -> int:
        """How many decimal places of this unit one milli-unit of the base is (kWh → 6)."""
        return len(str(self.milli_per_unit)) - 1


_BASE = {
    Unit.WH: BaseUnit.WH,
    Unit.KWH: BaseUnit.WH,
    Unit.MWH: BaseUnit.WH,
    Unit.VARH: BaseUnit.VARH,
    Unit.KVARH: BaseUnit.VARH,
    Unit.LITRE: BaseUnit.LITRE,
    Unit.CUBIC_METRE: BaseUnit.LITRE,
}
_MILLI = {
    Unit.WH: 1_000,
    Unit.KWH: 1_000_000,
    Unit.MWH: 1_000_000_000,
    Unit.VARH: 1_000,
    Unit.KVARH: 1_000_000,
    Unit.LITRE: 1_000,
    Unit.CUBIC_METRE: 1_000_000,
}


def milli_from_text(text: str, unit: Unit) -> int:
    """Exact conversion of a decimal string in ``unit`` to base milli-units."""
    if not _PLAIN_DECIMAL.fullmatch(text.strip()):
        # the same rule as ingest: no exponent, no separators, ASCII digits
        raise InputError(f"not a plain decimal number: {text!r}")
    try:
        number = Decimal(text.strip())
    except InvalidOperation as exc:
        raise InputError(f"not a decimal number: {text!r}") from exc
    if not number.is_finite():
        raise InputError(f"not a finite number: {text!r}")
    # exact: scaleb only moves the exponent, given a context wide enough for every digit
    with localcontext() as context:
        context.prec = len(number.as_tuple().digits) + unit.decimals + 2
        scaled = number.scaleb(unit.decimals)
        if scaled != scaled.to_integral_value():
            raise InputError(f"{text} {unit} is finer than one milli-{unit.base}")
        return int(scaled)


def text_from_milli(milli: int, unit: Unit) -> str:
    """The exact decimal text of ``milli`` base milli-units expressed in ``unit``."""
    with localcontext() as context:
        context.prec = len(str(abs(milli))) + unit.decimals + 2
        value = Decimal(milli).scaleb(-unit.decimals)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


@dataclass(frozen=True, slots=True)
class Quantity:
    """An exact amount: ``milli`` milli-units of ``base``."""

    milli: int
    base: BaseUnit

    def __post_init__(self) -> None:
        if not isinstance(self.milli, int) or isinstance(self.milli, bool):
            raise InputError(f"a quantity is an integer of milli-units, got {self.milli!r}")

    @classmethod
    def parse(cls, text: str, unit: Unit) -> Quantity:
        return cls(milli_from_text(text, unit), unit.base)

    def to_text(self, unit: Unit) -> str:
        if unit.base is not self.base:
            raise InputError(f"cannot express {self.base} in {unit}")
        return text_from_milli(self.milli, unit)

    def __add__(self, other: Quantity) -> Quantity:
        if other.base is not self.base:
            raise InputError(f"cannot add {other.base} to {self.base}")
        return Quantity(self.milli + other.milli, self.base)
