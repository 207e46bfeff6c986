"""Billing determinants of many cycles at once, vectorised over the interval arrays.

Input is :class:`Usage`: the rows of cycle request ``i`` are ``offsets[i]:offsets[i+1]``,
sorted by ``interval_end`` (UTC epoch seconds), with delivered and received energy in mWh
(exact integers) and an estimated flag. Every cycle is cut into *segments*: the service
window, split where a tariff version takes effect and where the season changes. All sums are
integer mWh; nothing here is a Python loop per interval.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

import numpy as np

from meterledger.billing.calendar import LocalTime, local_day_number, local_midnight_utc, localize
from meterledger.billing.cycles import CycleRequest
from meterledger.billing.tariff import CompiledVersion, Tariff
from meterledger.core.errors import InputError

__all__ = ["Aggregates", "SegmentPlan", "Usage", "compute"]

_KEY_SHIFT = np.int64(1 << 36)  # epoch seconds fit in 36 bits until the year 4147


@dataclass(frozen=True)
class Usage:
    """Interval data of the cycles to bill, grouped per request (see the module docstring).
    ``interval_seconds[i]`` is the interval length of request ``i``'s meter data."""

    offsets: np.ndarray
    interval_end: np.ndarray
    delivered: np.ndarray
    received: np.ndarray
    estimated: np.ndarray
    interval_seconds: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.interval_end)
        for name in ("delivered", "received", "estimated"):
            if len(getattr(self, name)) != n:
                raise InputError(f"usage arrays differ in length ({name})")
        if len(self.offsets) == 0 or int(self.offsets[-1]) != n:
            raise InputError("usage offsets must end at the number of rows")

    def slice(self, lo: int, hi: int) -> Usage:
        """The rows of requests ``lo:hi`` (views, no copy)."""
        a, b = int(self.offsets[lo]), int(self.offsets[hi])
        return Usage(
            self.offsets[lo : hi + 1] - a,
            self.interval_end[a:b],
            self.delivered[a:b],
            self.received[a:b],
            self.estimated[a:b],
            self.interval_seconds[lo:hi],
        )

    @classmethod
    def single(
        cls,
        interval_end: np.ndarray,
        delivered: np.ndarray,
        received: np.ndarray | None = None,
        estimated: np.ndarray | None = None,
        *,
        requests: int = 1,
        interval_seconds: int | None = None,
    ) -> Usage:
        """The same series for ``requests`` consecutive requests (months of one load file):
        every request sees all rows, and its segments pick out its own."""
        n = len(interval_end)
        ends = np.tile(np.asarray(interval_end, dtype=np.int64), requests)
        rec = np.zeros(n, dtype=np.int64) if received is None else received
        est = np.zeros(n, dtype=bool) if estimated is None else estimated
        seconds = interval_seconds or infer_interval(np.asarray(interval_end, dtype=np.int64))
        return cls(
            np.arange(requests + 1, dtype=np.int64) * n,
            ends,
            np.tile(np.asarray(delivered, dtype=np.int64), requests),
            np.tile(np.asarray(rec, dtype=np.int64), requests),
            np.tile(np.asarray(est, dtype=bool), requests),
            np.full(requests, seconds, dtype=np.int64),
        )


def infer_interval(ends: np.ndarray) -> int:
    """The interval length of a sorted series: its smallest step (900 s if one row)."""
    if len(ends) < 2:
        return 900
    steps = np.diff(ends)
    steps = steps[steps > 0]
    return int(steps.min()) if len(steps) else 900


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    request: int
    start: date
    end: date
    version: int
    season: str


@dataclass(frozen=True)
class Aggregates:
    """Per-segment sums (integer mWh) by global energy/demand name, per-request daily use."""

    segments: list[SegmentPlan]
    energy_names: tuple[str, ...]
    demand_names: tuple[str, ...]
    delivered: np.ndarray  # [segment, energy name]
    received: np.ndarray
    net_import: np.ndarray  # Σ max(d − r, 0) per interval
    net_export: np.ndarray  # Σ max(r − d, 0) per interval
    estimated: np.ndarray  # [segment]: delivered mWh of estimated intervals
    intervals: np.ndarray  # [segment]
    flat_max: np.ndarray  # [segment]: max window energy (mWh), −1 without data
    tou_max: np.ndarray  # [segment, demand name]
    window_seconds: np.ndarray  # [segment]: max(its version's window, interval length)
    interval_seconds: np.ndarray  # [request]
    daily: np.ndarray  # [request, day of cycle, energy name] delivered mWh


def _plan(tariff: Tariff, requests: list[CycleRequest]) -> list[SegmentPlan]:
    plans: list[SegmentPlan] = []
    cache: dict[tuple[date, date], list[tuple[date, date, int, str]]] = {}
    for index, req in enumerate(requests):
        window = (req.service_start, req.service_end)
        pieces = cache.get(window)
        if pieces is None:
            pieces = cache[window] = _pieces(tariff, *window)
        plans.extend(SegmentPlan(index, a, b, v, s) for a, b, v, s in pieces)
    return plans


