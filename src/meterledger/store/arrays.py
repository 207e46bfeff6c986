"""The arrays the Store hands to billing and VEE: many channels' rows as int64 ndarrays.

Import them from ``meterledger.store.base`` (``BillingArrays``) or
``meterledger.store.anomaly_sql`` (``VeeRows``, ``RegisterArrays``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BillingArrays", "RegisterArrays", "VeeRows", "by_key"]


def by_key(channel_id: np.ndarray, at: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """The columns in ``(channel_id, at)`` order: a no-op (no copy) when they already are,
    which is how the backends read them."""
    if len(channel_id) > 1:
        dc = np.diff(channel_id)
        ordered = bool(((dc > 0) | ((dc == 0) & (np.diff(at) > 0))).all())
        if not ordered:
            order = np.lexsort((at, channel_id))
            return [np.ascontiguousarray(a[order]) for a in (channel_id, at, *others)]
    return [channel_id, at, *others]


@dataclass(frozen=True, slots=True)
class BillingArrays:
    """One channel of many meters over one period, as arrays ready for rating.

    Meter ``meter_ids[i]`` owns rows ``offsets[i]:offsets[i + 1]`` of ``interval_end``
    (UTC epoch seconds, ascending), ``value`` (milli-units) and ``quality`` (flags)."""

    meter_ids: tuple[str, ...]
    offsets: np.ndarray
    interval_end: np.ndarray
    value: np.ndarray
    quality: np.ndarray

    def for_meter(self, meter_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(interval_end, value, quality)`` of one meter (KeyError if it was not read)."""
        try:
            i = self.meter_ids.index(meter_id)
        except ValueError:
            raise KeyError(meter_id) from None
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.interval_end[lo:hi], self.value[lo:hi], self.quality[lo:hi]

    @property
    def rows(self) -> int:
        return len(self.interval_end)

    @classmethod
    def group(
        cls,
        meters: Sequence[tuple[str, int]],
        channel_id: np.ndarray,
        interval_end: np.ndarray,
        value: np.ndarray,
        quality: np.ndarray,
    ) -> BillingArrays:
        """Arrange rows (any order) by ``meters``, a list of ``(meter_id, channel_id)``
        in the order wanted, then by ``interval_end``."""
        ordered = sorted(meters)
        ids = np.array([c for _, c in ordered], dtype=np.int64)
        position = np.full(int(ids.max()) + 1 if len(ids) else 1, -1, dtype=np.int64)
        position[ids] = np.arange(len(ids), dtype=np.int64)
        rank = position[channel_id] if len(channel_id) else np.empty(0, dtype=np.int64)
        order = np.lexsort((interval_end, rank))
        counts = np.bincount(rank, minlength=len(ids)) if len(rank) else np.zeros(len(ids))
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(
            tuple(m for m, _ in ordered),
            offsets,
            np.ascontiguousarray(interval_end[order], dtype=np.int64),
            np.ascontiguousarray(value[order], dtype=np.int64),
            np.ascontiguousarray(quality[order], dtype=np.int64),
        )

    def without(self, keep: np.ndarray) -> BillingArrays:
        """The same meters with only the rows where ``keep`` (a boolean mask) is True."""
        kept = np.zeros(len(keep) + 1, dtype=np.int64)
        np.cumsum(keep, out=kept[1:])
        return BillingArrays(
            self.meter_ids,
            kept[self.offsets],
            self.interval_end[keep],
            self.value[keep],
            self.quality[keep],
        )


def _offsets(channel_id: np.ndarray, channel_ids: Sequence[int]) -> np.ndarray:
    ids = np.asarray(channel_ids, dtype=np.int64)
    if len(ids) > 1 and not bool((np.diff(ids) > 0).all()):
        raise ValueError("channel ids must be given in ascending order, without repeats")
    return np.searchsorted(channel_id, np.append(ids, ids[-1] + 1 if len(ids) else 0)).astype(
        np.int64
    )


@dataclass(frozen=True, slots=True)
class VeeRows:
    """Current readings of many channels (:meth:`Store.vee_read`), sorted by
    ``(channel_id, interval_end)``; every column is an int64 ndarray of the same length."""

    channel_id: np.ndarray
    interval_end: np.ndarray
    interval_seconds: np.ndarray
    value: np.ndarray
    quality: np.ndarray
    batch_id: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.interval_end)

    def offsets(self, channel_ids: Sequence[int]) -> np.ndarray:
        """Offsets (``len(channel_ids) + 1``) of these channels' rows: channel
        ``channel_ids[i]`` owns ``offsets[i]:offsets[i + 1]``. The ids must be ascending
        and must include every channel that has rows (those of :meth:`Store.vee_read`'s
        call, sorted)."""
        return _offsets(self.channel_id, channel_ids)


@dataclass(frozen=True, slots=True)
class RegisterArrays:
    """Register reads of many channels (:meth:`Store.register_reads`), sorted by
    ``(channel_id, read_at)``: ``read_at`` UTC epoch seconds, ``value`` milli-units."""

    channel_id: np.ndarray
    read_at: np.ndarray
    value: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.read_at)

    def offsets(self, channel_ids: Sequence[int]) -> np.ndarray:
        """As :meth:`VeeRows.offsets`."""
        return _offsets(self.channel_id, channel_ids)
