"""The SQLite store: schema, migrations from version 1, WAL, single writer, the interface."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import polars as pl
import pytest

import support
from meterledger.core.errors import ConfigError, ConflictError, StoreError
from meterledger.ingest.audit import GENESIS, append, entry_hash, verify
from meterledger.ingest.canonical import batch_digest, quarantine_digest
from meterledger.store import open_store
from meterledger.store.base import MeterRecord
from meterledger.store.migrations import load_migrations
from meterledger.store.sqlite import SqliteStore


def tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_fresh_store_has_every_table_at_latest_version(store: SqliteStore) -> None:
    names = tables(store.conn)
    assert {
        "meters",
        "channels",
        "readings",
        "reading_versions",
        "batches",
        "quarantine",
        "anomalies",
        "audit_log",
        "schema_migrations",
    } <= names
    assert store.schema_version() == len(load_migrations("sqlite")) == 2


def test_wal_mode_and_migrate_is_idempotent(store: SqliteStore) -> None:
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.migrate() == []


def test_meters_table_has_the_issue_columns(store: SqliteStore) -> None:
    columns = {r[1] for r in store.conn.execute("PRAGMA table_info(meters)")}
    assert {"meter_id", "service", "unit", "timezone", "account", "status"} <= columns


def test_migrates_a_database_made_by_schema_version_1(tmp_path: Path) -> None:
    """Make a v1 database with data and a valid audit chain, then upgrade it."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = SqliteStore(url)
    assert old.migrate(target=1) == [1]
    assert "anomalies" not in tables(old.conn)
    conn = old.conn
    conn.execute(
        "INSERT INTO meters VALUES ('OLD-1', 'electric', 'kWh', 'UTC', 'A-1', 'active',"
        " 25000000, '2023-01-01T00:00:00+00:00')"
    )
    conn.execute(
        "INSERT INTO channels (meter_id, obis, base_unit) VALUES ('OLD-1', '1.0.1.8.0.255', 'Wh')"
    )
    conn.execute("INSERT INTO batches (source, format, received_at) VALUES ('v1', 'csv', 'x')")
    conn.executemany(
        "INSERT INTO readings VALUES (1, ?, 900, ?, 0, 1, 0, 1)",
        [(1_700_000_100 + 900 * i, 1000 * i) for i in range(4)],
    )
    rows = pl.DataFrame(
        {
            "meter_id": ["OLD-1"] * 4,
            "channel": ["1.0.1.8.0.255"] * 4,
            "interval_end": [1_700_000_100 + 900 * i for i in range(4)],
            "interval_seconds": [900] * 4,
            "value": [1000 * i for i in range(4)],
            "quality": [0] * 4,
        }
    )
    payload = json.dumps(
        {
            "batch_id": 1,
            "stored_rows": 4,
            "stored_digest": batch_digest(rows),
            "quarantined": 0,
            "quarantine_digest": quarantine_digest([]),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    meter = json.dumps(
        {
            "meter_id": "OLD-1",
            "service": "electric",
            "unit": "kWh",
            "timezone": "UTC",
            "account": "A-1",
            "status": "active",
            "capacity": 25000000,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    first = entry_hash(1, "t", "meter.added", "OLD-1", meter, GENESIS)
    conn.execute(
        "INSERT INTO audit_log VALUES (1, 't', 'meter.added', 'OLD-1', ?, ?, ?)",
        (meter, GENESIS, first),
    )
    conn.execute(
        "INSERT INTO audit_log VALUES (2, 't', 'batch.ingested', 'batch 1', ?, ?, ?)",
        (payload, first, entry_hash(2, "t", "batch.ingested", "batch 1", payload, first)),
    )
    old.close()

    upgraded = open_store(url)  # migrates to the latest version
    assert upgraded.schema_version() == 2
    assert "anomalies" in tables(upgraded.conn)  # type: ignore[attr-defined]
    assert upgraded.count("readings") == 4
    assert upgraded.get_meter("OLD-1") is not None
    assert verify(upgraded).ok
    before = upgraded.registry_version()
    support.add_meter(upgraded, "NEW-1")
    assert upgraded.registry_version() > before
    assert verify(upgraded).ok


def test_failed_migration_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from meterledger.store import sqlite as module
    from meterledger.store.migrations import Migration

    broken = [*load_migrations("sqlite")[:1], Migration(2, "broken", "CREATE TABLE x (a);\nNOPE;")]
    monkeypatch.setattr(module, "load_migrations", lambda _dialect: broken)
    store = SqliteStore(f"sqlite:///{tmp_path / 'b.db'}")
    with pytest.raises(StoreError):
        store.migrate()
    assert store.schema_version() == 0
    assert "meters" not in tables(store.conn)


def test_audit_table_refuses_update_and_delete(store: SqliteStore) -> None:
    with store.write() as tx:
        append(tx, "test", "subject", {"n": 1})
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.conn.execute("UPDATE audit_log SET kind = 'x'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.conn.execute("DELETE FROM audit_log")
    assert store.count("audit_log") == 1


def test_write_rolls_back_on_error(store: SqliteStore) -> None:
    with pytest.raises(RuntimeError), store.write() as tx:
        tx.add_meter(MeterRecord("X1", "electric", "kWh", "UTC", None, "active", 1, "t"))
        raise RuntimeError("boom")
    assert store.get_meter("X1") is None


def test_second_writer_waits_for_the_first(db_url: str) -> None:
    """BEGIN IMMEDIATE: a second connection cannot write while the first holds the lock."""
    first = SqliteStore(db_url)
    first.migrate()
    second = SqliteStore(db_url, busy_timeout_s=0.05)
    with first.write() as tx:
        tx.add_meter(MeterRecord("W1", "electric", "kWh", "UTC", None, "active", 1, "t"))
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            second.conn.execute("BEGIN IMMEDIATE")
    assert second.get_meter("W1") is not None  # committed and visible to the other reader


def test_duplicate_meter_is_a_conflict(store: SqliteStore, meter: str) -> None:
    with pytest.raises(ConflictError):
        support.add_meter(store, meter)


def test_open_store_rejects_unknown_urls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        open_store("mysql://x")
    with pytest.raises(ConfigError, match="PostgreSQL"):
        open_store("postgresql://localhost/db")
    with pytest.raises(ConfigError):
        SqliteStore(f"sqlite:///{tmp_path / 'x.db'}?synchronous=MAYBE")


def test_synchronous_full_from_url(tmp_path: Path) -> None:
    s = SqliteStore(f"sqlite:///{tmp_path / 'f.db'}?synchronous=FULL")
    assert s.conn.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_readings_query_is_bounded_and_sorted(
    store: SqliteStore, meter: str, write_csv, ingest
) -> None:  # type: ignore[no-untyped-def]
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
    assert store.readings(meter, start, start + 3600, "1.0.2.8.0.255").is_empty()


def test_count_rejects_unknown_tables(store: SqliteStore) -> None:
    with pytest.raises(StoreError):
        store.count("sqlite_master; DROP TABLE meters")
