"""Determinants: segment assignment of intervals, demand windows (block 15/30/60 and rolling,
window = max(window, interval length)), TOU demand maxima, daily and estimated energy."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pytest

from billing.billing_support import (
    HOUR,
    QUARTER,
    D,
    at,
    bill,
    ends_from,
    energy_by_period,
    lines,
    mwh,
    request,
    tariff,
)
from meterledger.billing.determinants import Usage, infer_interval
from meterledger.billing.rating import Rater
from meterledger.core.errors import InputError


def _flat_demand(window: int, method: str = "block"):
    return tariff(
        seasons={
            "all": {"months": "1-12", "weekday": {"00:00": "flat"}, "flat_demand": {"rate": "10"}}
        },
        demand={"window_minutes": window, "method": method},
    )


# Wednesday 2024-01-10, quarter-hours 10:00 … 12:00 (kWh)
QH = [1, 2, 5, 1, 3, 3, 0, 0]


@pytest.mark.parametrize(
    ("window", "method", "kw"),
    [
        # 15-minute windows: the largest quarter-hour, 5 kWh / 0.25 h = 20 kW
        (15, "block", D(20)),
        (15, "rolling", D(20)),
        # clock-aligned half hours 10:00 10:30 11:00 11:30: 3, 6, 6, 0 kWh → 6 / 0.5 = 12 kW
        (30, "block", D(12)),
        # any two consecutive quarter-hours: best 2 + 5 = 7 kWh → 7 / 0.5 = 14 kW
        (30, "rolling", D(14)),
        # clock hours 10:00 and 11:00: 9 and 6 kWh → 9 kW
        (60, "block", D(9)),
        # any four consecutive quarter-hours: best 5 + 1 + 3 + 3 = 12 kWh → 12 kW
        (60, "rolling", D(12)),
    ],
)
def test_demand_windows_of_quarter_hour_data(window: int, method: str, kw: Decimal) -> None:
    b, _ = bill(_flat_demand(window, method), "2024-01", ends_from("2024-01-10T10:00", 8), QH)
    assert b.determinants.peak_kw == kw
    ((line,),) = [[ln for ln in b.lines if ln.code == "demand_flat"]]
    assert (line.quantity, line.rate, line.amount) == (kw, D(10), kw * 10)


def test_block_windows_are_clock_aligned_not_data_aligned() -> None:
    # data starts at 10:15: the 30-minute blocks are still 10:00-10:30 (2 kWh), 10:30-11:00
    # (5 + 1 = 6), 11:00-11:30 (3 + 3 = 6) → 6 / 0.5 = 12 kW; data-aligned blocks from 10:15
    # would give 2 + 5 = 7 → 14 kW
    b, _ = bill(_flat_demand(30), "2024-01", ends_from("2024-01-10T10:15", 7), QH[1:])
    assert b.determinants.peak_kw == D(12)


def test_window_is_at_least_the_interval_length() -> None:
    # hourly data: 5, 7, 3 kWh. A 15- or 30-minute demand cannot be finer than the data:
    # kW = 7 kWh / 1 h = 7 kW (not 7 / 0.25 = 28)
    ends = ends_from("2024-01-10T10:00", 3, HOUR)
    for window, method in [(15, "block"), (30, "rolling"), (60, "block")]:
        b, _ = bill(_flat_demand(window, method), "2024-01", ends, [5, 7, 3], interval_seconds=HOUR)
        assert b.determinants.peak_kw == D(7), (window, method)


def test_rolling_windows_do_not_reach_across_a_gap() -> None:
    # 4 kWh in 10:00-10:15, nothing reported until 10:45-11:00 with 4 kWh: a rolling hour
    # ending at 11:00 holds both (8 kWh → 8 kW); the one ending at 12:00 only 11:45-12:00 (1 kWh)
    ends = [at("2024-01-10T10:15"), at("2024-01-10T11:00"), at("2024-01-10T12:00")]
    b, _ = bill(_flat_demand(60, "rolling"), "2024-01", ends, [4, 4, 1])
    assert b.determinants.peak_kw == D(8)
    # without the 11:00 row, no rolling hour holds both 10:15 and 12:00: max(4, 1) = 4 kW
    ends = [at("2024-01-10T10:15"), at("2024-01-10T12:00")]
    b, _ = bill(_flat_demand(60, "rolling"), "2024-01", ends, [4, 1])
    assert b.determinants.peak_kw == D(4)


def test_autumn_dst_day_demand_15_and_30_minute_blocks() -> None:
    # 2024-11-03, 100 quarter-hours of 1 kWh: every quarter-hour is 4 kW, every half hour 4 kW
    ends = ends_from("2024-11-03T00:00", 100)
    for window, method in [(15, "block"), (30, "block"), (15, "rolling"), (60, "rolling")]:
        b, _ = bill(_flat_demand(window, method), "2024-11", ends, [1] * 100)
        assert b.determinants.peak_kw == D(4), (window, method)


@pytest.mark.parametrize(
    ("seconds", "count", "window", "kw"),
    [
        # 100 quarter-hours of 1 kWh: every clock hour holds 4 kWh → 4 kW (bug: 8 kW)
        (QUARTER, 100, 60, D(4)),
        # 50 half-hours of 1 kWh: every clock hour 2 kWh → 2 kW (bug: 4 kW)
        (1800, 50, 60, D(2)),
        # 25 hours of 1 kWh: the window is the hour, 1 kWh / 1 h = 1 kW (bug: 2 kW)
        (HOUR, 25, 15, D(1)),
        (HOUR, 25, 30, D(1)),
        (HOUR, 25, 60, D(1)),
    ],
)
def test_autumn_dst_day_block_demand_keeps_the_repeated_hour_apart(
    seconds: int, count: int, window: int, kw: Decimal
) -> None:
    ends = ends_from("2024-11-03T00:00", count, seconds)
    assert ends[-1] == at("2024-11-04T00:00")
    b, _ = bill(_flat_demand(window), "2024-11", ends, [1] * count, interval_seconds=seconds)
    assert b.determinants.peak_kw == kw


def test_autumn_dst_day_rolling_demand_with_long_intervals() -> None:
    # rolling windows go by UTC time: hourly 1 kWh → 1 kW, half-hourly 1 kWh → 2 kW
    for seconds, count, kw in [(HOUR, 25, D(1)), (1800, 50, D(2))]:
        ends = ends_from("2024-11-03T00:00", count, seconds)
        for window in (15, 30, 60):
            t = _flat_demand(window, "rolling")
            b, _ = bill(t, "2024-11", ends, [1] * count, interval_seconds=seconds)
            assert b.determinants.peak_kw == kw, (seconds, window)


def test_each_version_measures_demand_over_its_own_window() -> None:
    t = tariff(
        seasons={
            "all": {"months": "1-12", "weekday": {"00:00": "flat"}, "flat_demand": {"rate": "10"}}
        },
        demand={"window_minutes": 15},
        changes=[{"effective": "2024-01-16", "demand": {"window_minutes": 60}}],
    )
    # Jan 10 12:00-12:15: 1 kWh (15-minute window → 4 kW); Jan 20 12:00-12:15: 1 kWh
    # (60-minute block 12:00-13:00 → 1 kW)
    ends = [at("2024-01-10T12:15"), at("2024-01-20T12:15")]
    b, _ = bill(t, "2024-01", ends, [1, 1])
    # 4 × 10 × 15/31 = 19.354… → 19.35; 1 × 10 × 16/31 = 5.161… → 5.16
    demand = [(ln.quantity, ln.prorate, ln.amount) for ln in b.lines if ln.code == "demand_flat"]
    assert demand == [(D(4), (15, 31), D("19.35")), (D(1), (16, 31), D("5.16"))]


def test_spring_dst_day_demand_60_minute_block() -> None:
    # 92 quarter-hours of 1 kWh: 01:00-02:00 EST and 03:00-04:00 EDT are separate hours
    ends = ends_from("2024-03-10T00:00", 92)
    b, _ = bill(_flat_demand(60), "2024-03", ends, [1] * 92)
    assert b.determinants.peak_kw == D(4)


def test_tou_demand_maxima_per_demand_period() -> None:
    t = tariff(
        seasons={
            "all": {
                "months": "1-12",
                "weekday": {"00:00": "flat"},
                "demand_weekday": {"00:00": "none", "16:00": "peak", "21:00": "none"},
            }
        },
        demand={"tou": {"peak": {"rate": "10"}}},
    )
    ends = [
        at("2024-01-10T16:00"),  # 15:45-16:00: 10 kWh, last second 15:59:59 → none
        at("2024-01-10T16:15"),  # 2 kWh → peak
        at("2024-01-10T21:00"),  # 20:45-21:00: 3 kWh → peak
        at("2024-01-10T21:15"),  # 8 kWh → none
    ]
    b, _ = bill(t, "2024-01", ends, [10, 2, 3, 8])
    # peak: 3 kWh / 0.25 h = 12 kW; none: 10 / 0.25 = 40 kW; overall 40 kW
    assert dict(b.determinants.demand_kw) == {"peak": D(12), "none": D(40)}
    assert b.determinants.peak_kw == D(40)
    # only the priced demand period is charged: 12 × 10 = 120.00
    assert lines(b, "demand_tou", "demand_flat") == [("demand_tou", D(12), D(10), D("120.00"))]


def test_tou_demand_on_the_energy_schedule_by_default() -> None:
    t = tariff(
        seasons={
            "all": {"months": "1-12", "weekday": {"00:00": "off", "16:00": "on", "21:00": "off"}}
        },
        energy={"off": {"rate": "0.10"}, "on": {"rate": "0.30"}},
        demand={"tou": {"on": {"rate": "4"}}},
    )
    ends = [at("2024-01-10T12:15"), at("2024-01-10T17:15")]
    b, _ = bill(t, "2024-01", ends, [9, 1])
    # on: 1 kWh / 0.25 h = 4 kW × 4 = 16.00; off (36 kW) has no demand price
    assert dict(b.determinants.demand_kw) == {"on": D(4), "off": D(36)}
    assert lines(b, "demand_tou") == [("demand_tou", D(4), D(4), D("16.00"))]


def test_daily_and_estimated_energy() -> None:
    t = tariff(
        seasons={"all": {"months": "1-12", "weekday": {"00:00": "off", "16:00": "on"}}},
        energy={"off": {"rate": "0.10"}, "on": {"rate": "0.30"}},
    )
    ends = [
        at("2024-01-02T01:00"),  # Jan 2, off, 1.5 kWh, estimated
        at("2024-01-02T17:00"),  # Jan 2, on, 2.25 kWh
        at("2024-01-03T00:00"),  # 23:00-24:00 Jan 2, on, 0.25 kWh
        at("2024-01-03T01:00"),  # Jan 3, off, 4 kWh, estimated
    ]
    b, _ = bill(
        t,
        "2024-01",
        ends,
        ["1.5", "2.25", "0.25", "4"],
        interval_seconds=HOUR,
        estimated=[True, False, False, True],
    )
    det = b.determinants
    daily = {d.day: dict(d.by_period) for d in det.daily}
    assert len(daily) == 31
    assert daily[date(2024, 1, 2)] == {"off": D("1.5"), "on": D("2.5")}
    assert daily[date(2024, 1, 3)] == {"off": D(4), "on": D(0)}
    assert daily[date(2024, 1, 1)] == {"off": D(0), "on": D(0)}
    # estimated 1.5 + 4 = 5.5 of 8 kWh → 0.6875
    assert det.estimated_kwh == D("5.5")
    assert det.estimated_share == D("0.6875")


def test_exact_milliwatt_hours() -> None:
    # 0.000001 kWh is 1 mWh: a million tiny readings add up exactly
    ends = ends_from("2024-01-01T00:00", 2976)  # every quarter-hour of January
    b, _ = bill(tariff(), "2024-01", ends, ["0.000337"] * 2976)
    # 2976 × 0.000337 = 1.002912 kWh × 0.10 = 0.1002912 → 0.10
    assert b.determinants.kwh_delivered == D("1.002912")
    assert lines(b, "energy") == [("energy", D("1.002912"), D("0.10"), D("0.10"))]


def test_two_months_of_one_series_each_interval_once() -> None:
    t = tariff()
    ends = ends_from("2024-01-31T22:00", 4, HOUR)  # 22-23, 23-24 Jan 31; 00-01, 01-02 Feb 1
    requests = [request("2024-01"), request("2024-02")]
    usage = Usage.single(ends, mwh([1, 2, 4, 8]), requests=2, interval_seconds=HOUR)
    (jan, _), (feb, _) = Rater(t).bill_all(requests, usage)
    assert (jan.determinants.kwh_delivered, feb.determinants.kwh_delivered) == (D(3), D(12))
    assert (jan.determinants.intervals, feb.determinants.intervals) == (2, 2)


def test_usage_checks_its_arrays() -> None:
    ends = np.asarray([900, 1800], dtype=np.int64)
    good = np.asarray([1, 2], dtype=np.int64)
    flags = np.zeros(2, dtype=bool)
    seconds = np.asarray([900])
    with pytest.raises(InputError, match="differ in length"):
        Usage(np.asarray([0, 2]), ends, good[:1], good, flags, seconds)
    with pytest.raises(InputError, match="offsets must end"):
        Usage(np.asarray([0, 1]), ends, good, good, flags, seconds)
    usage = Usage(np.asarray([0, 2]), ends, good, good, flags, seconds)
    with pytest.raises(InputError, match="one row group per request"):
        Rater(tariff()).bill_all([request("2024-01"), request("2024-02")], usage)


def test_interval_inference() -> None:
    assert infer_interval(np.asarray([900], dtype=np.int64)) == QUARTER
    assert infer_interval(np.asarray([3600, 7200, 14400], dtype=np.int64)) == HOUR
    assert infer_interval(np.asarray([0, 900, 1800], dtype=np.int64)) == QUARTER


def test_energy_names_of_all_versions() -> None:
    # a change adds a period: both appear in the determinants, each from its own days
    t = tariff(
        changes=[
            {
                "effective": "2024-01-16",
                "seasons": {"all": {"weekday": {"00:00": "flat", "12:00": "noon"}}},
                "energy": {"noon": {"rate": "0.50"}},
            }
        ]
    )
    ends = [at("2024-01-10T13:00"), at("2024-01-20T13:00")]
    b, _ = bill(t, "2024-01", ends, [3, 5], interval_seconds=HOUR)
    assert energy_by_period(b) == {"flat": (D(3), D(0)), "noon": (D(5), D(0))}
