"""The audit chain: append-only in the database, and ``verify`` names the entry that no longer
matches when readings, quarantine records or entries are changed behind the store's back.

Every test runs on SQLite and PostgreSQL; the tampering goes through ``backends.RawDb``."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

import support
from backends import RawDb
from meterledger.cli.app import app
from meterledger.ingest import review
from meterledger.ingest.audit import GENESIS, entry_hash, verify
from meterledger.ingest.pipeline import IngestResult
from meterledger.store.base import Store

Ingest = Callable[..., IngestResult]
WriteCsv = Callable[..., Path]
FORGED_END = 1_717_977_600  # 2024-06-10T00:00Z: a key no delivery holds
runner = CliRunner()

READING_COLUMNS = (
    "channel_id, interval_end, interval_seconds, value, quality, batch_id, received_at, version"
)


def ends(day: int, count: int = 8) -> list[str]:
    return [f"2024-06-0{day}T{h:02d}:00:00+00:00" for h in range(1, count + 1)]


@pytest.fixture
def ledger(store: Store, meter: str, write_csv: WriteCsv, ingest: Ingest) -> Store:
    """Three batches (1, 2, 3), each with 8 readings; batches 1 and 2 also quarantine one
    record each. Audit entries: 1 meter.added, then one per batch."""
    for day in (1, 2, 3):
        lines = [support.row(end, f"1.{day}{h:02d}") for h, end in enumerate(ends(day))]
        if day == 1:
            lines.append(support.row("2024-06-01T10:00:00+00:00", "abc"))
        if day == 2:
            lines.append(support.row("2024-06-02T10:00:00+00:00", "1.000", meter="NOPE"))
        result = ingest(write_csv(lines, name=f"day{day}.csv"))
        assert result.audit_entries == 1
    assert verify(store).ok
    return store


@pytest.fixture
def raw(ledger: Store, raw_db: RawDb) -> RawDb:
    """A connection to the ledger's database behind the store's back."""
    return raw_db


def entry_of(raw: RawDb, batch_id: int) -> int:
    seq = raw.scalar("SELECT audit_seq FROM batches WHERE batch_id = ?", (batch_id,))
    assert seq is not None
    return int(seq)


def a_reading(raw: RawDb, batch_id: int) -> tuple[int, int]:
    ((channel, end),) = raw.execute(
        "SELECT channel_id, interval_end FROM readings WHERE batch_id = ? ORDER BY interval_end"
        " LIMIT 1 OFFSET 3",
        (batch_id,),
    )
    return int(channel), int(end)


def forge_reading(raw: RawDb, channel: int, batch_id: int) -> None:
    """A reading no delivery held, written straight into the billing view."""
    raw.execute(
        f"INSERT INTO readings ({READING_COLUMNS})"
        " VALUES (?, ?, 900, 4000000, 0, ?, 1735689600, 1)",
        (channel, FORGED_END, batch_id),
    )


# -- append-only ----------------------------------------------------------------------------


def test_audit_table_refuses_update_and_delete(ledger: Store, raw: RawDb) -> None:
    before = list(ledger.audit_rows())
    with raw.refused():
        raw.execute("UPDATE audit_log SET payload = '{}' WHERE seq = 2")
    with raw.refused():
        raw.execute("DELETE FROM audit_log WHERE seq = 4")
    with raw.refused():
        raw.execute("DELETE FROM audit_log")
    # nor inside a transaction on yet another connection
    with closing(RawDb(ledger.url)) as other:
        other.execute("BEGIN")
        with other.refused():
            other.execute("UPDATE audit_log SET kind = 'x'")
        other.execute("ROLLBACK")
    assert list(ledger.audit_rows()) == before
    assert verify(ledger).ok


def test_audit_table_refuses_an_upsert(ledger: Store, raw: RawDb) -> None:
    before = list(ledger.audit_rows())
    with raw.refused():  # an existing seq: the insert itself is refused
        raw.execute(
            "INSERT INTO audit_log SELECT * FROM audit_log WHERE seq = 2"
            " ON CONFLICT (seq) DO UPDATE SET kind = 'forged'"
        )
    # the next seq passes the insert guard; the conflict on hash turns it into an UPDATE
    with raw.refused():
        raw.execute(
            "INSERT INTO audit_log (seq, recorded_at, kind, subject, payload, prev_hash, hash)"
            " SELECT (SELECT max(seq) + 1 FROM audit_log), recorded_at, kind, subject, payload,"
            " prev_hash, hash FROM audit_log WHERE seq = 2"
            " ON CONFLICT (hash) DO UPDATE SET kind = 'forged'"
        )
    assert list(ledger.audit_rows()) == before
    assert verify(ledger).ok


# INSERT OR REPLACE is SQLite syntax; on PostgreSQL the upsert test covers the same attack
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_audit_table_refuses_replace(ledger: Store, raw: RawDb) -> None:
    before = list(ledger.audit_rows())
    with raw.refused():
        raw.execute(
            "INSERT OR REPLACE INTO audit_log SELECT seq, recorded_at, 'forged', subject,"
            " payload, prev_hash, hash FROM audit_log WHERE seq = 2"
        )
    assert list(ledger.audit_rows()) == before


# SQLite has no TRUNCATE (DELETE without WHERE is tested on both)
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_audit_table_refuses_truncate(ledger: Store, raw: RawDb) -> None:
    before = list(ledger.audit_rows())
    with raw.refused():
        raw.execute("TRUNCATE audit_log")
    with raw.refused():
        raw.execute("TRUNCATE audit_log, batches, readings, quarantine")
    assert list(ledger.audit_rows()) == before
    assert raw.scalar("SELECT count(*) FROM batches") == 3
    assert verify(ledger).ok


def test_chain_links_each_entry_to_the_one_before(ledger: Store) -> None:
    rows = list(ledger.audit_rows())
    assert [r.seq for r in rows] == [1, 2, 3, 4]
    assert [r.kind for r in rows] == ["meter.added"] + ["batch.ingested"] * 3
    prev = GENESIS
    for row in rows:
        assert row.prev_hash == prev
        assert row.hash == entry_hash(
            row.seq, row.recorded_at, row.kind, row.subject, row.payload, row.prev_hash
        )
        prev = row.hash


# -- tampering behind the store's back -----------------------------------------------------


def test_changed_reading_value_names_its_batch_entry(ledger: Store, raw: RawDb) -> None:
    channel, end = a_reading(raw, 2)
    raw.execute(
        "UPDATE readings SET value = value + 1 WHERE channel_id = ? AND interval_end = ?",
        (channel, end),
    )
    report = verify(ledger)
    assert not report.ok
    first = report.first_broken
    assert first is not None
    assert first.seq == entry_of(raw, 2)
    assert first.subject == "batch 2"
    assert "do not match the audited digest" in first.problem
    assert len(report.problems) == 1


def test_changed_reading_quality_names_its_batch_entry(ledger: Store, raw: RawDb) -> None:
    channel, end = a_reading(raw, 3)
    raw.execute(
        "UPDATE readings SET quality = 2 WHERE channel_id = ? AND interval_end = ?",
        (channel, end),
    )
    first = verify(ledger).first_broken
    assert first is not None
    assert first.seq == entry_of(raw, 3)


def test_deleted_reading_names_its_batch_entry(ledger: Store, raw: RawDb) -> None:
    channel, end = a_reading(raw, 1)
    raw.execute("DELETE FROM readings WHERE channel_id = ? AND interval_end = ?", (channel, end))
    report = verify(ledger)
    assert not report.ok
    assert report.first_broken is not None
    assert report.first_broken.seq == entry_of(raw, 1)
    assert "7 rows now, 8 audited" in report.first_broken.problem


def test_reading_moved_to_another_batch_breaks_both(ledger: Store, raw: RawDb) -> None:
    channel, end = a_reading(raw, 3)
    raw.execute(
        "UPDATE readings SET batch_id = 1 WHERE channel_id = ? AND interval_end = ?",
        (channel, end),
    )
    report = verify(ledger)
    assert [p.seq for p in report.problems] == [entry_of(raw, 1), entry_of(raw, 3)]


def test_forged_reading_in_a_new_batch_is_not_covered(ledger: Store, raw: RawDb) -> None:
    channel, _ = a_reading(raw, 1)
    forge_reading(raw, channel, 77)
    report = verify(ledger)
    assert not report.ok
    first = report.first_broken
    assert first is not None
    assert first.seq is None
    assert first.subject == "batch 77"
    assert "no audit entry" in first.problem or "is missing" in first.problem


def test_forged_reading_in_an_audited_batch_names_it(ledger: Store, raw: RawDb) -> None:
    channel, _ = a_reading(raw, 2)
    forge_reading(raw, channel, 2)
    first = verify(ledger).first_broken
    assert first is not None
    assert first.seq == entry_of(raw, 2)


def test_changed_audit_payload_names_that_entry(ledger: Store, raw: RawDb) -> None:
    raw.drop_audit_guards()
    seq = entry_of(raw, 2)
    payload = raw.scalar("SELECT payload FROM audit_log WHERE seq = ?", (seq,))
    forged = json.loads(payload)
    forged["source"] = "somewhere else"
    raw.execute(
        "UPDATE audit_log SET payload = ? WHERE seq = ?",
        (json.dumps(forged, sort_keys=True, separators=(",", ":")), seq),
    )
    report = verify(ledger)
    assert not report.ok
    first = report.first_broken
    assert first is not None
    assert first.seq == seq
    assert "hash does not match" in first.problem


def test_rehashed_audit_entry_breaks_the_next_link(ledger: Store, raw: RawDb) -> None:
    raw.drop_audit_guards()
    row = next(r for r in ledger.audit_rows() if r.seq == 2)
    payload = json.loads(row.payload)
    payload["source"] = "somewhere else"
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    new_hash = entry_hash(row.seq, row.recorded_at, row.kind, row.subject, body, row.prev_hash)
    raw.execute("UPDATE audit_log SET payload = ?, hash = ? WHERE seq = 2", (body, new_hash))
    first = verify(ledger).first_broken
    assert first is not None
    assert first.seq == 3
    assert "prev_hash" in first.problem


def test_deleted_last_entry_leaves_its_batch_uncovered(ledger: Store, raw: RawDb) -> None:
    raw.drop_audit_guards()
    raw.execute("DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)")
    report = verify(ledger)
    assert not report.ok
    first = report.first_broken
    assert first is not None
    assert first.subject == "batch 3"
    assert "no audit entry" in first.problem or "is missing" in first.problem


def test_deleted_middle_entry_breaks_the_sequence(ledger: Store, raw: RawDb) -> None:
    raw.drop_audit_guards()
    raw.execute("DELETE FROM audit_log WHERE seq = 2")
    report = verify(ledger)
    first = report.first_broken
    assert first is not None
    assert first.seq == 2  # the deleted entry itself is named: its batch points at it
    assert "is missing" in first.problem
    assert any(p.seq == 3 and "sequence jumps" in p.problem for p in report.problems)


def test_changed_quarantine_raw_names_its_batch_entry(ledger: Store, raw: RawDb) -> None:
    raw.execute("UPDATE quarantine SET raw = raw || '0' WHERE batch_id = 2")
    report = verify(ledger)
    assert not report.ok
    first = report.first_broken
    assert first is not None
    assert first.seq == entry_of(raw, 2)
    assert "was altered" in first.problem


def test_deleted_quarantine_record_names_its_batch_entry(ledger: Store, raw: RawDb) -> None:
    raw.execute("DELETE FROM quarantine WHERE batch_id = 1")
    first = verify(ledger).first_broken
    assert first is not None
    assert first.seq == entry_of(raw, 1)
    assert "quarantine records do not match" in first.problem


def test_swapping_the_current_value_with_a_stored_version_is_detected(
    store: Store, meter: str, write_csv: WriteCsv, ingest: Ingest, raw_db: RawDb
) -> None:
    end = "2024-06-01T00:15:00+00:00"
    ingest(write_csv([support.row(end, "1.000")], name="actual.csv"))
    ingest(write_csv([support.row(end, "2.000", quality="estimated")], name="estimate.csv"))
    assert verify(store).ok
    (billed,) = raw_db.execute(f"SELECT {READING_COLUMNS} FROM readings")
    raw_db.execute("BEGIN")
    raw_db.execute("DELETE FROM readings")
    raw_db.execute(
        f"INSERT INTO readings ({READING_COLUMNS}) SELECT {READING_COLUMNS} FROM reading_versions"
    )
    raw_db.execute("DELETE FROM reading_versions")
    raw_db.execute(
        f"INSERT INTO reading_versions ({READING_COLUMNS}, status, reason)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'superseded', 'SUPERSEDED_BY_REVISION')",
        billed,
    )
    raw_db.execute("COMMIT")
    assert store.all_readings()["value"].to_list() == [2_000_000]  # the bill changed
    assert not verify(store).ok


def test_deleted_trailing_revision_entry_is_detected(
    store: Store, meter: str, write_csv: WriteCsv, ingest: Ingest, raw_db: RawDb
) -> None:
    end = "2024-06-01T00:15:00+00:00"
    ingest(write_csv([support.row(end, "1.000")], name="a.csv"))
    ingest(write_csv([support.row(end, "2.000")], name="b.csv"))
    (record,) = store.list_quarantine()
    review.release(store, record.q_id, now=support.NOW)
    review.replay(store, now=support.NOW)
    assert [r.kind for r in store.audit_rows()][-1] == "revision.accepted"
    assert verify(store).ok
    raw_db.drop_audit_guards()
    raw_db.execute("DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)")
    assert store.all_readings()["value"].to_list() == [2_000_000]
    assert not verify(store).ok


def test_tampered_quarantine_fields_do_not_reach_the_bill_unnoticed(
    ledger: Store, raw: RawDb
) -> None:
    (record,) = ledger.list_quarantine(reason="MALFORMED_VALUE")
    fields = json.loads(record.fields)
    fields["value"] = "4.999"
    raw.execute(
        "UPDATE quarantine SET fields = ? WHERE q_id = ?",
        (json.dumps(fields, sort_keys=True), record.q_id),
    )
    review.release(ledger, record.q_id, note="looks fine now", now=support.NOW)
    (outcome,) = review.replay(ledger, now=support.NOW)
    assert outcome.outcome == "replayed"
    assert 4_999_000 in ledger.all_readings()["value"].to_list()  # billed, never audited as a fix
    assert not verify(ledger).ok


# -- CLI ------------------------------------------------------------------------------------


def run_verify(db_url: str, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["audit", "verify", "--db", db_url, *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


def test_cli_verify_ok(ledger: Store, db_url: str) -> None:
    code, out, _ = run_verify(db_url)
    assert code == 0
    assert "OK" in out
    assert "4 entries, 3 batches, 24 stored rows" in " ".join(out.split())
    code, out, _ = run_verify(db_url, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True
    assert report["first_broken"] is None
    assert (report["entries"], report["batches"], report["rows_checked"]) == (4, 3, 24)


def test_cli_verify_names_the_broken_entry(ledger: Store, db_url: str, raw: RawDb) -> None:
    channel, end = a_reading(raw, 2)
    raw.execute(
        "UPDATE readings SET value = 0 WHERE channel_id = ? AND interval_end = ?", (channel, end)
    )
    seq = entry_of(raw, 2)
    code, _, err = run_verify(db_url)
    assert code == 1
    assert f"entry #{seq}" in err
    assert "BROKEN" in err
    code, out, _ = run_verify(db_url, "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    assert report["first_broken"]["seq"] == seq
    assert report["first_broken"]["subject"] == "batch 2"


def test_cli_verify_uncovered_batch_says_no_entry(ledger: Store, db_url: str, raw: RawDb) -> None:
    channel, _ = a_reading(raw, 1)
    forge_reading(raw, channel, 77)
    code, _, err = run_verify(db_url)
    assert code == 1
    assert "no entry" in err
    assert "batch 77" in err


# -- regressions from review ------------------------------------------------------------


def test_identical_bad_lines_in_one_batch_are_held_once_and_verify(
    store: Store, meter: str, write_csv: WriteCsv, ingest: Ingest
) -> None:
    bad = support.row("2024-06-01T00:15:00+00:00", "1", meter="NOPE-1")
    result = ingest(write_csv([bad, bad]))
    assert (result.counts.quarantined, result.counts.quarantine_duplicates) == (1, 1)
    assert result.counts.reasons == {"UNKNOWN_METER": 1}
    assert verify(store).ok


def test_changed_quarantine_reasons_are_detected(
    store: Store, meter: str, write_csv: WriteCsv, ingest: Ingest, raw_db: RawDb
) -> None:
    ingest(write_csv([support.row("2024-06-01T00:15:00+00:00", "abc")]))
    assert verify(store).ok
    raw_db.execute("UPDATE quarantine SET reasons = 'UNKNOWN_METER'")
    first = verify(store).first_broken
    assert first is not None and first.subject == "batch 1"
    assert "quarantine" in first.problem


def test_unreadable_quarantine_fields_are_reported_not_raised(
    store: Store, meter: str, write_csv: WriteCsv, ingest: Ingest, raw_db: RawDb
) -> None:
    ingest(write_csv([support.row("2024-06-01T00:15:00+00:00", "abc")]))
    assert verify(store).ok
    raw_db.execute("UPDATE quarantine SET fields = '{not json'")
    report = verify(store)
    assert not report.ok and "was altered" in report.problems[0].problem


def test_a_cut_tail_is_caught_by_the_head_kept_elsewhere(
    store: Store,
    meter: str,
    write_csv: WriteCsv,
    ingest: Ingest,
    db_url: str,
    raw_db: RawDb,
) -> None:
    ingest(write_csv([support.row("2024-06-01T00:15:00+00:00", "abc")]))  # quarantine only
    head = runner.invoke(app, ["audit", "head", "--db", db_url])
    assert head.exit_code == 0
    recorded = head.stdout.strip()
    seq = int(recorded.split(":")[0])
    assert (
        runner.invoke(app, ["audit", "verify", "--expect-head", recorded, "--db", db_url]).exit_code
        == 0
    )
    raw_db.drop_audit_guards()
    raw_db.execute("DELETE FROM quarantine")  # the cut removes what the entry recorded
    raw_db.execute("DELETE FROM batches")
    raw_db.execute("DELETE FROM audit_log WHERE seq = ?", (seq,))
    assert verify(store).ok  # invisible from inside the database
    result = runner.invoke(app, ["audit", "verify", "--expect-head", recorded, "--db", db_url])
    assert result.exit_code == 1
    assert f"entry #{seq}" in result.output
    assert (
        runner.invoke(
            app, ["audit", "verify", "--expect-head", "7:nothex", "--db", db_url]
        ).exit_code
        == 2
    )
