"""Crash consistency: an ingest killed with SIGKILL part-way leaves whole batches only, a
verifying audit chain, and a re-run finishes the file with no duplicate effect.

The file is about 100k readings cut into ~100 batches (one write transaction each); the
worker runs in its own process and is killed once the database holds a given share of the
batches.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import support
from meterledger.ingest import audit
from meterledger.ingest.pipeline import IngestOptions, Ingestor, register_meter
from meterledger.store.base import MeterRecord
from meterledger.store.sqlite import SqliteStore

BLOCK = 65_536
METERS = tuple(f"CRASH{n:03d}" for n in range(120))
DAYS = 9
START = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp())
VIEW = ["meter_id", "channel", "interval_end", "interval_seconds", "value", "quality"]
KEY = VIEW[:3]
WORKER = Path(__file__).with_name("ingest_worker.py")


def lines() -> Iterator[str]:
    for m, meter in enumerate(METERS):
        for i in range(DAYS * 96):
            end = datetime.fromtimestamp(START + 900 * (i + 1), UTC).isoformat()
            milli = (m * 53 + i * 29) % 5000 + 1
            yield support.row(end, f"{milli // 1000}.{milli % 1000:03d}", meter=meter)


def new_store(path: Path) -> SqliteStore:
    store = SqliteStore(f"sqlite:///{path}")
    store.migrate()
    with store.write() as tx:  # one transaction for all the meters
        for meter in METERS:
            register_meter(
                tx,
                MeterRecord(meter, "electric", "kWh", "UTC", None, "active", 25_000_000, "2024"),
            )
    return store


def view(store: SqliteStore) -> pl.DataFrame:
    return store.all_readings().select(VIEW).sort(KEY)


def ingest(store: SqliteStore, path: Path) -> tuple[int, int, int]:
    result = Ingestor(store, now=support.NOW).ingest_path(path, IngestOptions(block_bytes=BLOCK))
    return result.counts.accepted, result.counts.duplicates, result.batches


def assert_audited_once(store: SqliteStore) -> None:
    report = audit.verify(store)
    assert report.ok, report.as_dict()
    payloads = [json.loads(r.payload) for r in store.audit_rows() if r.kind == audit.BATCH_KIND]
    assert sum(p["accepted"] for p in payloads) == store.count("readings")
    assert all(p["accepted"] > 0 for p in payloads)
    assert len({p["batch_id"] for p in payloads}) == len(payloads)


@dataclass(frozen=True, slots=True)
class Clean:
    path: Path
    rows: int
    batches: int
    view: pl.DataFrame


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Clean:
    """The file, and what one uninterrupted run makes of it."""
    folder = tmp_path_factory.mktemp("crash")
    path = folder / "big.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write(support.HEADER + "\n")
        rows = 0
        for line in lines():
            handle.write(line + "\n")
            rows += 1
    store = new_store(folder / "clean.db")
    accepted, duplicates, batches = ingest(store, path)
    assert (accepted, duplicates) == (rows, 0)
    assert batches >= 80
    assert_audited_once(store)
    result = Clean(path, rows, batches, view(store))
    store.close()
    return result


def kill_part_way(db: Path, source: Path, at_batches: int) -> int:
    """Run the worker and SIGKILL it once ``at_batches`` batches are committed; return how
    many were committed when it died."""
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), f"sqlite:///{db}", str(source), "--block-bytes", str(BLOCK)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    watcher = sqlite3.connect(db, isolation_level=None)
    try:
        deadline = time.monotonic() + 60
        while True:
            (committed,) = watcher.execute("SELECT count(*) FROM batches").fetchone()
            if committed >= at_batches:
                os.kill(proc.pid, signal.SIGKILL)
                break
            if proc.poll() is not None:
                _, err = proc.communicate()
                pytest.fail(f"worker ended before the kill (rc {proc.returncode}): {err!r}")
            assert time.monotonic() < deadline, "the worker made no progress"
            time.sleep(0.002)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        (committed,) = watcher.execute("SELECT count(*) FROM batches").fetchone()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        watcher.close()
    return int(committed)


@pytest.mark.parametrize("share", [0.05, 0.5, 0.9])
def test_killed_ingest_leaves_whole_batches_and_reruns_exactly_once(
    clean: Clean, tmp_path: Path, share: float
) -> None:
    db = tmp_path / "killed.db"
    new_store(db).close()
    committed = kill_part_way(db, clean.path, max(1, int(clean.batches * share)))
    assert 0 < committed < clean.batches

    store = SqliteStore(f"sqlite:///{db}")
    try:
        assert store.migrate() == []  # opens, schema intact
        assert store.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert_audited_once(store)
        partial = view(store)
        assert 0 < partial.height < clean.rows
        assert partial.select(KEY).is_duplicated().sum() == 0
        # every stored reading is one of the file's, with the file's value
        assert partial.join(clean.view, on=VIEW, how="anti").is_empty()
        assert store.count("batches") == committed
        assert store.count("reading_versions") == store.count("quarantine") == 0

        accepted, duplicates, _ = ingest(store, clean.path)
        assert accepted == clean.rows - partial.height
        assert duplicates == partial.height
        assert_frame_equal(view(store), clean.view)
        assert_audited_once(store)
    finally:
        store.close()
