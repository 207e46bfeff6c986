"""Quarantine review: list, show, release (with fixes) and replay, by the Python API and the
CLI; each decision on the audit chain, which still verifies."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import support
from meterledger.cli.app import app
from meterledger.core.errors import ConflictError, InputError, NotFoundError
from meterledger.core.reading import Quality
from meterledger.ingest import review
from meterledger.ingest.audit import verify
from meterledger.ingest.pipeline import IngestResult
from meterledger.store import open_store
from meterledger.store.base import Store

END = "2024-06-01T00:15:00+00:00"
END_EPOCH = 1_717_200_900
OBIS = "1.0.1.8.0.255"

Ingest = Callable[..., IngestResult]
WriteCsv = Callable[..., Path]


def kinds(store: Store) -> list[str]:
    return [row.kind for row in store.audit_rows()]


def assert_verified(store: Store) -> None:
    report = verify(store)
    assert report.ok, report.as_dict()


def billed(store: Store, meter_id: str = "M1") -> dict[int, tuple[int, int]]:
    rows = store.all_readings().filter(pl.col("meter_id") == meter_id)
    return {
        end: (value, quality)
        for end, value, quality in rows.select("interval_end", "value", "quality").iter_rows()
    }


def channel_id(store: Store, meter_id: str = "M1") -> int:
    return next(
        c.channel_id for c in store.list_channels() if c.meter_id == meter_id and c.obis == OBIS
    )


# -- Python API -----------------------------------------------------------------------------


def test_released_fix_is_stored_on_replay(
    store: Store, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    bad = support.row(END, "abc")
    result = deliver(bad, support.row("2024-06-01T00:30:00+00:00", "1.000"))
    assert result.counts.reasons == {"MALFORMED_VALUE": 1}
    (record,) = store.list_quarantine(status="open")
    assert record.reasons == ("MALFORMED_VALUE",)
    assert record.raw == bad

    released = review.release(
        store, record.q_id, changes={"value": "0.5"}, note="read off the meter", now=support.NOW
    )
    assert released.status == "released"
    assert released.note == "read off the meter"
    assert json.loads(released.fields)["value"] == "0.5"
    assert released.raw == bad  # the evidence is kept as it arrived
    assert END_EPOCH not in billed(store)  # excluded from billing until replayed
    assert_verified(store)

    outcomes = review.replay(store, now=support.NOW)
    assert [(o.q_id, o.outcome, o.detail) for o in outcomes] == [
        (record.q_id, "replayed", "accepted")
    ]
    assert store.get_quarantine(record.q_id).status == "replayed"  # type: ignore[union-attr]
    assert billed(store)[END_EPOCH] == (500_000, 0)
    entries = kinds(store)
    assert "quarantine.released" in entries
    assert "quarantine.replayed" in entries
    assert entries.index("quarantine.released") < entries.index("quarantine.replayed")
    release_entry = next(r for r in store.audit_rows() if r.kind == "quarantine.released")
    payload = json.loads(release_entry.payload)
    assert payload["changes"] == {"value": ["abc", "0.5"]}
    assert payload["note"] == "read off the meter"
    assert_verified(store)

    # replaying again has no second effect
    readings = store.count("readings")
    assert review.replay(store, now=support.NOW) == []
    again = review.replay(store, [record.q_id], now=support.NOW)
    assert [(o.outcome, o.detail) for o in again] == [("replayed", "already replayed")]
    assert store.count("readings") == readings
    assert_verified(store)


def test_unfixed_release_replays_as_still_failing(
    store: Store, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    deliver(support.row(END, "abc"))
    (record,) = store.list_quarantine()
    review.release(store, record.q_id, note="try again", now=support.NOW)
    (outcome,) = review.replay(store, now=support.NOW)
    assert outcome.outcome == "still-failing"
    assert "MALFORMED_VALUE" in outcome.detail
    after = store.get_quarantine(record.q_id)
    assert after is not None
    assert after.status == "open"
    assert after.reasons == ("MALFORMED_VALUE",)
    assert store.count("readings") == 0
    assert_verified(store)


def test_revision_conflict_is_held_until_released(
    store: Store, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    deliver(support.row(END, "1.750"))
    deliver(support.row(END, "2.000"))
    (record,) = store.list_quarantine()
    assert record.reasons == ("REVISION_CONFLICT",)

    (held,) = review.replay(store, [record.q_id], now=support.NOW)
    assert held.outcome == "held"
    assert store.get_quarantine(record.q_id).status == "open"  # type: ignore[union-attr]
    assert billed(store)[END_EPOCH] == (1_750_000, 0)

    with pytest.raises(InputError, match="released as it is"):
        review.release(store, record.q_id, changes={"value": "3"}, now=support.NOW)
    review.release(store, record.q_id, note="meter was replaced", now=support.NOW)
    (done,) = review.replay(store, now=support.NOW)
    assert done.outcome == "replayed"

    assert billed(store)[END_EPOCH] == (2_000_000, 0)
    frame = store.versions(channel_id(store), END_EPOCH)
    assert list(frame.select("version", "value", "status", "reason").iter_rows()) == [
        (1, 1_750_000, "superseded", "REVISION_ACCEPTED"),
        (2, 2_000_000, "current", None),
    ]
    assert store.get_quarantine(record.q_id).status == "replayed"  # type: ignore[union-attr]
    accepted = [r for r in store.audit_rows() if r.kind == "revision.accepted"]
    assert len(accepted) == 1
    payload = json.loads(accepted[0].payload)
    assert (payload["from_value"], payload["to_value"], payload["version"]) == (
        1_750_000,
        2_000_000,
        2,
    )
    assert_verified(store)


def test_release_refuses_a_record_that_is_not_open(
    store: Store, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    deliver(support.row(END, "abc"))
    (record,) = store.list_quarantine()
    review.release(store, record.q_id, changes={"value": "0.5"}, now=support.NOW)
    audit_before = store.count("audit_log")
    with pytest.raises(ConflictError, match="released, not open"):
        review.release(store, record.q_id, now=support.NOW)
    review.replay(store, now=support.NOW)
    with pytest.raises(ConflictError, match="replayed, not open"):
        review.release(store, record.q_id, now=support.NOW)
    with pytest.raises(NotFoundError):
        review.release(store, 999, now=support.NOW)
    assert store.count("audit_log") == audit_before + 2  # batch + replayed, no failed release
    assert_verified(store)


def test_release_refuses_an_unknown_field(
    store: Store, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    deliver(support.row(END, "abc"))
    (record,) = store.list_quarantine()
    audit_before = store.count("audit_log")
    with pytest.raises(InputError, match="cannot set"):
        review.release(store, record.q_id, changes={"colour": "red"}, now=support.NOW)
    assert store.get_quarantine(record.q_id).status == "open"  # type: ignore[union-attr]
    assert store.count("audit_log") == audit_before


def test_unknown_meter_replayed_after_the_meter_is_added(
    store: Store, deliver: Callable[..., IngestResult]
) -> None:
    deliver(support.row(END, "1.000", meter="M7"), support.row(END, "abc", meter="M7"))
    assert [r.reasons for r in store.list_quarantine()] == [
        ("UNKNOWN_METER",),
        ("UNKNOWN_METER", "MALFORMED_VALUE"),
    ]
    support.add_meter(store, "M7")
    outcomes = review.replay(store, reason="UNKNOWN_METER", now=support.NOW)
    assert [o.outcome for o in outcomes] == ["replayed", "still-failing"]
    assert billed(store, "M7") == {END_EPOCH: (1_000_000, 0)}
    statuses = {r.q_id: (r.status, r.reasons) for r in store.list_quarantine(status=None)}
    assert statuses[outcomes[1].q_id] == ("open", ("MALFORMED_VALUE",))
    assert_verified(store)


def test_replay_that_turns_into_a_conflict_can_be_released_and_applied(
    store: Store, deliver: Callable[..., IngestResult]
) -> None:
    deliver(support.row(END, "1.000", meter="M7"))  # UNKNOWN_METER
    support.add_meter(store, "M7")
    deliver(support.row(END, "3.000", meter="M7"))  # another feed delivers an actual
    (record,) = store.list_quarantine()
    (outcome,) = review.replay(store, reason="UNKNOWN_METER", now=support.NOW)
    # the record is replayed; its value is now a revision held for review under its own record
    assert (outcome.outcome, outcome.detail) == ("replayed", "conflict")
    assert store.get_quarantine(record.q_id).status == "replayed"  # type: ignore[union-attr]
    (conflict,) = store.list_quarantine(status="open")
    assert conflict.reasons == ("REVISION_CONFLICT",) and conflict.q_id != record.q_id
    assert billed(store, "M7") == {END_EPOCH: (3_000_000, 0)}

    review.release(store, conflict.q_id, note="the first delivery was right", now=support.NOW)
    (done,) = review.replay(store, now=support.NOW)
    assert done.outcome == "replayed"
    assert billed(store, "M7") == {END_EPOCH: (1_000_000, 0)}
    assert_verified(store)


def test_conflict_on_redelivery_of_a_quarantined_record_is_held_for_review(
    store: Store, write_csv: WriteCsv, ingest: Ingest
) -> None:
    first = write_csv([support.row(END, "1.000", meter="M7")], name="first.csv")
    ingest(first)  # UNKNOWN_METER
    support.add_meter(store, "M7")
    ingest(write_csv([support.row(END, "3.000", meter="M7")], name="other.csv"))
    again = ingest(first)  # now valid, and it conflicts with the stored actual
    assert again.counts.conflicts == 1
    pending = store.versions(channel_id(store, "M7"), END_EPOCH).filter(
        pl.col("status") == "pending_review"
    )
    assert pending["value"].to_list() == [1_000_000]

    review.replay(store, reason="UNKNOWN_METER", now=support.NOW)
    held = store.list_quarantine(status="open", reason="REVISION_CONFLICT")
    assert [json.loads(r.fields).get("version") for r in held] == [2]


def test_concurrent_replay_of_a_fixed_record_is_audited_once(
    store: Store,
    meter: str,
    deliver: Callable[..., IngestResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deliver(support.row(END, "abc"))
    (record,) = store.list_quarantine()
    review.release(store, record.q_id, changes={"value": "0.5"}, now=support.NOW)
    other = open_store(store.url)
    stale = other.list_quarantine(status="released")
    review.replay(store, now=support.NOW)
    entries = store.count("audit_log")

    monkeypatch.setattr(other, "list_quarantine", lambda **_: list(stale))
    (outcome,) = review.replay(other, now=support.NOW)
    other.close()
    assert store.count("readings") == 1  # the reading itself is stored once either way
    assert [r.kind for r in store.audit_rows()].count("quarantine.replayed") == 1
    assert store.count("audit_log") == entries
    assert (outcome.outcome, outcome.detail) == ("replayed", "already replayed")


def test_concurrent_replay_of_a_released_conflict_reports_it_done(
    store: Store,
    meter: str,
    deliver: Callable[..., IngestResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deliver(support.row(END, "1.750"))
    deliver(support.row(END, "2.000"))
    (record,) = store.list_quarantine()
    review.release(store, record.q_id, now=support.NOW)
    other = open_store(store.url)
    stale = other.list_quarantine(status="released")
    review.replay(store, now=support.NOW)

    monkeypatch.setattr(other, "list_quarantine", lambda **_: list(stale))
    try:
        (outcome,) = review.replay(other, now=support.NOW)
    finally:
        other.close()
    assert (outcome.outcome, outcome.detail) == ("replayed", "already replayed")
    assert [r.kind for r in store.audit_rows()].count("revision.accepted") == 1


# -- CLI ------------------------------------------------------------------------------------


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def cli_json(*args: str) -> object:
    code, stdout, stderr = cli(*args, "--json")
    assert code == 0, stderr
    return json.loads(stdout)


def test_cli_list_show_release_replay(
    store: Store, db_url: str, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    bad_value = support.row(END, "abc")
    unknown = support.row(END, "1.250", meter="M9")
    deliver(bad_value, unknown, support.row("2024-06-01T00:30:00+00:00", "1.000"))

    listed = cli_json("quarantine", "list", "--db", db_url)
    assert isinstance(listed, list)
    by_reason = {tuple(r["reasons"]): r for r in listed}
    assert set(by_reason) == {("MALFORMED_VALUE",), ("UNKNOWN_METER",)}
    value_id = by_reason[("MALFORMED_VALUE",)]["q_id"]
    meter_id = by_reason[("UNKNOWN_METER",)]["q_id"]
    only = cli_json("quarantine", "list", "--reason", "UNKNOWN_METER", "--db", db_url)
    assert [r["q_id"] for r in only] == [meter_id]  # type: ignore[union-attr]

    shown = cli_json("quarantine", "show", str(value_id), "--db", db_url)
    assert isinstance(shown, dict)
    assert shown["raw"] == bad_value
    assert shown["reasons"] == ["MALFORMED_VALUE"]
    assert shown["status"] == "open"
    code, _, err = cli("quarantine", "show", "999", "--db", db_url)
    assert code == 2
    assert "no quarantine record 999" in err

    code, _, err = cli(
        "quarantine", "release", str(value_id), "--set", "colour=red", "--db", db_url
    )
    assert code == 2
    assert "cannot set" in err
    code, _, err = cli("quarantine", "release", str(value_id), "--set", "novalue", "--db", db_url)
    assert code == 2
    assert "FIELD=VALUE" in err

    released = cli_json(
        "quarantine",
        "release",
        str(value_id),
        "--set",
        "value=0.5",
        "--note",
        "fixed by hand",
        "--db",
        db_url,
    )
    assert isinstance(released, dict)
    assert released["status"] == "released"
    assert released["note"] == "fixed by hand"

    code, _, err = cli("quarantine", "release", str(value_id), "--db", db_url)
    assert code == 2
    assert "not open" in err

    replayed = cli_json("quarantine", "replay", "--db", db_url)
    assert replayed == [{"q_id": value_id, "outcome": "replayed", "detail": "accepted"}]
    assert billed(store)[END_EPOCH] == (500_000, 0)

    code, out, _ = cli("meters", "add", "M9", "--db", db_url)
    assert code == 0
    replayed = cli_json("quarantine", "replay", "--reason", "UNKNOWN_METER", "--db", db_url)
    assert replayed == [{"q_id": meter_id, "outcome": "replayed", "detail": "accepted"}]
    assert billed(store, "M9") == {END_EPOCH: (1_250_000, 0)}

    everything = cli_json("quarantine", "list", "--status", "all", "--db", db_url)
    assert {r["status"] for r in everything} == {"replayed"}  # type: ignore[union-attr]
    assert cli_json("quarantine", "list", "--db", db_url) == []

    code, out, _ = cli("audit", "verify", "--db", db_url)
    assert code == 0
    assert "OK" in out
    entries = kinds(store)
    assert entries.count("quarantine.released") == 1
    assert entries.count("quarantine.replayed") == 2


def test_cli_conflict_release_and_replay(
    store: Store, db_url: str, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    deliver(support.row(END, "1.750"))
    deliver(support.row(END, "2.000"))
    (record,) = cli_json("quarantine", "list", "--db", db_url)  # type: ignore[misc]
    q_id = record["q_id"]
    held = cli_json("quarantine", "replay", str(q_id), "--db", db_url)
    assert held == [
        {
            "q_id": q_id,
            "outcome": "held",
            "detail": "a revision conflict is applied only after `quarantine release`",
        }
    ]
    code, _, err = cli("quarantine", "release", str(q_id), "--set", "value=3", "--db", db_url)
    assert code == 2
    assert "released as it is" in err
    code, _, _ = cli("quarantine", "release", str(q_id), "--note", "accept", "--db", db_url)
    assert code == 0
    (done,) = cli_json("quarantine", "replay", "--db", db_url)  # type: ignore[misc]
    assert done["outcome"] == "replayed"
    assert billed(store)[END_EPOCH] == (2_000_000, 0)
    statuses = store.versions(channel_id(store), END_EPOCH)["status"].to_list()
    assert statuses == ["superseded", "current"]
    assert "revision.accepted" in kinds(store)
    assert_verified(store)


# -- regressions from review ------------------------------------------------------------


def test_a_conflict_that_can_no_longer_apply_goes_back_to_review_and_others_replay(
    store: Store, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    deliver(support.row(END, "1.750"))
    deliver(support.row(END, "2.000"))  # conflict
    deliver(support.row(END, "1", meter="M9"))  # unknown meter
    conflict, unknown = store.list_quarantine()
    review.release(store, conflict.q_id, now=support.NOW)
    deliver(support.row(END, "1.900", quality="edited"))  # someone edits the value meanwhile
    support.add_meter(store, "M9")
    review.release(store, unknown.q_id, note="meter registered", now=support.NOW)
    outcomes = {o.q_id: o for o in review.replay(store, now=support.NOW)}
    assert outcomes[conflict.q_id].outcome == "still-failing"
    assert "edited" in outcomes[conflict.q_id].detail
    assert outcomes[unknown.q_id].outcome == "replayed"  # not blocked by the other one
    assert store.get_quarantine(conflict.q_id).status == "open"  # type: ignore[union-attr]
    assert billed(store)[END_EPOCH] == (1_900_000, int(Quality.EDITED))
    assert "quarantine.reopened" in kinds(store)
    assert_verified(store)


def test_a_released_record_that_still_fails_is_reopened_on_the_chain(
    store: Store, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    deliver(support.row(END, "abc"))
    (record,) = store.list_quarantine()
    review.release(store, record.q_id, changes={"value": "also bad"}, now=support.NOW)
    (outcome,) = review.replay(store, now=support.NOW)
    assert outcome.outcome == "still-failing"
    reopened = [
        json.loads(r.payload) for r in store.audit_rows() if r.kind == "quarantine.reopened"
    ]
    assert reopened == [
        {
            "q_id": record.q_id,
            "from_status": "released",
            "from_reasons": ["MALFORMED_VALUE"],
            "to_reasons": ["MALFORMED_VALUE"],
            "detail": reopened[0]["detail"],
        }
    ]
    assert_verified(store)
