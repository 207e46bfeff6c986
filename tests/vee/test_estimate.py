"""Estimation of gaps: exact values for linear, like-day and register-delta estimates, their
priority, DST days in America/New_York, rounding half away from zero, many channels, empties."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from meterledger.core.reading import Quality
from meterledger.vee.estimate import (
    Estimates,
    EstimationParams,
    estimate,
    missing_intervals,
)
from meterledger.vee.series import Channels, Registers, Series, offsets_of

Q = 900
DAY = 86400
T0 = int(datetime(2024, 1, 1, tzinfo=ZoneInfo("UTC")).timestamp())  # a Monday
LINEAR = int(Quality.ESTIMATED | Quality.EST_LINEAR)
LIKE = int(Quality.ESTIMATED | Quality.EST_LIKE_DAY)
REG = int(Quality.ESTIMATED | Quality.EST_REGISTER)
NY = "America/New_York"


@dataclass
class Chan:
    ends: np.ndarray
    values: np.ndarray
    quality: np.ndarray | None = None
    secs: np.ndarray | None = None
    tz: str = "UTC"
    step: int = Q
    negative: bool = False
    check: tuple[int, int] = (0, 0)
    drop: list[int] = field(default_factory=list)  # interval ends with no row

    def rows(self) -> tuple[np.ndarray, ...]:
        n = len(self.ends)
        q = np.zeros(n, np.int64) if self.quality is None else self.quality
        s = np.full(n, self.step, np.int64) if self.secs is None else self.secs
        keep = ~np.isin(self.ends, self.drop)
        return self.ends[keep], self.values[keep], q[keep], s[keep]


def build(*chans: Chan) -> Series:
    parts = [c.rows() for c in chans]
    n = len(chans)
    return Series(
        Channels(
            channel_id=np.arange(1, n + 1, dtype=np.int64),
            meter_id=tuple(f"M{i}" for i in range(n)),
            obis=("1.0.1.8.0.255",) * n,
            timezone=tuple(c.tz for c in chans),
            meter_class=("residential",) * n,
            source=("csv",) * n,
            step=np.array([c.step for c in chans], np.int64),
            net=np.array([c.negative for c in chans], bool),
            allows_negative=np.array([c.negative for c in chans], bool),
        ),
        offsets_of([len(p[0]) for p in parts]),
        np.concatenate([p[0] for p in parts] or [np.empty(0, np.int64)]).astype(np.int64),
        np.concatenate([p[3] for p in parts] or [np.empty(0, np.int64)]).astype(np.int64),
        np.concatenate([p[1] for p in parts] or [np.empty(0, np.int64)]).astype(np.int64),
        np.concatenate([p[2] for p in parts] or [np.empty(0, np.int64)]).astype(np.int64),
        np.array([c.check[0] for c in chans], np.int64),
        np.array([c.check[1] for c in chans], np.int64),
    )


def end_of(day: int, slot: int) -> int:
    """UTC end of quarter-hour ``slot`` (0..95) of day ``day`` after 2024-01-01."""
    return T0 + day * DAY + (slot + 1) * Q


def day_window(day: int) -> tuple[int, int]:
    return T0 + day * DAY, T0 + (day + 1) * DAY


def utc_days(ndays: int, value: Callable[[int, int], int] | None = None) -> Chan:
    """Complete UTC quarter-hour data for ``ndays`` days; the value of slot s on day d is
    ``1000 * d + s`` unless ``value`` says otherwise."""
    d, s = np.divmod(np.arange(ndays * 96), 96)
    f = value or (lambda day, slot: 1000 * day + slot)
    values = np.array([f(int(a), int(b)) for a, b in zip(d, s, strict=True)], np.int64)
    return Chan(T0 + d * DAY + (s + 1) * Q, values)


def result(e: Estimates) -> list[tuple[int, int, int, int]]:
    return [
        (int(c), int(t), int(v), int(q))
        for c, t, v, q in zip(e.row_channel, e.interval_end, e.value, e.quality, strict=True)
    ]


def values_of(e: Estimates) -> list[int]:
    return [int(v) for v in e.value]


# -- missing intervals --------------------------------------------------------------------


def test_missing_intervals_are_the_grid_ends_without_a_row_in_the_window() -> None:
    c = utc_days(2)
    c.check = day_window(1)
    c.drop = [end_of(0, 5), end_of(1, 0), end_of(1, 7), end_of(1, 95)]
    channel, ends = missing_intervals(build(c))
    assert channel.tolist() == [0, 0, 0]  # the day-0 gap is history, outside the window
    assert ends.tolist() == [end_of(1, 0), end_of(1, 7), end_of(1, 95)]


def test_a_long_row_covers_the_slots_it_spans() -> None:
    c = utc_days(1)
    c.check = day_window(0)
    c.drop = [end_of(0, 9)]
    c.secs = np.full(96, Q, np.int64)
    c.secs[10] = 2 * Q  # the row ending at slot 10 also covers slot 9 (clock set back)
    assert missing_intervals(build(c))[1].tolist() == []


def test_missing_intervals_on_new_york_dst_days_count_92_and_100_slots() -> None:
    for first, last, slots in (
        (datetime(2024, 3, 10), datetime(2024, 3, 11), 92),
        (datetime(2024, 11, 3), datetime(2024, 11, 4), 100),
    ):
        lo = int(first.replace(tzinfo=ZoneInfo(NY)).timestamp())
        hi = int(last.replace(tzinfo=ZoneInfo(NY)).timestamp())
        c = Chan(np.empty(0, np.int64), np.empty(0, np.int64), tz=NY, check=(lo, hi))
        channel, ends = missing_intervals(build(c))
        assert len(ends) == slots and set(channel.tolist()) == {0}
        assert ends[0] == lo + Q and ends[-1] == hi


def test_empty_inputs_give_empty_results() -> None:
    none = build()
    assert [len(a) for a in missing_intervals(none)] == [0, 0]
    e = estimate(none)
    assert len(e) == 0 and [len(a) for a in e.unfilled] == [0, 0]
    c = utc_days(1)
    c.check = day_window(0)
    e = estimate(build(c))  # nothing missing
    assert len(e) == 0 and len(e.unfilled[0]) == 0
    empty = np.empty(0, np.int64)
    assert len(estimate(build(c), targets=(empty, empty))) == 0


# -- linear interpolation -----------------------------------------------------------------


def test_linear_interpolation_of_a_three_interval_gap_is_exact() -> None:
    c = utc_days(1, lambda d, s: 100 if s < 20 else 200)
    c.check = day_window(0)
    c.drop = [end_of(0, 20), end_of(0, 21), end_of(0, 22)]  # between 100 (slot 19) and 200
    e = estimate(build(c))
    assert result(e) == [
        (0, end_of(0, 20), 125, LINEAR),
        (0, end_of(0, 21), 150, LINEAR),
        (0, end_of(0, 22), 175, LINEAR),
    ]
    assert e.interval_seconds.tolist() == [Q, Q, Q]


@pytest.mark.parametrize(
    ("prev", "nxt", "n", "expected"),
    [
        (0, 5, 1, [3]),  # 2.5 -> 3
        (0, -5, 1, [-3]),  # -2.5 -> -3, not -2
        (10, 11, 3, [10, 11, 11]),  # 10.25, 10.5, 10.75
        (-10, -11, 3, [-10, -11, -11]),  # -10.25, -10.5, -10.75
        (7, 7, 4, [7, 7, 7, 7]),
    ],
)
def test_linear_rounds_half_away_from_zero(
    prev: int, nxt: int, n: int, expected: list[int]
) -> None:
    c = utc_days(1, lambda d, s: 0)
    c.negative = True
    c.check = day_window(0)
    c.values = c.values.copy()
    c.values[29], c.values[30 + n] = prev, nxt
    c.drop = [end_of(0, 30 + k) for k in range(n)]
    e = estimate(build(c))
    assert values_of(e) == expected
    assert set(e.quality.tolist()) == {LINEAR}


def test_linear_needs_an_actual_full_length_row_on_each_side() -> None:
    c = utc_days(1)
    c.check = day_window(0)
    c.quality = np.zeros(96, np.int64)
    c.quality[9] = int(Quality.ESTIMATED | Quality.EST_LIKE_DAY)  # the row before is estimated
    c.drop = [end_of(0, 10), end_of(0, 11), end_of(0, 95)]  # the last gap has no row after it
    e = estimate(build(c))
    assert len(e) == 0
    assert e.unfilled[1].tolist() == [end_of(0, 10), end_of(0, 11), end_of(0, 95)]


def test_max_linear_zero_turns_linear_off() -> None:
    c = utc_days(1)
    c.check = day_window(0)
    c.drop = [end_of(0, 10)]
    assert len(estimate(build(c), params=EstimationParams(max_linear=0))) == 0
    assert values_of(estimate(build(c))) == [10]


# -- like-day average ---------------------------------------------------------------------


def like_gap(day: int, first: int = 40, n: int = 5) -> list[int]:
    return [end_of(day, first + k) for k in range(n)]


def test_a_four_gap_is_linear_and_a_five_gap_is_like_day() -> None:
    c = utc_days(40)
    c.check = day_window(16)  # Wednesday 2024-01-17
    c.drop = [*like_gap(16, 10, 4), *like_gap(16, 40, 5)]
    e = estimate(build(c))
    assert e.quality.tolist() == [LINEAR] * 4 + [LIKE] * 5
    assert values_of(e)[:4] == [16010, 16011, 16012, 16013]
    # like days Tue 16th (15), Thu 18th (17), Mon 15th (14): (15000 + 17000 + 14000 + 3 s) / 3
    assert values_of(e)[4:] == [15373, 15374, 15375, 15376, 15377]


def test_weekend_targets_use_weekend_days() -> None:
    c = utc_days(40)
    c.check = day_window(19)  # Saturday 2024-01-20
    c.drop = like_gap(19, 0)
    e = estimate(build(c))
    # Sun 21st (+1), Sun 14th (-6), Sat 13th (-7): (20000 + 13000 + 12000 + 3 s) / 3
    assert values_of(e) == [15000, 15001, 15002, 15003, 15004]
    assert set(e.quality.tolist()) == {LIKE}


def test_outage_and_estimated_days_are_left_out() -> None:
    c = utc_days(40)
    c.check = day_window(16)
    c.drop = like_gap(16)
    c.quality = np.zeros(len(c.ends), np.int64)
    c.quality[15 * 96 + 3] = int(Quality.POWER_OUTAGE)  # Tue 16th
    assert values_of(estimate(build(c)))[0] == 16373  # Thu 18th, Mon 15th, Fri 19th: 49120 / 3
    c.quality[15 * 96 + 3] = 0
    c.quality[17 * 96 + 50] = LINEAR  # Thu 18th holds an estimate
    assert values_of(estimate(build(c)))[0] == 15707  # Tue, Mon, Fri: 47120 / 3 = 15706.67


def test_incomplete_days_are_left_out() -> None:
    c = utc_days(40)
    c.check = day_window(16)
    c.drop = [*like_gap(16), end_of(15, 90)]  # Tue 16th lacks one interval (history, not a target)
    e = estimate(build(c))
    assert len(e) == 5 and values_of(e)[0] == 16373


def test_fewer_like_days_average_what_there_is_with_rounding() -> None:
    def value(d: int, s: int) -> int:
        return {15: 101, 17: 104}.get(d, 9999)

    c = utc_days(40, value)
    c.check = day_window(16)
    c.drop = like_gap(16, 40, 5)
    e = estimate(build(c), params=EstimationParams(search_days=1))
    assert values_of(e) == [103] * 5  # (101 + 104) / 2 = 102.5 -> 103
    one = estimate(build(c), params=EstimationParams(like_days=1))
    assert values_of(one) == [101] * 5  # the nearest, the earlier on a tie


def test_like_day_rounds_negative_half_away_from_zero() -> None:
    c = utc_days(40, lambda d, s: {15: -101, 17: -104}.get(d, 0))
    c.negative = True
    c.check = day_window(16)
    c.drop = like_gap(16)
    assert values_of(estimate(build(c), params=EstimationParams(search_days=1))) == [-103] * 5


# -- DST days in America/New_York -----------------------------------------------------------


def ny_days(first: date, last: date, base: dict[date, int], default: int = 50000) -> Chan:
    """Quarter-hour rows over local days ``first..last`` in New York; a row starting at local
    wall-clock minute m of day d has ``base.get(d, default) + m // 15``."""
    zone = ZoneInfo(NY)
    lo = int(datetime(first.year, first.month, first.day, tzinfo=zone).timestamp())
    stop = last + timedelta(days=1)
    hi = int(datetime(stop.year, stop.month, stop.day, tzinfo=zone).timestamp())
    ends = np.arange(lo + Q, hi + 1, Q, dtype=np.int64)
    values = []
    for e in ends:
        start = datetime.fromtimestamp(int(e) - Q, zone)
        values.append(base.get(start.date(), default) + (start.hour * 60 + start.minute) // 15)
    return Chan(ends, np.array(values, np.int64), tz=NY)


def ny(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(NY)).timestamp())


