"""The reading record: one interval value of one channel of one meter (see DESIGN.md)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from meterledger.core.errors import InputError
from meterledger.core.ids import is_valid_meter_id
from meterledger.core.obis import ObisCode

__all__ = ["Quality", "Reading", "quality_rank"]


class Quality(enum.IntFlag):
    """Quality flags of a reading. No flag set means an actual, as-read value.

    Text form (CSV ``quality`` column): ``actual`` or flags joined by ``|``, e.g.
    ``estimated:linear|power-outage``.
    """

    ACTUAL = 0
    ESTIMATED = 1
    EDITED = 2
    POWER_OUTAGE = 4
    CLOCK_ADJUSTED = 8
    SUSPECT = 16
    EST_LINEAR = 32
    EST_LIKE_DAY = 64
    EST_REGISTER = 128

    @classmethod
    def parse(cls, text: str | None) -> Quality:
        if text is None or not text.strip():
            return cls.ACTUAL
        flags = cls.ACTUAL
        for token in text.strip().lower().split("|"):
            try:
                flags |= _TOKENS[token.strip()]
            except KeyError:
                raise InputError(f"unknown quality flag {token!r}") from None
        if sum(bool(flags & flag) for flag, _ in _METHODS) > 1:
            raise InputError(f"a value has one estimation method, got {text!r}")
        return flags

    def to_text(self) -> str:
        if self is Quality.ACTUAL or self.value == 0:
            return "actual"
        parts: list[str] = []
        method = next((name for flag, name in _METHODS if self & flag), None)
        if self & Quality.ESTIMATED or method:
            parts.append(f"estimated:{method}" if method else "estimated")
        for flag, name in _PLAIN:
            if self & flag:
                parts.append(name)
        return "|".join(parts)


_METHODS = (
    (Quality.EST_LINEAR, "linear"),
    (Quality.EST_LIKE_DAY, "like-day"),
    (Quality.EST_REGISTER, "register"),
)
_PLAIN = (
    (Quality.EDITED, "edited"),
    (Quality.POWER_OUTAGE, "power-outage"),
    (Quality.CLOCK_ADJUSTED, "clock-adjusted"),
    (Quality.SUSPECT, "suspect"),
)
_TOKENS: dict[str, Quality] = {
    "actual": Quality.ACTUAL,
    "estimated": Quality.ESTIMATED,
    "estimated:linear": Quality.ESTIMATED | Quality.EST_LINEAR,
    "estimated:like-day": Quality.ESTIMATED | Quality.EST_LIKE_DAY,
    "estimated:register": Quality.ESTIMATED | Quality.EST_REGISTER,
    "edited": Quality.EDITED,
    "power-outage": Quality.POWER_OUTAGE,
    "clock-adjusted": Quality.CLOCK_ADJUSTED,
    "suspect": Quality.SUSPECT,
}


def quality_rank(flags: int) -> int:
    """How final a value is: edited (3) beats actual (2) beats estimated (1)."""
    if flags & Quality.EDITED:
        return 3
    if flags & Quality.ESTIMATED:
        return 1
    return 2


@dataclass(frozen=True, slots=True)
class Reading:
    """One interval value. ``value`` is an integer of milli-units of the channel's base unit."""

    meter_id: str
    channel: ObisCode
    interval_end: datetime
    interval_seconds: int
    value: int
    quality: Quality = Quality.ACTUAL
    source: str = ""
    received_at: datetime | None = None
    batch_id: int | None = None

    def __post_init__(self) -> None:
        if not is_valid_meter_id(self.meter_id):
            raise InputError(f"malformed meter id: {self.meter_id!r}")
        if self.interval_end.tzinfo is None:
            raise InputError("interval_end must be timezone-aware UTC")
        if self.interval_seconds <= 0:
            raise InputError(f"interval_seconds must be positive, got {self.interval_seconds}")
        if not isinstance(self.value, int) or isinstance(self.value, bool):
            raise InputError(f"value is an integer of milli-units, got {self.value!r}")

    @property
    def natural_key(self) -> tuple[str, str, datetime]:
        return (self.meter_id, str(self.channel), self.interval_end)
