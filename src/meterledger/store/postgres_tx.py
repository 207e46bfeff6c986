"""The PostgreSQL write transaction: everything ingest writes, under the writer lock.

New readings (the hot path) go in by binary COPY straight into the partitioned ``readings``
table: the keys were looked up under the writer lock a moment before, so nothing else can
have stored them, and a key that is somehow there anyway aborts the whole batch (a bug,
never a silent drop). Revisions go by binary COPY into a session-local staging table, then
``INSERT ... ON CONFLICT DO UPDATE`` in one statement, after the old rows are kept as
versions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import numpy as np
import polars as pl
import psycopg
from psycopg import sql
from psycopg_pool import PoolClosed, PoolTimeout

from meterledger.core.errors import (
    ConflictError,
    StoreError,
    TerminalStoreError,
    TransientStoreError,
)
from meterledger.store.anomaly_sql import AnomalyWrites
from meterledger.store.base import (
    Q_COLUMNS,
    READING_COLUMNS,
    AuditRow,
    BatchCounts,
    MeterRecord,
    NewQuarantine,
    QuarantineRecord,
    WriteTx,
    key_spans,
    quarantine_record,
)
from meterledger.store.billing_sql import BillingWrites
from meterledger.store.collect_sql import CollectWrites
from meterledger.store.feeds_sql import FeedWrites
from meterledger.store.marks_sql import MarkWrites
from meterledger.store.pg_partitions import Partitions
from meterledger.store.pgcopy import (
    copy_in_ints,
    copy_in_records,
    int8_records,
    select_int8_arrays,
)
from meterledger.store.records import check_meter_class

__all__ = [
    "LOCK_SQL",
    "METER_COLUMNS",
    "Q_COLUMNS",
    "WRITER_LOCK",
    "PostgresTx",
    "encode_new",
    "pg_quarantine_record",
    "raw_in",
    "text_in",
    "translate",
    "translated",
]

# The writer lock: pg_advisory_xact_lock(WRITER_LOCK, hashtext(current_schema())), so two
# meterledger schemas in one database do not queue behind each other. WRITER_LOCK is "mlWr"
# as a big-endian 32-bit integer.
WRITER_LOCK = 0x6D6C5772
LOCK_SQL = "SELECT pg_advisory_xact_lock(%s::integer, hashtext(current_schema()))"
# MeterRecord's fields in order
METER_COLUMNS = (
    "meter_id, service, unit, timezone, account, status, capacity, created_at, meter_class"
)
_TERMINAL_CLASSES = {"53", "54"}  # insufficient resources, program limit exceeded
_TRANSIENT_STATES = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available
    "57P01",  # admin_shutdown
    "57P03",  # cannot_connect_now
    "53300",  # too_many_connections
}


def translate(
    exc: psycopg.Error | PoolTimeout | PoolClosed, context: str = "database error"
) -> StoreError:
    """Map a psycopg error to transient (connection lost, lock or serialization conflict,
    server starting or shutting down) or terminal (everything a retry cannot cure: bad
    data, constraint, permission, disk full, out of memory, program limit, cancelled)."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, PoolClosed):
        return TerminalStoreError(f"{context}: the store is closed")
    state = getattr(exc, "sqlstate", None) or ""
    if state in _TRANSIENT_STATES:
        return TransientStoreError(f"{context}: {text}")
    if state[:2] in _TERMINAL_CLASSES or state == "57014":  # resources, limits, cancelled
        return TerminalStoreError(f"{context}: {text}")
    if isinstance(exc, (psycopg.OperationalError, PoolTimeout)):
        return TransientStoreError(f"{context}: {text}")
    return TerminalStoreError(f"{context}: {text}")


P = ParamSpec("P")
R = TypeVar("R")


