"""The Store contract: what every backend does the same, run on SQLite and PostgreSQL.

Schema and migrations (to the latest version, idempotent, upgrading a version 1 database
that holds data and a valid chain), meters and channels, the write transaction (rollback,
one writer at a time, the revision calls), quarantine, audit appends, readings by range,
counts, and the arrays billing reads. What only one backend has (SQLite's WAL and file
options, PostgreSQL's partitions and roles) is tested beside its backend.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import support
from backends import Databases, RawDb
from meterledger.core.errors import ConflictError, StoreError
from meterledger.ingest.audit import GENESIS, append, entry_hash, verify
from meterledger.ingest.canonical import batch_digest, quarantine_digest
from meterledger.ingest.pipeline import IngestResult
from meterledger.store import open_store
from meterledger.store.base import (
    READING_COLUMNS,
    AuditRow,
    BatchCounts,
    MeterRecord,
    NewQuarantine,
    Store,
)

IMPORT = "1.0.1.8.0.255"
EXPORT = "1.0.2.8.0.255"
SCHEMA_TABLES = {
    "meters",
    "channels",
    "batches",
    "readings",
    "reading_versions",
    "quarantine",
    "audit_log",
    "anomalies",
    "registry_version",
    "schema_migrations",
    "tariffs",
    "accounts",
    "bills",
    "dlms_counters",
    "clock_reads",
    "register_reads",
    "batch_spans",
    "dead_letters",
    "feed_state",
    "breaker_state",
    "feed_marks",
    "received_files",
}
COUNTED = ("meters", "channels", "batches", "readings", "reading_versions", "quarantine")
T0 = 1_717_200_000  # 2024-06-01T00:00Z
RECEIVED = 1_735_689_600  # 2025-01-01T00:00Z


def tables(raw: RawDb) -> set[str]:
    """The tables of the store's schema."""
    if raw.backend == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        sql = (
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    return {row[0] for row in raw.execute(sql)}


def columns(raw: RawDb, table: str) -> set[str]:
    if raw.backend == "sqlite":
        return {row[1] for row in raw.execute(f"PRAGMA table_info({table})")}
    return {
        row[0]
        for row in raw.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        )
    }


def meter_record(meter_id: str, **changes: object) -> MeterRecord:
    fields: dict[str, object] = {
        "meter_id": meter_id,
        "service": "electric",
        "unit": "kWh",
        "timezone": "UTC",
        "account": None,
        "status": "active",
        "capacity": 25_000_000,
        "created_at": "2024-01-01T00:00:00+00:00",
    }
    fields.update(changes)
    return MeterRecord(**fields)  # type: ignore[arg-type]


def channel_ids(store: Store) -> dict[tuple[str, str], int]:
    return {(c.meter_id, c.obis): c.channel_id for c in store.list_channels()}


def new_rows(channel_id: int, ends: list[int], values: list[int], quality: int = 0) -> pl.DataFrame:
    """Rows for ``WriteTx.insert_new``: 15-minute intervals of one channel."""
    return pl.DataFrame(
        {
            "channel_id": [channel_id] * len(ends),
            "interval_end": ends,
            "interval_seconds": [900] * len(ends),
            "value": values,
            "quality": [quality] * len(ends),
        },
        schema={c: pl.Int64 for c in READING_COLUMNS[:5]},
    )


def insert(store: Store, rows: pl.DataFrame) -> int:
    """Store ``rows`` as new readings of a new batch; return the batch id."""
    with store.write() as tx:
        batch_id = tx.new_batch("contract", "csv", "2025-01-01T00:00:00+00:00")
        tx.insert_new(rows, batch_id=batch_id, received_at=RECEIVED)
    return batch_id


def keys(channel_id: int, *ends: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"channel_id": [channel_id] * len(ends), "interval_end": list(ends)},
        schema={"channel_id": pl.Int64, "interval_end": pl.Int64},
    )


