"""OBIS codes (IEC 62056-61): the six value groups A-B:C.D.E*F that name what is measured."""

from __future__ import annotations

import re
from dataclasses import dataclass

from meterledger.core.errors import InputError

__all__ = ["ObisCode"]

# ASCII digits only: ``\d`` would also accept Arabic-Indic or full-width digits.
_DOTTED = re.compile(
    r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})"
)
_REDUCED = re.compile(
    r"([0-9]{1,3})-([0-9]{1,3}):([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})(?:[*&]([0-9]{1,3}))?"
)


@dataclass(frozen=True, slots=True, order=True)
class ObisCode:
    """One OBIS code. ``str()`` gives the dotted form ``1.0.1.8.0.255`` used as channel id."""

    a: int
    b: int
    c: int
    d: int
    e: int
    f: int = 255

    def __post_init__(self) -> None:
        for name in ("a", "b", "c", "d", "e", "f"):
            group = getattr(self, name)
            if isinstance(group, bool) or not isinstance(group, int) or not 0 <= group <= 255:
                raise InputError(f"OBIS value group {name.upper()} must be 0..255, got {group!r}")

    @classmethod
    def parse(cls, text: str) -> ObisCode:
        """Parse ``1.0.1.8.0.255``, ``1-0:1.8.0*255`` or the short ``1-0:1.8.0`` (F = 255)."""
        stripped = text.strip()
        match = _DOTTED.fullmatch(stripped) or _REDUCED.fullmatch(stripped)
        if match is None:
            raise InputError(f"not an OBIS code: {text!r}")
        groups = [int(g) if g is not None else 255 for g in match.groups()]
        return cls(*groups)

    @classmethod
    def from_bytes(cls, data: bytes) -> ObisCode:
        """The 6-octet logical name used on the wire by DLMS/COSEM."""
        if len(data) != 6:
            raise InputError(f"an OBIS logical name has 6 octets, got {len(data)}")
        return cls(*data)

    def to_bytes(self) -> bytes:
        return bytes((self.a, self.b, self.c, self.d, self.e, self.f))

    def reduced(self) -> str:
        """The IEC 62056-61 display form ``1-0:1.8.0*255``."""
        return f"{self.a}-{self.b}:{self.c}.{self.d}.{self.e}*{self.f}"

    def __str__(self) -> str:
        return f"{self.a}.{self.b}.{self.c}.{self.d}.{self.e}.{self.f}"
