"""Value rules: register rollover and reset, negative use and reverse flow, runs of zero or
identical values, and the sum of the intervals against the register reads.

All vectorised over the whole series; findings only on checked rows. ``ROLLOVER`` runs
before every other rule and marks the rows whose odd value a rollover or reset explains
(``Context.explained``), history rows included, so that no later rule (negative usage,
spike, daily usage, outliers) reports them again or learns from them.

The helpers at the top (quantities as text, channel kinds, register read pairs) are shared
with :mod:`meterledger.vee.rules_stats`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from meterledger.core.errors import InputError
from meterledger.core.obis import ObisCode
from meterledger.core.reading import Quality
from meterledger.vee.findings import Context, Hits, Rule
from meterledger.vee.series import Series, local_epoch, offsets_of

__all__ = [
    "DEFAULTS",
    "RULES",
    "ReadPairs",
    "channel_kinds",
    "flat_line",
    "local_of",
    "local_text",
    "negative_usage",
    "power_of_ten",
    "quantities",
    "read_pairs",
    "reverse_flow",
    "rollover",
    "sum_check",
    "zero_consumption",
]

_I64 = np.int64
_POW10 = 10 ** np.arange(19, dtype=_I64)  # 10**0 .. 10**18, the int64 range
_SHIFT = _I64(1) << _I64(34)  # channel-major search keys; epoch seconds stay below 2**34
_OUTAGE = int(Quality.POWER_OUTAGE)
_REACTIVE = frozenset({3, 4, 5, 6, 7, 8})  # OBIS C (mod 20): reactive energy quadrants
_IMPORT = frozenset({1, 21, 41, 61})  # active energy import, total and per phase
_EXPORT = frozenset({2, 22, 42, 62})  # active energy export (received from the customer)
NORMAL, ROLLED, RESET = 0, 1, 2  # ReadPairs.kind


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
    out: list[str] = []
    for wh, c in zip(whole.astype(_I64).tolist(), chans.tolist(), strict=True):
        sign = "-" if wh < 0 else ""
        out.append(f"{sign}{abs(wh) // 1000}.{abs(wh) % 1000:03d} {_unit(series.channels.obis[c])}")
    return out


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


def channel_kinds(series: Series) -> tuple[np.ndarray, np.ndarray]:
    """Per channel: (is active import, is active export), from the OBIS C group."""
    kinds: dict[str, tuple[bool, bool]] = {}
    for obis in set(series.channels.obis):
        try:
            code = ObisCode.parse(obis)
        except InputError:
            kinds[obis] = (False, False)
            continue
        kinds[obis] = (code.a == 1 and code.c in _IMPORT, code.a == 1 and code.c in _EXPORT)
    both = np.array([kinds[o] for o in series.channels.obis], dtype=bool).reshape(-1, 2)
    return both[:, 0].copy(), both[:, 1].copy()


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


def _positive_median(series: Series, rc: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Per channel, the median of its positive values, all rows (0.0 for channels not
    ``wanted`` or with none): the size of an ordinary interval."""
    chans = len(series.channels)
    out = np.zeros(chans, dtype=np.float64)
    keep = (series.value > 0) & np.isin(rc, wanted)
    if not keep.any():
        return out
    order = np.lexsort((series.value[keep], rc[keep]))
    c, v = rc[keep][order], series.value[keep][order]
    counts = np.bincount(c, minlength=chans)
    starts = offsets_of(counts)[:-1]
    has = counts > 0
    lo, hi = starts[has] + (counts[has] - 1) // 2, starts[has] + counts[has] // 2
    out[has] = (v[lo] + v[hi]) / 2.0
    return out


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


