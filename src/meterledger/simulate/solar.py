"""A solar net meter: a household's load, its rooftop PV, and the two registers in between.

A net meter sees only what crosses the service point. In each interval the household uses
``load`` and the panels make ``pv``; the meter counts **import** (energy delivered to the
customer, OBIS 1.0.1.8.0) ``max(load - pv, 0)`` and **export** (energy received from the
customer, 1.0.2.8.0) ``max(pv - load, 0)``. At most one of them is non-zero in an interval,
and ``import - export == load - pv`` exactly, because both are integer mWh.

Load is the residential shape of :mod:`meterledger.simulate.loadshapes` (wall-clock time,
so its peaks follow DST). Generation follows the sun, not the wall clock: a clear-sky model
over *local solar time* (the zone's standard meridian, or ``longitude`` when given, plus
the equation of time), so solar noon stays put in UTC across a DST change. The sun's
position comes from the day of year and the latitude (Cooper's declination, the hour
angle); the irradiance on a panel tilted :data:`PANEL_TILT_DEG` towards the equator from
Meinel's clear-sky beam through the Kasten-Young air mass, plus a small diffuse share. It is
zero from sunset to sunrise by construction. Clouds scale it: each solar day is clear,
partly cloudy or overcast, and each daylight interval varies around the day's level, all
drawn from the ``random.Random`` the caller passes in. The output is capped at the array's
rating (the inverter clips).

Rounding: energies are computed in float kWh and rounded to integer mWh half away from zero
(values are never negative, so ``floor(x + 0.5)``); import and export are then exact
integer arithmetic on those.
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta
from functools import lru_cache

from meterledger.core.time import parse_zone
from meterledger.simulate.loadshapes import LoadKind, profile

__all__ = [
    "EXPORT_CHANNEL",
    "IMPORT_CHANNEL",
    "PANEL_TILT_DEG",
    "TYPICAL_PV_KW",
    "net_meter_profile",
    "pv_profile",
]

IMPORT_CHANNEL = "1.0.1.8.0.255"
EXPORT_CHANNEL = "1.0.2.8.0.255"
#: Array size in kW (DC rating) from which a fleet may draw each rooftop system.
TYPICAL_PV_KW: tuple[float, float] = (4.0, 10.0)
#: Panels face the equator at a typical roof pitch (6/12 is 26.6 degrees).
PANEL_TILT_DEG = 25.0

_DAY = 86_400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MILLI_PER_KWH = 1_000_000
_SOLAR_CONSTANT = 1353.0  # W/m2, the value Meinel's clear-sky formula was fitted with
_DIFFUSE_SHARE = 0.1  # diffuse irradiance as a share of the beam, on a horizontal plane
_SYSTEM_YIELD = 0.80  # inverter, wiring, soiling, mismatch and temperature losses
# Sky of a solar day: (cumulative chance, clear-sky index range, spread within the day).
_SKIES: tuple[tuple[float, tuple[float, float], float], ...] = (
    (0.55, (0.90, 1.00), 0.03),  # clear
    (0.85, (0.50, 0.90), 0.25),  # partly cloudy: passing clouds, big swings
    (1.00, (0.15, 0.40), 0.10),  # overcast
)
_MAX_INDEX = 1.1  # cloud-edge enhancement lifts an interval a little above clear sky


def _half_up(kwh: float) -> int:
    """mWh of a non-negative kWh figure, rounded half away from zero."""
    return math.floor(kwh * _MILLI_PER_KWH + 0.5)


def _declination(day_of_year: int) -> float:
    """Solar declination in radians (Cooper 1969)."""
    return math.radians(23.45) * math.sin(2.0 * math.pi * (284 + day_of_year) / 365.0)


def _equation_of_time_hours(day_of_year: int) -> float:
    """Apparent minus mean solar time, in hours (Spencer's short form, within a minute)."""
    b = 2.0 * math.pi * (day_of_year - 81) / 364.0
    return (9.87 * math.sin(2.0 * b) - 7.53 * math.cos(b) - 1.5 * math.sin(b)) / 60.0


@lru_cache(maxsize=4096)
def _day_of_year(solar_day: int) -> int:
    return date.fromordinal(_EPOCH_ORDINAL + solar_day).timetuple().tm_yday


def _clear_sky_kw(solar_seconds: float, latitude: float, pv_kw: float) -> float:
    """Clear-sky output of a ``pv_kw`` array at ``solar_seconds`` of mean solar time (seconds
    since the epoch shifted to the meridian), before clouds; zero while the sun is down."""
    day_of_year = _day_of_year(int(solar_seconds // _DAY))
    hour = (solar_seconds % _DAY) / 3600.0 + _equation_of_time_hours(day_of_year)
    decl = _declination(day_of_year)
    omega = math.radians(15.0 * (hour - 12.0))
    phi = math.radians(latitude)
    cos_zenith = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(omega)
    if cos_zenith <= 0.0:
        return 0.0
    zenith = math.degrees(math.acos(min(cos_zenith, 1.0)))
    air_mass = 1.0 / (cos_zenith + 0.50572 * math.pow(96.07995 - zenith, -1.6364))
    beam = _SOLAR_CONSTANT * math.pow(0.7, math.pow(air_mass, 0.678))
    # A plane tilted towards the equator sees the sun as a flat one nearer the equator does.
    tilt = math.radians(PANEL_TILT_DEG)
    phi_tilted = phi - math.copysign(tilt, latitude)
    cos_incidence = math.sin(phi_tilted) * math.sin(decl)
    cos_incidence += math.cos(phi_tilted) * math.cos(decl) * math.cos(omega)
    diffuse = _DIFFUSE_SHARE * beam * (1.0 + math.cos(tilt)) / 2.0
    irradiance = beam * max(cos_incidence, 0.0) + diffuse
    return min(pv_kw, pv_kw * irradiance / 1000.0 * _SYSTEM_YIELD)


def _meridian_offset(tz: str, at: int, longitude: float | None) -> int:
    """Seconds from UTC to local mean solar time: the longitude's, or the zone's standard
    meridian (its UTC offset without DST) when no longitude is given."""
    if longitude is not None:
        return round(longitude * 240.0)  # 360 degrees in 86 400 s
    local = datetime.fromtimestamp(at, parse_zone(tz))
    standard = (local.utcoffset() or timedelta(0)) - (local.dst() or timedelta(0))
    return int(standard.total_seconds())


def _check(intervals: int, interval_seconds: int, pv_kw: float, latitude: float) -> None:
    if interval_seconds <= 0 or _DAY % interval_seconds:
        raise ValueError(f"interval_seconds must divide a day, got {interval_seconds}")
    if intervals < 0:
        raise ValueError(f"intervals must not be negative, got {intervals}")
    if not pv_kw >= 0:
        raise ValueError(f"pv_kw must not be negative, got {pv_kw}")
    if not -90.0 <= latitude <= 90.0:
        raise ValueError(f"latitude must be within -90..90 degrees, got {latitude}")


def pv_profile(
    *,
    start: int,
    intervals: int,
    interval_seconds: int,
    tz: str,
    pv_kw: float,
    latitude: float,
    rng: random.Random,
    longitude: float | None = None,
    clouds: bool = True,
) -> list[int]:
    """PV generation in mWh (never negative) for ``intervals`` consecutive intervals.

    ``start`` is the UTC epoch of the first interval's *end*, as in
    :func:`~meterledger.simulate.loadshapes.profile`; each interval is evaluated at its
    midpoint. With ``clouds`` false the sky is clear and ``rng`` is not used. The same
    arguments and an ``rng`` in the same state give the same list.
    """
    _check(intervals, interval_seconds, pv_kw, latitude)
    offset = _meridian_offset(tz, start, longitude)
    hours = interval_seconds / 3600.0
    sky_day = None
    level = spread = 1.0
    values: list[int] = []
    for index in range(intervals):
        solar = start + index * interval_seconds - interval_seconds / 2.0 + offset
        kw = _clear_sky_kw(solar, latitude, pv_kw)
        if kw > 0.0 and clouds:
            day = int(solar // _DAY)
            if day != sky_day:
                sky_day = day
                level, spread = _draw_sky(rng)
            factor = level * max(0.0, rng.gauss(1.0, spread))
            kw = min(pv_kw, kw * min(factor, _MAX_INDEX))
        values.append(_half_up(kw * hours))
    return values


def _draw_sky(rng: random.Random) -> tuple[float, float]:
    """A solar day's clear-sky index and its spread between intervals."""
    chance = rng.random()
    for cumulative, (low, high), spread in _SKIES:
        if chance < cumulative:
            return rng.uniform(low, high), spread
    low, high = _SKIES[-1][1]
    return rng.uniform(low, high), _SKIES[-1][2]


def net_meter_profile(
    *,
    start: int,
    intervals: int,
    interval_seconds: int,
    tz: str,
    daily_kwh: float,
    pv_kw: float,
    latitude: float,
    rng: random.Random,
    longitude: float | None = None,
) -> tuple[list[int], list[int]]:
    """``(imports, exports)`` in mWh per interval of a household with rooftop PV.

    The load is ``profile(LoadKind.RESIDENTIAL, ..., daily_kwh=daily_kwh, rng=rng)`` and the
    generation ``pv_profile(..., rng=rng)``, drawn in that order from ``rng``; then
    ``imports[i] = max(load[i] - pv[i], 0)`` and ``exports[i] = max(pv[i] - load[i], 0)``.
    Both lists have ``intervals`` entries; the same arguments and an ``rng`` in the same
    state give the same lists.
    """
    _check(intervals, interval_seconds, pv_kw, latitude)
    load = profile(
        LoadKind.RESIDENTIAL,
        start=start,
        intervals=intervals,
        interval_seconds=interval_seconds,
        tz=tz,
        daily_kwh=daily_kwh,
        rng=rng,
    )
    pv = pv_profile(
        start=start,
        intervals=intervals,
        interval_seconds=interval_seconds,
        tz=tz,
        pv_kw=pv_kw,
        latitude=latitude,
        rng=rng,
        longitude=longitude,
    )
    imports = [max(used - made, 0) for used, made in zip(load, pv, strict=True)]
    exports = [max(made - used, 0) for used, made in zip(load, pv, strict=True)]
    return imports, exports
