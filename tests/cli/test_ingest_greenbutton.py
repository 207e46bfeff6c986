"""Green Button files through the whole pipeline and the CLI: real exports and DST quirks.

Each test runs on both backends (``db_url``)."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

import support
from meterledger.cli.app import app

runner = CliRunner()
REFERENCE = support.reference_dir("greenbutton")
DATA = Path(__file__).resolve().parents[1] / "data" / "greenbutton"


def run(*args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@support.needs_reference(REFERENCE)
def test_coastal_year_is_ingested_exactly_once(tmp_path: Path, db_url: str) -> None:
    assert REFERENCE is not None
    source = REFERENCE / "Coastal_Multi_Family_Jan_1_2011_to_Jan_1_2012_RetailCustomer_5.xml.gz"
    run("meters", "add", "COASTAL-5", "--tz", "America/Los_Angeles", "--db", db_url)
    first = run("ingest", str(source), "--meter-id", "COASTAL-5", "--db", db_url)["totals"]
    assert (first["accepted"], first["quarantined"]) == (8760, 0)
    again = run("ingest", str(source), "--meter-id", "COASTAL-5", "--db", db_url)["totals"]
    assert (again["accepted"], again["duplicates"]) == (0, 8760)
    out = tmp_path / "coastal.csv"
    result = runner.invoke(
        app,
        [
            "readings",
            "export",
            "--meter",
            "COASTAL-5",
            "--from",
            "2011-01-01T00:00:00Z",
            "--to",
            "2012-01-02T00:00:00Z",
            "--out",
            str(out),
            "--db",
            db_url,
        ],
    )
    assert result.exit_code == 0
    with out.open() as handle:
        stored = sum(Decimal(r["value"]) for r in csv.DictReader(handle))
    with (REFERENCE / "gba_sample_coastal_multifamily_2011_hourly.csv").open() as handle:
        published = sum(Decimal(r["kwh_delivered"]) for r in csv.DictReader(handle))
    assert stored == published  # exported in kWh, exact to the last digit
    assert run("audit", "verify", "--db", db_url)["ok"] is True


def test_dst_fallback_sample_keeps_both_folded_hours_and_invents_no_missing_ones(
    db_url: str,
) -> None:
    run("meters", "add", "HOME-1", "--tz", "America/New_York", "--db", db_url)
    totals = run(
        "ingest",
        str(DATA / "dst_fallback_sample.xml"),
        "--meter-id",
        "HOME-1",
        "--no-vee",
        "--db",
        db_url,
    )["totals"]
    assert totals["quarantined"] == 0

    def exported() -> list[dict[str, str]]:
        result = runner.invoke(
            app,
            [
                "readings",
                "export",
                "--meter",
                "HOME-1",
                "--from",
                "2023-11-05T04:00:00Z",
                "--to",
                "2023-11-06T05:00:00Z",
                "--channel",
                "1.0.1.8.0.255",
                "--format",
                "jsonl",
                "--db",
                db_url,
            ],
        )
        return [json.loads(line) for line in result.stdout.splitlines()]

    ends = [r["interval_end"] for r in exported()]
    assert "2023-11-05T06:00:00+00:00" in ends and "2023-11-05T07:00:00+00:00" in ends
    assert len(ends) == len(set(ends)) == 23  # 25 local hours, two missing, none invented
    # VEE then estimates the two missing hours, each flagged with its method
    assert run("vee", "run", "--meter", "HOME-1", "--db", db_url)["estimated"] == 2
    rows = exported()
    assert len(rows) == 25
    added = [r for r in rows if r["interval_end"] not in ends]
    assert len(added) == 2
    assert all(r["quality"].startswith("estimated:") for r in added)


def test_repeated_start_in_a_buggy_export_is_held_not_guessed(tmp_path: Path, db_url: str) -> None:
    sample = (DATA / "dst_fallback_sample.xml").read_text()
    # a buggy exporter writes the second 01:00 local hour with the first one's start
    buggy = sample.replace(
        "<espi:start>1699164000</espi:start>", "<espi:start>1699160400</espi:start>", 1
    )
    assert buggy != sample
    path = tmp_path / "buggy.xml"
    path.write_text(buggy)
    run("meters", "add", "HOME-1", "--tz", "America/New_York", "--db", db_url)
    totals = run("ingest", str(path), "--meter-id", "HOME-1", "--db", db_url)["totals"]
    assert totals["reasons"] == {"DUPLICATE_KEY_CONFLICT": 2}
    held = run("quarantine", "list", "--db", db_url)
    assert {r["interval_end"] for r in held} == {"2023-11-05T06:00:00+00:00"}
