"""SQLite backend: WAL, one writer at a time (``BEGIN IMMEDIATE``), versioned migrations.

``synchronous=NORMAL`` in WAL mode survives a killed process (every committed transaction
is in the WAL); pass ``?synchronous=FULL`` in the URL to also survive power loss.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import polars as pl

from meterledger.core.errors import (
    ConfigError,
    StoreError,
    TerminalStoreError,
    TransientStoreError,
)
from meterledger.store.anomaly_sql import AnomalyReads, VeeRows
from meterledger.store.arrays import by_key
from meterledger.store.base import (
    READING_COLUMNS,
    STORE_TABLES,
    VERSION_SCHEMA,
    AuditRow,
    BillingArrays,
    ChannelRecord,
    MeterRecord,
    QuarantineRecord,
    Store,
    WriteTx,
    quarantine_query,
)
from meterledger.store.billing_sql import BillingReads
from meterledger.store.collect_sql import CollectReads
from meterledger.store.feeds_sql import FeedReads
from meterledger.store.marks_sql import MarkReads
from meterledger.store.migrations import load_migrations
from meterledger.store.sqlite_tx import (
    METER_COLUMNS,
    SqliteTx,
    get_quarantine,
    new_readings_sql,
    quarantine_record,
    registry_version,
)

__all__ = ["SqliteStore", "new_readings_sql", "translate"]

_SYNC = {"OFF", "NORMAL", "FULL", "EXTRA"}
_SCHEMA = {name: pl.Int64 for name in READING_COLUMNS}
_VEE_COLUMNS = ("channel_id", "interval_end", "interval_seconds", "value", "quality", "batch_id")
# channels per statement of a bulk read: bounds the texts group_concat builds
_CHANNELS_PER_READ = 256


def translate(exc: sqlite3.Error) -> StoreError:
    """Map a sqlite3 error to transient (locked/busy) or terminal."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return TransientStoreError(f"database busy: {text}")
    return TerminalStoreError(f"database error: {text}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class SqliteStore(BillingReads, CollectReads, AnomalyReads, FeedReads, MarkReads, Store):
    dialect = "sqlite"

    def __init__(self, url: str, *, busy_timeout_s: float = 60.0) -> None:
        self.url = url
        path, _, query = url.removeprefix("sqlite:///").partition("?")
        params = parse_qs(query)
        sync = params.get("synchronous", ["NORMAL"])[0].upper()
        if sync not in _SYNC:
            raise ConfigError(f"synchronous must be one of {sorted(_SYNC)}, got {sync!r}")
        self.path = Path(path) if path != ":memory:" else None
        if self.path is not None and self.path.parent and not self.path.parent.exists():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create {self.path.parent}: {exc.strerror}") from exc
        try:
            self.conn = sqlite3.connect(
                path, isolation_level=None, timeout=busy_timeout_s, check_same_thread=False
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute(f"PRAGMA synchronous={sync}")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("PRAGMA cache_size=-131072")
            self.conn.execute("PRAGMA temp_store=MEMORY")
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    # -- schema -------------------------------------------------------------------------
    def _ensure_migration_table(self) -> None:
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )

    def schema_version(self) -> int:
        self._ensure_migration_table()
        row = self.conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def migrate(self, target: int | None = None) -> list[int]:
        applied: list[int] = []
        with self._transaction():
            self._ensure_migration_table()
            current = int(
                self.conn.execute(
                    "SELECT coalesce(max(version), 0) FROM schema_migrations"
                ).fetchone()[0]
            )
            for migration in load_migrations("sqlite"):
                if migration.version <= current:
                    continue
                if target is not None and migration.version > target:
                    break
                for statement in _split_sql(migration.sql):
                    self.conn.execute(statement)
                self.conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (migration.version, migration.name, _now()),
                )
                applied.append(migration.version)
        return applied

    def details(self) -> dict[str, object]:
        return {
            "sqlite_version": sqlite3.sqlite_version,
            "path": str(self.path) if self.path is not None else ":memory:",
            "journal_mode": self.conn.execute("PRAGMA journal_mode").fetchone()[0],
        }

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def write(self) -> Iterator[WriteTx]:
        with self._transaction():
            yield SqliteTx(self.conn)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One ``BEGIN IMMEDIATE`` transaction: committed whole or rolled back whole."""
        try:
            self._begin()
            try:
                yield
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:  # SQLite may already have rolled back (I/O error)
                    self.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    def _begin(self) -> None:
        # busy_timeout covers most waits; a writer that still finds the lock taken retries
        # with backoff instead of failing the ingest.
        delay = 0.05
        for attempt in range(40):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or attempt == 39:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    # -- meters -------------------------------------------------------------------------
    def get_meter(self, meter_id: str) -> MeterRecord | None:
        row = self.conn.execute(
            f"SELECT {METER_COLUMNS} FROM meters WHERE meter_id = ?",
            (meter_id,),
        ).fetchone()
        return MeterRecord(*row) if row else None

    def list_meters(self) -> list[MeterRecord]:
        rows = self.conn.execute(f"SELECT {METER_COLUMNS} FROM meters ORDER BY meter_id").fetchall()
        return [MeterRecord(*row) for row in rows]

    def registry_version(self) -> int:
        return registry_version(self.conn)

    def list_channels(self) -> list[ChannelRecord]:
        rows = self.conn.execute(
            "SELECT channel_id, meter_id, obis, base_unit, allows_negative FROM channels"
            " ORDER BY meter_id, obis"
        ).fetchall()
        return [ChannelRecord(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]

    # -- readings -----------------------------------------------------------------------
    def readings(
        self, meter_id: str, start: int, end: int, channel: str | None = None
    ) -> pl.DataFrame:
        sql = (
            "SELECT c.meter_id, c.obis, r.interval_end, r.interval_seconds, r.value, r.quality,"
            " r.batch_id, r.received_at, r.version FROM channels c JOIN readings r"
            " ON r.channel_id = c.channel_id WHERE c.meter_id = ? AND r.interval_end > ?"
            " AND r.interval_end <= ?"
        )
        params: list[object] = [meter_id, start, end]
        if channel is not None:
            sql += " AND c.obis = ?"
            params.append(channel)
        sql += " ORDER BY c.obis, r.interval_end"
        return self._query_readings(sql, params)

    def billing_read(
        self,
        start: int,
        end: int,
        channel: str = "1.0.1.8.0.255",
        meter_ids: Sequence[str] | None = None,
    ) -> BillingArrays:
        meters = self.conn.execute(
            "SELECT meter_id, channel_id FROM channels WHERE obis = ?", (channel,)
        ).fetchall()
        if meter_ids is not None:
            wanted = set(meter_ids)
            meters = [m for m in meters if m[0] in wanted]
        ids = [int(c) for _, c in meters]
        channel_id, interval_end, value, quality = self._channel_columns(
            ids, start, end, ("channel_id", "interval_end", "value", "quality")
        )
        named = sorted((str(m), int(c)) for m, c in meters)
        read = BillingArrays.group(named, channel_id, interval_end, value, quality)
        return self._drop_held(read, named, start, end)

    def vee_read(self, channel_ids: Sequence[int], start: int, end: int) -> VeeRows:
        ids = sorted({int(c) for c in channel_ids})
        # the channels in ascending order, each in interval order: sorted as VeeRows are
        columns = self._channel_columns(ids, start, end, _VEE_COLUMNS)
        return VeeRows(*by_key(*columns))

    def _channel_columns(
        self, channel_ids: Sequence[int], start: int, end: int, columns: Sequence[str]
    ) -> list[np.ndarray]:
        """Columns (trusted names) of the readings of these channels with ``start <
        interval_end <= end``: channel by channel in the order given (one range seek of
        the primary key each), each in interval order. SQLite makes each column one
        comma-separated text (group_concat, fed in that scan order) and numpy parses it:
        no Python object per value, which fetching rows would cost (about 1 us a value)."""
        aggregated = ", ".join(f"group_concat(r.{c})" for c in columns)
        query = (
            f"SELECT count(*), {aggregated} FROM json_each(?) j CROSS JOIN readings r"
            " ON r.channel_id = j.value AND r.interval_end > ? AND r.interval_end <= ?"
        )
        parts: list[list[np.ndarray]] = []
        for at in range(0, len(channel_ids), _CHANNELS_PER_READ):
            some = [int(c) for c in channel_ids[at : at + _CHANNELS_PER_READ]]
            row = self._billing_rows(query, (json.dumps(some), int(start), int(end)))[0]
            count = int(row[0])
            if not count:
                continue
            arrays = [np.fromstring(text, dtype=np.int64, sep=",") for text in row[1:]]
            if any(len(a) != count for a in arrays):
                raise TerminalStoreError("readings hold a value that is not an integer")
            parts.append(arrays)
        if not parts:
            return [np.empty(0, dtype=np.int64) for _ in columns]
        return [np.concatenate([p[i] for p in parts]) for i in range(len(columns))]

    def all_readings(self) -> pl.DataFrame:
        return self._query_readings(
            "SELECT c.meter_id, c.obis, r.interval_end, r.interval_seconds, r.value, r.quality,"
            " r.batch_id, r.received_at, r.version FROM channels c JOIN readings r"
            " ON r.channel_id = c.channel_id ORDER BY c.meter_id, c.obis, r.interval_end",
            [],
        )

    def _query_readings(self, sql: str, params: Sequence[object]) -> pl.DataFrame:
        rows = self.conn.execute(sql, params).fetchall()
        schema: dict[str, type[pl.DataType] | pl.DataType] = {
            "meter_id": pl.String,
            "channel": pl.String,
        }
        schema.update({c: pl.Int64 for c in READING_COLUMNS if c != "channel_id"})
        return pl.DataFrame(rows, schema=schema, orient="row")

    def stored_by_batch(self) -> pl.DataFrame:
        sql = (
            "SELECT s.batch_id, c.meter_id, c.obis, s.interval_end, s.interval_seconds, s.value,"
            " s.quality, s.status, s.version FROM (SELECT batch_id, channel_id, interval_end,"
            " interval_seconds, value, quality, 'current' AS status, version FROM readings"
            " UNION ALL SELECT batch_id, channel_id, interval_end, interval_seconds, value,"
            " quality, status, version FROM reading_versions) s"
            " JOIN channels c ON c.channel_id = s.channel_id"
        )
        rows = self.conn.execute(sql).fetchall()
        return pl.DataFrame(
            rows,
            schema={
                "batch_id": pl.Int64,
                "meter_id": pl.String,
                "channel": pl.String,
                "interval_end": pl.Int64,
                "interval_seconds": pl.Int64,
                "value": pl.Int64,
                "quality": pl.Int64,
                "status": pl.String,
                "version": pl.Int64,
            },
            orient="row",
        )

    def versions(self, channel_id: int, interval_end: int) -> pl.DataFrame:
        current = self.conn.execute(
            "SELECT version, value, quality, batch_id, received_at, 'current', NULL FROM readings"
            " WHERE channel_id = ? AND interval_end = ?",
            (channel_id, interval_end),
        ).fetchall()
        older = self.conn.execute(
            "SELECT version, value, quality, batch_id, received_at, status, reason"
            " FROM reading_versions WHERE channel_id = ? AND interval_end = ?",
            (channel_id, interval_end),
        ).fetchall()
        return pl.DataFrame(
            current + older,
            schema=VERSION_SCHEMA,
            orient="row",
        ).sort("version")

    # -- quarantine, audit ----------------------------------------------------------------
    def list_quarantine(
        self, status: str | None = None, reason: str | None = None, limit: int | None = None
    ) -> list[QuarantineRecord]:
        query, params = quarantine_query(status, reason, limit, "?")
        return [quarantine_record(row) for row in self.conn.execute(query, params).fetchall()]

    def get_quarantine(self, q_id: int) -> QuarantineRecord | None:
        return get_quarantine(self.conn, q_id)

    def batch_audit_refs(self) -> dict[int, int | None]:
        return dict(self.conn.execute("SELECT batch_id, audit_seq FROM batches").fetchall())

    def audit_rows(self) -> Iterator[AuditRow]:
        cursor = self.conn.execute(
            "SELECT seq, recorded_at, kind, subject, payload, prev_hash, hash FROM audit_log"
            " ORDER BY seq"
        )
        for row in cursor:
            yield AuditRow(*row)

    def count(self, table: str) -> int:
        if table not in STORE_TABLES:
            raise StoreError(f"no such table: {table}")
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def _billing_rows(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(query, params).fetchall()
        except sqlite3.Error as exc:
            raise translate(exc) from exc


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements; a trigger body's inner ``;`` stays inside it."""
    statements: list[str] = []
    buffer: list[str] = []
    for line in script.splitlines():
        if line.strip().startswith("--") and not buffer:
            continue
        buffer.append(line)
        candidate = "\n".join(buffer)
        if sqlite3.complete_statement(candidate):
            statements.append(candidate.strip())
            buffer = []
    if "".join(buffer).strip():
        statements.append("\n".join(buffer).strip())
    return statements
