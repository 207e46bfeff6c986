"""The billing commands: ``bill`` on load files, and tariffs → accounts → cycle run →
late data → cycle rebill → bills → invoices on a store (each backend)."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backends import Databases
from meterledger.cli.app import app
from support import HEADER, reference_dir

runner = CliRunner()
TARIFFS = Path(__file__).resolve().parents[2] / "src" / "meterledger" / "billing" / "tariffs"
RESIDENTIAL = TARIFFS / "residential_tou.yaml"
COMMERCIAL = TARIFFS / "commercial_tou_demand.yaml"
MONTH_KEYS = {
    "month", "energy", "demand_flat", "demand_tou", "fixed", "minimum", "nem_credit", "total",
    "kwh_delivered", "kwh_received", "peak_kw",
}  # fmt: skip


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def ref(kind: str, name: str) -> Path:
    """A reference file; the reference data must be there (CI clones it beside the repo)."""
    folder = reference_dir(kind)
    assert folder is not None, "shared/reference not found beside the repository"
    return folder / name


def green_button() -> Path:
    return ref("greenbutton", "gba_sample_coastal_multifamily_2011_hourly.csv")


# -- meterledger bill ---------------------------------------------------------------------


def test_bill_json_contract_on_the_green_button_year(tmp_path: Path) -> None:
    # The file is Pacific time: bill it under the residential tariff moved to that zone.
    tariff = tmp_path / "res_pacific.yaml"
    tariff.write_text(RESIDENTIAL.read_text().replace("America/New_York", "America/Los_Angeles"))
    code, out, _ = invoke("bill", "--tariff", str(tariff), "--load", str(green_button()), "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"months", "annual_total"}
    months = data["months"]
    assert [m["month"] for m in months] == [f"2011-{m:02d}" for m in range(1, 13)]
    assert all(set(m) == MONTH_KEYS for m in months)
    # Every amount is a decimal string with cents; the components plus the tariff's one tax
    # (5.5 % of all charges, rounded half-up) add up to the total.
    for m in months:
        keys = ("energy", "demand_flat", "demand_tou", "fixed", "minimum", "nem_credit")
        assert all(Decimal(m[k]).as_tuple().exponent == -2 for k in (*keys, "total"))
        subtotal = sum(Decimal(m[k]) for k in keys)
        tax = (subtotal * Decimal("0.055")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        assert subtotal + tax == Decimal(m["total"])
    assert sum(Decimal(m["total"]) for m in months) == Decimal(data["annual_total"])
    # The file's energy, exactly (4425.305 kWh in 8760 hourly values).
    assert sum(Decimal(m["kwh_delivered"]) for m in months) == Decimal("4425.305")
    assert max(Decimal(m["peak_kw"]) for m in months) == Decimal("0.944")


def test_bill_prorates_the_months_a_file_covers_in_part() -> None:
    """The Pacific-time year under the New York tariff: its last three hours fall on
    2012-01-01 in New York, a month billed for that one day (the base charge is per day:
    1 day × $0.394 = $0.39), with a note; --tz cannot move a YAML tariff's zone."""
    code, out, err = invoke("bill", "--tariff", str(RESIDENTIAL), "--load", str(green_button()),
                            "--tz", "America/Los_Angeles", "--json")  # fmt: skip
    assert code == 0
    months = json.loads(out)["months"]
    assert [m["month"] for m in months][-2:] == ["2011-12", "2012-01"]
    last = months[-1]
    assert last["fixed"] == "0.39"
    assert Decimal(last["kwh_delivered"]) == Decimal("1.687")
    assert "bills in its own zone, America/New_York" in err
    code, out, err = invoke("bill", "--tariff", str(RESIDENTIAL), "--load", str(green_button()))
    assert "2012-01" in err and "1 of 31 days" in err


def test_bill_urdb_with_zone_and_metering_override(tmp_path: Path) -> None:
    rate = ref("urdb", "pysam_tests_urdbv7.json")
    load = tmp_path / "load.csv"
    rows = ["timestamp,kwh_delivered,kwh_received"]
    for hour in range(24 * 31):
        day, h = divmod(hour, 24)
        rows.append(f"2018-01-{day + 1:02d}T{h:02d}:00:00,1.5,{'2.0' if 10 <= h < 14 else '0'}")
    load.write_text("\n".join(rows) + "\n")
    args = ["bill", "--tariff", str(rate), "--load", str(load), "--tz", "America/Denver"]
    code, out, _ = invoke(*args, "--json")
    assert code == 0
    nem = json.loads(out)["months"][0]
    assert nem["kwh_delivered"] == "1116" and nem["kwh_received"] == "248"
    code, out, _ = invoke(*args, "--metering", "buy_all_sell_all", "--json")
    sell_all = json.loads(out)["months"][0]
    # Buying everything costs more energy than netting it first.
    assert Decimal(sell_all["energy"]) > Decimal(nem["energy"])


