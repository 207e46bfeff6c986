"""COSEM dates and times (Blue Book DLMS UA 1000-1, 4.1.6.1): :class:`CosemDate` (5 octets),
:class:`CosemTime` (4) and :class:`CosemDateTime` (12), with their octets and their
conversion to and from Python's ``date``, ``time`` and aware ``datetime``. The ``Data``
values that carry them are in :mod:`meterledger.codec.dlms.data`, which re-exports these.

Each checks its fields when built: a number in the standard's range, ``None`` for "not
specified" (0xFF, 0xFFFF for the year, 0x8000 for the deviation), or one of the special
values kept as the raw int (:data:`DST_END`, ...).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo

from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError

__all__ = [
    "DAYLIGHT_SAVING_ACTIVE",
    "DEVIATION_NOT_SPECIFIED",
    "DST_BEGIN",
    "DST_END",
    "LAST_DAY",
    "NOT_SPECIFIED",
    "SECOND_LAST_DAY",
    "ClockStatus",
    "CosemDate",
    "CosemDateTime",
    "CosemTime",
]

# Blue Book 4.1.6.1: 0xFF (or 0xFFFF for the year) means "not specified"; deviation 0x8000.
NOT_SPECIFIED = 0xFF
DEVIATION_NOT_SPECIFIED = -0x8000
DST_END = 0xFD  # month: the month daylight saving ends
DST_BEGIN = 0xFE  # month: the month daylight saving begins
SECOND_LAST_DAY = 0xFD  # day of month
LAST_DAY = 0xFE  # day of month
DAYLIGHT_SAVING_ACTIVE = 0x80  # clock status bit 7

# The Blue Book gives the deviation the range -720..+720; UTC+13 and UTC+14 (Tonga, Samoa,
# Kiribati) need -780 and -840, so those are accepted too.
_MAX_DEVIATION = 840


class ClockStatus(enum.IntFlag):
    """The clock status bits of a date-time (Blue Book 4.1.6.1); bits 4..6 are reserved."""

    INVALID_VALUE = 0x01
    DOUBTFUL_VALUE = 0x02
    DIFFERENT_CLOCK_BASE = 0x04
    INVALID_CLOCK_STATUS = 0x08
    DAYLIGHT_SAVING_ACTIVE = 0x80


def _field(name: str, value: int | None, low: int, high: int, special: tuple[int, ...] = ()) -> str:
    if value is None or (isinstance(value, int) and (low <= value <= high or value in special)):
        return ""
    return f"{name} {value!r} is outside {low}..{high}" + (
        f" and not one of {', '.join(f'0x{s:02X}' for s in special)}" if special else ""
    )


def _date_problem(year: int | None, month: int | None, day: int | None, wd: int | None) -> str:
    return (
        _field("year", year, 0, 0xFFFE)
        or _field("month", month, 1, 12, (DST_END, DST_BEGIN))
        or _field("day of month", day, 1, 31, (SECOND_LAST_DAY, LAST_DAY))
        or _field("day of week", wd, 1, 7)
    )


def _time_problem(hour: int | None, minute: int | None, sec: int | None, hs: int | None) -> str:
    return (
        _field("hour", hour, 0, 23)
        or _field("minute", minute, 0, 59)
        or _field("second", sec, 0, 59)
        or _field("hundredths", hs, 0, 99)
    )


def _none_if(value: int, unspecified: int) -> int | None:
    return None if value == unspecified else value


def _or(value: int | None, unspecified: int) -> int:
    return unspecified if value is None else value


_DATE = struct.Struct(">HBBB")
_TIME = struct.Struct(">BBBB")
_DATE_TIME = struct.Struct(">HBBBBBBBhB")


@dataclass(frozen=True, slots=True)
class CosemDate:
    """date (5 octets): ``None`` where not specified; ``month`` may be :data:`DST_END` or
    :data:`DST_BEGIN`, ``day`` :data:`SECOND_LAST_DAY` or :data:`LAST_DAY`."""

    year: int | None
    month: int | None  # 1..12; 0xFD/0xFE (DST end/begin) kept as the raw int
    day: int | None  # 1..31; 0xFD/0xFE (second last / last day) kept as the raw int
    weekday: int | None  # 1 = Monday .. 7

    def __post_init__(self) -> None:
        problem = _date_problem(self.year, self.month, self.day, self.weekday)
        if problem:
            raise DlmsLocalError(f"date: {problem}")

    @classmethod
    def from_date(cls, value: date) -> CosemDate:
        return cls(value.year, value.month, value.day, value.isoweekday())

    def to_date(self) -> date:
        """The calendar day; every field but the weekday must be a plain number."""
        y, m, d = self.year, self.month, self.day
        if y is None or m is None or d is None or m > 12 or d > 31:
            raise DlmsLocalError(f"{self} is a pattern, not one day")
        try:
            return date(y, m, d)
        except ValueError as exc:
            raise DlmsLocalError(f"{self} is not a day: {exc}") from exc

    def to_octets(self) -> bytes:
        return _DATE.pack(
            _or(self.year, 0xFFFF),
            _or(self.month, 0xFF),
            _or(self.day, 0xFF),
            _or(self.weekday, 0xFF),
        )

    @classmethod
    def from_octets(cls, raw: bytes) -> CosemDate:
        """From the 5 octets; :class:`DecodeError` when the length or a field is wrong."""
        if len(raw) != 5:
            raise DecodeError(f"a date is 5 octets, not {len(raw)}")
        y, m, d, wd = _DATE.unpack(raw)
        fields = (_none_if(y, 0xFFFF), _none_if(m, 0xFF), _none_if(d, 0xFF), _none_if(wd, 0xFF))
        problem = _date_problem(*fields)
        if problem:
            raise DecodeError(f"date {bytes(raw).hex(' ')}: {problem}")
        return cls(*fields)


@dataclass(frozen=True, slots=True)
class CosemTime:
    """time (4 octets): ``None`` where not specified."""

    hour: int | None
    minute: int | None
    second: int | None
    hundredths: int | None

    def __post_init__(self) -> None:
        problem = _time_problem(self.hour, self.minute, self.second, self.hundredths)
        if problem:
            raise DlmsLocalError(f"time: {problem}")

    @classmethod
    def from_time(cls, value: time) -> CosemTime:
        return cls(value.hour, value.minute, value.second, value.microsecond // 10_000)

    def to_time(self) -> time:
        """The time of day; hundredths not specified count as 0."""
        if self.hour is None or self.minute is None or self.second is None:
            raise DlmsLocalError(f"{self} is a pattern, not one time of day")
        return time(self.hour, self.minute, self.second, (self.hundredths or 0) * 10_000)

    def to_octets(self) -> bytes:
        return _TIME.pack(
            _or(self.hour, 0xFF),
            _or(self.minute, 0xFF),
            _or(self.second, 0xFF),
            _or(self.hundredths, 0xFF),
        )

    @classmethod
    def from_octets(cls, raw: bytes) -> CosemTime:
        """From the 4 octets; :class:`DecodeError` when the length or a field is wrong."""
        if len(raw) != 4:
            raise DecodeError(f"a time is 4 octets, not {len(raw)}")
        fields = tuple(_none_if(v, 0xFF) for v in _TIME.unpack(raw))
        problem = _time_problem(*fields)
        if problem:
            raise DecodeError(f"time {bytes(raw).hex(' ')}: {problem}")
        return cls(*fields)


_ZONES: dict[int, timezone] = {}
_ZERO = timedelta(0)


def _fixed_zone(offset_minutes: int) -> timezone:
    zone = _ZONES.get(offset_minutes)
    if zone is None:
        zone = _ZONES[offset_minutes] = timezone(timedelta(minutes=offset_minutes))
    return zone


@dataclass(frozen=True, slots=True)
class CosemDateTime:
    """date-time (12 octets): the *local* date and time, the ``deviation`` and the clock
    ``status`` (:class:`ClockStatus` bits), each ``None`` when not specified.

    The sign of the deviation: the Blue Book (4.1.6.1) defines it as "deviation: interpreted
    as long, range -720...+720 in minutes of local time to UTC", i.e. UTC = local time +
    deviation, so the deviation is the *negative* of the UTC offset: CET (UTC+01:00) is -60
    (0xFFC4), CEST -120 (0xFF88). Meters and implementations agree: a Kaifa meter in
    Austria sends ``07E8 06 0F 06 14 17 2D 00 FF88 80`` at 2024-06-15 20:23:45+02:00, i.e.
    -120 with the DST bit (UtilitechAS/amsreader-firmware issue 809, checked against the
    capture time); OSGP's SynchronizeTime documentation gives -120 for CEST; Gurux's clock
    documentation gives -60 for Paris under "DLMS and IDIS" (and notes that some national
    companion standards, India, Saudi Arabia, Italy, invert the sign: such meters need
    their deviation negated before it reaches this class)."""

    date: CosemDate
    time: CosemTime
    deviation: int | None
    status: int | None

    def __post_init__(self) -> None:
        if not isinstance(self.date, CosemDate) or not isinstance(self.time, CosemTime):
            raise DlmsLocalError("a date-time is a CosemDate and a CosemTime")
        problem = _field("deviation", self.deviation, -_MAX_DEVIATION, _MAX_DEVIATION) or _field(
            "clock status", self.status, 0, 0xFE
        )
        if problem:
            raise DlmsLocalError(f"date-time: {problem}")

    @property
    def daylight_saving(self) -> bool | None:
        """The status says daylight saving is active (``None``: status not specified)."""
        return None if self.status is None else bool(self.status & DAYLIGHT_SAVING_ACTIVE)

    def to_datetime(self, zone: tzinfo | None = None) -> datetime:
        """The aware instant: in the fixed offset ``-deviation`` minutes (see the class
        docstring for the sign). When the deviation is not specified the wall-clock time is
        read in ``zone`` (the meter's IANA zone), the DST status bit choosing between the
        two readings of an hour that repeats; without a zone that is an error, never a
        silent guess of UTC."""
        d, t = self.date, self.time
        y, mo, dd, h, mi, s = d.year, d.month, d.day, t.hour, t.minute, t.second
        if y is None or mo is None or dd is None or h is None or mi is None or s is None:
            raise DlmsLocalError("date-time has unspecified fields; it is not one instant")
        if mo > 12 or dd > 31:
            raise DlmsLocalError("date-time has a DST or last-day pattern; not one instant")
        fold = 0
        if self.deviation is not None:
            tz: tzinfo = _fixed_zone(-self.deviation)
        elif zone is not None:
            tz = zone
            fold = 1 if self.daylight_saving is False else 0  # the second (standard) pass
        else:
            raise DlmsLocalError("date-time deviation not specified: pass the meter's zone")
        micro = (t.hundredths or 0) * 10_000
        try:
            return datetime(y, mo, dd, h, mi, s, micro, tzinfo=tz, fold=fold)
        except ValueError as exc:
            raise DlmsLocalError(f"date-time is not a real instant: {exc}") from exc

    @classmethod
    def from_datetime(
        cls, value: datetime, status: int | None = 0, *, dst: bool | None = None
    ) -> CosemDateTime:
        """From an aware datetime, in its own offset (deviation = −offset minutes). The DST
        bit of ``status`` is set when ``value.dst()`` is positive (the clock is advanced), or
        as ``dst`` forces it: zones that tzdata models with a negative DST in winter
        (Europe/Dublin) need ``dst`` given."""
        offset = value.utcoffset() if value.tzinfo is not None else None
        if offset is None:
            raise DlmsLocalError("a COSEM date-time needs an aware datetime")
        seconds = offset.total_seconds()
        if seconds % 60:
            raise DlmsLocalError(f"UTC offset {offset} is not whole minutes")
        if status is not None:
            advanced = value.dst()
            if dst is True or (dst is None and advanced is not None and advanced > _ZERO):
                status |= DAYLIGHT_SAVING_ACTIVE
            elif dst is False:
                status &= ~DAYLIGHT_SAVING_ACTIVE
        return cls(
            CosemDate(value.year, value.month, value.day, value.isoweekday()),
            CosemTime(value.hour, value.minute, value.second, value.microsecond // 10_000),
            -int(seconds // 60),
            status,
        )

    def utc(self, zone: tzinfo | None = None) -> datetime:
        return self.to_datetime(zone).astimezone(UTC)

    def to_octets(self) -> bytes:
        d, t = self.date, self.time
        return _DATE_TIME.pack(
            _or(d.year, 0xFFFF),
            _or(d.month, 0xFF),
            _or(d.day, 0xFF),
            _or(d.weekday, 0xFF),
            _or(t.hour, 0xFF),
            _or(t.minute, 0xFF),
            _or(t.second, 0xFF),
            _or(t.hundredths, 0xFF),
            _or(self.deviation, DEVIATION_NOT_SPECIFIED),
            _or(self.status, 0xFF),
        )

    @classmethod
    def from_octets(cls, raw: bytes) -> CosemDateTime:
        """From the 12 octets; :class:`DecodeError` when the length or a field is wrong."""
        if len(raw) != 12:
            raise DecodeError(f"a date-time is 12 octets, not {len(raw)}")
        y, mo, d, wd, h, mi, s, hs, dev, st = _DATE_TIME.unpack(raw)
        day = (_none_if(y, 0xFFFF), _none_if(mo, 0xFF), _none_if(d, 0xFF), _none_if(wd, 0xFF))
        tod = (_none_if(h, 0xFF), _none_if(mi, 0xFF), _none_if(s, 0xFF), _none_if(hs, 0xFF))
        deviation = _none_if(dev, DEVIATION_NOT_SPECIFIED)
        problem = (
            _date_problem(*day)
            or _time_problem(*tod)
            or _field("deviation", deviation, -_MAX_DEVIATION, _MAX_DEVIATION)
        )
        if problem:
            raise DecodeError(f"date-time {bytes(raw).hex(' ')}: {problem}")
        return cls(CosemDate(*day), CosemTime(*tod), deviation, _none_if(st, 0xFF))
