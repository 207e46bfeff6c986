"""Statistical rules: spikes within a day, a day's usage against the meter's recent average,
a multiplier or unit off by a power of ten, and interval outliers against the same local
hour of the week in earlier weeks (z-score and interquartile range).

All vectorised: a local day or a local hour of one channel is a run of consecutive rows
(rows are sorted by time within a channel and local time only moves forward, the repeated
autumn hour included), so per-day and per-hour figures come from ``reduceat`` over those
runs, and history windows from cumulative sums or a search over the sorted run keys.

Rows a rollover or reset explains (``Context.explained``) are neither reported nor learnt
from; estimated rows and days with a power outage are not learnt from either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from meterledger.core.reading import Quality
from meterledger.vee.findings import Context, Hits, Rule
from meterledger.vee.rules_values import (
    channel_kinds,
    local_of,
    local_text,
    power_of_ten,
    quantities,
    read_pairs,
)
from meterledger.vee.series import Series

__all__ = [
    "DEFAULTS",
    "RULES",
    "high_usage",
    "low_usage",
    "multiplier_mismatch",
    "outlier_iqr",
    "outlier_zscore",
    "spike",
]

_I64 = np.int64
_DAY = 86_400
_HOUR = 3_600
_WEEK_HOURS = 168
_SHIFT = _I64(1) << _I64(34)  # channel-major keys: channel * 2**34 + day or hour number
_LOWEST = np.iinfo(_I64).min
_ESTIMATED = int(
    Quality.ESTIMATED | Quality.EST_LINEAR | Quality.EST_LIKE_DAY | Quality.EST_REGISTER
)
_OUTAGE = int(Quality.POWER_OUTAGE)
_CHUNK = 1 << 15  # hour groups per block of the IQR's quantile matrix


def _texts(series: Series, chans: np.ndarray, *values: np.ndarray) -> list[list[str]]:
    return [quantities(series, chans, v) for v in values]


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _dates(days: np.ndarray) -> list[str]:
    """Local day numbers as ``Sun 2026-03-08``."""
    text = np.datetime_as_string(np.asarray(days, dtype="datetime64[D]")).tolist()
    weekday = ((np.asarray(days, dtype=_I64) + 3) % 7).tolist()  # 1970-01-01 was a Thursday
    return [f"{_WEEKDAYS[w]} {d}" for w, d in zip(weekday, text, strict=True)]


def _runs(series: Series, key: np.ndarray, rc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of rows with the same channel and ``key``: (first row, group index per row)."""
    head = np.ones(series.rows, dtype=bool)
    head[1:] = (key[1:] != key[:-1]) | (rc[1:] != rc[:-1])
    return np.flatnonzero(head), np.cumsum(head, dtype=_I64) - 1


def _usage_channels(series: Series) -> np.ndarray:
    """Channels whose daily totals are usage: not export, not a net (signed) channel."""
    _, export = channel_kinds(series)
    usage: np.ndarray = ~export & ~series.channels.allows_negative
    return usage


