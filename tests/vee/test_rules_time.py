"""The completeness, time and process rules on hand-made series with exact findings."""

from __future__ import annotations

import gc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from meterledger.core.reading import Quality
from meterledger.vee import facts, rules_time
from meterledger.vee.findings import Context, Hits, Rule
from meterledger.vee.series import Channels, ClockReads, Registers, Series, offsets_of

Q = 900
E = int(Quality.ESTIMATED | Quality.EST_LIKE_DAY)


def at(text: str, tz: str = "UTC") -> int:
    """Epoch seconds of a wall-clock time in ``tz``."""
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp())


def grid(first: int, last: int, step: int = Q) -> list[int]:
    """Interval ends ``first, first + step, ..., last``."""
    return list(range(first, last + 1, step))


@dataclass
class Chan:
    ends: Sequence[int]
    tz: str = "UTC"
    step: int = Q
    secs: Sequence[int] | None = None
    quality: Sequence[int] | None = None
    values: Sequence[int] | None = None
    meter: str = "M1"
    obis: str = "1.8.0"
    check_from: int | None = None  # default: the first row's start (no history)
    check_to: int | None = None  # default: the last row's end


def build(*chans: Chan) -> Series:
    def col(c: Chan, name: str, fill: int) -> list[int]:
        given = getattr(c, name)
        return list(given) if given is not None else [fill] * len(c.ends)

    ends = [e for c in chans for e in c.ends]
    return Series(
        Channels(
            channel_id=np.arange(101, 101 + len(chans), dtype=np.int64),
            meter_id=tuple(c.meter for c in chans),
            obis=tuple(c.obis for c in chans),
            timezone=tuple(c.tz for c in chans),
            meter_class=tuple("default" for _ in chans),
            source=tuple("csv" for _ in chans),
            step=np.array([c.step for c in chans], dtype=np.int64),
            net=np.zeros(len(chans), dtype=bool),
            allows_negative=np.zeros(len(chans), dtype=bool),
        ),
        offsets_of([len(c.ends) for c in chans]),
        np.array(ends, dtype=np.int64),
        np.array([s for c in chans for s in col(c, "secs", c.step)], dtype=np.int64),
        np.array([v for c in chans for v in col(c, "values", 1000)], dtype=np.int64),
        np.array([q for c in chans for q in col(c, "quality", 0)], dtype=np.int64),
        np.array(
            [c.ends[0] - c.step if c.check_from is None else c.check_from for c in chans],
            dtype=np.int64,
        ),
        np.array([c.ends[-1] if c.check_to is None else c.check_to for c in chans], np.int64),
    )


def run(
    rule: Rule,
    series: Series,
    *,
    now: int | None = None,
    clocks: ClockReads | None = None,
    **params: Any,
) -> list[tuple[int, int, str]]:
    code = next(k for k, v in rules_time.RULES.items() if v is rule)
    merged: Mapping[str, Any] = {
        k: v for k, v in {**rules_time.DEFAULTS[code], **params}.items() if k != "severity"
    }
    context = Context(
        series,
        Registers.empty(len(series.channels)),
        clocks or ClockReads.empty(len(series.channels)),
        now if now is not None else 2_000_000_000,
    )
    hits: Hits = rule(series, context, merged)
    return list(
        zip(hits.row_channel.tolist(), hits.interval_end.tolist(), hits.detail, strict=True)
    )


def day_of(first_local: str, tz: str, days: int = 1) -> tuple[int, int]:
    """UTC start and end of ``days`` local days from local midnight ``first_local``."""
    start = at(first_local, tz)
    d = datetime.fromisoformat(first_local)
    end = at(d.replace(day=d.day + days).isoformat(), tz)
    return start, end


# -- COMPLETENESS ---------------------------------------------------------------------------