def local_window(day: date) -> tuple[int, int]:
    nxt = day + timedelta(days=1)
    return ny(day.isoformat()), ny(nxt.isoformat())


def test_fall_back_day_repeated_hour_takes_the_wall_clock_like_day_value() -> None:
    base = {date(2024, 11, 2): 1000, date(2024, 11, 9): 2000, date(2024, 10, 27): 4000}
    c = ny_days(date(2024, 10, 13), date(2024, 11, 23), base)
    day = date(2024, 11, 3)  # Sunday, 100 quarter-hours
    c.check = local_window(day)
    first = ny("2024-11-03T01:00") + Q  # 01:00 EDT
    c.drop = [first + k * Q for k in range(8)]  # 01:00-01:45 EDT and 01:00-01:45 EST
    e = estimate(build(c))
    # Sat 2nd (-1), Sat 9th (+6), Sun 27th (-7): (7000 + 3 * (4 + j)) / 3
    assert values_of(e) == [2337, 2338, 2339, 2340] * 2
    assert set(e.quality.tolist()) == {LIKE}
    assert e.interval_end.tolist() == c.drop


def test_a_fall_back_reference_day_gives_its_first_repeated_hour() -> None:
    base = {date(2024, 11, 3): 8000, date(2024, 10, 27): 4000, date(2024, 10, 26): 2000}
    c = ny_days(date(2024, 10, 13), date(2024, 11, 23), base)
    c.values = c.values.copy()
    est = ny("2024-11-03T01:00") + 4 * Q  # the rows of 01:00-01:45 EST, the second 01:00 hour
    c.values[np.isin(c.ends, [est + (k + 1) * Q for k in range(4)])] += 500
    c.check = local_window(date(2024, 11, 2))
    c.drop = [ny("2024-11-02T01:00") + (k + 1) * Q for k in range(6)]
    e = estimate(build(c))
    # Sun 3rd (+1, the 01:00 EDT rows), Sun 27th (-6), Sat 26th (-7): (14000 + 3 * slot) / 3
    assert values_of(e) == [4671, 4672, 4673, 4674, 4675, 4676]


