"""The CLI: every command has help and docs, --json output, the ingest/export round trip.

Commands that open a store run on each backend (the ``db`` fixture); the rest run once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from backends import Databases
from meterledger.cli.app import app
from support import HEADER, row

runner = CliRunner()
DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def command_paths(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        yield path
        if hasattr(command, "commands"):
            yield from command_paths(command, path)


PATHS = list(command_paths(typer.main.get_command(app)))


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    code, out = invoke(*path, "--help")
    assert code == 0
    assert "Usage:" in out and "--help" in out


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_every_command_is_documented(path: tuple[str, ...]) -> None:
    assert f"meterledger {' '.join(path)}" in DOCS.read_text("utf-8")


def test_expected_commands_exist() -> None:
    names = {" ".join(p) for p in PATHS}
    assert {
        "init",
        "db status",
        "db upgrade",
        "ingest",
        "demo",
        "meters add",
        "meters list",
        "quarantine list",
        "quarantine show",
        "quarantine release",
        "quarantine replay",
        "audit verify",
        "readings export",
    } <= names


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory and none of the caller's METERLEDGER_ settings."""
    monkeypatch.chdir(tmp_path)  # no meterledger.yaml from the repo leaks in
    for name in ("METERLEDGER_DB", "METERLEDGER_CONFIG", "METERLEDGER_DEFAULT_TZ"):
        monkeypatch.delenv(name, raising=False)  # nor the caller's environment
    return tmp_path


@pytest.fixture
def db(workdir: Path, databases: Databases) -> str:
    """A new store URL on the test's backend, for a CLI run from ``workdir``."""
    return databases.new_url("cli")


