"""Canonical encoding: idempotency keys, batch digests and quarantine record keys."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta, timezone

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterledger.core.obis import ObisCode
from meterledger.core.reading import Quality, Reading
from meterledger.ingest.canonical import (
    EMPTY_DIGEST,
    batch_digest,
    canonical_line,
    idempotency_key,
    quarantine_digest,
    record_key,
)

END = datetime(2024, 1, 1, 0, 15, tzinfo=UTC)
IMPORT = ObisCode(1, 0, 1, 8, 0)


def reading(**changes: object) -> Reading:
    fields: dict[str, object] = {
        "meter_id": "M1",
        "channel": IMPORT,
        "interval_end": END,
        "interval_seconds": 900,
        "value": 1_500_000,
        "quality": Quality.ACTUAL,
    }
    fields.update(changes)
    return Reading(**fields)  # type: ignore[arg-type]


# -- canonical line and idempotency key -------------------------------------------------------


def test_canonical_line_layout() -> None:
    line = canonical_line("M1", "1.0.1.8.0.255", 1_704_068_100, 900, 1_500_000, 37)
    assert line == "M1\x1f1.0.1.8.0.255\x1f1704068100\x1f900\x1f1500000\x1f37\n"


def test_idempotency_key_is_sha256_of_the_canonical_line() -> None:
    expected = hashlib.sha256(
        b"M1\x1f1.0.1.8.0.255\x1f1704068100\x1f900\x1f1500000\x1f0\n"
    ).hexdigest()
    assert idempotency_key(reading()) == expected
    assert len(expected) == 64


def test_equal_readings_have_equal_keys() -> None:
    assert idempotency_key(reading()) == idempotency_key(reading())


def test_provenance_does_not_change_the_key() -> None:
    delivered = reading(
        source="sftp://feed/a.csv", received_at=datetime(2025, 1, 1, tzinfo=UTC), batch_id=7
    )
    assert idempotency_key(delivered) == idempotency_key(reading())


def test_the_same_instant_in_any_offset_has_the_same_key() -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    assert idempotency_key(reading(interval_end=END.astimezone(ist))) == idempotency_key(reading())


def test_the_same_channel_parsed_from_any_form_has_the_same_key() -> None:
    for text in ("1.0.1.8.0.255", "1-0:1.8.0*255", "1-0:1.8.0"):
        assert idempotency_key(reading(channel=ObisCode.parse(text))) == idempotency_key(reading())


@pytest.mark.parametrize(
    "changes",
    [
        {"value": 1_500_001},
        {"value": -1_500_000},
        {"value": 0},
        {"quality": Quality.ESTIMATED},
        {"quality": Quality.SUSPECT},
        {"interval_end": END + timedelta(seconds=1)},
        {"interval_end": END + timedelta(minutes=15)},
        {"channel": ObisCode(1, 0, 2, 8, 0)},
        {"channel": ObisCode(1, 0, 1, 8, 0, 0)},
        {"meter_id": "M2"},
        {"meter_id": "m1"},
        {"interval_seconds": 1800},
    ],
)
def test_any_field_changes_the_key(changes: dict[str, object]) -> None:
    assert idempotency_key(reading(**changes)) != idempotency_key(reading())


def test_fields_cannot_bleed_into_each_other() -> None:
    """'M1' + '1.0...' must not encode like 'M' + '11.0...': the separator keeps them apart."""
    a = canonical_line("M1", "1.0.1.8.0.255", 1, 900, 12, 0)
    b = canonical_line("M", "11.0.1.8.0.255", 1, 900, 12, 0)
    c = canonical_line("M1", "1.0.1.8.0.255", 1, 9001, 2, 0)
    assert len({a, b, c}) == 3


readings = st.builds(
    reading,
    meter_id=st.sampled_from(["M1", "M2", "feeder:7/A"]),
    interval_end=st.integers(0, 2_000_000_000).map(
        lambda s: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=s)
    ),
    interval_seconds=st.sampled_from([300, 900, 3600]),
    value=st.integers(-(2**63), 2**63 - 1),
    quality=st.integers(0, 255).map(Quality),
)


@given(readings, readings)
def test_keys_equal_exactly_when_the_canonical_fields_are_equal(a: Reading, b: Reading) -> None:
    same = (a.meter_id, a.channel, a.interval_end, a.interval_seconds, a.value, a.quality) == (
        b.meter_id,
        b.channel,
        b.interval_end,
        b.interval_seconds,
        b.value,
        b.quality,
    )
    assert (idempotency_key(a) == idempotency_key(b)) is same


# -- batch digest -----------------------------------------------------------------------------


def rows(n: int = 50) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "meter_id": [f"M{i % 3}" for i in range(n)],
            "channel": ["1.0.1.8.0.255" if i % 2 else "1.0.2.8.0.255" for i in range(n)],
            "interval_end": [1_704_067_200 + 900 * i for i in range(n)],
            "interval_seconds": [900] * n,
            "value": [1_000 * i - 7 for i in range(n)],
            "quality": [i % 5 for i in range(n)],
        },
        schema={
            "meter_id": pl.String,
            "channel": pl.String,
            "interval_end": pl.Int64,
            "interval_seconds": pl.Int64,
            "value": pl.Int64,
            "quality": pl.Int64,
        },
    )


def test_batch_digest_is_sha256_of_sorted_canonical_lines() -> None:
    frame = rows(5)
    ordered = sorted(frame.iter_rows(), key=lambda r: (r[0], r[1], r[2]))
    text = "".join(canonical_line(*r) for r in ordered)
    assert batch_digest(frame) == hashlib.sha256(text.encode()).hexdigest()


def test_batch_digest_of_nothing() -> None:
    assert batch_digest(rows(0)) == EMPTY_DIGEST == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("seed", range(5))
def test_batch_digest_is_order_independent(seed: int) -> None:
    frame = rows()
    order = list(range(frame.height))
    random.Random(seed).shuffle(order)
    assert batch_digest(frame[order]) == batch_digest(frame)


@pytest.mark.parametrize("column", ["value", "quality", "interval_seconds", "interval_end"])
def test_batch_digest_changes_when_one_field_changes(column: str) -> None:
    frame = rows()
    changed = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 17)
        .then(pl.col(column) + 1)
        .otherwise(pl.col(column))
        .alias(column)
    )
    assert batch_digest(changed) != batch_digest(frame)


def test_batch_digest_changes_when_a_row_is_added_or_removed() -> None:
    frame = rows()
    assert batch_digest(frame.head(-1)) != batch_digest(frame)
    assert batch_digest(pl.concat([frame, frame.head(1)])) != batch_digest(frame)


def test_batch_digest_changes_with_meter_or_channel() -> None:
    frame = rows()
    assert batch_digest(frame.with_columns(pl.lit("MX").alias("meter_id"))) != batch_digest(frame)
    assert batch_digest(
        frame.with_columns(pl.lit("1.0.16.8.0.255").alias("channel"))
    ) != batch_digest(frame)


# -- quarantine record keys ---------------------------------------------------------------------


def test_record_key_depends_on_format_and_raw() -> None:
    raw = "M1,1.0.1.8.0.255,2024-01-01T00:15:00Z,900,abc,kWh,actual"
    assert record_key("csv", raw) == record_key("csv", raw)
    assert record_key("csv", raw) == hashlib.sha256(f"csv\x00{raw}".encode()).hexdigest()
    assert record_key("jsonl", raw) != record_key("csv", raw)
    assert record_key("csv", raw + " ") != record_key("csv", raw)
    assert record_key("csv", "") != record_key("jsonl", "")
    assert record_key("csv", "a") != record_key("csva", "")


def test_quarantine_digest_is_order_independent() -> None:
    keys = [record_key("csv", str(i)) for i in range(10)]
    held = [(key, f'{{"value": "{n}"}}', ("MALFORMED_VALUE",)) for n, key in enumerate(keys)]
    assert quarantine_digest(held) == quarantine_digest(list(reversed(held)))
    assert quarantine_digest(held) != quarantine_digest(held[:-1])
    changed = [*held[:-1], (held[-1][0], '{"value": "other"}', ("MALFORMED_VALUE",))]
    assert quarantine_digest(held) != quarantine_digest(changed)  # the fields are covered
    assert quarantine_digest([]) == EMPTY_DIGEST


def test_the_bulk_digest_hashes_exactly_the_per_record_canonical_lines() -> None:
    """batch_digest (polars) and canonical_line (per record) must stay byte-identical."""
    rows = [
        ("M1", "1.0.1.8.0.255", 1_700_000_100, 900, -5, 1),
        ("M0", "1.0.2.8.0.255", 1_700_000_000, 3600, 123_456_789, 0),
    ]
    frame = pl.DataFrame(
        rows,
        schema=["meter_id", "channel", "interval_end", "interval_seconds", "value", "quality"],
        orient="row",
    )
    text = "".join(canonical_line(*r) for r in sorted(rows))
    assert batch_digest(frame) == hashlib.sha256(text.encode()).hexdigest()