def read_pairs(series: Series, context: Context, min_power: int, plausible: float) -> ReadPairs:
    """Every pair of consecutive register reads of a channel (see :class:`ReadPairs`).

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
    rc = series.row_channel()
    intervals = np.zeros(pairs, dtype=_I64)
    covered = odd = np.zeros(pairs, dtype=bool)
    last_row = np.full(pairs, -1, dtype=_I64)
    if n and pairs:
        end, secs, value = series.interval_end, series.interval_seconds, series.value
        start = end - secs
        key = rc * _SHIFT + end
        lo = np.searchsorted(key, chan * _SHIFT + a_at, side="right")  # first ending after a
        hi = np.searchsorted(key, chan * _SHIFT + b_at, side="right")  # past the last <= b
        prev, lo_c, hi_c = np.maximum(hi - 1, 0), np.minimum(lo, n - 1), np.minimum(hi, n - 1)
        last_row = np.where((hi > 0) & (rc[prev] == chan), prev, -1)
        # the rows the reads fall inside (they start before the read and end after it)
        lead_in = (lo < n) & (rc[lo_c] == chan) & (start[lo_c] < a_at)
        tail_in = (hi < n) & (rc[hi_c] == chan) & (start[hi_c] < b_at)
        first_row = lo + lead_in
        some = hi > first_row
        first_start, last_end = start[np.minimum(first_row, n - 1)], end[prev]
        cum_v, cum_s, cum_x = (
            np.concatenate([[0], np.cumsum(x, dtype=_I64)])
            for x in (value, secs, context.explained)
        )
        covered = some & (cum_s[hi] - cum_s[first_row] == last_end - first_start)
        covered &= np.where(lead_in, end[lo_c] == first_start, first_start == a_at)
        covered &= np.where(tail_in, start[hi_c] == last_end, last_end == b_at)
        edges = np.where(lead_in, value[lo_c] * ((end[lo_c] - a_at) / secs[lo_c]), 0.0)
        edges += np.where(tail_in, value[hi_c] * ((b_at - start[hi_c]) / secs[hi_c]), 0.0)
        rounded = np.sign(edges) * np.floor(np.abs(edges) + 0.5)  # half away from zero
        intervals = np.where(some, cum_v[hi] - cum_v[first_row], 0) + rounded.astype(_I64)
        odd = cum_x[np.minimum(hi + 1, n)] - cum_x[lo] > 0

    raw = b_val - a_val
    kind = np.zeros(pairs, dtype=_I64)
    modulus = np.zeros(pairs, dtype=_I64)
    drop = np.flatnonzero(raw < 0)
    if len(drop):
        mod = _modulus(a_val[drop], min_power, above=True)  # the read was below it
        advance = raw[drop] + mod
        median = _positive_median(series, rc, np.unique(chan[drop]))[chan[drop]]
        span = (b_at[drop] - a_at[drop]) / series.channels.step[chan[drop]]
        expected = median * np.maximum(span, 1.0)
        roll = np.where(median > 0, advance <= plausible * expected, advance * 10 < mod)
        kind[drop] = np.where(roll, ROLLED, RESET)
        modulus[drop[roll]] = mod[roll]
    return ReadPairs(
        chan, a_at, b_at, a_val, b_val, raw + modulus, kind, modulus, intervals, covered,
        last_row, odd,
    )  # fmt: skip


def _pair_end(series: Series, pairs: ReadPairs, which: np.ndarray) -> np.ndarray:
    """Where a finding about pairs ``which`` goes: the last interval end at or before the
    second read, or the read itself when the channel has no row by then."""
    last = pairs.last_row[which]
    at: np.ndarray = pairs.second_at[which]
    if not series.rows:
        return at
    at = np.where(last >= 0, series.interval_end[np.maximum(last, 0)], pairs.second_at[which])
    return at


def rollover(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """Register rollover or reset: a large negative delta, or a register read below the last."""
    rc = series.row_channel()
    value = series.value
    min_power, plausible = int(params["min_power"]), float(params["plausible_factor"])
    neg = np.flatnonzero((value < 0) & ~series.channels.allows_negative[rc])
    median = _positive_median(series, rc, np.unique(rc[neg]))[rc[neg]]
    size = -value[neg]
    large = (size >= int(params["min_drop_mwh"])) & (size >= float(params["drop_factor"]) * median)
    neg, median, size = neg[large], median[large], size[large]
    modulus = _modulus(size, min_power, above=False)  # -10**k: no use, wrapped
    roll = (median > 0) & (value[neg] + modulus <= plausible * median)
    context.explained[neg] = True  # history rows too: later rules must not learn from them
    shown = series.checked()[neg]
    neg, roll, modulus = neg[shown], roll[shown], modulus[shown]
    c = rc[neg]
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
    rc = series.row_channel()
    bad = (series.value < 0) & ~series.channels.allows_negative[rc] & ~context.explained
    rows = np.flatnonzero(bad & series.checked())
    amount = quantities(series, rc[rows], series.value[rows])
    detail = [f"negative usage {q} on a channel that cannot run backwards" for q in amount]
    return Hits.of(rc[rows], series.interval_end[rows], detail)


def reverse_flow(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """Energy exported (received from the customer) by a meter that is not a net meter."""
    rc = series.row_channel()
    _, export = channel_kinds(series)
    bad = (export & ~series.channels.net)[rc] & (series.value > int(params["min_mwh"]))
    rows = np.flatnonzero(bad & series.checked())
    amount = quantities(series, rc[rows], series.value[rows])
    detail = [f"reverse flow: {q} exported by a meter that is not a net meter" for q in amount]
    return Hits.of(rc[rows], series.interval_end[rows], detail)


def _long_runs(
    series: Series,
    context: Context,
    member: np.ndarray,
    same: np.ndarray,
    length: int,
    excused: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Runs of at least ``length`` consecutive ``member`` rows of a channel, each row
    ``same`` as the one before, and none ``excused``. Each is found at the row where it
    reaches ``length`` (so a finding stays put while the run grows, and is reported once):
    ``(row, rows in the run, "from .. to .. local")``."""
    rc = series.row_channel()
    cont = np.zeros(series.rows, dtype=bool)
    cont[1:] = member[1:] & member[:-1] & same[1:] & (rc[1:] == rc[:-1])
    first = np.flatnonzero(member & ~cont)
    breaks = np.append(np.flatnonzero(~cont), series.rows)
    stop = breaks[np.searchsorted(breaks, first, side="right")]  # one past each run
    at = first + length - 1
    ok = at < stop
    if excused is not None and len(first):
        cum = np.concatenate([[0], np.cumsum(excused, dtype=_I64)])
        ok &= cum[stop] - cum[first] == 0
    at, first, stop = at[ok], first[ok], stop[ok]
    keep = series.checked()[at]
    at, first, last = at[keep], first[keep], stop[keep] - 1
    start = context.local_start
    since = local_text(start[first])
    until = local_text(start[last] + series.interval_seconds[last])
    return (
        at,
        last - first + 1,
        [f"from {a} to {b} local" for a, b in zip(since, until, strict=True)],
    )


