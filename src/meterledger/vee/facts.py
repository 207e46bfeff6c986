"""Facts about a series that several rules need, found once per series and shared.

The rule modules (and ``Context.local_start``) ask here for the rows' UTC and local
starts, the rows findings may go on (:func:`checked`), the flagged, negative and irregular
rows, the channel of a few rows, row ranges and searches on a channel's grid
(:func:`upto`), and the runs of a channel's rows in one local day or hour. Each fact is
kept in a store (:func:`facts`) that lives only while the series' arrays do (weak
references), so nothing outlives a run. A fact that depends on ``Context.explained`` is
kept only with the explained rows it was found with, and found again when they differ.
"""

from __future__ import annotations

import weakref
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from meterledger.core.errors import InputError
from meterledger.core.obis import ObisCode
from meterledger.core.reading import Quality
from meterledger.vee.series import Series, local_starts

if TYPE_CHECKING:  # the context is only passed through: findings imports this module
    from meterledger.vee.findings import Context

__all__ = [
    "Facts",
    "among",
    "chan_of",
    "checked",
    "day_runs",
    "days",
    "facts",
    "flagged",
    "hour_runs",
    "irregular",
    "kinds",
    "local_start",
    "negatives",
    "obis_kind",
    "ranges",
    "run_of",
    "upto",
    "utc_starts",
]

_I64 = np.int64
_SHIFT = _I64(1) << _I64(34)  # channel-major keys: channel * 2**34 + seconds, hours, days
_HOUR, _DAY = 3_600, 86_400
_ESTIMATES = Quality.ESTIMATED | Quality.EST_LINEAR | Quality.EST_LIKE_DAY | Quality.EST_REGISTER
_UNUSABLE = int(_ESTIMATES | Quality.POWER_OUTAGE)
_OUTAGE = int(Quality.POWER_OUTAGE)

Facts = dict[object, Any]
_MEMO: dict[int, tuple[tuple[weakref.ref[np.ndarray], ...], tuple[object, ...], Facts]] = {}


def facts(series: Series, context: Context | None = None) -> Facts:
    """The store of facts about ``series`` (and its local times) that several rules need,
    found once and kept while the arrays they come from live (weak references), so nothing
    outlives the run. Nothing that depends on ``Context.explained`` is kept here."""
    ch = series.channels
    arrays = (
        series.interval_end, series.interval_seconds, series.value, series.quality,
        series.offsets, series.check_from, series.check_to, ch.step, ch.net,
        ch.allows_negative, ch.channel_id,
    )  # fmt: skip
    names = ch.timezone, ch.obis, ch.meter_id
    key = id(series.interval_end)
    held = _MEMO.get(key)
    if (
        held is not None
        and all(r() is a for r, a in zip(held[0], arrays, strict=True))
        and all(a is b for a, b in zip(held[1], names, strict=True))
    ):
        return held[2]

    gone = lambda _: _MEMO.pop(key, None)  # noqa: E731 - the first array's death forgets all
    refs = (weakref.ref(arrays[0], gone), *(weakref.ref(a) for a in arrays[1:]))
    _MEMO[key] = (refs, names, {})
    return _MEMO[key][2]


def utc_starts(series: Series) -> np.ndarray:
    """Every row's interval start, UTC epoch seconds (read-only)."""
    store = facts(series)
    if "starts" not in store:
        store["starts"] = series.interval_end - series.interval_seconds
        store["starts"].flags.writeable = False
    out: np.ndarray = store["starts"]
    return out


def irregular(series: Series) -> np.ndarray:
    """The rows (not a channel's first) that do not start where the row before ends."""
    store = facts(series)
    if "irregular" not in store:
        end, starts = series.interval_end, utc_starts(series)
        rows = np.flatnonzero(starts[1:] != end[:-1]) + 1
        store["irregular"] = rows[~among(rows, series.offsets)]
    out: np.ndarray = store["irregular"]
    return out


def local_start(series: Series) -> np.ndarray:
    """Every row's interval start as local wall-clock seconds (:func:`local_starts`)."""
    store = facts(series)
    if "local" not in store:
        starts, secs, back = utc_starts(series), series.interval_seconds, None
        if not len(secs) or secs.min() >= 0:  # a start goes back only where rows overlap
            irr = irregular(series)
            back = irr[starts[irr] < starts[irr - 1]]
        store["local"] = local_starts(series, starts, back)
    out: np.ndarray = store["local"]
    return out


