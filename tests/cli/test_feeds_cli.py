"""``meterledger deadletters list|replay``, ``pause``, ``resume`` and ``status`` on both
backends: JSON contracts, ingest and collect refused while paused, a replay taking effect
exactly once, a failed replay kept open, and a delivery that fails its retries ending up
in the store, where a replay lands it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterledger.cli.app import app
from meterledger.cli.feeds import BreakerRecorder, StoreDeadLetterSink, save_breakers
from meterledger.collect.breaker import BreakerBoard, BreakerSettings
from meterledger.collect.deadletter import DeadLetter, deliver_or_dead_letter
from meterledger.collect.retry import RetryPolicy
from meterledger.ingest.audit import verify
from meterledger.store.base import Store
from support import HEADER, add_meter, row

runner = CliRunner()
PAYLOAD = (
    HEADER
    + "\n"
    + row("2024-03-01T00:15:00+00:00", "1.5")
    + "\n"
    + row("2024-03-01T00:30:00+00:00", "2")
    + "\n"
).encode()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("METERLEDGER_DB", "METERLEDGER_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def cli(store: Store, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--db", store.url])
    return result.exit_code, result.stdout, result.stderr


def dead_letter(store: Store, payload: bytes = PAYLOAD, fmt: str = "csv") -> int:
    sink = StoreDeadLetterSink(store)
    sink.put("dlms", "dlms-collect", payload, fmt, "TransientStoreError: locked", 4)
    return sink.kept[-1]


def test_pause_and_resume_one_feed_with_audit_entries(store: Store, tmp_path: Path) -> None:
    add_meter(store)
    src = tmp_path / "in.csv"
    src.write_bytes(PAYLOAD)
    code, out, _ = cli(store, "pause", "files", "--reason", "bad vendor file", "--json")
    assert code == 0 and json.loads(out) == {
        "feed": "files",
        "paused": True,
        "reason": "bad vendor file",
    }
    code, out, err = cli(store, "ingest", str(src), "--json")
    assert code == 2 and out == ""
    assert "feed files is paused since" in err and "(bad vendor file)" in err
    assert "meterledger resume files" in err
    assert store.count("readings") == 0 and store.count("batches") == 0
    code, out, _ = cli(store, "resume", "files", "--json")
    assert code == 0 and json.loads(out) == {"feed": "files", "paused": False}
    code, out, _ = cli(store, "ingest", str(src), "--no-vee", "--json")
    assert code == 0 and json.loads(out)["totals"]["accepted"] == 2
    kinds = [(r.kind, r.subject) for r in store.audit_rows()]
    assert ("feed.paused", "files") in kinds and ("feed.resumed", "files") in kinds
    assert verify(store).ok


def test_pausing_all_ingestion_stops_ingest_and_collect(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(PAYLOAD)
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("meters:\n  - {meter_id: M1, host: 127.0.0.1, port: 1}\n")
    code, out, _ = cli(store, "pause", "--json")
    assert code == 0 and json.loads(out) == {"feed": "*", "paused": True, "reason": None}
    code, _, err = cli(store, "ingest", str(src))
    assert code == 2 and "all ingestion is paused since" in err
    code, _, err = cli(store, "collect", "--fleet", str(fleet), "--json")
    assert code == 2 and "all ingestion is paused" in err and "meterledger resume`" in err
    assert store.clock_reads() == [] and store.breaker_states() == []  # nothing was read
    assert cli(store, "resume")[0] == 0
    assert not store.feed_paused("dlms")
    assert cli(store, "pause", "dlms", "--reason", "gateway upgrade")[0] == 0
    code, _, err = cli(store, "collect", "--fleet", str(fleet))
    assert code == 2 and "feed dlms is paused" in err and "(gateway upgrade)" in err
    code, _, _ = cli(store, "pause", "no such feed")
    assert code == 2


def test_list_and_replay_exactly_once(store: Store) -> None:
    add_meter(store)
    first = dead_letter(store)
    code, out, _ = cli(store, "deadletters", "list", "--json")
    assert code == 0
    (listed,) = json.loads(out)
    assert listed == {
        "id": first,
        "feed": "dlms",
        "source": "dlms-collect",
        "format": "csv",
        "bytes": len(PAYLOAD),
        "error": "TransientStoreError: locked",
        "attempts": 4,
        "first_failed_at": listed["first_failed_at"],
        "last_failed_at": listed["first_failed_at"],
        "status": "open",
        "replayed_batch": None,
    }
    code, out, _ = cli(store, "deadletters", "replay", "--json")
    assert code == 0
    (done,) = json.loads(out)
    batch = done["batch"]
    assert isinstance(batch, int)
    assert done == {
        "id": first,
        "outcome": "replayed",
        "batch": batch,
        "accepted": 2,
        "duplicates": 0,
        "quarantined": 0,
        "error": None,
    }
    assert store.count("readings") == 2
    held = store.get_dead_letter(first)
    assert held is not None and (held.status, held.replayed_batch) == ("replayed", batch)
    batches = store.count("batches")
    # a second replay of the same dead letter changes nothing
    code, out, _ = cli(store, "deadletters", "replay", str(first), "--json")
    assert code == 0 and json.loads(out) == [
        {
            "id": first,
            "outcome": "skipped",
            "batch": batch,
            "accepted": 0,
            "duplicates": 0,
            "quarantined": 0,
            "error": None,
        }
    ]
    assert (store.count("readings"), store.count("batches")) == (2, batches)
    # the same bytes dead-lettered twice: the readings are stored once
    second = dead_letter(store)
    code, out, _ = cli(store, "deadletters", "replay", str(second), "--json")
    assert code == 0
    assert [(r["outcome"], r["accepted"], r["duplicates"]) for r in json.loads(out)] == [
        ("replayed", 0, 2)
    ]
    assert store.count("readings") == 2
    code, out, _ = cli(store, "deadletters", "list", "--status", "replayed", "--json")
    assert [d["id"] for d in json.loads(out)] == [first, second]
    assert cli(store, "deadletters", "list", "--json")[1].strip() == "[]"
    assert [r.kind for r in store.audit_rows()].count("deadletter.replayed") == 2
    assert verify(store).ok


def test_a_failed_replay_stays_open_with_the_new_error(store: Store) -> None:
    bad = dead_letter(store, b"this is not green button xml", fmt="greenbutton")
    code, out, _ = cli(store, "deadletters", "replay", "--feed", "dlms", "--json")
    assert code == 1
    (done,) = json.loads(out)
    assert done["outcome"] == "failed" and done["error"]
    held = store.get_dead_letter(bad)
    assert held is not None
    assert (held.status, held.attempts, held.error) == ("open", 5, done["error"])
    assert held.payload == b"this is not green button xml"
    code, _, err = cli(store, "deadletters", "replay", str(bad + 7))
    assert code == 2 and f"no dead letter {bad + 7}" in err


def test_a_delivery_failing_its_retries_is_kept_and_replayed(store: Store) -> None:
    add_meter(store)
    tries: list[bytes] = []

    async def handoff(delivery: DeadLetter) -> None:
        tries.append(delivery.payload)
        raise OSError("store unreachable")

    async def no_wait(seconds: float) -> None:
        del seconds

    sink = StoreDeadLetterSink(store)
    delivery = DeadLetter("dlms", "dlms-collect", PAYLOAD, "csv")
    outcome = asyncio.run(
        deliver_or_dead_letter(handoff, sink, RetryPolicy(3, 0, 0), delivery, sleep=no_wait)
    )
    assert outcome.dead_lettered and len(tries) == 3
    (kept,) = store.list_dead_letters()
    assert (kept.payload, kept.attempts, kept.error) == (PAYLOAD, 3, "OSError: store unreachable")
    code, out, _ = cli(store, "deadletters", "replay", "--json")
    assert code == 0 and json.loads(out)[0]["accepted"] == 2
    assert store.count("readings") == 2


def test_status_json(store: Store) -> None:
    code, out, _ = cli(store, "status", "--json")
    assert code == 0 and json.loads(out) == {
        "schema_version": 8,
        "paused": [],
        "circuit_paused": [],
        "breakers": [],
        "open_dead_letters": {},
        "vee_pending_batches": 0,
        "open_anomalies": 0,
    }
    add_meter(store)
    replayed = dead_letter(store)
    dead_letter(store)
    assert cli(store, "deadletters", "replay", str(replayed))[0] == 0
    cli(store, "pause", "mqtt", "--reason", "broker maintenance")
    now = [100.0]
    board = BreakerBoard(threshold=1000, cooldown=30, clock=lambda: now[0], min_calls=4)
    for ok in (True, True, False, False):  # 2 of 4 failed: open
        breaker = board.get("10.0.0.1:4059")
        assert breaker.allow()
        (breaker.record_success if ok else breaker.record_failure)()
    board.get("dcu-2").record_success()
    save_breakers(store, board.readings())
    code, out, _ = cli(store, "status", "--json")
    report = json.loads(out)
    (paused,) = report.pop("paused")
    assert (paused["feed"], paused["reason"]) == ("mqtt", "broker maintenance")
    breakers = report.pop("breakers")
    assert [
        (b["endpoint"], b["state"], b["failure_rate"], b["calls_in_window"], b["opened"])
        for b in breakers
    ] == [("10.0.0.1:4059", "open", 0.5, 4, 1), ("dcu-2", "closed", 0.0, 1, 0)]
    assert breakers[0]["opened_at"] is not None and breakers[1]["opened_at"] is None
    assert {b["feed"] for b in breakers} == {"dlms"}
    assert report.pop("circuit_paused") == ["dlms"]  # an open circuit pauses its feed
    assert report == {
        "schema_version": 8,
        "open_dead_letters": {"dlms": 1},
        "vee_pending_batches": 1,  # the replayed batch, not checked yet
        "open_anomalies": 0,
    }
    code, out, _ = cli(store, "status")
    assert code == 0
    assert "paused feed mqtt" in out and "10.0.0.1:4059" in out and "dlms 1" in out


def test_breaker_recorder_saves_each_change_as_it_happens(store: Store) -> None:
    now = [100.0]
    recorder = BreakerRecorder(store)
    board = BreakerBoard.of(
        BreakerSettings(threshold=2, cooldown=5),
        feed="vendor",
        clock=lambda: now[0],
        listener=recorder,
    )
    breaker = board.get("127.0.0.1:8000")
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    report = json.loads(cli(store, "status", "--json")[1])
    assert report["circuit_paused"] == ["vendor"]
    assert [(b["endpoint"], b["feed"], b["state"]) for b in report["breakers"]] == [
        ("vendor/127.0.0.1:8000", "vendor", "open")
    ]
    assert "paused feed vendor: a circuit breaker of it is open" in cli(store, "status")[1]
    now[0] += 5
    assert breaker.allow()
    breaker.record_success()
    report = json.loads(cli(store, "status", "--json")[1])
    assert report["circuit_paused"] == [] and report["breakers"][0]["state"] == "closed"
    assert [e.state.value for e in recorder.events] == ["open", "half-open", "closed"]


def test_an_open_breaker_past_its_cool_down_is_half_open_in_status(store: Store) -> None:
    """A collector killed while its circuit was open saved it open; once the cool-down has
    passed, status shows it half-open (the next call is a probe) and the feed not held."""
    now = [100.0]
    board = BreakerBoard.of(BreakerSettings(threshold=1, cooldown=0.3), clock=lambda: now[0])
    breaker = board.get("dlms-gw")
    assert breaker.allow()
    breaker.record_failure()
    (saved,) = save_breakers(store, board.readings())
    assert saved.state == "open" and saved.retry_at is not None
    report = json.loads(cli(store, "status", "--json")[1])
    assert report["circuit_paused"] == ["dlms"] and report["breakers"][0]["state"] == "open"
    assert report["breakers"][0]["retry_at"] == saved.retry_at
    time.sleep(0.4)  # the wall clock passes retry_at; nothing saved it again
    report = json.loads(cli(store, "status", "--json")[1])
    assert report["circuit_paused"] == [] and report["breakers"][0]["state"] == "half-open"
