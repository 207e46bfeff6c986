"""VEE over stored data: the rules at ingest, gaps estimated through the ingest, findings on
the anomaly ledger, pending batches after a crash, re-runs after a rule change."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import support
from meterledger.core.reading import Quality
from meterledger.core.time import epoch_of
from meterledger.ingest import vee_check
from meterledger.ingest.pipeline import IngestOptions, Ingestor
from meterledger.ingest.vee_check import ESTIMATE_SOURCE, check_pending, check_range, source_kind
from meterledger.store.base import Store
from meterledger.vee.config import RuleSet

TZ = "America/New_York"
DAYS = 15
FIRST = datetime(2024, 10, 1, tzinfo=ZoneInfo(TZ)).astimezone(UTC)
SPIKE_AT = FIRST + timedelta(days=13, minutes=15 * 41)  # 2024-10-14 10:15 local
SHORT_GAP = [FIRST + timedelta(days=11, minutes=15 * i) for i in (30, 31)]
LONG_GAP = [FIRST + timedelta(days=12, minutes=15 * i) for i in range(50, 56)]


def _value(end: datetime) -> int:
    """mWh: the same ramp every local day, 200 Wh at midnight + 1 Wh per quarter-hour."""
    start = (end - timedelta(minutes=15)).astimezone(ZoneInfo(TZ))
    return 200_000 + 1_000 * (start.hour * 4 + start.minute // 15)


def _kwh(milli: int) -> str:
    return f"{milli / 1_000_000:.6f}"


def _lines(skip: set[datetime], spike: bool = True) -> list[str]:
    lines = []
    for i in range(1, DAYS * 96 + 1):
        end = FIRST + timedelta(minutes=15 * i)
        if end in skip:
            continue
        value = 5_000_000 if spike and end == SPIKE_AT else _value(end)
        lines.append(support.row(end.isoformat().replace("+00:00", "Z"), _kwh(value)))
    return lines


def _setup(store: Store, write_csv: Callable[..., Path]) -> Path:
    support.add_meter(store, tz=TZ)
    return write_csv([support.HEADER, *_lines(set(SHORT_GAP) | set(LONG_GAP))])


def _current(store: Store) -> dict[int, tuple[int, int]]:
    rows = store.readings("M1", 0, 2**40, "1.0.1.8.0.255")
    return {
        int(e): (int(v), int(q))
        for e, v, q in zip(rows["interval_end"], rows["value"], rows["quality"], strict=True)
    }


def test_ingest_with_vee_estimates_gaps_and_records_findings(
    store: Store, write_csv: Callable[..., Path]
) -> None:
    path = _setup(store, write_csv)
    result = Ingestor(store, now=support.NOW, vee=True).ingest_path(path, IngestOptions())
    assert result.vee is not None
    assert result.vee.estimated == len(SHORT_GAP) + len(LONG_GAP)
    current = _current(store)
    assert len(current) == DAYS * 96
    for end in SHORT_GAP:
        value, quality = current[epoch_of(end)]
        assert value == _value(end)  # a ramp: linear interpolation is exact
        assert quality == int(Quality.ESTIMATED | Quality.EST_LINEAR)
    for end in LONG_GAP:
        value, quality = current[epoch_of(end)]
        assert value == _value(end)  # every like day has the same ramp
        assert quality == int(Quality.ESTIMATED | Quality.EST_LIKE_DAY)
    # the gaps stay findings although estimated; the spike is found
    found = {(a.rule, a.interval_end) for a in store.list_anomalies(status=None)}
    assert ("GAP", epoch_of(SHORT_GAP[0])) in found
    assert ("GAP", epoch_of(LONG_GAP[0])) in found
    assert ("SPIKE", epoch_of(SPIKE_AT)) in found
    spike = next(a for a in store.list_anomalies() if a.rule == "SPIKE")
    assert spike.value == 5_000_000
    assert spike.meter_id == "M1" and spike.channel == "1.0.1.8.0.255"
    assert store.vee_pending() == []
    sources = store.batch_sources(sorted(store.batch_audit_refs()))
    assert ESTIMATE_SOURCE in {s for s, _ in sources.values()}


def test_a_fail_finding_holds_the_interval_out_of_billing(
    store: Store, write_csv: Callable[..., Path]
) -> None:
    path = _setup(store, write_csv)
    strict = RuleSet.from_mapping(
        {"version": 1, "classes": {"default": {"rules": {"SPIKE": "fail"}}}}
    )
    result = Ingestor(store, now=support.NOW, vee=True, ruleset=strict).ingest_path(
        path, IngestOptions()
    )
    assert result.vee is not None and result.vee.held == 1  # one interval, however many rules
    lo, hi = epoch_of(FIRST), epoch_of(FIRST + timedelta(days=DAYS))
    ends, _, _ = store.billing_read(lo, hi).for_meter("M1")
    assert epoch_of(SPIKE_AT) not in set(ends.tolist())
    assert len(ends) == DAYS * 96 - 1


def test_batches_left_unchecked_are_checked_later(
    store: Store, write_csv: Callable[..., Path]
) -> None:
    path = _setup(store, write_csv)
    Ingestor(store, now=support.NOW).ingest_path(path, IngestOptions())  # VEE off: a crash
    pending = store.vee_pending()
    assert pending
    assert store.list_anomalies() == []
    outcome = check_pending(store, now=support.NOW)
    assert outcome.batches == len(pending)
    assert store.vee_pending() == []
    assert any(a.rule == "SPIKE" for a in store.list_anomalies())
    # without an estimate writer the gaps stay gaps
    assert len(_current(store)) == DAYS * 96 - len(SHORT_GAP) - len(LONG_GAP)


def test_a_rerun_after_a_rule_change_clears_what_no_longer_fires(
    store: Store, write_csv: Callable[..., Path]
) -> None:
    path = _setup(store, write_csv)
    Ingestor(store, now=support.NOW, vee=True).ingest_path(path, IngestOptions())
    assert any(a.rule == "SPIKE" for a in store.list_anomalies())
    off = RuleSet.from_mapping({"version": 1, "classes": {"default": {"rules": {"SPIKE": "pass"}}}})
    check_range(store, meter_id="M1", ruleset=off, now=support.NOW)
    spike = next(a for a in store.list_anomalies(status=None) if a.rule == "SPIKE")
    assert spike.status == "cleared"
    # the rule back on: the same finding reopens
    check_range(store, meter_id="M1", now=support.NOW)
    spike = next(a for a in store.list_anomalies(status=None) if a.rule == "SPIKE")
    assert spike.status == "open"


def test_an_actual_supersedes_the_estimate(store: Store, write_csv: Callable[..., Path]) -> None:
    path = _setup(store, write_csv)
    ingestor = Ingestor(store, now=support.NOW, vee=True)
    ingestor.ingest_path(path, IngestOptions())
    late = LONG_GAP[2]
    actual = write_csv(
        [support.HEADER, support.row(late.isoformat().replace("+00:00", "Z"), "0.300000")],
        "late.csv",
    )
    result = ingestor.ingest_path(actual, IngestOptions())
    assert result.counts.superseded == 1
    assert _current(store)[epoch_of(late)] == (300_000, int(Quality.ACTUAL))


def test_source_kind() -> None:
    assert source_kind("dlms-collect", "csv") == "dlms"
    assert source_kind(ESTIMATE_SOURCE, "jsonl") == "vee"
    assert source_kind("/drop/a.xml", "greenbutton") == "greenbutton"


def test_a_day_a_delivery_skipped_is_found_when_the_next_one_arrives(
    store: Store, write_csv: Callable[..., Path]
) -> None:
    support.add_meter(store, tz=TZ)
    lines = _lines(set(), spike=False)
    first, second = lines[: 10 * 96], lines[11 * 96 :]  # day 11 never delivered
    ingestor = Ingestor(store, now=support.NOW, vee=True)
    ingestor.ingest_path(write_csv([support.HEADER, *first], "a.csv"), IngestOptions())
    result = ingestor.ingest_path(write_csv([support.HEADER, *second], "b.csv"), IngestOptions())
    assert result.vee is not None and result.vee.estimated == 96
    day11 = FIRST + timedelta(days=10, minutes=15)
    gaps = [a for a in store.list_anomalies() if a.rule == "GAP"]
    assert [g.interval_end for g in gaps] == [epoch_of(day11)]
    value, quality = _current(store)[epoch_of(day11)]
    assert (value, quality) == (_value(day11), int(Quality.ESTIMATED | Quality.EST_LIKE_DAY))


def test_checking_in_chunks_finds_the_same(
    store: Store, write_csv: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    support.add_meter(store, tz=TZ)
    support.add_meter(store, "M2", tz=TZ)
    lines = _lines(set(SHORT_GAP))
    lines += [line.replace("M1,", "M2,", 1) for line in _lines(set(LONG_GAP))]
    Ingestor(store, now=support.NOW).ingest_path(write_csv([support.HEADER, *lines]))
    monkeypatch.setattr(vee_check, "CHUNK_CHANNELS", 1)  # one meter's channels a pass
    ingestor = Ingestor(store, now=support.NOW)
    outcome = ingestor.check_pending()
    assert outcome.estimated == len(SHORT_GAP) + len(LONG_GAP)
    assert store.vee_pending() == []
    found = {(a.meter_id, a.rule) for a in store.list_anomalies()}
    assert {("M1", "SPIKE"), ("M2", "SPIKE"), ("M1", "GAP"), ("M2", "GAP")} <= found
