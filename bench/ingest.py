"""Ingest benchmark: our end-to-end rate against the raw SQLite limit and a naive baseline.

    python bench/ingest.py [--backend sqlite] [--rows 2000000] [--naive-rows 500000] [--json]

All figures come from one run on one machine, from the same canonical CSV:

* ``rows_per_s_empty`` / ``rows_per_s_replay``: ``Ingestor.ingest_path`` on an empty store,
  then the same file again (every row a duplicate).
* ``limit_rows_per_s``: executemany ``INSERT OR IGNORE`` of pre-parsed tuples into the same
  keyed ``readings`` table, same connection settings, same batch size, no validation.
* ``naive_rows_per_s``: a pydantic model validated per row, then one ``INSERT OR IGNORE`` per
  row (on the first ``--naive-rows`` rows: it is slow).
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
from pydantic import BaseModel, field_validator

from meterledger.core.obis import ObisCode
from meterledger.core.time import epoch_of
from meterledger.core.units import Unit
from meterledger.ingest.pipeline import IngestOptions, Ingestor, register_meter
from meterledger.store.base import MeterRecord
from meterledger.store.sqlite import SqliteStore, new_readings_sql

START = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
CHANNEL = "1.0.1.8.0.255"


def make_csv(path: Path, rows: int) -> int:
    """700 meters x 30 days x 96 (or fewer meters for fewer rows), values in kWh text."""
    per_meter = 30 * 96
    meters = max(1, -(-rows // per_meter))
    idx = pl.int_range(0, meters * per_meter, eager=True).head(rows)
    frame = (
        pl.DataFrame({"i": idx})
        .with_columns(
            pl.format("MTR-{}", (pl.col("i") // per_meter).cast(pl.String).str.zfill(5)).alias(
                "meter_id"
            ),
            pl.lit(CHANNEL).alias("channel"),
            (pl.lit(START) + (pl.col("i") % per_meter + 1) * 900).alias("end"),
            pl.lit("900").alias("interval_seconds"),
            ((pl.col("i") * 7919) % 900_000 + 1_000).alias("milli"),
            pl.lit("kWh").alias("unit"),
            pl.lit("actual").alias("quality"),
        )
        .with_columns(
            pl.from_epoch("end", time_unit="s")
            .dt.replace_time_zone("UTC")
            .dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
            .alias("interval_end"),
            pl.format(
                "{}.{}",
                pl.col("milli") // 1_000_000,
                (pl.col("milli") % 1_000_000).cast(pl.String).str.zfill(6),
            ).alias("value"),
        )
    )
    frame.select(
        "meter_id", "channel", "interval_end", "interval_seconds", "value", "unit", "quality"
    ).write_csv(path)
    return meters


def fresh_store(path: Path, meters: int) -> SqliteStore:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = SqliteStore(f"sqlite:///{path}")
    store.migrate()
    with store.write() as tx:
        for n in range(meters):
            register_meter(
                tx,
                MeterRecord(
                    f"MTR-{n:05d}",
                    "electric",
                    "kWh",
                    "UTC",
                    None,
                    "active",
                    1_000_000_000,
                    "2024-01-01T00:00:00+00:00",
                ),
            )
    return store


def channel_ids(store: SqliteStore) -> dict[str, int]:
    return {c.meter_id: c.channel_id for c in store.list_channels() if c.obis == CHANNEL}


def measure_ingest(store: SqliteStore, csv_path: Path, rows: int) -> float:
    started = time.perf_counter()
    result = Ingestor(store).ingest_path(csv_path, IngestOptions())
    elapsed = time.perf_counter() - started
    if result.counts.records != rows:
        raise SystemExit(f"ingest saw {result.counts.records} records, expected {rows}")
    return rows / elapsed


def measure_limit(store: SqliteStore, csv_path: Path, rows: int, batch: int) -> float:
    ids = channel_ids(store)
    frame = pl.read_csv(csv_path, infer_schema=False)
    tuples = [
        (ids[m], epoch_of(datetime.fromisoformat(e)), 900, int(Decimal(v) * 1_000_000), 0)
        for m, e, v in zip(frame["meter_id"], frame["interval_end"], frame["value"], strict=True)
    ]
    conn = store.conn
    # the same statement shape as the store's own insert (batch constants as literals)
    sql = new_readings_sql(1, START).replace("INSERT INTO", "INSERT OR IGNORE INTO")
    started = time.perf_counter()
    for at in range(0, len(tuples), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, tuples[at : at + batch])
        conn.execute("COMMIT")
    return rows / (time.perf_counter() - started)


class NaiveReading(BaseModel):
    meter_id: str
    channel: str
    interval_end: datetime
    interval_seconds: int
    value: Decimal
    unit: Unit
    quality: str

    @field_validator("channel")
    @classmethod
    def obis(cls, value: str) -> str:
        return str(ObisCode.parse(value))


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


def main(argv: list[str] | None = None) -> dict[str, float | int]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite"], default="sqlite")
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--naive-rows", type=int, default=500_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ml-bench-") as tmp:
        work = Path(tmp)
        csv_path = work / "readings.csv"
        meters = make_csv(csv_path, args.rows)
        batch = 100_000
        store = fresh_store(work / "ours.db", meters)
        empty = measure_ingest(store, csv_path, args.rows)
        replay = measure_ingest(store, csv_path, args.rows)
        store.close()
        store = fresh_store(work / "limit.db", meters)
        limit = measure_limit(store, csv_path, args.rows, batch)
        store.close()
        store = fresh_store(work / "naive.db", meters)
        naive = measure_naive(store, csv_path, min(args.naive_rows, args.rows), batch)
        store.close()
    figures: dict[str, float | int] = {
        "rows": args.rows,
        "rows_per_s_empty": round(empty),
        "rows_per_s_replay": round(replay),
        "limit_rows_per_s": round(limit),
        "naive_rows_per_s": round(naive),
        "ratio_to_limit": round(empty / limit, 3),
        "ratio_to_naive": round(empty / naive, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:>18}: {value:,}")
    return figures


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
