"""The benchmark's workload, the same on every backend: the input CSV and the meters it names,
its rows parsed ahead for the raw limits, the naive per-row model, and the two measurements
made through the Store interface (ingest and the billing read)."""

from __future__ import annotations

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
from meterledger.store.base import MeterRecord, Store

__all__ = [
    "BATCH_ROWS",
    "CHANNEL",
    "MONTH_END",
    "PER_METER",
    "START",
    "NaiveReading",
    "channel_ids",
    "make_csv",
    "measure_billing_read",
    "measure_ingest",
    "parsed_rows",
    "register_meters",
]

START = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
CHANNEL = "1.0.1.8.0.255"
PER_METER = 30 * 96
# the month the data covers: start < interval_end <= MONTH_END holds every row
MONTH_END = START + 30 * 86_400
BATCH_ROWS = 100_000


def make_csv(path: Path, rows: int) -> int:
    """700 meters x 30 days x 96 (or fewer meters for fewer rows), values in kWh text."""
    meters = max(1, -(-rows // PER_METER))
    idx = pl.int_range(0, meters * PER_METER, eager=True).head(rows)
    frame = (
        pl.DataFrame({"i": idx})
        .with_columns(
            pl.format("MTR-{}", (pl.col("i") // PER_METER).cast(pl.String).str.zfill(5)).alias(
                "meter_id"
            ),
            pl.lit(CHANNEL).alias("channel"),
            (pl.lit(START) + (pl.col("i") % PER_METER + 1) * 900).alias("end"),
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


def register_meters(store: Store, meters: int) -> None:
    """``MTR-00000`` onwards, electric, in one transaction, as an operator would add them."""
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


def channel_ids(store: Store) -> dict[str, int]:
    return {c.meter_id: c.channel_id for c in store.list_channels() if c.obis == CHANNEL}


def parsed_rows(csv_path: Path, ids: dict[str, int]) -> list[tuple[int, int, int, int, int]]:
    """``(channel_id, interval_end, interval_seconds, value, quality)`` per CSV row, parsed
    ahead so that a raw limit times nothing but the database."""
    frame = pl.read_csv(csv_path, infer_schema=False)
    return [
        (ids[m], epoch_of(datetime.fromisoformat(e)), 900, int(Decimal(v) * 1_000_000), 0)
        for m, e, v in zip(frame["meter_id"], frame["interval_end"], frame["value"], strict=True)
    ]


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


def measure_ingest(store: Store, csv_path: Path, rows: int) -> float:
    started = time.perf_counter()
    result = Ingestor(store).ingest_path(csv_path, IngestOptions())
    elapsed = time.perf_counter() - started
    if result.counts.records != rows:
        raise SystemExit(f"ingest saw {result.counts.records} records, expected {rows}")
    return rows / elapsed


def measure_billing_read(store: Store, rows: int, meters: int) -> float:
    """Best of 3 seconds for ``billing_read`` of the month for every meter; each read must
    return every stored row, grouped into one span per meter."""
    stored = store.count("readings")
    if stored != rows:
        raise SystemExit(f"the store holds {stored} readings, expected {rows}")
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        arrays = store.billing_read(START, MONTH_END, CHANNEL)
        best = min(best, time.perf_counter() - started)
        got = len(arrays.value)
        if got != stored or int(arrays.offsets[-1]) != stored or len(arrays.meter_ids) != meters:
            raise SystemExit(
                f"billing_read returned {got} rows for {len(arrays.meter_ids)} meters,"
                f" expected {stored} for {meters}"
            )
    return best
