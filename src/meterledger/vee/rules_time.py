"""Completeness, time and process rules: is every interval there, once, on time and on the grid?

All vectorised over the whole series. Windows: a channel is looked at from ``check_from``
(when it has history rows before that; else from the start of its first row) up to
``check_to`` or the time ``now``, whichever is earlier: no interval is expected to have
ended after now. Findings are only reported on interval ends inside
``(check_from, check_to]``.

A local day is the day of the meter's zone an interval *starts* in; its length comes from
the zone (23 h and 25 h on DST days), so a 15-minute channel has 92, 96 or 100 intervals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from meterledger.core.reading import Quality
from meterledger.vee.findings import Context, Hits, Rule
from meterledger.vee.series import Series, local_epoch, ragged

__all__ = [
    "DEFAULTS",
    "RULES",
    "clock_drift",
    "clock_set",
    "completeness",
    "duplicate",
    "estimation_too_long",
    "future_timestamp",
    "gap",
    "sibling_completeness",
]

_I64 = np.int64
_DAY = 86_400
_ESTIMATED = int(
    Quality.ESTIMATED | Quality.EST_LINEAR | Quality.EST_LIKE_DAY | Quality.EST_REGISTER
)


def _iso(instants: np.ndarray) -> np.ndarray:
    """UTC minutes as text, ``2026-03-08T05:15Z`` (vectorised)."""
    stamps = np.datetime_as_string(np.asarray(instants, dtype="datetime64[s]"), unit="m")
    return np.char.add(stamps, "Z")


def _dates(days: np.ndarray) -> np.ndarray:
    """Local day numbers as ``2026-03-08``."""
    return np.datetime_as_string(np.asarray(days, dtype="datetime64[D]"))


def _minutes(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def _prev_same(series: Series, rc: np.ndarray) -> np.ndarray:
    """True at rows whose previous row is in the same channel."""
    same = np.zeros(series.rows, dtype=bool)
    same[1:] = rc[1:] == rc[:-1]
    return same


def _window(series: Series, context: Context) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the span looked at: ``(lo, hi]`` in UTC seconds (see the module doc)."""
    off = series.offsets
    has_rows = np.diff(off) > 0
    first = np.minimum(off[:-1], max(series.rows - 1, 0))
    if series.rows:
        first_end = series.interval_end[first]
        first_start = first_end - series.interval_seconds[first]
    else:
        first_end = first_start = np.zeros(len(first), dtype=_I64)
    history = has_rows & (first_end <= series.check_from)
    lo = np.where(history, series.check_from, np.maximum(series.check_from, first_start))
    hi = np.minimum(series.check_to, context.now)
    return lo, hi


def _day_starts(days: np.ndarray, tz: str) -> np.ndarray:
    """The UTC instant each local day begins: local midnight less the offset in force just
    before it (so a day whose midnight is skipped by DST still starts where it should)."""
    last = np.asarray(days, dtype=_I64) * _DAY - 1  # 23:59:59 of the day before, local
    guess = last - (local_epoch(last, tz) - last)
    guess = last - (local_epoch(guess, tz) - guess)
    offset = local_epoch(guess, tz) - guess
    starts: np.ndarray = last + 1 - offset
    return starts


@dataclass(frozen=True, slots=True)
class _Days:
    """Every whole local day in each channel's window: its channel, day number, UTC start
    and end, expected intervals and the distinct interval ends found in it."""

    chan: np.ndarray
    day: np.ndarray
    end: np.ndarray
    expected: np.ndarray
    count: np.ndarray


