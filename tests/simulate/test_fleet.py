"""The simulated fleet's delivery: valid canonical CSV, deterministic, faults exactly as listed."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from meterledger.core.time import epoch_of, from_epoch, parse_instant
from meterledger.core.units import Unit, text_from_milli
from meterledger.simulate import fleet as fleet_module
from meterledger.simulate.fleet import (
    CHANNEL,
    CSV_HEADER,
    UNKNOWN_METER_ID,
    Delivery,
    FaultKind,
    SimMeter,
    make_fleet,
    write_delivery,
)
from meterledger.simulate.loadshapes import LoadKind

NY = ZoneInfo("America/New_York")
VEE_KINDS = {
    FaultKind.SHORT_GAP,
    FaultKind.PLAUSIBLE_SPIKE,
    FaultKind.FLAT_LINE,
    FaultKind.ZERO_DAY,
}
DEMO_START = datetime(2024, 10, 15, tzinfo=NY)


@dataclass(frozen=True)
class Demo:
    fleet: list[SimMeter]
    delivery: Delivery
    seconds: float


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The demo's delivery: 50 meters, 30 days of 15-minute data across the fall-back day."""
    began = time.perf_counter()
    fleet = make_fleet(50, seed=7)
    out = tmp_path_factory.mktemp("demo")
    delivery = write_delivery(fleet, start=DEMO_START, days=30, out_dir=out, seed=7)
    return Demo(fleet, delivery, time.perf_counter() - began)


def _lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return text.splitlines()


def _rows(path: Path) -> list[list[str]]:
    lines = _lines(path)
    assert lines[0] == CSV_HEADER
    return [line.split(",") for line in lines[1:]]


def _small(tmp_path: Path, seed: int, *, faults: bool = True) -> Delivery:
    return write_delivery(
        make_fleet(6, seed=seed),
        start=datetime(2024, 10, 30, 4, tzinfo=UTC),
        days=8,
        out_dir=tmp_path / f"seed{seed}-{faults}",
        seed=seed,
        faults=faults,
    )


def test_public_surface() -> None:
    assert set(fleet_module.__all__) == {
        "CAPACITY_KW",
        "CHANNEL",
        "CSV_HEADER",
        "EFFECTS",
        "INTERVAL_SECONDS",
        "UNKNOWN_METER_ID",
        "VEE_RULES",
        "Delivery",
        "FaultKind",
        "InjectedFault",
        "SimMeter",
        "VeeExpectation",
        "make_fleet",
        "write_delivery",
    }


def test_make_fleet_is_deterministic_and_mixed() -> None:
    fleet = make_fleet(50, seed=7)
    assert fleet == make_fleet(50, seed=7)
    assert fleet != make_fleet(50, seed=8)
    kinds = Counter(meter.kind for meter in fleet)
    assert kinds == {LoadKind.RESIDENTIAL: 35, LoadKind.COMMERCIAL: 15}
    assert [m.meter_id for m in fleet] == [f"MTR-{i:05d}" for i in range(1, 51)]
    assert [m.account for m in fleet] == [f"ACC-{i:05d}" for i in range(1, 51)]
    for meter in fleet:
        assert meter.service == "electric"
        assert meter.timezone == "America/New_York"
        if meter.kind is LoadKind.RESIDENTIAL:
            assert meter.capacity_milli_per_hour == 25_000_000
            assert 20 <= meter.daily_kwh <= 35
        else:
            assert meter.capacity_milli_per_hour == 250_000_000
            assert 200 <= meter.daily_kwh <= 800
    assert make_fleet(10, seed=1, tz="Europe/Berlin")[0].timezone == "Europe/Berlin"


def test_the_demo_delivery_is_quick(demo: Demo) -> None:
    assert demo.seconds < 5.0


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    first, again = _small(tmp_path / "a", 3), _small(tmp_path / "b", 3)
    other = _small(tmp_path / "c", 4)
    assert [p.name for p in first.files] == [p.name for p in again.files]
    assert [p.read_bytes() for p in first.files] == [p.read_bytes() for p in again.files]
    assert first.faults == again.faults
    assert [p.read_bytes() for p in first.files] != [p.read_bytes() for p in other.files]


