"""Exactly-once ingest: a reading delivered again, in another order, in other files or by two
processes at the same time has no second effect, and every effect has exactly one audit entry.

The data is made here: 20 meters x 3 days x 96 quarter-hours of canonical CSV, a few identical
repeats and one bad record for each of a dozen reasons. ``block_bytes`` is small, so a file is
many batches (and, in the multi-process tests, many interleaved write transactions).

Every test runs on SQLite and PostgreSQL: the stores come from the ``databases`` fixture.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import support
from backends import Databases, RawDb
from meterledger.ingest import audit
from meterledger.ingest.pipeline import IngestOptions, Ingestor
from meterledger.store import open_store
from meterledger.store.base import BatchCounts, Store

BLOCK = 16_384
OBIS = "1.0.1.8.0.255"
METERS = tuple(f"MTR{n:02d}" for n in range(20))
DAYS = 3
START = datetime(2024, 6, 1, tzinfo=UTC)
VIEW = ["meter_id", "channel", "interval_end", "interval_seconds", "value", "quality"]
KEY = VIEW[:3]
WORKER = Path(__file__).with_name("ingest_worker.py")


def end_at(i: int) -> datetime:
    return START + timedelta(seconds=900 * (i + 1))


def kwh(milli: int) -> str:
    """Exact kWh text of ``milli`` Wh (no float on the way)."""
    return f"{milli // 1000}.{milli % 1000:03d}"


def wh(meter_no: int, i: int) -> int:
    return (meter_no * 37 + i * 11) % 4000 + 5


def good_lines() -> list[str]:
    return [
        support.row(end_at(i).isoformat(), kwh(wh(m, i)), meter=meter)
        for m, meter in enumerate(METERS)
        for i in range(DAYS * 96)
    ]


# One bad record per reason; none shares a key with a good row, none repeats another.
BAD_LINES = (
    support.row(end_at(0).isoformat(), "1.000", meter="ZZ99"),
    support.row(end_at(400).isoformat(), "abc", meter="MTR00"),
    support.row("2024-06-05T00:07:00+00:00", "1.000", meter="MTR01"),
    support.row("2099-01-01T00:00:00+00:00", "1.000", meter="MTR02"),
    support.row(end_at(401).isoformat(), "99.000", meter="MTR03"),
    support.row(end_at(402).isoformat(), "1.000", meter="MTR04", unit="m3"),
    support.row(end_at(403).isoformat(), "1.000", meter="MTR05", quality="guessed"),
    support.row(end_at(404).isoformat(), "-1.000", meter="MTR06"),
    support.row(end_at(405).isoformat(), "1.000", meter="MTR07") + ",extra",
    support.row("yesterday", "1.000", meter="MTR08"),
    support.row(end_at(406).isoformat(), "1.000", meter="MTR09", channel="1.0.99.8.0.255"),
    support.row(end_at(407).isoformat(), "1.0000005", meter="MTR10"),
)
BAD_REASONS = {
    "UNKNOWN_METER",
    "MALFORMED_VALUE",
    "MISALIGNED_INTERVAL",
    "FUTURE_INTERVAL",
    "IMPLAUSIBLE_VALUE",
    "UNIT_MISMATCH",
    "MALFORMED_QUALITY",
    "NEGATIVE_VALUE",
    "MALFORMED_ROW",
    "MALFORMED_TIMESTAMP",
    "UNKNOWN_CHANNEL",
    "VALUE_PRECISION",
}


@dataclass(frozen=True, slots=True)
class Dataset:
    lines: list[str]  # in order: good rows, a repeat right after its original, bad rows spread
    unique: int  # distinct good readings
    good: int  # good lines, repeats included
    bad: int

    def shuffled(self, seed: int) -> list[str]:
        lines = list(self.lines)
        random.Random(seed).shuffle(lines)
        return lines


def build_dataset() -> Dataset:
    good = good_lines()
    lines: list[str] = []
    repeats = 0
    spacing = len(good) // len(BAD_LINES)
    bad = iter(BAD_LINES)
    for n, line in enumerate(good):
        lines.append(line)
        if n % 811 == 5:
            lines.append(line)
            repeats += 1
        if n % spacing == spacing // 2:
            lines.append(next(bad))
    lines.extend(bad)
    return Dataset(lines, len(good), len(good) + repeats, len(BAD_LINES))


DATA = build_dataset()


def expected_view() -> pl.DataFrame:
    """The billing view every ingest of DATA must produce, computed without meterledger."""
    start = int(START.timestamp())
    rows = [
        (meter, OBIS, start + 900 * (i + 1), 900, wh(m, i) * 1000, 0)
        for m, meter in enumerate(METERS)
        for i in range(DAYS * 96)
    ]
    schema = {c: pl.Int64 for c in VIEW[2:]}
    return pl.DataFrame(
        rows, schema={"meter_id": pl.String, "channel": pl.String, **schema}, orient="row"
    ).sort(KEY)


EXPECTED = expected_view()


def view(store: Store) -> pl.DataFrame:
    return store.all_readings().select(VIEW).sort(KEY)


def held(store: Store) -> list[tuple[str, tuple[str, ...]]]:
    return sorted((r.raw, r.reasons) for r in store.list_quarantine(status=None))


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.write_text(support.HEADER + "\n" + "".join(f"{line}\n" for line in lines), "utf-8")
    return path


def ingest(store: Store, *paths: Path) -> tuple[BatchCounts, int]:
    """Ingest files in order; the summed counts and audit entries."""
    counts, entries = BatchCounts(), 0
    ingestor = Ingestor(store, now=support.NOW)
    for path in paths:
        result = ingestor.ingest_path(path, IngestOptions(block_bytes=BLOCK))
        counts.add(result.counts)
        entries += result.audit_entries
    return counts, entries


def batch_payloads(store: Store) -> list[dict[str, int]]:
    return [json.loads(r.payload) for r in store.audit_rows() if r.kind == audit.BATCH_KIND]


def assert_one_entry_per_effect(store: Store) -> None:
    """The chain verifies, every batch entry records a change, the accepted counts add up to
    the readings, and no batch is covered twice."""
    report = audit.verify(store)
    assert report.ok, report.as_dict()
    payloads = batch_payloads(store)
    assert sum(p["accepted"] for p in payloads) == store.count("readings")
    assert sum(p["quarantined"] for p in payloads) == store.count("quarantine")
    for p in payloads:
        effect = p["accepted"] + p["superseded"] + p["ignored"] + p["conflicts"]
        assert effect + p["quarantined"] > 0, f"empty audit entry: {p}"
    covered = [p["batch_id"] for p in payloads]
    assert len(covered) == len(set(covered))
    assert set(store.all_readings()["batch_id"].unique().to_list()) <= set(covered)
    with closing(RawDb(store.url)) as raw:
        audited = raw.scalar("SELECT count(*) FROM batches WHERE audit_seq IS NOT NULL")
    assert audited == len(payloads)


@pytest.fixture
def fresh(databases: Databases) -> Iterator[Callable[[str], Store]]:
    """Make a new store on the test's backend with the 20 meters registered."""
    opened: list[Store] = []

    def make(name: str) -> Store:
        store = open_store(databases.new_url(name))
        for meter in METERS:
            support.add_meter(store, meter)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def ordered(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "ordered.csv", DATA.lines)