def _whole_days(series: Series, context: Context) -> _Days:
    chans = len(series.channels)
    lo, hi = _window(series, context)
    d0 = np.zeros(chans, dtype=_I64)
    n = np.zeros(chans, dtype=_I64)
    zones = np.asarray(series.channels.timezone, dtype=object)
    has_rows = np.diff(series.offsets) > 0
    for tz in sorted(set(series.channels.timezone)):
        ch = np.flatnonzero((zones == tz) & has_rows)
        if not len(ch):
            continue
        first = local_epoch(lo[ch], tz) // _DAY
        first += _day_starts(first, tz) < lo[ch]
        last = local_epoch(hi[ch] - 1, tz) // _DAY
        last -= _day_starts(last + 1, tz) > hi[ch]
        d0[ch] = first
        n[ch] = np.maximum(last - first + 1, 0)
    base = np.concatenate([[0], np.cumsum(n)]).astype(_I64)
    chan = ragged(base)
    day = d0[chan] + np.arange(len(chan), dtype=_I64) - base[chan]
    start = np.empty(len(chan), dtype=_I64)
    end = np.empty(len(chan), dtype=_I64)
    entry_zone = zones[chan]
    for tz in sorted(set(entry_zone.tolist())):
        at = entry_zone == tz
        start[at] = _day_starts(day[at], tz)
        end[at] = _day_starts(day[at] + 1, tz)
    expected = (end - start) // series.channels.step[chan]

    rc = series.row_channel()
    row_day = context.local_start // _DAY - d0[rc]
    distinct = np.ones(series.rows, dtype=bool)
    distinct[1:] = (series.interval_end[1:] != series.interval_end[:-1]) | (rc[1:] != rc[:-1])
    keep = distinct & (row_day >= 0) & (row_day < n[rc]) & series.checked()
    count = np.bincount(base[rc][keep] + row_day[keep], minlength=len(chan)).astype(_I64)
    return _Days(chan, day, end, expected, count)