def test_dst_days_in_new_york_have_92_and_100_quarter_hours() -> None:
    spring = day_of("2026-03-08T00:00", "America/New_York")
    autumn = day_of("2026-11-01T00:00", "America/New_York")
    assert spring[1] - spring[0] == 23 * 3600 and autumn[1] - autumn[0] == 25 * 3600
    s = build(
        Chan(grid(spring[0] + Q, spring[1]), tz="America/New_York", check_from=spring[0]),
        Chan(grid(autumn[0] + Q, autumn[1]), tz="America/New_York", check_from=autumn[0]),
    )
    assert [len(c) for c in (grid(spring[0] + Q, spring[1]), grid(autumn[0] + Q, autumn[1]))] == [
        92,
        100,
    ]
    assert run(rules_time.completeness, s) == []


def test_a_dst_day_short_of_its_92_is_flagged_and_95_is_wrong_on_any_day() -> None:
    tz = "America/New_York"
    spring = day_of("2026-03-08T00:00", tz)
    autumn = day_of("2026-11-01T00:00", tz)
    normal = day_of("2026-03-10T00:00", tz)
    ends = grid(spring[0] + Q, spring[1])
    s = build(
        Chan(ends[:10] + ends[12:], tz=tz, check_from=spring[0], check_to=spring[1]),
        Chan(grid(autumn[0] + Q, autumn[1])[:95], tz=tz, check_from=autumn[0], check_to=autumn[1]),
        Chan(
            grid(normal[0] + Q, normal[1])[:40] + grid(normal[0] + Q, normal[1])[41:],
            tz=tz,
            check_from=normal[0],
        ),
    )
    assert run(rules_time.completeness, s) == [
        (0, spring[1], "2026-03-08: 90 of 92 intervals"),
        (1, autumn[1], "2026-11-01: 95 of 100 intervals"),
        (2, normal[1], "2026-03-10: 95 of 96 intervals"),
    ]


def test_europe_dst_days_and_utc_days() -> None:
    tz = "Europe/Berlin"
    spring = day_of("2026-03-29T00:00", tz)
    autumn = day_of("2026-10-25T00:00", tz)
    utc = day_of("2026-03-29T00:00", "UTC", days=2)
    s = build(
        Chan(grid(spring[0] + Q, spring[1]), tz=tz, check_from=spring[0]),
        Chan(grid(autumn[0] + Q, autumn[1])[:-1], tz=tz, check_from=autumn[0], check_to=autumn[1]),
        Chan(grid(utc[0] + Q, utc[1]), check_from=utc[0]),
        # 96 rows on Berlin's 23-hour day: four of them belong to the next day
        Chan(grid(spring[0] + Q, spring[0] + 96 * Q), tz=tz, check_from=spring[0]),
    )
    assert run(rules_time.completeness, s) == [
        (1, autumn[1], "2026-10-25: 99 of 100 intervals"),
    ]


def test_only_whole_days_inside_the_checked_window_count() -> None:
    start, end = day_of("2026-01-05T00:00", "UTC", days=3)
    ends = grid(start + Q, end)
    # no history: the data starts at 06:00 on the 5th, so that day is not whole
    late = build(Chan(ends[24:], check_from=start))
    assert run(rules_time.completeness, late) == []
    # history up to the 6th: the 5th is not looked at, the 6th (2 rows short) is
    hole = [e for e in ends if not (start + 86_400 + 3600 < e <= start + 86_400 + 3 * Q + 3600)]
    history = build(Chan(ends[:30] + hole[30:], check_from=start + 86_400))
    assert len(hole) == 288 - 3
    assert run(rules_time.completeness, history) == [
        (0, start + 2 * 86_400, "2026-01-06: 93 of 96 intervals"),
    ]
    # the window ends at 12:00 on the 7th: that day is not whole, the 6th is complete
    cut = build(Chan(ends, check_from=start + 86_400, check_to=start + 2 * 86_400 + 12 * 3600))
    assert run(rules_time.completeness, cut) == []


def test_completeness_counts_a_duplicated_interval_once_and_sees_an_empty_day() -> None:
    start, end = day_of("2026-01-05T00:00", "UTC", days=2)
    ends = grid(start + Q, start + 86_400)
    doubled = build(Chan(sorted([*ends[:9], *ends[10:], ends[5]]), check_from=start))
    assert run(rules_time.completeness, doubled) == [
        (0, start + 86_400, "2026-01-05: 95 of 96 intervals")
    ]
    # history only, the checked day has no row at all
    silent = build(Chan(ends, check_from=start + 86_400, check_to=end))
    assert run(rules_time.completeness, silent) == [(0, end, "2026-01-06: 0 of 96 intervals")]