def _pieces(tariff: Tariff, start: date, end: date) -> list[tuple[date, date, int, str]]:
    """``[start, end)`` cut where a version takes effect or the season changes (seasons
    change only on the first of a month)."""
    cuts = {start}
    cuts.update(v.effective for v in tariff.versions if start < v.effective < end)
    month = date(start.year, start.month, 1)
    while month < end:
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        if start < month < end:
            cuts.add(month)
    points = [*sorted(cuts), end]
    pieces: list[tuple[date, date, int, str]] = []
    for a, b in itertools.pairwise(points):
        v = max((i for i, x in enumerate(tariff.versions) if x.effective <= a), default=0)
        season = next(n for n, s in tariff.versions[v].seasons.items() if a.month in s.months)
        if pieces and pieces[-1][2] == v and pieces[-1][3] == season:
            pieces[-1] = (pieces[-1][0], b, v, season)
        else:
            pieces.append((a, b, v, season))
    return pieces


def _names(compiled: list[CompiledVersion], attr: str) -> tuple[str, ...]:
    names: list[str] = []
    for c in compiled:
        for name in getattr(c, attr):
            if name not in names:
                names.append(name)
    return tuple(names)


def compute(
    tariff: Tariff,
    compiled: list[CompiledVersion],
    requests: list[CycleRequest],
    usage: Usage,
    *,
    holidays: frozenset[date] = frozenset(),
) -> Aggregates:
    if len(usage.offsets) != len(requests) + 1:
        raise InputError("usage must have one row group per request")
    zone = ZoneInfo(tariff.timezone)
    plans = _plan(tariff, requests)
    n_seg = len(plans)
    energy_names = _names(compiled, "energy_names")
    demand_names = _names(compiled, "demand_names")
    pe, pd = len(energy_names), len(demand_names)

    # Segment of each row: rows of request i in (lo, hi] of one of its segments. Rows are
    # sorted by (request, end), so each segment is one run of rows: find the runs' bounds
    # and label the rows by cumulative sums (no per-row search).
    bound_keys = np.empty(2 * n_seg, dtype=np.int64)
    for g, plan in enumerate(plans):
        z = requests[plan.request].zone
        base = np.int64(plan.request) * _KEY_SHIFT
        bound_keys[2 * g] = base + _midnight(plan.start, z)
        bound_keys[2 * g + 1] = base + _midnight(plan.end, z)
    ends = usage.interval_end.astype(np.int64, copy=False)
    n = len(ends)
    counts = np.diff(usage.offsets)
    row_request = np.repeat(np.arange(len(requests), dtype=np.int64), counts)
    row_key = row_request * _KEY_SHIFT + ends
    cut = np.searchsorted(row_key, bound_keys, side="right")
    starts, stops = cut[0::2], cut[1::2]
    begin = np.bincount(starts, minlength=n + 1)
    inside = np.cumsum(begin - np.bincount(stops, minlength=n + 1))[:-1] > 0
    seg = np.where(inside, np.cumsum(begin)[:-1] - 1, -1)
    valid = inside

    # Local calendar (tariff zone) of each interval's last second, and its TOU names.
    lt = localize(ends - 1, zone, holidays)
    code = (lt.month0.astype(np.int32) * 3 + lt.day_type) * 96 + lt.slot
    e_lut = np.stack([_global_lut(c.energy_lut, c.energy_names, energy_names) for c in compiled])
    d_lut = np.stack([_global_lut(c.demand_lut, c.demand_names, demand_names) for c in compiled])
    if len(compiled) == 1:
        row_version = np.zeros(n, dtype=np.int64)
        e_name = e_lut.reshape(-1)[code].astype(np.int64)
        d_name = d_lut.reshape(-1)[code].astype(np.int64)
    else:
        seg_version = np.asarray([p.version for p in plans] + [0], dtype=np.int64)
        row_version = seg_version[seg]
        flat_code = row_version * (12 * 3 * 96) + code
        e_name = e_lut.reshape(-1)[flat_code].astype(np.int64)
        d_name = d_lut.reshape(-1)[flat_code].astype(np.int64)

    d = np.where(valid, usage.delivered.astype(np.int64, copy=False), 0)
    exports = bool(usage.received.any())
    r = np.where(valid, usage.received.astype(np.int64, copy=False), 0) if exports else None
    key = np.where(valid, seg * pe + e_name, n_seg * pe)
    size = n_seg * pe + 1

    def by_key(weights: np.ndarray | None) -> np.ndarray:
        if weights is None:
            return np.zeros((n_seg, pe), dtype=np.int64)
        sums = np.bincount(key, weights=weights, minlength=size)[:-1]
        return np.rint(sums).astype(np.int64).reshape(n_seg, pe)

    seg_key = np.where(valid, seg, n_seg)
    intervals = np.bincount(seg_key, minlength=n_seg + 1)[:-1]
    if usage.estimated.any():
        est = np.bincount(seg_key, weights=np.where(usage.estimated, d, 0), minlength=n_seg + 1)
        estimated = np.rint(est[:-1]).astype(np.int64)
    else:
        estimated = np.zeros(n_seg, dtype=np.int64)

    # Demand: window energy per row (block: at each block's last row; rolling: ending there).
    shortest = int(usage.interval_seconds.min()) if len(usage.interval_seconds) else 0
    wv = np.full(n, -1, dtype=np.int64)
    for v, c in enumerate(compiled):
        w = c.version.demand.window_minutes * 60
        rows = valid & (row_version == v)
        if not rows.any():
            continue
        if c.version.demand.method == "block" and w <= shortest:
            window_rows = d  # every interval is a window of its own
        else:
            window_rows = _window_values(ends, d, seg, lt, w, c.version.demand.method, row_request)
        wv = np.where(rows, window_rows, wv)
    flat_max, tou_max = _maxima(wv, seg, d_name, n_seg, pd)
    window = np.asarray(
        [
            max(
                compiled[p.version].version.demand.window_minutes * 60,
                int(usage.interval_seconds[p.request]),
            )
            for p in plans
        ],
        dtype=np.int64,
    )

    # Daily delivered energy by energy name, per request and day of its cycle.
    span = max((req.days for req in requests), default=1)
    first_day = np.asarray([local_day_number(req.start) for req in requests], dtype=np.int64)
    day_index = lt.day - first_day[row_request] if n else np.zeros(0, dtype=np.int64)
    in_span = valid & (day_index >= 0) & (day_index < span)
    dkey = np.where(
        in_span, (row_request * span + day_index) * pe + e_name, len(requests) * span * pe
    )
    daily = np.bincount(dkey, weights=d, minlength=len(requests) * span * pe + 1)[:-1]
    net = None if r is None else d - r

    return Aggregates(
        plans,
        energy_names,
        demand_names,
        by_key(d),
        by_key(r),
        by_key(d if net is None else np.maximum(net, 0)),
        by_key(None if net is None else np.maximum(-net, 0)),
        estimated,
        intervals,
        flat_max,
        tou_max,
        window,
        usage.interval_seconds,
        np.rint(daily).astype(np.int64).reshape(len(requests), span, pe),
    )


