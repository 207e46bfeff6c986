"""Crash consistency: an ingest killed with SIGKILL part-way leaves whole batches only, a
verifying audit chain, and a re-run finishes the file with no duplicate effect.

The file is about 100k readings cut into ~100 batches (one write transaction each); the
worker runs in its own process and is killed once the database holds a given share of the
batches. The killed store is on each backend; the clean reference run is on SQLite (it only
gives the expected view). On PostgreSQL the server, not the killed process, ends the open
transaction, so the test waits for the dead worker's session to go before it looks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import support
from backends import Databases, RawDb
from meterledger.ingest import audit
from meterledger.ingest.pipeline import IngestOptions, Ingestor, register_meter
from meterledger.store import open_store
from meterledger.store.base import MeterRecord, Store

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


def new_store(url: str) -> Store:
    store = open_store(url)
    with store.write() as tx:  # one transaction for all the meters
        for meter in METERS:
            register_meter(
                tx,
                MeterRecord(meter, "electric", "kWh", "UTC", None, "active", 25_000_000, "2024"),
            )
    return store


def view(store: Store) -> pl.DataFrame:
    return store.all_readings().select(VIEW).sort(KEY)


def ingest(store: Store, path: Path) -> tuple[int, int, int]:
    result = Ingestor(store, now=support.NOW).ingest_path(path, IngestOptions(block_bytes=BLOCK))
    return result.counts.accepted, result.counts.duplicates, result.batches


def assert_audited_once(store: Store) -> None:
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
    store = new_store(f"sqlite:///{folder / 'clean.db'}")
    accepted, duplicates, batches = ingest(store, path)
    assert (accepted, duplicates) == (rows, 0)
    assert batches >= 80
    assert_audited_once(store)
    result = Clean(path, rows, batches, view(store))
    store.close()
    return result


def wait_for_other_sessions_to_end(watcher: RawDb) -> None:
    """On PostgreSQL a killed client's transaction lives on in its server session until the
    server notices the closed socket: a COMMIT already sent may still land. Wait for it."""
    if watcher.backend != "postgresql":
        return  # SQLite commits in the process itself: a dead process changes nothing more
    deadline = time.monotonic() + 30
    while watcher.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    ):
        assert time.monotonic() < deadline, "the killed worker's session did not end"
        time.sleep(0.01)


def kill_part_way(url: str, source: Path, at_batches: int) -> int:
    """Run the worker and SIGKILL it once ``at_batches`` batches are committed; return how
    many were committed when it died."""
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), url, str(source), "--block-bytes", str(BLOCK)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    watcher = RawDb(url)
    try:
        deadline = time.monotonic() + 60
        while True:
            committed = watcher.scalar("SELECT count(*) FROM batches")
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
        wait_for_other_sessions_to_end(watcher)
        committed = watcher.scalar("SELECT count(*) FROM batches")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        watcher.close()
    return int(committed)


def assert_no_partial_batch(raw: RawDb, committed: int) -> None:
    """Nothing of the batch the kill interrupted: no row carries a batch id that no committed
    batch has, and the chain holds one entry per committed batch after the meters'."""
    batch_ids = {int(b) for (b,) in raw.execute("SELECT batch_id FROM batches")}
    assert len(batch_ids) == committed
    for table in ("readings", "reading_versions", "quarantine"):
        stray = raw.execute(
            f"SELECT DISTINCT batch_id FROM {table}"
            " WHERE batch_id NOT IN (SELECT batch_id FROM batches)"
        )
        assert stray == [], f"{table} holds rows of uncommitted batches {stray}"
    payloads = [
        json.loads(p)
        for (p,) in raw.execute("SELECT payload FROM audit_log WHERE kind = ?", (audit.BATCH_KIND,))
    ]
    assert sorted(p["batch_id"] for p in payloads) == sorted(batch_ids)
    entries = raw.scalar("SELECT count(*) FROM audit_log")
    assert entries == raw.scalar("SELECT max(seq) FROM audit_log") == len(METERS) + committed
    unlinked = raw.execute(
        "SELECT batch_id FROM batches WHERE audit_seq IS NULL"
        " OR audit_seq NOT IN (SELECT seq FROM audit_log)"
    )
    assert unlinked == []


@pytest.mark.parametrize("share", [0.05, 0.5, 0.9])
def test_killed_ingest_leaves_whole_batches_and_reruns_exactly_once(
    clean: Clean, databases: Databases, share: float
) -> None:
    url = databases.new_url("killed")
    new_store(url).close()
    committed = kill_part_way(url, clean.path, max(1, int(clean.batches * share)))
    assert 0 < committed < clean.batches

    store = open_store(url, migrate=False)
    try:
        assert store.migrate() == []  # opens, schema intact
        with closing(RawDb(url)) as raw:
            if raw.backend == "sqlite":
                assert raw.execute("PRAGMA integrity_check") == [("ok",)]
            assert_no_partial_batch(raw, committed)
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
