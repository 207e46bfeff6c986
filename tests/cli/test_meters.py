"""``meterledger meters add --class`` and the class in ``meters list`` (each backend)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backends import Databases
from meterledger.cli.app import app
from meterledger.ingest.audit import verify
from meterledger.store import open_store

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, databases: Databases) -> str:
    monkeypatch.chdir(tmp_path)
    for name in ("METERLEDGER_DB", "METERLEDGER_CONFIG", "METERLEDGER_DEFAULT_TZ"):
        monkeypatch.delenv(name, raising=False)
    return databases.new_url("meters")


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_meter_class_is_stored_listed_and_audited(db: str) -> None:
    code, out = invoke("meters", "add", "SOLAR-1", "--class", "solar_net-2", "--db", db, "--json")
    assert code == 0, out
    assert json.loads(out)["meter_class"] == "solar_net-2"
    code, out = invoke("meters", "add", "PLAIN-1", "--db", db)
    assert code == 0 and "class default" in out
    listed = json.loads(invoke("meters", "list", "--db", db, "--json")[1])
    assert [(m["meter_id"], m["meter_class"]) for m in listed] == [
        ("PLAIN-1", "default"),
        ("SOLAR-1", "solar_net-2"),
    ]
    code, table = invoke("meters", "list", "--db", db)
    assert code == 0 and "class" in table and "solar_net-2" in table
    store = open_store(db)
    try:
        meter = store.get_meter("SOLAR-1")
        assert meter is not None and meter.meter_class == "solar_net-2"
        entries = [json.loads(r.payload) for r in store.audit_rows() if r.kind == "meter.added"]
        # a class other than the default is on the chain; the default is left out, as
        # for meters added before classes existed
        assert [e.get("meter_class") for e in entries] == ["solar_net-2", None]
        assert verify(store).ok, verify(store).as_dict()
    finally:
        store.close()


@pytest.mark.parametrize(
    "name", ["Residential", "1st", "", "a" * 33, "has space", "ümlaut", "-lead", "dot.ted"]
)
def test_a_bad_meter_class_is_refused_before_anything_is_stored(db: str, name: str) -> None:
    code, out = invoke("meters", "add", "M1", "--class", name, "--db", db)
    assert code == 2
    assert "meter class must be" in out
    assert json.loads(invoke("meters", "list", "--db", db, "--json")[1]) == []


def test_the_longest_meter_class_is_accepted(db: str) -> None:
    name = "c" + "9" * 31
    code, out = invoke("meters", "add", "M1", "--class", name, "--db", db, "--json")
    assert code == 0, out
    assert json.loads(out)["meter_class"] == name