def test_a_long_row_counts_in_the_day_it_starts() -> None:
    """A 35-minute row from 23:45 to 00:20 (the clock was set) belongs to the first day."""
    start, end = day_of("2026-01-05T00:00", "UTC", days=2)
    first_day = grid(start + Q, start + 95 * Q)
    second_day = grid(start + 86_400 + 2 * Q, end)
    long_end = start + 86_400 + 20 * 60
    s = build(
        Chan(
            [*first_day, long_end, *second_day],
            secs=[Q] * 95 + [35 * 60] + [Q] * len(second_day),
            check_from=start,
        )
    )
    assert run(rules_time.completeness, s) == [(0, end, "2026-01-06: 95 of 96 intervals")]


def test_completeness_stops_at_now() -> None:
    start, end = day_of("2026-01-05T00:00", "UTC", days=2)
    s = build(Chan(grid(start + Q, start + 86_400), check_from=start, check_to=end))
    assert run(rules_time.completeness, s, now=start + 86_400 + 7200) == []
    assert run(rules_time.completeness, s, now=end) == [(0, end, "2026-01-06: 0 of 96 intervals")]


# -- GAP ------------------------------------------------------------------------------------

T0 = at("2026-01-05T00:00")


def test_gap_between_rows_is_one_finding_at_its_first_missing_end() -> None:
    ends = grid(T0 + Q, T0 + 8 * Q)
    s = build(Chan([e for e in ends if e not in (T0 + 3 * Q, T0 + 4 * Q)]))
    assert run(rules_time.gap, s) == [
        (0, T0 + 3 * Q, "2 missing intervals, 2026-01-05T00:30Z to 2026-01-05T01:00Z")
    ]
    assert run(rules_time.gap, build(Chan(ends))) == []


def test_trailing_gap_up_to_check_to_and_never_past_now() -> None:
    s = build(Chan(grid(T0 + Q, T0 + 4 * Q), check_to=T0 + 8 * Q))
    assert run(rules_time.gap, s) == [
        (0, T0 + 5 * Q, "4 missing intervals, 2026-01-05T01:00Z to 2026-01-05T02:00Z")
    ]
    assert run(rules_time.gap, s, now=T0 + 5 * Q + 60) == [
        (0, T0 + 5 * Q, "1 missing interval, 2026-01-05T01:00Z to 2026-01-05T01:15Z")
    ]


def test_gap_from_history_is_clipped_to_the_checked_window() -> None:
    # history ends 00:30; checked from 01:00; next row 02:00: missing 00:45 .. 01:45
    s = build(Chan([T0 + Q, T0 + 2 * Q, T0 + 8 * Q], check_from=T0 + 4 * Q))
    assert run(rules_time.gap, s) == [
        (0, T0 + 5 * Q, "3 missing intervals, 2026-01-05T01:00Z to 2026-01-05T01:45Z")
    ]
    # a gap wholly inside history is not reported again
    old = build(Chan([T0 + Q, T0 + 4 * Q, T0 + 5 * Q], check_from=T0 + 4 * Q))
    assert run(rules_time.gap, old) == []
    # history and nothing checked: the whole window is missing
    quiet = build(Chan([T0 + Q, T0 + 2 * Q], check_from=T0 + 2 * Q, check_to=T0 + 4 * Q))
    assert run(rules_time.gap, quiet) == [
        (0, T0 + 3 * Q, "2 missing intervals, 2026-01-05T00:30Z to 2026-01-05T01:00Z")
    ]