def completeness(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """Intervals per local day against the day's length (92, 96 or 100 quarter-hours)."""
    days = _whole_days(series, context)
    bad = days.count != days.expected
    text = _dates(days.day[bad])
    detail = [
        f"{d}: {c} of {e} intervals"
        for d, c, e in zip(
            text.tolist(), days.count[bad].tolist(), days.expected[bad].tolist(), strict=True
        )
    ]
    return Hits.of(days.chan[bad], days.end[bad], detail)


def sibling_completeness(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """A channel with fewer intervals in a local day than another channel of its meter."""
    days = _whole_days(series, context)
    data = np.flatnonzero(days.count > 0)
    if not len(data):
        return Hits.empty()
    _, meter = np.unique(np.asarray(series.channels.meter_id, dtype=object), return_inverse=True)
    chan, day = days.chan[data], days.day[data]
    count, expected = days.count[data], days.expected[data]
    ratio = count / np.maximum(expected, 1)
    order = np.lexsort((-ratio, day, meter[chan]))
    chan, day, count, expected = chan[order], day[order], count[order], expected[order]
    key_meter = meter[chan]
    head = np.ones(len(order), dtype=bool)
    head[1:] = (key_meter[1:] != key_meter[:-1]) | (day[1:] != day[:-1])
    group = np.cumsum(head) - 1
    best = np.flatnonzero(head)[group]  # the most complete sibling of each (meter, day)
    short = count * expected[best] < count[best] * expected
    detail = [
        f"{d}: {c} of {e} intervals, {series.channels.obis[bc]} has {bn} of {be}"
        for d, c, e, bc, bn, be in zip(
            _dates(day[short]).tolist(),
            count[short].tolist(),
            expected[short].tolist(),
            chan[best][short].tolist(),
            count[best][short].tolist(),
            expected[best][short].tolist(),
            strict=True,
        )
    ]
    return Hits.of(chan[short], days.end[data][order][short], detail)


def gap(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """Missing interval ends between rows and after the last one: one finding per gap, at
    its first missing interval end inside the checked window."""
    rc = series.row_channel()
    end = series.interval_end
    step_all = series.channels.step
    lo, hi = _window(series, context)
    inner = np.flatnonzero(_prev_same(series, rc))
    inner = inner[end[inner] - series.interval_seconds[inner] > end[inner - 1]]
    chan_in = rc[inner]
    prev_in = end[inner - 1]
    step_in = step_all[chan_in]
    space = end[inner] - series.interval_seconds[inner] - prev_in
    last_in = -(-space // step_in)  # any uncovered time is at least one missing interval
    has_rows = np.flatnonzero(np.diff(series.offsets) > 0)
    tail_prev = end[series.offsets[has_rows + 1] - 1]
    last_tail = (hi[has_rows] - tail_prev) // step_all[has_rows]
    chan = np.concatenate([chan_in, has_rows])
    prev = np.concatenate([prev_in, tail_prev])
    step = step_all[chan]
    k_last = np.minimum(np.concatenate([last_in, last_tail]), (hi[chan] - prev) // step)
    k_first = np.maximum(1, (series.check_from[chan] - prev) // step + 1)
    k_first = np.maximum(k_first, (lo[chan] - prev) // step + 1)
    k_last = np.minimum(k_last, (series.check_to[chan] - prev) // step)
    ok = k_first <= k_last
    chan, prev, step, k_first, k_last = chan[ok], prev[ok], step[ok], k_first[ok], k_last[ok]
    first = prev + k_first * step
    last = prev + k_last * step
    order = np.lexsort((first, chan))
    chan, first, last, step = chan[order], first[order], last[order], step[order]
    detail = [
        f"{n} missing interval{'s' if n > 1 else ''}, {a} to {b}"
        for n, a, b in zip(
            ((last - first) // step + 1).tolist(),
            _iso(first - step).tolist(),
            _iso(last).tolist(),
            strict=True,
        )
    ]
    return Hits.of(chan, first, detail)


def duplicate(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """The same interval end twice in a channel, or an interval that starts before the one
    before it ends (a 30-minute row over two 15-minute rows)."""
    rc = series.row_channel()
    end, secs = series.interval_end, series.interval_seconds
    same = _prev_same(series, rc)
    prev_end = np.roll(end, 1)
    same_end = same & (end == prev_end)
    clash = same & (end - secs < prev_end)
    clash[1:] &= ~(clash[:-1] & same_end[1:])  # one finding per interval end
    at = np.flatnonzero(clash & series.checked())
    twin = same_end[at] & (secs[at] == secs[at - 1])
    ends, starts = _iso(end[at]).tolist(), _iso(end[at] - secs[at]).tolist()
    before = _iso(end[at - 1]).tolist()
    detail = [
        f"duplicate: two rows end at {e} ({a} and {b} mWh)"
        if t
        else f"overlap: the {_minutes(s)} interval from {st} overlaps the one ending {p}"
        for t, e, a, b, s, st, p in zip(
            twin.tolist(),
            ends,
            series.value[at - 1].tolist(),
            series.value[at].tolist(),
            secs[at].tolist(),
            starts,
            before,
            strict=True,
        )
    ]
    return Hits.of(rc[at], end[at], detail)


def _last_row_at(series: Series, chan: np.ndarray, instant: np.ndarray) -> np.ndarray:
    """Per query, the index of the channel's last row ending at or before the instant, or
    -1 when it has none."""
    if not series.rows or not len(chan):
        return np.full(len(chan), -1, dtype=_I64)
    rc = series.row_channel()
    base = min(int(series.interval_end.min()), int(instant.min()))
    span = max(int(series.interval_end.max()), int(instant.max())) - base + 1
    keys = rc * span + (series.interval_end - base)
    index = np.searchsorted(keys, chan * span + (instant - base), side="right") - 1
    found: np.ndarray = np.where(index >= series.offsets[chan], index, -1)
    return found


def clock_drift(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """A clock read off by more than ``tolerance_s``: at the channel's last interval end at
    or before the read (the read time floored to the step when there is none)."""
    clocks = context.clocks
    tolerance_ms = int(params["tolerance_s"]) * 1000
    chan = ragged(clocks.offsets)
    bad = np.flatnonzero(np.abs(clocks.drift_ms) > tolerance_ms)
    chan, read_at, drift = chan[bad], clocks.read_at[bad], clocks.drift_ms[bad]
    row = _last_row_at(series, chan, read_at)
    step = series.channels.step[chan]
    at = np.where(row >= 0, series.interval_end[np.maximum(row, 0)], read_at // step * step)
    inside = (at > series.check_from[chan]) & (at <= series.check_to[chan])
    chan, read_at, drift, at = chan[inside], read_at[inside], drift[inside], at[inside]
    order = np.lexsort((-np.abs(drift), at, chan))  # the worst read of an interval speaks
    head = np.ones(len(order), dtype=bool)
    head[1:] = (chan[order][1:] != chan[order][:-1]) | (at[order][1:] != at[order][:-1])
    pick = order[head]
    detail = [
        f"clock off by {ms / 1000:+.3f} s at {t} (tolerance {tolerance_ms // 1000} s)"
        for ms, t in zip(drift[pick].tolist(), _iso(read_at[pick]).tolist(), strict=True)
    ]
    return Hits.of(chan[pick], at[pick], detail)


def clock_set(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """An interval shorter or longer than the channel's step, flagged clock-adjusted, or off
    the step's grid on the local clock: the meter's clock was set during it."""
    rc = series.row_channel()
    secs = series.interval_seconds
    step = series.channels.step[rc]
    checked = series.checked()
    adjusted = (series.quality & int(Quality.CLOCK_ADJUSTED)) != 0
    local_end = context.local_start + secs
    odd = np.flatnonzero(checked & (secs != step))
    if len(odd):  # exact local ends where the length is odd (a daily row on a DST day)
        zones = np.asarray(series.channels.timezone, dtype=object)[rc[odd]]
        for tz in sorted(set(zones.tolist())):
            rows = odd[zones == tz]
            local_end[rows] = local_epoch(series.interval_end[rows], tz)
    wrong_length = local_end - context.local_start != step
    gridded = (_DAY % step) == 0
    off_grid = gridded & (local_end % np.where(gridded, step, 1) != 0)
    at = np.flatnonzero(checked & (adjusted | wrong_length | off_grid))
    ends = _iso(series.interval_end[at]).tolist()
    detail = []
    for length, grid, s, want, e in zip(
        wrong_length[at].tolist(),
        off_grid[at].tolist(),
        secs[at].tolist(),
        step[at].tolist(),
        ends,
        strict=True,
    ):
        if length:
            kind = "short" if s < want else "long"
            detail.append(f"{kind} interval: {_minutes(s)}, expected {_minutes(want)}")
        elif grid:
            detail.append(f"interval end {e} is off the {_minutes(want)} grid")
        else:
            detail.append(f"clock adjusted in the interval ending {e}")
    return Hits.of(rc[at], series.interval_end[at], detail)


def future_timestamp(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """An interval that ends after now (plus ``slack_s``)."""
    rc = series.row_channel()
    limit = context.now + int(params["slack_s"])
    at = np.flatnonzero(series.checked() & (series.interval_end > limit))
    now = str(_iso(np.array([context.now]))[0])
    ahead = series.interval_end[at] - context.now
    detail = [
        f"interval ends {e}, {_minutes(int(s))} after the check at {now}"
        for e, s in zip(_iso(series.interval_end[at]).tolist(), ahead.tolist(), strict=True)
    ]
    return Hits.of(rc[at], series.interval_end[at], detail)


def estimation_too_long(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """A run of consecutive estimated rows longer than ``max_hours``: one finding per run,
    at the first interval that takes it past the limit."""
    rc = series.row_channel()
    end = series.interval_end
    limit = int(params["max_hours"]) * 3600
    est = (series.quality & _ESTIMATED) != 0
    cont = np.zeros(series.rows, dtype=bool)
    cont[1:] = est[1:] & est[:-1] & (rc[1:] == rc[:-1])
    heads = np.flatnonzero(est & ~cont)
    if not len(heads):
        return Hits.empty()
    run = np.cumsum(est & ~cont) - 1
    start = (end - series.interval_seconds)[heads][np.maximum(run, 0)]
    over = est & (end - start > limit)
    first = over.copy()
    first[1:] &= ~(over[:-1] & cont[1:])
    at = np.flatnonzero(first & series.checked())
    tails = np.flatnonzero(est & ~np.append(cont[1:], False))  # the last row of each run
    run_start, run_end = start[at], end[tails][run[at]]
    detail = [
        f"estimated for {(b - a) / 3600:g} h, {s} to {e} (limit {limit // 3600} h)"
        for a, b, s, e in zip(
            run_start.tolist(),
            run_end.tolist(),
            _iso(run_start).tolist(),
            _iso(run_end).tolist(),
            strict=True,
        )
    ]
    return Hits.of(rc[at], end[at], detail)


RULES: dict[str, Rule] = {
    "COMPLETENESS": completeness,
    "GAP": gap,
    "DUPLICATE": duplicate,
    "SIBLING_COMPLETENESS": sibling_completeness,
    "CLOCK_DRIFT": clock_drift,
    "CLOCK_SET": clock_set,
    "FUTURE_TIMESTAMP": future_timestamp,
    "ESTIMATION_TOO_LONG": estimation_too_long,
}

DEFAULTS: dict[str, dict[str, object]] = {
    "COMPLETENESS": {"severity": "warn"},
    "GAP": {"severity": "warn"},
    "DUPLICATE": {"severity": "fail"},
    "SIBLING_COMPLETENESS": {"severity": "warn"},
    "CLOCK_DRIFT": {"severity": "warn", "tolerance_s": 60},
    "CLOCK_SET": {"severity": "warn"},
    "FUTURE_TIMESTAMP": {"severity": "fail", "slack_s": 300},
    "ESTIMATION_TOO_LONG": {"severity": "warn", "max_hours": 72},
}
