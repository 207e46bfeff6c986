"""Schema version 4: DLMS invocation counters reserved in blocks and never reused, replay
refusal for the meter's counters, clock reads, and the last stored interval (each backend)."""

from __future__ import annotations

import pytest

from meterledger.core.errors import ConflictError, InputError
from meterledger.store import Store, open_store
from meterledger.store.collect_sql import ClockRead
from support import HEADER, NOW, add_meter


def test_counter_reservations_never_overlap_even_after_reopening(store: Store) -> None:
    add_meter(store, "M1")
    with store.write() as tx:
        first = tx.reserve_counters("M1", 100)
    assert first == range(1, 101)
    with store.write() as tx:
        second = tx.reserve_counters("M1", 50)
    assert second == range(101, 151)
    # A session that crashed after reserving leaves a hole, never a reuse.
    again = open_store(store.url)
    try:
        with again.write() as tx:
            third = tx.reserve_counters("M1", 1)
        assert third == range(151, 152)
        assert again.counters("M1").reserved_upto == 151
    finally:
        again.close()


def test_a_reservation_that_rolls_back_is_not_kept(store: Store) -> None:
    add_meter(store, "M1")
    with pytest.raises(RuntimeError), store.write() as tx:
        tx.reserve_counters("M1", 10)
        raise RuntimeError("crash before commit")
    assert store.counters("M1").reserved_upto == 0


def test_counter_errors(store: Store) -> None:
    add_meter(store, "M1")
    with pytest.raises(InputError, match="unknown meter"), store.write() as tx:
        tx.reserve_counters("NOPE", 10)
    with pytest.raises(InputError, match="at least 1"), store.write() as tx:
        tx.reserve_counters("M1", 0)
    with store.write() as tx:
        tx.reserve_counters("M1", 2**32 - 2)
    with pytest.raises(ConflictError, match="exhausted"), store.write() as tx:
        tx.reserve_counters("M1", 5)


def test_server_counters_must_increase(store: Store) -> None:
    add_meter(store, "M1")
    with store.write() as tx:
        tx.accept_server_counter("M1", 7)
        tx.accept_server_counter("M1", 9)
    with pytest.raises(ConflictError, match="replay"), store.write() as tx:
        tx.accept_server_counter("M1", 9)
    assert store.counters("M1").server_last == 9
    # The client counter and the server counter are independent.
    with store.write() as tx:
        assert tx.reserve_counters("M1", 3) == range(1, 4)
    assert store.counters("M1").server_last == 9


def test_clock_reads_and_the_last_stored_interval(store: Store, tmp_path: object) -> None:
    add_meter(store, "M1")
    add_meter(store, "M2")
    with store.write() as tx:
        tx.add_clock_read(ClockRead("M1", 1_700_000_000_000, 1_700_000_012_500, 12_500))
        tx.add_clock_read(ClockRead("M2", 1_700_000_000_000, 1_699_999_999_000, -1_000))
        tx.add_clock_read(ClockRead("M1", 1_700_000_000_000, 1, 1))  # same instant: kept once
    reads = store.clock_reads()
    assert [(r.meter_id, r.drift_ms) for r in reads] == [("M1", 12_500), ("M2", -1_000)]
    assert [r.meter_id for r in store.clock_reads("M2")] == ["M2"]
    with store.write() as tx:
        tx.add_clock_read(ClockRead("M1", 1_700_000_060_000, 1_700_000_060_000, 0))
    assert [r.read_at for r in store.clock_reads(since_ms=1_700_000_000_000)] == [1_700_000_060_000]
    assert store.clock_reads("M2", since_ms=1_700_000_000_000) == []
    assert store.last_interval_end("M1", "1.0.1.8.0.255") is None

    from pathlib import Path

    from meterledger.ingest.pipeline import IngestOptions, Ingestor

    path = Path(str(tmp_path)) / "r.csv"
    path.write_text(
        f"{HEADER}\n"
        "M1,1.0.1.8.0.255,2024-01-01T00:15:00+00:00,900,1,kWh,actual\n"
        "M1,1.0.1.8.0.255,2024-01-01T00:30:00+00:00,900,1,kWh,actual\n"
        "M1,1.0.2.8.0.255,2024-01-01T00:45:00+00:00,900,1,kWh,actual\n"
    )
    Ingestor(store, now=NOW).ingest_path(path, IngestOptions(fmt="csv"))
    assert store.last_interval_end("M1", "1.0.1.8.0.255") == 1_704_068_100 + 900
    assert store.last_interval_end("M1", "1.0.2.8.0.255") == 1_704_069_900
    assert store.last_interval_end("M2", "1.0.1.8.0.255") is None