def test_bill_without_zone_warns_for_urdb(tmp_path: Path) -> None:
    load = tmp_path / "load.csv"
    load.write_text("timestamp,kwh_delivered\n2018-01-01T00:00:00Z,1\n2018-01-01T01:00:00Z,1\n")
    rate = ref("urdb", "pysam_tests_urdbv7.json")
    code, _, err = invoke("bill", "--tariff", str(rate), "--load", str(load))
    assert code == 0 and "no time zone" in err


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("timestamp,kwh\n", [], "header"),
        ("timestamp,kwh_delivered\n2024-01-01T00:00:00,1\n", [], "--tz"),
        ("timestamp,kwh_delivered\n2024-01-01T00:00:00Z,abc\n", [], "not a number"),
        (
            "timestamp,kwh_delivered\n2024-01-01T00:00:00Z,1\n",
            ["--metering", "gross"],
            "--metering",
        ),
    ],
)
def test_bill_input_errors_exit_2(
    tmp_path: Path, content: str, extra: list[str], message: str
) -> None:
    load = tmp_path / "load.csv"
    load.write_text(content)
    code, _, err = invoke("bill", "--tariff", str(RESIDENTIAL), "--load", str(load), *extra)
    assert code == 2 and message in err


def test_bill_refuses_an_unsupported_urdb_rate(tmp_path: Path) -> None:
    load = tmp_path / "load.csv"
    load.write_text("timestamp,kwh_delivered\n2018-01-01T00:00:00Z,1\n")
    rate = ref("urdb", "sce_tou8_optionb_56bbe2205457a34d2a8b456a.json")
    code, _, err = invoke("bill", "--tariff", str(rate), "--load", str(load), "--tz", "UTC")
    assert code == 2 and "demandreactivepowercharge" in err


# -- the store path ------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path, databases: Databases, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    for name in ("METERLEDGER_DB", "METERLEDGER_CONFIG", "METERLEDGER_DEFAULT_TZ"):
        monkeypatch.delenv(name, raising=False)
    return databases.new_url("billing")


def _readings(path: Path, meter: str, days: int, kwh: str, start_day: int = 1) -> Path:
    """15-minute readings of ``kwh`` each, for January 2024 days, in America/New_York."""
    lines = [HEADER]
    for day in range(start_day, start_day + days):
        for q in range(96):
            hour, quarter = divmod(q + 1, 4)
            end = f"2024-01-{day:02d}T{hour:02d}:{quarter * 15:02d}:00-05:00"
            if hour == 24:
                end = (
                    f"2024-01-{day + 1:02d}T00:00:00-05:00"
                    if day < 31
                    else ("2024-02-01T00:00:00-05:00")
                )
            lines.append(f"{meter},1.0.1.8.0.255,{end},900,{kwh},kWh,actual")
    path.write_text("\n".join(lines) + "\n")
    return path


def _setup(db: str, tmp_path: Path) -> None:
    for path in (RESIDENTIAL, COMMERCIAL):
        code, out, _ = invoke("tariffs", "add", str(path), "--db", db, "--json")
        assert code == 0 and json.loads(out)["added"] is True
    for meter, account in (("MTR-1", "ACC-1"), ("MTR-2", "ACC-2")):
        code, _, _ = invoke(
            "meters",
            "add",
            meter,
            "--service",
            "electric",
            "--tz",
            "America/New_York",
            "--account",
            account,
            "--db",
            db,
        )
        assert code == 0
    code, _, _ = invoke(
        "accounts",
        "add",
        "ACC-1",
        "--tariff",
        "res-tou-example",
        "--tz",
        "America/New_York",
        "--db",
        db,
    )
    assert code == 0
    code, _, _ = invoke(
        "accounts",
        "add",
        "ACC-2",
        "--tariff",
        "com-tou-demand-example",
        "--tz",
        "America/New_York",
        "--move-in",
        "2024-01-11",
        "--db",
        db,
    )
    assert code == 0
    for meter in ("MTR-1", "MTR-2"):
        code, _, _ = invoke(
            "ingest", str(_readings(tmp_path / f"{meter}.csv", meter, 31, "0.25")), "--db", db
        )
        assert code == 0


