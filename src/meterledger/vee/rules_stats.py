"""Statistical rules: spikes within a day, a day's usage against the meter's recent average,
a multiplier or unit off by a power of ten, and interval outliers against the same local
hour of the week in earlier weeks (z-score and interquartile range).

A local day or hour of a channel is one run of rows (:func:`~meterledger.vee.facts.day_runs`,
:func:`~meterledger.vee.facts.hour_runs`). Explained rows (a rollover or reset) are neither
reported nor learnt from; estimated and power-outage rows and negatives on channels that
cannot run backwards are not learnt from. Exact bounds rule most days and intervals out
cheaply: a day can hold a spike only if its highest interval beats ``ratio`` times the mean
of its others (a floor under the third-highest); an interval can be an outlier only if it
is ``z`` (or ``k``) floors away from all its channel's values, and from all the values of
the days its history comes from. Only the hours of the channels with such intervals are
looked at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from meterledger.vee.facts import (
    chan_of,
    checked,
    facts,
    hour_runs,
    kinds,
    negatives,
    ranges,
    run_of,
)
from meterledger.vee.facts import days as day_table
from meterledger.vee.findings import Context, Hits, Rule, per_channel
from meterledger.vee.rules_values import (
    NORMAL,
    local_of,
    local_text,
    medians,
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
_WEEK_HOURS = 168
_SHIFT = _I64(1) << _I64(34)  # channel-major keys: channel * 2**34 + day or hour number
_LOWEST = np.iinfo(_I64).min
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _dates(days: np.ndarray) -> list[str]:
    """Local day numbers as ``Sun 2026-03-08``."""
    text = np.datetime_as_string(np.asarray(days, dtype="datetime64[D]")).tolist()
    weekday = ((np.asarray(days, dtype=_I64) + 3) % 7).tolist()  # 1970-01-01 was a Thursday
    return [f"{_WEEKDAYS[w]} {d}" for w, d in zip(weekday, text, strict=True)]


def spike(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """The highest interval of a local day far above the day's third-highest (and the
    second-highest too, when it is as far above: two spikes in one day)."""
    if not series.rows:
        return Hits.empty()
    _, _, start, last, total, top, _, *_ = day_table(series, context)
    count = last - start + 1
    ratio, floor = float(params["ratio"]), int(params["floor_mwh"])
    # the third-highest is at least the mean of all but the two highest
    bound = (total - 2 * top) / np.maximum(count - 2, 1)
    explained = np.flatnonzero(context.explained)
    ex_day = run_of(start, explained)
    maybe = (top > ratio * np.maximum(bound, 0)) & (top - bound > floor)
    maybe[ex_day] = True  # the bound counts every row: look at days with explained rows
    maybe = np.flatnonzero(maybe & (count >= 3))
    slot = np.full(len(start), -1, dtype=_I64)
    found: list[tuple[np.ndarray, ...]] = []
    for length in np.unique(count[maybe]).tolist():  # a loop over day lengths (92, 96 ...)
        days = maybe[count[maybe] == length]
        slot[days] = np.arange(len(days))
        at = start[days][:, None] + np.arange(length)  # one day a row
        values = series.value[at]
        mine = slot[ex_day] >= 0
        values[slot[ex_day[mine]], explained[mine] - start[ex_day[mine]]] = _LOWEST
        across = np.arange(len(days))
        first = values.argmax(axis=1)  # the first of equals
        high, high_row = values[across, first], at[across, first]
        values[across, first] = _LOWEST
        second = values.argmax(axis=1)
        next_high, next_row = values[across, second], at[across, second]
        values[across, second] = _LOWEST
        third = values.max(axis=1)
        # against the third-highest, two spikes in a day are both found
        found.append((high_row, high, third))
        found.append((next_row, next_high, third))
        slot[days] = -1
    if not found:
        return Hits.empty()
    rows, high, third = (np.concatenate(parts) for parts in zip(*found, strict=True))
    hit = (third > _LOWEST) & (high > ratio * np.maximum(third, 0)) & (high - third > floor)
    hit &= checked(series, context)[rows]
    order = np.argsort(rows[hit])
    rows, high, third = rows[hit][order], high[hit][order], third[hit][order]
    c = chan_of(series, rows)
    big, low = quantities(series, c, high), quantities(series, c, third)
    times = local_text(context.local_start[rows])
    detail = [
        f"spike {b} at {t} vs 3rd-highest {lo} of the day (ratio {r:.1f})"
        for b, t, lo, r in zip(big, times, low, (high / np.maximum(third, 1)).tolist(), strict=True)
    ]
    return Hits.of(c, series.interval_end[rows], detail)


@dataclass(frozen=True, slots=True)
class _Daily:
    """Per (channel, local day) with rows: totals and history averages."""

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
    """The :class:`_Daily` of these parameters, kept with the explained rows it was found
    with (HIGH_USAGE, LOW_USAGE and MULTIPLIER_MISMATCH share it) and found again when
    they differ."""
    store, ex = facts(series, context), np.flatnonzero(context.explained)
    key = ("daily", *(int(params[k]) for k in ("history_days", "min_days", "floor_mwh")))
    held = store.get(key)
    if held is None or not np.array_equal(held[0], ex):
        held = store[key] = ex, _find_daily(series, context, params, ex)
    daily: _Daily = held[1]
    return daily


def _find_daily(
    series: Series, context: Context, params: Mapping[str, Any], ex: np.ndarray
) -> _Daily:
    chan, day, start, last, total, _, _, complete, outage, estimated, usage = day_table(
        series, context
    )
    explained = np.bincount(run_of(start, ex), minlength=len(start))
    clean = ~outage & (explained == 0)
    usable = complete & clean & ~estimated & usage
    key = chan * _SHIFT + day
    history = int(params["history_days"])
    here = np.arange(len(key))
    lo = np.searchsorted(key, key - history, side="left")
    cum_t = np.concatenate([[0], np.cumsum(np.where(usable, total, 0), dtype=_I64)])
    cum_n = np.concatenate([[0], np.cumsum(usable, dtype=_I64)])
    days = cum_n[here] - cum_n[lo]
    enough = days >= int(params["min_days"])
    average = np.where(enough, (cum_t[here] - cum_t[lo]) / np.maximum(days, 1), 0.0)
    like_sum, like_n = np.zeros(len(key)), np.zeros(len(key), dtype=_I64)
    for weeks in range(1, history // 7 + 1):  # the same weekday 1, 2, ... weeks before
        at = np.minimum(np.searchsorted(key, key - 7 * weeks), len(key) - 1)
        ok = (key[at] == key - 7 * weeks) & usable[at]
        like_sum += np.where(ok, total[at], 0)
        like_n += ok
    like = np.where(like_n >= 2, like_sum / np.maximum(like_n, 1), 0.0)
    floor = int(params["floor_mwh"])
    average[(average < floor) | ~usage] = 0.0
    like[(like < floor) | ~usage] = 0.0
    ratio = np.divide(total, average, out=np.zeros(len(total)), where=average > 0)
    like_ratio = np.divide(total, like, out=np.zeros(len(total)), where=like > 0)
    return _Daily(chan, day, last, total, complete, clean, average, ratio, like, like_ratio)


def _scaled(daily: _Daily, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """MULTIPLIER_MISMATCH's days: complete and clean, the total off by a power of ten
    against the same weekdays before (first choice) or the average day; and which."""
    like = power_of_ten(daily.like_ratio, tolerance) != 0
    scaled = like | (power_of_ten(daily.ratio, tolerance) != 0)
    out: np.ndarray = daily.complete & daily.clean & scaled
    return out, like


def _usage(series: Series, context: Context, params: Mapping[str, Any], high: bool) -> Hits:
    if not series.rows:
        return Hits.empty()
    daily = _daily(series, context, params)
    scaled, _ = _scaled(daily, float(params["power_of_ten_tolerance"]))
    if high:
        hit = daily.clean & (daily.ratio > float(params["high_factor"]))
    else:  # a part of a day is naturally low: whole days only
        hit = daily.complete & daily.clean & (daily.ratio < float(params["low_factor"]))
    hit &= (daily.average > 0) & ~scaled
    which = np.flatnonzero(hit & checked(series, context)[daily.last])
    c = daily.chan[which]
    total, avg = (quantities(series, c, v[which]) for v in (daily.total, daily.average))
    what = "high" if high else "low"
    detail = [
        f"{what} usage on {d}: {t} vs average {a} a day (ratio {r:.2f})"
        for d, t, a, r in zip(
            _dates(daily.day[which]), total, avg, daily.ratio[which].tolist(), strict=True
        )
    ]
    return Hits.of(c, series.interval_end[daily.last[which]], detail)


def high_usage(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """A local day's usage far above the meter's average day of the weeks before."""
    return _usage(series, context, params, high=True)


def low_usage(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """A whole local day's usage far below the meter's average day of the weeks before."""
    return _usage(series, context, params, high=False)


def multiplier_mismatch(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """A day's usage, or the intervals against the register, off by a power of ten."""
    if not series.rows:
        return Hits.empty()
    tolerance = float(params["tolerance"])
    pairs = read_pairs(series, context, 6, 10.0)
    delta, got = pairs.delta, pairs.intervals
    ratio = np.divide(got, delta, out=np.zeros(len(delta)), where=(delta > 0) & (got > 0))
    use = pairs.covered & ~pairs.odd & (pairs.kind == NORMAL) & (pairs.last_row >= 0)
    which = np.flatnonzero(use & (power_of_ten(ratio, tolerance) != 0))
    which = which[checked(series, context)[pairs.last_row[which]]]
    c = pairs.channel[which]
    s, d = quantities(series, c, got[which]), quantities(series, c, delta[which])
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
    day = np.flatnonzero(hit & checked(series, context)[daily.last])
    like = like[day]
    base = np.where(like, daily.like[day], daily.average[day])
    total, avg = (quantities(series, daily.chan[day], v) for v in (daily.total[day], base))
    ratio = np.where(like, daily.like_ratio[day], daily.ratio[day])
    detail += [
        f"usage on {dt}: {t} vs {a} {'on the same weekday' if w else 'a day'} before:"
        f" ratio {r:.3g}, a power of ten (multiplier or unit mismatch)"
        for dt, t, a, w, r in zip(
            _dates(daily.day[day]), total, avg, like.tolist(), ratio.tolist(), strict=True
        )
    ]
    chans.append(daily.chan[day])  # the engine keeps one finding an interval: the register's
    ends.append(series.interval_end[daily.last[day]])
    return Hits.of(np.concatenate(chans), np.concatenate(ends), detail)


