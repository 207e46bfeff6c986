"""Per-series facts shared by the rules: local starts, day and hour runs, searches on a
channel's grid, and a store that does not outlive its series."""

from __future__ import annotations

import gc
from datetime import UTC, datetime

import numpy as np

from meterledger.core.reading import Quality
from meterledger.vee import facts
from meterledger.vee.findings import Context
from meterledger.vee.series import (
    Channels,
    ClockReads,
    Registers,
    Series,
    local_epoch,
    local_starts,
    offsets_of,
)

Q = 900
NY, BERLIN = "America/New_York", "Europe/Berlin"
MAR7 = int(datetime(2026, 3, 7, tzinfo=UTC).timestamp())  # NY springs forward on Mar 8


def build(chans: list[tuple[str, list[int], list[int]]]) -> Series:
    """Channels of (zone, interval ends, lengths in seconds)."""
    n = len(chans)
    ends = [e for _, es, _ in chans for e in es]
    return Series(
        Channels(
            np.arange(1, n + 1, dtype=np.int64),
            tuple(f"M{c}" for c in range(n)),
            ("1-0:1.8.0",) * n,
            tuple(z for z, _, _ in chans),
            ("default",) * n,
            ("csv",) * n,
            np.full(n, Q, dtype=np.int64),
            np.zeros(n, dtype=bool),
            np.zeros(n, dtype=bool),
        ),
        offsets_of([len(es) for _, es, _ in chans]),
        np.array(ends, dtype=np.int64),
        np.array([s for _, _, ss in chans for s in ss], dtype=np.int64),
        np.ones(len(ends), dtype=np.int64),
        np.zeros(len(ends), dtype=np.int64),
        np.full(n, MAR7, dtype=np.int64),
        np.full(n, MAR7 + 40 * 86_400, dtype=np.int64),
    )


def grid(first: int, count: int, step: int = Q) -> list[int]:
    return [first + step * (i + 1) for i in range(count)]


def row_by_row(s: Series) -> list[int]:
    """The definition: each row's start through local_epoch, one row at a time."""
    starts = s.interval_end - s.interval_seconds
    zone = s.channels.timezone
    return [int(local_epoch(starts[i : i + 1], zone[c])[0]) for c, i in _rows(s)]


def _rows(s: Series) -> list[tuple[int, int]]:
    return [(c, i) for c in range(len(s.channels)) for i in range(s.offsets[c], s.offsets[c + 1])]


def test_local_starts_follow_each_zone_through_its_changes_and_overlaps() -> None:
    month = grid(MAR7, 30 * 96)  # both NY (Mar 8) and Berlin (Mar 29) change inside
    overlap = grid(MAR7, 200)
    overlap.insert(101, overlap[100])  # a 30-minute row at the same end: its start goes back
    chans = [
        (NY, month, [Q] * len(month)),
        ("UTC", grid(MAR7, 10), [Q] * 10),
        (BERLIN, month, [Q] * len(month)),
        (NY, [], []),
        (BERLIN, overlap, [Q] * 101 + [2 * Q] + [Q] * 99),
        (NY, grid(MAR7, 4, 86_400), [86_400] * 4),  # daily rows over the change
    ]
    s = build(chans)
    want = row_by_row(s)
    assert local_starts(s).tolist() == want
    assert facts.local_start(s).tolist() == want
    assert Context(s, Registers.empty(6), ClockReads.empty(6), 0).local_start.tolist() == want
    # New York: 23:45 EST on Mar 7 is 04:45Z; the row starting 07:00Z on Mar 8 is 03:00 EDT
    ny = s.interval_end[: len(month)] - Q
    at = int(np.searchsorted(ny, int(datetime(2026, 3, 8, 7, tzinfo=UTC).timestamp())))
    assert local_starts(s)[at] % 86_400 == 3 * 3600
    assert local_starts(s)[at - 1] % 86_400 == 3600 + 45 * 60  # 01:45 EST, then 03:00
    assert facts.irregular(s).tolist() == [int(s.offsets[4]) + 101]


def test_local_starts_of_utc_only_and_empty_series() -> None:
    s = build([("UTC", grid(MAR7, 3), [Q] * 3)])
    assert local_starts(s).tolist() == (s.interval_end - Q).tolist()
    assert local_starts(build([(NY, [], [])])).tolist() == []


