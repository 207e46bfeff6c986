"""Load shapes: deterministic, realistic in shape and size, and at ease with DST days."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from statistics import mean
from zoneinfo import ZoneInfo

import pytest

from meterledger.core.errors import InputError
from meterledger.core.time import from_epoch
from meterledger.simulate import loadshapes
from meterledger.simulate.loadshapes import (
    LoadKind,
    is_day_off,
    local_day_bounds,
    profile,
    season_factor,
    us_holidays,
)

NY = "America/New_York"
RES = LoadKind.RESIDENTIAL
COM = LoadKind.COMMERCIAL


def _days(
    kind: LoadKind,
    first: date,
    days: int,
    *,
    daily_kwh: float,
    seed: int = 1,
    seconds: int = 900,
    tz: str = NY,
) -> list[tuple[datetime, int]]:
    """(local start of interval, mWh) for every interval of ``days`` local days."""
    begin, _ = local_day_bounds(first, tz)
    _, end = local_day_bounds(first + timedelta(days=days - 1), tz)
    count = (end - begin) // seconds
    values = profile(
        kind,
        start=begin + seconds,
        intervals=count,
        interval_seconds=seconds,
        tz=tz,
        daily_kwh=daily_kwh,
        rng=random.Random(seed),
    )
    assert len(values) == count
    zone = ZoneInfo(tz)
    starts = [from_epoch(begin + i * seconds).astimezone(zone) for i in range(count)]
    return list(zip(starts, values, strict=True))


def _mean_kwh(rows: list[tuple[datetime, int]], hours: range, *, day_off: bool) -> float:
    picked = [v for t, v in rows if t.hour in hours and is_day_off(t.date()) is day_off]
    assert picked
    return mean(picked) / 1e6


def _daily_kwh(rows: list[tuple[datetime, int]]) -> dict[date, float]:
    totals: dict[date, float] = {}
    for start, value in rows:
        totals[start.date()] = totals.get(start.date(), 0.0) + value / 1e6
    return totals


def test_public_surface() -> None:
    assert sorted(loadshapes.__all__) == sorted(
        [
            "TYPICAL_DAILY_KWH",
            "LoadKind",
            "is_day_off",
            "local_day_bounds",
            "profile",
            "season_factor",
            "us_holidays",
        ]
    )


def test_same_rng_state_gives_the_same_profile_and_another_seed_does_not() -> None:
    first = _days(RES, date(2024, 10, 15), 3, daily_kwh=27.0, seed=5)
    again = _days(RES, date(2024, 10, 15), 3, daily_kwh=27.0, seed=5)
    other = _days(RES, date(2024, 10, 15), 3, daily_kwh=27.0, seed=6)
    assert first == again
    assert first != other


def test_values_are_non_negative_integers_of_mwh() -> None:
    for kind, daily in ((RES, 20.0), (COM, 800.0)):
        rows = _days(kind, date(2024, 1, 1), 14, daily_kwh=daily)
        assert all(type(v) is int and v >= 0 for _, v in rows)


def test_profile_uses_only_the_rng_it_is_given() -> None:
    state = random.getstate()
    _days(RES, date(2024, 6, 1), 2, daily_kwh=30.0)
    assert random.getstate() == state


def test_residential_has_a_morning_and_a_higher_evening_peak_over_a_low_night() -> None:
    rows = _days(RES, date(2024, 10, 7), 28, daily_kwh=27.0)
    night = _mean_kwh(rows, range(1, 5), day_off=False)
    morning = _mean_kwh(rows, range(7, 9), day_off=False)
    evening = _mean_kwh(rows, range(18, 21), day_off=False)
    assert morning > 2 * night
    assert evening > 3 * night
    assert evening > morning


def test_residential_days_off_start_later_and_stay_busier_at_midday() -> None:
    rows = _days(RES, date(2024, 10, 7), 28, daily_kwh=27.0)
    assert _mean_kwh(rows, range(6, 8), day_off=False) > _mean_kwh(rows, range(6, 8), day_off=True)
    assert _mean_kwh(rows, range(9, 11), day_off=True) > _mean_kwh(
        rows, range(9, 11), day_off=False
    )
    assert _mean_kwh(rows, range(11, 15), day_off=True) > _mean_kwh(
        rows, range(11, 15), day_off=False
    )


def test_commercial_plateau_on_working_days_only() -> None:
    rows = _days(COM, date(2024, 10, 7), 28, daily_kwh=500.0)
    weekday_midday = _mean_kwh(rows, range(10, 16), day_off=False)
    weekend_midday = _mean_kwh(rows, range(10, 16), day_off=True)
    weekday_night = _mean_kwh(rows, range(0, 5), day_off=False)
    assert weekday_midday > 2.5 * weekend_midday
    assert weekday_midday > 2.5 * weekday_night
    # The ramps: opening and closing hours sit between night and plateau.
    assert weekday_night < _mean_kwh(rows, range(7, 8), day_off=False) < weekday_midday


def test_commercial_holiday_looks_like_a_weekend() -> None:
    totals = _daily_kwh(_days(COM, date(2024, 11, 25), 5, daily_kwh=400.0))
    thanksgiving = totals[date(2024, 11, 28)]
    assert date(2024, 11, 28) in us_holidays(2024)
    assert thanksgiving < 0.6 * totals[date(2024, 11, 27)]


@pytest.mark.parametrize("daily", [20.0, 27.5, 35.0])
def test_residential_daily_totals_are_plausible(daily: float) -> None:
    totals = _daily_kwh(_days(RES, date(2024, 10, 7), 28, daily_kwh=daily, seed=int(daily)))
    assert all(0.6 * daily < kwh < 1.7 * daily for kwh in totals.values())
    assert 0.85 * daily < mean(totals.values()) < 1.35 * daily


@pytest.mark.parametrize("daily", [200.0, 800.0])
def test_commercial_daily_totals_are_plausible(daily: float) -> None:
    totals = _daily_kwh(_days(COM, date(2024, 10, 7), 28, daily_kwh=daily))
    for day, kwh in totals.items():
        if is_day_off(day):
            assert 0.2 * daily < kwh < 0.6 * daily
        else:
            assert 0.9 * daily < kwh < 1.2 * daily


def test_heating_and_cooling_seasons_use_more_than_spring_and_autumn() -> None:
    def month_mean(first: date) -> float:
        return mean(_daily_kwh(_days(RES, first, 21, daily_kwh=27.0)).values())

    mild = month_mean(date(2024, 4, 8))
    assert month_mean(date(2024, 1, 8)) > 1.15 * mild
    assert month_mean(date(2024, 7, 8)) > 1.1 * mild
    for kind in LoadKind:
        assert season_factor(kind, date(2024, 7, 15)) > season_factor(kind, date(2024, 4, 15))


@pytest.mark.parametrize(
    ("day", "quarter_hours", "one_oclock"),
    [(date(2024, 11, 3), 100, 8), (date(2024, 3, 10), 92, 4), (date(2024, 3, 11), 96, 4)],
)
def test_dst_days_have_more_or_fewer_intervals_and_nothing_breaks(
    day: date, quarter_hours: int, one_oclock: int
) -> None:
    begin, end = local_day_bounds(day, NY)
    assert (end - begin) // 900 == quarter_hours
    rows = _days(RES, day - timedelta(days=1), 3, daily_kwh=27.0)
    on_day = [(t, v) for t, v in rows if t.date() == day]
    assert len(on_day) == quarter_hours
    assert sum(1 for t, _ in on_day if t.hour == 1) == one_oclock
    assert all(t.hour != 2 for t, _ in on_day) is (quarter_hours == 92)
    assert all(type(v) is int and v >= 0 for _, v in on_day)


def test_profile_may_start_and_stop_anywhere_within_a_day() -> None:
    begin, _ = local_day_bounds(date(2024, 11, 3), NY)
    values = profile(
        COM,
        start=begin + 5 * 3600,
        intervals=7,
        interval_seconds=900,
        tz=NY,
        daily_kwh=300.0,
        rng=random.Random(3),
    )
    assert len(values) == 7


@pytest.mark.parametrize("seconds", [300, 1800, 3600])
def test_other_interval_lengths_give_the_same_daily_energy(seconds: int) -> None:
    base = mean(_daily_kwh(_days(COM, date(2024, 10, 14), 5, daily_kwh=400.0)).values())
    other = mean(
        _daily_kwh(_days(COM, date(2024, 10, 14), 5, daily_kwh=400.0, seconds=seconds)).values()
    )
    assert other == pytest.approx(base, rel=0.05)


def test_other_zones_follow_their_own_clock() -> None:
    rows = _days(COM, date(2024, 10, 14), 5, daily_kwh=400.0, tz="Asia/Kolkata")
    assert _mean_kwh(rows, range(10, 16), day_off=False) > 2.5 * _mean_kwh(
        rows, range(0, 5), day_off=False
    )


def test_bad_arguments_are_refused() -> None:
    kwargs: dict[str, object] = {
        "start": 1_700_000_100,
        "intervals": 4,
        "interval_seconds": 900,
        "tz": NY,
        "daily_kwh": 20.0,
        "rng": random.Random(0),
    }
    with pytest.raises(ValueError, match="divide a day"):
        profile(RES, **{**kwargs, "interval_seconds": 7})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="divide a day"):
        profile(RES, **{**kwargs, "interval_seconds": 0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="intervals"):
        profile(RES, **{**kwargs, "intervals": -1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="daily_kwh"):
        profile(RES, **{**kwargs, "daily_kwh": -1.0})  # type: ignore[arg-type]
    with pytest.raises(InputError):
        profile(RES, **{**kwargs, "tz": "Mars/Olympus"})  # type: ignore[arg-type]
    assert profile(RES, **{**kwargs, "intervals": 0}) == []  # type: ignore[arg-type]


def test_us_holidays() -> None:
    assert us_holidays(2024) == {
        date(2024, 1, 1),
        date(2024, 5, 27),
        date(2024, 7, 4),
        date(2024, 9, 2),
        date(2024, 11, 28),
        date(2024, 12, 25),
    }
    assert date(2025, 5, 26) in us_holidays(2025)
    assert date(2025, 11, 27) in us_holidays(2025)
    assert is_day_off(date(2024, 10, 19))
    assert not is_day_off(date(2024, 10, 18))