def held(
    key: str, *reasons: str, raw: str = "raw line", meter_id: str | None = "M1"
) -> NewQuarantine:
    return NewQuarantine(
        record_key=key,
        source="feed.csv",
        format="csv",
        record_no=2,
        meter_id=meter_id,
        channel=IMPORT,
        interval_end="2024-06-01T00:15:00+00:00",
        reasons=reasons,
        detail="; ".join(reasons),
        raw=raw,
        fields=json.dumps({"value": raw}),
    )


# -- schema and migrations ------------------------------------------------------------------


def test_fresh_store_has_every_table_at_the_latest_version(store: Store, raw_db: RawDb) -> None:
    assert tables(raw_db) >= SCHEMA_TABLES
    assert store.schema_version() == store.latest_version() == 8
    versions = raw_db.execute("SELECT version FROM schema_migrations ORDER BY version")
    assert [v for (v,) in versions] == [1, 2, 3, 4, 5, 6, 7, 8]


def test_migrate_is_idempotent(store: Store, raw_db: RawDb) -> None:
    assert store.migrate() == []
    again = open_store(store.url, migrate=False)
    try:
        assert again.migrate() == []
        assert again.schema_version() == 8
    finally:
        again.close()
    assert raw_db.scalar("SELECT count(*) FROM schema_migrations") == 8


def test_meters_table_has_the_issue_columns(raw_db: RawDb) -> None:
    assert {"meter_id", "service", "unit", "timezone", "account", "status"} <= columns(
        raw_db, "meters"
    )


def test_migrations_stop_at_a_target_and_resume(databases: Databases) -> None:
    store = open_store(databases.new_url("stepwise"), migrate=False)
    raw = RawDb(store.url)
    try:
        assert store.schema_version() == 0
        assert store.migrate(target=1) == [1]
        assert store.schema_version() == 1
        assert "meters" in tables(raw)
        assert "anomalies" not in tables(raw)
        assert store.migrate(target=1) == []
        assert store.migrate() == [2, 3, 4, 5, 6, 7, 8]
        assert tables(raw) >= SCHEMA_TABLES
    finally:
        raw.close()
        store.close()


