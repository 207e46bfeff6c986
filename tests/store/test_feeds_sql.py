"""Schema version 6 on SQLite and PostgreSQL: dead letters (stored with their bytes, replayed,
failed again, discarded), feed pauses (one feed and all ingestion) and breaker snapshots."""

from __future__ import annotations

import pytest

from backends import RawDb
from meterledger.core.errors import ConflictError, InputError, NotFoundError
from meterledger.store.base import Store
from meterledger.store.feeds_sql import BreakerSnapshot, FeedState, NewDeadLetter, check_feed

AT1 = "2024-06-02T00:00:00+00:00"
AT2 = "2024-06-03T00:00:00+00:00"
PAYLOAD = b"meter_id,channel\r\n\x00\xff\xfe not utf-8\n"


def letter(feed: str = "dlms", payload: bytes = PAYLOAD, attempts: int = 4) -> NewDeadLetter:
    return NewDeadLetter(feed, "gw-1", payload, "csv", "StoreError: disk full", attempts)


def test_a_dead_letter_keeps_its_bytes_exactly(store: Store) -> None:
    with store.write() as tx:
        first = tx.add_dead_letter(letter(), AT1)
        second = tx.add_dead_letter(letter("mqtt", b"{}", 3), AT2)
    assert second == first + 1
    got = store.get_dead_letter(first)
    assert got is not None
    assert got.payload == PAYLOAD and isinstance(got.payload, bytes)
    assert (got.feed, got.source, got.fmt, got.error, got.attempts) == (
        "dlms",
        "gw-1",
        "csv",
        "StoreError: disk full",
        4,
    )
    assert (got.first_failed_at, got.last_failed_at, got.status, got.replayed_batch) == (
        AT1,
        AT1,
        "open",
        None,
    )
    assert got.summary()["bytes"] == len(PAYLOAD) and "payload" not in got.summary()
    assert store.get_dead_letter(second + 10) is None
    assert store.count("dead_letters") == 2


def test_listing_filters_by_feed_status_and_ids(store: Store) -> None:
    with store.write() as tx:
        a = tx.add_dead_letter(letter("dlms"), AT1)
        b = tx.add_dead_letter(letter("mqtt"), AT1)
        c = tx.add_dead_letter(letter("dlms"), AT1)
        tx.dead_letter_replayed(a, 7)
    assert [d.dead_letter_id for d in store.list_dead_letters()] == [b, c]
    assert [d.dead_letter_id for d in store.list_dead_letters(status=None)] == [a, b, c]
    assert [d.dead_letter_id for d in store.list_dead_letters(feed="dlms")] == [c]
    assert [d.dead_letter_id for d in store.list_dead_letters(status="replayed")] == [a]
    assert [d.dead_letter_id for d in store.list_dead_letters(status=None, ids=[c, a])] == [a, c]
    assert store.list_dead_letters(ids=[]) == []
    assert store.open_dead_letters() == {"dlms": 1, "mqtt": 1}
    with pytest.raises(InputError):
        store.list_dead_letters(status="lost")


def test_replayed_failed_and_discarded(store: Store) -> None:
    with store.write() as tx:
        a = tx.add_dead_letter(letter(attempts=3), AT1)
        b = tx.add_dead_letter(letter(), AT1)
        assert tx.dead_letter_failed(a, "InputError: bad row", AT2) == 4
        tx.dead_letter_replayed(b, None)
    got = store.get_dead_letter(a)
    assert got is not None
    assert (got.status, got.error, got.attempts, got.first_failed_at, got.last_failed_at) == (
        "open",
        "InputError: bad row",
        4,
        AT1,
        AT2,
    )
    replayed = store.get_dead_letter(b)
    assert replayed is not None and (replayed.status, replayed.replayed_batch) == ("replayed", None)
    with store.write() as tx:
        tx.discard_dead_letter(a)
    discarded = store.get_dead_letter(a)
    assert discarded is not None and discarded.status == "discarded"
    assert store.open_dead_letters() == {}
    for call in (
        lambda tx: tx.dead_letter_replayed(b, 3),
        lambda tx: tx.dead_letter_failed(a, "again", AT2),
        lambda tx: tx.discard_dead_letter(b),
    ):
        with pytest.raises(ConflictError), store.write() as tx:
            call(tx)
    with pytest.raises(NotFoundError), store.write() as tx:
        tx.dead_letter_replayed(b + 100, 1)


def test_the_database_refuses_a_bad_status(store: Store, raw_db: RawDb) -> None:
    with store.write() as tx:
        tx.add_dead_letter(letter(), AT1)
    with raw_db.refused("(?i)check"):
        raw_db.execute("UPDATE dead_letters SET status = 'lost'")


def test_new_dead_letters_check_themselves() -> None:
    with pytest.raises(InputError):
        letter("*")  # a dead letter belongs to one feed
    with pytest.raises(InputError):
        letter(attempts=0)
    with pytest.raises(InputError):
        NewDeadLetter("dlms", "", b"", "csv", "e", 1)
    assert check_feed("vendor.acme/eu-1") == "vendor.acme/eu-1"
    with pytest.raises(InputError):
        check_feed("-x")


def test_pause_one_feed_and_all_ingestion(store: Store) -> None:
    assert not store.feed_paused("files") and store.feed_states() == []
    with store.write() as tx:
        tx.set_feed_paused("dlms", True, "gateway firmware upgrade", AT1)
    assert store.feed_paused("dlms") and not store.feed_paused("files")
    assert store.pause_of("dlms") == FeedState("dlms", True, "gateway firmware upgrade", AT1)
    with store.write() as tx:
        tx.set_feed_paused("*", True, "incident 42", AT2)
    assert store.feed_paused("files") and store.feed_paused("mqtt")
    assert store.pause_of("dlms") == FeedState("*", True, "incident 42", AT2)  # all wins
    with store.write() as tx:
        tx.set_feed_paused("*", False, None, AT2)
    assert not store.feed_paused("files") and store.feed_paused("dlms")
    with store.write() as tx:
        tx.set_feed_paused("dlms", False, None, AT2)
    assert not store.feed_paused("dlms") and store.pause_of("dlms") is None
    assert store.feed_states() == [
        FeedState("*", False, None, AT2),
        FeedState("dlms", False, None, AT2),
    ]
    with pytest.raises(InputError), store.write() as tx:
        tx.set_feed_paused("bad name", True, None, AT1)


def test_breaker_snapshots_replace_per_endpoint(store: Store) -> None:
    one = BreakerSnapshot("10.0.0.1:4059", "open", 0.25, 12, 1, AT1, AT1)
    two = BreakerSnapshot("dcu-7", "closed", 0.0, 40, 0, None, AT1)
    with store.write() as tx:
        tx.put_breaker_states([one, two])
    assert store.breaker_states() == [one, two]
    closed = BreakerSnapshot("10.0.0.1:4059", "closed", 0.125, 8, 2, AT2, AT2)
    with store.write() as tx:
        tx.put_breaker_states([closed])
    assert store.breaker_states() == [closed, two]
    with pytest.raises(InputError):
        BreakerSnapshot("x", "ajar", 0.0, 0, 0, None, AT1)
