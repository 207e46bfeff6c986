"""The PostgreSQL half of the ingest benchmark. Each measured store gets a database of its own,
created from an admin URL and dropped afterwards (``WITH (FORCE)``), even if the run fails."""

from __future__ import annotations

import csv
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from meterledger.core.time import epoch_of
from meterledger.store import open_store
from meterledger.store.base import READING_COLUMNS
from meterledger.store.postgres import PostgresStore
from workload import (
    BATCH_ROWS,
    MONTH_END,
    START,
    NaiveReading,
    channel_ids,
    measure_billing_read,
    measure_ingest,
    parsed_rows,
    register_meters,
)

__all__ = [
    "fresh_store",
    "measure_copy_limit",
    "measure_naive_inserts",
    "pg_database",
    "run_postgresql",
]

Row = tuple[int, int, int, int, int, int, int, int]  # READING_COLUMNS
_PREFIX = "ml_bench_"
_COLUMNS = sql.SQL(", ").join(map(sql.Identifier, READING_COLUMNS))
_COPY = sql.SQL("COPY readings ({}) FROM STDIN (FORMAT BINARY)").format(_COLUMNS)
_INSERT = sql.SQL("INSERT INTO readings ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
    _COLUMNS, sql.SQL(", ").join(sql.Placeholder() * len(READING_COLUMNS))
)


def _url_for(admin_url: str, database: str) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{database}"))


@contextmanager
def pg_database(admin_url: str) -> Iterator[str]:
    """The URL of a new empty database, dropped on the way out."""
    name = f"{_PREFIX}{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _url_for(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def fresh_store(admin_url: str, meters: int) -> Iterator[PostgresStore]:
    """A migrated store in a new database, with the benchmark's meters registered."""
    with pg_database(admin_url) as url:
        store = open_store(url)
        try:
            assert isinstance(store, PostgresStore), type(store)
            register_meters(store, meters)
            yield store
        finally:
            store.close()


def _column_types(conn: psycopg.Connection) -> list[str]:
    """The declared type of each ``readings`` column, in READING_COLUMNS order. Binary COPY
    needs every value in exactly its column's type; unset, a small int would go as int2."""
    declared: dict[str, str] = dict(
        conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'readings'::regclass AND attnum > 0 AND NOT attisdropped"
        ).fetchall()
    )
    conn.commit()
    return [declared[name] for name in READING_COLUMNS]


def measure_copy_limit(url: str, rows: Sequence[Row], batch: int) -> float:
    """The raw limit: binary COPY of pre-parsed rows, one transaction per ``batch`` rows."""
    with psycopg.connect(url) as conn:
        types = _column_types(conn)
        cursor = conn.cursor()
        started = time.perf_counter()
        for at in range(0, len(rows), batch):
            with cursor.copy(_COPY) as copy:
                copy.set_types(types)
                for row in rows[at : at + batch]:
                    copy.write_row(row)
            conn.commit()
        return len(rows) / (time.perf_counter() - started)


def measure_naive_inserts(
    url: str, ids: dict[str, int], csv_path: Path, rows: int, batch: int, batch_id: int
) -> float:
    """A pydantic model validated per row; the rows of each ``batch`` then go in one
    ``executemany`` of ``INSERT ... ON CONFLICT DO NOTHING``, one transaction per batch."""
    done = 0
    pending: list[Row] = []
    with psycopg.connect(url) as conn, csv_path.open(newline="") as handle:
        cursor = conn.cursor()
        started = time.perf_counter()
        for record in csv.DictReader(handle):
            if done == rows:
                break
            r = NaiveReading.model_validate(record)
            pending.append(
                (
                    ids[r.meter_id],
                    epoch_of(r.interval_end),
                    r.interval_seconds,
                    int(r.value * r.unit.milli_per_unit),
                    0,
                    batch_id,
                    START,
                    1,
                )
            )
            done += 1
            if len(pending) == batch:
                cursor.executemany(_INSERT, pending)
                conn.commit()
                pending.clear()
        if pending:
            cursor.executemany(_INSERT, pending)
            conn.commit()
        return done / (time.perf_counter() - started)


def _baseline_store(store: PostgresStore) -> tuple[dict[str, int], int]:
    """Partitions for the month, and a batch row for the baseline's readings to name (the
    baselines write behind the store's back): the channel ids and that batch id."""
    store.ensure_partitions(START + 900, MONTH_END)
    with store.write() as tx:
        batch_id = tx.new_batch("bench", "csv", "2024-01-01T00:00:00+00:00")
    return channel_ids(store), batch_id


def run_postgresql(
    admin_url: str, csv_path: Path, rows: int, naive_rows: int, meters: int
) -> dict[str, float]:
    """``empty``, ``replay``, ``limit`` and ``naive`` in rows/s, and ``billing_read_s``."""
    figures: dict[str, float] = {}
    with fresh_store(admin_url, meters) as store:
        figures["empty"] = measure_ingest(store, csv_path, rows)
        figures["replay"] = measure_ingest(store, csv_path, rows)
        figures["billing_read_s"] = measure_billing_read(store, rows, meters)
    with fresh_store(admin_url, meters) as store:
        ids, batch_id = _baseline_store(store)
        tuples = [(*row, batch_id, START, 1) for row in parsed_rows(csv_path, ids)]
        figures["limit"] = measure_copy_limit(store.url, tuples, BATCH_ROWS)
        del tuples
    with fresh_store(admin_url, meters) as store:
        ids, batch_id = _baseline_store(store)
        figures["naive"] = measure_naive_inserts(
            store.url, ids, csv_path, naive_rows, BATCH_ROWS, batch_id
        )
    return figures