def compact(payload: dict[str, object]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def test_upgrades_a_database_made_by_schema_version_1(databases: Databases) -> None:
    """Make a version 1 database with data and a valid audit chain, then upgrade it."""
    url = databases.new_url("old")
    ends = [1_700_000_100 + 900 * i for i in range(4)]  # 2023-11-14
    old = open_store(url, migrate=False)
    assert old.migrate(target=1) == [1]
    if old.dialect == "postgresql":
        # the monthly partitions a version 1 PostgreSQL store made for the readings it took
        old.ensure_partitions(ends[0], ends[-1])  # type: ignore[attr-defined]
    old.close()
    raw = RawDb(url)
    try:
        assert "anomalies" not in tables(raw)
        raw.execute(
            "INSERT INTO meters (meter_id, service, unit, timezone, account, status, capacity,"
            " created_at) VALUES ('OLD-1', 'electric', 'kWh', 'UTC', 'A-1', 'active',"
            " 25000000, '2023-01-01T00:00:00+00:00')"
        )
        raw.execute(
            "INSERT INTO channels (meter_id, obis, base_unit) VALUES ('OLD-1', ?, 'Wh')", (IMPORT,)
        )
        raw.execute("INSERT INTO batches (source, format, received_at) VALUES ('v1', 'csv', 'x')")
        for i, end in enumerate(ends):
            raw.execute(
                "INSERT INTO readings (channel_id, interval_end, interval_seconds, value, quality,"
                " batch_id, received_at, version) VALUES (1, ?, 900, ?, 0, 1, 0, 1)",
                (end, 1000 * i),
            )
        rows = pl.DataFrame(
            {
                "meter_id": ["OLD-1"] * 4,
                "channel": [IMPORT] * 4,
                "interval_end": ends,
                "interval_seconds": [900] * 4,
                "value": [1000 * i for i in range(4)],
                "quality": [0] * 4,
            }
        )
        batch = compact(
            {
                "batch_id": 1,
                "stored_rows": 4,
                "stored_digest": batch_digest(rows),
                "quarantined": 0,
                "quarantine_digest": quarantine_digest([]),
            }
        )
        meter = compact(
            {
                "meter_id": "OLD-1",
                "service": "electric",
                "unit": "kWh",
                "timezone": "UTC",
                "account": "A-1",
                "status": "active",
                "capacity": 25000000,
            }
        )
        entries = [
            (1, "meter.added", "OLD-1", meter),
            (2, "batch.ingested", "batch 1", batch),
        ]
        prev = GENESIS
        for seq, kind, subject, payload in entries:
            digest = entry_hash(seq, "t", kind, subject, payload, prev)
            raw.execute(
                "INSERT INTO audit_log (seq, recorded_at, kind, subject, payload, prev_hash,"
                " hash) VALUES (?, 't', ?, ?, ?, ?, ?)",
                (seq, kind, subject, payload, prev, digest),
            )
            prev = digest

        upgraded = open_store(url, migrate=False)
        try:
            assert upgraded.migrate() == [2, 3, 4, 5, 6, 7, 8]
            assert upgraded.schema_version() == 8
            assert tables(raw) >= SCHEMA_TABLES
            assert upgraded.count("readings") == 4
            assert upgraded.get_meter("OLD-1") == MeterRecord(
                "OLD-1",
                "electric",
                "kWh",
                "UTC",
                "A-1",
                "active",
                25_000_000,
                "2023-01-01T00:00:00+00:00",
            )
            stored = upgraded.readings("OLD-1", ends[0] - 900, ends[-1], IMPORT)
            assert stored["value"].to_list() == [0, 1000, 2000, 3000]
            # version 5: the old batch's spans are entered once; it counts as checked
            assert upgraded.batch_spans([1]) == [(1, ends[0], ends[-1])]
            assert upgraded.vee_pending() == []
            assert raw.scalar("SELECT vee_at FROM batches WHERE batch_id = 1") is not None
            assert verify(upgraded).ok, verify(upgraded).as_dict()
            before = upgraded.registry_version()
            support.add_meter(upgraded, "NEW-1")  # version 2's registry counter counts it
            assert upgraded.registry_version() > before
            assert verify(upgraded).ok, verify(upgraded).as_dict()
            with raw.refused("append-only"):  # version 2: an entry must follow the last one
                raw.execute(
                    "INSERT INTO audit_log (seq, recorded_at, kind, subject, payload, prev_hash,"
                    " hash) VALUES (99, 't', 'forged', 'x', '{}', ?, 'f')",
                    (prev,),
                )
        finally:
            upgraded.close()
    finally:
        raw.close()


# -- meters and channels --------------------------------------------------------------------


def test_meters_and_channels_are_listed_in_order(store: Store) -> None:
    assert store.list_meters() == []
    start = store.registry_version()
    second = meter_record("M2", account="ACC-2", timezone="Europe/Paris")
    first = meter_record("M1", status="inactive", capacity=7)
    with store.write() as tx:
        tx.add_meter(second)
        tx.add_meter(first)
        export = tx.add_channel("M2", EXPORT, "Wh", False)
        net = tx.add_channel("M1", "1.0.16.8.0.255", "Wh", True)
        imported = tx.add_channel("M1", IMPORT, "Wh", False)
        assert tx.add_channel("M1", IMPORT, "Wh", False) == imported  # already there
        assert tx.registry_version() > start
    assert store.list_meters() == [first, second]
    assert store.get_meter("M2") == second
    assert store.get_meter("M9") is None
    assert len({export, net, imported}) == 3
    listed = [
        (c.channel_id, c.meter_id, c.obis, c.base_unit, c.allows_negative)
        for c in store.list_channels()
    ]
    assert listed == [
        (imported, "M1", IMPORT, "Wh", False),  # by meter, then OBIS code as text
        (net, "M1", "1.0.16.8.0.255", "Wh", True),
        (export, "M2", EXPORT, "Wh", False),
    ]
    after_meters = store.registry_version()
    assert after_meters > start
    with store.write() as tx:
        tx.add_channel("M2", IMPORT, "Wh", False)
    assert store.registry_version() > after_meters


def test_duplicate_meter_is_a_conflict(store: Store, meter: str) -> None:
    with pytest.raises(ConflictError):
        support.add_meter(store, meter)
    assert [m.meter_id for m in store.list_meters()] == [meter]


# -- the write transaction --------------------------------------------------------------------


def test_write_rolls_back_on_error(store: Store) -> None:
    before = store.registry_version()
    with pytest.raises(RuntimeError), store.write() as tx:
        tx.add_meter(meter_record("X1"))
        tx.new_batch("x", "csv", "t")
        raise RuntimeError("boom")
    assert store.get_meter("X1") is None
    assert store.count("batches") == 0
    assert store.registry_version() == before


def test_a_second_writer_waits_for_the_first(store: Store) -> None:
    """One writer at a time: the second one's transaction starts after the first commits,
    and sees what it wrote."""
    other = open_store(store.url)
    starting, entered = threading.Event(), threading.Event()
    seen: list[int] = []
    failed: list[BaseException] = []

    def second_writer() -> None:
        try:
            starting.set()
            with other.write() as tx:
                entered.set()
                seen.append(tx.registry_version())
                tx.add_meter(meter_record("W2"))
        except BaseException as exc:  # reported by the main thread
            failed.append(exc)

    thread = threading.Thread(target=second_writer, daemon=True)
    try:
        with store.write() as tx:
            tx.add_meter(meter_record("W1"))
            committed = tx.registry_version()
            thread.start()
            assert starting.wait(10)
            assert not entered.wait(0.5), "a second write transaction began beside the first"
        thread.join(30)
        assert not thread.is_alive()
        assert failed == []
        assert seen == [committed]
        assert [m.meter_id for m in store.list_meters()] == ["W1", "W2"]
    finally:
        thread.join(30)
        other.close()


def test_revision_calls_of_the_write_transaction(store: Store, meter: str) -> None:
    cid = channel_ids(store)[(meter, IMPORT)]
    ends = [T0 + 900, T0 + 1800, T0 + 2700]
    first = insert(store, new_rows(cid, ends, [10, 20, 30]))
    assert store.count("readings") == 3

    with store.write() as tx:
        found = tx.current_for(keys(cid, T0 + 900, T0 + 2700, T0 + 3600))
        assert found.columns == list(READING_COLUMNS)
        assert found.sort("interval_end").rows() == [
            (cid, T0 + 900, 900, 10, 0, first, RECEIVED, 1),
            (cid, T0 + 2700, 900, 30, 0, first, RECEIVED, 1),
        ]  # not the key between them, which was not asked for
        assert tx.versions_for(keys(cid, T0 + 900)).is_empty()
        second = tx.new_batch("contract", "csv", "t2")
        newer = pl.DataFrame(
            [(cid, T0 + 900, 900, 11, 0, second, RECEIVED + 1, 2)],
            schema={c: pl.Int64 for c in READING_COLUMNS},
            orient="row",
        )
        tx.replace_readings(newer, "SUPERSEDED_BY_REVISION")
        pending = newer.with_columns(
            pl.lit(3, pl.Int64).alias("version"), pl.lit(12, pl.Int64).alias("value")
        )
        tx.insert_versions(pending, "pending_review", "REVISION_CONFLICT")
        assert tx.current_for(keys(cid, T0 + 900))["value"].to_list() == [11]
        stored = tx.versions_for(keys(cid, T0 + 900)).sort("version")
        assert stored.select("version", "value", "batch_id").rows() == [
            (1, 10, first),
            (3, 12, second),
        ]
        maxima = tx.max_versions(keys(cid, T0 + 900, T0 + 1800, T0 + 3600)).sort("interval_end")
        assert maxima.rows() == [(cid, T0 + 900, 3), (cid, T0 + 1800, 1), (cid, T0 + 3600, 0)]
        tx.finish_batch(second, BatchCounts(records=2, superseded=1, conflicts=1), None)

    versions = store.versions(cid, T0 + 900)
    assert versions.select("version", "value", "status", "reason").rows() == [
        (1, 10, "superseded", "SUPERSEDED_BY_REVISION"),
        (2, 11, "current", None),
        (3, 12, "pending_review", "REVISION_CONFLICT"),
    ]
    by_batch = store.stored_by_batch().filter(pl.col("interval_end") == T0 + 900)
    assert sorted(by_batch.select("batch_id", "status", "version", "value").rows()) == [
        (first, "superseded", 1, 10),
        (second, "current", 2, 11),
        (second, "pending_review", 3, 12),
    ]
    assert set(by_batch["meter_id"]) == {meter}
    assert set(by_batch["channel"]) == {IMPORT}

    with store.write() as tx:
        tx.delete_version(cid, T0 + 900, 3)
        tx.finish_batch(first, BatchCounts(records=3, accepted=3), 7)
    assert store.versions(cid, T0 + 900)["version"].to_list() == [1, 2]
    assert store.batch_audit_refs() == {first: 7, second: None}
    assert store.count("reading_versions") == 1


def test_readings_far_apart_go_in_one_transaction(store: Store, meter: str) -> None:
    """Any interval end ingest accepts (validation lets through years 1 to now) is stored,
    and one batch may hold the oldest and the newest at once."""
    cid = channel_ids(store)[(meter, IMPORT)]
    old = -2_208_987_900  # 1900-01-01T00:15Z
    insert(store, new_rows(cid, [old, T0 + 900], [1, 2]))
    assert store.readings(meter, old - 900, T0 + 900)["interval_end"].to_list() == [old, T0 + 900]


# -- quarantine -------------------------------------------------------------------------------


def test_quarantine_insert_skips_a_record_key_already_held(store: Store) -> None:
    with store.write() as tx:
        first = tx.new_batch("feed.csv", "csv", "t1")
        inserted = tx.insert_quarantine(
            first,
            [held("k1", "MALFORMED_VALUE"), held("k2", "UNKNOWN_METER", "MALFORMED_VALUE")],
            "2025-01-01T00:00:00+00:00",
        )
        assert sorted(inserted) == ["k1", "k2"]
    with store.write() as tx:
        second = tx.new_batch("feed.csv", "csv", "t2")
        again = tx.insert_quarantine(
            second,
            [held("k2", "UNKNOWN_METER", raw="a later copy"), held("k3", "MALFORMED")],
            "2025-01-02T00:00:00+00:00",
        )
        assert again == ["k3"]
        assert tx.insert_quarantine(second, [], "t") == []
    records = store.list_quarantine()
    assert [(r.record_key, r.batch_id, r.reasons) for r in records] == [
        ("k1", first, ("MALFORMED_VALUE",)),
        ("k2", first, ("UNKNOWN_METER", "MALFORMED_VALUE")),
        ("k3", second, ("MALFORMED",)),
    ]
    assert records[1].raw == "raw line"  # the first copy is kept
    assert store.count("quarantine") == 3

    k1 = records[0]
    assert (k1.source, k1.format, k1.record_no, k1.meter_id, k1.channel) == (
        "feed.csv",
        "csv",
        2,
        "M1",
        IMPORT,
    )
    assert (k1.interval_end, k1.detail, k1.fields) == (
        "2024-06-01T00:15:00+00:00",
        "MALFORMED_VALUE",
        json.dumps({"value": "raw line"}),
    )
    assert (k1.status, k1.created_at, k1.updated_at, k1.note) == (
        "open",
        "2025-01-01T00:00:00+00:00",
        "2025-01-01T00:00:00+00:00",
        None,
    )
    assert store.get_quarantine(k1.q_id) == k1

    # a reason matches a whole code, never a part of one
    assert [r.record_key for r in store.list_quarantine(reason="MALFORMED_VALUE")] == ["k1", "k2"]
    assert [r.record_key for r in store.list_quarantine(reason="MALFORMED")] == ["k3"]
    assert [r.record_key for r in store.list_quarantine(reason="UNKNOWN_METER")] == ["k2"]
    assert store.list_quarantine(reason="VALUE") == []
    assert [r.record_key for r in store.list_quarantine(limit=2)] == ["k1", "k2"]


def test_set_quarantine_changes_only_what_it_is_given(store: Store) -> None:
    with store.write() as tx:
        batch = tx.new_batch("feed.csv", "csv", "t")
        tx.insert_quarantine(batch, [held("k1", "MALFORMED_VALUE", meter_id=None)], "t0")
    (record,) = store.list_quarantine()
    assert record.meter_id is None
    with store.write() as tx:
        tx.set_quarantine(record.q_id, status="released", at="t1", note="fixed by hand")
        released = tx.get_quarantine(record.q_id)
    assert released is not None
    assert (released.status, released.updated_at, released.note) == (
        "released",
        "t1",
        "fixed by hand",
    )
    assert (released.fields, released.reasons, released.detail, released.created_at) == (
        record.fields,
        record.reasons,
        record.detail,
        "t0",
    )
    with store.write() as tx:
        tx.set_quarantine(
            record.q_id,
            status="open",
            at="t2",
            fields='{"value":"0.5"}',
            reasons=("REVISION_CONFLICT", "SUSPECT"),
            detail="held again",
        )
    reopened = store.get_quarantine(record.q_id)
    assert reopened is not None
    assert (reopened.status, reopened.fields, reopened.reasons, reopened.detail) == (
        "open",
        '{"value":"0.5"}',
        ("REVISION_CONFLICT", "SUSPECT"),
        "held again",
    )
    assert reopened.note == "fixed by hand"
    assert [r.q_id for r in store.list_quarantine(status="open")] == [record.q_id]
    assert store.list_quarantine(status="released") == []
    assert store.get_quarantine(record.q_id + 1000) is None


def test_quarantine_keeps_any_text_as_it_arrived(store: Store) -> None:
    """The raw payload is the evidence: every character comes back, a NUL byte included
    (an ingest quarantines a line holding one as MALFORMED_ROW)."""
    text = "M1,\x00,1\u00a0kWh,\U0001f600,\\N,'--"
    with store.write() as tx:
        batch = tx.new_batch("feed.csv", "csv", "t")
        tx.insert_quarantine(batch, [held("k1", "MALFORMED_ROW", raw=text)], "t")
    (record,) = store.list_quarantine()
    assert record.raw == text
    assert json.loads(record.fields) == {"value": text}


# -- audit ------------------------------------------------------------------------------------


def test_audit_appends_follow_the_last_entry(store: Store) -> None:
    with store.write() as tx:
        assert tx.last_audit() is None
        rows = [append(tx, "test", f"subject {n}", {"n": n}) for n in range(1, 4)]
        assert tx.last_audit() == rows[-1]
    assert list(store.audit_rows()) == rows
    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[0].prev_hash == GENESIS
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]

    last = rows[-1]
    for seq in (5, 3, 0):  # a gap, a rewrite, before the start
        forged = AuditRow(seq, "t", "forged", "x", "{}", last.hash, f"forged-{seq}")
        with pytest.raises(StoreError, match="append-only"), store.write() as tx:
            tx.insert_audit(forged)
    assert store.count("audit_log") == 3
    assert list(store.audit_rows()) == rows
    with store.write() as tx:
        assert tx.last_audit() == last
    assert verify(store).ok