def flagged(series: Series) -> np.ndarray:
    """The rows with any quality flag set (rules pick the flags they mean from these)."""
    store = facts(series)
    if "flagged" not in store:
        store["flagged"] = np.flatnonzero(series.quality != 0)
    out: np.ndarray = store["flagged"]
    return out


def negatives(series: Series, context: Context) -> np.ndarray:
    """The rows with a negative value (found once per series)."""
    store = facts(series, context)
    if "negatives" not in store:
        store["negatives"] = np.flatnonzero(series.value < 0)
    out: np.ndarray = store["negatives"]
    return out


def among(x: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """Whether each of ``x`` is one of ``sorted_values`` (ascending): a binary search."""
    if not len(sorted_values):
        return np.zeros(len(x), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_values, x), len(sorted_values) - 1)
    found: np.ndarray = sorted_values[at] == x
    return found


def chan_of(series: Series, rows: np.ndarray) -> np.ndarray:
    """The channel of each of ``rows``."""
    out: np.ndarray = np.searchsorted(series.offsets, rows, side="right") - 1
    return out


def ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The row indices ``lo[i]:hi[i]`` of every i, concatenated."""
    counts = np.maximum(hi - lo, 0)
    base = np.cumsum(counts) - counts
    out: np.ndarray = np.repeat(lo - base, counts) + np.arange(int(counts.sum()), dtype=_I64)
    return out


def upto(series: Series, chans: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Past the last row of channel ``chans[i]`` ending at or before ``t[i]`` (an index in
    ``offsets[c] .. offsets[c + 1]``): arithmetic on the channel's grid, else a search."""
    off, end, n = series.offsets, series.interval_end, series.rows
    lo, hi = off[chans], off[chans + 1]
    at: np.ndarray = lo.copy()
    if not n or not len(chans):
        return at
    step = np.maximum(series.channels.step[chans], 1)
    at += np.clip((t - end[np.minimum(lo, n - 1)]) // step + 1, 0, hi - lo)
    below = (at == lo) | (end[np.maximum(at - 1, 0)] <= t)
    bad = np.flatnonzero(~below | ((at < hi) & (end[np.minimum(at, n - 1)] <= t)))
    if len(bad):  # off the grid (gaps, odd lengths): a binary search of those channels
        a, b, want = lo[bad], hi[bad], t[bad]
        while (a < b).any():
            mid = (a + b) // 2
            below = end[np.minimum(mid, n - 1)] <= want
            a, b = np.where((a < b) & below, mid + 1, a), np.where((a < b) & ~below, mid, b)
        at[bad] = a
    return at


def checked(series: Series, context: Context | None = None) -> np.ndarray:
    """Boolean mask of the rows findings may go on (as :meth:`Series.checked`)."""
    store = facts(series)
    if "checked" not in store:
        off, chans = series.offsets, np.arange(len(series.channels), dtype=_I64)
        a = upto(series, chans, series.check_from)
        b = np.maximum(upto(series, chans, series.check_to), a)
        spans = np.stack([a - off[:-1], b - a, off[1:] - b], axis=1).ravel()
        store["checked"] = np.repeat(np.tile(np.array([False, True, False]), len(chans)), spans)
    out: np.ndarray = store["checked"]
    return out


def run_of(start: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The run (of those starting at ``start``) each of ``rows`` is in."""
    out: np.ndarray = np.searchsorted(start, rows, side="right") - 1
    return out


def day_runs(series: Series, context: Context) -> tuple[np.ndarray, np.ndarray]:
    """Runs of a channel's rows in one local day: the first row of each and its day number.
    Rows are sorted by time within a channel and local time only moves forward (the
    repeated autumn hour too): a day is a run."""
    store = facts(series, context)
    if "day runs" not in store:
        number = context.local_start // _DAY
        head = np.empty(series.rows, dtype=bool)
        head[:1] = True
        np.not_equal(number[1:], number[:-1], out=head[1:])
        head[series.offsets[:-1][series.offsets[:-1] < series.rows]] = True
        start = np.flatnonzero(head)
        store["day runs"] = start, number[start]
    out: tuple[np.ndarray, np.ndarray] = store["day runs"]
    return out


def hour_runs(series: Series, context: Context, chans: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """The runs of rows in one local hour of channels ``chans`` (sorted; None: all): the
    first row of each, its key (channel * 2**34 + hour number) and its length, and the
    keys ``(lo, hi]`` a search among them cannot find the same way among every channel's
    runs: where a channel's hours go back (overlapping rows), keys there are unsorted."""
    off = series.offsets
    if chans is None:
        picked, first = np.arange(series.rows, dtype=_I64), off[:-1]
        chans = np.arange(len(series.channels), dtype=_I64)
    else:
        picked = ranges(off[chans], off[chans + 1])
        first = np.cumsum(np.diff(off)[chans]) - np.diff(off)[chans]
    number = context.local_start[picked] // _HOUR
    head = np.ones(len(picked), dtype=bool)
    head[1:] = number[1:] != number[:-1]
    head[first[first < len(picked)]] = True
    at = np.flatnonzero(head)
    chan = chans[np.searchsorted(first, at, side="right") - 1]
    key = chan * _SHIFT + number[at]
    # a search for a key in (key[j], the highest key before j] can land on either side
    top = np.maximum.accumulate(key) if len(key) else key
    back = np.flatnonzero(key[1:] < top[:-1]) + 1
    return picked[at], key, np.diff(np.append(at, len(picked))), key[back], top[back - 1]


@lru_cache(maxsize=1024)
def obis_kind(obis: str) -> tuple[bool, bool, str]:
    """(active import?, active export?, the kilo-unit its milli-units are shown in)."""
    try:
        code = ObisCode.parse(obis)
    except InputError:
        return False, False, "kWh"
    c = code.c % 20 if code.c < 80 else code.c  # C: total 1-8, phases L1-L3 + 20, 40, 60
    unit = "kvarh" if code.a == 1 and 3 <= c <= 8 else "m3" if code.a in (7, 8, 9) else "kWh"
    return code.a == 1 and c == 1, code.a == 1 and c == 2, unit  # export: received


def kinds(series: Series, context: Context | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per channel: (is active import, is active export), from the OBIS C group."""
    store = facts(series)
    if "kinds" not in store:
        found = np.array([obis_kind(o)[:2] for o in series.channels.obis], dtype=bool).reshape(
            -1, 2
        )
        store["kinds"] = found[:, 0].copy(), found[:, 1].copy()
    out: tuple[np.ndarray, np.ndarray] = store["kinds"]
    return out


def days(series: Series, context: Context) -> tuple[np.ndarray, ...]:
    """Per local day of a channel, shared by the daily rules: its channel, day number,
    first and last row, total, highest and lowest value, and whether it is complete
    (midnight to midnight, no gap), has an outage, has estimates, and counts as usage."""
    store = facts(series, context)
    if "days" not in store:
        start, day = day_runs(series, context)
        last = np.append(start[1:], series.rows) - 1
        local, secs, end, value = (
            context.local_start, series.interval_seconds, series.interval_end, series.value
        )  # fmt: skip
        complete = (local[start] % _DAY == 0) & (local[last] + secs[last] == (day + 1) * _DAY)
        complete &= np.add.reduceat(secs, start) == end[last] - end[start] + secs[start]
        unusable = flagged(series)
        unusable = unusable[(series.quality[unusable] & _UNUSABLE) != 0]
        run, flags = run_of(start, unusable), series.quality[unusable]
        outage = np.bincount(run[(flags & _OUTAGE) != 0], minlength=len(start)) > 0
        estimated = np.bincount(run[(flags & ~_OUTAGE) != 0], minlength=len(start)) > 0
        chan = np.repeat(
            np.arange(len(series.channels)), np.diff(np.searchsorted(start, series.offsets))
        )
        _, export = kinds(series, context)
        usage = ~(export | series.channels.allows_negative)[chan]  # signed: not usage
        total = np.add.reduceat(value, start)
        high, low = np.maximum.reduceat(value, start), np.minimum.reduceat(value, start)
        store["days"] = (
            chan,
            day,
            start,
            last,
            total,
            high,
            low,
            complete,
            outage,
            estimated,
            usage,
        )
        store["unusable"] = unusable  # rows not learnt from, explained ones aside
    out: tuple[np.ndarray, ...] = store["days"]
    return out
