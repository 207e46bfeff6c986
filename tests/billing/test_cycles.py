"""Billing cycles: calendar months or cycle day d to day d, move-in/move-out, and cycles split
into segments by a season change or a tariff change, billed with hand-computed proration."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from billing.billing_support import HOUR, NY, D, at, bill, lines, mwh, request, tariff
from meterledger.billing.cycles import (
    CycleRequest,
    cycle_dates,
    month_periods,
    parse_period,
    service_window,
)
from meterledger.billing.determinants import Usage
from meterledger.billing.rating import Rater
from meterledger.core.errors import InputError


def test_cycle_day_one_is_the_calendar_month() -> None:
    assert cycle_dates("2024-02") == (date(2024, 2, 1), date(2024, 3, 1))
    assert cycle_dates("2024-12") == (date(2024, 12, 1), date(2025, 1, 1))


def test_cycle_day_d_runs_to_day_d_of_the_next_month() -> None:
    assert cycle_dates("2024-05", 15) == (date(2024, 5, 15), date(2024, 6, 15))
    assert cycle_dates("2024-12", 28) == (date(2024, 12, 28), date(2025, 1, 28))
    assert request("2024-01", cycle_day=20).days == 31  # Jan 20 - Feb 20
    assert request("2024-02", cycle_day=20).days == 29  # Feb 20 - Mar 20 (leap year)


@pytest.mark.parametrize("day", [0, 29, 31])
def test_cycle_day_out_of_range(day: int) -> None:
    with pytest.raises(InputError, match="a cycle day is 1 to 28"):
        cycle_dates("2024-01", day)


@pytest.mark.parametrize("text", ["2024-13", "2024-1", "24-01", "2024/01", ""])
def test_bad_periods(text: str) -> None:
    with pytest.raises(InputError, match="YYYY-MM"):
        parse_period(text)


def test_month_periods() -> None:
    assert month_periods(date(2024, 11, 30), date(2025, 2, 1)) == [
        "2024-11",
        "2024-12",
        "2025-01",
        "2025-02",
    ]


def test_service_window_move_in_first_day_move_out_last_day() -> None:
    start, end = date(2024, 4, 1), date(2024, 5, 1)
    assert service_window(start, end, None, None) == (start, end)
    # moved in on the 11th, out on the 20th: the 11th to the 20th inclusive = [11th, 21st)
    assert service_window(start, end, date(2024, 4, 11), date(2024, 4, 20)) == (
        date(2024, 4, 11),
        date(2024, 4, 21),
    )
    assert service_window(start, end, date(2024, 3, 1), date(2024, 6, 1)) == (start, end)
    assert service_window(start, end, None, date(2024, 4, 30)) == (start, end)
    assert service_window(start, end, date(2024, 4, 30), None) == (date(2024, 4, 30), end)
    assert service_window(start, end, None, date(2024, 4, 1)) == (start, date(2024, 4, 2))
    assert service_window(start, end, date(2024, 5, 1), None) is None
    assert service_window(start, end, None, date(2024, 3, 31)) is None


def test_request_days() -> None:
    req = CycleRequest.for_period(
        "A", "2024-04", NY, move_in=date(2024, 4, 11), move_out=date(2024, 4, 20)
    )
    assert req is not None
    assert (req.start, req.end, req.days) == (date(2024, 4, 1), date(2024, 5, 1), 30)
    assert (req.service_start, req.service_end, req.service_days) == (
        date(2024, 4, 11),
        date(2024, 4, 21),
        10,
    )
    assert CycleRequest.for_period("A", "2024-04", NY, move_out=date(2024, 3, 31)) is None


def test_cycle_rows_are_those_ending_after_the_start_and_by_the_end() -> None:
    t = tariff()
    # hourly intervals ending at Apr 1 00:00 (a March interval), Apr 1 01:00, May 1 00:00
    # (the last April interval) and May 1 01:00 (May)
    ends = [
        at("2024-04-01T00:00"),
        at("2024-04-01T01:00"),
        at("2024-05-01T00:00"),
        at("2024-05-01T01:00"),
    ]
    b, _ = bill(t, "2024-04", ends, [1, 2, 4, 8], interval_seconds=HOUR)
    assert b.determinants.intervals == 2
    assert b.determinants.kwh_delivered == D(6)


# -- a cycle crossing the season change: cycle day 15, two segments ---------------------------


def _seasonal():
    return tariff(
        seasons={
            "summer": {"months": "6-9", "weekday": {"00:00": "s"}, "flat_demand": {"rate": "8"}},
            "winter": {"months": "10-5", "weekday": {"00:00": "w"}, "flat_demand": {"rate": "5"}},
        },
        energy={
            "s": {"tiers": [{"upto": 100, "rate": "0.15"}, {"rate": "0.30"}]},
            "w": {"tiers": [{"upto": 100, "rate": "0.10"}, {"rate": "0.20"}]},
        },
        demand={"window_minutes": 60},
        fixed=[{"name": "Customer charge", "amount": "10.00"}],
    )


def test_cycle_day_15_across_the_season_change() -> None:
    # cycle 2024-05-15 to 2024-06-15 (31 days): winter May 15 - Jun 1 (17 days),
    # summer Jun 1 - Jun 15 (14 days). One hour of 60 kWh on May 20, one of 50 kWh on Jun 10,
    # one of 40 kWh on May 14 (the cycle before: not billed) and on Jun 15 (the next).
    ends = [
        at("2024-05-14T13:00"),
        at("2024-05-20T13:00"),
        at("2024-06-10T13:00"),
        at("2024-06-15T13:00"),
    ]
    b, _ = bill(_seasonal(), "2024-05", ends, [40, 60, 50, 40], interval_seconds=HOUR, cycle_day=15)
    assert [(s.start, s.end) for s in b.segments] == [
        (date(2024, 5, 15), date(2024, 6, 1)),
        (date(2024, 6, 1), date(2024, 6, 15)),
    ]
    assert (b.determinants.days, b.determinants.intervals) == (31, 2)
    # tier limits: 100 × 17/31 = 54.8387… → 54.839 kWh; 100 × 14/31 = 45.1612… → 45.161 kWh
    # winter: 54.839 × 0.10 = 5.4839 → 5.48;  (60 − 54.839) = 5.161 × 0.20 = 1.0322 → 1.03
    # summer: 45.161 × 0.15 = 6.77415 → 6.77;  (50 − 45.161) = 4.839 × 0.30 = 1.4517 → 1.45
    assert lines(b, "energy") == [
        ("energy", D("54.839"), D("0.10"), D("5.48")),
        ("energy", D("5.161"), D("0.20"), D("1.03")),
        ("energy", D("45.161"), D("0.15"), D("6.77")),
        ("energy", D("4.839"), D("0.30"), D("1.45")),
    ]
    # flat demand per season, 60-minute windows of hourly data: 60 kW and 50 kW
    # 60 × 5 × 17/31 = 164.516… → 164.52;  50 × 8 × 14/31 = 180.645… → 180.65
    demand = [ln for ln in b.lines if ln.code == "demand_flat"]
    assert [(ln.quantity, ln.rate, ln.prorate, ln.amount, ln.segment) for ln in demand] == [
        (D(60), D(5), (17, 31), D("164.52"), 1),
        (D(50), D(8), (14, 31), D("180.65"), 2),
    ]
    # fixed 10.00 a month: 10 × 17/31 = 5.4838… → 5.48;  10 × 14/31 = 4.5161… → 4.52
    fixed = [ln for ln in b.lines if ln.code == "fixed"]
    assert [(ln.prorate, ln.amount) for ln in fixed] == [
        ((17, 31), D("5.48")),
        ((14, 31), D("4.52")),
    ]
    # 5.48 + 1.03 + 6.77 + 1.45 + 164.52 + 180.65 + 5.48 + 4.52 = 369.90
    assert b.subtotal == b.total == D("369.90")
    assert b.determinants.peak_kw == D(60)


def test_the_interval_ending_at_the_season_change_is_in_the_first_segment() -> None:
    # 23:00-24:00 on May 31 (ends Jun 1 00:00): winter, segment 1; 00:00-01:00 Jun 1: summer
    ends = [at("2024-06-01T00:00"), at("2024-06-01T01:00")]
    b, _ = bill(_seasonal(), "2024-05", ends, [3, 7], interval_seconds=HOUR, cycle_day=15)
    # 3 × 0.10 = 0.30 (winter first tier); 7 × 0.15 = 1.05 (summer first tier)
    energy = [(ln.segment, ln.quantity, ln.amount) for ln in b.lines if ln.code == "energy"]
    assert energy == [(1, D(3), D("0.30")), (2, D(7), D("1.05"))]


# -- move-in and move-out ----------------------------------------------------------------------


def test_move_in_and_move_out_prorate_the_cycle() -> None:
    t = tariff(
        energy={"flat": {"tiers": [{"upto": 300, "rate": "0.10"}, {"rate": "0.20"}]}},
        fixed=[
            {"name": "Customer charge", "amount": "30.00", "per": "month"},
            {"name": "Daily charge", "amount": "0.50", "per": "day"},
        ],
    )
    # April 2024 (30 days), served Apr 11 to Apr 20 inclusive: 10 days
    ends = [
        at("2024-04-05T13:00"),  # 40 kWh before the move-in: not billed
        at("2024-04-11T01:00"),  # 30 kWh on the first day served
        at("2024-04-15T13:00"),  # 120 kWh
        at("2024-04-21T00:00"),  # 5 kWh: 23:00-24:00 on the last day served
        at("2024-04-21T01:00"),  # 9 kWh on the day after the move-out: not billed
        at("2024-04-25T13:00"),  # 30 kWh after the move-out: not billed
    ]
    b, _ = bill(
        t,
        "2024-04",
        ends,
        [40, 30, 120, 5, 9, 30],
        interval_seconds=HOUR,
        move_in=date(2024, 4, 11),
        move_out=date(2024, 4, 20),
    )
    det = b.determinants
    assert (det.days, det.service_days, det.intervals) == (30, 10, 3)
    assert det.kwh_delivered == D(155)  # 30 + 120 + 5
    assert [(s.start, s.end) for s in b.segments] == [(date(2024, 4, 11), date(2024, 4, 21))]
    assert [d.day for d in det.daily] == [date(2024, 4, d) for d in range(11, 21)]
    # tier limit 300 × 10/30 = 100.000 kWh: 100 × 0.10 = 10.00; 55 × 0.20 = 11.00
    assert lines(b, "energy") == [
        ("energy", D("100.000"), D("0.10"), D("10.00")),
        ("energy", D("55.000"), D("0.20"), D("11.00")),
    ]
    # 30.00 × 10/30 = 10.00; 0.50 × 10 days = 5.00
    fixed = [(ln.quantity, ln.unit, ln.prorate, ln.amount) for ln in b.lines if ln.code == "fixed"]
    assert fixed == [(D(1), "month", (10, 30), D("10.00")), (D(10), "day", None, D("5.00"))]
    assert b.total == D("36.00")


def test_no_service_in_the_cycle_gives_no_request() -> None:
    assert CycleRequest.for_period("A", "2024-04", NY, move_in=date(2024, 5, 1)) is None


def test_cycles_are_in_the_account_zone() -> None:
    # a New York tariff billed for an account in Los Angeles: its January ends at midnight in
    # Los Angeles, 03:00 in New York. The hour ending 02:00 New York on Feb 1 (23:00 on Jan 31
    # in Los Angeles, 4 kWh) is January's; the hour ending 04:00 New York (8 kWh) is February's.
    la = ZoneInfo("America/Los_Angeles")
    requests = [request("2024-01", zone=la), request("2024-02", zone=la)]
    ends = np.asarray([at("2024-02-01T02:00"), at("2024-02-01T04:00")], dtype=np.int64)
    usage = Usage.single(ends, mwh([4, 8]), requests=2, interval_seconds=HOUR)
    (jan, _), (feb, _) = Rater(tariff()).bill_all(requests, usage)
    assert (jan.determinants.kwh_delivered, feb.determinants.kwh_delivered) == (D(4), D(8))


def test_a_cycle_day_15_inside_one_season_is_one_unprorated_segment() -> None:
    t = tariff(fixed=[{"amount": "10.00"}])
    b, _ = bill(t, "2024-01", [at("2024-02-10T13:00")], [5], interval_seconds=HOUR, cycle_day=15)
    assert [(s.start, s.end) for s in b.segments] == [(date(2024, 1, 15), date(2024, 2, 15))]
    # 5 × 0.10 = 0.50; the customer charge in full: 10.00
    assert [(ln.code, ln.prorate, ln.amount) for ln in b.lines] == [
        ("energy", None, D("0.50")),
        ("fixed", None, D("10.00")),
    ]
