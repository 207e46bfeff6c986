"""The head-end's view of the store: the :class:`Ledger` protocol the fleet collector
calls (on one worker thread, never concurrently), the extensions that keep register reads
and dead letters, and the counts they return. The composition root (``meterledger
collect``) provides the ledger over the Store and the ingest pipeline; ``collect/`` itself
never imports either."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from meterledger.collect.deadletter import DeadLetter
from meterledger.collect.profile import RegisterSample
from meterledger.core.reading import Reading

__all__ = [
    "ClockLedger",
    "ClockSample",
    "DeadLetterLedger",
    "HandoffCounts",
    "Ledger",
    "RegisterCounts",
    "RegisterLedger",
]


@dataclass(frozen=True, slots=True)
class ClockSample:
    """One clock read: head-end and meter time in epoch ms, ``drift_ms`` = meter − ours."""

    meter_id: str
    read_at_ms: int
    meter_time_ms: int
    drift_ms: int


@dataclass(slots=True)
class HandoffCounts:
    """What the ingest pipeline did with the readings handed to it."""

    records: int = 0
    accepted: int = 0
    duplicates: int = 0
    superseded: int = 0
    conflicts: int = 0
    quarantined: int = 0
    batches: int = 0

    def add(self, other: HandoffCounts) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(slots=True)
class RegisterCounts:
    """What the ledger did with the register reads handed to it: ``new`` stored,
    ``duplicates`` already held with the same value, ``conflicts`` held with another value
    (kept as they were; not stored), ``unknown`` of a channel the store does not have."""

    reads: int = 0
    new: int = 0
    duplicates: int = 0
    conflicts: int = 0
    unknown: int = 0

    def add(self, other: RegisterCounts) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class Ledger(Protocol):
    """The head-end's view of the store. Called on one worker thread, never concurrently."""

    def last_read_ms(self, meter_id: str) -> int | None:
        """When the meter's clock was last read (epoch ms), or None."""
        ...

    def last_interval_ends(self, meter_id: str, channels: Sequence[str]) -> dict[str, int | None]:
        """The latest stored interval end (epoch s) of each channel, or None."""
        ...

    def server_counter(self, meter_id: str) -> int:
        """The last invocation counter accepted from the meter (0 if none)."""
        ...

    def reserve_counters(self, meter_id: str, block: int) -> range:
        """``block`` invocation counters never handed out before."""
        ...

    def record_session(
        self, meter_id: str, clock: ClockSample | None, server_counter: int | None
    ) -> None:
        """Persist a session's clock read and the meter's last invocation counter."""
        ...

    def deliver(self, readings: Sequence[Reading]) -> HandoffCounts:
        """Hand readings (of any meters) to the ingest pipeline as one batch."""
        ...


@runtime_checkable
class RegisterLedger(Ledger, Protocol):
    """A ledger that also keeps register reads (the store's ``register_reads``)."""

    def deliver_registers(self, reads: Sequence[RegisterSample]) -> RegisterCounts:
        """Store register reads (of any meters) in one write: a read already held is
        skipped (the same value) or counted as a conflict (another value), never replaced;
        one of a channel the store does not know is counted as unknown. Raises only when
        the store fails."""
        ...


@runtime_checkable
class DeadLetterLedger(Ledger, Protocol):
    """A ledger that keeps a delivery still failing after its retries as a dead letter."""

    def dead_letter(self, meter_id: str, readings: Sequence[Reading]) -> DeadLetter:
        """One meter's readings as the delivery ``meterledger deadletters replay`` ingests
        (feed ``dlms``, source the meter, the payload canonical CSV or JSONL)."""
        ...

    def keep_dead_letter(self, letter: DeadLetter, error: str, attempts: int) -> int:
        """Store ``letter`` with the last ``error`` and the ``attempts`` made; its id."""
        ...


@runtime_checkable
class ClockLedger(Ledger, Protocol):
    """A ledger that records the clock reads of many meters in one write (the collector
    records a meter's clock read once its readings are stored: one write per handoff
    batch rather than one per meter)."""

    def record_clocks(self, clocks: Sequence[ClockSample]) -> None:
        """Persist these clock reads (of any meters) in one write transaction."""
        ...
