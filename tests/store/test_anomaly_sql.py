"""Schema version 5, the anomaly ledger and register reads, on SQLite and PostgreSQL:
recording a VEE run's findings (new, refreshed, cleared, reopened; decisions final),
resolving a finding, listing, the database's guards, register reads (append-only)."""

from __future__ import annotations

from dataclasses import replace

import pytest

import support
from backends import RawDb
from meterledger.core.errors import ConflictError, InputError
from meterledger.store.base import NewAnomaly, RegisterRead, Store

IMPORT = "1.0.1.8.0.255"
EXPORT = "1.0.2.8.0.255"
T0 = 1_717_200_000  # 2024-06-01T00:00Z
AT1 = "2024-06-02T00:00:00+00:00"
AT2 = "2024-06-03T00:00:00+00:00"


def ids(store: Store) -> dict[tuple[str, str], int]:
    return {(c.meter_id, c.obis): c.channel_id for c in store.list_channels()}


@pytest.fixture
def fleet(store: Store) -> dict[tuple[str, str], int]:
    support.add_meter(store, "M1")
    support.add_meter(store, "M2")
    return ids(store)


def finding(
    channel_id: int,
    end: int,
    rule: str = "SPIKE",
    severity: str = "fail",
    detail: str = "d",
    value: int | None = 7,
) -> NewAnomaly:
    return NewAnomaly(channel_id, end, rule, severity, detail, value)


def state(store: Store) -> list[tuple[int, str, str, str, str, int | None, str | None]]:
    """``(interval_end, rule, severity, status, detail, value, resolved_at)`` of every
    finding, by id."""
    return [
        (a.interval_end, a.rule, a.severity, a.status, a.detail, a.value, a.resolved_at)
        for a in store.list_anomalies(status=None)
    ]


# -- record_findings --------------------------------------------------------------------------


def test_a_run_inserts_refreshes_clears_and_reopens(store: Store, fleet: dict) -> None:
    c = fleet[("M1", IMPORT)]
    span = [(c, T0, T0 + 86_400)]
    with store.write() as tx:
        first = tx.record_findings(
            [
                finding(c, T0 + 900, "SPIKE", "fail", "spike 1", 9_000),
                finding(c, T0 + 1800, "FLAT", "warn", "flat", 5),
                finding(c, T0 + 2700, "GAP", "fail", "gap", None),
            ],
            spans=span,
            rules=["SPIKE", "FLAT", "GAP"],
            at=AT1,
        )
    assert first == (3, 0)
    assert state(store) == [
        (T0 + 900, "SPIKE", "fail", "open", "spike 1", 9_000, None),
        (T0 + 1800, "FLAT", "warn", "open", "flat", 5, None),
        (T0 + 2700, "GAP", "fail", "open", "gap", None, None),
    ]
    created = [a.created_at for a in store.list_anomalies()]
    assert created == [AT1] * 3

    # The second run still raises the spike (worse now: new detail and value), no longer
    # the flat line nor the gap.
    with store.write() as tx:
        second = tx.record_findings(
            [finding(c, T0 + 900, "SPIKE", "warn", "spike 2", 9_500)],
            spans=span,
            rules=["SPIKE", "FLAT", "GAP"],
            at=AT2,
        )
    assert second == (0, 2)
    assert state(store) == [
        (T0 + 900, "SPIKE", "warn", "open", "spike 2", 9_500, None),
        (T0 + 1800, "FLAT", "warn", "cleared", "flat", 5, AT2),
        (T0 + 2700, "GAP", "fail", "cleared", "gap", None, AT2),
    ]

    # A third run raises the gap again: the cleared finding reopens, same id and creation.
    gap_id = store.list_anomalies(rule="GAP", status="cleared")[0].anomaly_id
    with store.write() as tx:
        third = tx.record_findings(
            [
                finding(c, T0 + 900, "SPIKE", "warn", "spike 2", 9_500),
                finding(c, T0 + 2700, "GAP", "fail", "gap again", None),
            ],
            spans=span,
            rules=["SPIKE", "FLAT", "GAP"],
            at="2024-06-04T00:00:00+00:00",
        )
    assert third == (1, 0)
    reopened = store.get_anomaly(gap_id)
    assert reopened is not None
    assert (reopened.status, reopened.detail, reopened.resolved_at, reopened.created_at) == (
        "open",
        "gap again",
        None,
        AT1,
    )
    assert store.count("anomalies") == 3  # nothing was ever deleted