def test_estimates_fill_no_gap_unless_they_count() -> None:
    ends = grid(T0 + Q, T0 + 8 * Q)
    quality = [0, 0, E, E, E, 0, 0, E]  # estimates inside and at the end
    s = build(Chan(ends, quality=quality, check_to=T0 + 9 * Q))
    assert run(rules_time.gap, s) == [
        (0, T0 + 3 * Q, "3 missing intervals, 2026-01-05T00:30Z to 2026-01-05T01:15Z, 3 estimated"),
        (0, T0 + 8 * Q, "2 missing intervals, 2026-01-05T01:45Z to 2026-01-05T02:15Z, 1 estimated"),
    ]
    assert run(rules_time.gap, s, count_estimated=True) == [
        (0, T0 + 9 * Q, "1 missing interval, 2026-01-05T02:00Z to 2026-01-05T02:15Z")
    ]
    only = build(Chan(ends[:3], quality=[E, E, E]))  # nothing but estimates: no reference
    assert run(rules_time.gap, only) == []


def test_estimated_days_are_incomplete_unless_estimates_count() -> None:
    start, end = day_of("2026-01-05T00:00", "UTC")
    ends = grid(start + Q, end)
    quality = [E if 10 <= i < 14 else 0 for i in range(96)]
    s = build(Chan(ends, quality=quality, check_from=start))
    assert run(rules_time.completeness, s) == [(0, end, "2026-01-05: 92 of 96 intervals")]
    assert run(rules_time.completeness, s, count_estimated=True) == []
    # an estimate and an actual for one interval end: the end counts once
    doubled = build(
        Chan(
            sorted([*ends, ends[20]]),
            quality=[E if i == 20 else 0 for i in range(97)],
            check_from=start,
        )
    )
    assert run(rules_time.completeness, doubled) == []
    sibling = build(
        Chan(ends, check_from=start), Chan(ends, quality=quality, obis="2.8.0", check_from=start)
    )
    assert run(rules_time.sibling_completeness, sibling) == [
        (1, end, "2026-01-05: 92 of 96 intervals, 1.8.0 has 96 of 96")
    ]


def test_no_leading_gap_without_history() -> None:
    s = build(Chan(grid(T0 + 10 * Q, T0 + 12 * Q), check_from=T0))
    assert run(rules_time.gap, s) == []


def test_a_long_row_covering_the_time_is_not_a_gap() -> None:
    s = build(Chan([T0 + Q, T0 + 3 * Q, T0 + 4 * Q], secs=[Q, 2 * Q, Q]))
    assert run(rules_time.gap, s) == []


def test_gap_on_each_channel_separately() -> None:
    s = build(Chan([T0 + Q, T0 + 2 * Q]), Chan([T0 + Q, T0 + 3 * Q], obis="2.8.0"))
    assert run(rules_time.gap, s) == [
        (1, T0 + 2 * Q, "1 missing interval, 2026-01-05T00:15Z to 2026-01-05T00:30Z")
    ]


# -- DUPLICATE ------------------------------------------------------------------------------


def test_duplicate_interval_end() -> None:
    s = build(Chan([T0 + Q, T0 + 2 * Q, T0 + 2 * Q, T0 + 3 * Q], values=[1, 2, 5, 3]))
    assert run(rules_time.duplicate, s) == [
        (0, T0 + 2 * Q, "duplicate: two rows end at 2026-01-05T00:30Z (2 and 5 mWh)")
    ]


def test_three_rows_at_one_end_are_one_finding() -> None:
    s = build(Chan([T0 + Q, T0 + Q, T0 + Q], values=[1, 2, 3]))
    assert run(rules_time.duplicate, s) == [
        (0, T0 + Q, "duplicate: two rows end at 2026-01-05T00:15Z (1 and 2 mWh)")
    ]


def test_a_30_minute_row_over_two_15_minute_rows_overlaps() -> None:
    s = build(Chan([T0 + Q, T0 + 2 * Q, T0 + 3 * Q], secs=[Q, Q, 2 * Q]))
    assert run(rules_time.duplicate, s) == [
        (
            0,
            T0 + 3 * Q,
            "overlap: the 30 min interval from 2026-01-05T00:15Z overlaps the one ending "
            "2026-01-05T00:30Z",
        )
    ]
    same_end = build(Chan([T0 + Q, T0 + 2 * Q, T0 + 2 * Q], secs=[Q, Q, 2 * Q]))
    assert run(rules_time.duplicate, same_end) == [
        (
            0,
            T0 + 2 * Q,
            "overlap: the 30 min interval from 2026-01-05T00:00Z overlaps the one ending "
            "2026-01-05T00:30Z",
        )
    ]


