"""Every validation rule, end to end: the bad record is quarantined with exactly its reason
and its raw payload; a closely similar good record is stored."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

import support
from meterledger.core.errors import MeterledgerError
from meterledger.ingest.pipeline import IngestResult, load_registry
from meterledger.ingest.reasons import REASONS, Reason
from meterledger.ingest.records import raw_frame
from meterledger.ingest.validate import check, prepare
from meterledger.store.base import Store
from support import NOW, add_meter, row

Ingest = Callable[..., IngestResult]
WriteCsv = Callable[..., Path]

END = "2024-01-01T00:15:00Z"
LONG_ID = "X" + "y" * 63  # 64 characters, the longest valid id


@pytest.fixture
def meters(store: Store) -> Store:
    """M1 (UTC, 25 kW), K1 (Asia/Kolkata), R1 retired, I1 inactive, W1 water, a 64-char id."""
    add_meter(store)
    add_meter(store, "K1", tz="Asia/Kolkata")
    add_meter(store, "R1", status="retired")
    add_meter(store, "I1", status="inactive")
    add_meter(store, "W1", service="water", unit="L")
    add_meter(store, LONG_ID)
    return store


def net(end: str, value: str) -> str:
    return row(end, value, channel="1.0.16.8.0.255")


# (reason, bad line, a closely similar good line)
CASES = [
    # MALFORMED_ROW
    (Reason.MALFORMED_ROW, f"M1,1.0.1.8.0.255,{END},900,1,5,kWh,actual", row(END, "1.5")),
    (Reason.MALFORMED_ROW, f"M1,1.0.1.8.0.255,{END},900,1.5,kWh", row(END, "1.5")),
    # MALFORMED_METER_ID
    (Reason.MALFORMED_METER_ID, row(END, "1", meter="M 1"), row(END, "1", meter="M1")),
    (Reason.MALFORMED_METER_ID, row(END, "1", meter="-M1"), row(END, "1", meter="M1")),
    (Reason.MALFORMED_METER_ID, row(END, "1", meter=LONG_ID + "z"), row(END, "1", meter=LONG_ID)),
    (Reason.MALFORMED_METER_ID, row(END, "1", meter=""), row(END, "1", meter="M1")),
    (Reason.MALFORMED_METER_ID, row(END, "1", meter="M1;"), row(END, "1", meter="M1")),
    # UNKNOWN_METER
    (Reason.UNKNOWN_METER, row(END, "1", meter="M2"), row(END, "1", meter="M1")),
    (Reason.UNKNOWN_METER, row(END, "1", meter="m1"), row(END, "1", meter="M1")),  # exact case
    # METER_INACTIVE
    (Reason.METER_INACTIVE, row(END, "1", meter="R1"), row(END, "1", meter="M1")),
    (Reason.METER_INACTIVE, row(END, "1", meter="I1"), row(END, "1", meter="M1")),
    # MALFORMED_CHANNEL
    (Reason.MALFORMED_CHANNEL, row(END, "1", channel="1.0.1.8"), row(END, "1")),
    (Reason.MALFORMED_CHANNEL, row(END, "1", channel="1.0.1.8.0.256"), row(END, "1")),
    (Reason.MALFORMED_CHANNEL, row(END, "1", channel="energy"), row(END, "1")),
    (Reason.MALFORMED_CHANNEL, row(END, "1", channel=""), row(END, "1", channel="1-0:1.8.0")),
    # UNKNOWN_CHANNEL: a valid OBIS the meter does not have; a water channel on M1
    (
        Reason.UNKNOWN_CHANNEL,
        row(END, "1", channel="1.0.32.7.0.255"),
        row(END, "1", channel="1.0.2.8.0.255"),
    ),
    (
        Reason.UNKNOWN_CHANNEL,
        row(END, "10", channel="8.0.1.0.0.255", unit="L"),
        row(END, "10", channel="8.0.1.0.0.255", unit="L", meter="W1"),
    ),
    (
        Reason.UNKNOWN_CHANNEL,
        row(END, "1", channel="1.0.1.8.0.255", meter="W1"),
        row(END, "1", channel="1.0.1.8.0.255", meter="M1"),
    ),
    # MALFORMED_TIMESTAMP
    (Reason.MALFORMED_TIMESTAMP, row("2024-01-01T00:15:00", "1"), row(END, "1")),
    (Reason.MALFORMED_TIMESTAMP, row("not a date", "1"), row(END, "1")),
    (Reason.MALFORMED_TIMESTAMP, row("2024-01-01T00:15:00.5Z", "1"), row(END, "1")),
    (Reason.MALFORMED_TIMESTAMP, row("2024-02-30T00:15:00Z", "1"), row(END, "1")),
    (Reason.MALFORMED_TIMESTAMP, row("", "1"), row("2024-01-01T05:45:00+05:30", "1")),
    # MALFORMED_INTERVAL
    (Reason.MALFORMED_INTERVAL, row(END, "1", seconds="0"), row(END, "1", seconds="900")),
    (Reason.MALFORMED_INTERVAL, row(END, "1", seconds="-900"), row(END, "1", seconds="900")),
    (Reason.MALFORMED_INTERVAL, row(END, "1", seconds="7"), row(END, "1", seconds="300")),
    (Reason.MALFORMED_INTERVAL, row(END, "1", seconds="abc"), row(END, "1", seconds="900")),
    (Reason.MALFORMED_INTERVAL, row(END, "1", seconds=""), row(END, "1", seconds="900")),
    (
        Reason.MALFORMED_INTERVAL,
        row("2024-01-03T00:00:00Z", "1", seconds="172800"),
        row("2024-01-03T00:00:00Z", "1", seconds="86400"),
    ),
    # MISALIGNED_INTERVAL: UTC grid, and Kolkata's hourly grid at :30 UTC
    (
        Reason.MISALIGNED_INTERVAL,
        row("2024-01-01T00:30:00Z", "1", seconds="3600"),
        row("2024-01-01T01:00:00Z", "1", seconds="3600"),
    ),
    (
        Reason.MISALIGNED_INTERVAL,
        row("2024-01-01T00:20:00Z", "1"),
        row("2024-01-01T00:30:00Z", "1"),
    ),
    (
        Reason.MISALIGNED_INTERVAL,
        row("2024-01-01T01:00:00Z", "1", seconds="3600", meter="K1"),
        row("2024-01-01T00:30:00Z", "1", seconds="3600", meter="K1"),
    ),
    (
        Reason.MISALIGNED_INTERVAL,
        row("2024-01-02T00:00:00Z", "1", seconds="86400", meter="K1"),
        row("2024-01-01T18:30:00Z", "1", seconds="86400", meter="K1"),
    ),
    # FUTURE_INTERVAL, relative to NOW (2025-01-01T00:00Z)
    (Reason.FUTURE_INTERVAL, row("2025-01-01T00:15:00Z", "1"), row("2025-01-01T00:00:00Z", "1")),
    (
        Reason.FUTURE_INTERVAL,
        row("2025-01-01T05:45:00+05:30", "1"),  # 00:15 UTC
        row("2025-01-01T05:30:00+05:30", "1"),  # 00:00 UTC
    ),
    # MISSING_VALUE
    (Reason.MISSING_VALUE, row(END, ""), row(END, "0")),
    (Reason.MISSING_VALUE, row(END, "NaN"), row(END, "0")),
    (Reason.MISSING_VALUE, row(END, "null"), row(END, "0")),
    (Reason.MISSING_VALUE, row(END, "N/A"), row(END, "0")),
    # MALFORMED_VALUE
    (Reason.MALFORMED_VALUE, row(END, "abc"), row(END, "1")),
    (Reason.MALFORMED_VALUE, row(END, "1e3", unit="Wh"), row(END, "1000", unit="Wh")),
    (Reason.MALFORMED_VALUE, row(END, "1.2.3"), row(END, "1.2")),
    (Reason.MALFORMED_VALUE, row(END, "12345678901234567890"), row(END, "1.234567")),
    (Reason.MALFORMED_VALUE, row(END, "inf"), row(END, "1")),
    (Reason.MALFORMED_VALUE, row(END, "."), row(END, ".5")),
    (Reason.MALFORMED_VALUE, row(END, "+-1"), row(END, "+1")),
    (Reason.MALFORMED_VALUE, row(END, "0x10"), row(END, "10", unit="Wh")),
    # VALUE_PRECISION
    (Reason.VALUE_PRECISION, row(END, "0.0000001"), row(END, "0.000001")),
    (Reason.VALUE_PRECISION, row(END, "1.0005", unit="Wh"), row(END, "1.005", unit="Wh")),
    (
        Reason.VALUE_PRECISION,
        row(END, "0.0000000001", unit="MWh"),
        row(END, "0.000000001", unit="MWh"),
    ),
    # UNKNOWN_UNIT
    (Reason.UNKNOWN_UNIT, row(END, "1", unit="kwh"), row(END, "1", unit="kWh")),
    (Reason.UNKNOWN_UNIT, row(END, "1", unit="J"), row(END, "1", unit="Wh")),
    (Reason.UNKNOWN_UNIT, row(END, "0.001", unit=""), row(END, "0.001", unit="MWh")),
    # UNIT_MISMATCH
    (Reason.UNIT_MISMATCH, row(END, "1", unit="L"), row(END, "1", unit="kWh")),
    (Reason.UNIT_MISMATCH, row(END, "1", unit="kvarh"), row(END, "1", unit="kWh")),
    (
        Reason.UNIT_MISMATCH,
        row(END, "1", channel="1.0.3.8.0.255", unit="kWh"),
        row(END, "1", channel="1.0.3.8.0.255", unit="kvarh"),
    ),
    (
        Reason.UNIT_MISMATCH,
        row(END, "0.01", channel="8.0.1.0.0.255", unit="kWh", meter="W1"),
        row(END, "0.01", channel="8.0.1.0.0.255", unit="m3", meter="W1"),
    ),
    # MALFORMED_QUALITY
    (Reason.MALFORMED_QUALITY, row(END, "1", quality="great"), row(END, "1", quality="ACTUAL")),
    (
        Reason.MALFORMED_QUALITY,
        row(END, "1", quality="estimated:cubic"),
        row(END, "1", quality="estimated:linear|power-outage"),
    ),
    (Reason.MALFORMED_QUALITY, row(END, "1", quality="edited|"), row(END, "1", quality="edited")),
    # NEGATIVE_VALUE, but not on the net channel
    (Reason.NEGATIVE_VALUE, row(END, "-1"), net(END, "-1")),
    (Reason.NEGATIVE_VALUE, row(END, "-0.000001"), row(END, "-0")),
    (
        Reason.NEGATIVE_VALUE,
        row(END, "-1", channel="1.0.2.8.0.255"),
        row(END, "1", channel="1.0.2.8.0.255"),
    ),
    # IMPLAUSIBLE_VALUE: 25 kW for 900 s is 6.25 kWh
    (Reason.IMPLAUSIBLE_VALUE, row(END, "6.250001"), row(END, "6.25")),
    (Reason.IMPLAUSIBLE_VALUE, row(END, "6250.001", unit="Wh"), row(END, "6250", unit="Wh")),
    (
        Reason.IMPLAUSIBLE_VALUE,
        row("2024-01-01T01:00:00Z", "25.000001", seconds="3600"),
        row("2024-01-01T01:00:00Z", "25", seconds="3600"),
    ),
    (Reason.IMPLAUSIBLE_VALUE, net(END, "-6.250001"), net(END, "-6.25")),
    (
        Reason.IMPLAUSIBLE_VALUE,
        row(END, "6.250001", channel="1.0.3.8.0.255", unit="kvarh"),
        row(END, "6.25", channel="1.0.3.8.0.255", unit="kvarh"),
    ),
]

CASE_IDS = [f"{reason.value}-{i}" for i, (reason, _, _) in enumerate(CASES)]


def test_cases_cover_every_reason() -> None:
    covered = {reason for reason, _, _ in CASES}
    handled_elsewhere = {Reason.DUPLICATE_KEY_CONFLICT, Reason.REVISION_CONFLICT}
    assert covered | handled_elsewhere == {info.code for info in REASONS} == set(Reason)


@pytest.mark.parametrize(("reason", "bad", "good"), CASES, ids=CASE_IDS)
def test_bad_record_is_quarantined_with_exactly_its_reason(
    meters: Store, write_csv: WriteCsv, ingest: Ingest, reason: Reason, bad: str, good: str
) -> None:
    result = ingest(write_csv([bad]))
    held = meters.list_quarantine()
    assert len(held) == 1
    record = held[0]
    assert record.reasons == (reason.value,), record.detail
    assert record.raw == bad
    assert record.record_no == 2
    assert record.status == "open"
    assert record.format == "csv"
    assert record.detail
    assert result.counts.records == 1
    assert result.counts.accepted == 0
    assert result.counts.quarantined == 1
    assert result.counts.reasons == {reason.value: 1}
    assert meters.count("readings") == 0


@pytest.mark.parametrize(("reason", "bad", "good"), CASES, ids=CASE_IDS)
def test_similar_good_record_is_accepted(
    meters: Store, write_csv: WriteCsv, ingest: Ingest, reason: Reason, bad: str, good: str
) -> None:
    result = ingest(write_csv([good]))
    assert meters.list_quarantine() == []
    assert result.counts.accepted == 1
    assert result.counts.quarantined == 0
    assert meters.count("readings") == 1


@pytest.mark.parametrize(("reason", "bad", "good"), CASES, ids=CASE_IDS)
def test_bad_and_good_together(
    meters: Store, write_csv: WriteCsv, ingest: Ingest, reason: Reason, bad: str, good: str
) -> None:
    """In one file the rule still picks out only the bad line."""
    result = ingest(write_csv([good, bad]))
    held = meters.list_quarantine()
    assert [(q.reasons, q.raw, q.record_no) for q in held] == [((reason.value,), bad, 3)]
    assert result.counts.accepted == 1


# -- values that are stored: what exactly -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "milli"),
    [
        ("1.5", "kWh", 1_500_000),
        ("0.000001", "kWh", 1),
        ("0.0000010", "kWh", 1),  # trailing zeros are not precision
        (".5", "kWh", 500_000),
        ("5.", "kWh", 5_000_000),
        ("+2", "kWh", 2_000_000),
        ("007", "Wh", 7_000),
        ("00000000000000000001", "Wh", 1_000),  # leading zeros are not digits of magnitude
        ("0.001", "MWh", 1_000_000),
        ("6250", "Wh", 6_250_000),
        ("-0", "kWh", 0),
        ("0.0010000000", "MWh", 1_000_000),  # ten decimals, the last one a zero
    ],
)
def test_stored_value_is_exact(
    meter: str,
    store: Store,
    write_csv: WriteCsv,
    ingest: Ingest,
    value: str,
    unit: str,
    milli: int,
) -> None:
    ingest(write_csv([row(END, value, unit=unit)]))
    stored = store.all_readings()
    assert stored["value"].to_list() == [milli]
    assert stored["interval_end"].to_list() == [1_704_068_100]
    assert stored["interval_seconds"].to_list() == [900]


def test_stored_net_value_is_negative(
    meter: str, store: Store, write_csv: WriteCsv, ingest: Ingest
) -> None:
    result = ingest(write_csv([net(END, "-1.25")]))
    assert result.counts.accepted == 1
    stored = store.all_readings()
    assert stored.select("channel", "value").rows() == [("1.0.16.8.0.255", -1_250_000)]


def test_reduced_obis_and_offsets_are_normalised(
    meter: str, store: Store, write_csv: WriteCsv, ingest: Ingest
) -> None:
    ingest(write_csv([row("2024-01-01T05:45:00+05:30", "1", channel="1-0:1.8.0*255")]))
    stored = store.all_readings()
    assert stored.select("meter_id", "channel", "interval_end").rows() == [
        ("M1", "1.0.1.8.0.255", 1_704_068_100)
    ]


def test_quality_flags_are_stored(
    meter: str, store: Store, write_csv: WriteCsv, ingest: Ingest
) -> None:
    ingest(write_csv([row(END, "1", quality="estimated:linear|power-outage")]))
    assert store.all_readings()["quality"].to_list() == [1 | 32 | 4]


def test_several_reasons_at_once(
    meter: str, store: Store, write_csv: WriteCsv, ingest: Ingest
) -> None:
    line = row("2025-06-01T00:20:00Z", "-0.0000001", quality="great")
    ingest(write_csv([line]))
    (record,) = store.list_quarantine()
    assert set(record.reasons) == {
        Reason.MISALIGNED_INTERVAL.value,
        Reason.FUTURE_INTERVAL.value,
        Reason.VALUE_PRECISION.value,
        Reason.MALFORMED_QUALITY.value,
    }
    assert record.raw == line


# -- duplicates of a key inside one batch ------------------------------------------------------


def test_same_key_twice_with_different_values_quarantines_both(
    meter: str, store: Store, write_csv: WriteCsv, ingest: Ingest
) -> None:
    first, second = row(END, "1.5"), row(END, "1.6")
    other = row("2024-01-01T00:30:00Z", "2")
    result = ingest(write_csv([first, other, second]))
    held = store.list_quarantine()
    assert sorted((q.reasons, q.raw, q.record_no) for q in held) == [
        ((Reason.DUPLICATE_KEY_CONFLICT.value,), first, 2),
        ((Reason.DUPLICATE_KEY_CONFLICT.value,), second, 4),
    ]
    assert store.all_readings()["interval_end"].to_list() == [1_704_069_000]  # only `other`
    assert result.counts.accepted == 1
    assert result.counts.quarantined == 2
    assert result.counts.records == 3


def test_same_key_twice_with_different_quality_is_a_conflict(
    meter: str, store: Store, write_csv: WriteCsv, ingest: Ingest
) -> None:
    ingest(write_csv([row(END, "1.5"), row(END, "1.5", quality="estimated")]))
    assert [q.reasons for q in store.list_quarantine()] == [
        (Reason.DUPLICATE_KEY_CONFLICT.value,),
        (Reason.DUPLICATE_KEY_CONFLICT.value,),
    ]
    assert store.count("readings") == 0


def test_same_key_twice_with_different_length_is_a_conflict(
    meter: str, store: Store, write_csv: WriteCsv, ingest: Ingest
) -> None:
    end = "2024-01-01T01:00:00Z"
    ingest(write_csv([row(end, "1.5"), row(end, "1.5", seconds="3600")]))
    assert len(store.list_quarantine(reason=Reason.DUPLICATE_KEY_CONFLICT.value)) == 2
    assert store.count("readings") == 0


def test_same_key_in_two_spellings_is_the_same_key(
    meter: str, store: Store, write_csv: WriteCsv, ingest: Ingest
) -> None:
    a = row(END, "1.5")
    b = row("2024-01-01T05:45:00+05:30", "1.6", channel="1-0:1.8.0")
    ingest(write_csv([a, b]))
    assert sorted(q.raw for q in store.list_quarantine()) == sorted([a, b])
    assert store.count("readings") == 0


def test_identical_twice_is_stored_once_and_counted_as_duplicate(
    meter: str, store: Store, write_csv: WriteCsv, ingest: Ingest
) -> None:
    line = row(END, "1.5")
    same_value = row("2024-01-01T05:45:00+05:30", "1.500", quality="")
    result = ingest(write_csv([line, line, same_value]))
    assert store.list_quarantine() == []
    assert store.all_readings()["value"].to_list() == [1_500_000]
    assert result.counts.records == 3
    assert result.counts.accepted == 1
    assert result.counts.duplicates == 2


def test_bad_duplicates_do_not_clash_with_good_rows(
    meter: str, store: Store, write_csv: WriteCsv, ingest: Ingest
) -> None:
    """A quarantined row for a key is not a second value of it."""
    good, bad = row(END, "1.5"), row(END, "1.5", quality="great")
    ingest(write_csv([good, bad]))
    assert [q.reasons for q in store.list_quarantine()] == [(Reason.MALFORMED_QUALITY.value,)]
    assert store.count("readings") == 1


# -- the 23- and 25-hour days ------------------------------------------------------------------


def local_day_rows(day: str, zone: str, seconds: int = 900) -> list[str]:
    tz = ZoneInfo(zone)
    start = datetime.fromisoformat(day).replace(tzinfo=tz)
    stop = (start + timedelta(days=1)).replace(tzinfo=tz)
    rows: list[str] = []
    end = start.astimezone(ZoneInfo("UTC")) + timedelta(seconds=seconds)
    while end <= stop:
        rows.append(row(end.astimezone(tz).isoformat(), "0.25", meter="NY1", seconds=str(seconds)))
        end += timedelta(seconds=seconds)
    return rows


@pytest.mark.parametrize(
    ("day", "seconds", "count"),
    [
        ("2024-11-03", 900, 100),
        ("2024-03-10", 900, 92),
        ("2024-11-03", 3600, 25),
        ("2024-03-10", 3600, 23),
        ("2024-07-01", 900, 96),
    ],
)
def test_dst_days_in_new_york(
    store: Store, write_csv: WriteCsv, ingest: Ingest, day: str, seconds: int, count: int
) -> None:
    add_meter(store, "NY1", tz="America/New_York")
    rows = local_day_rows(day, "America/New_York", seconds)
    assert len(rows) == count
    result = ingest(write_csv(rows))
    assert store.list_quarantine() == []
    assert result.counts.accepted == count
    assert result.counts.duplicates == 0
    ends = store.all_readings()["interval_end"].to_list()
    assert len(set(ends)) == count
    assert all(b - a == seconds for a, b in itertools.pairwise(ends))


def test_fall_back_repeated_local_hour_is_two_keys(
    store: Store, write_csv: WriteCsv, ingest: Ingest
) -> None:
    add_meter(store, "NY1", tz="America/New_York")
    rows = [
        row("2024-11-03T01:15:00-04:00", "1", meter="NY1"),
        row("2024-11-03T01:15:00-05:00", "2", meter="NY1"),
    ]
    result = ingest(write_csv(rows))
    assert result.counts.accepted == 2
    assert store.all_readings()["interval_end"].to_list() == [1_730_610_900, 1_730_614_500]


def test_daily_interval_ends_at_local_midnight(
    store: Store, write_csv: WriteCsv, ingest: Ingest
) -> None:
    add_meter(store, "NY1", tz="America/New_York", capacity=1_000_000_000)
    good = [
        row("2024-11-04T00:00:00-05:00", "1", meter="NY1", seconds="86400"),
        row("2024-03-11T00:00:00-04:00", "1", meter="NY1", seconds="86400"),
    ]
    bad = row("2024-11-04T00:00:00Z", "1", meter="NY1", seconds="86400")  # 19:00 EST
    result = ingest(write_csv([*good, bad]))
    assert result.counts.accepted == 2
    assert [(q.reasons, q.raw) for q in store.list_quarantine()] == [
        ((Reason.MISALIGNED_INTERVAL.value,), bad)
    ]


# -- JSON lines through the same rules ---------------------------------------------------------


def test_jsonl_values(meter: str, store: Store, ingest: Ingest, tmp_path: Path) -> None:
    base = '{"meter_id": "M1", "channel": "1.0.1.8.0.255", "interval_seconds": 900, "unit": "kWh", '
    lines = [
        base + '"interval_end": "2024-01-01T00:15:00Z", "value": 0.1}',
        base + '"interval_end": "2024-01-01T00:30:00Z", "value": NaN}',
        base + '"interval_end": "2024-01-01T00:45:00Z", "value": null}',
        base + '"interval_end": "2024-01-01T01:00:00Z", "value": 1e-3}',
        base + '"interval_end": "2024-01-01T01:15:00Z", "value": true}',
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = ingest(path)
    assert store.all_readings()["value"].to_list() == [100_000]  # 0.1 kWh exactly
    held = {q.record_no: q.reasons for q in store.list_quarantine()}
    assert held == {
        2: (Reason.MISSING_VALUE.value,),
        3: (Reason.MISSING_VALUE.value,),
        4: (Reason.MALFORMED_VALUE.value,),
        5: (Reason.MALFORMED_ROW.value,),
    }
    assert result.counts.records == 5


# -- prepare() and check() directly ------------------------------------------------------------


def test_check_directly_with_a_registry(meter: str, store: Store) -> None:
    raw = raw_frame(
        [
            {
                "record_no": 2,
                "meter_id": "M1",
                "channel": "1.0.1.8.0.255",
                "interval_end": END,
                "interval_seconds": "900",
                "value": "1.5",
                "unit": "kWh",
                "raw": "a",
            },
            {
                "record_no": 3,
                "meter_id": "M1",
                "channel": "1.0.1.8.0.255",
                "interval_end": "2024-01-01T00:30:00Z",
                "interval_seconds": "900",
                "value": "-1",
                "unit": "kWh",
                "raw": "b",
            },
        ]
    )
    checked = check(prepare(raw), load_registry(store), now=int(NOW.timestamp()))
    assert checked.good.select(
        "meter_id", "channel", "interval_end", "value", "quality"
    ).rows() == [("M1", "1.0.1.8.0.255", 1_704_068_100, 1_500_000, 0)]
    assert checked.bad.select("record_no", "raw").rows() == [(3, "b")]
    assert checked.bad["reasons"].to_list() == [[Reason.NEGATIVE_VALUE.value]]
    assert checked.repeats == 0


def test_check_now_is_the_future_boundary(meter: str, store: Store) -> None:
    raw = raw_frame(
        [
            {
                "record_no": 2,
                "meter_id": "M1",
                "channel": "1.0.1.8.0.255",
                "interval_end": END,
                "interval_seconds": "900",
                "value": "1",
                "unit": "kWh",
                "raw": "a",
            }
        ]
    )
    end = 1_704_068_100
    registry = load_registry(store)
    assert check(prepare(raw), registry, now=end).good.height == 1
    late = check(prepare(raw), registry, now=end - 1)
    assert late.bad["reasons"].to_list() == [[Reason.FUTURE_INTERVAL.value]]


def test_registry_columns(meter: str, store: Store) -> None:
    registry = load_registry(store)
    assert registry.meters.rows() == [("M1", "UTC", 25_000_000, "active")]
    channels = registry.channels.filter(pl.col("obis") == "1.0.16.8.0.255")
    assert channels.select("meter_id", "base_unit", "allows_negative").rows() == [
        ("M1", "Wh", True)
    ]


# -- bugs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["\u0661", "\uff11.5", "1\u0665"])
def test_non_ascii_digits_are_a_malformed_value(
    meter: str, store: Store, write_csv: WriteCsv, ingest: Ingest, value: str
) -> None:
    good, bad = row("2024-01-01T00:30:00Z", "1"), row(END, value)
    ingest(write_csv([good, bad]))
    assert [(q.reasons, q.raw) for q in store.list_quarantine()] == [
        ((Reason.MALFORMED_VALUE.value,), bad)
    ]
    assert store.count("readings") == 1


@pytest.mark.parametrize("end", ["0001-01-01T00:15:00+01:00", "9999-12-31T23:45:00-14:00"])
def test_out_of_range_timestamp_is_quarantined(
    meter: str, store: Store, write_csv: WriteCsv, ingest: Ingest, end: str
) -> None:
    bad = row(end, "1")
    ingest(write_csv([row("2024-01-01T00:30:00Z", "1"), bad]))
    assert [(q.reasons, q.raw) for q in store.list_quarantine()] == [
        ((Reason.MALFORMED_TIMESTAMP.value,), bad)
    ]


@pytest.mark.parametrize(
    ("zone", "end"),
    [
        ("America/New_York", "0001-01-01T00:15:00+00:00"),
        ("Asia/Kolkata", "9999-12-31T23:45:00+00:00"),
    ],
)
def test_extreme_timestamp_on_a_zoned_meter_does_not_crash(
    store: Store, write_csv: WriteCsv, ingest: Ingest, zone: str, end: str
) -> None:
    add_meter(store, "Z1", tz=zone)
    try:
        result = ingest(write_csv([row(end, "1", meter="Z1")]))
    except MeterledgerError:  # pragma: no cover - a clean refusal would also be acceptable
        return
    assert result.counts.accepted + result.counts.quarantined == 1


def test_support_now_is_the_receipt_time() -> None:
    assert support.NOW.isoformat() == "2025-01-01T00:00:00+00:00"