def test_audit_table_refuses_update_and_delete(store: Store, raw_db: RawDb) -> None:
    with store.write() as tx:
        append(tx, "test", "subject", {"n": 1})
    with raw_db.refused("append-only"):
        raw_db.execute("UPDATE audit_log SET kind = 'x'")
    with raw_db.refused("append-only"):
        raw_db.execute("DELETE FROM audit_log")
    assert store.count("audit_log") == 1
    assert [r.kind for r in store.audit_rows()] == ["test"]


# -- readings and counts ----------------------------------------------------------------------


def test_readings_query_is_bounded_and_sorted(
    store: Store,
    meter: str,
    write_csv: Callable[..., Path],
    ingest: Callable[..., IngestResult],
) -> None:
    lines = [
        support.row(f"2024-01-01T0{h}:{m:02d}:00+00:00", "0.5")
        for h in range(3)
        for m in (0, 15, 30, 45)
    ]
    ingest(write_csv(list(reversed(lines))))
    start = 1704067200  # 2024-01-01T00:00Z
    frame = store.readings(meter, start, start + 3600)
    assert frame["interval_end"].to_list() == [start + 900 * i for i in range(1, 5)]
    assert frame["value"].to_list() == [500_000] * 4
    assert store.readings(meter, start, start + 3600, EXPORT).is_empty()