def test_dataset_spans_many_batches_and_every_bad_reason(
    fresh: Callable[[str], Store], ordered: Path
) -> None:
    store = fresh("a")
    result = Ingestor(store, now=support.NOW).ingest_path(ordered, IngestOptions(block_bytes=BLOCK))
    assert result.batches >= 20
    assert result.counts.accepted == DATA.unique
    assert result.counts.duplicates == DATA.good - DATA.unique
    assert result.counts.quarantined == DATA.bad
    assert set(result.counts.reasons) == BAD_REASONS
    assert_frame_equal(view(store), EXPECTED)
    assert_one_entry_per_effect(store)


def test_same_file_twice_has_no_second_effect(fresh: Callable[[str], Store], ordered: Path) -> None:
    store = fresh("a")
    first, _ = ingest(store, ordered)
    assert first.accepted == DATA.unique
    entries = store.count("audit_log")
    before, quarantine_before = view(store), held(store)

    second, new_entries = ingest(store, ordered)
    assert second.records == len(DATA.lines)
    assert second.accepted == 0
    assert second.duplicates == DATA.good
    assert (second.superseded, second.ignored, second.conflicts) == (0, 0, 0)
    assert second.quarantined == 0
    assert second.quarantine_duplicates == DATA.bad
    assert second.reasons == {}
    assert new_entries == 0
    assert store.count("audit_log") == entries
    assert_frame_equal(view(store), before)
    assert held(store) == quarantine_before
    assert_one_entry_per_effect(store)


