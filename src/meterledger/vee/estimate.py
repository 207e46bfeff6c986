"""Estimation of gaps: the E of VEE.

A *target* is an expected interval with no value: channel ``c`` expects an interval ending at
every multiple of ``channels.step[c]`` (UTC epoch seconds), and :func:`missing_intervals` lists
those in ``(check_from[c], check_to[c]]`` that no row covers. Each target is filled by the first
method that can, in this order (every estimate is flagged ``ESTIMATED`` plus its method):

1. **Linear interpolation** (``EST_LINEAR``): a run of at most ``max_linear`` consecutive targets
   with an actual (not estimated), full-length row right before and right after it. The k-th of
   n values is ``prev + (next - prev) * k / (n + 1)``.
2. **Like-day average** (``EST_LIKE_DAY``): the value at the same local wall-clock time of day on
   the ``like_days`` nearest local days of the same day type (Monday to Friday, or Saturday and
   Sunday) within ``search_days`` before or after, nearest first and the earlier day on a tie,
   averaged. A day qualifies when it is complete (its rows cover exactly the seconds of its grid
   slots: 92 or 100 quarter-hours on a DST day) and has no ``POWER_OUTAGE`` or estimated row; it
   supplies a value only if it has a row starting at that wall-clock time. So on a fall-back
   day both repeated 01:xx intervals take the value of the 01:xx slot, a reference day's repeated
   hour gives its first (earlier) 01:xx row, and a spring-forward reference day gives nothing for
   the hour it skips. As many qualifying days as exist up to ``like_days`` are used, at least one.
3. **Register delta** (``EST_REGISTER``): when no like day qualifies and two consecutive register
   reads of the channel bracket the target. The reads must lie on the interval grid (a register
   read mid-interval does not say how much of that interval's energy it holds, so it is not used
   here). The delta between the reads, minus every row between them and minus the estimates
   this call made there by the first two methods, is spread over the open slots (no row, no
   estimate) between the reads in equal integer parts, the remainder one mWh at a time to the
   earliest slots; only the targets among them are returned, and once every open slot has its
   share the intervals between the reads sum exactly to the register delta. No load shape: this
   method runs precisely when no like day (no shape) is available. A bracket is not used when a
   row straddles one of its reads, or when the remainder is negative on a channel that does not
   allow negative values (a rollover or reset explains it; estimating negative use would not).

Targets that no method fills are returned as ``Estimates.unfilled``. Rounding: every division is
rounded half away from zero to an integer (mWh), exactly, in :func:`_round_div`.

Vectorised: numpy over all targets and rows at once; the Python loops are over distinct time
zones and over the candidate like-day offsets (at most ``2 * search_days``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from meterledger.core.reading import Quality
from meterledger.vee.series import Registers, Series, local_epoch, offsets_of, ragged

__all__ = ["Estimates", "EstimationParams", "estimate", "missing_intervals"]

_I64 = np.int64
_DAY = 86400
_ESTIMATED = int(
    Quality.ESTIMATED | Quality.EST_LINEAR | Quality.EST_LIKE_DAY | Quality.EST_REGISTER
)
_NOT_LIKE_DAY = _ESTIMATED | int(Quality.POWER_OUTAGE)
_LINEAR = int(Quality.ESTIMATED | Quality.EST_LINEAR)
_LIKE_DAY = int(Quality.ESTIMATED | Quality.EST_LIKE_DAY)
_REGISTER = int(Quality.ESTIMATED | Quality.EST_REGISTER)


@dataclass(frozen=True, slots=True)
class EstimationParams:
    """``max_linear``: longest run of missing intervals filled by linear interpolation (0 turns
    it off); ``like_days``: how many like days are averaged; ``search_days``: how far (local
    days, before or after) a like day may be."""

    max_linear: int = 4
    like_days: int = 3
    search_days: int = 28

    def __post_init__(self) -> None:
        if self.max_linear < 0 or self.like_days < 1 or self.search_days < 1:
            raise ValueError(f"invalid estimation parameters: {self}")


def _empty() -> np.ndarray:
    return np.empty(0, dtype=_I64)


@dataclass(frozen=True, slots=True)
class Estimates:
    """One row per estimated interval, sorted by (channel index, interval_end); ``quality`` is
    the flags (``ESTIMATED`` and the method). ``unfilled`` is (row_channel, interval_end) of the
    targets no method could fill, in the same order."""

    row_channel: np.ndarray
    interval_end: np.ndarray
    interval_seconds: np.ndarray
    value: np.ndarray
    quality: np.ndarray
    unfilled: tuple[np.ndarray, np.ndarray] = field(default_factory=lambda: (_empty(), _empty()))

    def __len__(self) -> int:
        return len(self.row_channel)


@dataclass(frozen=True, slots=True)
class _Rows:
    """The series' row arrays plus each row's channel and start."""

    channel: np.ndarray
    end: np.ndarray
    start: np.ndarray
    seconds: np.ndarray
    value: np.ndarray
    quality: np.ndarray

    @classmethod
    def of(cls, s: Series) -> _Rows:
        end = np.asarray(s.interval_end, dtype=_I64)
        seconds = np.asarray(s.interval_seconds, dtype=_I64)
        return cls(
            s.row_channel(),
            end,
            end - seconds,
            seconds,
            np.asarray(s.value, dtype=_I64),
            np.asarray(s.quality, dtype=_I64),
        )


def _round_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` (``den > 0``) rounded half away from zero, exactly in integers."""
    q = (2 * np.abs(num) + den) // (2 * den)
    out: np.ndarray = np.where(num < 0, -q, q)
    return out