def test_readings_by_meter_channel_and_range(store: Store) -> None:
    support.add_meter(store, "M2")
    support.add_meter(store, "M1")
    ids = channel_ids(store)
    insert(store, new_rows(ids[("M1", EXPORT)], [T0 + 1800, T0 + 900], [7, 8], quality=2))
    batch = insert(
        store,
        new_rows(ids[("M1", IMPORT)], [T0 + 2700, T0, T0 + 900, T0 + 1800], [3, 0, 1, 2]),
    )
    insert(store, new_rows(ids[("M2", IMPORT)], [T0 + 900], [99]))

    frame = store.readings("M1", T0, T0 + 1800)  # start excluded, end included
    assert frame.columns == ["meter_id", "channel", *READING_COLUMNS[1:]]
    assert all(dtype == pl.Int64 for dtype in frame.select(READING_COLUMNS[1:]).dtypes)
    assert frame.select("channel", "interval_end", "value", "quality").rows() == [
        (IMPORT, T0 + 900, 1, 0),
        (IMPORT, T0 + 1800, 2, 0),
        (EXPORT, T0 + 900, 8, 2),
        (EXPORT, T0 + 1800, 7, 2),
    ]
    only = store.readings("M1", T0 - 1, T0 + 2700, IMPORT)
    assert only["interval_end"].to_list() == [T0, T0 + 900, T0 + 1800, T0 + 2700]
    assert set(only["meter_id"]) == {"M1"}
    row = only.row(0, named=True)
    assert (row["interval_seconds"], row["batch_id"], row["received_at"], row["version"]) == (
        900,
        batch,
        RECEIVED,
        1,
    )
    assert store.readings("M1", T0 + 2700, T0 + 9000, EXPORT).is_empty()
    assert store.readings("M9", T0 - 1, T0 + 9000).is_empty()

    everything = store.all_readings()
    assert everything.height == 7
    assert sorted(everything.select("meter_id", "channel", "interval_end", "value").rows()) == [
        ("M1", IMPORT, T0, 0),
        ("M1", IMPORT, T0 + 900, 1),
        ("M1", IMPORT, T0 + 1800, 2),
        ("M1", IMPORT, T0 + 2700, 3),
        ("M1", EXPORT, T0 + 900, 8),
        ("M1", EXPORT, T0 + 1800, 7),
        ("M2", IMPORT, T0 + 900, 99),
    ]


