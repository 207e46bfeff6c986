"""The VEE commands on a store (each backend): ingest with the rules on, `vee run`/`vee rules`,
`anomalies list/show/release/edit/replay`, and the rebills when a billed cycle's data
changes (an actual replacing an estimate, a manual edit, a release)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from backends import Databases
from meterledger.cli.app import app
from support import HEADER

runner = CliRunner()
TARIFF = (
    Path(__file__).resolve().parents[2] / "src" / "meterledger" / "billing" / "tariffs"
    / "residential_tou.yaml"
)  # fmt: skip
TZ = ZoneInfo("America/New_York")
FIRST = datetime(2024, 1, 1, tzinfo=TZ).astimezone(UTC)  # the cycle 2024-01, 31 days
SPIKE = FIRST + timedelta(days=9, hours=18)  # 2024-01-10 13:00 local
GAP = [FIRST + timedelta(days=20, hours=10, minutes=15 * i) for i in range(6)]


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def z(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _value(end: datetime) -> str:
    """kWh: a daily ramp (0.200 at midnight, +0.002 per quarter-hour), the same every day."""
    start = (end - timedelta(minutes=15)).astimezone(TZ)
    return f"{0.2 + 0.002 * (start.hour * 4 + start.minute // 15):.3f}"


@pytest.fixture
def db(tmp_path: Path, databases: Databases, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    for name in ("METERLEDGER_DB", "METERLEDGER_CONFIG", "METERLEDGER_DEFAULT_TZ"):
        monkeypatch.delenv(name, raising=False)
    url = databases.new_url("vee")
    assert invoke("tariffs", "add", str(TARIFF), "--db", url)[0] == 0
    code, _, err = invoke(
        "meters", "add", "MTR-1", "--tz", "America/New_York", "--account", "ACC-1",
        "--class", "residential", "--db", url,
    )  # fmt: skip
    assert code == 0, err
    code, _, err = invoke(
        "accounts", "add", "ACC-1", "--tariff", "res-tou-example", "--tz", "America/New_York",
        "--db", url,
    )  # fmt: skip
    assert code == 0, err
    lines = [HEADER]
    for i in range(1, 31 * 96 + 1):
        end = FIRST + timedelta(minutes=15 * i)
        if end in GAP:
            continue
        value = "6.000" if end == SPIKE else _value(end)
        lines.append(f"MTR-1,1.0.1.8.0.255,{z(end)},900,{value},kWh,actual")
    (tmp_path / "jan.csv").write_text("\n".join(lines) + "\n")
    code, out, err = invoke("ingest", str(tmp_path / "jan.csv"), "--db", url, "--json")
    assert code == 0, err
    vee = json.loads(out)["vee"]
    assert vee["estimated"] == len(GAP)
    assert vee["by_rule"].get("SPIKE") == 1
    return url


def _anomalies(db: str, *args: str) -> list[dict[str, object]]:
    code, out, err = invoke("anomalies", "list", *args, "--db", db, "--json")
    assert code == 0, err
    found: list[dict[str, object]] = json.loads(out)
    return found


def _bill(db: str) -> dict[str, object]:
    code, out, _ = invoke("bills", "list", "--account", "ACC-1", "--db", db, "--json")
    assert code == 0
    bills = json.loads(out)
    code, out, _ = invoke("bills", "show", str(bills[-1]["bill_id"]), "--db", db, "--json")
    assert code == 0
    shown: dict[str, object] = json.loads(out)
    return shown


def test_anomalies_list_json_contract_and_filters(db: str) -> None:
    found = _anomalies(db)
    spike = next(a for a in found if a["rule"] == "SPIKE")
    assert set(spike) >= {"meter_id", "channel", "interval_end", "rule", "severity", "detail"}
    assert spike["meter_id"] == "MTR-1" and spike["channel"] == "1.0.1.8.0.255"
    assert spike["interval_end"] == SPIKE.isoformat()
    assert spike["severity"] == "fail" and spike["status"] == "open"
    assert spike["value_milli"] == 6_000_000
    assert "spike 6.000 kWh" in str(spike["detail"])
    gap = next(a for a in found if a["rule"] == "GAP")
    assert gap["interval_end"] == GAP[0].isoformat() and gap["value_milli"] is None
    assert [a["rule"] for a in _anomalies(db, "--rule", "SPIKE")] == ["SPIKE"]
    assert _anomalies(db, "--meter", "MTR-9") == []
    code, out, _ = invoke("anomalies", "list", "--db", db)
    assert code == 0 and "SPIKE" in out


def test_show_gives_the_surrounding_data(db: str) -> None:
    spike = next(a for a in _anomalies(db) if a["rule"] == "SPIKE")
    code, out, err = invoke(
        "anomalies", "show", str(spike["anomaly_id"]), "--around", "2", "--db", db, "--json"
    )
    assert code == 0, err
    shown = json.loads(out)
    assert [d["flagged"] for d in shown["data"]] == [False, False, True, False, False]
    assert shown["data"][2]["value"] == "6.000"
    assert shown["data"][1]["interval_end"] == (SPIKE - timedelta(minutes=15)).isoformat()
    code, out, _ = invoke("anomalies", "show", str(spike["anomaly_id"]), "--db", db)
    assert code == 0 and "▶" in out
    assert invoke("anomalies", "show", "9999", "--db", db)[0] == 2


def test_the_spike_is_held_until_edited_then_the_bill_is_rebilled(db: str) -> None:
    code, out, _ = invoke("cycle", "run", "--period", "2024-01", "--db", db, "--json")
    assert code == 0 and len(json.loads(out)["issued"]) == 1
    first = _bill(db)
    det = first["document"]["determinants"]  # type: ignore[index]
    assert det["intervals"] == 31 * 96 - 1  # the held spike is not billed
    assert float(det["estimated_share"]) > 0  # the six estimated intervals are marked
    spike = next(a for a in _anomalies(db) if a["rule"] == "SPIKE")
    code, out, err = invoke(
        "anomalies", "edit", str(spike["anomaly_id"]), "--value", "0.250",
        "--note", "read from the display", "--db", db, "--json",
    )  # fmt: skip
    assert code == 0, err
    edited = json.loads(out)
    assert edited["status"] == "edited" and edited["note"] == "read from the display"
    assert edited["rebills"] and edited["rebills"][0]["account"] == "ACC-1"
    code, out, _ = invoke(
        "readings", "export", "--meter", "MTR-1", "--from", z(SPIKE - timedelta(minutes=15)),
        "--to", z(SPIKE), "--format", "jsonl", "--db", db,
    )  # fmt: skip
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["quality"] == "edited" and row["value"] == "0.25"
    rebill = _bill(db)
    assert rebill["kind"] == "rebill"
    assert rebill["document"]["determinants"]["intervals"] == 31 * 96  # type: ignore[index]
    code, out, _ = invoke("audit", "verify", "--db", db, "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    # a finding acted on cannot be acted on again
    assert invoke("anomalies", "release", str(spike["anomaly_id"]), "--db", db)[0] == 2


def test_release_puts_the_interval_back(db: str) -> None:
    spike = next(a for a in _anomalies(db) if a["rule"] == "SPIKE")
    code, out, err = invoke(
        "anomalies", "release", str(spike["anomaly_id"]), "--note", "a real EV charge",
        "--db", db, "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["status"] == "released" and json.loads(out)["rebills"] == []
    invoke("cycle", "run", "--period", "2024-01", "--db", db)
    det = _bill(db)["document"]["determinants"]  # type: ignore[index]
    assert det["intervals"] == 31 * 96
    # released findings stay released when the rules run again
    assert invoke("vee", "run", "--meter", "MTR-1", "--db", db)[0] == 0
    assert [a["status"] for a in _anomalies(db, "--rule", "SPIKE", "--status", "all")] == [
        "released"
    ]


def test_an_actual_replacing_an_estimate_rebills_the_cycle(db: str, tmp_path: Path) -> None:
    assert invoke("cycle", "run", "--period", "2024-01", "--db", db)[0] == 0
    late = tmp_path / "late.csv"
    late.write_text(
        HEADER + "\n" + "\n".join(f"MTR-1,1.0.1.8.0.255,{z(e)},900,1.500,kWh,actual" for e in GAP)
    )
    code, out, err = invoke("ingest", str(late), "--db", db, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["totals"]["superseded"] == len(GAP)
    (rebill,) = report["rebills"]
    assert rebill["account"] == "ACC-1" and rebill["period"] == "2024-01"
    doc = _bill(db)
    assert doc["kind"] == "rebill"
    assert doc["bill_id"] == rebill["rebill"]
    # the same file again changes nothing and rebills nothing
    code, out, _ = invoke("ingest", str(late), "--db", db, "--json")
    assert json.loads(out)["rebills"] == []


def test_vee_run_after_a_rule_change_clears_and_replay_reopens(db: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nclasses:\n  residential:\n    rules: {SPIKE: pass}\n")
    code, out, err = invoke("vee", "run", "--rules", str(rules), "--db", db, "--json")
    assert code == 0, err
    assert json.loads(out)["cleared"] >= 1
    assert [a["status"] for a in _anomalies(db, "--rule", "SPIKE", "--status", "all")] == [
        "cleared"
    ]
    spike = _anomalies(db, "--rule", "SPIKE", "--status", "cleared")[0]
    code, out, err = invoke("anomalies", "replay", str(spike["anomaly_id"]), "--db", db, "--json")
    assert code == 0, err
    assert json.loads(out)["anomalies"] == [{"anomaly_id": spike["anomaly_id"], "status": "open"}]


def test_vee_rules_lists_every_rule(db: str) -> None:
    code, out, _ = invoke("vee", "rules", "--json")
    assert code == 0
    listing = {r["code"]: r for r in json.loads(out)}
    assert len(listing) == 20
    assert listing["SPIKE"]["severity"] == "fail" and listing["GAP"]["severity"] == "warn"
    bad = Path("bad.yaml")
    bad.write_text("version: 1\nclasses:\n  net:\n    rules: {SPIKE: {ratio: five}}\n")
    code, _, err = invoke("vee", "rules", "--rules", str(bad))
    assert code == 2 and "classes.net.rules.SPIKE.ratio" in err
    assert invoke("vee", "run", "--meter", "NOPE", "--db", db)[0] == 2
