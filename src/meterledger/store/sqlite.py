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
from urllib.parse import parse_qs

import polars as pl

from meterledger.core.errors import (
    ConflictError,
    StoreError,
    TerminalStoreError,
    TransientStoreError,
)
from meterledger.store.base import (
    READING_COLUMNS,
    AuditRow,
    BatchCounts,
    ChannelRecord,
    MeterRecord,
    NewQuarantine,
    QuarantineRecord,
    Store,
    WriteTx,
    key_spans,
)
from meterledger.store.migrations import load_migrations

__all__ = ["SqliteStore", "new_readings_sql", "translate"]

_TABLES = frozenset(
    {
        "meters",
        "channels",
        "batches",
        "readings",
        "reading_versions",
        "quarantine",
        "audit_log",
        "anomalies",
    }
)
_SYNC = {"OFF", "NORMAL", "FULL", "EXTRA"}
_INSERT_READINGS = (
    "INSERT INTO readings (channel_id, interval_end, interval_seconds, value, quality, batch_id,"
    " received_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SCHEMA = {name: pl.Int64 for name in READING_COLUMNS}


def translate(exc: sqlite3.Error) -> StoreError:
    """Map a sqlite3 error to transient (locked/busy) or terminal."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return TransientStoreError(f"database busy: {text}")
    return TerminalStoreError(f"database error: {text}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _frame(rows: list[tuple[int, ...]], columns: Sequence[str] = READING_COLUMNS) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={c: pl.Int64 for c in columns}, orient="row")


def _tuples(
    rows: pl.DataFrame, columns: Sequence[str] = READING_COLUMNS
) -> Iterator[tuple[int, ...]]:
    return zip(*(rows.get_column(c).to_list() for c in columns), strict=True)


class SqliteStore(Store):
    def __init__(self, url: str, *, busy_timeout_s: float = 60.0) -> None:
        self.url = url
        path, _, query = url.removeprefix("sqlite:///").partition("?")
        params = parse_qs(query)
        sync = params.get("synchronous", ["NORMAL"])[0].upper()
        if sync not in _SYNC:
            raise StoreError(f"synchronous must be one of {sorted(_SYNC)}, got {sync!r}")
        self.path = Path(path) if path != ":memory:" else None
        if self.path is not None and self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
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
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
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
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        return applied

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def write(self) -> Iterator[WriteTx]:
        try:
            self._begin()
            try:
                yield _SqliteTx(self.conn)
                self.conn.execute("COMMIT")
            except BaseException:
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
            "SELECT meter_id, service, unit, timezone, account, status, capacity, created_at"
            " FROM meters WHERE meter_id = ?",
            (meter_id,),
        ).fetchone()
        return MeterRecord(*row) if row else None

    def list_meters(self) -> list[MeterRecord]:
        rows = self.conn.execute(
            "SELECT meter_id, service, unit, timezone, account, status, capacity, created_at"
            " FROM meters ORDER BY meter_id"
        ).fetchall()
        return [MeterRecord(*row) for row in rows]

    def registry_version(self) -> int:
        return _registry_version(self.conn)

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
            schema={
                "version": pl.Int64,
                "value": pl.Int64,
                "quality": pl.Int64,
                "batch_id": pl.Int64,
                "received_at": pl.Int64,
                "status": pl.String,
                "reason": pl.String,
            },
            orient="row",
        ).sort("version")

    # -- quarantine, audit ----------------------------------------------------------------
    def list_quarantine(
        self, status: str | None = None, reason: str | None = None, limit: int | None = None
    ) -> list[QuarantineRecord]:
        sql = f"SELECT {_Q_COLUMNS} FROM quarantine WHERE 1=1"
        params: list[object] = []
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if reason is not None:
            sql += " AND (',' || reasons || ',') LIKE ?"
            params.append(f"%,{reason},%")
        sql += " ORDER BY q_id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_quarantine(row) for row in self.conn.execute(sql, params).fetchall()]

    def get_quarantine(self, q_id: int) -> QuarantineRecord | None:
        return _get_quarantine(self.conn, q_id)

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
        if table not in _TABLES:
            raise StoreError(f"no such table: {table}")
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


_Q_COLUMNS = (
    "q_id, record_key, batch_id, source, format, record_no, meter_id, channel, interval_end,"
    " reasons, detail, raw, fields, status, created_at, updated_at, note"
)


def _quarantine(row: tuple[object, ...]) -> QuarantineRecord:
    values = list(row)
    values[9] = tuple(str(values[9]).split(",")) if values[9] else ()
    return QuarantineRecord(*values)  # type: ignore[arg-type]


def _get_quarantine(conn: sqlite3.Connection, q_id: int) -> QuarantineRecord | None:
    row = conn.execute(f"SELECT {_Q_COLUMNS} FROM quarantine WHERE q_id = ?", (q_id,)).fetchone()
    return _quarantine(row) if row else None


# Ingest inserts new readings with multi-row statements: one statement binds 100 rows, so
# Python builds one flat list per 100 rows instead of one tuple per row, and SQLite steps
# once per 100 rows. The batch constants are integer literals.
_NEW_COLUMNS = ("channel_id", "interval_end", "interval_seconds", "value", "quality")
_ROWS_PER_STATEMENT = 100


def _row_values(batch_id: int, received_at: int) -> str:
    return f"(?, ?, ?, ?, ?, {int(batch_id)}, {int(received_at)}, 1)"


def new_readings_sql(batch_id: int, received_at: int) -> str:
    """Single-row insert of a new reading (``channel_id .. quality`` bound)."""
    return (
        "INSERT INTO readings (channel_id, interval_end, interval_seconds, value, quality,"
        f" batch_id, received_at, version) VALUES {_row_values(batch_id, received_at)}"
    )


def _registry_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT version FROM registry_version WHERE id = 1").fetchone()[0])


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


class _SqliteTx(WriteTx):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def new_batch(self, source: str, fmt: str, received_at: str) -> int:
        cursor = self.conn.execute(
            "INSERT INTO batches (source, format, received_at) VALUES (?, ?, ?)",
            (source, fmt, received_at),
        )
        return int(cursor.lastrowid or 0)

    def finish_batch(self, batch_id: int, counts: BatchCounts, audit_seq: int | None) -> None:
        self.conn.execute(
            "UPDATE batches SET records = ?, accepted = ?, duplicates = ?, superseded = ?,"
            " ignored = ?, conflicts = ?, quarantined = ?, audit_seq = ? WHERE batch_id = ?",
            (
                counts.records,
                counts.accepted,
                counts.duplicates,
                counts.superseded,
                counts.ignored,
                counts.conflicts,
                counts.quarantined,
                audit_seq,
                batch_id,
            ),
        )

    def registry_version(self) -> int:
        return _registry_version(self.conn)

    def _range_query(
        self, table: str, keys: pl.DataFrame, spans: list[tuple[int, int, int]] | None = None
    ) -> pl.DataFrame:
        if keys.is_empty():
            return _frame([])
        # One statement: SQLite walks the (channel, first, last) spans and seeks each range
        # in the primary key, instead of one round trip per channel.
        sql = (
            f"SELECT t.channel_id, t.interval_end, t.interval_seconds, t.value, t.quality,"
            f" t.batch_id, t.received_at, t.version FROM json_each(?) AS j CROSS JOIN {table} t"
            f" ON t.channel_id = j.value ->> 0 AND t.interval_end BETWEEN j.value ->> 1"
            f" AND j.value ->> 2"
        )
        text = json.dumps(spans if spans is not None else key_spans(keys))
        found = _frame(self.conn.execute(sql, (text,)).fetchall())
        if found.is_empty():
            return found
        return found.join(
            keys.select("channel_id", "interval_end"), on=["channel_id", "interval_end"], how="semi"
        )

    def current_for(
        self, keys: pl.DataFrame, spans: list[tuple[int, int, int]] | None = None
    ) -> pl.DataFrame:
        return self._range_query("readings", keys, spans)

    def versions_for(self, keys: pl.DataFrame) -> pl.DataFrame:
        return self._range_query("reading_versions", keys)

    def max_versions(self, keys: pl.DataFrame) -> pl.DataFrame:
        schema = {"channel_id": pl.Int64, "interval_end": pl.Int64, "max_version": pl.Int64}
        if keys.is_empty():
            return pl.DataFrame(schema=schema)
        current = self.current_for(keys).select("channel_id", "interval_end", "version")
        stored = self.versions_for(keys).select("channel_id", "interval_end", "version")
        both = pl.concat([current, stored])
        return (
            keys.select("channel_id", "interval_end")
            .unique()
            .join(
                both.group_by("channel_id", "interval_end").agg(pl.col("version").max()),
                on=["channel_id", "interval_end"],
                how="left",
            )
            .select(
                "channel_id", "interval_end", pl.col("version").fill_null(0).alias("max_version")
            )
            .cast(schema)  # type: ignore[arg-type]
        )

    def insert_readings(self, rows: pl.DataFrame) -> None:
        if not rows.is_empty():
            self.conn.executemany(_INSERT_READINGS, _tuples(rows))

    def insert_new(self, rows: pl.DataFrame, *, batch_id: int, received_at: int) -> None:
        if rows.is_empty():
            return
        values = rows.select(_NEW_COLUMNS).to_numpy()
        full = (len(values) // _ROWS_PER_STATEMENT) * _ROWS_PER_STATEMENT
        sql = new_readings_sql(int(batch_id), int(received_at))
        if full:
            many = (
                sql
                + ", "
                + ", ".join([_row_values(batch_id, received_at)] * (_ROWS_PER_STATEMENT - 1))
            )
            flat = values[:full].reshape(-1, len(_NEW_COLUMNS) * _ROWS_PER_STATEMENT)
            self.conn.executemany(many, flat.tolist())
        if full < len(values):
            self.conn.executemany(sql, values[full:].tolist())

    def replace_readings(self, rows: pl.DataFrame, reason: str) -> None:
        if rows.is_empty():
            return
        keys = list(zip(rows["channel_id"].to_list(), rows["interval_end"].to_list(), strict=True))
        self.conn.executemany(
            "INSERT INTO reading_versions (channel_id, interval_end, version, interval_seconds,"
            " value, quality, batch_id, received_at, status, reason) SELECT channel_id,"
            " interval_end, version, interval_seconds, value, quality, batch_id, received_at,"
            " 'superseded', ? FROM readings WHERE channel_id = ? AND interval_end = ?",
            ((reason, c, e) for c, e in keys),
        )
        self.conn.executemany(
            "DELETE FROM readings WHERE channel_id = ? AND interval_end = ?", keys
        )
        self.conn.executemany(_INSERT_READINGS, _tuples(rows))

    def insert_versions(self, rows: pl.DataFrame, status: str, reason: str) -> None:
        if rows.is_empty():
            return
        self.conn.executemany(
            "INSERT INTO reading_versions (channel_id, interval_end, interval_seconds, value,"
            " quality, batch_id, received_at, version, status, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((*row, status, reason) for row in _tuples(rows)),
        )

    def delete_version(self, channel_id: int, interval_end: int, version: int) -> None:
        self.conn.execute(
            "DELETE FROM reading_versions WHERE channel_id = ? AND interval_end = ?"
            " AND version = ?",
            (channel_id, interval_end, version),
        )

    def insert_quarantine(
        self, batch_id: int, records: Sequence[NewQuarantine], at: str
    ) -> list[str]:
        if not records:
            return []
        self.conn.executemany(
            "INSERT OR IGNORE INTO quarantine (record_key, batch_id, source, format, record_no,"
            " meter_id, channel, interval_end, reasons, detail, raw, fields, status, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?)",
            (
                (
                    r.record_key,
                    batch_id,
                    r.source,
                    r.format,
                    r.record_no,
                    r.meter_id,
                    r.channel,
                    r.interval_end,
                    ",".join(r.reasons),
                    r.detail,
                    r.raw,
                    r.fields,
                    at,
                    at,
                )
                for r in records
            ),
        )
        rows = self.conn.execute(
            "SELECT record_key FROM quarantine WHERE batch_id = ?", (batch_id,)
        ).fetchall()
        return [row[0] for row in rows]

    def set_quarantine(
        self,
        q_id: int,
        *,
        status: str,
        at: str,
        fields: str | None = None,
        reasons: tuple[str, ...] | None = None,
        detail: str | None = None,
        note: str | None = None,
    ) -> None:
        self.conn.execute(
            "UPDATE quarantine SET status = ?, updated_at = ?, fields = coalesce(?, fields),"
            " reasons = coalesce(?, reasons), detail = coalesce(?, detail),"
            " note = coalesce(?, note) WHERE q_id = ?",
            (
                status,
                at,
                fields,
                ",".join(reasons) if reasons is not None else None,
                detail,
                note,
                q_id,
            ),
        )

    def get_quarantine(self, q_id: int) -> QuarantineRecord | None:
        return _get_quarantine(self.conn, q_id)

    def last_audit(self) -> AuditRow | None:
        row = self.conn.execute(
            "SELECT seq, recorded_at, kind, subject, payload, prev_hash, hash FROM audit_log"
            " ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return AuditRow(*row) if row else None

    def insert_audit(self, row: AuditRow) -> None:
        self.conn.execute(
            "INSERT INTO audit_log (seq, recorded_at, kind, subject, payload, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (row.seq, row.recorded_at, row.kind, row.subject, row.payload, row.prev_hash, row.hash),
        )

    def add_meter(self, meter: MeterRecord) -> None:
        try:
            self.conn.execute(
                "INSERT INTO meters (meter_id, service, unit, timezone, account, status, capacity,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    meter.meter_id,
                    meter.service,
                    meter.unit,
                    meter.timezone,
                    meter.account,
                    meter.status,
                    meter.capacity,
                    meter.created_at,
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise ConflictError(f"meter {meter.meter_id} already exists") from exc

    def add_channel(self, meter_id: str, obis: str, base_unit: str, allows_negative: bool) -> int:
        self.conn.execute(
            "INSERT OR IGNORE INTO channels (meter_id, obis, base_unit, allows_negative)"
            " VALUES (?, ?, ?, ?)",
            (meter_id, obis, base_unit, int(allows_negative)),
        )
        row = self.conn.execute(
            "SELECT channel_id FROM channels WHERE meter_id = ? AND obis = ?", (meter_id, obis)
        ).fetchone()
        return int(row[0])