def test_counts(store: Store, meter: str) -> None:
    cid = channel_ids(store)[(meter, IMPORT)]
    insert(store, new_rows(cid, [T0 + 900, T0 + 1800], [1, 2]))
    counts = {table: store.count(table) for table in COUNTED}
    assert counts == {
        "meters": 1,
        "channels": len(store.list_channels()),
        "batches": 1,
        "readings": 2,
        "reading_versions": 0,
        "quarantine": 0,
    }
    assert counts["channels"] >= 2
    assert store.count("audit_log") == 1  # meter.added
    assert store.count("anomalies") == 0


def test_count_rejects_unknown_tables(store: Store) -> None:
    for name in ("sqlite_master; DROP TABLE meters", "no_such_table"):
        with pytest.raises(StoreError):
            store.count(name)
    assert store.count("meters") == 0


# -- billing reads ----------------------------------------------------------------------------


def billing_fleet(store: Store) -> dict[tuple[str, str], int]:
    """M3, M1 and M2 (registered in that order, so channel ids do not sort like meter ids)
    and W1, a water meter without the electricity channels; readings around [T0, T0+3600]."""
    for meter_id in ("M3", "M1", "M2"):
        support.add_meter(store, meter_id)
    support.add_meter(store, "W1", service="water", unit="L")
    ids = channel_ids(store)
    inside = [T0 + 900, T0 + 3600, T0 + 1800]  # the end is included
    outside = [T0, T0 + 4500]  # the start is not
    insert(store, new_rows(ids[("M1", IMPORT)], [*inside, *outside], [11, 14, 12, 10, 15], 0))
    insert(store, new_rows(ids[("M1", EXPORT)], inside, [1, 4, 2]))
    insert(store, new_rows(ids[("M2", IMPORT)], [T0 + 2700], [23], quality=4))
    insert(store, new_rows(ids[("M3", IMPORT)], outside, [30, 35]))  # nothing in range
    return ids