def test_shuffled_and_split_deliveries_give_the_same_view(
    fresh: Callable[[str], Store], ordered: Path, tmp_path: Path
) -> None:
    shuffled = write_lines(tmp_path / "shuffled.csv", DATA.shuffled(7))
    mixed = DATA.shuffled(11)
    third = len(mixed) // 3
    parts = [
        write_lines(
            tmp_path / f"part{n}.csv", mixed[n * third : (n + 1) * third if n < 2 else None]
        )
        for n in range(3)
    ]
    deliveries = {
        "ordered": [ordered],
        "shuffled": [shuffled],
        "parts 0 1 2": parts,
        "parts 2 0 1": [parts[2], parts[0], parts[1]],
    }
    stores = {}
    for name, files in deliveries.items():
        store = fresh(name.replace(" ", "_"))
        counts, _ = ingest(store, *files)
        assert counts.accepted == DATA.unique, name
        assert counts.quarantined == DATA.bad, name
        assert_frame_equal(view(store), EXPECTED)
        assert_one_entry_per_effect(store)
        stores[name] = store
    reference = held(stores["ordered"])
    assert [reasons for _, reasons in reference] and all(
        held(store) == reference for store in stores.values()
    )

    # the other orders, delivered again into the same store, have no effect
    for name, others in (("ordered", [shuffled, *parts]), ("shuffled", [ordered, parts[1]])):
        store = stores[name]
        entries = store.count("audit_log")
        again, new_entries = ingest(store, *others)
        assert (again.accepted, again.superseded, again.ignored, again.conflicts) == (0, 0, 0, 0)
        assert again.quarantined == 0
        assert new_entries == 0
        assert store.count("audit_log") == entries
        assert_frame_equal(view(store), EXPECTED)
        assert held(store) == reference
        assert_one_entry_per_effect(store)


def test_estimates_and_actuals_in_either_order_give_the_same_view(
    fresh: Callable[[str], Store], ordered: Path, tmp_path: Path
) -> None:
    estimates = write_lines(
        tmp_path / "estimates.csv",
        [
            support.row(
                end_at(i).isoformat(), kwh(wh(m, i) + 250), meter=meter, quality="estimated"
            )
            for m, meter in enumerate(METERS[:5])
            for i in range(96)
        ],
    )
    first_estimates, first_actuals = fresh("estimates_first"), fresh("actuals_first")
    ingest(first_estimates, estimates)
    counts, _ = ingest(first_estimates, ordered)
    assert (counts.accepted, counts.superseded) == (DATA.unique - 5 * 96, 5 * 96)
    ingest(first_actuals, ordered)
    counts, _ = ingest(first_actuals, estimates)
    assert (counts.accepted, counts.ignored) == (0, 5 * 96)
    for store in (first_estimates, first_actuals):
        assert_frame_equal(view(store), EXPECTED)
        assert store.count("reading_versions") == 5 * 96
        assert_one_entry_per_effect(store)
        entries = store.count("audit_log")
        again, new_entries = ingest(store, estimates, ordered)
        assert again.duplicates == 5 * 96 + DATA.good
        assert (again.accepted, again.superseded, again.ignored, new_entries) == (0, 0, 0, 0)
        assert store.count("audit_log") == entries
        assert_frame_equal(view(store), EXPECTED)


# -- several processes at once ----------------------------------------------------------


def run_workers(
    db_url: str, file_sets: Sequence[Sequence[Path]], tmp_path: Path
) -> list[dict[str, int]]:
    """Start one worker process per file set, release them together, return their counts."""
    go = tmp_path / "go"
    started: list[tuple[Path, subprocess.Popen[str]]] = []
    for n, files in enumerate(file_sets):
        ready = tmp_path / f"ready{n}"
        command = [sys.executable, str(WORKER), db_url, *map(str, files)]
        command += ["--block-bytes", str(BLOCK), "--ready", str(ready), "--go", str(go)]
        started.append(
            (
                ready,
                subprocess.Popen(
                    command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                ),
            )
        )
    deadline = time.monotonic() + 60
    while not all(ready.exists() for ready, _ in started):
        assert all(proc.poll() is None for _, proc in started), "a worker died before the start"
        assert time.monotonic() < deadline, "workers did not get ready"
        time.sleep(0.005)
    go.touch()
    results = []
    for _, proc in started:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    return results