def test_spring_forward_reference_day_has_no_value_for_the_skipped_hour() -> None:
    base = {
        date(2024, 3, 10): 9000,
        date(2024, 3, 3): 3000,
        date(2024, 3, 2): 6000,
        date(2024, 3, 16): 12000,
    }
    c = ny_days(date(2024, 2, 4), date(2024, 4, 13), base)
    c.check = local_window(date(2024, 3, 9))  # Saturday
    c.drop = [ny("2024-03-09T02:00") + (k + 1) * Q for k in range(6)]  # 02:00-03:15
    e = estimate(build(c))
    # 02:xx: Sun 3rd, Sat 2nd, Sat 16th (Sun 10th has no 02:xx): (21000 + 3 * slot) / 3
    # 03:xx: Sun 10th, Sun 3rd, Sat 2nd: (18000 + 3 * slot) / 3
    assert values_of(e) == [7008, 7009, 7010, 7011, 6012, 6013]


def test_a_target_on_the_spring_forward_day_and_its_92_slot_day_qualifies() -> None:
    base = {
        date(2024, 3, 9): 1000,
        date(2024, 3, 16): 2000,
        date(2024, 3, 3): 3000,
        date(2024, 3, 10): 9000,
    }
    c = ny_days(date(2024, 2, 4), date(2024, 4, 13), base)
    c.check = local_window(date(2024, 3, 10))
    c.drop = [ny("2024-03-10T03:00") + (k + 1) * Q for k in range(5)]
    e = estimate(build(c))
    # Sat 9th (-1), Sat 16th (+6), Sun 3rd (-7): (6000 + 3 * slot) / 3, slot 12 = 03:00
    assert values_of(e) == [2012, 2013, 2014, 2015, 2016]
    c.check = local_window(date(2024, 3, 16))  # Saturday: Sun 17th, Sun 10th (92 rows), Sat 9th
    c.drop = [ny("2024-03-16T05:00") + (k + 1) * Q for k in range(5)]
    assert values_of(estimate(build(c)))[0] == 20020  # (50000 + 9000 + 1000 + 3 * 20) / 3