@functools.lru_cache(maxsize=4096)
def _midnight(day: date, zone: ZoneInfo) -> int:
    return local_midnight_utc(day, zone)


def _global_lut(lut: np.ndarray, local: tuple[str, ...], names: tuple[str, ...]) -> np.ndarray:
    mapping = np.asarray([names.index(n) for n in local], dtype=np.int16)
    result: np.ndarray = mapping[lut]
    return result


def _window_values(
    ends: np.ndarray,
    d: np.ndarray,
    seg: np.ndarray,
    lt: LocalTime,
    window: int,
    method: str,
    row_request: np.ndarray,
) -> np.ndarray:
    """Energy (mWh) of the demand window that each row closes (−1 where none closes)."""
    n = len(ends)
    out = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return out
    if method == "rolling":
        csum = np.concatenate(([0], np.cumsum(np.where(seg >= 0, d, 0))))
        key = row_request * _KEY_SHIFT + ends
        start = np.searchsorted(key, key - window, side="right")
        out = csum[1:] - csum[start]
        return np.where(seg >= 0, out, -1)
    local_last = lt.day * 86_400 + lt.seconds_of_day  # local time of each interval's last second
    block = local_last // window
    change = np.ones(n, dtype=bool)
    # The repeated autumn hour has the same local times twice: a change of UTC offset
    # also closes a block, so the two hours are never summed together.
    offset = local_last - (ends - 1)
    change[1:] = (
        (block[1:] != block[:-1])
        | (seg[1:] != seg[:-1])
        | (row_request[1:] != row_request[:-1])
        | (offset[1:] != offset[:-1])
    )
    starts = np.flatnonzero(change)
    sums = np.add.reduceat(d, starts)
    last = np.append(starts[1:] - 1, n - 1)
    out[last] = sums
    return np.where(seg >= 0, out, -1)


def _maxima(
    wv: np.ndarray, seg: np.ndarray, d_name: np.ndarray, n_seg: int, pd: int
) -> tuple[np.ndarray, np.ndarray]:
    flat = np.full(n_seg + 1, -1, dtype=np.int64)
    tou = np.full((n_seg + 1) * max(pd, 1), -1, dtype=np.int64)
    keep = (seg >= 0) & (wv >= 0)
    s = np.where(keep, seg, n_seg)
    np.maximum.at(flat, s, np.where(keep, wv, -1))
    np.maximum.at(tou, s * max(pd, 1) + np.where(keep, d_name, 0), np.where(keep, wv, -1))
    return flat[:-1], tou.reshape(n_seg + 1, max(pd, 1))[:-1, :pd]
