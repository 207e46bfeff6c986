"""Value rules: register rollover and reset, negative use and reverse flow, runs of zero or
identical values, and the sum of the intervals against the register reads.

``ROLLOVER`` runs first and marks the rows whose odd value a rollover or reset explains
(``Context.explained``), history rows too, so that no later rule reports or learns from them.
Rules look at candidate rows only (negative, zero or repeated values, export channels, the
rows between register reads); what several rules need is found once per series and shared
(:mod:`meterledger.vee.facts`). Findings go on checked rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from meterledger.core.reading import Quality
from meterledger.vee.facts import (
    chan_of,
    checked,
    facts,
    flagged,
    kinds,
    negatives,
    obis_kind,
    ranges,
    upto,
    utc_starts,
)
from meterledger.vee.findings import Context, Hits, Rule, per_channel
from meterledger.vee.series import Series, local_epoch

__all__ = [
    "DEFAULTS",
    "RULES",
    "flat_line",
    "negative_usage",
    "reverse_flow",
    "rollover",
    "sum_check",
    "zero_consumption",
]

_I64 = np.int64
_POW10 = 10 ** np.arange(19, dtype=_I64)  # 10**0 .. 10**18, the int64 range
_OUTAGE = int(Quality.POWER_OUTAGE)
NORMAL, ROLLED, RESET = 0, 1, 2  # ReadPairs.kind


def quantities(series: Series, chans: np.ndarray, values: np.ndarray) -> list[str]:
    """Milli-units of channels ``chans`` as kilo-units with 3 decimals (``12400000`` mWh →
    ``12.400 kWh``); the base unit (Wh) is rounded half away from zero."""
    whole = np.sign(values) * np.floor(np.abs(np.asarray(values, dtype=np.float64)) / 1e3 + 0.5)
    obis = series.channels.obis
    return [
        f"{'-' if wh < 0 else ''}{abs(wh) // 1000}.{abs(wh) % 1000:03d} {obis_kind(obis[c])[2]}"
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
        out[zones == tz] = local_epoch(out[zones == tz], tz)
    return out


def power_of_ten(ratio: np.ndarray, tolerance: float, max_power: int = 6) -> np.ndarray:
    """The power k (1 ≤ |k| ≤ ``max_power``) with ``ratio`` within ±``tolerance`` of 10**k,
    else 0 (also for ratios that are not positive)."""
    ratio = np.asarray(ratio, dtype=np.float64)
    k = np.zeros(len(ratio), dtype=_I64)
    k[ratio > 0] = np.rint(np.log10(ratio[ratio > 0])).astype(_I64)
    near = (ratio > 0) & (np.abs(ratio / np.power(10.0, k) - 1.0) <= tolerance)
    k[~near | (np.abs(k) > max_power)] = 0
    return k


def medians(keys: np.ndarray, values: np.ndarray, count: int) -> np.ndarray:
    """Per key ``0 .. count - 1``, the median of its ``values`` (0 ≤ value < 2**40; 0.0 for a
    key without values): one sort of ``key << 40 | value``."""
    ordered = np.sort(keys << 40 | values) & ((1 << 40) - 1)
    per = np.bincount(keys, minlength=count)
    first = np.cumsum(per) - per
    out = np.zeros(count)
    has = per > 0
    out[has] = (ordered[first[has] + (per[has] - 1) // 2] + ordered[first[has] + per[has] // 2]) / 2
    return out


def _positive_median(series: Series, chans: np.ndarray) -> np.ndarray:
    """Per channel of ``chans``, the median of its positive values (0.0: none), all rows:
    the size of an ordinary interval."""
    wanted, which = np.unique(chans, return_inverse=True)
    local = np.repeat(np.arange(len(wanted), dtype=_I64), np.diff(series.offsets)[wanted])
    v = series.value[ranges(series.offsets[wanted], series.offsets[wanted + 1])]
    keep = v > 0  # and below 1.1 TWh: no interval's use
    found: np.ndarray = medians(local[keep], np.minimum(v[keep], (1 << 40) - 1), len(wanted))
    return found[which]


def _modulus(magnitude: np.ndarray, min_power: int, above: bool) -> np.ndarray:
    """The smallest power of ten above (else: at least) each magnitude, ≥ 10**min_power."""
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
    ``odd`` says a row in between is explained by an interval-level rollover or reset;
    ``lo`` and ``hi`` bound the rows in between (see :func:`upto`)."""

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
    lo: np.ndarray
    hi: np.ndarray


