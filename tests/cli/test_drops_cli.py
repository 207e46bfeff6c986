"""``meterledger drops watch|pull`` on both backends: each file ingested exactly once,
recorded by checksum and moved; partial files never read; an SFTP pull against a real
asyncssh server on loopback (re-pull, a growing upload, a connection cut mid-transfer)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from meterledger.cli.app import app
from meterledger.cli.drops import DropProcessor, watch_directory
from meterledger.store.base import Store
from meterledger.store.records import ReceivedFile
from sftp_server import SftpServer  # the loopback SFTP server of the drops tests
from support import HEADER, add_meter, row

runner = CliRunner()
START = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("METERLEDGER_DB", "METERLEDGER_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SftpServer]:
    running = SftpServer(tmp_path)
    yield running
    running.close()


def csv_bytes(first: int, count: int) -> bytes:
    """``count`` quarter-hours of meter M1 from interval ``first`` on, 1 kWh each."""
    lines = [
        row((START + timedelta(minutes=15 * (first + i + 1))).isoformat(), "1")
        for i in range(count)
    ]
    return (HEADER + "\n" + "".join(line + "\n" for line in lines)).encode()


def cli(store: Store, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    result = runner.invoke(app, [*args, "--db", store.url, "--json"])
    try:
        payload = json.loads(result.stdout)
    except json.JSONDecodeError:
        payload = None
    return result.exit_code, payload, result.stderr


def stored(store: Store) -> int:
    return store.readings("M1", 0, 2**40).height


def watch_once(store: Store, drop: Path) -> tuple[int, dict[str, Any] | None, str]:
    return cli(store, "drops", "watch", str(drop), "--once", "--settle", "0")


# -- the watched directory --------------------------------------------------------------------


def test_watch_once_ingests_records_and_moves(store: Store, tmp_path: Path) -> None:
    add_meter(store)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.csv").write_bytes(csv_bytes(0, 3))
    (drop / "b.csv.part").write_bytes(csv_bytes(10, 2))  # still uploading
    (drop / ".c.csv").write_bytes(csv_bytes(20, 2))  # hidden
    code, out, err = watch_once(store, drop)
    assert code == 0, err
    assert out is not None
    [taken] = out["files"]
    assert (taken["name"], taken["outcome"], taken["accepted"]) == ("a.csv", "ingested", 3)
    assert taken["moved_to"] == str(drop / "processed" / "a.csv")
    assert out["totals"]["accepted"] == 3 and out["vee"] is not None
    assert sorted(p.name for p in drop.iterdir()) == [".c.csv", "b.csv.part", "processed"]
    assert (drop / "processed" / "a.csv").read_bytes() == csv_bytes(0, 3)
    assert stored(store) == 3
    [rec] = store.list_received_files()
    assert isinstance(rec, ReceivedFile)
    assert (rec.sha256, rec.feed, rec.name, rec.size) == (
        taken["sha256"],
        "files",
        "a.csv",
        len(csv_bytes(0, 3)),
    )
    assert rec.batch_count == taken["batches"] >= 1
    assert rec.moved_to == taken["moved_to"]


def test_same_content_under_a_new_name_is_a_duplicate(store: Store, tmp_path: Path) -> None:
    add_meter(store)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.csv").write_bytes(csv_bytes(0, 4))
    assert watch_once(store, drop)[0] == 0
    (drop / "again.csv").write_bytes(csv_bytes(0, 4))
    code, out, _ = watch_once(store, drop)
    assert code == 0 and out is not None
    [taken] = out["files"]
    assert (taken["outcome"], taken["records"], taken["batches"]) == ("duplicate", 0, 0)
    assert (drop / "processed" / "duplicates" / "again.csv").exists()
    assert not (drop / "again.csv").exists()
    assert stored(store) == 4
    assert [r.name for r in store.list_received_files()] == ["a.csv"]


def test_a_file_still_changing_is_never_read(store: Store, tmp_path: Path) -> None:
    add_meter(store)
    drop = tmp_path / "drop"
    drop.mkdir()
    path = drop / "slow.csv"
    path.write_bytes(csv_bytes(0, 2))
    clock = [0.0]

    def writing_on(seconds: float) -> None:  # the uploader appends while we wait
        clock[0] += seconds
        with path.open("ab") as handle:
            handle.write(csv_bytes(2, 1).split(b"\n", 1)[1])

    processor = DropProcessor(store, feed="files", processed=drop / "processed")
    taken = watch_directory(
        processor,
        drop,
        settle=2.0,
        interval=1.0,
        once=True,
        clock=lambda: clock[0],
        sleep=writing_on,
    )
    assert taken == [] and path.exists() and stored(store) == 0

    def quiet(seconds: float) -> None:
        clock[0] += seconds

    taken = watch_directory(
        processor, drop, settle=2.0, interval=1.0, once=True, clock=lambda: clock[0], sleep=quiet
    )
    assert [(t.name, t.outcome, t.counts.accepted) for t in taken] == [("slow.csv", "ingested", 3)]
    assert stored(store) == 3


class CrashAfterIngest(DropProcessor):
    def record(self, rec: ReceivedFile) -> None:
        raise RuntimeError("power cut between the ingest and the record")


def test_a_crash_between_ingest_and_record_reingests_harmlessly(
    store: Store, tmp_path: Path
) -> None:
    add_meter(store)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.csv").write_bytes(csv_bytes(0, 5))
    crashing = CrashAfterIngest(store, feed="files", processed=drop / "processed")
    with pytest.raises(RuntimeError, match="power cut"):
        watch_directory(crashing, drop, settle=0, interval=1.0, once=True)
    assert (drop / "a.csv").exists()  # not moved: it will be taken again
    assert stored(store) == 5 and store.list_received_files() == []
    code, out, _ = watch_once(store, drop)
    assert code == 0 and out is not None
    [taken] = out["files"]
    assert (taken["outcome"], taken["accepted"], taken["duplicates"]) == ("ingested", 0, 5)
    assert stored(store) == 5
    assert [r.name for r in store.list_received_files()] == ["a.csv"]
    assert not (drop / "a.csv").exists()


def test_unreadable_file_moves_to_failed(store: Store, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "bad.csv").write_bytes(b"not,the,header\n1,2,3\n")
    code, out, _ = watch_once(store, drop)
    assert code == 0 and out is not None
    [taken] = out["files"]
    assert taken["outcome"] == "failed" and taken["error"]
    assert (drop / "processed" / "failed" / "bad.csv").exists()
    assert store.list_received_files() == []


def test_watch_refused_while_paused(store: Store, tmp_path: Path) -> None:
    add_meter(store)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.csv").write_bytes(csv_bytes(0, 2))
    assert cli(store, "pause", "files")[0] == 0
    code, _, err = watch_once(store, drop)
    assert code == 2 and "paused" in err
    assert (drop / "a.csv").exists() and stored(store) == 0
    assert cli(store, "resume", "files")[0] == 0
    assert cli(store, "pause", "--reason", "maintenance")[0] == 0  # all ingestion
    code, _, err = watch_once(store, drop)
    assert code == 2 and "all ingestion" in err


# -- the SFTP pull ---------------------------------------------------------------------------


def pull(store: Store, server: SftpServer, local: Path, *extra: str) -> tuple[int, Any, str]:
    return cli(
        store,
        "drops",
        "pull",
        "--host",
        "127.0.0.1",
        "--port",
        str(server.port),
        "--user",
        "meter",
        "--key",
        str(server.key_file),
        "--known-hosts",
        str(server.known_hosts),
        "--remote-dir",
        "/in",
        "--local",
        str(local),
        *extra,
    )


def test_pull_ingests_archives_and_a_repull_changes_nothing(
    store: Store, server: SftpServer, tmp_path: Path
) -> None:
    add_meter(store)
    server.put("a.csv", csv_bytes(0, 3))
    server.put("b.csv", csv_bytes(3, 2))
    server.put("c.csv.part", csv_bytes(5, 2))
    local = tmp_path / "local"
    code, out, err = pull(store, server, local, "--settle", "0")
    assert code == 0, err
    assert [(f["name"], f["outcome"], f["accepted"]) for f in out["files"]] == [
        ("a.csv", "ingested", 3),
        ("b.csv", "ingested", 2),
    ]
    assert out["archived"] == {"a.csv": "/in/processed/a.csv", "b.csv": "/in/processed/b.csv"}
    assert sorted(p.name for p in (server.root / "in").iterdir()) == ["c.csv.part", "processed"]
    assert sorted(p.name for p in (local / "processed").iterdir()) == ["a.csv", "b.csv"]
    assert stored(store) == 5 and len(store.list_received_files()) == 2

    code, out, _ = pull(store, server, local, "--settle", "0")
    assert code == 0 and out["files"] == [] and stored(store) == 5

    server.put("a-resent.csv", csv_bytes(0, 3))  # the vendor sends the same file again
    code, out, _ = pull(store, server, local, "--settle", "0")
    assert code == 0
    assert [(f["name"], f["outcome"]) for f in out["files"]] == [("a-resent.csv", "duplicate")]
    assert (local / "processed" / "duplicates" / "a-resent.csv").exists()
    assert (server.root / "in" / "processed" / "a-resent.csv").exists()
    assert stored(store) == 5 and len(store.list_received_files()) == 2


def test_pull_leaves_an_upload_still_growing(
    store: Store, server: SftpServer, tmp_path: Path
) -> None:
    add_meter(store)
    server.put("up.csv", csv_bytes(0, 2))
    server.faults.grow.add("up.csv")  # each listing finds it bigger
    local = tmp_path / "local"
    code, out, _ = pull(store, server, local, "--settle", "0.2")
    assert code == 0 and out["files"] == [] and out["changing"] == ["up.csv"]
    assert not (local / "up.csv").exists() and stored(store) == 0
    assert server.faults.listings == 2
    server.faults.grow.clear()
    server.put("up.csv", csv_bytes(0, 6))  # the upload finished
    code, out, _ = pull(store, server, local, "--settle", "0.2")
    assert code == 0
    assert [(f["name"], f["accepted"]) for f in out["files"]] == [("up.csv", 6)]
    assert stored(store) == 6


def test_pull_cut_mid_transfer_is_never_half_ingested(
    store: Store, server: SftpServer, tmp_path: Path
) -> None:
    add_meter(store)
    whole = csv_bytes(0, 5000)  # several download blocks
    server.put("big.csv", whole)
    server.faults.cut.add("big.csv")
    local = tmp_path / "local"
    code, out, err = pull(store, server, local, "--settle", "0")
    assert code == 2 and "E02" in err
    assert out["files"] == [] and "E02" in out["error"]
    assert not (local / "big.csv").exists() and list((local / ".incoming").iterdir()) == []
    assert stored(store) == 0 and (server.root / "in" / "big.csv").exists()
    server.faults.cut.clear()
    code, out, _ = pull(store, server, local, "--settle", "0")
    assert code == 0
    [taken] = out["files"]
    assert (taken["outcome"], taken["accepted"], taken["size"]) == ("ingested", 5000, len(whole))
    assert stored(store) == 5000


def test_an_upload_cut_off_for_good_loses_nothing_when_it_is_sent_again(
    store: Store, server: SftpServer, tmp_path: Path
) -> None:
    """The vendor's upload was cut off mid-line and left as it was (it no longer grows, so
    it is taken): its whole rows are stored, the broken last row is quarantined with its
    reason, never half-read. When the vendor sends the file again whole (same name, new
    content), only what was missing is accepted: every interval once."""
    add_meter(store)
    whole = csv_bytes(0, 8)
    cut = whole[: whole.rindex(b"\n", 0, len(whole) - 1) + 12]  # 7 rows and a broken eighth
    server.put("day.csv", cut)
    local = tmp_path / "local"
    code, out, err = pull(store, server, local, "--settle", "0")
    assert code == 0, err
    [first] = out["files"]
    assert (first["outcome"], first["accepted"], first["quarantined"]) == ("ingested", 7, 1)
    assert stored(store) == 7
    [held] = store.list_quarantine()
    assert held.reasons  # a typed reason, not a silent drop
    server.put("day.csv", whole)  # sent again, whole
    code, out, err = pull(store, server, local, "--settle", "0")
    assert code == 0, err
    [again] = out["files"]
    assert (again["outcome"], again["accepted"], again["duplicates"]) == ("ingested", 1, 7)
    assert stored(store) == 8 and len(store.list_received_files()) == 2


def test_pull_refused_while_paused_and_bad_login(
    store: Store, server: SftpServer, tmp_path: Path
) -> None:
    server.put("a.csv", csv_bytes(0, 1))
    assert cli(store, "pause", "files")[0] == 0
    code, _, err = pull(store, server, tmp_path / "local", "--settle", "0")
    assert code == 2 and "paused" in err and (server.root / "in" / "a.csv").exists()
    assert cli(store, "resume", "files")[0] == 0
    code, _, err = cli(
        store,
        "drops",
        "pull",
        "--host",
        "127.0.0.1",
        "--port",
        str(server.port),
        "--user",
        "meter",
        "--password",
        "wrong",
        "--known-hosts",
        str(server.known_hosts),
        "--remote-dir",
        "/in",
    )
    assert code == 2 and "E09" in err


def test_pull_tries_a_cut_session_again_within_the_run(
    store: Store, server: SftpServer, tmp_path: Path
) -> None:
    add_meter(store)
    server.put("big.csv", csv_bytes(0, 5000))
    server.faults.cut.add("big.csv")
    server.faults.cuts = 1  # the connection drops once, mid-download
    code, out, err = pull(store, server, tmp_path / "local", "--settle", "0")
    assert code == 0, err
    assert [(f["name"], f["accepted"]) for f in out["files"]] == [("big.csv", 5000)]
    assert out["error"] is None and stored(store) == 5000
    breaker = out["breaker"]
    assert breaker["endpoint"] == f"files/127.0.0.1:{server.port}"
    assert (breaker["state"], breaker["calls_in_window"], breaker["failure_rate"]) == (
        "closed",
        2,  # the cut session and the one that took the file
        0.5,
    )


def test_pull_breaker_carries_over_from_run_to_run(
    store: Store, server: SftpServer, tmp_path: Path
) -> None:
    """Run by cron, each pull has its own process: the server's breaker is saved and taken
    up by the next run, which connects to nothing while the circuit is open (E03), then
    probes once the cool-down has ended."""
    add_meter(store)
    server.put("day.csv", csv_bytes(0, 5000))
    server.faults.cut.add("day.csv")  # every session is cut
    local = tmp_path / "local"
    knobs = ("--settle", "0", "--attempts", "2", "--breaker-threshold", "3")
    code, out, _ = pull(store, server, local, *knobs, "--breaker-cooldown", "1")
    assert code == 2 and "E02" in out["error"] and out["breaker"]["state"] == "closed"
    code, out, _ = pull(store, server, local, *knobs, "--breaker-cooldown", "1")
    assert code == 2 and out["breaker"]["state"] == "open"  # a third failure in a row
    report = json.loads(runner.invoke(app, ["status", "--db", store.url, "--json"]).stdout)
    assert report["circuit_paused"] == ["files"]
    server.faults.cut.clear()
    listings = server.faults.listings
    code, out, err = pull(store, server, local, *knobs)
    assert code == 2 and "E03" in err and "is open" in out["error"]
    assert server.faults.listings == listings and stored(store) == 0  # it connected to nothing
    time.sleep(1.1)  # the cool-down saved with the circuit ends
    code, out, err = pull(store, server, local, *knobs)
    assert code == 0, err  # the probe: a whole session, the file taken, the circuit closed
    assert out["breaker"]["state"] == "closed" and stored(store) == 5000