def _channel_scale(series: Series, context: Context) -> tuple[np.ndarray, ...]:
    """Per channel: its typical daily peak (the median over its local days of the day's
    highest interval), its highest value, a floor under its usable values (its lowest,
    but not below zero where values cannot be negative: negatives are not learnt from) and
    its lowest value."""
    store = facts(series, context)
    if "scale" not in store:
        chan, _, _, _, _, high, low, *_ = day_table(series, context)
        counts = np.bincount(chan, minlength=len(series.channels))
        first = np.cumsum(counts) - counts
        has = counts > 0
        median = medians(chan, np.clip(high, 0, (1 << 40) - 1), len(counts))
        top, bottom = np.zeros(len(counts), dtype=_I64), np.zeros(len(counts), dtype=_I64)
        top[has] = np.maximum.reduceat(high, first[has])
        bottom[has] = np.minimum.reduceat(low, first[has])
        lowest = bottom.copy()
        bottom = np.where(series.channels.allows_negative, bottom, np.maximum(bottom, 0))
        negative = negatives(series, context)
        store["negative"] = negative[~series.channels.allows_negative[chan_of(series, negative)]]
        store["scale"] = median, top, bottom, lowest
    out: tuple[np.ndarray, ...] = store["scale"]
    return out


def _history(
    series: Series, context: Context, rows: np.ndarray, weeks: int
) -> tuple[np.ndarray, np.ndarray]:
    """For ``rows`` (sorted), the index of each one's local hour among theirs, and per such
    hour the usable samples of the same local hour 1 .. ``weeks`` weeks before: a (hours,
    samples) matrix, NaN where none. Only the hours of the rows' channels are looked at."""
    store = facts(series, context)
    chans = chan_of(series, rows)
    chans = chans[np.append(True, np.diff(chans) != 0)] if len(chans) else chans
    for some in (chans, None):  # all channels' runs only when a search is ambiguous
        start, key, count, lo, hi = hour_runs(series, context, some)
        run = run_of(start, rows)
        new = np.append(True, np.diff(run) != 0) if len(run) else np.ones(0, dtype=bool)
        group, which = run[new], np.cumsum(new) - 1
        want = key[group][:, None] - _WEEK_HOURS * np.arange(1, weeks + 1)  # (hours, weeks)
        pairs = zip(lo.tolist(), hi.tolist(), strict=True)
        if some is None or not any(((want > a) & (want <= b)).any() for a, b in pairs):
            break
    back = np.minimum(np.searchsorted(key, want), len(key) - 1)
    found = key[back] == want
    width = int(np.where(found, count[back], 0).max(initial=1))
    offset = np.arange(width, dtype=_I64)
    shape = len(group), weeks * width
    at = (np.where(found, start[back], 0)[:, :, None] + offset).reshape(shape)
    ok = (offset < np.where(found, count[back], 0)[:, :, None]).reshape(shape)
    unusable = context.explained.copy()
    unusable[store["unusable"]] = True
    unusable[store["negative"]] = True
    ok &= ~unusable[at]
    return which, np.where(ok, series.value[np.where(ok, at, 0)], np.nan)


