"""UTC instants and intervals. Inside meterledger every instant is timezone-aware UTC.

Bulk code carries instants as integer seconds since the Unix epoch; these helpers convert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterledger.core.errors import InputError

__all__ = [
    "Interval",
    "epoch_of",
    "from_epoch",
    "is_aligned",
    "iso_utc",
    "parse_instant",
    "parse_zone",
    "utc_now",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_instant(text: str) -> datetime:
    """ISO-8601 with a UTC offset (``Z`` allowed) → aware UTC. A naive time is an error."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InputError(f"not an ISO-8601 timestamp: {text!r}") from exc
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"timestamp has no UTC offset: {text!r}")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise InputError(f"timestamp out of range in UTC: {text!r}") from exc


def epoch_of(value: datetime) -> int:
    """Whole seconds since the epoch of an aware instant (sub-second parts are an error)."""
    if value.tzinfo is None:
        raise InputError(f"naive datetime {value!r}: meterledger keeps aware UTC times")
    delta = value - _EPOCH
    if delta.microseconds:
        raise InputError(f"{value.isoformat()} has a sub-second part")
    return delta.days * 86_400 + delta.seconds


def from_epoch(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


def iso_utc(seconds: int) -> str:
    """``2024-01-01T00:15:00+00:00`` for an epoch second."""
    return from_epoch(seconds).isoformat()


def parse_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(f"unknown IANA time zone: {name!r}") from exc


def is_aligned(end_epoch: int, seconds: int, zone: ZoneInfo) -> bool:
    """Whether an interval of ``seconds`` ending at ``end_epoch`` sits on the local grid.

    Meters align intervals to local clock time (an hourly interval in Asia/Kolkata ends at
    :30 UTC), so the check adds the zone's offset at that instant.
    """
    instant = from_epoch(end_epoch)
    try:
        offset = instant.astimezone(zone).utcoffset()
    except OverflowError:  # within hours of year 1 or 9999: the local form is unrepresentable
        offset = zone.utcoffset(instant.replace(tzinfo=None))
    local = end_epoch + (int(offset.total_seconds()) if offset is not None else 0)
    return seconds > 0 and local % seconds == 0


@dataclass(frozen=True, slots=True)
class Interval:
    """An interval given by its end and its length, as meters report them."""

    end: datetime
    seconds: int

    def __post_init__(self) -> None:
        if self.end.tzinfo is None:
            raise InputError("an interval end must be timezone-aware")
        if self.seconds <= 0:
            raise InputError(f"interval length must be positive, got {self.seconds}")

    @property
    def start(self) -> datetime:
        return self.end - timedelta(seconds=self.seconds)

    @property
    def end_epoch(self) -> int:
        return epoch_of(self.end)
