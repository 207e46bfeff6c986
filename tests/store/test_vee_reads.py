"""Schema version 5 on SQLite and PostgreSQL: the upgrade of a version 4 store that holds
data, meter classes, what VEE reads (readings, batch spans, pending batches, sources),
and intervals held out of billing by an open ``fail`` finding until someone acts."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import support
from backends import Databases, RawDb
from meterledger.core.errors import InputError
from meterledger.store import open_store
from meterledger.store.base import READING_COLUMNS, MeterRecord, NewAnomaly, NewQuarantine, Store
from meterledger.store.postgres import PostgresStore

IMPORT = "1.0.1.8.0.255"
EXPORT = "1.0.2.8.0.255"
T0 = 1_717_200_000  # 2024-06-01T00:00Z
RECEIVED = 1_735_689_600
AT = "2024-06-02T00:00:00+00:00"


def channel_ids(store: Store) -> dict[tuple[str, str], int]:
    return {(c.meter_id, c.obis): c.channel_id for c in store.list_channels()}


def new_rows(
    channel_id: int, ends: list[int], values: list[int], seconds: int = 900
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "channel_id": [channel_id] * len(ends),
            "interval_end": ends,
            "interval_seconds": [seconds] * len(ends),
            "value": values,
            "quality": [0] * len(ends),
        },
        schema={c: pl.Int64 for c in READING_COLUMNS[:5]},
    )


def insert(store: Store, *frames: pl.DataFrame, fmt: str = "csv", source: str = "feed.csv") -> int:
    with store.write() as tx:
        batch_id = tx.new_batch(source, fmt, "2025-01-01T00:00:00+00:00")
        for rows in frames:
            tx.insert_new(rows, batch_id=batch_id, received_at=RECEIVED)
    return batch_id


def full(rows: pl.DataFrame, batch_id: int, version: int) -> pl.DataFrame:
    return rows.with_columns(
        pl.lit(batch_id, pl.Int64).alias("batch_id"),
        pl.lit(RECEIVED, pl.Int64).alias("received_at"),
        pl.lit(version, pl.Int64).alias("version"),
    ).select(READING_COLUMNS)


@pytest.fixture
def fleet(store: Store) -> dict[tuple[str, str], int]:
    for meter_id in ("M2", "M1"):  # M2's channels get the lower ids
        support.add_meter(store, meter_id)
    return channel_ids(store)


# -- the upgrade ------------------------------------------------------------------------------


def test_upgrade_of_a_version_4_store_keeps_its_data(databases: Databases) -> None:
    url = databases.new_url("v4")
    old = open_store(url, migrate=False)
    try:
        assert old.migrate(target=4) == [1, 2, 3, 4]
        if isinstance(old, PostgresStore):
            old.ensure_partitions(T0, T0 + 3600)
    finally:
        old.close()
    with RawDb(url) as raw:
        raw.execute(
            "INSERT INTO meters (meter_id, service, unit, timezone, account, status, capacity,"
            " created_at) VALUES ('OLD-1', 'electric', 'kWh', 'UTC', NULL, 'active', 1, 't')"
        )
        raw.execute(
            "INSERT INTO channels (meter_id, obis, base_unit) VALUES ('OLD-1', ?, 'Wh')", (IMPORT,)
        )
        raw.execute("INSERT INTO batches (source, format, received_at) VALUES ('v4', 'csv', 't')")
        for end in (T0 + 900, T0 + 1800, T0 + 3600):
            raw.execute(
                "INSERT INTO readings (channel_id, interval_end, interval_seconds, value,"
                " quality, batch_id, received_at, version) VALUES (1, ?, 900, 5, 0, 1, 0, 1)",
                (end,),
            )
        raw.execute(
            "INSERT INTO reading_versions (channel_id, interval_end, version, interval_seconds,"
            " value, quality, batch_id, received_at, status) VALUES (1, ?, 2, 900, 6, 0, 1, 0,"
            " 'pending_review')",
            (T0 + 4500,),
        )
        for end, status, resolved in ((T0 + 900, "open", None), (T0 + 1800, "released", "r")):
            raw.execute(
                "INSERT INTO anomalies (channel_id, interval_end, rule, severity, detail, status,"
                " created_at, resolved_at) VALUES (1, ?, 'SPIKE', 'fail', 'old', ?, 'c', ?)",
                (end, status, resolved),
            )
    store = open_store(url, migrate=False)
    try:
        assert store.migrate() == [5, 6, 7, 8]
        assert store.schema_version() == 8
        meter = store.get_meter("OLD-1")
        assert meter == MeterRecord("OLD-1", "electric", "kWh", "UTC", None, "active", 1, "t")
        assert meter.meter_class == "default"
        kept = [
            (a.anomaly_id, a.interval_end, a.status, a.resolved_at, a.value, a.note, a.audit_seq)
            for a in store.list_anomalies(status=None)
        ]
        assert kept == [
            (1, T0 + 900, "open", None, None, None, None),
            (2, T0 + 1800, "released", "r", None, None, None),
        ]
        assert store.count("readings") == 3
        assert store.batch_spans([1]) == [(1, T0 + 900, T0 + 4500)]  # versions count too
        assert store.vee_pending() == []  # stored before VEE: counts as checked
        # the old open fail finding holds its interval out of billing from now on
        assert store.billing_read(T0, T0 + 3600).interval_end.tolist() == [T0 + 1800, T0 + 3600]
        with store.write() as tx:  # the new status and columns are usable
            assert tx.record_findings([], spans=[(1, T0, T0 + 3600)], rules=["SPIKE"], at=AT) == (
                0,
                1,
            )
            tx.add_register_reads([])
        assert [a.status for a in store.list_anomalies(status=None)] == ["cleared", "released"]
        assert store.count("register_reads") == 0
    finally:
        store.close()


# -- meter classes ----------------------------------------------------------------------------


def test_meter_class_is_stored_and_checked(store: Store) -> None:
    with store.write() as tx:
        tx.add_meter(
            MeterRecord("N1", "electric", "kWh", "UTC", None, "active", 1, "t", "net_solar")
        )
        tx.add_meter(MeterRecord("D1", "electric", "kWh", "UTC", None, "active", 1, "t"))
    assert [(m.meter_id, m.meter_class) for m in store.list_meters()] == [
        ("D1", "default"),
        ("N1", "net_solar"),
    ]
    for bad in ("Net", "9lives", "", "x" * 33):
        with pytest.raises(InputError, match="meter class must be"), store.write() as tx:
            tx.add_meter(MeterRecord("B1", "electric", "kWh", "UTC", None, "active", 1, "t", bad))
    assert store.get_meter("B1") is None


# -- vee_read ---------------------------------------------------------------------------------


def test_vee_read_is_sorted_bounded_and_current_only(store: Store, fleet: dict) -> None:
    a, b = sorted((fleet[("M1", IMPORT)], fleet[("M2", EXPORT)]))
    skipped = fleet[("M1", EXPORT)]
    first = insert(
        store,
        new_rows(b, [T0 + 1800, T0 + 900, T0, T0 + 2700], [21, 20, 29, 22]),
        new_rows(skipped, [T0 + 900], [99]),
    )
    second = insert(
        store, new_rows(a, [T0 + 2700, T0 + 900, T0 + 3600], [12, 10, 13], seconds=1800)
    )
    with store.write() as tx:  # a revision: only the current value is read
        tx.replace_readings(
            full(new_rows(b, [T0 + 1800], [25]), second, 2), "SUPERSEDED_BY_REVISION"
        )
    rows = store.vee_read([b, a, b], T0, T0 + 2700)  # any order, repeats: read once, sorted
    for name in ("channel_id", "interval_end", "interval_seconds", "value", "quality", "batch_id"):
        array = getattr(rows, name)
        assert isinstance(array, np.ndarray) and array.dtype == np.int64 and len(array) == 5
    assert rows.channel_id.tolist() == [a, a, b, b, b]
    assert rows.interval_end.tolist() == [T0 + 900, T0 + 2700, T0 + 900, T0 + 1800, T0 + 2700]
    assert rows.value.tolist() == [10, 12, 20, 25, 22]  # T0 itself and T0 + 3600 are outside
    assert rows.interval_seconds.tolist() == [1800, 1800, 900, 900, 900]
    assert rows.batch_id.tolist() == [second, second, first, second, first]
    assert rows.quality.tolist() == [0] * 5
    assert rows.offsets([a, b]).tolist() == [0, 2, 5]
    with pytest.raises(ValueError, match="ascending"):
        rows.offsets([b, a])
    assert store.vee_read([], T0, T0 + 3600).rows == 0
    assert store.vee_read([a], T0 + 3600, T0 + 7200).value.tolist() == []
    assert store.vee_read([999_999], T0, T0 + 3600).rows == 0


# -- batches: spans, pending, sources ---------------------------------------------------------


def test_batch_spans_and_pending_batches(store: Store, fleet: dict) -> None:
    a, b = fleet[("M1", IMPORT)], fleet[("M2", IMPORT)]
    one = insert(store, new_rows(a, [T0 + 900, T0 + 5400], [1, 2]), new_rows(b, [T0 + 1800], [3]))
    two = insert(store, new_rows(a, [T0 + 9000], [4]))
    with store.write() as tx:  # a revision of a's first interval and a version held for review
        three = tx.new_batch("late.csv", "jsonl", "t")
        tx.replace_readings(full(new_rows(a, [T0 + 900], [5]), three, 2), "SUPERSEDED_BY_REVISION")
        tx.insert_versions(full(new_rows(b, [T0 + 99_000], [6]), three, 2), "pending_review", "R")
    with store.write() as tx:  # a batch that only quarantined: nothing for VEE
        four = tx.new_batch("bad.csv", "csv", "t")
        tx.insert_quarantine(
            four,
            [
                NewQuarantine(
                    "k", "bad.csv", "csv", 2, "M1", IMPORT, "x", ("BAD",), "d", "raw", "{}"
                )
            ],
            "t",
        )
    assert store.batch_spans([one]) == sorted([(a, T0 + 900, T0 + 5400), (b, T0 + 1800, T0 + 1800)])
    assert store.batch_spans([two, one]) == sorted(
        [(a, T0 + 900, T0 + 9000), (b, T0 + 1800, T0 + 1800)]
    )
    assert store.batch_spans([three]) == sorted(
        [(a, T0 + 900, T0 + 900), (b, T0 + 99_000, T0 + 99_000)]
    )
    assert store.batch_spans([four]) == store.batch_spans([]) == store.batch_spans([424242]) == []
    assert store.vee_pending() == [one, two, three]
    with store.write() as tx:
        tx.mark_vee([one, three], AT)
        tx.mark_vee([], AT)
    assert store.vee_pending() == [two]
    with RawDb(store.url) as raw:
        assert raw.scalar("SELECT vee_at FROM batches WHERE batch_id = ?", (one,)) == AT
        assert raw.scalar("SELECT vee_at FROM batches WHERE batch_id = ?", (two,)) is None
    with pytest.raises(RuntimeError), store.write() as tx:  # a crash before the mark commits
        tx.mark_vee([two], AT)
        raise RuntimeError("crash")
    assert store.vee_pending() == [two]
    assert store.batch_formats([one, three, 424242]) == {one: "csv", three: "jsonl"}
    assert store.batch_sources([three, one]) == {
        one: ("feed.csv", "csv"),
        three: ("late.csv", "jsonl"),
    }
    assert store.batch_formats([]) == {}


def test_channel_spans_of_current_readings(store: Store, fleet: dict) -> None:
    a, b = fleet[("M1", IMPORT)], fleet[("M2", IMPORT)]
    insert(
        store,
        new_rows(a, [T0 + 900, T0 + 5400, T0 + 9000], [1, 2, 3]),
        new_rows(b, [T0 + 1800], [3]),
    )
    assert store.channel_spans() == sorted([(a, T0 + 900, T0 + 9000), (b, T0 + 1800, T0 + 1800)])
    assert store.channel_spans(meter_id="M1") == [(a, T0 + 900, T0 + 9000)]
    assert store.channel_spans(start=T0 + 900, end=T0 + 5400) == sorted(
        [(a, T0 + 5400, T0 + 5400), (b, T0 + 1800, T0 + 1800)]
    )
    assert store.channel_spans(meter_id="NOPE") == []


# -- held out of billing ----------------------------------------------------------------------


def test_an_open_fail_finding_keeps_its_interval_out_of_billing(store: Store, fleet: dict) -> None:
    m1, m2 = fleet[("M1", IMPORT)], fleet[("M2", IMPORT)]
    ends = [T0 + 900, T0 + 1800, T0 + 2700]
    insert(store, new_rows(m1, ends, [1, 2, 3]), new_rows(m2, ends, [4, 5, 6]))
    whole = store.billing_read(T0, T0 + 3600)
    assert (whole.meter_ids, whole.offsets.tolist(), whole.value.tolist()) == (
        ("M1", "M2"),
        [0, 3, 6],
        [1, 2, 3, 4, 5, 6],
    )
    assert store.held(T0, T0 + 3600) == set()
    with store.write() as tx:
        tx.record_findings(
            [
                NewAnomaly(m1, T0 + 1800, "SPIKE", "fail", "spike", 2),
                NewAnomaly(m1, T0 + 1800, "HIGH", "fail", "high", 2),  # two rules, one interval
                NewAnomaly(m2, T0 + 900, "FLAT", "warn", "flat", 4),  # a warning holds nothing
                NewAnomaly(m2, T0 + 2700, "GAP", "fail", "after a gap", 6),
                NewAnomaly(m2, T0 + 9000, "GAP", "fail", "outside the period", None),
            ],
            spans=[],
            rules=[],
            at=AT,
        )
    assert store.held(T0, T0 + 3600) == {(m1, T0 + 1800), (m2, T0 + 2700)}
    assert store.held(T0, T0 + 3600, [m2]) == {(m2, T0 + 2700)}
    assert store.held(T0 + 2700, T0 + 9000) == {(m2, T0 + 9000)}
    read = store.billing_read(T0, T0 + 3600)
    assert read.offsets.tolist() == [0, 2, 4]
    assert read.interval_end.tolist() == [T0 + 900, T0 + 2700, T0 + 900, T0 + 1800]
    assert read.value.tolist() == [1, 3, 4, 5]
    assert [v.tolist() for v in read.for_meter("M2")[:2]] == [[T0 + 900, T0 + 1800], [4, 5]]
    assert store.billing_read(T0, T0 + 3600, meter_ids=["M2"]).value.tolist() == [4, 5]
    assert store.billing_read(T0, T0 + 3600, channel=EXPORT).rows == 0

    # until someone acts on every fail finding of the interval
    spike, high = store.list_anomalies(meter_id="M1")
    with store.write() as tx:
        tx.resolve_anomaly(spike.anomaly_id, "released", AT, None, None)
    assert store.billing_read(T0, T0 + 3600, meter_ids=["M1"]).value.tolist() == [1, 3]
    with store.write() as tx:
        tx.resolve_anomaly(high.anomaly_id, "edited", AT, None, None)
    assert store.billing_read(T0, T0 + 3600, meter_ids=["M1"]).value.tolist() == [1, 2, 3]
    # or a later run no longer raises it
    with store.write() as tx:
        tx.record_findings([], spans=[(m2, T0, T0 + 3600)], rules=["GAP"], at=AT)
    assert store.billing_read(T0, T0 + 3600).value.tolist() == [1, 2, 3, 4, 5, 6]
    assert store.held(T0, T0 + 3600) == set()


def test_the_reader_role_selects_the_vee_tables(pg: PostgresStore, raw: RawDb) -> None:
    granted = raw.execute(
        "SELECT t, has_table_privilege('meterledger_reader', t, 'SELECT'),"
        " has_table_privilege('meterledger_reader', t, 'INSERT')"
        " FROM unnest(ARRAY['anomalies', 'register_reads', 'batch_spans']) AS t"
    )
    assert granted == [
        ("anomalies", True, False),
        ("register_reads", True, False),
        ("batch_spans", True, False),
    ]
    with raw.refused("register_reads is append-only"):
        raw.execute("TRUNCATE register_reads")
    with raw.refused("anomalies are kept"):
        raw.execute("TRUNCATE anomalies")
    assert pg.count("register_reads") == pg.count("batch_spans") == 0
