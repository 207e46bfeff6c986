"""``meterledger collect``: a fleet file, the simulator on loopback TCP, a real store."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from meterledger.cli import collect
from meterledger.cli.collect import StoreLedger, next_round_in
from meterledger.collect.breaker import BreakerBoard, BreakerSettings
from meterledger.collect.config import load_fleet
from meterledger.collect.fleet import FleetCollector
from meterledger.simulate.dlms_server import DlmsSimulator, MeterBehaviour, SimulatorConfig
from meterledger.store.base import Store
from support import InThread, add_meter

runner = CliRunner()
cli = typer.Typer()
cli.command("collect")(collect.command)


@cli.callback()
def _root() -> None:
    """A stand-in for the meterledger app (cli/app.py wires the real one)."""


@pytest.fixture
def simulator() -> Iterator[DlmsSimulator]:
    """Three meters on the wall clock (yesterday and today so far); the third is silent."""
    sim = DlmsSimulator(
        SimulatorConfig(
            meters=3, port=0, days=1, tz="UTC", overrides={2: MeterBehaviour(silent=True)}
        )
    )
    with InThread(sim):
        yield sim


def one_meter_fleet(tmp_path: Path, port: int) -> Path:
    """A fleet file of the simulator's first meter, with a short timeout."""
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        yaml.safe_dump(
            {
                "defaults": {"host": "127.0.0.1", "port": port, "timeout": 0.3},
                "meters": [{"meter_id": "MTR-00001", "server_sap": 1}],
            }
        )
    )
    return fleet


def test_collect_command(store: Store, simulator: DlmsSimulator, tmp_path: Path) -> None:
    ids = ["MTR-00001", "MTR-00002", "MTR-00003"]
    for meter_id in ids:
        add_meter(store, meter_id, capacity=1_000_000_000)
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        yaml.safe_dump(
            {
                "collector": {"attempts": 1, "every_seconds": 900},
                "defaults": {"host": "127.0.0.1", "port": simulator.port, "timeout": 0.3},
                "meters": [{"meter_id": m, "server_sap": i + 1} for i, m in enumerate(ids)],
            }
        )
    )
    base = ["collect", "--fleet", str(fleet), "--db", store.url, "--json"]

    first = runner.invoke(cli, base)
    assert first.exit_code == 1  # one meter failed; the others were read
    payload = json.loads(first.stdout)
    codes = {r["meter_id"]: r["code"] for r in payload["results"]}
    assert codes == {"MTR-00001": None, "MTR-00002": None, "MTR-00003": "E04"}
    assert payload["summary"]["failed"] == 1
    accepted = payload["summary"]["ingest"]["accepted"]
    assert accepted > 0 and store.count("readings") == accepted
    # a register read at every row read: each interval's end and each meter's first row
    registers = payload["summary"]["registers"]
    assert registers == {
        "reads": accepted + 2,
        "new": accepted + 2,
        "duplicates": 0,
        "conflicts": 0,
        "unknown": 0,
    }
    assert store.count("register_reads") == accepted + 2

    again = runner.invoke(cli, [*base, "--meter-id", "MTR-00001", "--meter-id", "MTR-00002"])
    assert again.exit_code == 0
    assert all(r["skipped"] for r in json.loads(again.stdout)["results"])  # not due yet

    forced = runner.invoke(
        cli, [*base, "--meter-id", "MTR-00001", "--meter-id", "MTR-00002", "--force"]
    )
    assert forced.exit_code == 0
    summary = json.loads(forced.stdout)["summary"]
    assert summary["ok"] == 2 and summary["ingest"]["accepted"] <= 2 * 1  # at most a new row
    assert store.count("readings") == accepted + summary["ingest"]["accepted"]
    assert summary["registers"]["new"] == summary["ingest"]["accepted"]
    assert store.count("register_reads") == accepted + 2 + summary["ingest"]["accepted"]

    table = runner.invoke(cli, ["collect", "--fleet", str(fleet), "--db", store.url, "--force"])
    assert table.exit_code == 1 and "E04" in table.stdout