def test_clearing_keeps_to_the_spans_and_the_rules_that_ran(store: Store, fleet: dict) -> None:
    c, other = fleet[("M1", IMPORT)], fleet[("M2", IMPORT)]
    ends = [T0, T0 + 900, T0 + 3600, T0 + 4500]
    with store.write() as tx:
        tx.record_findings(
            [finding(c, e) for e in ends]
            + [finding(c, T0 + 900, "CLOCK"), finding(other, T0 + 900)],
            spans=[],
            rules=[],
            at=AT1,
        )
    # the run checked (T0, T0 + 3600] of channel c with SPIKE only, and found nothing
    with store.write() as tx:
        assert tx.record_findings([], spans=[(c, T0, T0 + 3600)], rules=["SPIKE"], at=AT2) == (
            0,
            2,
        )
    statuses = {
        (a.channel_id, a.interval_end, a.rule): a.status for a in store.list_anomalies(status=None)
    }
    assert statuses == {
        (c, T0, "SPIKE"): "open",  # the span's start is outside it
        (c, T0 + 900, "SPIKE"): "cleared",
        (c, T0 + 3600, "SPIKE"): "cleared",  # the end is inside
        (c, T0 + 4500, "SPIKE"): "open",
        (c, T0 + 900, "CLOCK"): "open",  # a rule that did not run
        (other, T0 + 900, "SPIKE"): "open",  # another channel
    }
    # no rules, or no spans: nothing is cleared
    with store.write() as tx:
        assert tx.record_findings([], spans=[(c, 0, T0 * 2)], rules=[], at=AT2) == (0, 0)
        assert tx.record_findings([], spans=[], rules=["SPIKE"], at=AT2) == (0, 0)


def test_a_decision_stays_whatever_later_runs_find(store: Store, fleet: dict) -> None:
    c = fleet[("M1", IMPORT)]
    with store.write() as tx:
        tx.record_findings(
            [finding(c, T0 + 900, detail="one"), finding(c, T0 + 1800, detail="two")],
            spans=[],
            rules=[],
            at=AT1,
        )
    first, second = store.list_anomalies()
    with store.write() as tx:
        tx.resolve_anomaly(first.anomaly_id, "released", AT2, "checked on site", 41)
        tx.resolve_anomaly(second.anomaly_id, "edited", AT2, None, 42)
    span = [(c, T0, T0 + 86_400)]
    with store.write() as tx:  # raised again with other details
        again = [finding(c, T0 + 900, "SPIKE", "warn", "new"), finding(c, T0 + 1800, value=1)]
        assert tx.record_findings(again, spans=span, rules=["SPIKE"], at=AT2) == (0, 0)
    with store.write() as tx:  # and no longer raised
        assert tx.record_findings([], spans=span, rules=["SPIKE"], at=AT2) == (0, 0)
    released = store.get_anomaly(first.anomaly_id)
    edited = store.get_anomaly(second.anomaly_id)
    assert released == replace(
        first, status="released", resolved_at=AT2, note="checked on site", audit_seq=41
    )
    assert edited == replace(second, status="edited", resolved_at=AT2, audit_seq=42)


def test_the_same_key_twice_in_one_run_keeps_the_worse(store: Store, fleet: dict) -> None:
    c = fleet[("M1", IMPORT)]
    with store.write() as tx:
        opened, _ = tx.record_findings(
            [
                finding(c, T0 + 900, severity="warn", detail="first"),
                finding(c, T0 + 900, severity="fail", detail="worse"),
                finding(c, T0 + 900, severity="fail", detail="later"),
                finding(c, T0 + 1800, severity="warn", detail="a"),
                finding(c, T0 + 1800, severity="warn", detail="b"),
            ],
            spans=[],
            rules=[],
            at=AT1,
        )
    assert opened == 2
    assert [(a.severity, a.detail) for a in store.list_anomalies()] == [
        ("fail", "worse"),
        ("warn", "a"),
    ]


