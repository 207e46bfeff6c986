"""TOU calendars over arrays: UTC epoch seconds → local month, day type and 15-minute slot.

An interval belongs to the TOU period in force at its last second (``interval_end - 1``): an
interval 15:45–16:00 is in the period of 15:45, whatever the interval length. Local time comes
from the zone's real UTC offsets (zoneinfo), so the 23- and 25-hour days of DST changes have
92 and 100 quarter-hours, and the repeated hour in autumn is classified by its own offset.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

__all__ = ["LocalTime", "local_day_number", "local_midnight_utc", "localize", "utc_offsets"]

_DAY = 86_400
_EPOCH_DAY = date(1970, 1, 1)


def _offset(zone: ZoneInfo, instant: int) -> int:
    utc = datetime.fromtimestamp(instant, UTC)
    delta = utc.astimezone(zone).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


def utc_offsets(instants: np.ndarray, zone: ZoneInfo) -> np.ndarray:
    """The zone's UTC offset in seconds at each instant (epoch seconds), vectorised.

    The offset is sampled once per UTC day over the span of the data; where two samples
    differ, the transition instant is found by bisection to the second."""
    if len(instants) == 0:
        return np.zeros(0, dtype=np.int64)
    lo = int(instants.min()) // _DAY * _DAY
    hi = int(instants.max())
    bounds: list[int] = []
    values = [_offset(zone, lo)]
    previous = lo
    for point in range(lo + _DAY, hi + _DAY, _DAY):
        current = _offset(zone, point)
        if current != values[-1]:
            a, b = previous, point  # offset(a) == values[-1], offset(b) == current
            while b - a > 1:
                mid = (a + b) // 2
                if _offset(zone, mid) == values[-1]:
                    a = mid
                else:
                    b = mid
            bounds.append(b)
            values.append(current)
        previous = point
    if not bounds:
        return np.full(len(instants), values[0], dtype=np.int64)
    index = np.searchsorted(np.asarray(bounds, dtype=np.int64), instants, side="right")
    return np.asarray(values, dtype=np.int64)[index]


@dataclass(frozen=True, slots=True)
class LocalTime:
    """Local calendar parts of each instant: ``day`` (days since 1970-01-01 local),
    ``month0`` (0–11), ``day_type`` (0 weekday, 1 weekend, 2 holiday), ``slot`` (0–95)."""

    day: np.ndarray
    month0: np.ndarray
    day_type: np.ndarray
    slot: np.ndarray
    seconds_of_day: np.ndarray


def localize(instants: np.ndarray, zone: ZoneInfo, holidays: Iterable[date] = ()) -> LocalTime:
    """Local parts of ``instants`` (epoch seconds; for an interval pass ``end - 1``)."""
    instants = np.asarray(instants, dtype=np.int64)
    local = instants + utc_offsets(instants, zone)
    day = np.floor_divide(local, _DAY)
    seconds = local - day * _DAY
    slot = (seconds // 900).astype(np.int16)
    if len(day) == 0:
        empty = np.zeros(0, dtype=np.int8)
        return LocalTime(day, empty, empty, slot, seconds)
    # Month and day type depend on the day only: compute them once per day of the span.
    first = int(day.min())
    days = np.arange(first, int(day.max()) + 1, dtype=np.int64)
    month_of = (days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12).astype(
        np.int8
    )
    type_of = (((days + 3) % 7) >= 5).astype(np.int8)  # 1970-01-01 was a Thursday
    holiday_days = np.asarray(sorted(local_day_number(d) for d in holidays), dtype=np.int64)
    if len(holiday_days):
        type_of[np.isin(days, holiday_days)] = 2
    index = day - first
    month0 = month_of[index]
    day_type = type_of[index]
    return LocalTime(day, month0, day_type, slot, seconds)


def local_day_number(day: date) -> int:
    return (day - _EPOCH_DAY).days


def day_of_number(number: int) -> date:
    return _EPOCH_DAY + timedelta(days=number)


def local_midnight_utc(day: date, zone: ZoneInfo) -> int:
    """Epoch seconds of the local midnight that starts ``day`` (in a zone whose midnight
    is skipped by a DST change, zoneinfo's fold-0 reading gives the instant after the gap)."""
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())
