"""``meterledger db status`` and ``db upgrade`` on each backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backends import Databases, RawDb
from meterledger.cli.app import app
from meterledger.ingest.audit import GENESIS, canonical_json, entry_hash, meter_payload, verify
from meterledger.store import open_store
from meterledger.store.base import MeterRecord

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("METERLEDGER_DB", "METERLEDGER_CONFIG", "METERLEDGER_DEFAULT_TZ"):
        monkeypatch.delenv(name, raising=False)


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


def status(url: str) -> dict[str, object]:
    code, out = run("db", "status", "--db", url, "--json")
    assert code == 0, out
    report = json.loads(out)
    assert isinstance(report, dict)
    return report


def test_status_of_a_new_store_lists_every_migration_and_applies_none(
    databases: Databases, backend: str
) -> None:
    url = databases.new_url("fresh")
    before = status(url)
    assert before["backend"] == backend
    assert before["schema_version"] == 0
    assert before["latest_version"] == 8
    assert before["pending"] == [
        {"version": 1, "name": "initial"},
        {"version": 2, "name": "anomalies"},
        {"version": 3, "name": "billing"},
        {"version": 4, "name": "collect"},
        {"version": 5, "name": "vee"},
        {"version": 6, "name": "feeds"},
        {"version": 7, "name": "feed_marks"},
        {"version": 8, "name": "breaker_retry"},
    ]
    assert status(url)["schema_version"] == 0  # status changed nothing


def test_upgrade_step_by_step_then_nothing_to_do(databases: Databases, backend: str) -> None:
    url = databases.new_url("steps")
    code, out = run("db", "upgrade", "--to", "1", "--db", url, "--json")
    assert code == 0, out
    assert json.loads(out) == {"db": url, "from_version": 0, "to_version": 1, "applied": [1]}
    assert status(url)["pending"] == [
        {"version": 2, "name": "anomalies"},
        {"version": 3, "name": "billing"},
        {"version": 4, "name": "collect"},
        {"version": 5, "name": "vee"},
        {"version": 6, "name": "feeds"},
        {"version": 7, "name": "feed_marks"},
        {"version": 8, "name": "breaker_retry"},
    ]
    code, out = run("db", "upgrade", "--db", url, "--json")
    assert json.loads(out)["applied"] == [2, 3, 4, 5, 6, 7, 8]
    code, out = run("db", "upgrade", "--db", url)
    assert code == 0 and "nothing to do" in out
    report = status(url)
    assert report["schema_version"] == 8 and report["pending"] == []
    details = report["details"]
    assert isinstance(details, dict)
    if backend == "postgresql":
        assert details["readings_layout"] == "partitioned by month"
        assert details["reader_role"] is True
        assert details["partitions"]
    else:
        assert details["journal_mode"] == "wal"


def test_upgrade_keeps_the_data_and_chain_of_a_version_1_store(
    databases: Databases, backend: str
) -> None:
    url = databases.new_url("old")
    old = open_store(url, migrate=False)
    assert old.migrate(target=1) == [1]
    old.close()
    # a meter and its audit entry as a version 1 release wrote them (today's code writes
    # the columns of later versions)
    meter = MeterRecord("M1", "electric", "kWh", "UTC", None, "active", 25_000_000, "t")
    payload = canonical_json(meter_payload(meter))
    with RawDb(url) as raw:
        raw.execute(
            "INSERT INTO meters (meter_id, service, unit, timezone, account, status, capacity,"
            " created_at) VALUES ('M1', 'electric', 'kWh', 'UTC', NULL, 'active', 25000000, 't')"
        )
        raw.execute(
            "INSERT INTO audit_log (seq, recorded_at, kind, subject, payload, prev_hash, hash)"
            " VALUES (1, 't', 'meter.added', 'M1', ?, ?, ?)",
            (payload, GENESIS, entry_hash(1, "t", "meter.added", "M1", payload, GENESIS)),
        )
        assert raw.scalar("SELECT count(*) FROM audit_log") == 1
    code, out = run("db", "upgrade", "--db", url, "--json")
    assert code == 0 and json.loads(out)["applied"] == [2, 3, 4, 5, 6, 7, 8]
    store = open_store(url)
    try:
        assert store.list_meters() == [meter]  # of the default class
        assert store.registry_version() >= 0
        assert verify(store).ok
    finally:
        store.close()


def test_upgrade_refuses_a_downgrade_and_a_bad_target(databases: Databases) -> None:
    url = databases.new_url("down")
    assert run("db", "upgrade", "--db", url)[0] == 0
    result = runner.invoke(app, ["db", "upgrade", "--to", "1", "--db", url])
    assert result.exit_code == 2
    assert "downgrades are not supported" in result.output
    result = runner.invoke(app, ["db", "upgrade", "--to", "10", "--db", url])
    assert result.exit_code == 2
    assert "between 1 and 8" in result.output


def test_status_of_an_unreachable_server_is_a_clear_error() -> None:
    result = runner.invoke(app, ["db", "status", "--db", "postgresql://127.0.0.1:1/none"])
    assert result.exit_code == 2
    assert "cannot connect to postgresql://127.0.0.1:1/none" in result.output
