"""Fault tests (issue 7): ``meterledger collect`` (DLMS) and ``meterledger drops watch``
killed with SIGKILL part-way and restarted with the same command. Each asserts, as
test_restarts.py does, that the store ends with exactly what the source served (nothing
lost, no value changed), each reading once (no second version, the audited batches
accepting exactly the stored count), and that ``meterledger audit verify`` passes.

The DLMS simulator runs in this process on loopback TCP, its meters' clock fixed (so a
reference collection into a fresh store, after the faults, sees exactly the same
profile); the commands run as subprocesses of the entry point on a SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from backends import RawDb
from faults.test_restarts import (
    assert_exactly_once,
    command,
    kill,
    stored_count,
    stored_rows,
    wait_for,
)
from meterledger.cli.collect import StoreLedger
from meterledger.collect.config import load_fleet
from meterledger.collect.fleet import FleetCollector
from meterledger.core.time import iso_utc
from meterledger.simulate.dlms_server import DlmsSimulator, MeterBehaviour, SimulatorConfig
from meterledger.store import open_store
from support import InThread, add_meter

DLMS_METERS = 12
DLMS_IDS = [f"MTR-{i:05d}" for i in range(1, DLMS_METERS + 1)]
DAYS = 2
ROWS = DAYS * 96  # each meter's profile rows; the first is the baseline of the next
# the meters' clock: yesterday's midnight, fixed; the collector reads with the wall clock
METER_NOW = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)


def new_store(url: str, meters: list[str]) -> None:
    store = open_store(url)
    try:
        for meter in meters:
            add_meter(store, meter, tz="UTC", capacity=1_000_000_000)
    finally:
        store.close()


@pytest.fixture
def dlms() -> Iterator[DlmsSimulator]:
    """Twelve meters, each answer 15 ms late, so a collection lasts a few seconds."""
    sim = DlmsSimulator(
        SimulatorConfig(
            meters=DLMS_METERS,
            port=0,
            days=DAYS,
            tz="UTC",
            clock=lambda: METER_NOW,
            behaviour=MeterBehaviour(delay=(0.015, 0.015)),
        )
    )
    with InThread(sim):
        yield sim


def fleet_file(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                # the default schedule (every 900 s): the restart skips the meters stored
                "collector": {"concurrency": 2, "attempts": 2, "lookback_hours": 24 * 6},
                "defaults": {"host": "127.0.0.1", "port": port, "timeout": 3, "timezone": "UTC"},
                "meters": [{"meter_id": m, "server_sap": i + 1} for i, m in enumerate(DLMS_IDS)],
            }
        )
    )
    return path


def reference_rows(tmp_path: Path, fleet: Path) -> list[tuple[str, int, int]]:
    """What the meters serve: one clean collection, in this process, into a fresh store."""
    url = f"sqlite:///{tmp_path / 'reference.db'}"
    new_store(url, DLMS_IDS)
    store = open_store(url)
    try:
        collector = FleetCollector(load_fleet(fleet), StoreLedger(store), force=True)
        run = asyncio.run(collector.run())
        assert not run.failed and run.handoff.quarantined == 0
    finally:
        store.close()
    return stored_rows(url)


@pytest.mark.slow
def test_collect_killed_with_sigkill_then_restarted_stores_every_interval_once(
    tmp_path: Path, dlms: DlmsSimulator
) -> None:
    url = f"sqlite:///{tmp_path / 'faults.db'}"
    new_store(url, DLMS_IDS)
    fleet = fleet_file(tmp_path, dlms.port)
    args = command("collect", "--fleet", str(fleet), "--db", url, "--json")
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        wait_for(lambda: stored_count(url) >= 3 * (ROWS - 1), 60, "three meters to be stored")
    finally:
        kill(first)
    at_kill = stored_count(url)
    total = DLMS_METERS * (ROWS - 1)
    assert 0 < at_kill < total  # killed part-way
    # a meter's clock read is recorded only after its readings: those meters are complete
    with RawDb(url) as raw:
        clocked = sorted(
            str(m) for (m,) in raw.execute("SELECT DISTINCT meter_id FROM clock_reads")
        )
        per_meter = dict(
            raw.execute(
                "SELECT c.meter_id, count(*) FROM readings r"
                " JOIN channels c ON c.channel_id = r.channel_id GROUP BY c.meter_id"
            )
        )
    assert clocked and all(per_meter.get(m) == ROWS - 1 for m in clocked)

    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    skipped = [r["meter_id"] for r in report["results"] if r["skipped"]]
    read = [r for r in report["results"] if not r["skipped"]]
    assert skipped == clocked and read  # the stored meters are not due; the rest are read now
    assert all(r["ok"] for r in read) and report["summary"]["ingest"]["quarantined"] == 0
    assert report["summary"]["ingest"]["accepted"] == total - at_kill

    expected = reference_rows(tmp_path, fleet)
    assert len(expected) == total
    assert_exactly_once(url, expected)
    # a third run reads nothing new, even forced
    again = subprocess.run(
        [*args, "--force"], capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["summary"]["ingest"]["accepted"] == 0
    assert_exactly_once(url, expected)


# -- drops watch ----------------------------------------------------------------------------
DROP_METERS = [f"DRP-{n:05d}" for n in range(1, 5)]
FILES = 80
PER_FILE = 24
DROP_START = 1_736_467_200  # 2025-01-10T00:00Z


def drop_files(directory: Path) -> tuple[list[str], list[tuple[str, int, int]]]:
    """FILES canonical CSV files of PER_FILE readings, round robin over DROP_METERS."""
    names: list[str] = []
    rows: list[tuple[str, int, int]] = []
    for n in range(FILES):
        meter = DROP_METERS[n % len(DROP_METERS)]
        block = n // len(DROP_METERS)
        lines = ["meter_id,channel,interval_end,interval_seconds,value,unit,quality"]
        for k in range(PER_FILE):
            end = DROP_START + 900 * (block * PER_FILE + k + 1)
            milli = (n * 7919 + k * 31) % 5000 + 1
            lines.append(
                f"{meter},1.0.1.8.0.255,{iso_utc(end)},900,{milli // 1000}.{milli % 1000:03d},"
                "kWh,actual"
            )
            rows.append((meter, end, milli * 1000))
        name = f"drop-{n:03d}.csv"
        (directory / name).write_text("\n".join(lines) + "\n")
        names.append(name)
    return names, rows


@pytest.mark.slow
def test_drops_watch_killed_with_sigkill_then_restarted_ingests_every_file_once(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'faults.db'}"
    new_store(url, DROP_METERS)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    names, expected = drop_files(inbox)
    base = ["drops", "watch", str(inbox), "--settle", "0", "--db", url, "--json"]
    first = subprocess.Popen(
        command(*base, "--interval", "0.1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for(lambda: stored_count(url) >= 10 * PER_FILE, 60, "the first files to be stored")
    finally:
        kill(first)
    at_kill = stored_count(url)
    assert 0 < at_kill < len(expected)  # killed part-way
    left = sorted(p.name for p in inbox.iterdir() if p.is_file())
    assert left and len(left) < FILES  # some files taken, some not yet

    done = subprocess.run(
        command(*base, "--once"), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert_exactly_once(url, expected)
    # every file left the inbox, once: into processed/, or (recorded before the kill but
    # not yet moved) into processed/duplicates/; none failed
    assert [p.name for p in inbox.iterdir() if p.is_file()] == []
    processed = inbox / "processed"
    moved = sorted(p.name for p in processed.iterdir() if p.is_file())
    duplicates = processed / "duplicates"
    again = sorted(p.name for p in duplicates.iterdir()) if duplicates.exists() else []
    assert sorted(moved + again) == names
    assert not (processed / "failed").exists()
    with RawDb(url) as raw:
        received = raw.execute("SELECT name, batch_count FROM received_files")
    assert sorted(str(name) for name, _ in received) == names  # each checksum once
    assert all(int(count) == 1 for _, count in received)  # each file one batch