def _range_sums(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``x[lo[i]:hi[i]].sum()`` for ranges that are sorted and do not overlap."""
    n = len(x)
    if not len(lo) or not n:
        return np.zeros(len(lo), dtype=x.dtype)
    sums = np.add.reduceat(x, np.minimum(np.stack([lo, hi], axis=1).ravel(), n - 1))[::2]
    sums += np.where((hi == n) & (lo < n - 1), x[-1], 0)  # reduceat stops before the end
    out: np.ndarray = np.where(hi > lo, sums, 0)
    return out


def read_pairs(series: Series, context: Context, min_power: int, plausible: float) -> ReadPairs:
    """Every pair of consecutive register reads of a channel (see :class:`ReadPairs`), found
    once per series (``odd`` each time). A read below the one before is a rollover when the
    register's modulus (the smallest power of ten above the earlier read, ≥ 10**min_power)
    leaves an advance of at most ``plausible`` times the channel's median interval times the
    intervals in the span (no intervals: the earlier read was in the top tenth); else a reset."""
    reg, store = context.registers, facts(series, context)
    held: tuple[Any, ...] = store.get("pairs") or ((), None, None)
    arrays, setting = (reg.offsets, reg.read_at, reg.value), (min_power, plausible)
    if held[1] != setting or any(a is not b for a, b in zip(held[0], arrays, strict=False)):
        held = store["pairs"] = arrays, setting, _read_pairs(series, min_power, plausible, *arrays)
    pairs: ReadPairs = held[2]
    explained = np.flatnonzero(context.explained)
    odd = np.searchsorted(explained, pairs.hi + 1) > np.searchsorted(explained, pairs.lo)
    return replace(pairs, odd=odd)


def _read_pairs(series: Series, min_power: int, plausible: float, *reads: np.ndarray) -> ReadPairs:
    offsets, read_at, read_value = reads
    rc_reads = np.repeat(np.arange(len(offsets) - 1, dtype=_I64), np.diff(offsets))
    second = np.flatnonzero(rc_reads[1:] == rc_reads[:-1]) + 1
    chan, pairs, n = rc_reads[second], len(second), series.rows
    a_at, b_at = read_at[second - 1], read_at[second]
    a_val, b_val = read_value[second - 1], read_value[second]
    intervals, covered = np.zeros(pairs, dtype=_I64), np.zeros(pairs, dtype=bool)
    lo = hi = np.zeros(pairs, dtype=_I64)
    last_row = np.full(pairs, -1, dtype=_I64)
    if n and pairs:
        end, secs, value = series.interval_end, series.interval_seconds, series.value
        start = utc_starts(series)
        lo, hi = upto(series, chan, a_at), upto(series, chan, b_at)  # rows ending in (a, b]
        last_row = np.where(hi > series.offsets[chan], hi - 1, -1)
        lo_c, hi_c, prev = np.minimum(lo, n - 1), np.minimum(hi, n - 1), np.maximum(hi - 1, 0)
        # the rows the reads fall inside (they start before the read and end after it)
        lead_in = (lo < series.offsets[chan + 1]) & (start[lo_c] < a_at)
        tail_in = (hi < series.offsets[chan + 1]) & (start[hi_c] < b_at)
        first_row = lo + lead_in
        first_start, last_end = start[np.minimum(first_row, n - 1)], end[prev]
        covered = (hi > first_row) & (_range_sums(secs, first_row, hi) == last_end - first_start)
        covered &= np.where(lead_in, end[lo_c] == first_start, first_start == a_at)
        covered &= np.where(tail_in, start[hi_c] == last_end, last_end == b_at)
        edges = np.where(lead_in, value[lo_c] * ((end[lo_c] - a_at) / secs[lo_c]), 0.0)
        edges += np.where(tail_in, value[hi_c] * ((b_at - start[hi_c]) / secs[hi_c]), 0.0)
        rounded = np.sign(edges) * np.floor(np.abs(edges) + 0.5)  # half away from zero
        intervals = _range_sums(value, first_row, hi) + rounded.astype(_I64)
    raw = b_val - a_val
    kind, modulus = np.zeros(pairs, dtype=_I64), np.zeros(pairs, dtype=_I64)
    drop = np.flatnonzero(raw < 0)
    if len(drop):
        mod = _modulus(a_val[drop], min_power, above=True)  # the read was below it
        median = _positive_median(series, chan[drop]) if n else np.zeros(len(drop))
        span = (b_at[drop] - a_at[drop]) / series.channels.step[chan[drop]]
        advance, expected = raw[drop] + mod, median * np.maximum(span, 1.0)
        roll = np.where(median > 0, advance <= plausible * expected, advance * 10 < mod)
        kind[drop] = np.where(roll, ROLLED, RESET)
        modulus[drop[roll]] = mod[roll]
    return ReadPairs(
        chan, a_at, b_at, a_val, b_val, raw + modulus, kind, modulus, intervals, covered,
        last_row, np.zeros(pairs, dtype=bool), lo, hi,
    )  # fmt: skip


def _pair_end(series: Series, pairs: ReadPairs, which: np.ndarray) -> np.ndarray:
    """Where findings on pairs go: the last interval end ≤ the second read (or the read)."""
    at: np.ndarray = pairs.second_at[which]
    if series.rows:
        last = pairs.last_row[which]
        at = np.where(last >= 0, series.interval_end[np.maximum(last, 0)], at)
    return at


def rollover(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """Register rollover or reset: a large negative delta, or a register read below the last."""
    value = series.value
    min_power, plausible = int(params["min_power"]), float(params["plausible_factor"])
    neg = negatives(series, context)
    neg = neg[~series.channels.allows_negative[chan_of(series, neg)]]
    c = chan_of(series, neg)
    median, size = _positive_median(series, c), -value[neg]
    large = (size >= int(params["min_drop_mwh"])) & (size >= float(params["drop_factor"]) * median)
    neg, c, median, size = neg[large], c[large], median[large], size[large]
    modulus = _modulus(size, min_power, above=False)  # -10**k: a wrap with no use
    roll = (median > 0) & (value[neg] + modulus <= plausible * median)
    context.explained[neg] = True  # history rows too: later rules must not learn from them
    shown = checked(series, context)[neg]
    neg, c, roll, modulus = neg[shown], c[shown], roll[shown], modulus[shown]
    texts = (quantities(series, c, v) for v in (value[neg], value[neg] + modulus, modulus))
    detail = [
        f"rollover at {m}: delta {d}, corrected delta {f}"
        if r
        else f"reset: delta {d} (the register went back; this interval's usage is unknown)"
        for r, d, f, m in zip(roll.tolist(), *texts, strict=True)
    ]
    pairs = read_pairs(series, context, min_power, plausible)
    fell = np.flatnonzero((pairs.kind != NORMAL) & ~pairs.odd)  # odd ones were found above
    pc, b_at = pairs.channel[fell], pairs.second_at[fell]
    fell = fell[(b_at > series.check_from[pc]) & (b_at <= series.check_to[pc])]
    pc = pairs.channel[fell]
    values = pairs.first_value, pairs.second_value, pairs.modulus, pairs.delta
    was, now, mod, adv = (quantities(series, pc, v[fell]) for v in values)
    when = local_text(local_of(series, pc, pairs.second_at[fell]))
    for k, w, n, t, m, a in zip(pairs.kind[fell].tolist(), was, now, when, mod, adv, strict=True):
        how = f"rollover at {m}, corrected delta {a}" if k == ROLLED else "reset"
        detail.append(f"register read fell from {w} to {n} at {t} local: {how}")
    ends = np.concatenate([series.interval_end[neg], _pair_end(series, pairs, fell)])
    return Hits.of(np.concatenate([c, pc]), ends, detail)


def negative_usage(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """Negative value on a channel that cannot run backwards (rollovers and resets aside)."""
    rows = negatives(series, context)
    rows = rows[~series.channels.allows_negative[chan_of(series, rows)] & ~context.explained[rows]]
    rows = rows[checked(series, context)[rows]]
    c = chan_of(series, rows)
    amount = quantities(series, c, series.value[rows])
    detail = [f"negative usage {q} on a channel that cannot run backwards" for q in amount]
    return Hits.of(c, series.interval_end[rows], detail)


def reverse_flow(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """Energy exported (received from the customer) by a meter that is not a net meter."""
    chans = np.flatnonzero(kinds(series, context)[1] & ~series.channels.net)
    rows = ranges(series.offsets[chans], series.offsets[chans + 1])
    rows = rows[(series.value[rows] > int(params["min_mwh"])) & checked(series, context)[rows]]
    c = chan_of(series, rows)
    amount = quantities(series, c, series.value[rows])
    detail = [f"reverse flow: {q} exported by a meter that is not a net meter" for q in amount]
    return Hits.of(c, series.interval_end[rows], detail)


def _long_runs(
    series: Series, context: Context, member: np.ndarray, length: int, *, excused: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Runs of at least ``length`` consecutive rows of one channel and one value among the
    sorted rows ``member``, none of them ``excused`` (sorted rows). Each is found at the row
    where it reaches ``length`` (so it stays put while the run grows, and is reported
    once): ``(row, channel, rows in the run, "from .. to .. local")``."""
    c, value = chan_of(series, member), series.value[member]
    head = np.ones(len(member), dtype=bool)
    head[1:] = (np.diff(member) != 1) | (np.diff(c) != 0) | (value[1:] != value[:-1])
    first = np.flatnonzero(head)
    lo, hi = member[first], member[np.append(first[1:], len(member))[: len(first)] - 1]
    clean = np.searchsorted(excused, hi, "right") == np.searchsorted(excused, lo)
    lo, hi = lo[clean & (hi - lo + 1 >= length)], hi[clean & (hi - lo + 1 >= length)]
    at = lo + length - 1
    shown = checked(series, context)[at]
    lo, hi, at = lo[shown], hi[shown], at[shown]
    since = local_text(context.local_start[lo])
    until = local_text(context.local_start[hi] + series.interval_seconds[hi])
    span = [f"from {a} to {b} local" for a, b in zip(since, until, strict=True)]
    return at, chan_of(series, at), hi - lo + 1, span


def zero_consumption(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """A long run of zero intervals on an import channel with no power outage reported."""
    zero = np.flatnonzero(series.value == 0)
    zero = zero[kinds(series, context)[0][chan_of(series, zero)]]
    outage = flagged(series)
    outage = outage[(series.quality[outage] & _OUTAGE) != 0]
    length = int(params["min_intervals"])
    rows, c, count, span = _long_runs(series, context, zero, length, excused=outage)
    hours = (count * series.interval_seconds[rows] / 3600).tolist()
    detail = [
        f"zero usage for {n} intervals ({h:.1f} h) {t}, no power outage reported"
        for n, h, t in zip(count.tolist(), hours, span, strict=True)
    ]
    return Hits.of(c, series.interval_end[rows], detail)


def flat_line(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """The same non-zero value for many consecutive intervals (a stuck register or feed)."""
    value = series.value
    repeat = np.flatnonzero((value[1:] == value[:-1]) & (value[1:] != 0)) + 1
    repeat = repeat[chan_of(series, repeat) == chan_of(series, repeat - 1)]
    member = np.union1d(repeat, repeat - 1)  # a repeated value and the one it repeats
    none = np.empty(0, dtype=_I64)
    rows, c, count, span = _long_runs(series, context, member, int(params["count"]), excused=none)
    detail = [
        f"flat line: {n} consecutive intervals of {q} {t}"
        for n, q, t in zip(count.tolist(), quantities(series, c, value[rows]), span, strict=True)
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
    c, off = pairs.channel[which], got[which] - delta[which]
    share = (100.0 * off / np.maximum(np.abs(delta[which]), 1)).tolist()
    s, d, o, t = (quantities(series, c, v) for v in (got[which], delta[which], off, allowed[which]))
    a_txt, b_txt = (
        local_text(local_of(series, c, x[which])) for x in (pairs.first_at, pairs.second_at)
    )
    roll = [" (after a rollover)" if k == ROLLED else "" for k in pairs.kind[which].tolist()]
    detail = [
        f"intervals sum to {si} between register reads at {a} and {b} local; the register"
        f" advanced {di}{r}: off by {oi} ({p:+.1f}%, tolerance {pct:g}% or {ti})"
        for si, a, b, di, r, oi, p, ti in zip(s, a_txt, b_txt, d, roll, o, share, t, strict=True)
    ]
    return Hits.of(c, _pair_end(series, pairs, which), detail)


RULES: dict[str, Rule] = {
    "ROLLOVER": rollover,
    "NEGATIVE_USAGE": per_channel(negative_usage),
    "REVERSE_FLOW": per_channel(reverse_flow),
    "ZERO_CONSUMPTION": per_channel(zero_consumption),
    "FLAT_LINE": per_channel(flat_line),
    "SUM_CHECK": per_channel(sum_check),
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