def test_files_come_in_delivery_order(demo: Demo) -> None:
    names = [path.name for path in demo.delivery.files]
    days = [n for n in names if n.startswith("readings_") and n.count(".") == 1]
    assert days == sorted(days)
    assert days[0] == "readings_2024-10-15.csv"
    assert days[-1] == "readings_2024-11-13.csv"
    assert len(days) == 30
    assert names[-1] == "corrections_1.csv"
    (copy,) = [n for n in names if n.endswith(".redelivery.csv")]
    original = copy.replace(".redelivery", "")
    assert names.index(copy) > names.index(original)
    assert all(path.exists() for path in demo.delivery.files)


def test_every_row_is_canonical_csv(demo: Demo) -> None:
    broken = {
        (f.meter_id, f.interval_ends[0])
        for f in demo.delivery.faults
        if f.kind in (FaultKind.MALFORMED_ROW, FaultKind.MALFORMED_VALUE)
    }
    for path in demo.delivery.files:
        rows = _rows(path)
        assert rows
        order = []
        for row in rows:
            end = epoch_of(parse_instant(row[2]))
            order.append((row[0], end))
            if (row[0], end) in broken:
                continue
            assert len(row) == 7
            _, channel, interval_end, seconds, value, unit, quality = row
            assert channel == CHANNEL
            assert interval_end.endswith("+00:00")
            assert interval_end == from_epoch(end).isoformat()
            assert end % 900 == 0
            assert seconds == "900"
            assert unit == "kWh"
            assert quality in ("actual", "estimated")
            milli = Decimal(value) * 1_000_000
            assert milli == milli.to_integral_value()
            assert milli >= 0
            assert text_from_milli(int(milli), Unit.KWH) == value  # exactly the precision needed
        assert order == sorted(order), path.name


def test_rows_fall_on_each_meters_local_day(tmp_path: Path) -> None:
    fleet = [
        SimMeter(
            meter_id=f"MTR-0000{i}",
            kind=LoadKind.COMMERCIAL,
            account=f"ACC-0000{i}",
            daily_kwh=300.0,
            capacity_milli_per_hour=250_000_000,
            timezone=tz,
        )
        for i, tz in enumerate(("America/New_York", "Europe/Berlin", "Asia/Kolkata"), start=1)
    ]
    zones = {meter.meter_id: ZoneInfo(meter.timezone) for meter in fleet}
    delivery = write_delivery(
        fleet, start=DEMO_START, days=3, out_dir=tmp_path, seed=1, faults=False
    )
    assert delivery.expected() == {
        "accepted": 3 * 3 * 96,
        "duplicates": 0,
        "superseded": 0,
        "conflicts": 0,
        "quarantined": {},
    }
    for path in delivery.files:
        day = date.fromisoformat(path.stem.removeprefix("readings_"))
        per_meter = Counter[str]()
        for row in _rows(path):
            begin = epoch_of(parse_instant(row[2])) - 900
            assert from_epoch(begin).astimezone(zones[row[0]]).date() == day
            per_meter[row[0]] += 1
        assert per_meter == {meter.meter_id: 96 for meter in fleet}


def test_the_dst_day_file_has_100_quarter_hours_per_meter(tmp_path: Path) -> None:
    delivery = _small(tmp_path, 5, faults=False)
    assert [p.name for p in delivery.files][-1] == "readings_2024-11-06.csv"
    for path in delivery.files:
        per_meter = Counter(row[0] for row in _rows(path))
        expected = 100 if path.name == "readings_2024-11-03.csv" else 96
        assert set(per_meter.values()) == {expected}, path.name
    assert delivery.faults == ()
    assert delivery.expected()["accepted"] == delivery.fleet_keys == 6 * (7 * 96 + 100)


def _index(delivery: Delivery) -> dict[str, dict[tuple[str, int], list[list[str]]]]:
    """file name → (meter, interval_end) → rows carrying that key."""
    out: dict[str, dict[tuple[str, int], list[list[str]]]] = {}
    for path in delivery.files:
        keys: dict[tuple[str, int], list[list[str]]] = {}
        for row in _rows(path):
            keys.setdefault((row[0], epoch_of(parse_instant(row[2]))), []).append(row)
        out[path.name] = keys
    return out