def _audit_entries(db: str) -> int:
    code, out, _ = invoke("audit", "verify", "--db", db, "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["ok"] is True
    return int(report["entries"])


def test_tariffs_are_immutable_and_accounts_need_a_tariff(db: str, tmp_path: Path) -> None:
    assert invoke("tariffs", "add", str(RESIDENTIAL), "--db", db)[0] == 0
    code, out, _ = invoke("tariffs", "add", str(RESIDENTIAL), "--db", db, "--json")
    assert code == 0 and json.loads(out)["added"] is False
    changed = tmp_path / "res.yaml"
    changed.write_text(RESIDENTIAL.read_text().replace("amount: 0.394", "amount: 0.5"))
    code, _, err = invoke("tariffs", "add", str(changed), "--db", db)
    assert code == 2 and "res-tou-example" in err
    code, _, err = invoke("accounts", "add", "A", "--tariff", "nope", "--db", db)
    assert code == 2 and "nope" in err
    code, out, _ = invoke("tariffs", "list", "--db", db, "--json")
    assert [t["tariff_id"] for t in json.loads(out)] == ["res-tou-example"]


def test_cycle_run_is_idempotent_then_rebills_late_data(db: str, tmp_path: Path) -> None:
    _setup(db, tmp_path)
    code, out, _ = invoke("cycle", "run", "--period", "2024-01", "--db", db, "--json")
    assert code == 0
    first = json.loads(out)
    assert len(first["issued"]) == 2 and first["unchanged"] == []
    entries = _audit_entries(db)

    # Same data: the same bills, nothing written.
    code, out, _ = invoke("cycle", "run", "--period", "2024-01", "--db", db, "--json")
    again = json.loads(out)
    assert again["issued"] == [] and sorted(again["unchanged"]) == ["ACC-1", "ACC-2"]
    assert {b["hash"] for b in again["bills"]} == {b["hash"] for b in first["bills"]}
    assert _audit_entries(db) == entries

    # The move-in on the 11th prorates the commercial customer charge: 21 of 31 days.
    code, out, _ = invoke("bills", "list", "--account", "ACC-2", "--db", db, "--json")
    (bill,) = json.loads(out)
    code, out, _ = invoke("bills", "show", str(bill["bill_id"]), "--db", db, "--json")
    doc = json.loads(out)["document"]
    fixed = next(line for line in doc["lines"] if line["code"] == "fixed")
    assert fixed["prorate"] == [21, 31]
    assert fixed["amount"] == "125.59"  # 185.40 × 21/31 = 125.594… → 125.59
    assert doc["determinants"]["service_days"] == 21
    assert Decimal(doc["determinants"]["kwh_delivered"]) == Decimal("0.25") * 96 * 21

    # A late reading for a gap-free cycle is a revision held for review; accept it.
    late = tmp_path / "late.csv"
    late.write_text(
        f"{HEADER}\nMTR-1,1.0.1.8.0.255,2024-01-20T17:00:00-05:00,900,2.25,kWh,actual\n"
    )
    invoke("ingest", str(late), "--db", db)
    code, out, _ = invoke("quarantine", "list", "--db", db, "--json")
    (held,) = [q for q in json.loads(out) if q["reasons"] == ["REVISION_CONFLICT"]]
    assert invoke("quarantine", "release", str(held["q_id"]), "--db", db)[0] == 0
    assert invoke("quarantine", "replay", str(held["q_id"]), "--db", db)[0] == 0

    code, out, _ = invoke("cycle", "run", "--period", "2024-01", "--db", db, "--json")
    report = json.loads(out)
    assert report["changed_need_rebill"] == ["ACC-1"] and report["issued"] == []

    code, out, _ = invoke("cycle", "rebill", "--period", "2024-01", "--db", db, "--json")
    (pair,) = json.loads(out)["rebilled"]
    code, out, _ = invoke("bills", "list", "--account", "ACC-1", "--db", db, "--json")
    ledger = json.loads(out)
    assert [b["kind"] for b in ledger] == ["bill", "cancel", "rebill"]
    original, cancel, rebill = ledger
    assert cancel["bill_id"] == pair["cancel"] and rebill["bill_id"] == pair["rebill"]
    assert cancel["replaces"] == original["bill_id"] == rebill["replaces"]
    assert Decimal(cancel["total"]) == -Decimal(original["total"])
    code, out, _ = invoke("bills", "show", str(cancel["bill_id"]), "--db", db, "--json")
    cancel_lines = json.loads(out)["document"]["lines"]
    assert sum(Decimal(ln["amount"]) for ln in cancel_lines) == Decimal(cancel["total"])
    for ln in cancel_lines:  # each reversed line still reads quantity × rate = amount
        assert Decimal(ln["quantity"]) <= 0 and Decimal(ln["amount"]) <= 0
        assert ln["explanation"].lstrip("$").startswith(ln["quantity"])
        assert ln["explanation"].endswith(f"= ${ln['amount']}")
    code, out, _ = invoke("bills", "show", str(rebill["bill_id"]), "--db", db, "--json")
    delta = json.loads(out)["document"]["rebill"]["delta"]
    # 2.25 kWh replaced 0.25 kWh at 17:00 on a Saturday (winter mid-peak from 16:00).
    assert Decimal(delta["kwh_delivered"]) == Decimal("2")
    assert Decimal(delta["total"]) == Decimal(rebill["total"]) - Decimal(original["total"])
    assert Decimal(delta["total"]) > 0
    # Each ledger row is an entry on the chain, and the chain verifies.
    assert all(b["audit_seq"] for b in ledger)
    assert _audit_entries(db) >= entries + 2

    # Rebilling again finds nothing to do.
    code, out, _ = invoke("cycle", "rebill", "--period", "2024-01", "--db", db, "--json")
    assert json.loads(out)["rebilled"] == []

    out_dir = tmp_path / "invoices"
    code, out, _ = invoke(
        "invoices", "render", "--out", str(out_dir), "--account", "ACC-1", "--db", db, "--json"
    )
    written = json.loads(out)
    assert code == 0 and len(written) == 3
    for item in written:
        assert Path(item["pdf"]).read_bytes().startswith(b"%PDF-")
    cancel_html = Path(next(w["html"] for w in written if w["bill_id"] == cancel["bill_id"]))
    assert "CANCEL" in cancel_html.read_text().upper()
    rebill_html = Path(next(w["html"] for w in written if w["bill_id"] == rebill["bill_id"]))
    page = rebill_html.read_text()
    assert f"Changes from bill #{original['bill_id']}" in page
    assert "kWh delivered 2," in page  # the delta of the late reading


def test_cycle_run_needs_accounts_and_a_valid_period(db: str, tmp_path: Path) -> None:
    assert invoke("init", "--db", db)[0] == 0
    code, _, err = invoke("cycle", "run", "--period", "2024-01", "--db", db)
    assert code == 2 and "accounts add" in err
    _setup(db, tmp_path)
    code, _, err = invoke("cycle", "run", "--period", "2024-13", "--db", db)
    assert code == 2 and "YYYY-MM" in err


def test_open_cycles_and_cycles_without_readings_are_not_billed(db: str, tmp_path: Path) -> None:
    _setup(db, tmp_path)
    code, out, _ = invoke("cycle", "run", "--period", "2030-01", "--db", db, "--json")
    report = json.loads(out)
    assert code == 0 and report["issued"] == []
    assert sorted(report["open"]) == ["ACC-1", "ACC-2"]
    code, out, _ = invoke("cycle", "run", "--period", "2023-06", "--db", db, "--json")
    report = json.loads(out)
    assert report["issued"] == [] and report["no_readings"] == ["ACC-1"]
    assert report["not_in_service"] == ["ACC-2"]  # moved in on 2024-01-11
    code, out, _ = invoke("bills", "list", "--db", db, "--json")
    assert json.loads(out) == []


def test_an_account_takes_its_tariffs_zone_by_default(db: str) -> None:
    assert invoke("tariffs", "add", str(RESIDENTIAL), "--db", db)[0] == 0
    assert invoke("accounts", "add", "A", "--tariff", "res-tou-example", "--db", db)[0] == 0
    code, _, err = invoke("accounts", "add", "B", "--tariff", "res-tou-example", "--tz",
                          "America/Chicago", "--db", db)  # fmt: skip
    assert code == 0 and "tariff's periods in America/New_York" in err
    code, out, _ = invoke("accounts", "list", "--db", db, "--json")
    zones = {a["account_id"]: a["timezone"] for a in json.loads(out)}
    assert zones == {"A": "America/New_York", "B": "America/Chicago"}