def test_findings_the_ledger_would_refuse_are_refused_first(store: Store, fleet: dict) -> None:
    c = fleet[("M1", IMPORT)]
    bad = [
        (finding(c, T0, severity="pass"), "severity must be warn or fail"),
        (finding(c, T0, rule=""), "needs a rule code"),
        (finding(999_999, T0), "unknown channel ids"),
        (NewAnomaly(c, "x", "R", "warn", "d", None), "must be integers"),  # type: ignore[arg-type]
        (finding(c, T0, value=1.5), "value must be an integer"),  # type: ignore[arg-type]
    ]
    for item, message in bad:
        with pytest.raises(InputError, match=message), store.write() as tx:
            tx.record_findings([finding(c, T0 + 900), item], spans=[], rules=[], at=AT1)
    assert store.count("anomalies") == 0
    with store.write() as tx:  # the transaction is still usable after a refusal
        assert tx.record_findings([finding(c, T0 + 900)], spans=[], rules=[], at=AT1) == (1, 0)


def test_thousands_of_findings_in_one_run(store: Store, fleet: dict) -> None:
    c, d = fleet[("M1", IMPORT)], fleet[("M1", EXPORT)]
    many = [finding(ch, T0 + 900 * i, value=i) for i in range(1, 1301) for ch in (c, d)]
    with store.write() as tx:
        assert tx.record_findings(many, spans=[], rules=[], at=AT1) == (2600, 0)
    keep = [f for f in many if f.interval_end % 1800 == 0]  # every other one raised again
    spans = [(c, T0, T0 + 900 * 1300), (d, T0, T0 + 900 * 1300)]
    with store.write() as tx:
        assert tx.record_findings(keep, spans=spans, rules=["SPIKE"], at=AT2) == (0, 1300)
    assert len(store.list_anomalies()) == 1300
    assert len(store.list_anomalies(status="cleared")) == 1300
    assert {a.interval_end % 1800 for a in store.list_anomalies()} == {0}


# -- resolve_anomaly and the database's guards ------------------------------------------------


def test_resolve_only_an_open_finding(store: Store, fleet: dict) -> None:
    c = fleet[("M1", IMPORT)]
    with store.write() as tx:
        tx.record_findings(
            [finding(c, T0 + 900), finding(c, T0 + 1800)],
            spans=[(c, T0 + 900, T0 + 900 * 4)],
            rules=["SPIKE"],
            at=AT1,
        )
    with store.write() as tx:  # the second is no longer raised
        tx.record_findings(
            [finding(c, T0 + 900)], spans=[(c, T0, T0 + 3600)], rules=["SPIKE"], at=AT1
        )
    one, two = (a.anomaly_id for a in store.list_anomalies(status=None))
    with pytest.raises(InputError, match="released or edited"), store.write() as tx:
        tx.resolve_anomaly(one, "cleared", AT2, None, None)
    with pytest.raises(InputError, match="no anomaly 424242"), store.write() as tx:
        tx.resolve_anomaly(424242, "released", AT2, None, None)
    with pytest.raises(ConflictError, match="is cleared, not open"), store.write() as tx:
        tx.resolve_anomaly(two, "released", AT2, None, None)
    with store.write() as tx:
        tx.resolve_anomaly(one, "released", AT2, "ok", 7)
    with pytest.raises(ConflictError, match="is released, not open"), store.write() as tx:
        tx.resolve_anomaly(one, "edited", AT2, None, None)
    record = store.get_anomaly(one)
    assert record is not None
    assert (record.status, record.resolved_at, record.note, record.audit_seq) == (
        "released",
        AT2,
        "ok",
        7,
    )