def _past_reach(
    series: Series, context: Context, rows: np.ndarray, reach: np.ndarray, weeks: int
) -> np.ndarray:
    """Which ``rows`` can be ``reach`` from every value of the local days their history
    comes from (the same weekday 1 .. ``weeks`` weeks before): its samples lie between
    those days' lowest and highest values. A hair of slack keeps rounding out of it; a
    channel whose local days go back (overlapping rows) keeps all its rows."""
    chan, day, start, _, _, high, low, *_ = day_table(series, context)
    key = chan * _SHIFT + day
    run = run_of(start, rows)
    new = np.append(True, np.diff(run) != 0) if len(run) else np.ones(0, dtype=bool)
    days, which = run[new], np.cumsum(new) - 1  # the rows' days, and each row's
    lowest, highest = np.full(len(days), np.inf), np.full(len(days), -np.inf)
    for w in range(1, weeks + 1):
        want = key[days] - 7 * w
        at = np.minimum(np.searchsorted(key, want), len(key) - 1)
        hit = key[at] == want
        lowest = np.where(hit, np.minimum(lowest, low[at]), lowest)
        highest = np.where(hit, np.maximum(highest, high[at]), highest)
    unsorted = np.zeros(len(series.channels), dtype=bool)
    unsorted[chan[1:][np.diff(key) <= 0]] = True
    slack, value = reach * (1 - 1e-9), series.value[rows]
    out: np.ndarray = (value > lowest[which] + slack) | (value < highest[which] - slack)
    out |= unsorted[chan[days]][which]
    return out