def test_day_runs_and_hour_runs_of_some_channels_agree_with_all_channels() -> None:
    month = grid(MAR7, 3 * 96)
    s = build([(NY, month, [Q] * len(month)), (BERLIN, month, [Q] * len(month))])
    ctx = Context(s, Registers.empty(2), ClockReads.empty(2), 0)
    start, day = facts.day_runs(s, ctx)
    local = ctx.local_start
    want = [
        i for c, i in _rows(s) if i == s.offsets[c] or local[i] // 86_400 != local[i - 1] // 86_400
    ]
    assert start.tolist() == want
    assert day.tolist() == (local[want] // 86_400).tolist()
    assert np.diff(start).tolist()[:4] == [20, 96, 92, 80]  # NY: 19:00 on, a 23-hour Mar 8
    every = facts.hour_runs(s, ctx, None)
    berlin = facts.hour_runs(s, ctx, np.array([1]))
    ours = every[0] >= s.offsets[1]
    for got, full in zip(berlin[:3], every[:3], strict=True):
        assert got.tolist() == full[ours].tolist()
    assert every[2].sum() == s.rows and len(every[3]) == 0  # no ambiguous keys


def test_an_hour_that_goes_back_makes_its_keys_ambiguous() -> None:
    ends = grid(MAR7, 12)
    ends.insert(4, ends[3])  # 01:00 ends again, 30 minutes long: it starts at 00:30
    s = build([("UTC", ends, [Q] * 4 + [2 * Q] + [Q] * 8)])
    ctx = Context(s, Registers.empty(1), ClockReads.empty(1), 0)
    start, key, count, lo, hi = facts.hour_runs(s, ctx, np.array([0]))
    hour = MAR7 // 3600
    assert start.tolist() == [0, 5, 9]  # still in hour 0: the hours do not go back
    assert ((key - hour).tolist(), count.tolist()) == ([0, 1, 2], [5, 4, 4])
    assert len(lo) == len(hi) == 0
    ends = grid(MAR7, 12)
    ends.insert(5, ends[4])  # 01:15 again, 30 minutes long: starts 00:45, after hour 1
    s = build([("UTC", ends, [Q] * 5 + [2 * Q] + [Q] * 7)])
    ctx = Context(s, Registers.empty(1), ClockReads.empty(1), 0)
    start, key, count, lo, hi = facts.hour_runs(s, ctx, np.array([0]))
    assert start.tolist() == [0, 4, 5, 6, 9]
    assert ((key - hour).tolist(), count.tolist()) == ([0, 1, 0, 1, 2], [4, 1, 1, 3, 4])
    assert ((lo - hour).tolist(), (hi - hour).tolist()) == ([0], [1])  # a search for hour 1


def test_upto_and_among() -> None:
    ends = grid(MAR7, 10)
    del ends[3:6]  # a gap
    s = build([("UTC", ends, [Q] * 7), ("UTC", grid(MAR7, 5), [Q] * 5)])
    t = np.array([MAR7, MAR7 + 3 * Q, MAR7 + 5 * Q, MAR7 + 7 * Q, MAR7 + 99 * Q, MAR7 + 2 * Q])
    chans = np.array([0, 0, 0, 0, 0, 1])
    assert (facts.upto(s, chans, t) - s.offsets[chans]).tolist() == [0, 3, 3, 4, 7, 2]
    assert facts.among(np.array([1, 4, 9]), np.array([1, 2, 9])).tolist() == [True, False, True]
    assert facts.among(np.array([3]), np.array([], dtype=np.int64)).tolist() == [False]


def test_the_store_does_not_outlive_the_series() -> None:
    s = build([("UTC", grid(MAR7, 4), [Q] * 4)])
    key = id(s.interval_end)
    facts.facts(s)["x"] = 1
    assert facts.facts(s)["x"] == 1
    assert key in facts._MEMO
    del s
    gc.collect()
    assert key not in facts._MEMO


def test_flagged_rows_stay_every_flagged_row_after_the_day_table() -> None:
    s = build([("UTC", grid(MAR7, 8), [Q] * 8)])
    s.quality[[2, 5]] = [int(Quality.CLOCK_ADJUSTED), int(Quality.ESTIMATED)]
    ctx = Context(s, Registers.empty(1), ClockReads.empty(1), 0)
    table = facts.days(s, ctx)
    assert table[9].tolist() == [True] and table[8].tolist() == [False]  # estimated, no outage
    assert facts.flagged(s).tolist() == [2, 5]
    assert [k.tolist() for k in facts.kinds(s)] == [[True], [False]]  # import, not export
