"""The head-end tables of schema version 4 (``dlms_counters``, ``clock_reads``), once for
both backends, over the backend's ``_billing_rows`` (one statement with ``?`` placeholders).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from meterledger.core.errors import ConflictError, InputError

__all__ = ["ClockRead", "CollectReads", "CollectWrites", "Counters"]


@dataclass(frozen=True, slots=True)
class Counters:
    """A meter's DLMS invocation counters: every value up to ``reserved_upto`` may have been
    used by us; ``server_last`` is the last counter accepted from the meter."""

    meter_id: str
    reserved_upto: int
    server_last: int


@dataclass(frozen=True, slots=True)
class ClockRead:
    meter_id: str
    read_at: int  # epoch ms, head-end clock
    meter_time: int  # epoch ms, the meter's clock
    drift_ms: int


class CollectReads(ABC):
    @abstractmethod
    def _billing_rows(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one statement with ``?`` placeholders; its rows."""

    def counters(self, meter_id: str) -> Counters:
        rows = self._billing_rows(
            "SELECT reserved_upto, server_last FROM dlms_counters WHERE meter_id = ?",
            (meter_id,),
        )
        if not rows:
            return Counters(meter_id, 0, 0)
        return Counters(meter_id, int(rows[0][0]), int(rows[0][1]))

    def clock_reads(
        self, meter_id: str | None = None, *, since_ms: int | None = None
    ) -> list[ClockRead]:
        """A meter's clock reads (every meter's without one), by meter then time; with
        ``since_ms`` only those read after that instant (epoch ms)."""
        query = "SELECT meter_id, read_at, meter_time, drift_ms FROM clock_reads WHERE 1 = 1"
        params: list[object] = []
        if meter_id is not None:
            query += " AND meter_id = ?"
            params.append(meter_id)
        if since_ms is not None:
            query += " AND read_at > ?"
            params.append(since_ms)
        rows = self._billing_rows(query + " ORDER BY meter_id, read_at", params)
        return [ClockRead(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]

    def last_interval_end(self, meter_id: str, obis: str) -> int | None:
        """The latest stored interval end (epoch seconds) of a meter's channel, or None."""
        rows = self._billing_rows(
            "SELECT max(r.interval_end) FROM readings r JOIN channels c"
            " ON c.channel_id = r.channel_id WHERE c.meter_id = ? AND c.obis = ?",
            (meter_id, obis),
        )
        value = rows[0][0] if rows else None
        return None if value is None else int(value)


class CollectWrites(CollectReads):
    def _known_meter(self, meter_id: str) -> None:
        if not self._billing_rows("SELECT 1 FROM meters WHERE meter_id = ?", (meter_id,)):
            raise InputError(f"unknown meter {meter_id!r}")

    def reserve_counters(self, meter_id: str, block: int) -> range:
        """Reserve ``block`` invocation counters for this session: the values returned were
        never handed out before, whatever happened to earlier sessions."""
        if block < 1:
            raise InputError(f"a counter reservation is at least 1, got {block}")
        self._known_meter(meter_id)
        held = self.counters(meter_id).reserved_upto
        upto = held + block
        if upto > 2**32 - 1:
            raise ConflictError(
                f"meter {meter_id}: the invocation counter is exhausted ({held}); the meter "
                "needs new keys before it can be read with security again"
            )
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self._billing_rows(
            "INSERT INTO dlms_counters (meter_id, reserved_upto, server_last, updated_at)"
            " VALUES (?, ?, 0, ?) ON CONFLICT (meter_id) DO UPDATE SET"
            " reserved_upto = excluded.reserved_upto, updated_at = excluded.updated_at",
            (meter_id, upto, now),
        )
        return range(held + 1, upto + 1)

    def accept_server_counter(self, meter_id: str, value: int) -> None:
        """Record the meter's counter; one not above the last accepted is a replay."""
        self._known_meter(meter_id)
        last = self.counters(meter_id).server_last
        if value <= last:
            raise ConflictError(
                f"meter {meter_id}: invocation counter {value} is not above {last} (replay)"
            )
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self._billing_rows(
            "INSERT INTO dlms_counters (meter_id, reserved_upto, server_last, updated_at)"
            " VALUES (?, 0, ?, ?) ON CONFLICT (meter_id) DO UPDATE SET"
            " server_last = excluded.server_last, updated_at = excluded.updated_at",
            (meter_id, value, now),
        )

    def add_clock_read(self, read: ClockRead) -> None:
        self._known_meter(read.meter_id)
        self._billing_rows(
            "INSERT INTO clock_reads (meter_id, read_at, meter_time, drift_ms)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (meter_id, read_at) DO NOTHING",
            (read.meter_id, read.read_at, read.meter_time, read.drift_ms),
        )