def _outliers(
    series: Series,
    context: Context,
    params: Mapping[str, Any],
    floors: tuple[str, str, float],
    judge: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, list[str]]],
) -> Hits:
    """Rows ``judge`` flags among the eligible ones (checked, not explained, on a channel
    looked at) more than ``floors[2]`` floors from every value of their channel; ``judge``
    gets the rows, their floors, the history matrix of their hours and each row's hour."""
    if not series.rows:
        return Hits.empty()
    peak, top, bottom, lowest = _channel_scale(series, context)
    floor = np.maximum(float(params[floors[0]]), float(params[floors[1]]) * peak)
    reach = floors[2] * floor
    above, below = bottom + reach, top - reach
    # only the channels whose values reach past a bound can have rows that do
    chans = np.flatnonzero((top > above) | (lowest < below))
    counts = np.diff(series.offsets)[chans]
    rows = ranges(series.offsets[chans], series.offsets[chans + 1])
    c = np.repeat(chans, counts)
    value = series.value
    maybe = (value[rows] > above[c]) | (value[rows] < below[c])
    rows, c = rows[maybe], c[maybe]
    _, export = kinds(series, context)
    eligible = (~export | bool(params["export"]))[c] & ~context.explained[rows]
    eligible &= checked(series, context)[rows]
    rows, c = rows[eligible], c[eligible]
    if int(params["min_samples"]) >= 1:  # rows without history cannot be flagged then
        keep = _past_reach(series, context, rows, reach[c], int(params["weeks"]))
        rows, c = rows[keep], c[keep]
    which, samples = _history(series, context, rows, int(params["weeks"]))
    enough = (np.sum(~np.isnan(samples), axis=1) >= int(params["min_samples"]))[which]
    rows, c, which = rows[enough], c[enough], which[enough]
    flag, text = judge(rows, floor[c], samples, which)
    rows, c = rows[flag], c[flag]
    times = local_text(context.local_start[rows])
    lines = zip(quantities(series, c, value[rows]), times, text, strict=True)
    return Hits.of(c, series.interval_end[rows], [f"{v} at {t} {x}" for v, t, x in lines])


