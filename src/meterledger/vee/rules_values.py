"""Value rules: register rollover and reset, negative use and reverse flow, runs of zero or
identical values, and the sum of the intervals against the register reads.

``ROLLOVER`` runs before every other rule and marks the rows whose odd value a rollover or
reset explains (``Context.explained``), history rows included, so that no later rule
(negative usage, spike, daily usage, outliers) reports them again or learns from them.

Speed: the rules look at candidate rows (negative, zero or repeated values, the rows of
export channels, the rows between register reads), found with one vectorised pass each,
and share what several of them need through :func:`facts`: per series, the checked rows,
the channel kinds and the runs of rows in one local day or hour, kept while the series'
arrays live. Findings only go on checked rows.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from meterledger.core.errors import InputError
from meterledger.core.obis import ObisCode
from meterledger.core.reading import Quality
from meterledger.vee.findings import Context, Hits, Rule
from meterledger.vee.series import Series, local_epoch

__all__ = [
    "DEFAULTS",
    "RULES",
    "ReadPairs",
    "chan_of",
    "facts",
    "flat_line",
    "local_of",
    "local_text",
    "negative_usage",
    "power_of_ten",
    "quantities",
    "ranges",
    "read_pairs",
    "reverse_flow",
    "rollover",
    "runs",
    "sum_check",
    "zero_consumption",
]

_I64 = np.int64
_POW10 = 10 ** np.arange(19, dtype=_I64)  # 10**0 .. 10**18, the int64 range
_OUTAGE = int(Quality.POWER_OUTAGE)
_REACTIVE = frozenset({3, 4, 5, 6, 7, 8})  # OBIS C (mod 20): reactive energy quadrants
_IMPORT = frozenset({1, 21, 41, 61})  # active energy import, total and per phase
_EXPORT = frozenset({2, 22, 42, 62})  # active energy export (received from the customer)
NORMAL, ROLLED, RESET = 0, 1, 2  # ReadPairs.kind

Facts = dict[object, Any]
_MEMO: dict[int, tuple[tuple[weakref.ref[np.ndarray], ...], Facts]] = {}


def facts(series: Series, context: Context) -> Facts:
    """A store for facts about ``series`` and its local times that several rules need,
    found once and kept while the arrays it was found from live (weak references), so
    nothing outlives the run. Keys name the fact and its parameters; a fact that depends
    on ``Context.explained`` is not kept here (those rows are few and handled apart)."""
    ch = series.channels
    arrays = (
        series.interval_end, series.interval_seconds, series.value, series.quality,
        series.offsets, series.check_from, series.check_to, ch.step, ch.net,
        ch.allows_negative, ch.channel_id, context.local_start,
    )  # fmt: skip
    key = id(series.interval_end)
    held = _MEMO.get(key)
    if held is not None and all(r() is a for r, a in zip(held[0], arrays, strict=True)):
        return held[1]
    store: Facts = {}

    def forget(_: weakref.ref[np.ndarray]) -> None:
        _MEMO.pop(key, None)

    _MEMO[key] = ((weakref.ref(arrays[0], forget), *(weakref.ref(a) for a in arrays[1:])), store)
    return store


def _fact(store: Facts, key: object, make: Callable[[], Any]) -> Any:
    if key not in store:
        store[key] = make()
    return store[key]


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
    """Past the last row of channel ``chans[i]`` ending at or before ``t[i]``: an index
    from ``offsets[c]`` to ``offsets[c + 1]``. On the channel's grid it is arithmetic; rows
    off the grid (gaps, odd lengths) are searched for."""
    off, end, n = series.offsets, series.interval_end, series.rows
    lo, hi = off[chans], off[chans + 1]
    at: np.ndarray = lo.copy()
    if not n or not len(chans):
        return at
    first = end[np.minimum(lo, n - 1)]
    step = np.maximum(series.channels.step[chans], 1)
    at += np.clip((t - first) // step + 1, 0, hi - lo)
    ok = (at == lo) | (end[np.maximum(at - 1, 0)] <= t)
    ok &= (at == hi) | (end[np.minimum(at, n - 1)] > t)
    bad = np.flatnonzero(~ok)
    if len(bad):
        wanted, which = np.unique(chans[bad], return_inverse=True)
        rows = ranges(off[wanted], off[wanted + 1])
        counts = off[wanted + 1] - off[wanted]
        shift = _I64(1) << _I64(34)  # a channel-major key; epoch seconds stay below 2**34
        key = np.repeat(np.arange(len(wanted), dtype=_I64), counts) * shift + end[rows]
        pos = np.searchsorted(key, which * shift + t[bad], side="right")
        at[bad] = lo[bad] + pos - (np.cumsum(counts) - counts)[which]
    return at


def checked(series: Series, context: Context) -> np.ndarray:
    """Boolean mask of the rows findings may go on (as :meth:`Series.checked`)."""

    def make() -> np.ndarray:
        off = series.offsets
        chans = np.arange(len(series.channels), dtype=_I64)
        a = upto(series, chans, series.check_from)
        b = np.maximum(upto(series, chans, series.check_to), a)
        spans = np.stack([a - off[:-1], b - a, off[1:] - b], axis=1).ravel()
        return np.repeat(np.tile(np.array([False, True, False]), len(chans)), spans)

    out: np.ndarray = _fact(facts(series, context), "checked", make)
    return out


def kinds(series: Series, context: Context) -> tuple[np.ndarray, np.ndarray]:
    """Per channel: (is active import, is active export), from the OBIS C group."""

    def make() -> tuple[np.ndarray, np.ndarray]:
        found = [_kind(o) for o in series.channels.obis]
        both = np.array(found, dtype=bool).reshape(-1, 2)
        return both[:, 0].copy(), both[:, 1].copy()

    out: tuple[np.ndarray, np.ndarray] = _fact(facts(series, context), "kinds", make)
    return out


@lru_cache(maxsize=1024)
def _kind(obis: str) -> tuple[bool, bool]:
    try:
        code = ObisCode.parse(obis)
    except InputError:
        return False, False
    return code.a == 1 and code.c in _IMPORT, code.a == 1 and code.c in _EXPORT


def runs(series: Series, context: Context, unit: int) -> tuple[np.ndarray, np.ndarray]:
    """Runs of rows of one channel in one local day (``unit`` 86400) or hour (3600): the
    first row of each and its local day or hour number. Rows are sorted by time within a
    channel and local time only moves forward (the repeated autumn hour too), so a day or
    an hour is one run."""

    def make() -> tuple[np.ndarray, np.ndarray]:
        if unit == 86_400:  # days from the hour runs: 24 local hours a local day
            start, hour = runs(series, context, 3_600)
            day = hour // 24
            head = np.ones(len(start), dtype=bool)
            head[1:] = day[1:] != day[:-1]
            at = np.minimum(np.searchsorted(series.offsets, start), len(series.offsets) - 1)
            head |= series.offsets[at] == start  # a channel's first row
            return start[head], day[head]
        number = context.local_start // unit
        head = np.ones(series.rows, dtype=bool)
        head[1:] = number[1:] != number[:-1]
        off = series.offsets[:-1]
        head[off[off < series.rows]] = True
        start = np.flatnonzero(head)
        return start, number[start]

    out: tuple[np.ndarray, np.ndarray] = _fact(facts(series, context), ("runs", unit), make)
    return out


@lru_cache(maxsize=1024)
def _unit(obis: str) -> str:
    """The kilo-unit a channel's milli-units are shown in (kWh, kvarh or m3)."""
    try:
        code = ObisCode.parse(obis)
    except InputError:
        return "kWh"
    if code.a == 1 and code.c < 80 and code.c % 20 in _REACTIVE:
        return "kvarh"
    return "m3" if code.a in (7, 8, 9) else "kWh"  # gas and water: litres are the base


