"""`meterledger demo`: the simulated cycle is ingested and found to match what was injected."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backends import Databases
from meterledger.cli.app import app
from meterledger.cli.demo import run_demo
from meterledger.core.errors import ConflictError
from meterledger.store import open_store


def test_demo_finds_exactly_what_was_injected(tmp_path: Path) -> None:
    summary = run_demo(
        out_dir=tmp_path,
        db=None,
        meters=12,
        days=8,
        seed=3,
        start=date(2024, 10, 30),
        show_progress=False,
    )
    expected = summary["expected"]
    assert summary["audit"]["ok"] is True
    assert summary["accepted"] == expected["accepted"]
    assert summary["duplicates"] == expected["duplicates"] > 0
    assert summary["superseded"] == expected["superseded"] == 4
    assert summary["conflicts_held_for_review"] == expected["conflicts"] == 3
    assert summary["quarantined"] == expected["quarantined"]
    assert summary["quarantined"]["UNKNOWN_METER"] > 0
    assert summary["matches_injected_faults"] is True
    # every injected VEE fault found by its rule, every gap estimated by the expected method
    faults = summary["vee_faults"]
    assert {f["rule"] for f in faults} >= {"GAP", "SPIKE", "FLAT_LINE", "ZERO_CONSUMPTION"}
    assert all(f["found"] for f in faults)
    assert all(f["estimated"] == f["estimate_expected"] for f in faults)
    vee = summary["vee"]
    assert vee["estimated"] == sum(f["intervals"] for f in faults if f["estimate_expected"])
    # the injected spikes are held out of billing until reviewed
    assert vee["held"] >= sum(f["rule"] == "SPIKE" for f in faults) > 0
    after = summary["after_billing"]
    assert after["late_actuals"]["superseded_estimates"] == after["late_actuals"]["intervals"]
    assert len(after["late_actuals"]["rebills"]) == 1
    # (the held spike edited lies after this short cycle: nothing billed to rebill)
    assert after["edit"] is not None and after["edit"]["old_value_milli"] > 0


def test_demo_is_rerunnable_and_refuses_a_used_store(tmp_path: Path) -> None:
    first = run_demo(
        out_dir=tmp_path,
        db=None,
        meters=5,
        days=3,
        seed=1,
        start=date(2024, 3, 9),
        show_progress=False,
    )
    again = run_demo(
        out_dir=tmp_path,
        db=None,
        meters=5,
        days=3,
        seed=1,
        start=date(2024, 3, 9),
        show_progress=False,
    )
    for one in (first, again):
        # the head-end's batches (and so audit entries) depend on timing; their content not
        for key in ("entries", "batches"):
            one["audit"].pop(key)
        one["vee"].pop("seconds")
        if one["head_end"]:
            for key in ("seconds", "batches"):  # the head-end's batches depend on timing
                one["head_end"]["vee"].pop(key)
    assert {k: v for k, v in first.items() if k != "seconds"} == {
        k: v for k, v in again.items() if k != "seconds"
    }
    with pytest.raises(ConflictError):
        run_demo(
            out_dir=tmp_path / "b",
            db=first["db"],
            meters=5,
            days=3,
            seed=1,
            start=date(2024, 3, 9),
            show_progress=False,
        )


def test_demo_command_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--out", str(tmp_path), "--meters", "4", "--days", "3", "--json"]
    )
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["matches_injected_faults"] is True
    assert summary["audit"]["ok"] is True


def test_demo_on_each_backend_finds_what_was_injected(databases: Databases, tmp_path: Path) -> None:
    """Production runs the same code on PostgreSQL: the demo cycle into an empty store of
    each backend gives the same summary (the database aside)."""
    db = databases.new_url("demo")
    summary = run_demo(
        out_dir=tmp_path,
        db=db,
        meters=6,
        days=4,
        seed=5,
        start=date(2024, 11, 1),
        show_progress=False,
    )
    assert summary["matches_injected_faults"] is True
    assert summary["audit"]["ok"] is True
    reference = run_demo(
        out_dir=tmp_path / "reference",
        db=None,
        meters=6,
        days=4,
        seed=5,
        start=date(2024, 11, 1),
        show_progress=False,
    )
    ignore = {"seconds", "db"}
    for one in (summary, reference):
        assert Path(one["billing"].pop("invoices")).is_dir()
        # The head-end hands meters that finish together to ingest as one batch, so its
        # number of batches (and audit entries) depends on timing; what they hold does not.
        for key in ("entries", "batches"):
            one["audit"].pop(key)
        one["vee"].pop("seconds")
        if one["head_end"]:
            for key in ("seconds", "batches"):  # the head-end's batches depend on timing
                one["head_end"]["vee"].pop(key)
    assert {k: v for k, v in summary.items() if k not in ignore} == {
        k: v for k, v in reference.items() if k not in ignore
    }


def test_demo_bills_every_account_and_writes_invoices(tmp_path: Path) -> None:
    summary = run_demo(
        out_dir=tmp_path,
        db=None,
        meters=5,
        days=3,
        seed=3,
        start=date(2024, 7, 1),
        show_progress=False,
    )
    billing = summary["billing"]
    assert billing["period"] == "2024-07" and billing["cycle_day"] == 1
    assert billing["bills_issued"] == 5 == len(billing["bills"])
    tariffs = {b["kind"]: b["tariff"] for b in billing["bills"]}
    assert tariffs == {"residential": "res-tou-example", "commercial": "com-tou-demand-example"}
    assert sum(Decimal(b["total"]) for b in billing["bills"]) == Decimal(billing["total"])
    files = sorted(p.suffix for p in Path(billing["invoices"]).iterdir())
    assert files == [".html"] * 5 + [".pdf"] * 5
    # Three days of a 31-day cycle: the bills say that most intervals had no readings.
    store = open_store(f"sqlite:///{tmp_path / 'demo.db'}")
    bill = store.current_bill("ACC-00001", "2024-07")
    assert bill is not None
    assert any("intervals have readings" in note for note in json.loads(bill.document)["notes"])
    store.close()


def test_demo_reads_the_last_day_over_dlms_and_goes_on_past_e04_and_e09(tmp_path: Path) -> None:
    """Ten meters: the file drops carry 3 days, the head-end reads day 4 from the simulator
    over loopback TCP (2 of them with HLS-GMAC and suite 0); meter 3 never answers (E04) and
    meter 9 holds keys the head-end was never given (E09). The others' day is complete."""
    summary = run_demo(
        out_dir=tmp_path,
        db=None,
        meters=10,
        days=3,
        seed=4,
        start=date(2024, 3, 8),  # day 4 is 2024-03-11; day 3 the 23-hour 2024-03-10
        show_progress=False,
    )
    head_end = summary["head_end"]
    assert head_end["secured"] == 2 and head_end["meters_read"] == 8
    assert [(f["meter_id"], f["code"]) for f in head_end["failed"]] == [
        ("MTR-00003", "E04"),
        ("MTR-00009", "E09"),
    ]
    assert head_end["intervals_accepted"] == 8 * 96
    assert summary["matches_injected_faults"] is True and summary["audit"]["ok"] is True
    store = open_store(f"sqlite:///{tmp_path / 'demo.db'}")
    try:
        day4 = (1_710_129_600, 1_710_129_600 + 86_400)  # 2024-03-11 local midnight, UTC
        arrays = store.billing_read(*day4)
        counts = {m: len(arrays.for_meter(m)[0]) for m in arrays.meter_ids}
        assert counts["MTR-00001"] == 96 and counts.get("MTR-00003", 0) == 0
        assert counts.get("MTR-00009", 0) == 0
        drift = {r.meter_id for r in store.clock_reads()}
        assert "MTR-00001" in drift and "MTR-00003" not in drift
    finally:
        store.close()