@pytest.mark.parametrize("split", ["same file", "overlapping halves", "opposite orders"])
def test_two_processes_at_once(
    fresh: Callable[[str], Store], ordered: Path, tmp_path: Path, split: str
) -> None:
    """Two workers on one database, released together. Which one stores a batch is up to
    the lock; the result must not depend on it."""
    store = fresh("shared")
    n = len(DATA.lines)
    if split == "same file":
        file_sets: list[list[Path]] = [[ordered], [ordered]]
    elif split == "overlapping halves":
        first = write_lines(tmp_path / "first.csv", DATA.lines[: 2 * n // 3])
        second = write_lines(tmp_path / "second.csv", DATA.lines[n // 3 :])
        file_sets = [[first], [second]]
    else:  # they meet in the middle, on blocks that only partly overlap
        backwards = write_lines(tmp_path / "backwards.csv", DATA.lines[::-1])
        file_sets = [[ordered], [backwards]]
    results = run_workers(store.url, file_sets, tmp_path)

    assert sum(r["accepted"] for r in results) == DATA.unique
    assert sum(r["quarantined"] for r in results) == DATA.bad
    assert sum(r["superseded"] + r["ignored"] + r["conflicts"] for r in results) == 0
    if split != "overlapping halves":  # each sees every line once
        assert sum(r["duplicates"] for r in results) == 2 * DATA.good - DATA.unique
        assert sum(r["quarantine_duplicates"] for r in results) == DATA.bad
    assert sum(r["audit_entries"] for r in results) == len(batch_payloads(store))

    single = fresh("single")
    ingest(single, ordered)
    assert_frame_equal(view(store), view(single))
    assert_frame_equal(view(store), EXPECTED)
    assert held(store) == held(single)
    assert_one_entry_per_effect(store)


def overlapping_files(tmp_path: Path, writers: int) -> tuple[list[Path], list[str]]:
    """One file per writer: every line of DATA but one share of it, so each line is in all
    files but one and any two files share most of their lines. Each file starts on another
    share, odd ones backwards, and holds one bad record of its own. Returns the files and
    those bad records."""
    n = len(DATA.lines)
    shares = [DATA.lines[k * n // writers : (k + 1) * n // writers] for k in range(writers)]
    files, own_bad = [], []
    for k in range(writers):
        lines = [line for j in range(1, writers) for line in shares[(k + j) % writers]]
        if k % 2:
            lines.reverse()
        bad = support.row(end_at(k).isoformat(), "1.000", meter=f"ZZ{k:02d}")  # unknown meter
        lines.insert(len(lines) // 2, bad)
        files.append(write_lines(tmp_path / f"writer{k}.csv", lines))
        own_bad.append(bad)
    return files, own_bad


def test_four_processes_on_overlapping_files(fresh: Callable[[str], Store], tmp_path: Path) -> None:
    """Four workers released together, each on three quarters of the data in its own order:
    every reading lands once, whoever stores it, and the chain covers each effect once."""
    writers = 4
    files, own_bad = overlapping_files(tmp_path, writers)
    store = fresh("shared")
    results = run_workers(store.url, [[path] for path in files], tmp_path)

    copies = writers - 1  # each line of DATA is in all files but one
    assert sum(r["records"] for r in results) == copies * len(DATA.lines) + len(own_bad)
    assert sum(r["accepted"] for r in results) == DATA.unique == store.count("readings")
    assert sum(r["duplicates"] for r in results) == copies * DATA.good - DATA.unique
    assert sum(r["superseded"] + r["ignored"] + r["conflicts"] for r in results) == 0
    assert sum(r["quarantined"] for r in results) == DATA.bad + len(own_bad)
    assert sum(r["quarantine_duplicates"] for r in results) == (copies - 1) * DATA.bad
    assert sum(r["audit_entries"] for r in results) == len(batch_payloads(store))

    single = fresh("single")
    ingest(single, *files)
    assert_frame_equal(view(store), view(single))
    assert_frame_equal(view(store), EXPECTED)
    assert held(store) == held(single)
    assert {raw for raw, _ in held(store)} >= set(own_bad)
    assert audit.verify(store).ok
    assert_one_entry_per_effect(store)


CLI = Path(sys.executable).with_name("meterledger")


def run_cli_together(commands: Sequence[Sequence[str]], cwd: Path) -> list[dict[str, Any]]:
    """Start ``meterledger`` commands at once; their JSON outputs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERLEDGER_")}
    procs = [
        subprocess.Popen(
            [str(CLI), *command, "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=env,
        )
        for command in commands
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out))
    return outputs


def test_two_cli_ingests_at_once(
    fresh: Callable[[str], Store], ordered: Path, tmp_path: Path
) -> None:
    store = fresh("cli")
    command = ["ingest", str(ordered), "--db", store.url]
    totals = [out["totals"] for out in run_cli_together([command, command], tmp_path)]
    assert sum(t["accepted"] for t in totals) == DATA.unique
    assert sum(t["duplicates"] for t in totals) == 2 * DATA.good - DATA.unique
    assert sum(t["quarantined"] for t in totals) == DATA.bad
    assert sum(t["quarantine_duplicates"] for t in totals) == DATA.bad
    assert_frame_equal(view(store), EXPECTED)
    assert_one_entry_per_effect(store)
    (report,) = run_cli_together([["audit", "verify", "--db", store.url]], tmp_path)
    assert report["ok"] is True


def test_two_cli_ingests_creating_the_same_meters_at_once(
    databases: Databases, tmp_path: Path
) -> None:
    """Both processes find the meters unknown and ``--create-meters``: each meter is made
    once, and each file's readings are stored once, whichever process gets there first."""
    store = open_store(databases.new_url("meters"))
    lines = good_lines()
    files = [str(write_lines(tmp_path / f"part{k}.csv", lines[k::12])) for k in range(12)]
    base = ["ingest", "--create-meters", "--db", store.url]
    outputs = run_cli_together([[*base, *files], [*base, *files[::-1]]], tmp_path)
    created = [m for out in outputs for f in out["files"] for m in f["meters_created"]]
    assert sorted(created) == list(METERS)
    assert sum(out["totals"]["accepted"] for out in outputs) == DATA.unique
    assert [m.meter_id for m in store.list_meters()] == list(METERS)
    added = [r.subject for r in store.audit_rows() if r.kind == "meter.added"]
    assert sorted(added) == list(METERS)
    assert_frame_equal(view(store), EXPECTED)
    assert_one_entry_per_effect(store)
    store.close()


def test_same_readings_by_another_path_have_no_effect(
    fresh: Callable[[str], Store], ordered: Path, tmp_path: Path
) -> None:
    """JSON lines (numbers as JSON numbers), gzip and CRLF deliveries of the same readings."""
    store = fresh("paths")
    ingest(store, ordered)
    entries, before = store.count("audit_log"), view(store)

    jsonl = tmp_path / "same.jsonl"
    names = support.HEADER.split(",")
    with jsonl.open("w", encoding="utf-8") as handle:
        for line in good_lines():
            record = dict(zip(names, line.split(","), strict=True))
            value = record.pop("value")
            seconds = record.pop("interval_seconds")
            text = json.dumps(record)[:-1]
            handle.write(f'{text}, "interval_seconds": {seconds}, "value": {value}}}\n')
    gzipped = tmp_path / "same.csv.gz"
    gzipped.write_bytes(gzip.compress(ordered.read_bytes()))
    crlf = tmp_path / "same_crlf.csv"
    crlf.write_bytes(ordered.read_bytes().replace(b"\n", b"\r\n"))

    for path, bad in ((jsonl, 0), (gzipped, DATA.bad), (crlf, DATA.bad)):
        counts, new_entries = ingest(store, path)
        assert counts.duplicates == (DATA.unique if bad == 0 else DATA.good), path.name
        assert (counts.accepted, counts.superseded, counts.ignored, counts.conflicts) == (
            0,
            0,
            0,
            0,
        ), path.name
        assert (counts.quarantined, counts.quarantine_duplicates) == (0, bad), path.name
        assert new_entries == 0
    assert store.count("audit_log") == entries
    assert_frame_equal(view(store), before)
    assert_one_entry_per_effect(store)