def spike(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """The highest interval of a local day far above the day's third-highest."""
    if not series.rows:
        return Hits.empty()
    rc = series.row_channel()
    start, group = _runs(series, context.local_start // _DAY, rc)
    work = np.where(context.explained, _LOWEST, series.value)
    index = np.arange(series.rows, dtype=_I64)
    top: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    for _ in range(3):  # take the highest row of each day off, three times
        top.append(np.maximum.reduceat(work, start))
        rows.append(
            np.minimum.reduceat(np.where(work == top[-1][group], index, series.rows), start)
        )
        work[np.minimum(rows[-1], series.rows - 1)] = _LOWEST
    high, third = top[0], top[2]
    hit = (third > _LOWEST) & (high > float(params["ratio"]) * np.maximum(third, 0))
    hit &= high - third > int(params["floor_mwh"])
    at = rows[0][hit]
    keep = series.checked()[at]
    at, high, third = at[keep], high[hit][keep], third[hit][keep]
    big, low = _texts(series, rc[at], high, third)
    times = local_text(context.local_start[at])
    ratio = (high / np.maximum(third, 1)).tolist()
    detail = [
        f"spike {b} at {t} vs 3rd-highest {lo} of the day (ratio {r:.1f})"
        for b, t, lo, r in zip(big, times, low, ratio, strict=True)
    ]
    return Hits.of(rc[at], series.interval_end[at], detail)


@dataclass(frozen=True, slots=True)
class _Daily:
    """One entry per (channel, local day) with rows: totals and the history average."""

    chan: np.ndarray
    day: np.ndarray
    last: np.ndarray  # the day's last row
    total: np.ndarray
    complete: np.ndarray  # midnight to midnight with no gap
    clean: np.ndarray  # no explained row, no outage
    average: np.ndarray  # mean of the usable history days (0 where too few)
    ratio: np.ndarray  # total / average (0 where no average)
    like: np.ndarray  # mean of the usable same weekdays in the history (0 where under 2)
    like_ratio: np.ndarray  # total / like (0 where no like average)


def _daily(series: Series, context: Context, params: Mapping[str, Any]) -> _Daily:
    rc = series.row_channel()
    local = context.local_start
    start, _ = _runs(series, local // _DAY, rc)
    stop = np.append(start[1:], series.rows)
    last = stop - 1
    chan, day = rc[start], local[start] // _DAY
    secs, end = series.interval_seconds, series.interval_end
    total = np.add.reduceat(series.value, start)

    def count(mask: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.add.reduceat(mask.astype(_I64), start)
        return out

    complete = (local[start] % _DAY == 0) & (local[last] + secs[last] == (day + 1) * _DAY)
    complete &= count(secs) == end[last] - (end[start] - secs[start])  # no gap in between
    clean = (count(context.explained) == 0) & (count((series.quality & _OUTAGE) != 0) == 0)
    usable = complete & clean & (count((series.quality & _ESTIMATED) != 0) == 0)
    usable &= _usage_channels(series)[chan]
    key = chan * _SHIFT + day
    history = int(params["history_days"])
    lo = np.searchsorted(key, key - history, side="left")
    here = np.arange(len(key))
    cum_t = np.concatenate([[0], np.cumsum(np.where(usable, total, 0), dtype=_I64)])
    cum_n = np.concatenate([[0], np.cumsum(usable, dtype=_I64)])
    days = cum_n[here] - cum_n[lo]
    enough = days >= int(params["min_days"])
    average = np.where(enough, (cum_t[here] - cum_t[lo]) / np.maximum(days, 1), 0.0)
    like_sum = np.zeros(len(key))
    like_n = np.zeros(len(key), dtype=_I64)
    for weeks in range(1, history // 7 + 1):  # the same weekday 1, 2, ... weeks before
        at = np.minimum(np.searchsorted(key, key - 7 * weeks), len(key) - 1)
        ok = (key[at] == key - 7 * weeks) & usable[at]
        like_sum += np.where(ok, total[at], 0)
        like_n += ok
    like = np.where(like_n >= 2, like_sum / np.maximum(like_n, 1), 0.0)
    floor = int(params["floor_mwh"])
    average[average < floor] = 0.0
    like[like < floor] = 0.0
    ratio = np.divide(total, average, out=np.zeros(len(total)), where=average > 0)
    like_ratio = np.divide(total, like, out=np.zeros(len(total)), where=like > 0)
    return _Daily(chan, day, last, total, complete, clean, average, ratio, like, like_ratio)


def _day_hits(series: Series, daily: _Daily, hit: np.ndarray, what: str) -> Hits:
    hit = hit & (daily.average > 0) & _usage_channels(series)[daily.chan]
    which = np.flatnonzero(hit & series.checked()[daily.last])
    c = daily.chan[which]
    total, avg = _texts(series, c, daily.total[which], daily.average[which])
    detail = [
        f"{what} usage on {d}: {t} vs average {a} a day (ratio {r:.2f})"
        for d, t, a, r in zip(
            _dates(daily.day[which]), total, avg, daily.ratio[which].tolist(), strict=True
        )
    ]
    return Hits.of(c, series.interval_end[daily.last[which]], detail)


def _scaled(daily: _Daily, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """MULTIPLIER_MISMATCH's days: complete and clean, the total off by a power of ten
    against the same weekdays before (first choice) or the average day. Also says which."""
    like = power_of_ten(daily.like_ratio, tolerance) != 0
    scaled = like | (power_of_ten(daily.ratio, tolerance) != 0)
    out: np.ndarray = daily.complete & daily.clean & scaled
    return out, like


def high_usage(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """A local day's usage far above the meter's average day of the weeks before."""
    if not series.rows:
        return Hits.empty()
    daily = _daily(series, context, params)
    scaled, _ = _scaled(daily, float(params["power_of_ten_tolerance"]))
    hit = daily.clean & (daily.ratio > float(params["high_factor"])) & ~scaled
    return _day_hits(series, daily, hit, "high")


def low_usage(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """A whole local day's usage far below the meter's average day of the weeks before."""
    if not series.rows:
        return Hits.empty()
    daily = _daily(series, context, params)
    scaled, _ = _scaled(daily, float(params["power_of_ten_tolerance"]))
    hit = daily.complete & daily.clean & (daily.ratio < float(params["low_factor"])) & ~scaled
    return _day_hits(series, daily, hit, "low")


def multiplier_mismatch(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """A day's usage, or the intervals against the register, off by a power of ten."""
    if not series.rows:
        return Hits.empty()
    tolerance = float(params["tolerance"])
    pairs = read_pairs(series, context, 6, 10.0)
    delta, got = pairs.delta, pairs.intervals
    ratio = np.divide(got, delta, out=np.zeros(len(delta)), where=(delta > 0) & (got > 0))
    k = power_of_ten(ratio, tolerance)
    use = pairs.covered & ~pairs.odd & (pairs.kind == 0) & (k != 0) & (pairs.last_row >= 0)
    which = np.flatnonzero(use)
    which = which[series.checked()[pairs.last_row[which]]] if len(which) else which
    c = pairs.channel[which]
    s, d = _texts(series, c, got[which], delta[which])
    a_txt = local_text(local_of(series, c, pairs.first_at[which]))
    b_txt = local_text(local_of(series, c, pairs.second_at[which]))
    detail = [
        f"intervals sum to {si} between register reads at {a} and {b} local; the register"
        f" advanced {di}: ratio {r:.3g}, a power of ten (multiplier or unit mismatch)"
        for si, a, b, di, r in zip(s, a_txt, b_txt, d, ratio[which].tolist(), strict=True)
    ]
    chans, ends = [c], [series.interval_end[pairs.last_row[which]]]
    daily = _daily(series, context, params)
    hit, like = _scaled(daily, tolerance)
    hit &= _usage_channels(series)[daily.chan]
    day = np.flatnonzero(hit & series.checked()[daily.last])
    like = like[day]
    base = np.where(like, daily.like[day], daily.average[day])
    total, avg = _texts(series, daily.chan[day], daily.total[day], base)
    ratio = np.where(like, daily.like_ratio[day], daily.ratio[day])
    detail += [
        f"usage on {dt}: {t} vs {a} {'on the same weekday' if w else 'a day'} before:"
        f" ratio {r:.3g}, a power of ten (multiplier or unit mismatch)"
        for dt, t, a, w, r in zip(
            _dates(daily.day[day]), total, avg, like.tolist(), ratio.tolist(), strict=True
        )
    ]
    chans.append(daily.chan[day])
    ends.append(series.interval_end[daily.last[day]])
    chan, end = np.concatenate(chans), np.concatenate(ends)
    _, keep = np.unique(chan * _SHIFT + end, return_index=True)  # register first, then days
    keep.sort()
    return Hits.of(chan[keep], end[keep], [detail[i] for i in keep.tolist()])


@dataclass(frozen=True, slots=True)
class _Hours:
    """Runs of rows in one local hour of one channel ("hour groups"): each row's group, each
    group's first row and row count, and the groups of the same local hour 1, 2, ...
    ``weeks`` weeks before (``history``, one array per week, -1 where none). ``usable`` marks
    the rows history may learn from, ``eligible`` the rows the rule may flag; ``scale`` is
    each group's channel's typical daily peak, of which the floors are fractions."""

    group: np.ndarray
    start: np.ndarray
    count: np.ndarray
    history: list[np.ndarray]
    usable: np.ndarray
    eligible: np.ndarray
    scale: np.ndarray


def _typical_peak(
    series: Series, usable: np.ndarray, start: np.ndarray, key: np.ndarray
) -> np.ndarray:
    """Per hour group (``start``, ``key``: channel and local hour), its channel's typical
    daily peak: the median over the channel's local days of the day's highest usable
    interval. Figured from the hour groups' highest values, a day being 24 local hours."""
    hour_peak = np.maximum.reduceat(np.where(usable, series.value, _LOWEST), start)
    chan_of, day = key // _SHIFT, (key % _SHIFT) // 24  # local hours to local days
    head = np.ones(len(day), dtype=bool)
    head[1:] = (day[1:] != day[:-1]) | (chan_of[1:] != chan_of[:-1])
    firsts = np.flatnonzero(head)
    peak = np.maximum.reduceat(hour_peak, firsts)
    chan = chan_of[firsts]
    keep = peak > _LOWEST
    order = np.lexsort((peak[keep], chan[keep]))
    chan, peak = chan[keep][order], peak[keep][order]
    counts = np.bincount(chan, minlength=len(series.channels))
    first = np.concatenate([[0], np.cumsum(counts)])[:-1]
    median = np.zeros(len(counts))
    has = counts > 0
    lo, hi = first[has] + (counts[has] - 1) // 2, first[has] + counts[has] // 2
    median[has] = (peak[lo] + peak[hi]) / 2.0
    out: np.ndarray = median[chan_of]
    return out


def _hours(series: Series, context: Context, params: Mapping[str, Any]) -> _Hours:
    rc = series.row_channel()
    hour = context.local_start // _HOUR
    start, group = _runs(series, hour, rc)
    count = np.diff(np.append(start, series.rows))
    key = rc[start] * _SHIFT + hour[start]
    index = np.arange(len(start), dtype=_I64)
    chan_first = key[np.searchsorted(key, (key // _SHIFT) * _SHIFT)]  # its channel's first
    history: list[np.ndarray] = []
    for j in range(1, int(params["weeks"]) + 1):  # a loop over weeks, each over all groups
        want = key - _WEEK_HOURS * j
        # without gaps the group a week back is 168 groups back; else search for it
        at = np.maximum(index - _WEEK_HOURS * j, 0)
        miss = (key[at] != want) & (want >= chan_first)
        at[miss] = np.minimum(np.searchsorted(key, want[miss]), len(key) - 1)
        history.append(np.where(key[at] == want, at, -1))
    usable = ~context.explained & ((series.quality & (_ESTIMATED | _OUTAGE)) == 0)
    _, export = channel_kinds(series)
    looked_at = np.ones(len(export), dtype=bool) if bool(params["export"]) else ~export
    eligible = series.checked() & ~context.explained & looked_at[rc]
    scale = _typical_peak(series, usable, start, key)
    return _Hours(group, start, count, history, usable, eligible, scale)


def _history_sum(per_group: np.ndarray, hours: _Hours) -> np.ndarray:
    """Per hour group, the sum of ``per_group`` over its history groups."""
    padded = np.append(per_group, 0.0)
    total = np.zeros(len(per_group))
    for back in hours.history:
        total += padded[back]  # -1 picks the padding zero
    return total


def _outliers(
    series: Series, context: Context, hit: np.ndarray, why: Callable[[np.ndarray], list[str]]
) -> Hits:
    rows = np.flatnonzero(hit)
    rc = series.row_channel()[rows]
    (value,) = _texts(series, rc, series.value[rows])
    times = local_text(context.local_start[rows])
    detail = [f"{v} at {t} {x}" for v, t, x in zip(value, times, why(rows), strict=True)]
    return Hits.of(rc, series.interval_end[rows], detail)


def _flag(
    hours: _Hours, value: np.ndarray, ok: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Eligible rows of groups ``ok`` outside their group's ``[lo, hi]``."""
    g = hours.group
    lo = np.where(ok, lo, -np.inf)
    hi = np.where(ok, hi, np.inf)
    out: np.ndarray = hours.eligible & ((value < lo[g]) | (value > hi[g]))
    return out


def outlier_zscore(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """An interval far from the mean of the same local hour of the week in earlier weeks."""
    if not series.rows:
        return Hits.empty()
    hours = _hours(series, context, params)
    value = np.where(hours.usable, series.value, 0).astype(np.float64)
    n = _history_sum(np.add.reduceat(hours.usable.astype(np.float64), hours.start), hours)
    s = _history_sum(np.add.reduceat(value, hours.start), hours)
    q = _history_sum(np.add.reduceat(value * value, hours.start), hours)
    mean = s / np.maximum(n, 1)
    std = np.sqrt(np.maximum(q - s * mean, 0.0) / np.maximum(n - 1, 1))
    floor = np.maximum(
        float(params["std_floor_mwh"]), float(params["std_floor_fraction"]) * hours.scale
    )
    limit = float(params["z"])
    width = limit * np.maximum(std, floor)
    ok = n >= int(params["min_samples"])
    hit = _flag(hours, series.value, ok, mean - width, mean + width)
    weeks = len(hours.history)

    def why(rows: np.ndarray) -> list[str]:
        g = hours.group[rows]
        z = (series.value[rows] - mean[g]) / (width[g] / limit)
        avg, dev = _texts(series, series.row_channel()[rows], mean[g], std[g])
        return [
            f"vs {a} ± {d} at this hour of the week in {weeks} weeks before (z {zz:+.1f},"
            f" limit {limit:g})"
            for a, d, zz in zip(avg, dev, z.tolist(), strict=True)
        ]

    return _outliers(series, context, hit, why)


def _quartiles(sample: np.ndarray, hours: _Hours, groups: np.ndarray, width: int) -> np.ndarray:
    """(Q1, Q3) of the history samples of ``groups`` (whose history groups have at most
    ``width`` rows), interpolated linearly between order statistics: a (2, groups) array.
    ``sample`` ends with a NaN, which stands for "no sample"."""
    nan_at = len(sample) - 1
    back = np.stack([h[groups] for h in hours.history], axis=1)  # (groups, weeks)
    first = np.where(back >= 0, hours.start[np.maximum(back, 0)], nan_at)
    rows = np.where(back >= 0, hours.count[np.maximum(back, 0)], 0)
    offset = np.arange(width, dtype=_I64)
    at = first[:, :, None] + offset
    at = np.where(offset < rows[:, :, None], at, nan_at).reshape(len(groups), -1)
    matrix = sample[at]
    matrix.sort(axis=1)  # NaN sorts last
    top = np.maximum(np.count_nonzero(~np.isnan(matrix), axis=1) - 1, 0)
    out = np.empty((2, len(groups)))
    across = np.arange(len(groups))
    for i, f in enumerate((0.25, 0.75)):
        pos = f * top
        lo = np.floor(pos).astype(_I64)
        a, b = matrix[across, lo], matrix[across, np.minimum(lo + 1, top)]
        out[i] = a + (pos - lo) * (b - a)
    return out


def outlier_iqr(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """An interval outside the interquartile fences of the same local hour of the week."""
    if not series.rows:
        return Hits.empty()
    hours = _hours(series, context, params)
    n = _history_sum(np.add.reduceat(hours.usable.astype(np.float64), hours.start), hours)
    wanted = (np.add.reduceat(hours.eligible, hours.start) > 0) & (n >= int(params["min_samples"]))
    padded = np.append(hours.count, 0)
    width = np.zeros(len(hours.start), dtype=_I64)
    for back in hours.history:
        width = np.maximum(width, padded[back])
    q = np.zeros((2, len(hours.start)))
    sample = np.append(np.where(hours.usable, series.value.astype(np.float64), np.nan), np.nan)
    for w in np.unique(width[wanted]).tolist():  # a few widths: 4 a quarter-hour, 8 in autumn
        groups = np.flatnonzero(wanted & (width == w))
        for lo in range(0, len(groups), _CHUNK):  # blocks bound the matrix's memory
            block = groups[lo : lo + _CHUNK]
            q[:, block] = _quartiles(sample, hours, block, int(w))
    k = float(params["k"])
    floor = np.maximum(
        float(params["iqr_floor_mwh"]), float(params["iqr_floor_fraction"]) * hours.scale
    )
    spread = np.maximum(q[1] - q[0], floor)
    low, high = q[0] - k * spread, q[1] + k * spread
    hit = _flag(hours, series.value, wanted, low, high)
    weeks = len(hours.history)

    def why(rows: np.ndarray) -> list[str]:
        g = hours.group[rows]
        a, b = _texts(series, series.row_channel()[rows], low[g], high[g])
        return [
            f"outside {x} .. {y} (quartiles ± {k:g} IQR) of this hour of the week in {weeks}"
            " weeks before"
            for x, y in zip(a, b, strict=True)
        ]

    return _outliers(series, context, hit, why)


RULES: dict[str, Rule] = {
    "SPIKE": spike,
    "HIGH_USAGE": high_usage,
    "LOW_USAGE": low_usage,
    "MULTIPLIER_MISMATCH": multiplier_mismatch,
    "OUTLIER_ZSCORE": outlier_zscore,
    "OUTLIER_IQR": outlier_iqr,
}

_DAILY: dict[str, object] = {"history_days": 28, "min_days": 7, "floor_mwh": 1_000_000}

DEFAULTS: dict[str, dict[str, object]] = {
    "SPIKE": {"severity": "warn", "ratio": 4.0, "floor_mwh": 1_000_000},
    "HIGH_USAGE": {
        "severity": "warn",
        "high_factor": 2.5,
        **_DAILY,
        "power_of_ten_tolerance": 0.15,  # such days are MULTIPLIER_MISMATCH's
    },
    "LOW_USAGE": {
        "severity": "warn",
        "low_factor": 0.25,
        **_DAILY,
        "power_of_ten_tolerance": 0.15,
    },
    "MULTIPLIER_MISMATCH": {"severity": "warn", "tolerance": 0.15, **_DAILY},
    "OUTLIER_ZSCORE": {
        "severity": "warn",
        "weeks": 4,
        "z": 5.0,
        "min_samples": 8,
        "std_floor_mwh": 50_000.0,
        "std_floor_fraction": 0.4,
        "export": False,
    },
    "OUTLIER_IQR": {
        "severity": "warn",
        "weeks": 4,
        "k": 3.0,
        "min_samples": 8,
        "iqr_floor_mwh": 50_000.0,
        "iqr_floor_fraction": 0.6,
        "export": False,
    },
}
