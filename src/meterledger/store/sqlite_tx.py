"""The SQLite write transaction: everything ingest writes, inside one ``BEGIN IMMEDIATE``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import polars as pl

from meterledger.core.errors import ConflictError
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
from meterledger.store.records import check_meter_class

__all__ = [
    "METER_COLUMNS",
    "Q_COLUMNS",
    "SqliteTx",
    "get_quarantine",
    "new_readings_sql",
    "quarantine_record",
    "registry_version",
]

# MeterRecord's fields in order
METER_COLUMNS = (
    "meter_id, service, unit, timezone, account, status, capacity, created_at, meter_class"
)
_INSERT_READINGS = (
    "INSERT INTO readings (channel_id, interval_end, interval_seconds, value, quality, batch_id,"
    " received_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _frame(rows: list[tuple[int, ...]], columns: Sequence[str] = READING_COLUMNS) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={c: pl.Int64 for c in columns}, orient="row")


def _tuples(
    rows: pl.DataFrame, columns: Sequence[str] = READING_COLUMNS
) -> Iterator[tuple[int, ...]]:
    return zip(*(rows.get_column(c).to_list() for c in columns), strict=True)


def get_quarantine(conn: sqlite3.Connection, q_id: int) -> QuarantineRecord | None:
    row = conn.execute(f"SELECT {Q_COLUMNS} FROM quarantine WHERE q_id = ?", (q_id,)).fetchone()
    return quarantine_record(row) if row else None


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


def registry_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT version FROM registry_version WHERE id = 1").fetchone()[0])


class SqliteTx(BillingWrites, CollectWrites, AnomalyWrites, FeedWrites, MarkWrites, WriteTx):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def _billing_rows(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(query, params).fetchall()

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
        return registry_version(self.conn)

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

    def insert_new(
        self,
        rows: pl.DataFrame,
        *,
        batch_id: int,
        received_at: int,
        encoded: object | None = None,
    ) -> None:
        del encoded  # nothing for SQLite to do ahead
        if rows.is_empty():
            return
        self._note_spans(rows, batch_id)
        values = np.ascontiguousarray(rows.select(_NEW_COLUMNS).to_numpy(), dtype=np.int64)
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
        self._note_spans(rows)
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
        self._note_spans(rows)
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
        return get_quarantine(self.conn, q_id)

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
        check_meter_class(meter.meter_class)
        try:
            self.conn.execute(
                f"INSERT INTO meters ({METER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
