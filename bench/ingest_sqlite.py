"""The SQLite half of the ingest benchmark: every store is a new file in the run's folder."""

from __future__ import annotations

import csv
import time
from pathlib import Path

from meterledger.core.time import epoch_of
from meterledger.store.sqlite import SqliteStore, new_readings_sql
from workload import (
    BATCH_ROWS,
    START,
    NaiveReading,
    channel_ids,
    measure_billing_read,
    measure_ingest,
    parsed_rows,
    register_meters,
)

__all__ = ["fresh_store", "measure_limit", "measure_naive", "run_sqlite"]


def fresh_store(path: Path, meters: int) -> SqliteStore:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = SqliteStore(f"sqlite:///{path}")
    store.migrate()
    register_meters(store, meters)
    return store


def measure_limit(store: SqliteStore, csv_path: Path, rows: int, batch: int) -> float:
    tuples = parsed_rows(csv_path, channel_ids(store))
    conn = store.conn
    # the same statement shape as the store's own insert (batch constants as literals)
    sql = new_readings_sql(1, START).replace("INSERT INTO", "INSERT OR IGNORE INTO")
    started = time.perf_counter()
    for at in range(0, len(tuples), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, tuples[at : at + batch])
        conn.execute("COMMIT")
    return rows / (time.perf_counter() - started)


def measure_naive(store: SqliteStore, csv_path: Path, rows: int, batch: int) -> float:
    ids = channel_ids(store)
    conn = store.conn
    sql = (
        "INSERT OR IGNORE INTO readings (channel_id, interval_end, interval_seconds, value,"
        " quality, batch_id, received_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    done = 0
    started = time.perf_counter()
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        conn.execute("BEGIN IMMEDIATE")
        for record in reader:
            if done == rows:
                break
            r = NaiveReading.model_validate(record)
            conn.execute(
                sql,
                (
                    ids[r.meter_id],
                    epoch_of(r.interval_end),
                    r.interval_seconds,
                    int(r.value * r.unit.milli_per_unit),
                    0,
                    1,
                    START,
                    1,
                ),
            )
            done += 1
            if done % batch == 0:
                conn.execute("COMMIT")
                conn.execute("BEGIN IMMEDIATE")
        conn.execute("COMMIT")
    return done / (time.perf_counter() - started)


def run_sqlite(
    work: Path, csv_path: Path, rows: int, naive_rows: int, meters: int
) -> dict[str, float]:
    """``empty``, ``replay``, ``limit`` and ``naive`` in rows/s, and ``billing_read_s``."""
    figures: dict[str, float] = {}
    store = fresh_store(work / "ours.db", meters)
    figures["empty"] = measure_ingest(store, csv_path, rows)
    figures["replay"] = measure_ingest(store, csv_path, rows)
    figures["billing_read_s"] = measure_billing_read(store, rows, meters)
    store.close()
    store = fresh_store(work / "limit.db", meters)
    figures["limit"] = measure_limit(store, csv_path, rows, BATCH_ROWS)
    store.close()
    store = fresh_store(work / "naive.db", meters)
    figures["naive"] = measure_naive(store, csv_path, naive_rows, BATCH_ROWS)
    store.close()
    return figures
