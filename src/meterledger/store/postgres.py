"""PostgreSQL backend: psycopg 3 with a connection pool, monthly partitions, binary COPY.

Selected by a ``postgresql://`` (or ``postgres://``) URL. The schema is the same as SQLite's,
version for version (``migrations/postgresql``), except that ``readings`` and
``reading_versions`` are range-partitioned by month on ``interval_end``, or are TimescaleDB
hypertables when that extension is installed in the database before the first migration.

Writers are serialised by one transaction-scoped advisory lock per schema
(:data:`WRITER_LOCK`, keyed by the schema's name), taken as the first statement of every
write transaction and of every migration, at READ COMMITTED. One lock, always first, so
writers queue and never deadlock; everything a writer reads after it has the lock is up to
date, so audit appends can neither fork nor reorder.
Readers take no lock and see committed batches whole.

Reads made by the thread that holds an open write transaction go through that
transaction's connection, so they see what it has written so far.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from meterledger.core.errors import ConfigError, StoreError, TerminalStoreError
from meterledger.store.anomaly_sql import AnomalyReads, VeeRows
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
from meterledger.store.pg_arrays import channel_arrays, concat_channels
from meterledger.store.pg_partitions import Partitions, months_for, months_of
from meterledger.store.pgcopy import copy_out_ints
from meterledger.store.postgres_tx import (
    LOCK_SQL,
    METER_COLUMNS,
    Q_COLUMNS,
    WRITER_LOCK,
    PostgresTx,
    encode_new,
    pg_quarantine_record,
    translate,
)
from meterledger.store.urls import redact_url

__all__ = ["WRITER_LOCK", "PostgresStore"]

_STATUS_CODES = ("current", "superseded", "pending_review", "ignored")
_BILLED = ("interval_end", "value", "quality")
_VEE_COLUMNS = ("interval_end", "interval_seconds", "value", "quality", "batch_id")
# Periods: a period is ``start < interval_end <= end``, and queries say
# ``interval_end >= start + 1``, because partition pruning does not know that bigint is
# discrete: with ``> start`` the month before, whose upper bound is ``start + 1``
# exclusive, would be scanned as well.
MONTHS_AHEAD = 1  # partitions made at migration past the current month
PARTITION_MONTHS_PER_TX = 48  # months of partitions made in one transaction


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class PostgresStore(BillingReads, CollectReads, AnomalyReads, FeedReads, MarkReads, Store):
    dialect = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 4, connect_timeout_s: float = 10.0) -> None:
        self.url = url
        conninfo = "postgresql://" + url.split("://", 1)[1]
        try:
            # one direct connection first: the pool would hide why a connection fails
            psycopg.connect(conninfo, connect_timeout=int(connect_timeout_s)).close()
        except psycopg.Error as exc:
            raise translate(exc, f"cannot connect to {redact_url(url)}") from exc
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},
            open=False,
            name="meterledger",
            # a connection the server dropped (restart, failover) is replaced on checkout,
            # not handed out to fail one call
            check=ConnectionPool.check_connection,
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout as exc:
            self._pool.close()
            raise translate(exc, f"cannot connect to {redact_url(url)}") from exc
        self._local = threading.local()
        self._partitions = Partitions()
        if self._rows("SELECT current_schema()")[0][0] is None:
            self._pool.close()
            raise ConfigError(
                f"{redact_url(url)}: no schema of search_path exists; create it first"
                " (CREATE SCHEMA ...) or fix the URL's options"
            )

    # -- connections --------------------------------------------------------------------
    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        held: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise translate(exc) from exc
        except PoolTimeout as exc:
            raise translate(exc, "no database connection free") from exc
        except PoolClosed as exc:
            raise translate(exc) from exc

    def _rows(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._conn() as conn:
            try:
                return conn.execute(query, params).fetchall()
            except psycopg.Error as exc:
                raise translate(exc) from exc

    def _billing_rows(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._rows(query.replace("?", "%s"), params)

    def _copy_ints(self, query: str, columns: int, params: Sequence[object] = ()) -> list[Any]:
        with self._conn() as conn:
            try:
                return copy_out_ints(conn, query, columns, params)
            except psycopg.Error as exc:
                raise translate(exc) from exc

    @contextmanager
    def write(self) -> Iterator[WriteTx]:
        if getattr(self._local, "conn", None) is not None:
            raise StoreError("a write transaction is already open in this thread")
        with self._transaction() as conn:
            self._local.conn = conn
            try:
                yield PostgresTx(conn, self._partitions)
            finally:
                self._local.conn = None

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction holding the writer lock: committed whole or rolled back whole."""
        try:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute(LOCK_SQL, (WRITER_LOCK,))
                yield conn
                if conn.info.transaction_status == TransactionStatus.INERROR:
                    # a statement failed and the caller went on: COMMIT would quietly
                    # roll back, and the caller would think the batch stored
                    raise TerminalStoreError("a statement of this write failed; nothing stored")
        except BaseException as exc:
            self._partitions.forget()
            if isinstance(exc, psycopg.Error):
                raise translate(exc) from exc
            if isinstance(exc, PoolTimeout):
                raise translate(exc, "no database connection free") from exc
            if isinstance(exc, PoolClosed):
                raise translate(exc) from exc
            raise

    # -- schema -------------------------------------------------------------------------
    def schema_version(self) -> int:
        rows = self._rows(
            "SELECT to_regclass('schema_migrations') IS NOT NULL",
        )
        if not rows[0][0]:
            return 0
        return int(self._rows("SELECT coalesce(max(version), 0) FROM schema_migrations")[0][0])

    def migrate(self, target: int | None = None) -> list[int]:
        # Nothing pending (every open of an up-to-date store): no lock, no write, so the
        # read-only role can open the store and readers never queue behind a writer.
        latest = self.latest_version() if target is None else target
        if self.schema_version() >= latest:
            self._partitions_ahead()
            return []
        applied: list[int] = []
        with self._transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at text NOT NULL)"
            )
            current = int(
                conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[
                    0
                ]  # type: ignore[index]
            )
            for migration in load_migrations("postgresql"):
                if migration.version <= current:
                    continue
                if target is not None and migration.version > target:
                    break
                conn.execute(migration.sql.encode())  # a whole script: simple query protocol
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                    (migration.version, migration.name, _now()),
                )
                applied.append(migration.version)
        if applied:
            self._partitions_ahead()
        return applied

    def _partitions_ahead(self) -> None:
        """This month's and the next month's partitions, made when missing. Best effort:
        a reader's open skips it when the role may not create tables."""
        now = int(time.time())
        months = np.array([now, now + 86_400 * 31 * MONTHS_AHEAD], dtype=np.int64)
        with self._conn() as conn:
            if not self._partitions.missing(conn, months):
                return
        try:
            self.prepare_months(months)
        except TerminalStoreError as exc:
            if "permission denied" not in str(exc):
                raise

    def ensure_partitions(self, first_end: int, last_end: int) -> None:
        """Create the monthly partitions that hold interval ends in ``[first_end, last_end]``
        (the ingest path does this itself; this is for tools that COPY directly)."""
        self._make_months(months_for(first_end, last_end))

    def encode_new(self, rows: pl.DataFrame) -> object | None:
        return encode_new(rows)

    def prepare_months(self, interval_ends: np.ndarray) -> None:
        # Checked first without the lock: nearly always every month is there already.
        with self._conn() as conn:
            try:
                if not self._partitions.missing(conn, interval_ends):
                    return
            except psycopg.Error as exc:
                raise translate(exc) from exc
        self._make_months(months_of(interval_ends))

    def _make_months(self, months: list[tuple[int, int, int, int]]) -> None:
        held: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if held is not None:  # inside this thread's write: its transaction, its lock
            try:
                self._partitions.ensure_months(held, months)
            except psycopg.Error as exc:
                raise translate(exc) from exc
            return
        # A few dozen months per transaction: no transaction runs out of lock slots
        # (max_locks_per_transaction), whatever span of months a batch holds.
        for at in range(0, len(months), PARTITION_MONTHS_PER_TX):
            with self._transaction() as conn:
                self._partitions.ensure_months(conn, months[at : at + PARTITION_MONTHS_PER_TX])

    def details(self) -> dict[str, object]:
        """What ``db status`` shows of this backend: server, layout, partitions, roles."""
        server = self._rows("SHOW server_version")[0][0]
        timescale = bool(
            self._rows("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")[0][0]
        )
        layout = "absent"
        partitions: list[str] = []
        if self._rows("SELECT to_regclass('readings') IS NOT NULL")[0][0]:
            partitioned = self._rows(
                "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'readings'::regclass"
            )[0][0]
            layout = "partitioned by month" if partitioned else "plain table"
            if timescale and not partitioned:
                layout = "timescaledb hypertable"
            partitions = [
                r[0]
                for r in self._rows(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " WHERE i.inhparent = 'readings'::regclass ORDER BY c.relname"
                )
            ]
        reader = bool(
            self._rows(
                "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'meterledger_reader')"
                " AND has_schema_privilege('meterledger_reader', current_schema(), 'USAGE')"
            )[0][0]
        )
        return {
            "server_version": server,
            "timescaledb": timescale,
            "readings_layout": layout,
            "partitions": partitions,
            "reader_role": reader,
        }

    def close(self) -> None:
        self._pool.close()

    # -- meters -------------------------------------------------------------------------
    def get_meter(self, meter_id: str) -> MeterRecord | None:
        rows = self._rows(
            f"SELECT {METER_COLUMNS} FROM meters WHERE meter_id = %s",
            (meter_id,),
        )
        return MeterRecord(*rows[0]) if rows else None

    def list_meters(self) -> list[MeterRecord]:
        rows = self._rows(f'SELECT {METER_COLUMNS} FROM meters ORDER BY meter_id COLLATE "C"')
        return [MeterRecord(*row) for row in rows]

    def registry_version(self) -> int:
        return int(self._rows("SELECT version FROM registry_version WHERE id = 1")[0][0])

    def list_channels(self) -> list[ChannelRecord]:
        rows = self._rows(
            "SELECT channel_id, meter_id, obis, base_unit, allows_negative FROM channels"
            ' ORDER BY meter_id COLLATE "C", obis COLLATE "C"'
        )
        return [ChannelRecord(int(r[0]), r[1], r[2], r[3], bool(r[4])) for r in rows]

    # -- readings -----------------------------------------------------------------------
    def _channel_names(self) -> pl.DataFrame:
        rows = self._rows("SELECT channel_id, meter_id, obis FROM channels")
        return pl.DataFrame(
            rows,
            schema={"channel_id": pl.Int64, "meter_id": pl.String, "channel": pl.String},
            orient="row",
        )

    def _readings_frame(self, query: str, params: Sequence[object]) -> pl.DataFrame:
        """Rows of READING_COLUMNS from ``query`` (binary COPY), named and sorted."""
        arrays = self._copy_ints(query, len(READING_COLUMNS), params)
        frame = pl.DataFrame(dict(zip(READING_COLUMNS, arrays, strict=True)))
        named = frame.join(self._channel_names(), on="channel_id", how="inner")
        return named.select(
            "meter_id", "channel", *[c for c in READING_COLUMNS if c != "channel_id"]
        ).sort("meter_id", "channel", "interval_end")

    def readings(
        self, meter_id: str, start: int, end: int, channel: str | None = None
    ) -> pl.DataFrame:
        cols = ", ".join(f"r.{c}" for c in READING_COLUMNS)
        query = (
            f"SELECT {cols} FROM channels c JOIN readings r ON r.channel_id = c.channel_id"
            " WHERE c.meter_id = %s AND r.interval_end >= %s AND r.interval_end <= %s"
        )
        params: list[object] = [meter_id, start + 1, end]  # see Periods
        if channel is not None:
            query += " AND c.obis = %s"
            params.append(channel)
        return self._readings_frame(query, params).drop_nulls("meter_id")

    def all_readings(self) -> pl.DataFrame:
        return self._readings_frame(f"SELECT {', '.join(READING_COLUMNS)} FROM readings", [])

    def billing_read(
        self,
        start: int,
        end: int,
        channel: str = "1.0.1.8.0.255",
        meter_ids: Sequence[str] | None = None,
    ) -> BillingArrays:
        meters = [
            (str(m), int(c))
            for m, c in self._rows(
                "SELECT meter_id, channel_id FROM channels WHERE obis = %s", (channel,)
            )
        ]
        if meter_ids is not None:
            wanted = set(meter_ids)
            meters = [m for m in meters if m[0] in wanted]
        meters.sort()
        with self._conn() as conn:
            try:
                found = channel_arrays(conn, [c for _, c in meters], start, end, _BILLED)
            except psycopg.Error as exc:
                raise translate(exc) from exc
        offsets = np.zeros(len(meters) + 1, dtype=np.int64)
        np.cumsum([len(found[c][0]) if c in found else 0 for _, c in meters], out=offsets[1:])
        _, arrays = concat_channels(found, [c for _, c in meters], len(_BILLED))
        read = BillingArrays(tuple(m for m, _ in meters), offsets, *arrays)
        return self._drop_held(read, meters, start, end)

    def vee_read(self, channel_ids: Sequence[int], start: int, end: int) -> VeeRows:
        ids = sorted({int(c) for c in channel_ids})
        with self._conn() as conn:
            try:
                found = channel_arrays(conn, ids, start, end, _VEE_COLUMNS)
            except psycopg.Error as exc:
                raise translate(exc) from exc
        channel, arrays = concat_channels(found, ids, len(_VEE_COLUMNS))
        return VeeRows(channel, *arrays)

    def stored_by_batch(self) -> pl.DataFrame:
        code = " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(_STATUS_CODES))
        arrays = self._copy_ints(
            "SELECT batch_id, channel_id, interval_end, interval_seconds, value, quality,"
            " 0::bigint, version FROM readings UNION ALL SELECT batch_id, channel_id,"
            " interval_end, interval_seconds, value, quality,"
            f" (CASE status {code} END)::bigint, version FROM reading_versions",
            8,
        )
        names = (
            "batch_id",
            "channel_id",
            "interval_end",
            "interval_seconds",
            "value",
            "quality",
            "status_code",
            "version",
        )
        frame = pl.DataFrame(dict(zip(names, arrays, strict=True)))
        statuses = pl.DataFrame(
            {"status_code": list(range(len(_STATUS_CODES))), "status": list(_STATUS_CODES)},
            schema={"status_code": pl.Int64, "status": pl.String},
        )
        return (
            frame.join(self._channel_names(), on="channel_id", how="inner")
            .join(statuses, on="status_code", how="left")
            .select(
                "batch_id",
                "meter_id",
                "channel",
                "interval_end",
                "interval_seconds",
                "value",
                "quality",
                "status",
                "version",
            )
        )

    def versions(self, channel_id: int, interval_end: int) -> pl.DataFrame:
        rows = self._rows(
            "SELECT version, value, quality, batch_id, received_at, 'current', NULL::text"
            " FROM readings WHERE channel_id = %s AND interval_end = %s UNION ALL"
            " SELECT version, value, quality, batch_id, received_at, status, reason"
            " FROM reading_versions WHERE channel_id = %s AND interval_end = %s",
            (channel_id, interval_end, channel_id, interval_end),
        )
        return pl.DataFrame(rows, schema=VERSION_SCHEMA, orient="row").sort("version")

    # -- quarantine, audit ----------------------------------------------------------------
    def list_quarantine(
        self, status: str | None = None, reason: str | None = None, limit: int | None = None
    ) -> list[QuarantineRecord]:
        query, params = quarantine_query(status, reason, limit, "%s")
        return [pg_quarantine_record(row) for row in self._rows(query, params)]

    def get_quarantine(self, q_id: int) -> QuarantineRecord | None:
        rows = self._rows(f"SELECT {Q_COLUMNS} FROM quarantine WHERE q_id = %s", (q_id,))
        return pg_quarantine_record(rows[0]) if rows else None

    def batch_audit_refs(self) -> dict[int, int | None]:
        return {
            int(b): (None if s is None else int(s))
            for b, s in self._rows("SELECT batch_id, audit_seq FROM batches")
        }

    def audit_rows(self) -> Iterator[AuditRow]:
        rows = self._rows(
            "SELECT seq, recorded_at, kind, subject, payload, prev_hash, hash FROM audit_log"
            " ORDER BY seq"
        )
        for row in rows:
            yield AuditRow(int(row[0]), *row[1:])

    def count(self, table: str) -> int:
        if table not in STORE_TABLES:
            raise StoreError(f"no such table: {table}")
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        with self._conn() as conn:
            try:
                return int(conn.execute(query).fetchone()[0])  # type: ignore[index]
            except psycopg.Error as exc:
                raise translate(exc) from exc