def test_collect_needs_a_fleet_file(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["collect", "--fleet", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2 and "fleet file" in result.stderr


def test_collect_names_unknown_meters(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump({"meters": [{"meter_id": "M1", "host": "h"}]}))
    result = runner.invoke(cli, ["collect", "--fleet", str(fleet), "--meter-id", "M9"])
    assert result.exit_code == 2 and "M9" in result.stderr


def test_collect_dead_letters_a_refused_handoff_and_status_shows_the_breaker(
    simulator: DlmsSimulator, tmp_path: Path
) -> None:
    """The whole command line: a store whose batches table refuses every insert (a trigger
    of its own), a silent meter behind its own gateway opening its circuit at once."""
    from meterledger.cli.app import app
    from meterledger.store import open_store

    url = f"sqlite:///{tmp_path / 'refusing.db'}"
    store = open_store(url)
    ids = ["MTR-00001", "MTR-00002", "MTR-00003"]
    for meter_id in ids:
        add_meter(store, meter_id, capacity=1_000_000_000)
    store.close()
    with sqlite3.connect(tmp_path / "refusing.db") as raw:
        raw.execute(
            "CREATE TRIGGER refuse_batches BEFORE INSERT ON batches"
            " BEGIN SELECT RAISE(ABORT, 'batches refused'); END"
        )
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        yaml.safe_dump(
            {
                "collector": {"attempts": 1, "breaker_threshold": 1, "breaker_cooldown": 600},
                "defaults": {"host": "127.0.0.1", "port": simulator.port, "timeout": 0.3},
                "meters": [
                    {"meter_id": m, "server_sap": i + 1, "gateway": f"gw-{i + 1}"}
                    for i, m in enumerate(ids)
                ],
            }
        )
    )
    base = ["collect", "--fleet", str(fleet), "--db", url, "--json"]
    first = runner.invoke(app, base)
    assert first.exit_code == 1
    payload = json.loads(first.stdout)
    results = {r["meter_id"]: r for r in payload["results"]}
    assert [results[m]["code"] for m in ids] == ["E08", "E08", "E04"]
    kept = [results[m]["dead_letter"] for m in ids[:2]]
    assert all(isinstance(k, int) for k in kept) and results["MTR-00003"]["dead_letter"] is None
    assert payload["summary"]["dead_letters"] == 2 and payload["summary"]["ingest"]["accepted"] == 0

    status = json.loads(runner.invoke(app, ["status", "--db", url, "--json"]).stdout)
    assert status["open_dead_letters"] == {"dlms": 2}
    breakers = {b["endpoint"]: b["state"] for b in status["breakers"]}
    assert breakers == {"dlms/gw-1": "closed", "dlms/gw-2": "closed", "dlms/gw-3": "open"}
    assert status["circuit_paused"] == ["dlms"]

    listed = json.loads(runner.invoke(app, ["deadletters", "list", "--db", url, "--json"]).stdout)
    assert sorted(d["source"] for d in listed) == ids[:2]
    with sqlite3.connect(tmp_path / "refusing.db") as raw:
        raw.execute("DROP TRIGGER refuse_batches")
    replay = runner.invoke(app, ["deadletters", "replay", "--db", url, "--json"])
    assert replay.exit_code == 0, replay.output
    done = json.loads(replay.stdout)
    assert [d["outcome"] for d in done] == ["replayed", "replayed"]
    stored = sum(d["accepted"] for d in done)
    assert stored > 0 and all(d["duplicates"] == 0 for d in done)
    again = runner.invoke(app, ["deadletters", "replay", *map(str, kept), "--db", url, "--json"])
    assert [d["outcome"] for d in json.loads(again.stdout)] == ["skipped", "skipped"]
    # the next collection finds the replayed readings stored: nothing new from either meter
    forced = runner.invoke(app, [*base, "--force", "--meter-id", ids[0], "--meter-id", ids[1]])
    assert forced.exit_code == 0, forced.output
    summary = json.loads(forced.stdout)["summary"]
    assert summary["dead_letters"] == 0 and summary["ingest"]["accepted"] <= 2  # a new row at most
    store = open_store(url)
    try:
        assert store.count("readings") == stored + summary["ingest"]["accepted"]
    finally:
        store.close()


def test_collect_every_waits_for_the_open_circuit_to_half_open(
    store: Store, simulator: DlmsSimulator, tmp_path: Path
) -> None:
    """--every 0.1: round two would begin at once, but the silent meter's circuit is open
    for a second, so the round waits and that meter's call is the probe (E04), not E03."""
    ids = ["MTR-00001", "MTR-00002", "MTR-00003"]
    for meter_id in ids:
        add_meter(store, meter_id, capacity=1_000_000_000)
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        yaml.safe_dump(
            {
                "collector": {"attempts": 1, "breaker_threshold": 1, "breaker_cooldown": 1.0},
                "defaults": {"host": "127.0.0.1", "port": simulator.port, "timeout": 0.3},
                "meters": [
                    {"meter_id": m, "server_sap": i + 1, "gateway": f"gw-{i + 1}"}
                    for i, m in enumerate(ids)
                ],
            }
        )
    )
    args = ["collect", "--fleet", str(fleet), "--db", store.url, "--json", "--every", "0.1"]
    began = time.monotonic()
    result = runner.invoke(cli, [*args, "--rounds", "2"])
    took = time.monotonic() - began
    assert result.exit_code == 1  # the silent meter failed in the last round
    rounds = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rounds) == 2  # one JSON object per line, per round
    codes = [{r["meter_id"]: (r["code"], r["skipped"]) for r in n["results"]} for n in rounds]
    assert codes[0] == {"MTR-00001": (None, False), "MTR-00002": (None, False),
                        "MTR-00003": ("E04", False)}  # fmt: skip
    # round two: the read meters are not due yet; the silent one is probed, not refused
    assert codes[1] == {"MTR-00001": (None, True), "MTR-00002": (None, True),
                        "MTR-00003": ("E04", False)}  # fmt: skip
    assert took >= 1.0  # it waited for the cool-down, not the 0.1 s of --every
    (probe,) = [r for r in rounds[1]["results"] if r["meter_id"] == "MTR-00003"]
    assert probe["attempts"] == 1 and "circuit" not in probe["message"]

    bad = runner.invoke(cli, [*args[:-2], "--rounds", "2"])
    assert bad.exit_code == 2 and "--rounds needs --every" in bad.stderr
    mixed = runner.invoke(cli, [*args, "--since", "2024-01-01T00:00:00Z"])
    assert mixed.exit_code == 2 and "--since" in mixed.stderr