# -- register delta -----------------------------------------------------------------------


def registers(*channels: Sequence[tuple[int, int]]) -> Registers:
    reads = [r for ch in channels for r in ch]
    return Registers(
        offsets_of([len(ch) for ch in channels]),
        np.array([r[0] for r in reads], np.int64),
        np.array([r[1] for r in reads], np.int64),
    )


def one_day(value: int = 100, negative: bool = False) -> Chan:
    c = utc_days(1, lambda d, s: value)
    c.negative = negative
    c.check = day_window(0)
    return c


def test_no_like_day_and_register_reads_spread_the_delta_exactly() -> None:
    c = one_day()
    c.drop = [end_of(0, 40 + k) for k in range(10)]  # 86 rows of 100 remain
    regs = registers([(T0, 5_000_000), (T0 + DAY, 5_000_000 + 8600 + 1003)])
    e = estimate(build(c), regs)
    assert values_of(e) == [101, 101, 101] + [100] * 7  # 1003 = 10 * 100 + 3
    assert set(e.quality.tolist()) == {REG}
    assert sum(values_of(e)) + 8600 == 8600 + 1003


def test_register_remainder_leaves_out_this_calls_other_estimates() -> None:
    c = one_day()
    c.drop = [end_of(0, 5), end_of(0, 6), *[end_of(0, 40 + k) for k in range(10)]]
    regs = registers([(T0, 0), (T0 + DAY, 8400 + 200 + 1003)])  # 84 rows, 2 linear of 100
    e = estimate(build(c), regs)
    assert e.quality.tolist() == [LINEAR, LINEAR] + [REG] * 10
    assert values_of(e) == [100, 100, 101, 101, 101] + [100] * 7
    assert sum(values_of(e)) + 8400 == 8400 + 200 + 1003


