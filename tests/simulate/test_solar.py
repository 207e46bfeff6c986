"""The solar net meter: deterministic, physically plausible, exact in its energy balance."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, timedelta

import pytest

from meterledger.simulate import solar
from meterledger.simulate.loadshapes import LoadKind, local_day_bounds, profile
from meterledger.simulate.solar import net_meter_profile, pv_profile

NY = "America/New_York"
QUARTER = 900


def _span(first: date, days: int, tz: str = NY) -> tuple[int, int]:
    """(start, intervals) covering ``days`` local days from ``first``, as loadshapes does."""
    begin, _ = local_day_bounds(first, tz)
    _, end = local_day_bounds(first + timedelta(days=days - 1), tz)
    return begin + QUARTER, (end - begin) // QUARTER


def _pv(
    first: date,
    days: int,
    *,
    tz: str = NY,
    latitude: float = 40.7,
    pv_kw: float = 5.0,
    clouds: bool = False,
    seed: int = 1,
    longitude: float | None = None,
) -> list[int]:
    start, count = _span(first, days, tz)
    return pv_profile(
        start=start,
        intervals=count,
        interval_seconds=QUARTER,
        tz=tz,
        pv_kw=pv_kw,
        latitude=latitude,
        rng=random.Random(seed),
        longitude=longitude,
        clouds=clouds,
    )


def _net(
    first: date, days: int, *, seed: int = 1, pv_kw: float = 6.0, daily_kwh: float = 25.0
) -> tuple[list[int], list[int]]:
    start, count = _span(first, days)
    return net_meter_profile(
        start=start,
        intervals=count,
        interval_seconds=QUARTER,
        tz=NY,
        daily_kwh=daily_kwh,
        pv_kw=pv_kw,
        latitude=40.7,
        rng=random.Random(seed),
    )


def _per_day(values: list[int], first: date, tz: str = NY) -> dict[date, list[int]]:
    start, _ = _span(first, 1, tz)
    out: dict[date, list[int]] = defaultdict(list)
    day, (_, day_end) = first, local_day_bounds(first, tz)
    for index, value in enumerate(values):
        end = start + index * QUARTER
        if end > day_end:
            day += timedelta(days=1)
            _, day_end = local_day_bounds(day, tz)
        out[day].append(value)
    return out


def test_public_surface() -> None:
    assert sorted(solar.__all__) == [
        "EXPORT_CHANNEL",
        "IMPORT_CHANNEL",
        "PANEL_TILT_DEG",
        "TYPICAL_PV_KW",
        "net_meter_profile",
        "pv_profile",
    ]
    assert solar.IMPORT_CHANNEL == "1.0.1.8.0.255"
    assert solar.EXPORT_CHANNEL == "1.0.2.8.0.255"


def test_same_arguments_and_seed_give_the_same_lists() -> None:
    first = _net(date(2024, 6, 1), 7, seed=5)
    again = _net(date(2024, 6, 1), 7, seed=5)
    other = _net(date(2024, 6, 1), 7, seed=6)
    assert first == again
    assert first != other
    assert len(first[0]) == len(first[1]) == 7 * 96
    assert all(isinstance(v, int) and v >= 0 for values in first for v in values)


def test_a_clear_sky_uses_no_randomness_and_clouds_do() -> None:
    rng = random.Random(3)
    state = rng.getstate()
    start, count = _span(date(2024, 6, 1), 2)

    def run(clouds: bool) -> list[int]:
        return pv_profile(
            start=start,
            intervals=count,
            interval_seconds=QUARTER,
            tz=NY,
            pv_kw=5.0,
            latitude=40.7,
            rng=rng,
            clouds=clouds,
        )

    clear = run(False)
    assert rng.getstate() == state
    cloudy = run(True)
    assert rng.getstate() != state
    assert sum(cloudy) < sum(clear)
    # clouds never make a night interval generate
    assert all(c == 0 for c, s in zip(cloudy, clear, strict=True) if s == 0)


def test_import_and_export_balance_exactly_against_load_and_pv() -> None:
    imports, exports = _net(date(2024, 5, 10), 14, seed=8)
    rng = random.Random(8)
    start, count = _span(date(2024, 5, 10), 14)
    load = profile(
        LoadKind.RESIDENTIAL,
        start=start,
        intervals=count,
        interval_seconds=QUARTER,
        tz=NY,
        daily_kwh=25.0,
        rng=rng,
    )
    pv = pv_profile(
        start=start,
        intervals=count,
        interval_seconds=QUARTER,
        tz=NY,
        pv_kw=6.0,
        latitude=40.7,
        rng=rng,
    )
    for imp, exp, used, made in zip(imports, exports, load, pv, strict=True):
        assert imp - exp == used - made
        assert imp == max(used - made, 0) and exp == max(made - used, 0)
    assert sum(imports) - sum(exports) == sum(load) - sum(pv)
    # a sunny May fortnight: the array both covers midday load and sends power back
    assert sum(exports) > 0 and sum(imports) > 0


def test_import_and_export_are_never_both_positive() -> None:
    imports, exports = _net(date(2024, 1, 1), 60, seed=2)
    assert not any(i > 0 and e > 0 for i, e in zip(imports, exports, strict=True))
    assert any(e > 0 for e in exports)


def test_no_export_at_night() -> None:
    first = date(2024, 6, 15)
    imports, exports = _net(first, 10, seed=4)
    clear = _pv(first, 10, latitude=40.7, pv_kw=6.0)
    night = [i for i, value in enumerate(clear) if value == 0]
    assert len(night) > 10 * 30  # a June night at 40.7 N is about nine hours
    assert all(exports[i] == 0 for i in night)
    assert all(imports[i] > 0 for i in night)  # the fridge runs all night
    # local midnight to 4 a.m. is dark in every season
    start, _ = _span(first, 1)
    for index in range(len(exports)):
        local_hour = ((start + index * QUARTER - QUARTER) - 4 * 3600) % 86_400 // 3600  # EDT
        if local_hour < 4:
            assert exports[index] == 0


def test_no_pv_means_imports_are_the_load() -> None:
    imports, exports = _net(date(2024, 7, 1), 3, seed=9, pv_kw=0.0)
    start, count = _span(date(2024, 7, 1), 3)
    load = profile(
        LoadKind.RESIDENTIAL,
        start=start,
        intervals=count,
        interval_seconds=QUARTER,
        tz=NY,
        daily_kwh=25.0,
        rng=random.Random(9),
    )
    assert imports == load
    assert exports == [0] * count


def test_output_never_exceeds_the_array_rating() -> None:
    pv = _pv(date(2024, 1, 1), 366, pv_kw=4.0, clouds=True, latitude=25.0)
    assert max(pv) <= 4.0 * 1_000_000 // 4
    assert max(pv) > 0.7 * 1_000_000  # near-rated output at midday on clear days


@pytest.mark.parametrize(
    ("before", "dst_day", "after", "intervals"),
    [
        (date(2024, 3, 9), date(2024, 3, 10), date(2024, 3, 11), 92),
        (date(2024, 11, 2), date(2024, 11, 3), date(2024, 11, 4), 100),
    ],
)
def test_dst_days_follow_the_sun_not_the_wall_clock(
    before: date, dst_day: date, after: date, intervals: int
) -> None:
    days = {day: _pv(day, 1) for day in (before, dst_day, after)}
    assert len(days[dst_day]) == intervals
    assert len(days[before]) == len(days[after]) == 96
    energy = {day: sum(values) for day, values in days.items()}
    # the sun does not gain or lose an hour: the day's energy lies between its neighbours'
    assert min(energy[before], energy[after]) <= energy[dst_day]
    assert energy[dst_day] <= max(energy[before], energy[after])
    # solar noon stays at the same UTC time (within an interval), so a wall-clock hour away
    noon: dict[date, int] = {}
    for day, values in days.items():
        start, _ = _span(day, 1)
        peak = max(range(len(values)), key=values.__getitem__)
        noon[day] = (start + peak * QUARTER) % 86_400
    assert abs(noon[before] - noon[after]) <= QUARTER
    assert abs(noon[dst_day] - noon[before]) <= QUARTER
    # net meter: both channels have one value per interval of the local day
    imports, exports = _net(dst_day, 1)
    assert len(imports) == len(exports) == intervals


def test_solar_noon_follows_the_longitude() -> None:
    """Without a longitude the zone's standard meridian (75 W for New York) is used; a
    meter at 90 W sees noon an hour later in UTC."""

    def peak(longitude: float | None) -> int:
        values = _pv(date(2024, 4, 15), 1, longitude=longitude)
        return max(range(len(values)), key=values.__getitem__)

    assert peak(None) == peak(-75.0)
    assert peak(-90.0) - peak(-75.0) in (3, 4, 5)


def test_annual_shape_is_plausible() -> None:
    first = date(2024, 1, 1)
    clear = _per_day(_pv(first, 366, pv_kw=1.0), first)
    cloudy = _per_day(_pv(first, 366, pv_kw=1.0, clouds=True, seed=11), first)
    annual = sum(sum(values) for values in cloudy.values()) / 1e6
    assert 1_200 < annual < 1_700  # kWh per kW of panels: US north-east to mid-latitudes
    # day length at 40.7 N: about 15 h at the June solstice, 9 h at the December one
    assert 58 <= sum(v > 0 for v in clear[date(2024, 6, 20)]) <= 62
    assert 35 <= sum(v > 0 for v in clear[date(2024, 12, 21)]) <= 39
    june = sum(sum(clear[date(2024, 6, d)]) for d in range(1, 31))
    december = sum(sum(clear[date(2024, 12, d)]) for d in range(1, 32))
    assert 1.5 * december < june < 3.0 * december
    # clouds: some days are much darker than the clear sky, none brighter by much
    ratios = [sum(cloudy[d]) / sum(clear[d]) for d in clear]
    assert min(ratios) < 0.4 and max(ratios) < 1.1
    assert 0.6 < sum(ratios) / len(ratios) < 0.85


def test_the_seasons_are_reversed_south_of_the_equator() -> None:
    tz = "Australia/Sydney"
    first = date(2024, 1, 1)
    days = _per_day(_pv(first, 366, tz=tz, latitude=-33.9, pv_kw=1.0), first, tz)
    assert sum(v > 0 for v in days[date(2024, 12, 21)]) > sum(
        v > 0 for v in days[date(2024, 6, 21)]
    )
    assert sum(days[date(2024, 12, 21)]) > 1.5 * sum(days[date(2024, 6, 21)])


def test_net_metering_over_a_year_exports_in_summer_and_imports_in_winter() -> None:
    first = date(2024, 1, 1)
    imports, exports = _net(first, 366, seed=12)
    imp_days, exp_days = _per_day(imports, first), _per_day(exports, first)
    june = [date(2024, 6, d) for d in range(1, 31)]
    january = [date(2024, 1, d) for d in range(1, 32)]
    june_export = sum(sum(exp_days[d]) for d in june)
    january_export = sum(sum(exp_days[d]) for d in january)
    assert june_export > 2 * january_export
    assert sum(sum(imp_days[d]) for d in january) > sum(sum(imp_days[d]) for d in june)


def _bad(
    *, intervals: int = 4, seconds: int = 900, pv_kw: float = 5.0, latitude: float = 40.0
) -> list[int]:
    return pv_profile(
        start=1_700_000_100,
        intervals=intervals,
        interval_seconds=seconds,
        tz=NY,
        pv_kw=pv_kw,
        latitude=latitude,
        rng=random.Random(1),
    )


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="divide a day"):
        _bad(seconds=7)
    with pytest.raises(ValueError, match="intervals"):
        _bad(intervals=-1)
    with pytest.raises(ValueError, match="pv_kw"):
        _bad(pv_kw=-1.0)
    with pytest.raises(ValueError, match="latitude"):
        _bad(latitude=-90.5)
    with pytest.raises(ValueError, match="latitude"):
        net_meter_profile(
            start=1_700_000_100,
            intervals=4,
            interval_seconds=900,
            tz=NY,
            daily_kwh=20.0,
            pv_kw=5.0,
            latitude=91.0,
            rng=random.Random(1),
        )
    assert _bad(intervals=0) == []
    assert len(_bad()) == 4