def quantities(series: Series, chans: np.ndarray, values: np.ndarray) -> list[str]:
    """Milli-units of channels ``chans`` as kilo-units with 3 decimals (``12400000`` mWh →
    ``12.400 kWh``); the base unit (Wh) is rounded half away from zero."""
    whole = np.sign(values) * np.floor(np.abs(np.asarray(values, dtype=np.float64)) / 1e3 + 0.5)
    obis = series.channels.obis
    return [
        f"{'-' if wh < 0 else ''}{abs(wh) // 1000}.{abs(wh) % 1000:03d} {_unit(obis[c])}"
        for wh, c in zip(whole.astype(_I64).tolist(), chans.tolist(), strict=True)
    ]


def local_text(local_seconds: np.ndarray) -> list[str]:
    """Local wall-clock seconds (:func:`~meterledger.vee.series.local_epoch`) as
    ``2026-03-08 14:15``."""
    stamps = np.datetime_as_string(np.asarray(local_seconds, dtype="datetime64[s]"), unit="m")
    return [s.replace("T", " ") for s in stamps.tolist()]


def local_of(series: Series, chans: np.ndarray, instants: np.ndarray) -> np.ndarray:
    """UTC instants as local wall-clock seconds in the zones of channels ``chans``."""
    out = np.asarray(instants, dtype=_I64).copy()
    zones = np.asarray(series.channels.timezone, dtype=object)[chans]
    for tz in sorted(set(zones.tolist())):  # a loop per zone
        at = zones == tz
        out[at] = local_epoch(out[at], tz)
    return out