def test_the_database_keeps_findings_and_decisions(
    store: Store, fleet: dict, raw_db: RawDb
) -> None:
    c = fleet[("M1", IMPORT)]
    with store.write() as tx:
        tx.record_findings(
            [finding(c, T0 + 900), finding(c, T0 + 1800)], spans=[], rules=[], at=AT1
        )
    one, two = (a.anomaly_id for a in store.list_anomalies())
    with store.write() as tx:
        tx.resolve_anomaly(one, "edited", AT2, None, None)
    with raw_db.refused("anomalies are kept"):
        raw_db.execute("DELETE FROM anomalies WHERE anomaly_id = ?", (two,))
    with raw_db.refused("final"):
        raw_db.execute("UPDATE anomalies SET status = 'open' WHERE anomaly_id = ?", (one,))
    with raw_db.refused("status"):  # the CHECK: only the four statuses
        raw_db.execute("UPDATE anomalies SET status = 'gone' WHERE anomaly_id = ?", (two,))
    raw_db.execute("UPDATE anomalies SET status = 'cleared' WHERE anomaly_id = ?", (two,))
    assert [a.status for a in store.list_anomalies(status=None)] == ["edited", "cleared"]


# -- listing ----------------------------------------------------------------------------------


def test_list_anomalies_filters(store: Store, fleet: dict) -> None:
    m1, m2 = fleet[("M1", IMPORT)], fleet[("M2", EXPORT)]
    with store.write() as tx:
        tx.record_findings(
            [
                finding(m2, T0 + 900, "FLAT", "warn"),
                finding(m1, T0 + 1800, "SPIKE"),
                finding(m1, T0 + 2700, "FLAT", "warn"),
                finding(m2, T0 + 3600, "SPIKE"),
            ],
            spans=[],
            rules=[],
            at=AT1,
        )
    listed = store.list_anomalies()
    assert [(a.meter_id, a.channel, a.interval_end, a.rule) for a in listed] == [
        ("M2", EXPORT, T0 + 900, "FLAT"),
        ("M1", IMPORT, T0 + 1800, "SPIKE"),
        ("M1", IMPORT, T0 + 2700, "FLAT"),
        ("M2", EXPORT, T0 + 3600, "SPIKE"),
    ]
    assert [a.interval_end for a in store.list_anomalies(meter_id="M1")] == [T0 + 1800, T0 + 2700]
    assert [a.meter_id for a in store.list_anomalies(rule="SPIKE")] == ["M1", "M2"]
    assert [a.rule for a in store.list_anomalies(meter_id="M2", rule="FLAT")] == ["FLAT"]
    assert len(store.list_anomalies(limit=3)) == 3
    assert [a.interval_end for a in store.list_anomalies(start=T0 + 900, end=T0 + 2700)] == [
        T0 + 1800,
        T0 + 2700,
    ]
    assert store.list_anomalies(status="released") == []
    assert store.list_anomalies(meter_id="NOPE") == []
    with store.write() as tx:
        tx.resolve_anomaly(listed[0].anomaly_id, "released", AT2, None, None)
    assert [a.interval_end for a in store.list_anomalies(status="released")] == [T0 + 900]
    assert len(store.list_anomalies(status=None)) == 4
    assert len(store.list_anomalies()) == 3  # open, by default
    assert store.get_anomaly(listed[1].anomaly_id) == listed[1]
    assert store.get_anomaly(999_999) is None
    with pytest.raises(InputError, match="anomaly status must be one of"):
        store.list_anomalies(status="closed")


# -- register reads ---------------------------------------------------------------------------