def zero_consumption(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """A long run of zero intervals on an import channel with no power outage reported."""
    rc = series.row_channel()
    imports, _ = channel_kinds(series)
    zero = (series.value == 0) & imports[rc]
    outage = (series.quality & _OUTAGE) != 0
    rows, count, span = _long_runs(
        series, context, zero, zero, int(params["min_intervals"]), outage
    )
    hours = count * series.interval_seconds[rows] / 3600
    detail = [
        f"zero usage for {n} intervals ({h:.1f} h) {t}, no power outage reported"
        for n, h, t in zip(count.tolist(), hours.tolist(), span, strict=True)
    ]
    return Hits.of(rc[rows], series.interval_end[rows], detail)


def flat_line(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """The same non-zero value for many consecutive intervals (a stuck register or feed)."""
    rc = series.row_channel()
    value = series.value
    same = np.zeros(series.rows, dtype=bool)
    same[1:] = value[1:] == value[:-1]
    rows, count, span = _long_runs(series, context, value != 0, same, int(params["count"]))
    amount = quantities(series, rc[rows], value[rows])
    detail = [
        f"flat line: {n} consecutive intervals of {q} {t}"
        for n, q, t in zip(count.tolist(), amount, span, strict=True)
    ]
    return Hits.of(rc[rows], series.interval_end[rows], detail)


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
    which = which[series.checked()[pairs.last_row[which]]]
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
