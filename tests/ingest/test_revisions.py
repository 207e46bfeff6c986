"""Revision rules (``ingest/apply.py``): what a second value for the same natural key does.

Every step checks the billing view, the stored versions of the key, the batch counts and
that the audit chain still verifies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl

import support
from meterledger.core.reading import Quality
from meterledger.ingest.audit import verify
from meterledger.ingest.pipeline import IngestResult
from meterledger.store.base import Store

END = "2024-06-01T00:15:00+00:00"
END_EPOCH = 1_717_200_900
OBIS = "1.0.1.8.0.255"

Ingest = Callable[..., IngestResult]
WriteCsv = Callable[..., Path]


def channel_id(store: Store, meter_id: str = "M1", obis: str = OBIS) -> int:
    return next(
        c.channel_id for c in store.list_channels() if c.meter_id == meter_id and c.obis == obis
    )


def current(store: Store, end: int = END_EPOCH) -> tuple[int, int]:
    """(value, quality) billed for M1's import channel at ``end``."""
    rows = store.all_readings().filter(pl.col("interval_end") == end)
    assert rows.height == 1
    return rows["value"][0], rows["quality"][0]


def versions(store: Store, end: int = END_EPOCH) -> list[tuple[int, int, int, str]]:
    """(version, value, quality, status) of every stored version of the key."""
    frame = store.versions(channel_id(store), end)
    return list(frame.select("version", "value", "quality", "status").iter_rows())


def assert_verified(store: Store) -> None:
    report = verify(store)
    assert report.ok, report.as_dict()


def last_batch_payload(store: Store) -> dict[str, object]:
    rows = [r for r in store.audit_rows() if r.kind == "batch.ingested"]
    return json.loads(rows[-1].payload)  # type: ignore[no-any-return]


EST = int(Quality.ESTIMATED)
EDITED = int(Quality.EDITED)