def test_every_fault_is_in_the_files_as_the_manifest_says(demo: Demo) -> None:
    delivery = demo.delivery
    index = _index(delivery)
    by_id = {meter.meter_id: meter for meter in demo.fleet}
    kinds = Counter(fault.kind for fault in delivery.faults)
    assert kinds == {kind: 3 if kind in VEE_KINDS else 1 for kind in FaultKind}

    (gap,) = delivery.of_kind(FaultKind.GAP)
    assert gap.count == 8 and len(gap.interval_ends) == 8
    assert [b - a for a, b in pairwise(gap.interval_ends)] == [900] * 7
    for keys in index.values():
        assert not any((gap.meter_id, end) in keys for end in gap.interval_ends)
    # Its neighbours were delivered: a gap, not a shortened day.
    assert (gap.meter_id, gap.interval_ends[0] - 900) in index[gap.file] or (
        gap.meter_id,
        gap.interval_ends[-1] + 900,
    ) in index[gap.file]

    (copy,) = delivery.of_kind(FaultKind.REDELIVERY)
    folder = delivery.files[0].parent
    original = folder / copy.file.replace(".redelivery", "")
    assert (folder / copy.file).read_bytes() == original.read_bytes()
    assert copy.count == len(_rows(original)) == 50 * 96
    clean_day = set(index[original.name])
    for fault in delivery.faults:
        assert not any((fault.meter_id, end) in clean_day for end in fault.interval_ends)

    corrections = index["corrections_1.csv"]
    (estimate,) = delivery.of_kind(FaultKind.ESTIMATE_THEN_ACTUAL)
    assert estimate.count == 4 and estimate.expected_reason_or_effect == "superseded"
    for end in estimate.interval_ends:
        delivered = [
            rows
            for name, keys in index.items()
            if name != "corrections_1.csv"
            for rows in keys.get((estimate.meter_id, end), [])
        ]
        (first,) = delivered
        (actual,) = corrections[estimate.meter_id, end]
        assert first[6] == "estimated" and actual[6] == "actual"
        assert Decimal(first[4]) != Decimal(actual[4])

    (conflict,) = delivery.of_kind(FaultKind.REVISION_CONFLICT)
    assert conflict.count == 3 and conflict.expected_reason_or_effect == "REVISION_CONFLICT"
    for end in conflict.interval_ends:
        delivered = [
            rows
            for name, keys in index.items()
            if name != "corrections_1.csv"
            for rows in keys.get((conflict.meter_id, end), [])
        ]
        (first,) = delivered
        (second,) = corrections[conflict.meter_id, end]
        assert first[6] == second[6] == "actual"
        assert Decimal(first[4]) != Decimal(second[4])
    assert len(corrections) == 7

    (spike,) = delivery.of_kind(FaultKind.SPIKE)
    meter = by_id[spike.meter_id]
    assert meter.kind is LoadKind.RESIDENTIAL
    (row,) = index[spike.file][spike.meter_id, spike.interval_ends[0]]
    assert Decimal(row[4]) >= 500
    assert Decimal(row[4]) * 1_000_000 > 10 * meter.capacity_per_interval(900)
    assert spike.expected_reason_or_effect == "IMPLAUSIBLE_VALUE"

    (malformed,) = delivery.of_kind(FaultKind.MALFORMED_ROW)
    (row,) = index[malformed.file][malformed.meter_id, malformed.interval_ends[0]]
    assert len(row) == 6

    (bad_value,) = delivery.of_kind(FaultKind.MALFORMED_VALUE)
    (row,) = index[bad_value.file][bad_value.meter_id, bad_value.interval_ends[0]]
    assert len(row) == 7 and row[4] == "abc"

    (unknown,) = delivery.of_kind(FaultKind.UNKNOWN_METER)
    assert unknown.meter_id == UNKNOWN_METER_ID not in by_id
    for name, keys in index.items():
        found = sorted(end for meter_id, end in keys if meter_id == UNKNOWN_METER_ID)
        if name == unknown.file:
            assert tuple(found) == unknown.interval_ends and len(found) == unknown.count == 96
        elif name != original.name.replace(".csv", ".redelivery.csv"):
            assert not found


