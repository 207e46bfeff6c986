"""Schema version 7 on SQLite and PostgreSQL: feed high-water marks (set, moved on, rolled
back with their transaction) and received files (recorded once by checksum)."""

from __future__ import annotations

import hashlib

import pytest

from meterledger.core.errors import InputError
from meterledger.store.base import Store
from meterledger.store.records import ReceivedFile

AT1 = "2024-06-02T00:00:00+00:00"
AT2 = "2024-06-03T00:00:00+00:00"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_feed_mark_is_set_then_moved_on(store: Store) -> None:
    assert store.feed_mark("vendor") is None
    with store.write() as tx:
        tx.set_feed_mark("vendor", "2024-06-01T00:15:00+00:00", AT1)
        tx.set_feed_mark("other", "cursor-9", AT1)
    assert store.feed_mark("vendor") == "2024-06-01T00:15:00+00:00"
    with store.write() as tx:
        tx.set_feed_mark("vendor", "2024-06-01T00:30:00+00:00", AT2)
    assert store.feed_mark("vendor") == "2024-06-01T00:30:00+00:00"
    assert store.feed_mark("other") == "cursor-9"
    assert store.count("feed_marks") == 2


def test_a_feed_mark_rolls_back_with_its_transaction(store: Store) -> None:
    with store.write() as tx:
        tx.set_feed_mark("vendor", "m1", AT1)
    with pytest.raises(RuntimeError), store.write() as tx:
        tx.set_feed_mark("vendor", "m2", AT2)
        raise RuntimeError("crash before commit")
    assert store.feed_mark("vendor") == "m1"


def test_a_feed_mark_needs_a_feed_name_and_a_mark(store: Store) -> None:
    with pytest.raises(InputError), store.write() as tx:
        tx.set_feed_mark("*", "m", AT1)
    with pytest.raises(InputError), store.write() as tx:
        tx.set_feed_mark("vendor", "", AT1)
    assert store.feed_mark("vendor") is None


def test_a_received_file_is_recorded_once(store: Store) -> None:
    a = ReceivedFile(sha(b"a"), "drop", "a.csv", 1, 2, AT1, "/done/a.csv")
    b = ReceivedFile(sha(b"b"), "sftp", "b.csv", 10, 1, AT2)
    with store.write() as tx:
        assert tx.add_received_file(b) is True
        assert tx.add_received_file(a) is True
    with store.write() as tx:
        assert tx.add_received_file(ReceivedFile(sha(b"a"), "x", "renamed.csv", 1, 0, AT2)) is False
    assert store.received_file(sha(b"a")) == a
    assert store.received_file(sha(b"b")) == b
    assert store.received_file(sha(b"c")) is None
    assert store.list_received_files() == [a, b]
    assert store.list_received_files(feed="sftp") == [b]
    assert store.list_received_files(feed="none") == []
    assert store.count("received_files") == 2


def test_a_received_file_checks_its_fields() -> None:
    with pytest.raises(InputError):
        ReceivedFile("ABC", "drop", "a.csv", 1, 1, AT1)
    with pytest.raises(InputError):
        ReceivedFile(sha(b"a").upper(), "drop", "a.csv", 1, 1, AT1)
    with pytest.raises(InputError):
        ReceivedFile(sha(b"a"), "drop", "a.csv", -1, 1, AT1)
    with pytest.raises(InputError):
        ReceivedFile(sha(b"a"), "", "a.csv", 1, 1, AT1)
    assert ReceivedFile(sha(b"a"), "drop", "a.csv", 0, 0, AT1).moved_to is None
