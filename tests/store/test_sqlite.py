"""What only the SQLite store has: WAL, BEGIN IMMEDIATE, file paths and URL options,
``sqlite_master``. The behaviour both backends share is in ``test_contract.py``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from meterledger.core.errors import ConfigError, StoreError
from meterledger.store import open_store
from meterledger.store.base import MeterRecord
from meterledger.store.migrations import load_migrations
from meterledger.store.sqlite import SqliteStore


def tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[SqliteStore]:
    store = open_store(sqlite_url)
    assert isinstance(store, SqliteStore)
    yield store
    store.close()


def test_schema_is_the_sqlite_migrations(sqlite_store: SqliteStore) -> None:
    assert sqlite_store.schema_version() == len(load_migrations("sqlite")) == 8
    assert {"meters", "readings", "audit_log", "schema_migrations"} <= tables(sqlite_store.conn)
    triggers = {
        r[0]
        for r in sqlite_store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    }
    assert {"audit_log_no_update", "audit_log_no_delete", "audit_log_append_only"} <= triggers


def test_wal_mode(sqlite_store: SqliteStore) -> None:
    assert sqlite_store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert sqlite_store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


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


def test_second_writer_waits_for_the_first(sqlite_url: str) -> None:
    """BEGIN IMMEDIATE: a second connection cannot write while the first holds the lock."""
    first = SqliteStore(sqlite_url)
    first.migrate()
    second = SqliteStore(sqlite_url, busy_timeout_s=0.05)
    with first.write() as tx:
        tx.add_meter(MeterRecord("W1", "electric", "kWh", "UTC", None, "active", 1, "t"))
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            second.conn.execute("BEGIN IMMEDIATE")
    assert second.get_meter("W1") is not None  # committed and visible to the other reader


def test_open_store_rejects_unknown_urls_and_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown store URL"):
        open_store("mysql://x")
    with pytest.raises(ConfigError, match="synchronous"):
        SqliteStore(f"sqlite:///{tmp_path / 'x.db'}?synchronous=MAYBE")


def test_synchronous_full_from_url(tmp_path: Path) -> None:
    s = SqliteStore(f"sqlite:///{tmp_path / 'f.db'}?synchronous=FULL")
    assert s.conn.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_missing_folders_of_the_path_are_made(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "m.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SqliteStore)
    assert store.path == path
    assert path.is_file()
    store.close()
