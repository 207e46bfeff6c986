"""The arrays VEE works on: many channels' interval data, concatenated, plus their context.

Everything is a numpy array so that rules and estimation run vectorised, never a Python
loop per interval. Channel ``c`` owns rows ``offsets[c]:offsets[c + 1]`` of the row arrays,
sorted by ``interval_end`` (UTC epoch seconds of the interval's end). Values are integer
milli-units of the channel's base unit (mWh for energy), as the store keeps them.

Rows with ``interval_end <= check_from[c]`` are history: rules read them for context
(averages, hour-of-week statistics, like days) but report findings only on the rows after
``check_from[c]``, up to ``check_to[c]`` (the end of the window looked at, which gap rules
also use to see trailing gaps).

Register reads (cumulative values, e.g. the 1.8.0 register read at a collection) and the
meter's clock reads (DLMS clock against the head-end's clock) come in the same layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

__all__ = [
    "Channels",
    "ClockReads",
    "Registers",
    "Series",
    "local_epoch",
    "local_starts",
    "offsets_of",
    "ragged",
]

_I64 = np.int64


def offsets_of(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """The offsets (length ``len(counts) + 1``) of groups of these sizes."""
    out = np.zeros(len(counts) + 1, dtype=_I64)
    np.cumsum(np.asarray(counts, dtype=_I64), out=out[1:])
    return out


def ragged(offsets: np.ndarray) -> np.ndarray:
    """The group index of every row: ``[0, 0, 1, 1, 1, ...]`` for these offsets."""
    counts = np.diff(offsets)
    return np.repeat(np.arange(len(counts), dtype=_I64), counts)


@dataclass(frozen=True, slots=True)
class Channels:
    """Per-channel context, all of length C.

    ``meter_class`` and ``source`` pick the rule parameters (see :mod:`meterledger.vee.config`);
    ``source`` is the kind of feed the data came by (``csv``, ``jsonl``, ``greenbutton``,
    ``dlms``, ...). ``step`` is the channel's expected interval length in seconds.
    ``net`` is True for a net meter (reverse flow allowed) and ``allows_negative`` for a
    channel whose values may be negative (a net channel)."""

    channel_id: np.ndarray
    meter_id: tuple[str, ...]
    obis: tuple[str, ...]
    timezone: tuple[str, ...]
    meter_class: tuple[str, ...]
    source: tuple[str, ...]
    step: np.ndarray
    net: np.ndarray
    allows_negative: np.ndarray

    def __len__(self) -> int:
        return len(self.meter_id)


@dataclass(frozen=True, slots=True)
class Series:
    """Interval rows of many channels (see the module docstring)."""

    channels: Channels
    offsets: np.ndarray
    interval_end: np.ndarray
    interval_seconds: np.ndarray
    value: np.ndarray
    quality: np.ndarray
    check_from: np.ndarray
    check_to: np.ndarray
    # arrays derived once per series (row_channel, checked), read-only, shared by the rules
    _memo: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def rows(self) -> int:
        return len(self.interval_end)

    def row_channel(self) -> np.ndarray:
        """The channel index of every row (computed once; read-only)."""
        held = self._memo.get("row_channel")
        if held is None:
            held = ragged(self.offsets)
            held.flags.writeable = False
            self._memo["row_channel"] = held
        return held

    def checked(self) -> np.ndarray:
        """Boolean mask of the rows findings may be reported on (computed once; read-only)."""
        held = self._memo.get("checked")
        if held is None:
            c = self.row_channel()
            held = (self.interval_end > self.check_from[c]) & (
                self.interval_end <= self.check_to[c]
            )
            held.flags.writeable = False
            self._memo["checked"] = held
        return held


@dataclass(frozen=True, slots=True)
class Registers:
    """Cumulative register reads per channel: channel ``c`` owns ``offsets[c]:offsets[c+1]``
    of ``read_at`` (UTC epoch seconds, ascending) and ``value`` (milli-units)."""

    offsets: np.ndarray
    read_at: np.ndarray
    value: np.ndarray

    @classmethod
    def empty(cls, channels: int) -> Registers:
        none = np.empty(0, dtype=_I64)
        return cls(np.zeros(channels + 1, dtype=_I64), none, none)


@dataclass(frozen=True, slots=True)
class ClockReads:
    """Clock reads per channel (a meter's reads repeated for each of its channels): channel
    ``c`` owns ``offsets[c]:offsets[c+1]`` of ``read_at`` (UTC epoch seconds, ascending) and
    ``drift_ms`` (meter clock minus head-end clock, milliseconds)."""

    offsets: np.ndarray
    read_at: np.ndarray
    drift_ms: np.ndarray

    @classmethod
    def empty(cls, channels: int) -> ClockReads:
        none = np.empty(0, dtype=_I64)
        return cls(np.zeros(channels + 1, dtype=_I64), none, none)


@lru_cache(maxsize=256)
def _transitions(tz: str, first_hour: int, last_hour: int) -> tuple[np.ndarray, np.ndarray]:
    """UTC-offset changes of ``tz`` between two epoch hours: ``(starts, offsets)`` where
    ``offsets[i]`` (seconds) holds from ``starts[i]`` on. Zones change offset on whole
    quarter-hours, so probing each hour finds every change to within the hour, which is
    then refined to the exact second."""
    zone = ZoneInfo(tz)
    hours = np.arange(first_hour, last_hour + 2, dtype=_I64) * 3600

    def offset(t: int) -> int:
        delta = datetime.fromtimestamp(int(t), UTC).astimezone(zone).utcoffset()
        return int((delta or timedelta(0)).total_seconds())

    probes = np.array([offset(int(t)) for t in hours], dtype=_I64)
    change = np.flatnonzero(np.diff(probes)) + 1
    starts = [int(hours[0])]
    values = [int(probes[0])]
    for i in change:
        lo, hi = int(hours[i - 1]), int(hours[i])
        while hi - lo > 1:  # the first second with the new offset
            mid = (lo + hi) // 2
            if offset(mid) == probes[i]:
                hi = mid
            else:
                lo = mid
        starts.append(hi)
        values.append(int(probes[i]))
    return np.array(starts, dtype=_I64), np.array(values, dtype=_I64)


_BLOCK = 24 * 32  # hours: tables cover month-sized blocks, so neighbouring calls share them
_TABLES: dict[str, list[tuple[int, int, np.ndarray, np.ndarray]]] = {}


def _table(tz: str, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_transitions` of ``tz`` covering the instants ``lo .. hi``: a table already
    made that covers them (it gives every instant there the same offset), else a new one."""
    first, last = lo // 3600 - 1, hi // 3600 + 1
    made = _TABLES.setdefault(tz, [])
    for a, b, starts, offsets in made:
        if a <= first and last <= b:
            return starts, offsets
    a, b = (first // _BLOCK) * _BLOCK, (last // _BLOCK + 1) * _BLOCK
    starts, offsets = _transitions(tz, a, b)
    if len(made) < 64:
        made.append((a, b + 1, starts, offsets))
    return starts, offsets


def local_epoch(instants: np.ndarray, tz: str) -> np.ndarray:
    """Wall-clock seconds in ``tz`` for UTC epoch ``instants``, as if the wall clock were
    UTC: ``local_epoch(t) // 86400`` is the local day number, ``% 86400`` the time of day.
    Vectorised: zoneinfo is asked once per hour of the span, not once per instant."""
    instants = np.asarray(instants, dtype=_I64)
    if not len(instants):
        return instants.copy()
    if tz == "UTC":
        return instants.copy()
    starts, offsets = _table(tz, int(instants.min()), int(instants.max()))
    index = np.searchsorted(starts, instants, side="right") - 1
    local: np.ndarray = instants + offsets[np.maximum(index, 0)]
    return local


def _first_at_least(
    values: np.ndarray, lo: np.ndarray, hi: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Per query, the first index in ``lo .. hi`` where the sorted ``values[lo:hi]`` reach
    ``t`` (``hi`` when none): one binary search of all queries at once."""
    lo, hi = lo.copy(), hi.copy()
    top = max(len(values) - 1, 0)
    while len(lo) and (lo < hi).any():
        mid = (lo + hi) // 2
        open_ = lo < hi
        below = values[np.minimum(mid, top)] < t
        lo = np.where(open_ & below, mid + 1, lo)
        hi = np.where(open_ & ~below, mid, hi)
    return lo


def _spans(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The integers ``lo[i] .. hi[i] - 1`` of every i, concatenated."""
    counts = np.maximum(hi - lo, 0)
    out: np.ndarray = np.repeat(lo - (np.cumsum(counts) - counts), counts)
    return out + np.arange(int(counts.sum()), dtype=_I64)


def local_starts(
    series: Series, starts: np.ndarray | None = None, back: np.ndarray | None = None
) -> np.ndarray:
    """Every row's interval start (``interval_end - interval_seconds``, or ``starts`` when
    given) as :func:`local_epoch` in its channel's zone. A channel's starts mostly run
    forward, so its offset changes at a few rows, found by binary search; a channel whose
    starts go back somewhere (overlapping rows) is looked up row by row. ``back``, when
    given, holds every row whose start is before the start of the row before it."""
    if starts is None:
        starts = series.interval_end - series.interval_seconds
    out: np.ndarray = starts
    off, n, zones = series.offsets, series.rows, series.channels.timezone
    has = np.flatnonzero(np.diff(off) > 0)
    zone = np.asarray(zones, dtype=object)[has]
    if not n or (zone == "UTC").all():
        return out.copy()
    lowest, highest = out[off[has]], out[off[has + 1] - 1]  # of the channels running forward
    if back is None:
        back = np.flatnonzero(out[1:] < out[:-1]) + 1
    unsorted = np.zeros(len(zones), dtype=bool)
    unsorted[np.searchsorted(off, back[~np.isin(back, off)], side="right") - 1] = True
    rows, values = [off[has]], [np.zeros(len(has), dtype=_I64)]
    lookups: list[tuple[np.ndarray, str]] = []
    for tz in sorted(set(zone.tolist()) - {"UTC"}):
        k = np.flatnonzero(zone == tz)
        slow = unsorted[has[k]]
        if slow.any():
            c = has[k[slow]]
            lookups.append((_spans(off[c], off[c + 1]), tz))
        k = k[~slow]
        if not len(k):
            continue
        changes, offsets = _table(tz, int(lowest[k].min()), int(highest[k].max()))
        first = np.maximum(np.searchsorted(changes, lowest[k], side="right") - 1, 0)
        last = np.maximum(np.searchsorted(changes, highest[k], side="right") - 1, 0)
        values[0][k] = offsets[first]
        # each change inside a channel's span starts a run of rows with the new offset
        c = np.repeat(has[k], last - first)
        change = _spans(first + 1, last + 1)
        rows.append(_first_at_least(out, off[c], off[c + 1], changes[change]))
        values.append(offsets[change])
    at, by = np.concatenate(rows), np.concatenate(values)
    order = np.argsort(at, kind="stable")
    at, by = at[order], by[order]
    out = out + np.repeat(by, np.diff(np.append(at, n)))
    for picked, tz in lookups:
        out[picked] = local_epoch(out[picked], tz)
    return out
