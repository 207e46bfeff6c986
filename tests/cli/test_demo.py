"""`meterledger demo`: the simulated cycle is ingested and found to match what was injected."""

from __future__ import annotations

import itertools
import json
import shutil
import sqlite3
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from backends import Databases
from brokers import free_port
from meterledger.cli.app import app
from meterledger.cli.demo import run_demo
from meterledger.cli.demo_feeds import FeedsOptions, share_fleet
from meterledger.cli.feeds import status_report
from meterledger.core.errors import ConflictError
from meterledger.store import open_store


def timeless(summary: dict[str, Any]) -> None:
    """Drop what depends on timing from a demo summary. The head-end hands meters that
    finish together to ingest as one batch, so its number of batches (and audit entries)
    depends on timing, what they hold does not; so do the feeds' seconds, the vendor's
    calls during its outage and its breaker's events."""
    for key in ("entries", "batches"):
        summary["audit"].pop(key)
    summary["vee"].pop("seconds")
    if summary["head_end"]:
        for key in ("seconds", "batches"):
            summary["head_end"]["vee"].pop(key)
    if summary["feeds"]:
        for key in ("seconds", "breaker_events"):
            summary["feeds"].pop(key)
        for key in ("calls", "failed_calls"):
            summary["feeds"].get("vendor", {}).pop(key, None)


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
        timeless(one)
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
        timeless(one)
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
        feeds=FeedsOptions(enabled=False),
    )
    assert summary["feeds"] is None
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


def test_share_fleet_keeps_the_failing_and_secured_meters_on_dlms() -> None:
    shares = share_fleet(10)
    assert shares == {
        "dlms": [0, 2, 5, 8, 9],  # 2 never answers, 8 has unknown keys, 8-9 are secured
        "zigbee": [1, 6],
        "vendor": [3, 7],
        "mqtt": [4],
    }
    assert share_fleet(10, mqtt=False)["mqtt"] == []
    assert sorted(i for s in share_fleet(50).values() for i in s) == list(range(50))
    assert {k: len(v) for k, v in share_fleet(50).items()} == {
        "dlms": 21,  # 10 dealt, meter 2 (silent) and the 10 secured (48 among them)
        "zigbee": 10,
        "vendor": 10,
        "mqtt": 9,
    }


def test_demo_reads_the_last_day_from_every_kind_of_source_at_once(tmp_path: Path) -> None:
    """DLMS, Zigbee behind a gateway, the vendor REST API and MQTT read day 4 at once; the
    vendor API is down for its first 1.5 s, so its breaker opens (an ERROR line), the poll
    pauses and probes, and the breaker closes once a probe succeeds. Every meter but the two
    failing on purpose has its whole day, each interval once."""
    summary = run_demo(
        out_dir=tmp_path,
        db=None,
        meters=10,
        days=3,
        seed=4,
        start=date(2024, 3, 8),
        show_progress=False,
        feeds=FeedsOptions(outage_seconds=1.5, cooldown=0.5),
    )
    feeds = summary["feeds"]
    assert feeds["sources"] == {"dlms": 5, "zigbee": 2, "vendor": 2, "mqtt": 1}
    head_end = summary["head_end"]
    assert head_end["meters"] == 5 and head_end["meters_read"] == 3
    assert [(f["meter_id"], f["code"]) for f in head_end["failed"]] == [
        ("MTR-00003", "E04"),
        ("MTR-00009", "E09"),
    ]
    assert head_end["intervals_accepted"] == 3 * 96
    assert feeds["zigbee"]["meters_read"] == 2 and feeds["zigbee"]["failed"] == []
    assert feeds["zigbee"]["intervals_accepted"] == 2 * 96
    assert feeds["vendor"]["intervals_accepted"] == 2 * 96 and feeds["vendor"]["failed_calls"] > 0
    assert feeds["mqtt"]["intervals_accepted"] == 96
    assert feeds["mqtt"]["messages_acked"] == feeds["mqtt"]["messages_published"] == 1
    # the breaker's story: opened, probed while the outage lasted, closed when it ended
    states = [e["state"] for e in feeds["breaker_events"]]
    assert states[0] == "open" and states[-1] == "closed"
    assert all(a != b for a, b in itertools.pairwise(states))
    assert {e["endpoint"] for e in feeds["breaker_events"]} == {
        feeds["breaker_events"][0]["endpoint"]
    }
    assert feeds["breaker_events"][0]["endpoint"].startswith("vendor/127.0.0.1:")
    assert summary["matches_injected_faults"] is True and summary["audit"]["ok"] is True
    store = open_store(f"sqlite:///{tmp_path / 'demo.db'}")
    try:
        (breaker,) = status_report(store)["breakers"]
        assert (breaker["feed"], breaker["state"]) == ("vendor", "closed")
        assert breaker["opened"] == states.count("open")
        day4 = (1_710_129_600, 1_710_129_600 + 86_400)  # 2024-03-11 local midnight, UTC
        arrays = store.billing_read(*day4)
        counts = {m: len(arrays.for_meter(m)[0]) for m in arrays.meter_ids}
        assert counts == {f"MTR-{i:05d}": 0 if i in (3, 9) else 96 for i in range(1, 11)}
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "demo.db") as db:  # which feed stored each interval
        sources = dict(
            db.execute(
                "SELECT b.source, count(*) FROM readings r JOIN batches b USING (batch_id)"
                " WHERE r.interval_end > ? AND r.interval_end <= ? GROUP BY b.source",
                day4,
            ).fetchall()
        )
    assert sources["zigbee"] == 2 * 96 and sources["vendor:vendor"] == 2 * 96
    assert sources["dlms-collect"] == 3 * 96 and sum(sources.values()) == 8 * 96


def demo_without_broker_at(tmp_path: Path, port: int) -> dict[str, Any]:
    """A small demo whose MQTT broker should be on ``port``, where nothing listens; the
    vendor API without an outage."""
    return run_demo(
        out_dir=tmp_path,
        db=None,
        meters=10,
        days=2,
        seed=2,
        start=date(2024, 6, 3),
        show_progress=False,
        feeds=FeedsOptions(mqtt_port=port, outage_seconds=0.0),
    )


def test_demo_starts_a_private_broker_when_none_listens(tmp_path: Path) -> None:
    if shutil.which("mosquitto") is None:
        pytest.fail("mosquitto is not installed (the demo's fallback broker)")
    port = free_port()  # nothing listens here
    summary = demo_without_broker_at(tmp_path, port)
    mqtt = summary["feeds"]["mqtt"]
    assert mqtt["broker"] != f"127.0.0.1:{port}" and mqtt["broker"].startswith("127.0.0.1:")
    assert mqtt["meters"] == 1 and mqtt["intervals_accepted"] == 96
    assert summary["feeds"]["breaker_events"] == []  # no outage: the breaker never opened
    assert summary["audit"]["ok"] is True


def test_demo_without_any_broker_reads_the_mqtt_share_over_dlms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no mosquitto to start
    summary = demo_without_broker_at(tmp_path, free_port())
    feeds = summary["feeds"]
    assert feeds["sources"] == {"dlms": 6, "zigbee": 2, "vendor": 2, "mqtt": 0}
    assert "no MQTT broker" in feeds["mqtt"]["skipped"]
    assert summary["head_end"]["meters"] == 6 and summary["head_end"]["meters_read"] == 4