def as_lists(arrays: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[list[int], ...]:
    return tuple(a.tolist() for a in arrays)


def test_billing_read_groups_one_channel_by_meter(store: Store) -> None:
    ids = billing_fleet(store)
    read = store.billing_read(T0, T0 + 3600)
    assert read.meter_ids == ("M1", "M2", "M3")  # every meter with the channel; not W1
    for array in (read.offsets, read.interval_end, read.value, read.quality):
        assert isinstance(array, np.ndarray)
        assert array.dtype == np.int64
    assert read.offsets.tolist() == [0, 3, 4, 4]
    assert read.interval_end.tolist() == [T0 + 900, T0 + 1800, T0 + 3600, T0 + 2700]
    assert read.value.tolist() == [11, 12, 14, 23]
    assert read.quality.tolist() == [0, 0, 0, 4]
    assert as_lists(read.for_meter("M1")) == (
        [T0 + 900, T0 + 1800, T0 + 3600],
        [11, 12, 14],
        [0, 0, 0],
    )
    assert as_lists(read.for_meter("M2")) == ([T0 + 2700], [23], [4])
    assert as_lists(read.for_meter("M3")) == ([], [], [])

    export = store.billing_read(T0, T0 + 3600, channel=EXPORT)
    assert export.meter_ids == ("M1", "M2", "M3")
    assert as_lists(export.for_meter("M1"))[1] == [1, 2, 4]
    assert export.offsets.tolist() == [0, 3, 3, 3]

    # only the billing view: a superseded value is not read
    with store.write() as tx:
        batch = tx.new_batch("contract", "csv", "t")
        tx.replace_readings(
            pl.DataFrame(
                [(ids[("M2", IMPORT)], T0 + 2700, 900, 24, 0, batch, RECEIVED, 2)],
                schema={c: pl.Int64 for c in READING_COLUMNS},
                orient="row",
            ),
            "SUPERSEDED_BY_REVISION",
        )
    assert as_lists(store.billing_read(T0, T0 + 3600).for_meter("M2")) == ([T0 + 2700], [24], [0])


def test_billing_read_of_named_meters(store: Store) -> None:
    billing_fleet(store)
    named = store.billing_read(T0, T0 + 3600, meter_ids=["M3", "M1"])
    assert named.meter_ids == ("M1", "M3")  # sorted by meter id
    assert named.offsets.tolist() == [0, 3, 3]
    assert named.interval_end.tolist() == [T0 + 900, T0 + 1800, T0 + 3600]
    assert as_lists(named.for_meter("M3")) == ([], [], [])  # named, nothing in range

    narrow = store.billing_read(T0 + 900, T0 + 1800, meter_ids=["M2", "M1"])
    assert narrow.meter_ids == ("M1", "M2")
    assert as_lists(narrow.for_meter("M1")) == ([T0 + 1800], [12], [0])
    assert as_lists(narrow.for_meter("M2")) == ([], [], [])

    empty = store.billing_read(T0, T0 + 3600, meter_ids=[])
    assert empty.meter_ids == ()
    assert empty.offsets.tolist() == [0]
    assert empty.interval_end.tolist() == empty.value.tolist() == empty.quality.tolist() == []


def test_billing_read_of_an_empty_store(store: Store) -> None:
    read = store.billing_read(T0, T0 + 3600)
    assert read.meter_ids == ()
    assert read.offsets.tolist() == [0]
    assert len(read.interval_end) == len(read.value) == len(read.quality) == 0