def _search(
    group: np.ndarray,
    keys: np.ndarray,
    q_group: np.ndarray,
    q_keys: np.ndarray,
    side: Literal["left", "right"],
) -> np.ndarray:
    """``np.searchsorted`` of ``(q_group, q_keys)`` in rows sorted by ``(group, keys)``: one
    sort order for every group at once, through a composite integer key."""
    if not len(keys) or not len(q_keys):
        return np.zeros(len(q_keys), dtype=_I64)
    lo = min(int(keys.min()), int(q_keys.min()))
    span = max(int(keys.max()), int(q_keys.max())) - lo + 1
    if (max(int(group.max()), int(q_group.max())) + 1) * span >= 2**62:
        raise OverflowError("time span too long for a composite search key")
    a = group * span + (keys - lo)
    b = q_group * span + (q_keys - lo)
    found: np.ndarray = np.searchsorted(a, b, side=side)
    return found


def _member(
    group: np.ndarray, keys: np.ndarray, q_group: np.ndarray, q_keys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Index of each exact ``(q_group, q_keys)`` in the sorted pairs, and whether it is there."""
    pos = _search(group, keys, q_group, q_keys, "left")
    at = np.minimum(pos, max(len(keys) - 1, 0))
    hit = (
        (pos < len(keys)) & (group[at] == q_group) & (keys[at] == q_keys) if len(keys) else pos < 0
    )
    return at, hit


def _ranges(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ``arange(starts[i], starts[i] + counts[i])`` and the group ``i`` of each."""
    offsets = offsets_of(counts)
    group = ragged(offsets)
    return starts[group] + (np.arange(len(group), dtype=_I64) - offsets[group]), group


def _covered(rows: _Rows, channel: np.ndarray, end: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Whether some row of ``channel`` overlaps the slot ``(end - step, end]``."""
    if not len(rows.end):
        return np.zeros(len(end), dtype=bool)
    pos = _search(rows.channel, rows.end, channel, end - step, "right")  # first row ending later
    at = np.minimum(pos, len(rows.end) - 1)
    hit: np.ndarray = (pos < len(rows.end)) & (rows.channel[at] == channel) & (rows.start[at] < end)
    return hit


def missing_intervals(series: Series) -> tuple[np.ndarray, np.ndarray]:
    """(row_channel, interval_end) of every expected interval in ``(check_from, check_to]`` of
    each channel (ends on the channel's step grid) that no row overlaps, sorted. A channel
    whose first row of all lies inside its window (a new meter or channel) is expected only
    from that row's start: nothing existed to estimate before it."""
    step = np.asarray(series.channels.step, dtype=_I64)
    check_from = np.asarray(series.check_from, dtype=_I64)
    off, n = series.offsets, series.rows
    counts = np.diff(off)
    if n:
        at = np.minimum(off[:-1], n - 1)
        first_start = series.interval_end[at] - series.interval_seconds[at]
        new = (counts > 0) & (first_start > check_from)
        check_from = np.where(new, first_start, check_from)
    first = check_from // step + 1
    last = np.asarray(series.check_to, dtype=_I64) // step
    k, channel = _ranges(first, np.maximum(last - first + 1, 0))
    end = k * step[channel]
    gap = ~_covered(_Rows.of(series), channel, end, step[channel])
    return channel[gap], end[gap]


def _local(instants: np.ndarray, channel: np.ndarray, zones: tuple[str, ...]) -> np.ndarray:
    """``local_epoch`` of each instant in its channel's zone (one call per distinct zone)."""
    out = np.empty(len(instants), dtype=_I64)
    names = sorted({zones[int(c)] for c in np.unique(channel)})
    code_of = {name: i for i, name in enumerate(names)}
    codes = np.array([code_of.get(z, -1) for z in zones], dtype=_I64)[channel]
    for i, tz in enumerate(names):
        mask = codes == i
        out[mask] = local_epoch(instants[mask], tz)
    return out


def _actual_at(
    rows: _Rows, channel: np.ndarray, end: np.ndarray, step: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Value of the actual, full-length row ending at ``end``, and whether there is one."""
    at, hit = _member(rows.channel, rows.end, channel, end)
    if not len(rows.end):
        return np.zeros(len(end), dtype=_I64), hit
    hit &= (rows.seconds[at] == step) & ((rows.quality[at] & _ESTIMATED) == 0)
    return rows.value[at], hit


def _linear(
    rows: _Rows, channel: np.ndarray, end: np.ndarray, step: np.ndarray, max_linear: int
) -> tuple[np.ndarray, np.ndarray]:
    n = len(end)
    if not n or max_linear < 1:
        return np.zeros(n, dtype=bool), np.zeros(n, dtype=_I64)
    new = np.ones(n, dtype=bool)
    new[1:] = (channel[1:] != channel[:-1]) | (end[1:] - end[:-1] != step[1:])
    run = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    length = np.diff(np.append(first, n))
    last = first + length - 1
    prev, has_prev = _actual_at(rows, channel[first], end[first] - step[first], step[first])
    nxt, has_next = _actual_at(rows, channel[first], end[last] + step[first], step[first])
    ok = (has_prev & has_next & (length <= max_linear))[run]
    k = np.arange(n, dtype=_I64) - first[run] + 1
    m = length[run] + 1
    p, q = prev[run], nxt[run]
    return ok, np.where(ok, _round_div(p * m + (q - p) * k, m), 0)


def _expected_seconds(s: Series, chans: np.ndarray, dmin: int, ndays: int) -> np.ndarray:
    """Seconds of grid slots starting on each local day ``dmin + j``, per channel in ``chans``:
    what a complete day's rows add up to (24 h, or 23 h / 25 h on a DST day)."""
    out = np.zeros((len(chans), ndays), dtype=_I64)
    zones = np.array([s.channels.timezone[int(c)] for c in chans], dtype=object)
    steps = np.asarray(s.channels.step, dtype=_I64)[chans]
    for tz, st in sorted({(str(z), int(t)) for z, t in zip(zones, steps, strict=True)}):
        lo, hi = (dmin - 2) * _DAY, (dmin + ndays + 2) * _DAY
        slots = np.arange(-(-lo // st) * st, hi, st, dtype=_I64)
        day = local_epoch(slots, tz) // _DAY - dmin
        counts = np.bincount(day[(day >= 0) & (day < ndays)], minlength=ndays)
        out[(zones == tz) & (steps == st)] = counts * st
    return out


def _offsets(search_days: int) -> list[int]:
    """Candidate day offsets, nearest first, the earlier day first on a tie."""
    return [sign * j for j in range(1, search_days + 1) for sign in (-1, 1)]


def _like_day(
    s: Series,
    rows: _Rows,
    channel: np.ndarray,
    end: np.ndarray,
    step: np.ndarray,
    todo: np.ndarray,
    p: EstimationParams,
) -> tuple[np.ndarray, np.ndarray]:
    ok, val = np.zeros(len(end), dtype=bool), np.zeros(len(end), dtype=_I64)
    idx = np.flatnonzero(todo)
    if not len(idx) or not len(rows.end):
        return ok, val
    ch = channel[idx]
    zones = s.channels.timezone
    chans, lc = np.unique(ch, return_inverse=True)
    tloc = _local(end[idx] - step[idx], ch, zones)
    tday = tloc // _DAY
    ttod = tloc - tday * _DAY
    dmin = int(tday.min()) - p.search_days - 1
    ndays = int(tday.max()) + p.search_days + 1 - dmin + 1
    counts = np.diff(s.offsets)[chans]
    ridx, rlc = _ranges(np.asarray(s.offsets, dtype=_I64)[chans], counts)
    if not len(ridx):
        return ok, val
    rloc = _local(rows.start[ridx], rows.channel[ridx], zones)
    rday = rloc // _DAY - dmin
    inr = (rday >= 0) & (rday < ndays)
    key = rlc[inr] * ndays + rday[inr]
    size = len(chans) * ndays
    seconds = np.bincount(key, weights=rows.seconds[ridx][inr], minlength=size)
    flagged = ((rows.quality[ridx][inr] & _NOT_LIKE_DAY) != 0).astype(np.float64)
    bad = np.bincount(key, weights=flagged, minlength=size)
    expected = _expected_seconds(s, chans, dmin, ndays)
    qualifies = (seconds.reshape(expected.shape) == expected) & (bad.reshape(expected.shape) == 0)
    qualifies &= expected > 0
    lmin, span = int(rloc.min()), int(rloc.max()) - int(rloc.min()) + 1
    slot_key, first = np.unique(rlc * span + (rloc - lmin), return_index=True)
    slot_value = rows.value[ridx][first]
    weekend = (tday + 3) % 7 >= 5
    total, count = np.zeros(len(idx), dtype=_I64), np.zeros(len(idx), dtype=_I64)
    for off in _offsets(p.search_days):
        want = count < p.like_days
        if not want.any():
            break
        day = tday + off
        loc = day * _DAY + ttod
        sel = want & (((day + 3) % 7 >= 5) == weekend) & qualifies[lc, day - dmin]
        sel &= (loc >= lmin) & (loc < lmin + span)
        pos = np.searchsorted(slot_key, lc * span + (loc - lmin))
        at = np.minimum(pos, len(slot_key) - 1)
        hit = sel & (pos < len(slot_key)) & (slot_key[at] == lc * span + (loc - lmin))
        total += np.where(hit, slot_value[at], 0)
        count += hit
    got = count > 0
    ok[idx[got]] = True
    val[idx[got]] = _round_div(total[got], count[got])
    return ok, val


def _register(
    s: Series,
    rows: _Rows,
    regs: Registers,
    channel: np.ndarray,
    end: np.ndarray,
    step: np.ndarray,
    todo: np.ndarray,
    done: np.ndarray,
    done_value: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    ok, val = np.zeros(len(end), dtype=bool), np.zeros(len(end), dtype=_I64)
    idx = np.flatnonzero(todo)
    if not len(idx) or not len(regs.read_at):
        return ok, val
    chan_step = np.asarray(s.channels.step, dtype=_I64)
    read_channel = ragged(np.asarray(regs.offsets, dtype=_I64))
    read_at = np.asarray(regs.read_at, dtype=_I64)
    aligned = read_at % chan_step[read_channel] == 0
    g, at, reading = (
        read_channel[aligned],
        read_at[aligned],
        np.asarray(regs.value, dtype=_I64)[aligned],
    )
    if not len(at):
        return ok, val
    ch = channel[idx]
    nxt = _search(g, at, ch, end[idx] - step[idx], "right")  # first read after the slot start
    prev = nxt - 1
    top = len(at) - 1
    have = (prev >= 0) & (nxt <= top)
    have &= (g[np.clip(prev, 0, top)] == ch) & (g[np.minimum(nxt, top)] == ch)
    if not have.any():
        return ok, val
    brackets = np.unique(prev[have])
    bch, t0, t1 = g[brackets], at[brackets], at[brackets + 1]
    bstep = chan_step[bch]
    # every row ending in (t0, t1], none straddling a read
    lo = _search(rows.channel, rows.end, bch, t0, "right")
    hi = _search(rows.channel, rows.end, bch, t1, "right")
    csum = np.concatenate([[0], np.cumsum(rows.value)]).astype(_I64)
    straddles = np.zeros(len(brackets), dtype=bool)
    if len(rows.end):
        last = len(rows.end) - 1
        for pos, t in ((lo, t0), (hi, t1)):
            p = np.minimum(pos, last)
            straddles |= (pos <= last) & (rows.channel[p] == bch) & (rows.start[p] < t)
    # the estimates this call already made between the reads
    dch, dend = channel[done], end[done]
    dsum = np.concatenate([[0], np.cumsum(done_value[done])]).astype(_I64)
    elo = _search(dch, dend, bch, t0, "right")
    ehi = _search(dch, dend, bch, t1, "right")
    remainder = (
        reading[brackets + 1] - reading[brackets] - (csum[hi] - csum[lo]) - (dsum[ehi] - dsum[elo])
    )
    k, b = _ranges(np.ones(len(brackets), dtype=_I64), (t1 - t0) // bstep)
    slot_ch, slot_end = bch[b], t0[b] + k * bstep[b]
    open_ = ~_covered(rows, slot_ch, slot_end, bstep[b]) & ~_member(dch, dend, slot_ch, slot_end)[1]
    ob = b[open_]
    m = np.bincount(ob, minlength=len(brackets)).astype(_I64)
    usable = ~straddles & (m > 0)
    usable &= (remainder >= 0) | np.asarray(s.channels.allows_negative, dtype=bool)[bch]
    base = remainder // np.maximum(m, 1)
    extra = remainder - base * m
    rank = np.arange(len(ob), dtype=_I64) - offsets_of(m)[ob]
    slot_value = base[ob] + (rank < extra[ob])
    if not len(ob):
        return ok, val
    pos, hit = _member(slot_ch[open_], slot_end[open_], ch, end[idx])
    hit &= usable[ob[pos]]
    ok[idx[hit]] = True
    val[idx[hit]] = slot_value[pos[hit]]
    return ok, val


def _targets(
    s: Series, targets: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    if targets is None:
        return missing_intervals(s)
    channel = np.asarray(targets[0], dtype=_I64)
    end = np.asarray(targets[1], dtype=_I64)
    if channel.shape != end.shape or channel.ndim != 1:
        raise ValueError("targets are two arrays of equal length")
    if len(channel) and (channel.min() < 0 or channel.max() >= len(s.channels)):
        raise ValueError("a target names a channel the series does not have")
    if np.any(end % np.asarray(s.channels.step, dtype=_I64)[channel] != 0):
        raise ValueError("a target's interval_end is not on its channel's step grid")
    order = np.lexsort((end, channel))
    channel, end = channel[order], end[order]
    keep = np.ones(len(end), dtype=bool)
    keep[1:] = (channel[1:] != channel[:-1]) | (end[1:] != end[:-1])
    return channel[keep], end[keep]


def estimate(
    series: Series,
    registers: Registers | None = None,
    params: EstimationParams = EstimationParams(),
    targets: tuple[np.ndarray, np.ndarray] | None = None,
) -> Estimates:
    """Estimate ``targets`` (default: :func:`missing_intervals`) by the methods of the module
    docstring, in priority order."""
    regs = registers if registers is not None else Registers.empty(len(series.channels))
    channel, end = _targets(series, targets)
    step = np.asarray(series.channels.step, dtype=_I64)[channel]
    rows = _Rows.of(series)
    quality = np.zeros(len(end), dtype=_I64)
    ok, value = _linear(rows, channel, end, step, params.max_linear)
    quality[ok] = _LINEAR
    like_ok, like_value = _like_day(series, rows, channel, end, step, ~ok, params)
    quality[like_ok] = _LIKE_DAY
    value = np.where(like_ok, like_value, value)
    ok |= like_ok
    reg_ok, reg_value = _register(series, rows, regs, channel, end, step, ~ok, ok, value)
    quality[reg_ok] = _REGISTER
    value = np.where(reg_ok, reg_value, value)
    ok |= reg_ok
    return Estimates(
        channel[ok], end[ok], step[ok], value[ok], quality[ok], (channel[~ok], end[~ok])
    )