def power_of_ten(ratio: np.ndarray, tolerance: float, max_power: int = 6) -> np.ndarray:
    """The power k (1 ≤ |k| ≤ ``max_power``) with ``ratio`` within ±``tolerance`` of 10**k,
    else 0 (also for ratios that are not positive)."""
    ratio = np.asarray(ratio, dtype=np.float64)
    positive = ratio > 0
    k = np.zeros(len(ratio), dtype=_I64)
    k[positive] = np.rint(np.log10(ratio[positive])).astype(_I64)
    near = positive & (np.abs(ratio / np.power(10.0, k) - 1.0) <= tolerance)
    k[~near | (np.abs(k) > max_power)] = 0
    return k


def _positive_median(series: Series, chans: np.ndarray) -> np.ndarray:
    """Per channel of ``chans``, the median of its positive values (0.0: none), all rows:
    the size of an ordinary interval."""
    wanted, which = np.unique(chans, return_inverse=True)
    rows = ranges(series.offsets[wanted], series.offsets[wanted + 1])
    local = np.repeat(np.arange(len(wanted), dtype=_I64), np.diff(series.offsets)[wanted])
    v = series.value[rows]
    keep = v > 0
    local, v = local[keep], np.minimum(v[keep], (1 << 40) - 1)  # 1.1 TWh: no interval's use
    v = np.sort(local << 40 | v) & ((1 << 40) - 1)  # by channel, then value
    counts = np.bincount(local, minlength=len(wanted))
    first = np.cumsum(counts) - counts
    out = np.zeros(len(wanted))
    has = counts > 0
    out[has] = (v[first[has] + (counts[has] - 1) // 2] + v[first[has] + counts[has] // 2]) / 2
    median: np.ndarray = out[which]
    return median


def _modulus(magnitude: np.ndarray, min_power: int, above: bool) -> np.ndarray:
    """The smallest power of ten above (else: at least) each magnitude, at least
    ``10**min_power``."""
    k = np.searchsorted(_POW10, magnitude, side="right" if above else "left")
    return _POW10[np.clip(k, min_power, len(_POW10) - 1)]


@dataclass(frozen=True, slots=True)
class ReadPairs:
    """Consecutive register reads of a channel and the intervals between them.

    ``delta`` is the register's advance, corrected for a rollover (``kind`` ROLLED,
    ``modulus`` added); for a RESET it says nothing about usage. ``intervals`` is the sum of
    the intervals inside ``[first_at, second_at]`` plus the prorated parts of the intervals
    the reads fall in; ``covered`` says those intervals have no gap and reach both reads.
    ``last_row`` is the channel's last row ending at or before the second read (-1: none);
    ``odd`` says a row in between is explained by an interval-level rollover or reset."""

    channel: np.ndarray
    first_at: np.ndarray
    second_at: np.ndarray
    first_value: np.ndarray
    second_value: np.ndarray
    delta: np.ndarray
    kind: np.ndarray
    modulus: np.ndarray
    intervals: np.ndarray
    covered: np.ndarray
    last_row: np.ndarray
    odd: np.ndarray


def _range_sums(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``x[lo[i]:hi[i]].sum()`` for ranges that are sorted and do not overlap."""
    n = len(x)
    if not len(lo) or not n:
        return np.zeros(len(lo), dtype=x.dtype)
    bounds = np.minimum(np.stack([lo, hi], axis=1).ravel(), n - 1)
    sums = np.add.reduceat(x, bounds)[::2]
    sums += np.where((hi == n) & (lo < n - 1), x[-1], 0)  # reduceat stops before the end
    out: np.ndarray = np.where(hi > lo, sums, 0)
    return out


def read_pairs(series: Series, context: Context, min_power: int, plausible: float) -> ReadPairs:
    """Every pair of consecutive register reads of a channel (see :class:`ReadPairs`); the
    part that does not depend on ``Context.explained`` is found once per series."""
    reg = context.registers
    key = ("pairs", min_power, plausible, *(id(a) for a in (reg.offsets, reg.read_at, reg.value)))
    store = facts(series, context)
    held = store.get(key)
    if held is None or any(
        r() is not a for r, a in zip(held[0], (reg.offsets, reg.read_at, reg.value), strict=True)
    ):
        refs = tuple(weakref.ref(a) for a in (reg.offsets, reg.read_at, reg.value))
        held = store[key] = (refs, *_read_pairs(series, context, min_power, plausible))
    _, pairs, lo, hi = held
    explained = np.flatnonzero(context.explained)
    odd = np.searchsorted(explained, hi + 1) > np.searchsorted(explained, lo)
    out: ReadPairs = replace(pairs, odd=odd)
    return out


def _read_pairs(
    series: Series, context: Context, min_power: int, plausible: float
) -> tuple[ReadPairs, np.ndarray, np.ndarray]:
    """The pairs, and per pair the rows around it (``lo``, ``hi``: see :func:`upto`).

    A read below the one before is a rollover when adding the register's modulus (the
    smallest power of ten above the earlier read, at least ``10**min_power``) leaves an
    advance of at most ``plausible`` times the usage expected over the span (the channel's
    median interval times the intervals in it) or, without interval data, when the earlier
    read was in the register's top tenth. Otherwise it is a reset."""
    reg = context.registers
    rc_reads = np.repeat(np.arange(len(reg.offsets) - 1, dtype=_I64), np.diff(reg.offsets))
    second = np.flatnonzero(rc_reads[1:] == rc_reads[:-1]) + 1
    chan = rc_reads[second]
    a_at, b_at = reg.read_at[second - 1], reg.read_at[second]
    a_val, b_val = reg.value[second - 1], reg.value[second]
    pairs, n = len(chan), series.rows
    intervals = np.zeros(pairs, dtype=_I64)
    covered = np.zeros(pairs, dtype=bool)
    last_row = np.full(pairs, -1, dtype=_I64)
    lo = hi = np.zeros(pairs, dtype=_I64)
    if n and pairs:
        end, secs, value = series.interval_end, series.interval_seconds, series.value
        c_lo, c_hi = series.offsets[chan], series.offsets[chan + 1]
        lo = upto(series, chan, a_at)  # the first row ending after the first read
        hi = upto(series, chan, b_at)  # past the last row ending at or before the second
        last_row = np.where(hi > c_lo, hi - 1, -1)
        lo_c, hi_c, prev = np.minimum(lo, n - 1), np.minimum(hi, n - 1), np.maximum(hi - 1, 0)
        # the rows the reads fall inside (they start before the read and end after it)
        lead_in = (lo < c_hi) & (end[lo_c] - secs[lo_c] < a_at)
        tail_in = (hi < c_hi) & (end[hi_c] - secs[hi_c] < b_at)
        first_row = lo + lead_in
        some = hi > first_row
        f = np.minimum(first_row, n - 1)
        first_start, last_end = end[f] - secs[f], end[prev]
        covered = some & (_range_sums(secs, first_row, hi) == last_end - first_start)
        covered &= np.where(lead_in, end[lo_c] == first_start, first_start == a_at)
        covered &= np.where(tail_in, end[hi_c] - secs[hi_c] == last_end, last_end == b_at)
        edges = np.where(lead_in, value[lo_c] * ((end[lo_c] - a_at) / secs[lo_c]), 0.0)
        edges += np.where(
            tail_in, value[hi_c] * ((b_at - end[hi_c] + secs[hi_c]) / secs[hi_c]), 0.0
        )
        rounded = np.sign(edges) * np.floor(np.abs(edges) + 0.5)  # half away from zero
        intervals = _range_sums(value, first_row, hi) + rounded.astype(_I64)

    raw = b_val - a_val
    kind = np.zeros(pairs, dtype=_I64)
    modulus = np.zeros(pairs, dtype=_I64)
    drop = np.flatnonzero(raw < 0)
    if len(drop):
        mod = _modulus(a_val[drop], min_power, above=True)  # the read was below it
        advance = raw[drop] + mod
        median = _positive_median(series, chan[drop]) if n else np.zeros(len(drop))
        span = (b_at[drop] - a_at[drop]) / series.channels.step[chan[drop]]
        expected = median * np.maximum(span, 1.0)
        roll = np.where(median > 0, advance <= plausible * expected, advance * 10 < mod)
        kind[drop] = np.where(roll, ROLLED, RESET)
        modulus[drop[roll]] = mod[roll]
    odd = np.zeros(pairs, dtype=bool)  # read_pairs fills it in
    found = ReadPairs(
        chan, a_at, b_at, a_val, b_val, raw + modulus, kind, modulus, intervals, covered,
        last_row, odd,
    )  # fmt: skip
    return found, lo, hi


def _pair_end(series: Series, pairs: ReadPairs, which: np.ndarray) -> np.ndarray:
    """Where a finding about pairs ``which`` goes: the last interval end at or before the
    second read, or the read itself when the channel has no row by then."""
    last = pairs.last_row[which]
    at: np.ndarray = pairs.second_at[which]
    if series.rows:
        at = np.where(last >= 0, series.interval_end[np.maximum(last, 0)], at)
    return at


def rollover(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """Register rollover or reset: a large negative delta, or a register read below the last."""
    value = series.value
    min_power, plausible = int(params["min_power"]), float(params["plausible_factor"])
    neg = np.flatnonzero(value < 0)
    c = chan_of(series, neg)
    neg, c = neg[~series.channels.allows_negative[c]], c[~series.channels.allows_negative[c]]
    median = _positive_median(series, c)
    size = -value[neg]
    large = (size >= int(params["min_drop_mwh"])) & (size >= float(params["drop_factor"]) * median)
    neg, c, median, size = neg[large], c[large], median[large], size[large]
    modulus = _modulus(size, min_power, above=False)  # -10**k: a wrap with no use
    roll = (median > 0) & (value[neg] + modulus <= plausible * median)
    context.explained[neg] = True  # history rows too: later rules must not learn from them
    shown = checked(series, context)[neg]
    neg, c, roll, modulus = neg[shown], c[shown], roll[shown], modulus[shown]
    delta, fixed, top = (
        quantities(series, c, v) for v in (value[neg], value[neg] + modulus, modulus)
    )
    detail = [
        f"rollover at {m}: delta {d}, corrected delta {f}"
        if r
        else f"reset: delta {d} (the register went back; this interval's usage is unknown)"
        for r, d, f, m in zip(roll.tolist(), delta, fixed, top, strict=True)
    ]
    pairs = read_pairs(series, context, min_power, plausible)
    fell = np.flatnonzero((pairs.kind != NORMAL) & ~pairs.odd)  # odd ones were found above
    pc, b_at = pairs.channel[fell], pairs.second_at[fell]
    fell = fell[(b_at > series.check_from[pc]) & (b_at <= series.check_to[pc])]
    pc = pairs.channel[fell]
    was, now, mod, adv = (
        quantities(series, pc, v)
        for v in (
            pairs.first_value[fell],
            pairs.second_value[fell],
            pairs.modulus[fell],
            pairs.delta[fell],
        )
    )
    when = local_text(local_of(series, pc, pairs.second_at[fell]))
    for k, w, n, t, m, a in zip(pairs.kind[fell].tolist(), was, now, when, mod, adv, strict=True):
        how = f"rollover at {m}, corrected delta {a}" if k == ROLLED else "reset"
        detail.append(f"register read fell from {w} to {n} at {t} local: {how}")
    ends = np.concatenate([series.interval_end[neg], _pair_end(series, pairs, fell)])
    return Hits.of(np.concatenate([c, pc]), ends, detail)


def negative_usage(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """Negative value on a channel that cannot run backwards (rollovers and resets aside)."""
    rows = np.flatnonzero(series.value < 0)
    rows = rows[~series.channels.allows_negative[chan_of(series, rows)] & ~context.explained[rows]]
    rows = rows[checked(series, context)[rows]]
    c = chan_of(series, rows)
    amount = quantities(series, c, series.value[rows])
    detail = [f"negative usage {q} on a channel that cannot run backwards" for q in amount]
    return Hits.of(c, series.interval_end[rows], detail)


def reverse_flow(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """Energy exported (received from the customer) by a meter that is not a net meter."""
    _, export = kinds(series, context)
    chans = np.flatnonzero(export & ~series.channels.net)
    rows = ranges(series.offsets[chans], series.offsets[chans + 1])
    rows = rows[(series.value[rows] > int(params["min_mwh"])) & checked(series, context)[rows]]
    c = chan_of(series, rows)
    amount = quantities(series, c, series.value[rows])
    detail = [f"reverse flow: {q} exported by a meter that is not a net meter" for q in amount]
    return Hits.of(c, series.interval_end[rows], detail)


def _long_runs(
    series: Series,
    context: Context,
    member: np.ndarray,
    length: int,
    excused: np.ndarray,
    key: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Runs of at least ``length`` consecutive rows of a channel from the sorted rows
    ``member`` (with the same ``key``, when given), none of them in ``excused`` (sorted
    rows). Each is found at the row where it reaches ``length`` (so a finding stays put
    while the run grows, and is reported once): ``(row, its channel, rows in the run,
    "from .. to .. local")``."""
    c = chan_of(series, member)
    head = np.ones(len(member), dtype=bool)
    head[1:] = (np.diff(member) != 1) | (np.diff(c) != 0)
    if key is not None:
        head[1:] |= key[1:] != key[:-1]
    first = np.flatnonzero(head)
    last = np.append(first[1:], len(member))[: len(first)] - 1
    lo, hi = member[first], member[last]
    ok = hi - lo + 1 >= length
    ok &= np.searchsorted(excused, hi, side="right") == np.searchsorted(excused, lo)
    lo, hi = lo[ok], hi[ok]
    at = lo + length - 1
    shown = checked(series, context)[at]
    lo, hi, at = lo[shown], hi[shown], at[shown]
    start = context.local_start
    since = local_text(start[lo])
    until = local_text(start[hi] + series.interval_seconds[hi])
    span = [f"from {a} to {b} local" for a, b in zip(since, until, strict=True)]
    return at, chan_of(series, at), hi - lo + 1, span


def zero_consumption(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """A long run of zero intervals on an import channel with no power outage reported."""
    imports, _ = kinds(series, context)
    zero = np.flatnonzero(series.value == 0)
    zero = zero[imports[chan_of(series, zero)]]
    outage = np.flatnonzero((series.quality & _OUTAGE) != 0)
    rows, c, count, span = _long_runs(series, context, zero, int(params["min_intervals"]), outage)
    hours = count * series.interval_seconds[rows] / 3600
    detail = [
        f"zero usage for {n} intervals ({h:.1f} h) {t}, no power outage reported"
        for n, h, t in zip(count.tolist(), hours.tolist(), span, strict=True)
    ]
    return Hits.of(c, series.interval_end[rows], detail)


def flat_line(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """The same non-zero value for many consecutive intervals (a stuck register or feed)."""
    value = series.value
    repeat = np.flatnonzero((value[1:] == value[:-1]) & (value[1:] != 0)) + 1
    repeat = repeat[chan_of(series, repeat) == chan_of(series, repeat - 1)]
    member = np.union1d(repeat, repeat - 1)  # a repeated value and the one it repeats
    none = np.empty(0, dtype=_I64)
    length = int(params["count"])
    rows, c, count, span = _long_runs(series, context, member, length, none, value[member])
    amount = quantities(series, c, value[rows])
    detail = [
        f"flat line: {n} consecutive intervals of {q} {t}"
        for n, q, t in zip(count.tolist(), amount, span, strict=True)
    ]
    return Hits.of(c, series.interval_end[rows], detail)


def sum_check(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """The intervals between two register reads against the register's advance."""
    pairs = read_pairs(series, context, int(params["min_power"]), float(params["plausible_factor"]))
    delta, got = pairs.delta, pairs.intervals
    pct = float(params["tolerance_pct"])
    allowed = np.maximum(pct / 100.0 * np.abs(delta), int(params["floor_mwh"]))
    ratio = np.divide(got, delta, out=np.zeros(len(delta)), where=delta > 0)
    scaled = power_of_ten(ratio, float(params["power_of_ten_tolerance"])) != 0
    bad = pairs.covered & ~pairs.odd & (pairs.kind != RESET) & ~scaled & (pairs.last_row >= 0)
    which = np.flatnonzero(bad & (np.abs(got - delta) > allowed))
    which = which[checked(series, context)[pairs.last_row[which]]]
    c = pairs.channel[which]
    off = got[which] - delta[which]
    share = 100.0 * off / np.maximum(np.abs(delta[which]), 1)
    s, d, o, t = (quantities(series, c, v) for v in (got[which], delta[which], off, allowed[which]))
    a_txt = local_text(local_of(series, c, pairs.first_at[which]))
    b_txt = local_text(local_of(series, c, pairs.second_at[which]))
    roll = (pairs.kind[which] == ROLLED).tolist()
    detail = [
        f"intervals sum to {si} between register reads at {a} and {b} local; the register"
        f" advanced {di}{' (after a rollover)' if r else ''}: off by {oi} ({p:+.1f}%,"
        f" tolerance {pct:g}% or {ti})"
        for si, a, b, di, r, oi, p, ti in zip(
            s, a_txt, b_txt, d, roll, o, share.tolist(), t, strict=True
        )
    ]
    return Hits.of(c, _pair_end(series, pairs, which), detail)


RULES: dict[str, Rule] = {
    "ROLLOVER": rollover,
    "NEGATIVE_USAGE": negative_usage,
    "REVERSE_FLOW": reverse_flow,
    "ZERO_CONSUMPTION": zero_consumption,
    "FLAT_LINE": flat_line,
    "SUM_CHECK": sum_check,
}

DEFAULTS: dict[str, dict[str, object]] = {
    "ROLLOVER": {
        "severity": "fail",
        "min_power": 6,  # the smallest register modulus considered: 10**6 mWh = 1 kWh
        "plausible_factor": 10.0,  # a corrected delta is at most this × the median interval
        "min_drop_mwh": 1_000_000,  # a negative delta is a rollover or reset from 1 kWh ...
        "drop_factor": 20.0,  # ... and from 20 × the channel's median interval
    },
    "NEGATIVE_USAGE": {"severity": "fail"},
    "REVERSE_FLOW": {"severity": "warn", "min_mwh": 0},
    "ZERO_CONSUMPTION": {"severity": "warn", "min_intervals": 96},  # a day of quarter-hours
    "FLAT_LINE": {"severity": "warn", "count": 16},
    "SUM_CHECK": {
        "severity": "warn",
        "tolerance_pct": 2.0,
        "floor_mwh": 500_000,
        "min_power": 6,
        "plausible_factor": 10.0,
        "power_of_ten_tolerance": 0.15,  # pairs this near a power of ten: MULTIPLIER_MISMATCH
    },
}