def _replay(delivery: Delivery, fleet: list[SimMeter]) -> dict[str, object]:
    """An independent model of what a correct ingest does with the files, in order."""
    capacity = {meter.meter_id: meter.capacity_per_interval(900) for meter in fleet}
    view: dict[tuple[str, str, int], tuple[int, str]] = {}
    totals = Counter[str]()
    quarantined = Counter[str]()
    for path in delivery.files:
        for row in _rows(path):
            if len(row) != 7:
                quarantined["MALFORMED_ROW"] += 1
                continue
            meter_id, channel, interval_end, _, text, _, quality = row
            if meter_id not in capacity:
                quarantined["UNKNOWN_METER"] += 1
                continue
            try:
                value = int(Decimal(text) * 1_000_000)
            except InvalidOperation:
                quarantined["MALFORMED_VALUE"] += 1
                continue
            if value > capacity[meter_id]:
                quarantined["IMPLAUSIBLE_VALUE"] += 1
                continue
            key = (meter_id, channel, epoch_of(parse_instant(interval_end)))
            current = view.get(key)
            if current is None:
                view[key] = (value, quality)
            elif current == (value, quality):
                totals["duplicates"] += 1
            elif current[1] == "estimated" and quality == "actual":
                totals["superseded"] += 1
                view[key] = (value, quality)
            elif current[1] == quality == "actual":
                totals["conflicts"] += 1
            else:
                raise AssertionError(f"unexpected revision {current} -> {row}")
    return {
        "accepted": len(view),
        "duplicates": totals["duplicates"],
        "superseded": totals["superseded"],
        "conflicts": totals["conflicts"],
        "quarantined": dict(sorted(quarantined.items())),
    }


def test_expected_totals_agree_with_the_files(demo: Demo) -> None:
    expected = demo.delivery.expected()
    assert expected == _replay(demo.delivery, demo.fleet)
    assert demo.delivery.fleet_keys == 50 * (29 * 96 + 100)
    assert expected == {
        # the long gap, three short gaps, the spike and the two malformed rows
        "accepted": 50 * (29 * 96 + 100) - 8 - 3 * 3 - 1 - 1 - 1,
        "duplicates": 50 * 96,
        "superseded": 4,
        "conflicts": 3,
        "quarantined": {
            "IMPLAUSIBLE_VALUE": 1,
            "MALFORMED_ROW": 1,
            "MALFORMED_VALUE": 1,
            "UNKNOWN_METER": 96,
        },
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_small_deliveries_also_agree(tmp_path: Path, seed: int) -> None:
    fleet = make_fleet(6, seed=seed)
    delivery = _small(tmp_path, seed)
    assert delivery.expected() == _replay(delivery, fleet)


def test_faults_fit_into_two_days_and_one_meter(tmp_path: Path) -> None:
    fleet = make_fleet(1, seed=9)
    delivery = write_delivery(fleet, start=DEMO_START, days=2, out_dir=tmp_path, seed=9)
    assert delivery.expected() == _replay(delivery, fleet)
    classic = Counter(f.kind for f in delivery.faults if f.kind not in VEE_KINDS)
    assert classic == {kind: 1 for kind in FaultKind if kind not in VEE_KINDS}
    # VEE faults are placed where there is room; whatever is listed is in the files
    keys = [(f.meter_id, end) for f in delivery.faults for end in f.interval_ends]
    assert len(keys) == len(set(keys))


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    fleet = make_fleet(3, seed=1)
    with pytest.raises(ValueError, match="aware"):
        write_delivery(fleet, start=datetime(2024, 10, 15), days=3, out_dir=tmp_path, seed=1)
    with pytest.raises(ValueError, match="days"):
        write_delivery(fleet, start=DEMO_START, days=1, out_dir=tmp_path, seed=1)
    with pytest.raises(ValueError, match="empty"):
        write_delivery([], start=DEMO_START, days=3, out_dir=tmp_path, seed=1)
    with pytest.raises(ValueError, match="unique"):
        write_delivery([*fleet, fleet[0]], start=DEMO_START, days=3, out_dir=tmp_path, seed=1)
    assert (
        write_delivery(
            fleet, start=DEMO_START, days=1, out_dir=tmp_path, seed=1, faults=False
        ).expected()["accepted"]
        == 3 * 96
    )