def test_duplicates_in_history_and_across_channels_are_not_findings() -> None:
    history = build(Chan([T0 + Q, T0 + Q, T0 + 2 * Q], check_from=T0 + Q))
    assert run(rules_time.duplicate, history) == []
    two = build(Chan([T0 + Q]), Chan([T0 + Q], obis="2.8.0"))
    assert run(rules_time.duplicate, two) == []


# -- SIBLING_COMPLETENESS -------------------------------------------------------------------


def test_the_less_complete_sibling_is_flagged() -> None:
    start, end = day_of("2026-01-05T00:00", "UTC")
    full = grid(start + Q, end)
    s = build(
        Chan(full, check_from=start),
        Chan(full[:50] + full[52:], obis="2.8.0", check_from=start, check_to=end),
        Chan(full[:-1], meter="M2", check_from=start, check_to=end),  # another meter
    )
    assert run(rules_time.sibling_completeness, s) == [
        (1, end, "2026-01-05: 94 of 96 intervals, 1.8.0 has 96 of 96")
    ]


def test_siblings_equally_complete_or_without_data_are_not_flagged() -> None:
    start, end = day_of("2026-01-05T00:00", "UTC", days=2)
    ends = grid(start + Q, end)
    s = build(
        Chan(ends[:-1], check_from=start, check_to=end),
        Chan(ends[:-1], obis="2.8.0", check_from=start, check_to=end),
        Chan(ends[:96], obis="1.8.1", check_from=start, check_to=end),  # silent on day 2
    )
    assert run(rules_time.sibling_completeness, s) == []


def test_siblings_compare_completeness_not_counts() -> None:
    start, end = day_of("2026-03-08T00:00", "America/New_York")
    tz = "America/New_York"
    s = build(
        Chan(grid(start + Q, end), tz=tz, check_from=start),
        Chan(grid(start + 3600, end, 3600), tz=tz, step=3600, obis="1.8.1", check_from=start),
    )
    assert run(rules_time.sibling_completeness, s) == []


# -- CLOCK_DRIFT ----------------------------------------------------------------------------


def clocks(per_channel: Sequence[Sequence[tuple[int, int]]]) -> ClockReads:
    flat = [r for reads in per_channel for r in reads]
    return ClockReads(
        offsets_of([len(r) for r in per_channel]),
        np.array([a for a, _ in flat], dtype=np.int64),
        np.array([d for _, d in flat], dtype=np.int64),
    )


def test_clock_drift_beyond_tolerance_at_the_last_interval_before_the_read() -> None:
    s = build(Chan(grid(T0 + Q, T0 + 8 * Q)))
    reads = clocks([[(T0 + 2 * Q + 100, 75_000), (T0 + 5 * Q, -20_000), (T0 + 6 * Q + 5, -61_500)]])
    assert run(rules_time.clock_drift, s, clocks=reads) == [
        (0, T0 + 2 * Q, "clock off by +75.000 s at 2026-01-05T00:31Z (tolerance 60 s)"),
        (0, T0 + 6 * Q, "clock off by -61.500 s at 2026-01-05T01:30Z (tolerance 60 s)"),
    ]
    tight = run(rules_time.clock_drift, s, clocks=reads, tolerance_s=10)
    assert [(c, e) for c, e, _ in tight] == [(0, T0 + 2 * Q), (0, T0 + 5 * Q), (0, T0 + 6 * Q)]


def test_clock_drift_without_a_row_before_floors_the_read_and_keeps_the_worst() -> None:
    s = build(Chan(grid(T0 + 4 * Q, T0 + 8 * Q), check_from=T0))
    reads = clocks([[(T0 + Q + 30, 90_000), (T0 + Q + 200, -120_000)]])
    assert run(rules_time.clock_drift, s, clocks=reads) == [
        (0, T0 + Q, "clock off by -120.000 s at 2026-01-05T00:18Z (tolerance 60 s)")
    ]