def outlier_zscore(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """An interval far from the mean of the same local hour of the week in earlier weeks."""
    limit, weeks = float(params["z"]), int(params["weeks"])

    def judge(
        rows: np.ndarray, floor: np.ndarray, samples: np.ndarray, which: np.ndarray
    ) -> tuple[np.ndarray, list[str]]:
        n = np.sum(~np.isnan(samples), axis=1)
        mean = np.nansum(samples, axis=1) / np.maximum(n, 1)
        std = np.sqrt(np.nansum((samples - mean[:, None]) ** 2, axis=1) / np.maximum(n - 1, 1))
        mean, std = mean[which], std[which]
        z = (series.value[rows] - mean) / np.maximum(std, floor)
        flag = np.abs(z) > limit
        c = chan_of(series, rows[flag])
        avg, dev = quantities(series, c, mean[flag]), quantities(series, c, std[flag])
        return flag, [
            f"vs {a} ± {d} at this hour of the week in {weeks} weeks before (z {zz:+.1f},"
            f" limit {limit:g})"
            for a, d, zz in zip(avg, dev, z[flag].tolist(), strict=True)
        ]

    return _outliers(series, context, params, ("std_floor_mwh", "std_floor_fraction", limit), judge)


def outlier_iqr(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """An interval outside the interquartile fences of the same local hour of the week."""
    k, weeks = float(params["k"]), int(params["weeks"])

    def judge(
        rows: np.ndarray, floor: np.ndarray, samples: np.ndarray, which: np.ndarray
    ) -> tuple[np.ndarray, list[str]]:
        ordered = np.sort(samples, axis=1)  # NaN sorts last
        top = np.maximum(np.sum(~np.isnan(samples), axis=1) - 1, 0)
        across = np.arange(len(samples))
        q = []
        for f in (0.25, 0.75):  # numpy's default: linear between order statistics
            pos = f * top
            lo = np.floor(pos).astype(_I64)
            a, b = ordered[across, lo], ordered[across, np.minimum(lo + 1, top)]
            q.append((a + (pos - lo) * (b - a))[which])
        spread = np.maximum(q[1] - q[0], floor)
        low, high = q[0] - k * spread, q[1] + k * spread
        value = series.value[rows]
        flag = (value < low) | (value > high)
        c = chan_of(series, rows[flag])
        x, y = quantities(series, c, low[flag]), quantities(series, c, high[flag])
        return flag, [
            f"outside {a} .. {b} (quartiles ± {k:g} IQR) of this hour of the week in {weeks}"
            " weeks before"
            for a, b in zip(x, y, strict=True)
        ]

    return _outliers(series, context, params, ("iqr_floor_mwh", "iqr_floor_fraction", k), judge)


RULES: dict[str, Rule] = {
    "SPIKE": per_channel(spike),
    "HIGH_USAGE": high_usage,
    "LOW_USAGE": low_usage,
    "MULTIPLIER_MISMATCH": multiplier_mismatch,
    "OUTLIER_ZSCORE": outlier_zscore,
    "OUTLIER_IQR": outlier_iqr,
}

# export channels follow the weather: left out
_OUTLIER: dict[str, object] = {"severity": "warn", "weeks": 4, "min_samples": 8, "export": False}
_DAILY: dict[str, object] = {"history_days": 28, "min_days": 7, "floor_mwh": 1_000_000}
_TEN = 0.15  # HIGH_USAGE and LOW_USAGE leave days this near a power of ten to the multiplier

DEFAULTS: dict[str, dict[str, object]] = {
    "SPIKE": {"severity": "fail", "ratio": 4.0, "floor_mwh": 1_000_000},
    "HIGH_USAGE": {
        "severity": "warn",
        "high_factor": 2.5,
        **_DAILY,
        "power_of_ten_tolerance": _TEN,
    },
    "LOW_USAGE": {"severity": "warn", "low_factor": 0.25, **_DAILY, "power_of_ten_tolerance": _TEN},
    "MULTIPLIER_MISMATCH": {"severity": "warn", "tolerance": _TEN, **_DAILY},
    "OUTLIER_ZSCORE": {
        **_OUTLIER,
        "z": 5.0,
        "std_floor_mwh": 50_000.0,
        "std_floor_fraction": 0.4,  # of the channel's typical daily peak
    },
    "OUTLIER_IQR": {**_OUTLIER, "k": 3.0, "iqr_floor_mwh": 50_000.0, "iqr_floor_fraction": 0.6},
}