def test_register_reads_are_append_only(store: Store, fleet: dict, raw_db: RawDb) -> None:
    c, d = fleet[("M1", IMPORT)], fleet[("M2", IMPORT)]
    reads = [
        RegisterRead(d, T0 + 86_400, 5_000_000, "dlms"),
        RegisterRead(c, T0, 1_000_000, "dlms", None),
        RegisterRead(c, T0 + 86_400, 1_250_000, "dlms"),
    ]
    with store.write() as tx:
        batch = tx.new_batch("dlms:M1", "dlms", AT1)
        # the same read twice in one call: stored once, as it came first
        assert tx.add_register_reads([replace(reads[1], batch_id=batch), *reads]) == 3
    with store.write() as tx:  # the same reads again, from another source: no effect
        assert tx.add_register_reads([replace(r, source="csv") for r in reads]) == 0
        assert tx.add_register_reads([]) == 0
    assert store.count("register_reads") == 3
    with pytest.raises(ConflictError, match="held with value 1250000"), store.write() as tx:
        tx.add_register_reads(
            [RegisterRead(c, T0 + 2 * 86_400, 1, "dlms"), replace(reads[2], value=1_250_001)]
        )
    with pytest.raises(ConflictError, match="different value"), store.write() as tx:
        tx.add_register_reads([RegisterRead(c, 5, 1, "x"), RegisterRead(c, 5, 2, "x")])
    with pytest.raises(InputError, match="unknown channel ids"), store.write() as tx:
        tx.add_register_reads([RegisterRead(999_999, T0, 1, "dlms")])
    with pytest.raises(InputError, match="needs a source"), store.write() as tx:
        tx.add_register_reads([RegisterRead(c, T0, 1, "")])
    with pytest.raises(InputError, match="are integers"), store.write() as tx:
        tx.add_register_reads([RegisterRead(c, T0, True, "dlms")])
    assert store.count("register_reads") == 3  # nothing of a refused call was written
    with raw_db.refused("append-only"):
        raw_db.execute("UPDATE register_reads SET value = 0")
    with raw_db.refused("append-only"):
        raw_db.execute("DELETE FROM register_reads")
    if raw_db.backend == "sqlite":
        with raw_db.refused("append-only"):
            raw_db.execute(
                "INSERT OR REPLACE INTO register_reads VALUES (?, ?, 9, 'x', NULL)", (c, T0)
            )
    assert (
        raw_db.scalar(
            "SELECT batch_id FROM register_reads WHERE channel_id = ? AND read_at = ?", (c, T0)
        )
        == batch
    )


def test_register_reads_by_channel_and_range(store: Store, fleet: dict) -> None:
    c, d, e = fleet[("M1", IMPORT)], fleet[("M2", IMPORT)], fleet[("M1", EXPORT)]
    day = 86_400
    with store.write() as tx:
        tx.add_register_reads(
            [RegisterRead(d, T0 + day * i, 100 * i, "dlms") for i in (3, 0, 2, 1)]
            + [RegisterRead(c, T0 + day * i, 10 * i, "dlms") for i in (2, 0, 1)]
            + [RegisterRead(e, T0, 1, "dlms")]
        )
    reads = store.register_reads([d, c], T0, T0 + 2 * day)  # both ends included
    for array in (reads.channel_id, reads.read_at, reads.value):
        assert array.dtype.name == "int64"
    first, second = sorted((c, d))
    expected = {c: [0, 10, 20], d: [0, 100, 200]}
    assert reads.channel_id.tolist() == [first] * 3 + [second] * 3
    assert reads.read_at.tolist() == [T0, T0 + day, T0 + 2 * day] * 2
    assert reads.value.tolist() == expected[first] + expected[second]
    assert reads.offsets([first, second]).tolist() == [0, 3, 6]
    inner = store.register_reads([c], T0 + 1, T0 + 2 * day - 1)
    assert inner.read_at.tolist() == [T0 + day]
    assert store.register_reads([], T0, T0 + day).rows == 0
    assert store.register_reads([c], T0 + 10 * day, T0 + 20 * day).rows == 0


def test_any_text_of_a_finding_is_kept(store: Store, fleet: dict) -> None:
    c = fleet[("M1", IMPORT)]
    with store.write() as tx:
        tx.record_findings([finding(c, T0, detail="nul\x00 é ✓")], spans=[], rules=[], at=AT1)
    (held,) = store.list_anomalies()
    assert held.detail == "nul\ufffd é ✓"  # PostgreSQL text cannot hold NUL: both say U+FFFD
    with store.write() as tx:
        tx.resolve_anomaly(held.anomaly_id, "released", AT2, "note\x00", None)
    released = store.get_anomaly(held.anomaly_id)
    assert released is not None and released.note == "note\ufffd"