def test_register_shares_count_open_slots_that_are_not_targets() -> None:
    c = one_day()
    c.drop = [end_of(0, 40 + k) for k in range(10)]
    regs = registers([(T0, 0), (T0 + DAY, 8600 + 1003)])
    wanted = np.array([end_of(0, 45 + k) for k in range(5)], np.int64)
    e = estimate(build(c), regs, targets=(np.zeros(5, np.int64), wanted))
    assert values_of(e) == [100] * 5  # the three extra mWh belong to slots 40-42


def test_register_reads_off_the_grid_or_a_negative_remainder_fill_nothing() -> None:
    c = one_day()
    c.drop = [end_of(0, 40 + k) for k in range(10)]
    off_grid = registers([(T0 + 60, 0), (T0 + DAY, 9603)])
    e = estimate(build(c), off_grid)
    assert len(e) == 0 and len(e.unfilled[0]) == 10
    rollover = registers([(T0, 99_999_000), (T0 + DAY, 2_000)])
    assert len(estimate(build(c), rollover)) == 0
    # a read inside the gap, off the grid, is passed over: the aligned reads around it bracket
    skipped = registers([(T0, 0), (end_of(0, 40) - Q + 60, 123), (T0 + DAY, 8600 + 1003)])
    assert values_of(estimate(build(c), skipped)) == [101, 101, 101] + [100] * 7


def test_register_on_a_net_channel_spreads_a_negative_remainder() -> None:
    c = one_day(value=-100, negative=True)
    c.drop = [end_of(0, 40 + k) for k in range(5)]
    regs = registers([(T0, 0), (T0 + DAY, -9100 - 7)])  # 91 rows of -100
    e = estimate(build(c), regs)
    assert values_of(e) == [-1, -1, -1, -2, -2]  # -7 = 5 * -2 + 3, one mWh to the earliest three
    assert set(e.quality.tolist()) == {REG}


