"""Load shapes: deterministic interval energy profiles of homes and businesses.

The demo and the tests need data that looks like a real feed: peaks when people are awake,
businesses that go quiet at night, at weekends and on holidays, more energy in the heating
and cooling seasons. Determinants, time-of-use rating and anomaly rules then see the input
they were written for, and a fault injected on top stands out the way it would in the field.

Model. A day's shape is relative power over *local wall-clock* hours, built from smooth
bumps (Gaussians) and ramps (logistic curves), evaluated at each interval's midpoint. The
shape is scaled so that an ordinary weekday in the mild season uses ``daily_kwh``; the season
factor then scales it up, and weekends and holidays follow from their own shape (so a
business uses far less, a household a little more). Multiplicative noise and, for homes,
occasional appliance bursts (oven, dryer, kettle, EV top-up) are drawn from the
``random.Random`` the caller passes in: no global randomness, no clock reads.

Intervals are given by their UTC end (epoch seconds). Local time comes from the IANA zone,
so the 23- and 25-hour days simply have 92 or 100 quarter-hours; the repeated hour of the
autumn change gets the shape of that wall-clock hour twice, the skipped spring hour none.
Seasons assume the northern hemisphere; holidays are the major US federal ones.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from functools import lru_cache

from meterledger.core.time import epoch_of, parse_zone

__all__ = [
    "TYPICAL_DAILY_KWH",
    "LoadKind",
    "is_day_off",
    "local_day_bounds",
    "profile",
    "season_factor",
    "us_holidays",
]

_DAY = 86_400
_MILLI_PER_KWH = 1_000_000


class LoadKind(enum.StrEnum):
    """Which kind of customer a load shape imitates."""

    RESIDENTIAL = "residential"
    COMMERCIAL = "commercial"


#: Typical weekday energy in kWh (low, high) from which a fleet draws each meter's size.
TYPICAL_DAILY_KWH: Mapping[LoadKind, tuple[float, float]] = {
    LoadKind.RESIDENTIAL: (20.0, 35.0),
    LoadKind.COMMERCIAL: (200.0, 800.0),
}

# Homes: expected appliance bursts per day, their power per 27 kWh/day of household size,
# their length, and the share of energy left to the smooth shape so bursts do not inflate it.
_BURSTS_PER_DAY = 2.0
_BURST_KW = (1.5, 4.0)
_BURST_HOURS = (0.25, 0.75)
_AWAKE = (6.0, 23.0)
_SMOOTH_SHARE = 0.9
_NOISE_SIGMA = {LoadKind.RESIDENTIAL: 0.12, LoadKind.COMMERCIAL: 0.05}


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The ``n``-th ``weekday`` (Monday 0) of a month; ``n = -1`` for the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


@lru_cache(maxsize=64)
def us_holidays(year: int) -> frozenset[date]:
    """Major US federal holidays, on their calendar dates (observed-day shifts ignored).

    Businesses close on these, which is what the commercial shape needs; the minor federal
    holidays are ordinary working days for most of them, so they are left out.
    """
    return frozenset(
        {
            date(year, 1, 1),
            _nth_weekday(year, 5, 0, -1),  # Memorial Day
            date(year, 7, 4),
            _nth_weekday(year, 9, 0, 1),  # Labor Day
            _nth_weekday(year, 11, 3, 4),  # Thanksgiving
            date(year, 12, 25),
        }
    )


def is_day_off(day: date) -> bool:
    """Saturday, Sunday or a major holiday: homes sleep in, businesses close."""
    return day.weekday() >= 5 or day in us_holidays(day.year)


def _heating_cooling(day: date) -> tuple[float, float]:
    """How deep into the heating (mid-January) and cooling (mid-July) season a day is, 0..1."""
    angle = 2.0 * math.pi * (day.timetuple().tm_yday - 15) / 365.25
    wave = math.cos(angle)
    return max(wave, 0.0), max(-wave, 0.0)


def season_factor(kind: LoadKind, day: date) -> float:
    """Energy of a day relative to the mild season: homes heat and cool, offices mostly cool."""
    heating, cooling = _heating_cooling(day)
    if kind is LoadKind.RESIDENTIAL:
        return 1.0 + 0.30 * heating + 0.25 * cooling
    return 1.0 + 0.08 * heating + 0.18 * cooling


def local_day_bounds(day: date, tz: str) -> tuple[int, int]:
    """UTC epochs of local midnight starting ``day`` and of the next local midnight.

    The difference is 23, 24 or 25 hours; the intervals of the local day end in
    ``(start, end]``.
    """
    zone = parse_zone(tz)
    begin = datetime(day.year, day.month, day.day, tzinfo=zone)
    after = day + timedelta(days=1)
    return epoch_of(begin), epoch_of(datetime(after.year, after.month, after.day, tzinfo=zone))


def _bump(hour: float, centre: float, width: float) -> float:
    return math.exp(-0.5 * ((hour - centre) / width) ** 2)


def _rise(hour: float, at: float, steepness: float) -> float:
    return 1.0 / (1.0 + math.exp(-(hour - at) / steepness))


def _residential_power(hour: float, day_off: bool, heating: float, cooling: float) -> float:
    """Relative household power: fridge and standby all night, two peaks when people are home.

    On days off the morning peak comes later and flatter and the house stays busy at midday;
    heating strengthens the morning and evening peaks, cooling adds a late-afternoon hump.
    """
    base = 0.30
    if day_off:
        morning = 0.50 * _bump(hour, 9.25, 1.3)
        midday = 0.40 * _bump(hour, 13.5, 2.5)
    else:
        morning = (0.80 + 0.40 * heating) * _bump(hour, 7.25, 0.8)
        midday = 0.12 * _bump(hour, 13.0, 2.5)
    afternoon = 0.90 * cooling * _bump(hour, 16.5, 2.2)
    evening = (1.30 + 0.30 * heating) * _bump(hour, 19.25, 1.4)
    return base + morning + midday + afternoon + evening


def _commercial_power(hour: float, day_off: bool, heating: float, cooling: float) -> float:
    """Relative business power: a plateau in business hours on working days with ramps
    (HVAC pre-conditioning before opening, a small lunch dip), standby otherwise."""
    base = 0.22
    if day_off:
        return base + 0.06 * _bump(hour, 13.0, 3.0)
    occupied = _rise(hour, 7.5, 0.45) * (1.0 - _rise(hour, 18.5, 0.5))
    plateau = (0.78 + 0.06 * heating + 0.12 * cooling) * occupied
    warmup = 0.10 * _bump(hour, 6.5, 0.7)
    lunch = -0.05 * _bump(hour, 12.5, 0.6)
    return base + plateau + warmup + lunch


def _power(kind: LoadKind, hour: float, day_off: bool, heating: float, cooling: float) -> float:
    if kind is LoadKind.RESIDENTIAL:
        return _residential_power(hour, day_off, heating, cooling)
    return _commercial_power(hour, day_off, heating, cooling)


@lru_cache(maxsize=4096)
def _weekday_shape_sum(kind: LoadKind, day: date, interval_seconds: int) -> float:
    """Sum of the weekday shape over a nominal 24-hour day: the divisor that makes an
    ordinary weekday come out at ``daily_kwh`` times the season factor."""
    heating, cooling = _heating_cooling(day)
    step = interval_seconds / 3600.0
    count = _DAY // interval_seconds
    return math.fsum(_power(kind, (k + 0.5) * step, False, heating, cooling) for k in range(count))


def profile(
    kind: LoadKind,
    *,
    start: int,
    intervals: int,
    interval_seconds: int,
    tz: str,
    daily_kwh: float,
    rng: random.Random,
) -> list[int]:
    """Energy per interval in mWh (never negative) for ``intervals`` consecutive intervals.

    ``start`` is the UTC epoch of the first interval's *end*; interval ``i`` ends at
    ``start + i * interval_seconds``. ``interval_seconds`` must divide a day so that a
    nominal day has a whole number of intervals. The same arguments and an ``rng`` in the
    same state give the same list.
    """
    if interval_seconds <= 0 or _DAY % interval_seconds:
        raise ValueError(f"interval_seconds must divide a day, got {interval_seconds}")
    if intervals < 0:
        raise ValueError(f"intervals must not be negative, got {intervals}")
    if daily_kwh < 0:
        raise ValueError(f"daily_kwh must not be negative, got {daily_kwh}")
    kind = LoadKind(kind)
    zone = parse_zone(tz)
    hours = interval_seconds / 3600.0
    sigma = _NOISE_SIGMA[kind]
    residential = kind is LoadKind.RESIDENTIAL
    smooth_kwh = daily_kwh * (_SMOOTH_SHARE if residential else 1.0)
    size = daily_kwh / 27.0
    burst_chance = _BURSTS_PER_DAY * interval_seconds / ((_AWAKE[1] - _AWAKE[0]) * 3600.0)
    # Per local date: (day off?, heating, cooling, kWh per unit of shape).
    days: dict[date, tuple[bool, float, float, float]] = {}
    burst_left = 0
    burst_kw = 0.0
    values: list[int] = []
    for index in range(intervals):
        begin = start + (index - 1) * interval_seconds
        local = datetime.fromtimestamp(begin, zone)
        day = local.date()
        context = days.get(day)
        if context is None:
            heating, cooling = _heating_cooling(day)
            scale = smooth_kwh * season_factor(kind, day)
            scale /= _weekday_shape_sum(kind, day, interval_seconds)
            context = days[day] = (is_day_off(day), heating, cooling, scale)
        day_off, heating, cooling, scale = context
        hour = local.hour + local.minute / 60.0 + local.second / 3600.0 + hours / 2.0
        kwh = scale * _power(kind, hour, day_off, heating, cooling)
        kwh *= max(0.0, rng.gauss(1.0, sigma))
        if residential:
            if burst_left == 0 and _AWAKE[0] <= hour < _AWAKE[1] and rng.random() < burst_chance:
                burst_kw = rng.uniform(*_BURST_KW) * size
                burst_left = max(1, round(rng.uniform(*_BURST_HOURS) / hours))
            if burst_left:
                kwh += burst_kw * hours
                burst_left -= 1
        values.append(max(0, round(kwh * _MILLI_PER_KWH)))
    return values