def test_clock_drift_outside_the_checked_window_and_on_the_right_channel() -> None:
    s = build(
        Chan(grid(T0 + Q, T0 + 8 * Q), check_from=T0 + 4 * Q),
        Chan(grid(T0 + Q, T0 + 8 * Q), meter="M2"),
    )
    reads = clocks([[(T0 + 2 * Q, 99_000)], [(T0 + 3 * Q, 99_000)]])
    assert [(c, e) for c, e, _ in run(rules_time.clock_drift, s, clocks=reads)] == [(1, T0 + 3 * Q)]


# -- CLOCK_SET ------------------------------------------------------------------------------


def test_intervals_too_short_too_long_adjusted_or_off_grid() -> None:
    ends = [T0 + Q, T0 + 2 * Q - 300, T0 + 3 * Q + 300, T0 + 4 * Q, T0 + 5 * Q + 420]
    s = build(
        Chan(
            ends,
            secs=[Q, Q - 300, Q + 600, Q, Q],
            quality=[0, 0, 0, int(Quality.CLOCK_ADJUSTED), 0],
        )
    )
    assert run(rules_time.clock_set, s) == [
        (0, T0 + 2 * Q - 300, "short interval: 10 min, expected 15 min"),
        (0, T0 + 3 * Q + 300, "long interval: 25 min, expected 15 min"),
        (0, T0 + 4 * Q, "clock adjusted in the interval ending 2026-01-05T01:00Z"),
        (0, T0 + 5 * Q + 420, "interval end 2026-01-05T01:22Z is off the 15 min grid"),
    ]


def test_clock_set_uses_the_local_grid_and_local_day_lengths() -> None:
    kolkata = at("2026-01-05T01:00", "Asia/Kolkata")  # 19:30 UTC: on the local hour
    start, end = day_of("2026-03-08T00:00", "America/New_York")
    s = build(
        Chan(grid(kolkata, kolkata + 3 * 3600, 3600), tz="Asia/Kolkata", step=3600),
        Chan([end], tz="America/New_York", step=86_400, secs=[end - start]),
    )
    assert end - start == 82_800
    assert run(rules_time.clock_set, s) == []
    utc_grid = build(Chan([kolkata + 1800], tz="Asia/Kolkata", step=3600))
    assert [d for _, _, d in run(rules_time.clock_set, utc_grid)] == [
        "interval end 2026-01-04T20:00Z is off the 60 min grid"
    ]


def test_a_run_of_rows_off_the_grid_is_flagged_row_by_row() -> None:
    ends = [T0 + Q, T0 + Q + 420, T0 + 2 * Q + 420, T0 + 3 * Q + 420, T0 + 5 * Q]
    s = build(Chan(ends, secs=[Q, 420, Q, Q, 22 * 60]))
    assert [(e, d) for _, e, d in run(rules_time.clock_set, s)] == [
        (T0 + Q + 420, "short interval: 7 min, expected 15 min"),
        (T0 + 2 * Q + 420, "interval end 2026-01-05T00:37Z is off the 15 min grid"),
        (T0 + 3 * Q + 420, "interval end 2026-01-05T00:52Z is off the 15 min grid"),
        (T0 + 5 * Q, "long interval: 22 min, expected 15 min"),
    ]


def test_clock_set_ignores_history() -> None:
    s = build(Chan([T0 + Q, T0 + 2 * Q], secs=[600, Q], check_from=T0 + Q))
    assert run(rules_time.clock_set, s) == []


# -- FUTURE_TIMESTAMP -----------------------------------------------------------------------