def test_next_round_waits_for_the_longest_open_circuit() -> None:
    now = [0.0]
    board = BreakerBoard.of(BreakerSettings(threshold=1, cooldown=30), clock=lambda: now[0])
    assert next_round_in(board, 10, 4) == 6  # no circuit: every after the last began
    board.get("a").record_failure()
    now[0] = 5
    board.get("b").record_failure()
    now[0] = 12
    assert next_round_in(board, 10, 4) == 23  # b half-opens at 35
    now[0] = 40
    assert next_round_in(board, 10, 12) == 0  # both half-open: at once


def test_collect_every_holds_while_the_feed_is_paused(
    store: Store, simulator: DlmsSimulator, tmp_path: Path
) -> None:
    add_meter(store, "MTR-00001", capacity=1_000_000_000)
    fleet = one_meter_fleet(tmp_path, simulator.port)
    collector = FleetCollector(load_fleet(fleet), StoreLedger(store), force=True)
    with store.write() as tx:  # paused after the command started: its rounds hold
        tx.set_feed_paused("dlms", True, "maintenance", "2024-01-01T00:00:00+00:00")
    assert collect._loop(collector, store, True, every=0.1, rounds=2) is False
    assert store.clock_reads("MTR-00001") == [] and store.count("readings") == 0
    with store.write() as tx:
        tx.set_feed_paused("dlms", False, None, "2024-01-01T00:01:00+00:00")
    assert collect._loop(collector, store, True, every=0.1, rounds=1) is False
    assert len(store.clock_reads("MTR-00001")) == 1 and store.count("readings") > 0


def test_collect_every_started_while_paused_holds_and_a_single_run_refuses(
    store: Store, simulator: DlmsSimulator, tmp_path: Path
) -> None:
    add_meter(store, "MTR-00001", capacity=1_000_000_000)
    fleet = one_meter_fleet(tmp_path, simulator.port)
    with store.write() as tx:
        tx.set_feed_paused("dlms", True, "maintenance", "2024-01-01T00:00:00+00:00")
    base = ["collect", "--fleet", str(fleet), "--db", store.url]
    once = runner.invoke(cli, base)
    assert once.exit_code == 2 and "paused" in once.output  # one run: refused, said why
    looped = runner.invoke(cli, [*base, "--every", "0.1", "--rounds", "1", "--json"])
    assert looped.exit_code == 0, looped.output  # a loop holds instead of refusing
    assert store.count("readings") == 0 and store.clock_reads("MTR-00001") == []