def test_a_row_straddling_a_read_makes_the_bracket_unusable() -> None:
    c = one_day()
    c.drop = [end_of(0, 40 + k) for k in range(10)]
    c.secs = np.full(96, Q, np.int64)
    c.secs[0] = 2 * Q  # the first row starts before the read at T0
    regs = registers([(T0, 0), (T0 + DAY, 9603)])
    assert len(estimate(build(c), regs)) == 0


def test_like_day_comes_before_register() -> None:
    c = utc_days(3)
    c.check = day_window(1)
    c.drop = like_gap(1, 40, 6)
    regs = registers([(T0 + DAY, 0), (T0 + 2 * DAY, 10**9)])
    e = estimate(build(c), regs)
    assert set(e.quality.tolist()) == {LIKE}
    assert values_of(e) == [
        1040,
        1041,
        1042,
        1043,
        1044,
        1045,
    ]  # Mon (-1), Wed (+1): (2000 + 2 s) / 2


# -- many channels, targets ---------------------------------------------------------------


def test_several_channels_zones_and_steps_at_once() -> None:
    a = utc_days(1)
    a.check = day_window(0)
    a.drop = [end_of(0, 10)]
    hourly_ends = T0 + 3600 * np.arange(1, 25, dtype=np.int64)
    b = Chan(hourly_ends, 10 * np.arange(24, dtype=np.int64), tz=NY, step=3600)
    b.check = (T0, T0 + DAY)
    b.drop = [T0 + 3600 * 6, T0 + 3600 * 7]
    c = one_day()
    c.drop = [end_of(0, 95)]  # no row after: stays unfilled
    e = estimate(build(a, b, c))
    assert result(e) == [
        (0, end_of(0, 10), 10, LINEAR),
        (1, T0 + 3600 * 6, 50, LINEAR),
        (1, T0 + 3600 * 7, 60, LINEAR),
    ]
    assert e.interval_seconds.tolist() == [Q, 3600, 3600]
    assert e.unfilled[0].tolist() == [2] and e.unfilled[1].tolist() == [end_of(0, 95)]


def test_given_targets_are_sorted_deduplicated_and_checked() -> None:
    c = utc_days(1)
    c.drop = [end_of(0, 10), end_of(0, 20)]
    s = build(c)
    e = estimate(
        s, targets=(np.array([0, 0, 0]), np.array([end_of(0, 20), end_of(0, 10), end_of(0, 20)]))
    )
    assert result(e) == [(0, end_of(0, 10), 10, LINEAR), (0, end_of(0, 20), 20, LINEAR)]
    with pytest.raises(ValueError, match="step grid"):
        estimate(s, targets=(np.array([0]), np.array([end_of(0, 10) + 1])))
    with pytest.raises(ValueError, match="channel"):
        estimate(s, targets=(np.array([1]), np.array([end_of(0, 10)])))


def test_estimation_params_are_checked() -> None:
    assert EstimationParams() == EstimationParams(max_linear=4, like_days=3, search_days=28)
    for bad in ({"max_linear": -1}, {"like_days": 0}, {"search_days": 0}):
        with pytest.raises(ValueError):
            EstimationParams(**bad)


def test_a_new_channel_is_not_estimated_before_its_first_row() -> None:
    """A channel whose first reading of all lies inside the window (a meter installed, or a
    received channel first read, at 20:00) has nothing missing before it; a gap after it
    still counts, and a channel with history keeps its whole window."""
    new = utc_days(1)
    new.check = day_window(0)
    new.ends, new.values = new.ends[80:], new.values[80:]  # first row ends at slot 80
    new.drop = [end_of(0, 90)]
    old = utc_days(2)
    old.check = day_window(1)
    old.drop = [end_of(1, s) for s in range(0, 4)]
    channel, ends = missing_intervals(build(new, old))
    assert list(zip(channel.tolist(), ends.tolist(), strict=True)) == [
        (0, end_of(0, 90)),
        *((1, end_of(1, s)) for s in range(0, 4)),
    ]
