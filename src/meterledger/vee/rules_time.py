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

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from meterledger.core.reading import Quality
from meterledger.vee.facts import among, checked, facts, upto
from meterledger.vee.facts import flagged as facts_flagged
from meterledger.vee.facts import irregular as rows_irregular
from meterledger.vee.findings import Context, Hits, Rule, per_channel
from meterledger.vee.series import Series, local_epoch, offsets_of, ragged

__all__ = ["DEFAULTS", "RULES"]  # the rules are reached through RULES

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


def _cols(*columns: np.ndarray) -> Iterator[tuple[Any, ...]]:
    """Rows of plain Python values from equal-length arrays (for the detail texts)."""
    return zip(*(c.tolist() for c in columns), strict=True)


def _minutes(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def _per_zone(
    series: Series, chan: np.ndarray, values: np.ndarray, fn: Callable[[np.ndarray, str], Any]
) -> np.ndarray:
    """``fn(values, zone)`` for the values of each zone, where ``chan`` gives their channels."""
    out = np.empty(len(values), dtype=_I64)
    zones = np.asarray(series.channels.timezone, dtype=object)[chan]
    for tz in sorted(set(zones.tolist())):
        at = zones == tz
        out[at] = fn(values[at], tz)
    return out


def _chan_of(series: Series, rows: np.ndarray) -> np.ndarray:
    """The channel of each of a few ``rows``."""
    chan: np.ndarray = np.searchsorted(series.offsets, rows, side="right") - 1
    return chan


@dataclass(frozen=True, slots=True)
class _Days:
    """Every whole local day in each channel's window: its channel, day number, UTC end,
    expected intervals and the distinct interval ends that start in it."""

    chan: np.ndarray
    day: np.ndarray
    end: np.ndarray
    expected: np.ndarray
    count: np.ndarray


@dataclass(frozen=True, slots=True)
class _Rows:
    """Facts about the rows that several rules need, found once per series (:func:`_rows`).
    Rows are sorted by interval end within a channel, so most are ranges and searches."""

    same: np.ndarray  # the previous row is in the same channel
    checked: np.ndarray
    irregular: np.ndarray  # rows not ending their own length after the row before
    odd: np.ndarray  # rows whose length is not the channel's step
    flagged: np.ndarray  # rows flagged estimated or clock-adjusted
    estimated: np.ndarray  # rows flagged estimated
    lo: np.ndarray  # per channel, where the window looked at starts
    days: dict[tuple[int, tuple[str, ...], bool], _Days] = field(default_factory=dict)


def _rows(series: Series) -> _Rows:
    """The :class:`_Rows` of ``series``, shared by the rules that run on it (kept in the
    series' :func:`~meterledger.vee.facts.facts`)."""
    store = facts(series)
    held: _Rows | None = store.get("time rows")
    if held is not None:
        return held
    end, secs, off, n = series.interval_end, series.interval_seconds, series.offsets, series.rows
    counts = np.diff(off)
    same = np.ones(n, dtype=bool)
    same[off[:-1][off[:-1] < n]] = False
    irregular = rows_irregular(series)
    steps = series.channels.step
    uniform = len(steps) and (steps == steps[0]).all()
    odd = np.flatnonzero(secs != (steps[0] if uniform else np.repeat(steps, counts)))
    flagged = facts_flagged(series)
    flagged = flagged[(series.quality[flagged] & (_ESTIMATED | int(Quality.CLOCK_ADJUSTED))) != 0]
    at = np.minimum(off[:-1], max(n - 1, 0))
    first_end = end[at] if n else np.zeros(len(at), dtype=_I64)
    first_start = first_end - (secs[at] if n else 0)
    history = (counts > 0) & (first_end <= series.check_from)
    lo = np.where(history, series.check_from, np.maximum(series.check_from, first_start))
    estimated = flagged[(series.quality[flagged] & _ESTIMATED) != 0]
    rows = store["time rows"] = _Rows(same, checked(series), irregular, odd, flagged, estimated, lo)
    return rows


def _window(series: Series, context: Context) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the span looked at: ``(lo, hi]`` in UTC seconds (see the module doc)."""
    return _rows(series).lo, np.minimum(series.check_to, context.now)


def _day_starts(days: np.ndarray, tz: str) -> np.ndarray:
    """The UTC instant each local day begins: local midnight less the offset in force just
    before it (so a day whose midnight is skipped by DST still starts where it should)."""
    last = np.asarray(days, dtype=_I64) * _DAY - 1  # 23:59:59 of the day before, local
    guess = last - (local_epoch(last, tz) - last)
    guess = last - (local_epoch(guess, tz) - guess)
    offset = local_epoch(guess, tz) - guess
    starts: np.ndarray = last + 1 - offset
    return starts


def _whole_days(series: Series, context: Context, params: Mapping[str, Any]) -> _Days:
    """The day table at ``context.now``, shared by COMPLETENESS and SIBLING_COMPLETENESS."""
    memo = _rows(series)
    key = (context.now, series.channels.timezone, bool(params["count_estimated"]))
    if key not in memo.days:
        memo.days[key] = _count_days(series, context, memo, key[2])
    return memo.days[key]


def _count_days(series: Series, context: Context, memo: _Rows, estimates: bool) -> _Days:
    lo, hi = _window(series, context)
    d0 = np.zeros(len(series.channels), dtype=_I64)
    n = np.zeros(len(series.channels), dtype=_I64)
    zones = np.asarray(series.channels.timezone, dtype=object)
    has_rows = np.diff(series.offsets) > 0
    for tz in sorted(set(series.channels.timezone)):
        ch = np.flatnonzero((zones == tz) & has_rows)
        if len(ch):
            first = local_epoch(lo[ch], tz) // _DAY
            first += _day_starts(first, tz) < lo[ch]
            last = local_epoch(hi[ch] - 1, tz) // _DAY
            last -= _day_starts(last + 1, tz) > hi[ch]
            d0[ch], n[ch] = first, np.maximum(last - first + 1, 0)
    whole = offsets_of(n)
    chan = ragged(whole)
    day = d0[chan] + np.arange(len(chan), dtype=_I64) - whole[chan]
    start = _per_zone(series, chan, day, _day_starts)
    stop = _per_zone(series, chan, day + 1, _day_starts)
    step = series.channels.step[chan]
    # a row of the step's length starts in [start, stop) when it ends in [start, stop) + step
    count = upto(series, chan, stop + step - 1) - upto(series, chan, start + step - 1)
    end, secs = series.interval_end, series.interval_seconds
    lasts = end[series.offsets[1:][np.diff(series.offsets) > 0] - 1]  # each channel's latest
    span = max(int(stop.max()) if len(stop) else 0, int(lasts.max()) if len(lasts) else 0) + 1

    def entry(rows: np.ndarray, instant: np.ndarray) -> np.ndarray:
        """The day entry holding ``instant`` in each row's channel (-1 when none)."""
        if not len(chan):  # no whole day in the window
            return np.full(len(rows), -1, dtype=_I64)
        c = _chan_of(series, rows)
        e = np.searchsorted(chan * span + start, c * span + instant, side="right") - 1
        ok = (e >= 0) & (chan[np.maximum(e, 0)] == c) & (instant < stop[np.maximum(e, 0)])
        found: np.ndarray = np.where(ok, e, -1)
        return found

    # rows of another length counted by their real start; a second row at one end, once;
    # estimates not at all unless they count
    odd, irr = memo.odd, memo.irregular
    est = np.empty(0, dtype=_I64) if estimates else memo.estimated
    twice = irr[(end[irr] == end[irr - 1]) & ~among(irr, est) & ~among(irr - 1, est)]
    for rows, instant, sign in (
        (odd, end[odd] - series.channels.step[_chan_of(series, odd)], -1),
        (odd, end[odd] - secs[odd], 1),
        (twice, end[twice] - secs[twice], -1),
        (est, end[est] - secs[est], -1),
    ):
        e = entry(rows, instant)
        np.add.at(count, e[e >= 0], sign)
    return _Days(chan, day, stop, (stop - start) // step, count)


def completeness(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """Intervals per local day against the day's length (92, 96 or 100 quarter-hours)."""
    days = _whole_days(series, context, params)
    bad = days.count != days.expected
    text = _dates(days.day[bad])
    detail = [
        f"{d}: {c} of {e} intervals" for d, c, e in _cols(text, days.count[bad], days.expected[bad])
    ]
    return Hits.of(days.chan[bad], days.end[bad], detail)


def sibling_completeness(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """A channel with fewer intervals in a local day than another channel of its meter."""
    days = _whole_days(series, context, params)
    data = np.flatnonzero(days.count > 0)
    if not len(data):
        return Hits.empty()
    _, meter = np.unique(np.asarray(series.channels.meter_id, dtype=object), return_inverse=True)
    ratio = days.count[data] / np.maximum(days.expected[data], 1)
    data = data[np.lexsort((-ratio, days.day[data], meter[days.chan[data]]))]
    chan, day, count, expected = (
        days.chan[data],
        days.day[data],
        days.count[data],
        days.expected[data],
    )
    head = np.append(True, (meter[chan][1:] != meter[chan][:-1]) | (day[1:] != day[:-1]))
    best = np.flatnonzero(head)[np.cumsum(head) - 1]  # the most complete of (meter, day)
    short = count * expected[best] < count[best] * expected
    b = best[short]
    detail = [
        f"{d}: {c} of {e} intervals, {series.channels.obis[bc]} has {bn} of {be}"
        for d, c, e, bc, bn, be in _cols(
            _dates(day[short]), count[short], expected[short], chan[b], count[b], expected[b]
        )
    ]
    return Hits.of(chan[short], days.end[data][short], detail)


def _runs(memo: _Rows, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of consecutive ``rows`` (sorted) within a channel: whether each row continues
    the run before it, and each run's first and last row."""
    cont = np.append(False, (np.diff(rows) == 1) & memo.same[rows[1:]])
    return cont, rows[~cont], rows[~np.append(cont[1:], False)]


def gap(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """Missing interval ends between rows and after the last one: one finding per gap, at
    its first missing interval end inside the checked window. Estimates fill no gap unless
    ``count_estimated``: a gap they fill is still one (the detail says how many)."""
    memo = _rows(series)
    end, secs, off = series.interval_end, series.interval_seconds, series.offsets
    lo, hi = _window(series, context)
    est = np.empty(0, dtype=_I64) if params["count_estimated"] else memo.estimated
    irr = memo.irregular[~among(memo.irregular, est) & ~among(memo.irregular - 1, est)]
    prev_row, next_row = irr - 1, irr
    has_rows = np.flatnonzero(np.diff(off) > 0)
    tail = off[has_rows + 1] - 1
    if len(est):  # the rows either side of each run of estimates
        _, heads, tails = _runs(memo, est)
        c = _chan_of(series, heads)
        both = (heads > off[c]) & (tails + 1 < off[c + 1])
        prev_row = np.concatenate([prev_row, heads[both] - 1])
        next_row = np.concatenate([next_row, tails[both] + 1])
        in_run = np.isin(tail, tails)  # a channel that ends in estimates
        tail[in_run] = heads[np.searchsorted(tails, tail[in_run])] - 1
        has_rows, tail = has_rows[tail >= off[has_rows]], tail[tail >= off[has_rows]]
    space = end[next_row] - secs[next_row] - end[prev_row]
    prev_row, space = prev_row[space > 0], space[space > 0]
    chan = np.concatenate([_chan_of(series, prev_row), has_rows])
    prev = np.concatenate([end[prev_row], end[tail]])
    step = series.channels.step[chan]
    k_last = (hi[chan] - prev) // step  # never past the window; between rows, to the next
    k_last[: len(space)] = np.minimum(k_last[: len(space)], -(-space // step[: len(space)]))
    k_first = np.maximum(1, (lo[chan] - prev) // step + 1)
    ok = k_first <= k_last
    first, last = prev + k_first * step, prev + k_last * step
    order = np.flatnonzero(ok)[np.lexsort((first[ok], chan[ok]))]
    chan, first, last, step = chan[order], first[order], last[order], step[order]
    n = (last - first) // step + 1
    filled = n * 0  # rows inside a gap can only be estimates
    if len(est):
        filled = upto(series, chan, last) - upto(series, chan, first - 1)
    detail = [
        f"{k} missing interval{'s' if k > 1 else ''}, {a} to {b}"
        + (f", {e} estimated" if e else "")
        for k, a, b, e in _cols(n, _iso(first - step), _iso(last), filled)
    ]
    return Hits.of(chan, first, detail)


def duplicate(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """The same interval end twice in a channel, or an interval that starts before the one
    before it ends (a 30-minute row over two 15-minute rows)."""
    memo = _rows(series)
    end, secs = series.interval_end, series.interval_seconds
    irr = memo.irregular
    clash = irr[end[irr] - end[irr - 1] < secs[irr]]
    same_end = end[clash] == end[clash - 1]
    after_clash = np.append(False, np.diff(clash) == 1)
    at = clash[~(after_clash & same_end)]  # one finding per interval end
    at = at[memo.checked[at]]
    twin = (end[at] == end[at - 1]) & (secs[at] == secs[at - 1])
    value = series.value
    iso_start, iso_end, iso_prev = map(_iso, (end[at] - secs[at], end[at], end[at - 1]))
    detail = [
        f"duplicate: two rows end at {e} ({a} and {b} mWh)"
        if t
        else f"overlap: the {_minutes(s)} interval from {st} overlaps the one ending {p}"
        for t, e, a, b, s, st, p in _cols(
            twin, iso_end, value[at - 1], value[at], secs[at], iso_start, iso_prev
        )
    ]
    return Hits.of(_chan_of(series, at), end[at], detail)


def clock_drift(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """A clock read off by more than ``tolerance_s``: at the channel's last interval end at
    or before the read (the read time floored to the step when there is none)."""
    clocks = context.clocks
    tolerance_ms = int(params["tolerance_s"]) * 1000
    bad = np.flatnonzero(np.abs(clocks.drift_ms) > tolerance_ms)
    chan = np.searchsorted(clocks.offsets, bad, side="right") - 1
    read_at, drift = clocks.read_at[bad], clocks.drift_ms[bad]
    row = upto(series, chan, read_at) - 1
    step = series.channels.step[chan]
    some = row >= series.offsets[chan]
    ends = series.interval_end[np.clip(row, 0, max(series.rows - 1, 0))] if series.rows else 0
    at = np.where(some, ends, read_at // step * step)
    inside = (at > series.check_from[chan]) & (at <= series.check_to[chan])
    chan, read_at, drift, at = chan[inside], read_at[inside], drift[inside], at[inside]
    order = np.lexsort((-np.abs(drift), at, chan))  # the worst read of an interval speaks
    new = (np.diff(chan[order], prepend=-1) != 0) | (np.diff(at[order], prepend=-1) != 0)
    pick = order[new]
    detail = [
        f"clock off by {ms / 1000:+.3f} s at {t} (tolerance {tolerance_ms // 1000} s)"
        for ms, t in _cols(drift[pick], _iso(read_at[pick]))
    ]
    return Hits.of(chan[pick], at[pick], detail)


def clock_set(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """An interval shorter or longer than the channel's step, flagged clock-adjusted, or off
    the step's grid on the local clock: the meter's clock was set during it."""
    memo = _rows(series)
    end, secs, steps = series.interval_end, series.interval_seconds, series.channels.step
    adjusted = memo.flagged[(series.quality[memo.flagged] & int(Quality.CLOCK_ADJUSTED)) != 0]
    # the length on the local clock: a daily row is 23 or 25 hours on a DST day
    odd = memo.odd
    odd_chan = _chan_of(series, odd)
    odd_len = _per_zone(series, odd_chan, end[odd], local_epoch) - _per_zone(
        series, odd_chan, end[odd] - secs[odd], local_epoch
    )
    wrong_length = odd[odd_len != steps[odd_chan]]
    # A row `step` after the one before is on the grid when that one is (offsets change by
    # whole hours): only the heads of such runs are looked at, then spread over their runs.
    starts = series.offsets[:-1][np.diff(series.offsets) > 0]
    heads = np.union1d(np.union1d(starts, memo.irregular), odd)
    coarse = 3600 % steps != 0  # steps an hour's shift can move off their grid
    if coarse.any():
        heads = np.union1d(heads, np.flatnonzero(np.repeat(coarse, np.diff(series.offsets))))
    head_chan = _chan_of(series, heads)
    head_step = steps[head_chan]
    local = _per_zone(series, head_chan, end[heads], local_epoch)
    off_head = (_DAY % head_step == 0) & (local // head_step * head_step != local)
    off_grid = np.empty(0, dtype=_I64)
    if off_head.any():
        runs = np.diff(np.append(heads, series.rows))
        off_grid = np.flatnonzero(np.repeat(off_head, runs))
    at = np.union1d(np.union1d(adjusted, wrong_length), off_grid)
    at = at[memo.checked[at]]
    chan = _chan_of(series, at)
    detail = [
        f"{'short' if s < want else 'long'} interval: {_minutes(s)}, expected {_minutes(want)}"
        if length
        else f"interval end {e} is off the {_minutes(want)} grid"
        if on_grid
        else f"clock adjusted in the interval ending {e}"
        for length, on_grid, s, want, e in _cols(
            np.isin(at, wrong_length), np.isin(at, off_grid), secs[at], steps[chan], _iso(end[at])
        )
    ]
    return Hits.of(chan, end[at], detail)


def future_timestamp(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """An interval that ends after now (plus ``slack_s``)."""
    memo = _rows(series)
    limit = context.now + int(params["slack_s"])
    has_rows = np.flatnonzero(np.diff(series.offsets) > 0)
    late = has_rows[series.interval_end[series.offsets[has_rows + 1] - 1] > limit]
    first = upto(series, late, np.full(len(late), limit, dtype=_I64))
    counts = series.offsets[late + 1] - first
    at = np.repeat(first - offsets_of(counts)[:-1], counts) + np.arange(int(counts.sum()))
    at = at[memo.checked[at]]
    now = str(_iso(np.array([context.now]))[0])
    ends = series.interval_end[at]
    detail = [
        f"interval ends {e}, {_minutes(int(s))} after the check at {now}"
        for e, s in _cols(_iso(ends), ends - context.now)
    ]
    return Hits.of(_chan_of(series, at), ends, detail)


def estimation_too_long(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """A run of consecutive estimated rows longer than ``max_hours``: one finding per run,
    at the first interval that takes it past the limit."""
    memo = _rows(series)
    end = series.interval_end
    limit = int(params["max_hours"]) * 3600
    est = memo.estimated
    if not len(est):
        return Hits.empty()
    cont, heads, tails = _runs(memo, est)
    run = np.cumsum(~cont) - 1
    start = (end[heads] - series.interval_seconds[heads])[run]
    over = end[est] - start > limit
    first = over & ~np.append(False, over[:-1] & cont[1:])
    run_end = end[tails][run[first]]
    at = est[first]
    run_start, keep = start[first], memo.checked[at]
    at, run_start, run_end = at[keep], run_start[keep], run_end[keep]
    detail = [
        f"estimated for {(b - a) / 3600:g} h, {s} to {e} (limit {limit // 3600} h)"
        for a, b, s, e in _cols(run_start, run_end, _iso(run_start), _iso(run_end))
    ]
    return Hits.of(_chan_of(series, at), end[at], detail)


RULES: dict[str, Rule] = {
    "COMPLETENESS": per_channel(completeness),
    "GAP": gap,  # not per channel: estimates elsewhere change what a gap counts
    "DUPLICATE": per_channel(duplicate),
    "SIBLING_COMPLETENESS": sibling_completeness,
    "CLOCK_DRIFT": per_channel(clock_drift),
    "CLOCK_SET": per_channel(clock_set),
    "FUTURE_TIMESTAMP": per_channel(future_timestamp),
    "ESTIMATION_TOO_LONG": per_channel(estimation_too_long),
}

DEFAULTS: dict[str, dict[str, object]] = {
    "COMPLETENESS": {"severity": "warn", "count_estimated": False},
    "GAP": {"severity": "warn", "count_estimated": False},
    "DUPLICATE": {"severity": "fail"},
    "SIBLING_COMPLETENESS": {"severity": "warn", "count_estimated": False},
    "CLOCK_DRIFT": {"severity": "warn", "tolerance_s": 60},
    "CLOCK_SET": {"severity": "warn"},
    "FUTURE_TIMESTAMP": {"severity": "fail", "slack_s": 300},
    "ESTIMATION_TOO_LONG": {"severity": "warn", "max_hours": 72},
}
