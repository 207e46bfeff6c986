"""The abstract VEE methods (schema version 5) that ``Store`` and ``WriteTx`` add to the
store interface; :mod:`meterledger.store.anomaly_sql` implements them for both backends."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from meterledger.store.arrays import RegisterArrays, VeeRows
from meterledger.store.records import AnomalyRecord, NewAnomaly, RegisterRead

__all__ = ["VeeReadAPI", "VeeWriteAPI"]


class VeeReadAPI(ABC):
    """What ``Store`` reads of the VEE tables (schema version 5)."""

    @abstractmethod
    def list_anomalies(
        self,
        meter_id: str | None = None,
        rule: str | None = None,
        status: str | None = "open",
        limit: int | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> list[AnomalyRecord]:
        """Findings by ``anomaly_id``: of one meter, one rule, one status (``None``: any),
        with ``start < interval_end <= end`` where given; at most ``limit``."""

    @abstractmethod
    def get_anomaly(self, anomaly_id: int) -> AnomalyRecord | None: ...

    @abstractmethod
    def held(
        self, start: int, end: int, channel_ids: Sequence[int] | None = None
    ) -> set[tuple[int, int]]:
        """``(channel_id, interval_end)`` with ``start < interval_end <= end`` that an open
        finding of severity ``fail`` keeps out of billing (of these channels, if given)."""

    @abstractmethod
    def vee_pending(self) -> list[int]:
        """The batches that wrote readings and that VEE has not checked, ascending."""

    @abstractmethod
    def batch_spans(self, batch_ids: Sequence[int]) -> list[tuple[int, int, int]]:
        """``(channel_id, first interval_end, last interval_end)`` per channel of the rows
        (current or other versions) these batches wrote, by channel."""

    @abstractmethod
    def channel_spans(
        self, meter_id: str | None = None, start: int | None = None, end: int | None = None
    ) -> list[tuple[int, int, int]]:
        """``(channel_id, first, last interval_end)`` of the current readings per channel
        (of one meter, within ``start < interval_end <= end`` where given), by channel."""

    @abstractmethod
    def vee_read(self, channel_ids: Sequence[int], start: int, end: int) -> VeeRows:
        """Current readings of these channels with ``start < interval_end <= end``, sorted
        by ``(channel_id, interval_end)``."""

    @abstractmethod
    def batch_formats(self, batch_ids: Sequence[int]) -> dict[int, str]:
        """``batch_id -> format`` (``csv``, ``jsonl``, ...) of the batches that exist."""

    @abstractmethod
    def batch_sources(self, batch_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """``batch_id -> (source, format)`` of the batches that exist."""

    @abstractmethod
    def register_reads(self, channel_ids: Sequence[int], start: int, end: int) -> RegisterArrays:
        """Register reads of these channels with ``start <= read_at <= end`` (both ends
        included: a read at the start of a period is its opening value)."""


class VeeWriteAPI(ABC):
    """What ``WriteTx`` writes to the VEE tables (schema version 5)."""

    @abstractmethod
    def record_findings(
        self,
        found: Sequence[NewAnomaly],
        *,
        spans: Sequence[tuple[int, int, int]],
        rules: Sequence[str],
        at: str,
    ) -> tuple[int, int]:
        """Record one VEE run. A finding not held yet is inserted ``open``; one held
        ``open`` gets this run's severity, detail and value; one held ``cleared`` reopens
        with them; one ``released`` or ``edited`` stays as it is. Then every ``open``
        finding of ``rules`` inside the ``(channel_id, lo, hi]`` spans the run checked that
        ``found`` does not hold is ``cleared`` (``resolved_at = at``). The same key twice
        in ``found``: the worse severity wins, then the first. Returns ``(opened,
        cleared)``: the findings this call made open (new or reopened) and cleared."""

    @abstractmethod
    def resolve_anomaly(
        self, anomaly_id: int, status: str, at: str, note: str | None, audit_seq: int | None
    ) -> None:
        """An open finding becomes ``released`` or ``edited``. InputError for an unknown
        finding or another status; ConflictError for one that is not open."""

    @abstractmethod
    def add_register_reads(self, reads: Sequence[RegisterRead]) -> int:
        """Store register reads; a read already held with the same value is skipped, one
        with another value is a ConflictError (nothing is written). Returns how many were
        new."""

    @abstractmethod
    def mark_vee(self, batch_ids: Sequence[int], at: str) -> None:
        """Record that VEE checked these batches' data at ``at``."""