def translated(method: Callable[P, R]) -> Callable[P, R]:
    """Raise our errors, not psycopg's, from inside a write transaction too."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except psycopg.Error as exc:
            raise translate(exc) from exc

    return wrapper


def text_in(value: str | None) -> str | None:
    """A descriptive text column's value: PostgreSQL text cannot hold NUL, so a NUL from bad
    input shows as U+FFFD there. The evidence itself (``raw``) is stored exactly, as bytes."""
    return None if value is None else value.replace("\x00", "\ufffd")


def raw_in(raw: str) -> bytes:
    return raw.encode("utf-8", "surrogatepass")


def pg_quarantine_record(row: Sequence[object]) -> QuarantineRecord:
    """A quarantine row read from PostgreSQL (``raw`` comes back as bytes)."""
    values = list(row)
    raw = values[11]
    if isinstance(raw, (bytes, bytearray, memoryview)):
        values[11] = bytes(raw).decode("utf-8", "surrogatepass")
    return quarantine_record(values)


def _frame(arrays: Sequence[np.ndarray], columns: Sequence[str] = READING_COLUMNS) -> pl.DataFrame:
    return pl.DataFrame(
        {c: pl.Series(c, a, dtype=pl.Int64) for c, a in zip(columns, arrays, strict=True)}
    )


def _int8_columns(rows: pl.DataFrame, columns: Sequence[str]) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for name in columns:
        column = rows.get_column(name)
        if column.null_count():  # to_numpy() would make it float NaN, then INT64_MIN
            raise TerminalStoreError(f"{column.null_count()} NULL {name} values in a write")
        out.append(column.cast(pl.Int64).to_numpy())
    return out


_READING_LIST = ", ".join(READING_COLUMNS)
_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS ml_stage (channel_id bigint, interval_end bigint,"
    " interval_seconds bigint, value bigint, quality bigint, batch_id bigint,"
    " received_at bigint, version bigint) ON COMMIT DELETE ROWS"
)


def encode_new(rows: pl.DataFrame) -> np.ndarray:
    """New readings as binary COPY rows of READING_COLUMNS, version 1; ``batch_id`` and
    ``received_at`` are left 0 for :meth:`PostgresTx.insert_new` to set."""
    height = rows.height
    arrays = _int8_columns(
        rows, ("channel_id", "interval_end", "interval_seconds", "value", "quality")
    )
    zeros = np.zeros(height, dtype=np.int64)
    return int8_records([*arrays, zeros, zeros, np.ones(height, dtype=np.int64)])


class PostgresTx(BillingWrites, CollectWrites, AnomalyWrites, FeedWrites, MarkWrites, WriteTx):
    def __init__(self, conn: psycopg.Connection[Any], partitions: Partitions) -> None:
        self.conn = conn
        self.partitions = partitions

    @translated
    def _billing_rows(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        cursor = self.conn.execute(query.replace("?", "%s"), params)
        return cursor.fetchall() if cursor.description else []

    def _ensure(self, rows: pl.DataFrame) -> None:
        self.partitions.ensure_for(self.conn, rows.get_column("interval_end").to_numpy())

    # -- batches ------------------------------------------------------------------------
    @translated
    def new_batch(self, source: str, fmt: str, received_at: str) -> int:
        row = self.conn.execute(
            "INSERT INTO batches (source, format, received_at) VALUES (%s, %s, %s)"
            " RETURNING batch_id",
            (source, fmt, received_at),
        ).fetchone()
        assert row is not None
        return int(row[0])

    @translated
    def finish_batch(self, batch_id: int, counts: BatchCounts, audit_seq: int | None) -> None:
        self.conn.execute(
            "UPDATE batches SET records = %s, accepted = %s, duplicates = %s, superseded = %s,"
            " ignored = %s, conflicts = %s, quarantined = %s, audit_seq = %s"
            " WHERE batch_id = %s",
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

    @translated
    def registry_version(self) -> int:
        row = self.conn.execute("SELECT version FROM registry_version WHERE id = 1").fetchone()
        assert row is not None
        return int(row[0])

    # -- readings -----------------------------------------------------------------------
    def _range_query(
        self, table: str, keys: pl.DataFrame, spans: list[tuple[int, int, int]] | None = None
    ) -> pl.DataFrame:
        if keys.is_empty():
            return _frame([np.empty(0, dtype=np.int64)] * len(READING_COLUMNS))
        spans = spans if spans is not None else key_spans(keys)
        # One range scan of the primary key per (channel, first, last) span: the LATERAL
        # subquery with OFFSET 0 is never flattened, so the planner cannot turn it into a
        # hash join over whole partitions (which it would, before statistics exist).
        channel, lo, hi = ([s[i] for s in spans] for i in range(3))
        # The rows come back as one bigint[] per column (one result row, loaded into
        # ndarrays), not one COPY message per row.
        cols = ", ".join(f"array_agg(t.{c})" for c in READING_COLUMNS)
        found = _frame(
            select_int8_arrays(
                self.conn,
                f"SELECT {cols} FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[])"
                f" AS s (c, lo, hi) CROSS JOIN LATERAL (SELECT * FROM {table} r"
                " WHERE r.channel_id = s.c AND r.interval_end BETWEEN s.lo AND s.hi"
                " OFFSET 0) t",
                len(READING_COLUMNS),
                (channel, lo, hi),
            )
        )
        if found.is_empty():
            return found
        return found.join(
            keys.select("channel_id", "interval_end"), on=["channel_id", "interval_end"], how="semi"
        )

    @translated
    def current_for(
        self, keys: pl.DataFrame, spans: list[tuple[int, int, int]] | None = None
    ) -> pl.DataFrame:
        return self._range_query("readings", keys, spans)

    @translated
    def versions_for(self, keys: pl.DataFrame) -> pl.DataFrame:
        return self._range_query("reading_versions", keys)

    @translated
    def insert_new(
        self,
        rows: pl.DataFrame,
        *,
        batch_id: int,
        received_at: int,
        encoded: object | None = None,
    ) -> None:
        if rows.is_empty():
            return
        self._ensure(rows)
        records = encoded if isinstance(encoded, np.ndarray) else encode_new(rows)
        if len(records) != rows.height:
            raise TerminalStoreError("encoded rows do not match the rows to insert")
        records["v5"] = batch_id  # filled in here: known only inside the transaction
        records["v6"] = received_at
        self._note_spans(rows, batch_id)
        try:
            with self.conn.transaction():  # a savepoint: a month gone since it was seen
                copy_in_records(self.conn, "readings", READING_COLUMNS, records)
        except psycopg.errors.CheckViolation:  # 23514: no partition holds some row
            self.partitions.forget()
            self._ensure(rows)  # a dropped month is made again; a detached one is refused
            copy_in_records(self.conn, "readings", READING_COLUMNS, records)

    @translated
    def replace_readings(self, rows: pl.DataFrame, reason: str) -> None:
        if rows.is_empty():
            return
        self._ensure(rows)
        self._note_spans(rows)
        self.conn.execute(_STAGE)
        self.conn.execute("TRUNCATE ml_stage")
        copy_in_ints(self.conn, "ml_stage", READING_COLUMNS, _int8_columns(rows, READING_COLUMNS))
        self.conn.execute(
            "INSERT INTO reading_versions (channel_id, interval_end, version, interval_seconds,"
            " value, quality, batch_id, received_at, status, reason) SELECT r.channel_id,"
            " r.interval_end, r.version, r.interval_seconds, r.value, r.quality, r.batch_id,"
            " r.received_at, 'superseded', %s FROM ml_stage s JOIN readings r"
            " ON r.channel_id = s.channel_id AND r.interval_end = s.interval_end",
            (reason,),
        )
        self.conn.execute(
            f"INSERT INTO readings ({_READING_LIST}) SELECT {_READING_LIST} FROM ml_stage"
            " ON CONFLICT (channel_id, interval_end) DO UPDATE SET"
            " interval_seconds = EXCLUDED.interval_seconds, value = EXCLUDED.value,"
            " quality = EXCLUDED.quality, batch_id = EXCLUDED.batch_id,"
            " received_at = EXCLUDED.received_at, version = EXCLUDED.version"
        )

    @translated
    def insert_versions(self, rows: pl.DataFrame, status: str, reason: str) -> None:
        if rows.is_empty():
            return
        self._ensure(rows)
        self._note_spans(rows)
        columns = [*READING_COLUMNS, "status", "reason"]
        statement = sql.SQL("COPY reading_versions ({}) FROM STDIN").format(
            sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        with self.conn.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows.select(READING_COLUMNS).iter_rows():
                copy.write_row((*row, status, reason))

    @translated
    def delete_version(self, channel_id: int, interval_end: int, version: int) -> None:
        self.conn.execute(
            "DELETE FROM reading_versions WHERE channel_id = %s AND interval_end = %s"
            " AND version = %s",
            (channel_id, interval_end, version),
        )

    # -- quarantine -----------------------------------------------------------------------
    @translated
    def insert_quarantine(
        self, batch_id: int, records: Sequence[NewQuarantine], at: str
    ) -> list[str]:
        if not records:
            return []
        with self.conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO quarantine (record_key, batch_id, source, format, record_no,"
                " meter_id, channel, interval_end, reasons, detail, raw, fields, status,"
                " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                " %s, 'open', %s, %s) ON CONFLICT (record_key) DO NOTHING",
                [
                    (
                        r.record_key,
                        batch_id,
                        text_in(r.source),
                        r.format,
                        r.record_no,
                        text_in(r.meter_id),
                        text_in(r.channel),
                        text_in(r.interval_end),
                        ",".join(r.reasons),
                        text_in(r.detail),
                        raw_in(r.raw),
                        text_in(r.fields),
                        at,
                        at,
                    )
                    for r in records
                ],
            )
        rows = self.conn.execute(
            "SELECT record_key FROM quarantine WHERE batch_id = %s ORDER BY q_id", (batch_id,)
        ).fetchall()
        return [str(row[0]) for row in rows]

    @translated
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
            "UPDATE quarantine SET status = %s, updated_at = %s,"
            " fields = coalesce(%s, fields), reasons = coalesce(%s, reasons),"
            " detail = coalesce(%s, detail), note = coalesce(%s, note) WHERE q_id = %s",
            (
                status,
                at,
                text_in(fields),
                ",".join(reasons) if reasons is not None else None,
                text_in(detail),
                text_in(note),
                q_id,
            ),
        )

    @translated
    def get_quarantine(self, q_id: int) -> QuarantineRecord | None:
        row = self.conn.execute(
            f"SELECT {Q_COLUMNS} FROM quarantine WHERE q_id = %s", (q_id,)
        ).fetchone()
        return pg_quarantine_record(row) if row else None

    # -- audit, registry --------------------------------------------------------------------
    @translated
    def last_audit(self) -> AuditRow | None:
        row = self.conn.execute(
            "SELECT seq, recorded_at, kind, subject, payload, prev_hash, hash FROM audit_log"
            " ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return AuditRow(int(row[0]), *row[1:]) if row else None

    @translated
    def insert_audit(self, row: AuditRow) -> None:
        # a plain INSERT: ON CONFLICT DO NOTHING would skip a clash silently
        self.conn.execute(
            "INSERT INTO audit_log (seq, recorded_at, kind, subject, payload, prev_hash, hash)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (row.seq, row.recorded_at, row.kind, row.subject, row.payload, row.prev_hash, row.hash),
        )

    @translated
    def add_meter(self, meter: MeterRecord) -> None:
        check_meter_class(meter.meter_class)
        # checked first, under the writer lock: a failed INSERT would abort the transaction
        found = self.conn.execute(
            "SELECT 1 FROM meters WHERE meter_id = %s", (meter.meter_id,)
        ).fetchone()
        if found:
            raise ConflictError(f"meter {meter.meter_id} already exists")
        self.conn.execute(
            f"INSERT INTO meters ({METER_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                meter.meter_id,
                meter.service,
                meter.unit,
                meter.timezone,
                meter.account,
                meter.status,
                meter.capacity,
                meter.created_at,
                meter.meter_class,
            ),
        )

    @translated
    def add_channel(self, meter_id: str, obis: str, base_unit: str, allows_negative: bool) -> int:
        self.conn.execute(
            "INSERT INTO channels (meter_id, obis, base_unit, allows_negative)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (meter_id, obis) DO NOTHING",
            (meter_id, obis, base_unit, int(allows_negative)),
        )
        row = self.conn.execute(
            "SELECT channel_id FROM channels WHERE meter_id = %s AND obis = %s", (meter_id, obis)
        ).fetchone()
        if row is None:
            raise TerminalStoreError(f"channel {obis} of meter {meter_id} was not stored")
        return int(row[0])