def test_future_timestamps_beyond_the_slack() -> None:
    now = T0 + 2 * Q
    s = build(Chan([T0 + Q, T0 + 2 * Q, now + 300, now + Q]))
    assert run(rules_time.future_timestamp, s, now=now) == [
        (0, now + Q, "interval ends 2026-01-05T00:45Z, 15 min after the check at 2026-01-05T00:30Z")
    ]
    assert [e for _, e, _ in run(rules_time.future_timestamp, s, now=now, slack_s=0)] == [
        now + 300,
        now + Q,
    ]
    assert run(rules_time.future_timestamp, s, now=now + Q) == []


# -- ESTIMATION_TOO_LONG --------------------------------------------------------------------


def test_a_run_of_estimates_past_72_hours_is_one_finding_where_it_crosses() -> None:
    n = 4 * 96
    s = build(Chan(grid(T0 + Q, T0 + (n + 2) * Q), quality=[0] + [E] * n + [0]))
    # the run starts at T0 + Q; its 289th row ends 72 h 15 min later
    assert run(rules_time.estimation_too_long, s) == [
        (
            0,
            T0 + Q + 289 * Q,
            "estimated for 96 h, 2026-01-05T00:15Z to 2026-01-09T00:15Z (limit 72 h)",
        )
    ]
    exact = build(Chan(grid(T0 + Q, T0 + 289 * Q), quality=[0] + [E] * 288))
    assert run(rules_time.estimation_too_long, exact) == []
    assert run(rules_time.estimation_too_long, s, max_hours=100) == []


def test_estimate_runs_are_split_by_actuals_and_channels() -> None:
    half = 200
    quality = [E] * half + [0] + [E] * half
    s = build(
        Chan(grid(T0 + Q, T0 + (2 * half + 1) * Q), quality=quality),
        Chan(grid(T0 + Q, T0 + 300 * Q), quality=[E] * 300, obis="2.8.0"),
    )
    assert [(c, e) for c, e, _ in run(rules_time.estimation_too_long, s)] == [(1, T0 + 289 * Q)]


def test_a_run_from_history_counts_but_is_reported_only_when_it_crosses_inside() -> None:
    n = 300
    ends = grid(T0 + Q, T0 + n * Q)
    crossing = build(Chan(ends, quality=[E] * n, check_from=T0 + 100 * Q))
    assert [(c, e) for c, e, _ in run(rules_time.estimation_too_long, crossing)] == [
        (0, T0 + 289 * Q)
    ]
    crossed_before = build(Chan(ends, quality=[E] * n, check_from=T0 + 290 * Q))
    assert run(rules_time.estimation_too_long, crossed_before) == []


# -- the catalogue --------------------------------------------------------------------------


def test_rules_and_defaults_agree() -> None:
    assert list(rules_time.RULES) == list(rules_time.DEFAULTS)
    assert {k: v["severity"] for k, v in rules_time.DEFAULTS.items()} == {
        "COMPLETENESS": "warn",
        "GAP": "warn",
        "DUPLICATE": "fail",
        "SIBLING_COMPLETENESS": "warn",
        "CLOCK_DRIFT": "warn",
        "CLOCK_SET": "warn",
        "FUTURE_TIMESTAMP": "fail",
        "ESTIMATION_TOO_LONG": "warn",
    }


def test_shared_row_facts_do_not_outlive_the_series() -> None:
    s = build(Chan(grid(T0 + Q, T0 + 4 * Q)))
    key = id(s.interval_end)
    assert run(rules_time.gap, s) == []
    assert key in facts._MEMO
    del s
    gc.collect()
    assert key not in facts._MEMO


def test_every_rule_handles_an_empty_series() -> None:
    empty = Series(
        Channels(
            np.array([7], dtype=np.int64),
            ("M1",),
            ("1.8.0",),
            ("UTC",),
            ("default",),
            ("csv",),
            np.array([Q], dtype=np.int64),
            np.zeros(1, dtype=bool),
            np.zeros(1, dtype=bool),
        ),
        np.zeros(2, dtype=np.int64),
        *(np.empty(0, dtype=np.int64) for _ in range(4)),
        np.array([T0], dtype=np.int64),
        np.array([T0 + 86_400], dtype=np.int64),
    )
    for rule in rules_time.RULES.values():
        assert run(rule, empty) == []