def test_init_and_env_var(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = invoke("init", "--db", db, "--json")
    assert code == 0 and json.loads(out) == {"db": db, "schema_version": 8}
    monkeypatch.setenv("METERLEDGER_DB", db)
    code, out = invoke("init", "--json")
    assert json.loads(out)["db"] == db


def test_config_file_is_read_and_env_beats_it(
    db: str, databases: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = databases.new_url("from-yaml")
    (tmp_path / "meterledger.yaml").write_text(f"db: {other}\n")
    assert json.loads(invoke("init", "--json")[1])["db"] == other
    monkeypatch.setenv("METERLEDGER_DB", db)
    assert json.loads(invoke("init", "--json")[1])["db"] == db


def test_meters_add_and_list(db: str) -> None:
    code, out = invoke(
        "meters",
        "add",
        "MTR-1",
        "--service",
        "electric",
        "--tz",
        "America/New_York",
        "--account",
        "ACC-9",
        "--db",
        db,
        "--json",
    )
    assert code == 0 and json.loads(out)["account"] == "ACC-9"
    code, out = invoke("meters", "list", "--db", db, "--json")
    listed = json.loads(out)
    assert [m["meter_id"] for m in listed] == ["MTR-1"]
    assert listed[0]["timezone"] == "America/New_York"
    code, _ = invoke("meters", "add", "MTR-1", "--db", db)
    assert code == 2  # already exists: a clear error, not a traceback
    code, _ = invoke("meters", "add", "bad id", "--db", db)
    assert code == 2
    code, _ = invoke("meters", "add", "MTR-2", "--tz", "Mars/Olympus", "--db", db)
    assert code == 2


def test_ingest_json_and_export_round_trip(db: str, tmp_path: Path) -> None:
    invoke("meters", "add", "M1", "--tz", "UTC", "--db", db)
    lines = [
        row(f"2024-03-01T00:{m:02d}:00+00:00", v)
        for m, v in ((15, "0.125"), (30, "1.5"), (45, "0.000001"))
    ]
    lines.append(row("2024-03-01T01:00:00+00:00", "0.25", quality="estimated:linear"))
    lines.append(row("2024-03-01T01:15:00+00:00", "oops"))
    src = tmp_path / "in.csv"
    src.write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    code, out = invoke("ingest", str(src), "--db", db, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["totals"]["accepted"] == 4
    assert report["totals"]["reasons"] == {"MALFORMED_VALUE": 1}
    target = tmp_path / "out.csv"
    code, _ = invoke(
        "readings",
        "export",
        "--meter",
        "M1",
        "--from",
        "2024-03-01T00:00:00Z",
        "--to",
        "2024-03-01T02:00:00Z",
        "--out",
        str(target),
        "--db",
        db,
    )
    assert code == 0
    exported = target.read_text().splitlines()
    assert exported[0] == HEADER
    assert exported[1:] == lines[:4]
    code, out = invoke("ingest", str(target), "--db", db, "--json")
    totals = json.loads(out)["totals"]
    assert totals["accepted"] == 0 and totals["duplicates"] == 4  # the export re-ingests as-is


def export_one_reading(db: str, tmp_path: Path | None, *extra: str) -> tuple[int, str]:
    """Register M1 and ingest one reading (when ``tmp_path`` is given), then export the day."""
    if tmp_path is not None:
        invoke("meters", "add", "M1", "--db", db)
        src = tmp_path / "in.csv"
        src.write_text(HEADER + "\n" + row("2024-03-01T00:15:00+00:00", "2") + "\n")
        invoke("ingest", str(src), "--db", db)
    return invoke(
        "readings",
        "export",
        "--meter",
        "M1",
        "--from",
        "2024-03-01T00:00:00Z",
        "--to",
        "2024-03-02T00:00:00Z",
        *extra,
        "--db",
        db,
    )


def test_export_jsonl_to_stdout(db: str, tmp_path: Path) -> None:
    code, out = export_one_reading(db, tmp_path, "--format", "jsonl")
    assert code == 0
    assert json.loads(out) == {
        "meter_id": "M1",
        "channel": "1.0.1.8.0.255",
        "interval_end": "2024-03-01T00:15:00+00:00",
        "interval_seconds": 900,
        "value": "2",
        "unit": "kWh",
        "quality": "actual",
    }


def test_ingest_create_meters_and_meter_id_rules(db: str, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text(HEADER + "\n" + row("2024-03-01T00:15:00+00:00", "2", meter="NEW-7") + "\n")
    code, out = invoke("ingest", str(src), "--db", db, "--json")
    assert json.loads(out)["totals"]["reasons"] == {"UNKNOWN_METER": 1}
    src2 = tmp_path / "in2.csv"
    src2.write_text(HEADER + "\n" + row("2024-03-01T00:30:00+00:00", "2", meter="NEW-7") + "\n")
    code, out = invoke(
        "ingest", str(src2), "--create-meters", "--tz", "Europe/Paris", "--db", db, "--json"
    )
    assert json.loads(out)["files"][0]["meters_created"] == ["NEW-7"]
    assert json.loads(out)["totals"]["accepted"] == 1
    meters = json.loads(invoke("meters", "list", "--db", db, "--json")[1])
    assert meters[0]["timezone"] == "Europe/Paris"
    code, _ = invoke("ingest", str(src), "--meter-id", "X", "--db", db)
    assert code == 2  # --meter-id is for Green Button files


def test_ingest_errors_are_clear(db: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    result = runner.invoke(app, ["ingest", str(bad), "--db", db])
    assert result.exit_code == 2
    assert "header" in result.output
    unknown = tmp_path / "x.parquet"
    unknown.write_text("x")
    assert runner.invoke(app, ["ingest", str(unknown), "--db", db]).exit_code == 2


def test_quarantine_reasons_lists_every_code() -> None:
    from meterledger.ingest.reasons import Reason

    code, out = invoke("quarantine", "reasons", "--json")
    assert code == 0
    assert {r["code"] for r in json.loads(out)} == {r.value for r in Reason}


def test_audit_log_shows_entries(db: str) -> None:
    invoke("meters", "add", "M1", "--db", db)
    code, out = invoke("audit", "log", "--db", db, "--json")
    entries = json.loads(out)
    assert code == 0 and entries[0]["kind"] == "meter.added"
    assert entries[0]["payload"]["meter_id"] == "M1"


def test_bad_inputs_are_clear_errors_not_tracebacks(db: str, tmp_path: Path) -> None:
    import gzip

    whole = gzip.compress((HEADER + "\n" + row("2024-03-01T00:15:00+00:00", "2") + "\n").encode())
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    result = runner.invoke(app, ["ingest", str(cut), "--db", db])
    assert result.exit_code == 2 and "cannot read cut.csv.gz" in result.output
    for capacity in ("1e30", "0.0000001", "-5", "lots"):
        assert invoke("meters", "add", "M1", "--capacity", capacity, "--db", db)[0] == 2
    assert invoke("demo", "--start", "2024-13-01", "--out", str(tmp_path / "d"))[0] == 2


def test_export_takes_the_channel_in_either_obis_form(db: str, tmp_path: Path) -> None:
    export_one_reading(db, tmp_path)
    for form in ("1.0.1.8.0.255", "1-0:1.8.0*255", "1-0:1.8.0"):
        code, out = export_one_reading(db, None, "--channel", form)
        assert code == 0 and len(out.splitlines()) == 2, form


def test_an_unknown_log_level_is_a_config_error(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused before any store is opened, so one backend is enough."""
    monkeypatch.setenv("METERLEDGER_LOG_LEVEL", "verbose")
    db = workdir / "cli.db"
    assert invoke("init", "--db", f"sqlite:///{db}")[0] == 2
    assert not db.exists()


def test_a_broken_config_file_is_a_clear_error(workdir: Path, tmp_path: Path) -> None:
    (tmp_path / "meterledger.yaml").write_text("db: [unclosed\n")
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 2 and "meterledger.yaml" in result.output
    (tmp_path / "meterledger.yaml").write_text("no_such_setting: 1\n")
    assert runner.invoke(app, ["init"]).exit_code == 2


def test_create_meters_infers_the_service_from_the_unit(db: str, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text(
        HEADER
        + "\n"
        + row("2024-03-01T00:15:00+00:00", "12.5", meter="W-1", unit="L", channel="8.0.1.0.0.255")
        + "\n"
        + row("2024-03-01T00:15:00+00:00", "0.75", meter="G-1", unit="m3", channel="7.0.3.0.0.255")
        + "\n"
    )
    totals = json.loads(invoke("ingest", str(src), "--create-meters", "--db", db, "--json")[1])
    assert totals["totals"]["accepted"] == 2
    services = {
        m["meter_id"]: (m["service"], m["unit"])
        for m in json.loads(invoke("meters", "list", "--db", db, "--json")[1])
    }
    assert services == {"W-1": ("water", "L"), "G-1": ("gas", "m3")}