def test_estimate_then_actual_supersedes(
    store: Store, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    first = deliver(support.row(END, "1.500", quality="estimated"))
    assert first.counts.accepted == 1
    assert current(store) == (1_500_000, EST)

    second = deliver(support.row(END, "1.750"))
    assert (second.counts.superseded, second.counts.accepted, second.counts.conflicts) == (1, 0, 0)
    assert second.audit_entries == 1
    assert current(store) == (1_750_000, 0)
    assert versions(store) == [(1, 1_500_000, EST, "superseded"), (2, 1_750_000, 0, "current")]
    reason = store.versions(channel_id(store), END_EPOCH)["reason"][0]
    assert reason == "SUPERSEDED_BY_REVISION"
    assert last_batch_payload(store)["superseded"] == 1
    assert_verified(store)


def test_actual_then_estimate_is_ignored(
    store: Store, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    deliver(support.row(END, "1.750"))
    result = deliver(support.row(END, "1.500", quality="estimated:linear"))
    assert (result.counts.ignored, result.counts.superseded, result.counts.accepted) == (1, 0, 0)
    assert current(store) == (1_750_000, 0)
    assert versions(store) == [
        (1, 1_750_000, 0, "current"),
        (2, 1_500_000, int(Quality.ESTIMATED | Quality.EST_LINEAR), "ignored"),
    ]
    assert store.versions(channel_id(store), END_EPOCH)["reason"][1] == ("BEHIND_A_HIGHER_RANK")
    # the ignored estimate is kept, so it is an audited effect
    assert result.audit_entries == 1
    assert_verified(store)


def test_two_actuals_conflict_then_redelivery_has_no_effect(
    store: Store, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    deliver(support.row(END, "1.750"))
    conflicting = support.row(END, "2.000")
    result = deliver(conflicting)
    assert (result.counts.conflicts, result.counts.quarantined) == (1, 1)
    assert result.counts.reasons == {"REVISION_CONFLICT": 1}
    assert current(store) == (1_750_000, 0)
    assert versions(store) == [(1, 1_750_000, 0, "current"), (2, 2_000_000, 0, "pending_review")]

    held = store.list_quarantine(status="open")
    assert len(held) == 1
    record = held[0]
    assert record.reasons == ("REVISION_CONFLICT",)
    assert record.raw == conflicting
    assert record.interval_end == END
    fields = json.loads(record.fields)
    assert (fields["version"], fields["value_milli"]) == (2, 2_000_000)
    assert_verified(store)

    audit_before = store.count("audit_log")
    for again in (conflicting, support.row(END, "2.0")):  # same value, other spelling
        repeat = deliver(again)
        assert repeat.counts.duplicates == 1
        assert (repeat.counts.conflicts, repeat.counts.quarantined) == (0, 0)
        assert repeat.counts.quarantine_duplicates == 0
        assert repeat.audit_entries == 0
    assert versions(store) == [(1, 1_750_000, 0, "current"), (2, 2_000_000, 0, "pending_review")]
    assert store.count("quarantine") == 1
    assert store.count("audit_log") == audit_before
    assert current(store) == (1_750_000, 0)
    assert_verified(store)


def test_a_third_actual_is_a_second_pending_version(
    store: Store, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    deliver(support.row(END, "1.750"))
    deliver(support.row(END, "2.000"))
    deliver(support.row(END, "2.250"))
    assert [v[3] for v in versions(store)] == ["current", "pending_review", "pending_review"]
    assert [json.loads(r.fields)["version"] for r in store.list_quarantine()] == [2, 3]
    assert current(store) == (1_750_000, 0)
    assert_verified(store)


def test_old_estimate_redelivered_after_actual_is_a_duplicate(
    store: Store, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    estimate = support.row(END, "1.500", quality="estimated")
    deliver(estimate)
    deliver(support.row(END, "1.750"))
    before = versions(store)
    audit_before = store.count("audit_log")

    again = deliver(estimate)
    assert again.counts.duplicates == 1
    assert (again.counts.ignored, again.counts.superseded, again.counts.accepted) == (0, 0, 0)
    assert again.audit_entries == 0
    assert versions(store) == before
    assert current(store) == (1_750_000, 0)
    assert store.count("audit_log") == audit_before
    assert_verified(store)


def test_superseded_estimate_does_not_flip_flop_back(
    store: Store, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    first = support.row(END, "1.500", quality="estimated")
    deliver(first)
    newer = deliver(support.row(END, "1.600", quality="estimated:like-day"))
    assert newer.counts.superseded == 1
    assert current(store) == (1_600_000, int(Quality.ESTIMATED | Quality.EST_LIKE_DAY))
    assert versions(store)[0] == (1, 1_500_000, EST, "superseded")

    again = deliver(first)
    assert again.counts.duplicates == 1
    assert current(store) == (1_600_000, int(Quality.ESTIMATED | Quality.EST_LIKE_DAY))
    assert len(versions(store)) == 2
    assert_verified(store)


def test_edited_beats_actual_and_an_actual_after_an_edit_is_ignored(
    store: Store, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    deliver(support.row(END, "1.750"))
    edit = deliver(support.row(END, "1.800", quality="edited"))
    assert edit.counts.superseded == 1
    assert current(store) == (1_800_000, EDITED)
    assert versions(store) == [(1, 1_750_000, 0, "superseded"), (2, 1_800_000, EDITED, "current")]

    later = deliver(support.row(END, "1.900"))
    assert later.counts.ignored == 1
    assert current(store) == (1_800_000, EDITED)
    # an edit of an edit is a new edit
    again = deliver(support.row(END, "1.850", quality="edited"))
    assert again.counts.superseded == 1
    assert current(store) == (1_850_000, EDITED)
    assert_verified(store)


def test_same_value_with_other_flags_supersedes(
    store: Store, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    deliver(support.row(END, "1.750"))
    flagged = deliver(support.row(END, "1.750", quality="power-outage"))
    assert flagged.counts.superseded == 1
    assert current(store) == (1_750_000, int(Quality.POWER_OUTAGE))
    assert_verified(store)


def test_mixed_batch_counts_every_effect(
    store: Store, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    """One batch holding a new key, a duplicate, a supersede, an ignored estimate and a
    conflict: each row gets its own effect and the batch digest still verifies."""
    ends = [f"2024-06-01T0{h}:00:00+00:00" for h in range(1, 6)]
    deliver(
        support.row(ends[0], "1.000"),
        support.row(ends[1], "1.000", quality="estimated"),
        support.row(ends[2], "1.000"),
        support.row(ends[3], "1.000"),
    )
    result = deliver(
        support.row(ends[0], "1.000"),  # duplicate
        support.row(ends[1], "1.100"),  # actual over estimate: supersede
        support.row(ends[2], "0.900", quality="estimated"),  # ignored
        support.row(ends[3], "1.200"),  # conflict
        support.row(ends[4], "1.300"),  # new
    )
    c = result.counts
    assert (c.records, c.accepted, c.duplicates, c.superseded, c.ignored, c.conflicts) == (
        5,
        1,
        1,
        1,
        1,
        1,
    )
    assert c.quarantined == 1
    payload = last_batch_payload(store)
    assert payload["stored_rows"] == 4  # everything but the duplicate
    values = dict(store.all_readings().select("interval_end", "value").iter_rows())
    assert sorted(values.values()) == [1_000_000, 1_000_000, 1_000_000, 1_100_000, 1_300_000]
    assert_verified(store)


def test_two_values_for_one_key_in_one_batch_are_both_quarantined(
    store: Store, meter: str, deliver: Callable[..., IngestResult]
) -> None:
    result = deliver(
        support.row(END, "1.500", quality="estimated"),
        support.row(END, "1.750"),
        support.row("2024-06-01T00:30:00+00:00", "1.000"),
        support.row("2024-06-01T00:30:00+00:00", "1.000"),  # identical repeat: one kept
    )
    assert result.counts.accepted == 1
    assert result.counts.duplicates == 1
    assert result.counts.reasons == {"DUPLICATE_KEY_CONFLICT": 2}
    assert store.all_readings().filter(pl.col("interval_end") == END_EPOCH).is_empty()
    assert_verified(store)
