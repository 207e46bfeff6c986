"""The VEE faults of the simulated delivery: valid records ingest accepts, and the findings
VEE must make on what was stored (Delivery.vee), checked against the files themselves."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from meterledger.core.time import epoch_of, from_epoch, parse_instant
from meterledger.simulate import faults as faults_module
from meterledger.simulate import feed as feed_module
from meterledger.simulate.faults import (
    EFFECTS,
    VEE_RULES,
    Delivery,
    FaultKind,
    InjectedFault,
    VeeExpectation,
)
from meterledger.simulate.feed import CHANNEL, CSV_HEADER, Feed, SimMeter
from meterledger.simulate.fleet import _spike_milli, _vee_expectations, make_fleet, write_delivery
from meterledger.simulate.loadshapes import LoadKind

NY = ZoneInfo("America/New_York")
DEMO_START = datetime(2024, 10, 15, tzinfo=NY)
STEP = 900
VEE_KINDS = (
    FaultKind.SHORT_GAP,
    FaultKind.PLAUSIBLE_SPIKE,
    FaultKind.FLAT_LINE,
    FaultKind.ZERO_DAY,
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[SimMeter], Delivery]:
    fleet = make_fleet(50, seed=7)
    out = tmp_path_factory.mktemp("demo-vee")
    return fleet, write_delivery(fleet, start=DEMO_START, days=30, out_dir=out, seed=7)


Rows = dict[tuple[str, int], list[tuple[str, Decimal, str]]]


def _rows(delivery: Delivery) -> Rows:
    """(meter, interval_end) → [(file name, kWh, quality)] over every 7-field row."""
    out: Rows = {}
    for path in delivery.files:
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines[0] == CSV_HEADER
        for line in lines[1:]:
            fields = line.split(",")
            if len(fields) != 7 or fields[4] == "abc":
                continue
            key = (fields[0], epoch_of(parse_instant(fields[2])))
            out.setdefault(key, []).append((path.name, Decimal(fields[4]), fields[6]))
    return out


def _kwh(rows: Rows, meter_id: str, end: int) -> Decimal:
    """The value the billing view keeps: the first actual (or the one after an estimate)."""
    delivered = rows[meter_id, end]
    actual = [value for _, value, quality in delivered if quality == "actual"]
    return actual[0]


def test_public_surfaces() -> None:
    assert set(faults_module.__all__) == {
        "EFFECTS",
        "VEE_RULES",
        "Delivery",
        "FaultKind",
        "InjectedFault",
        "VeeExpectation",
    }
    assert set(feed_module.__all__) == {
        "CHANNEL",
        "CSV_HEADER",
        "Feed",
        "SimMeter",
        "csv_bytes",
        "kwh_text",
    }


def test_every_vee_fault_has_an_ingest_effect_and_a_rule() -> None:
    assert set(EFFECTS) == set(FaultKind)
    assert {kind: EFFECTS[kind] for kind in VEE_KINDS} == {
        FaultKind.SHORT_GAP: "missing",
        FaultKind.PLAUSIBLE_SPIKE: "accepted",
        FaultKind.FLAT_LINE: "accepted",
        FaultKind.ZERO_DAY: "accepted",
    }
    assert VEE_RULES == {
        FaultKind.GAP: "GAP",
        FaultKind.SHORT_GAP: "GAP",
        FaultKind.SPIKE: "GAP",
        FaultKind.MALFORMED_ROW: "GAP",
        FaultKind.MALFORMED_VALUE: "GAP",
        FaultKind.PLAUSIBLE_SPIKE: "SPIKE",
        FaultKind.FLAT_LINE: "FLAT_LINE",
        FaultKind.ZERO_DAY: "ZERO_CONSUMPTION",
    }
    # what leaves no trace in the billing view gives VEE nothing to find
    for kind in (
        FaultKind.REDELIVERY,
        FaultKind.ESTIMATE_THEN_ACTUAL,
        FaultKind.REVISION_CONFLICT,
        FaultKind.UNKNOWN_METER,
    ):
        assert kind not in VEE_RULES


def test_vee_faults_sit_on_their_own_meters(demo: tuple[list[SimMeter], Delivery]) -> None:
    _, delivery = demo
    vee = [f for f in delivery.faults if f.kind in VEE_KINDS]
    assert Counter(f.kind for f in vee) == dict.fromkeys(VEE_KINDS, 3)
    meters = [f.meter_id for f in vee]
    assert len(set(meters)) == 12
    classic = {f.meter_id for f in delivery.faults if f.kind not in VEE_KINDS}
    assert not classic & set(meters)


def test_zero_days_are_whole_local_days_of_actual_zeros(
    demo: tuple[list[SimMeter], Delivery],
) -> None:
    _, delivery = demo
    rows = _rows(delivery)
    for fault in delivery.of_kind(FaultKind.ZERO_DAY):
        day = date.fromisoformat(fault.file.removeprefix("readings_").removesuffix(".csv"))
        assert fault.count == len(fault.interval_ends) in (92, 96, 100)
        for end in fault.interval_ends:
            assert rows[fault.meter_id, end] == [(fault.file, Decimal(0), "actual")]
        # exactly that local day: the intervals just outside it are normal, non-zero
        before, after = fault.interval_ends[0] - STEP, fault.interval_ends[-1] + STEP
        for end in (before, after):
            if (fault.meter_id, end) in rows:
                assert _kwh(rows, fault.meter_id, end) > 0
        first_start = datetime.fromtimestamp(fault.interval_ends[0] - STEP, NY)
        assert first_start.date() == day and (first_start.hour, first_start.minute) == (0, 0)


def test_flat_lines_are_32_identical_plausible_values(
    demo: tuple[list[SimMeter], Delivery],
) -> None:
    fleet, delivery = demo
    rows = _rows(delivery)
    by_id = {m.meter_id: m for m in fleet}
    for fault in delivery.of_kind(FaultKind.FLAT_LINE):
        ends = fault.interval_ends
        assert len(ends) == fault.count == 32
        assert list(ends) == list(range(ends[0], ends[-1] + STEP, STEP))
        values = {_kwh(rows, fault.meter_id, end) for end in ends}
        (value,) = values
        assert 0 < value * 1_000_000 <= by_id[fault.meter_id].capacity_per_interval(STEP)
        assert value == value.quantize(Decimal("0.001"))  # whole Wh
        assert all(q == "actual" for end in ends for _, _, q in rows[fault.meter_id, end])
        for end in (ends[0] - STEP, ends[-1] + STEP):
            assert _kwh(rows, fault.meter_id, end) != value


def test_plausible_spikes_pass_ingest_and_tower_over_their_day(
    demo: tuple[list[SimMeter], Delivery],
) -> None:
    fleet, delivery = demo
    rows = _rows(delivery)
    by_id = {m.meter_id: m for m in fleet}
    for fault in delivery.of_kind(FaultKind.PLAUSIBLE_SPIKE):
        meter = by_id[fault.meter_id]
        assert meter.kind is LoadKind.RESIDENTIAL
        (end,) = fault.interval_ends
        spike = _kwh(rows, meter.meter_id, end)
        assert spike * 1_000_000 <= meter.capacity_per_interval(STEP) * 9 // 10
        day = sorted(
            (
                _kwh(rows, meter.meter_id, other)
                for (meter_id, other), found in rows.items()
                if meter_id == meter.meter_id and any(f == fault.file for f, _, _ in found)
            ),
            reverse=True,
        )
        assert day[0] == spike
        assert spike >= 5 * day[2]
        assert f"{spike} kWh" in fault.detail


def test_short_gaps_are_three_missing_keys_between_delivered_ones(
    demo: tuple[list[SimMeter], Delivery],
) -> None:
    _, delivery = demo
    rows = _rows(delivery)
    for fault in delivery.of_kind(FaultKind.SHORT_GAP):
        ends = fault.interval_ends
        assert len(ends) == 3 and ends[-1] - ends[0] == 2 * STEP
        assert not any((fault.meter_id, end) in rows for end in ends)
        assert (fault.meter_id, ends[0] - STEP) in rows
        assert (fault.meter_id, ends[-1] + STEP) in rows


def _missing_runs(
    delivery: Delivery, fleet: list[SimMeter], rows: Rows
) -> list[tuple[str, int, int]]:
    """Independent of the manifest: runs of keys with no accepted value, per meter."""
    capacity = {m.meter_id: m.capacity_per_interval(STEP) for m in fleet}
    first = epoch_of(datetime(2024, 10, 15, tzinfo=NY)) + STEP
    last = epoch_of(datetime(2024, 11, 14, tzinfo=NY))
    runs: list[tuple[str, int, int]] = []
    for meter_id in sorted(capacity):
        start = None
        for end in range(first, last + STEP, STEP):
            found = rows.get((meter_id, end), [])
            ok = any(v * 1_000_000 <= capacity[meter_id] for _, v, _ in found)
            if not ok and start is None:
                start = end
            if ok and start is not None:
                runs.append((meter_id, start, end - STEP))
                start = None
        assert start is None  # no gap runs to the end of the demo
    return runs


def test_the_gap_findings_are_exactly_the_holes_in_the_files(
    demo: tuple[list[SimMeter], Delivery],
) -> None:
    fleet, delivery = demo
    rows = _rows(delivery)
    gaps = [e for e in delivery.vee if e.rule == "GAP"]
    assert [(e.meter_id, e.first_end, e.last_end) for e in gaps] == _missing_runs(
        delivery, fleet, rows
    )
    assert Counter((e.kind, e.intervals, e.estimate) for e in gaps) == {
        (FaultKind.GAP, 8, "like-day"): 1,
        (FaultKind.SHORT_GAP, 3, "linear"): 3,
        (FaultKind.SPIKE, 1, "linear"): 1,
        (FaultKind.MALFORMED_ROW, 1, "linear"): 1,
        (FaultKind.MALFORMED_VALUE, 1, "linear"): 1,
    }


def test_every_vee_fault_is_one_finding_of_its_rule(demo: tuple[list[SimMeter], Delivery]) -> None:
    _, delivery = demo
    assert Counter(e.rule for e in delivery.vee) == {
        "GAP": 7,
        "SPIKE": 3,
        "FLAT_LINE": 3,
        "ZERO_CONSUMPTION": 3,
    }
    assert list(delivery.vee) == sorted(
        delivery.vee, key=lambda e: (e.meter_id, e.first_end, e.rule)
    )
    listed = {(e.kind, e.meter_id, e.first_end, e.last_end) for e in delivery.vee}
    for fault in delivery.faults:
        if fault.kind in VEE_RULES:
            ends = fault.interval_ends
            assert (fault.kind, fault.meter_id, ends[0], ends[-1]) in listed
    for item in delivery.vee:
        assert item.channel == CHANNEL
        assert item.intervals == (item.last_end - item.first_end) // STEP + 1
        assert item.estimate in (("linear", "like-day") if item.rule == "GAP" else ("",))


def test_vee_expected_is_json_ready(demo: tuple[list[SimMeter], Delivery]) -> None:
    _, delivery = demo
    (gap,) = [e for e in delivery.vee if e.kind is FaultKind.GAP]
    as_json = delivery.vee_expected()
    assert len(as_json) == len(delivery.vee)
    assert as_json[delivery.vee.index(gap)] == {
        "fault": "gap",
        "meter_id": gap.meter_id,
        "channel": "1.0.1.8.0.255",
        "first_interval_end": from_epoch(gap.first_end).isoformat(),
        "last_interval_end": from_epoch(gap.last_end).isoformat(),
        "intervals": 8,
        "rule": "GAP",
        "estimate": "like-day",
    }
    assert str(as_json[0]["first_interval_end"]).endswith("+00:00")


def test_without_vee_faults_the_classic_delivery_is_untouched(
    demo: tuple[list[SimMeter], Delivery], tmp_path: Path
) -> None:
    fleet, delivery = demo
    plain = write_delivery(fleet, start=DEMO_START, days=30, out_dir=tmp_path, seed=7, vee_faults=0)
    classic = [f for f in delivery.faults if f.kind not in VEE_KINDS]
    assert list(plain.faults) == classic
    assert plain.expected()["accepted"] == 50 * (29 * 96 + 100) - 8 - 1 - 1 - 1
    assert len(plain.vee) == 4  # the long gap and the three quarantined keys
    # the VEE faults change only their own rows
    changed = {
        (f.meter_id, end) for f in delivery.faults if f.kind in VEE_KINDS for end in f.interval_ends
    }
    for mine, theirs in zip(delivery.files, plain.files, strict=True):
        assert mine.name == theirs.name
        a = set(mine.read_text().splitlines())
        b = set(theirs.read_text().splitlines())
        for line in a ^ b:
            fields = line.split(",")
            assert (fields[0], epoch_of(parse_instant(fields[2]))) in changed


def test_vee_faults_are_deterministic(tmp_path: Path) -> None:
    fleet = make_fleet(12, seed=3)
    one = write_delivery(fleet, start=DEMO_START, days=8, out_dir=tmp_path / "a", seed=3)
    two = write_delivery(fleet, start=DEMO_START, days=8, out_dir=tmp_path / "b", seed=3)
    other = write_delivery(fleet, start=DEMO_START, days=8, out_dir=tmp_path / "c", seed=4)
    assert one.faults == two.faults and one.vee == two.vee
    assert one.vee != other.vee
    assert Counter(f.kind for f in one.faults if f.kind in VEE_KINDS) == dict.fromkeys(VEE_KINDS, 3)


def test_a_tiny_fleet_gets_the_vee_faults_that_fit(tmp_path: Path) -> None:
    fleet = make_fleet(1, seed=9)
    delivery = write_delivery(fleet, start=DEMO_START, days=2, out_dir=tmp_path, seed=9)
    kinds = Counter(f.kind for f in delivery.faults)
    assert kinds[FaultKind.ZERO_DAY] == 0  # the only free day is the redelivered one
    placed = [f for f in delivery.faults if f.kind in VEE_KINDS]
    assert placed
    listed = {(e.meter_id, e.first_end, e.last_end) for e in delivery.vee}
    for fault in placed:
        assert (fault.meter_id, fault.interval_ends[0], fault.interval_ends[-1]) in listed
    with pytest.raises(ValueError, match="vee_faults"):
        write_delivery(fleet, start=DEMO_START, days=2, out_dir=tmp_path, seed=9, vee_faults=-1)


def test_zero_days_are_never_the_23_hour_day(tmp_path: Path) -> None:
    placed = 0
    for seed in range(1, 6):
        delivery = write_delivery(
            make_fleet(8, seed=seed),
            start=datetime(2024, 3, 9, tzinfo=NY),
            days=3,
            out_dir=tmp_path / str(seed),
            seed=seed,
        )
        for fault in delivery.of_kind(FaultKind.ZERO_DAY):
            assert fault.file != "readings_2024-03-10.csv"
            assert fault.count == 96
            placed += 1
    assert placed >= 3


def _tiny_feed(values: list[int], kind: LoadKind = LoadKind.RESIDENTIAL) -> Feed:
    meter = SimMeter(
        meter_id="MTR-00001",
        kind=kind,
        account="ACC-00001",
        daily_kwh=25.0,
        capacity_milli_per_hour=25_000_000,
    )
    feed = Feed([meter], date(2024, 10, 15), 2, 1, STEP)
    feed.series[meter.meter_id] = values + [values[-1]] * (192 - len(values))
    return feed


def test_the_spike_value_is_ten_times_the_third_highest_within_90_percent_of_capacity() -> None:
    # a day of 0.3 kWh with a 0.5 and a 0.4 on top: with the spike on top, 0.4 is third;
    # 10 x 0.4 = 4 kWh, under 90 % of 6.25
    feed = _tiny_feed([500_000, 400_000] + [300_000] * 94)
    meter = feed.fleet[0]
    ends = feed.ends(meter.timezone, 0)
    assert _spike_milli(feed, meter, 0, ends[10]) == 4_000_000
    # the spike replacing the 0.5: then 0.3 is third, 10 x 0.3 = 3 kWh
    assert _spike_milli(feed, meter, 0, ends[0]) == 3_000_000
    # a high day: 10 x 0.6 = 6 kWh is capped at 5.625 kWh, still over 5 x 0.6
    feed = _tiny_feed([600_000] * 96)
    assert _spike_milli(feed, feed.fleet[0], 0, ends[5]) == 5_625_000
    # 1.2 kWh: 5 x 1.2 = 6 kWh does not fit under 90 % of capacity: no spike on that day
    feed = _tiny_feed([1_200_000] * 96)
    assert _spike_milli(feed, feed.fleet[0], 0, ends[5]) is None
    # a quiet day: 10 x 0.1 = 1 kWh is raised to 2 kWh above the third-highest
    feed = _tiny_feed([100_000] * 96)
    assert _spike_milli(feed, feed.fleet[0], 0, ends[5]) == 2_100_000
    # a day of zeros cannot carry a spike either
    feed = _tiny_feed([0] * 96)
    assert _spike_milli(feed, feed.fleet[0], 0, ends[5]) is None


def test_adjacent_missing_keys_of_two_faults_are_one_gap() -> None:
    feed = _tiny_feed([300_000] * 192)
    first = feed.ends("America/New_York", 0)[0]
    mid = first + 40 * STEP

    def fault(kind: FaultKind, ends: tuple[int, ...]) -> InjectedFault:
        return InjectedFault(kind, "MTR-00001", "", EFFECTS[kind], len(ends), "f.csv", ends)

    found = _vee_expectations(
        feed,
        [
            fault(FaultKind.SHORT_GAP, (mid, mid + STEP)),
            fault(FaultKind.MALFORMED_ROW, (mid + 2 * STEP,)),
            fault(FaultKind.MALFORMED_VALUE, (mid + 4 * STEP,)),
            fault(FaultKind.SPIKE, (first,)),  # the very first key: no left neighbour
            fault(FaultKind.GAP, tuple(mid + k * STEP for k in range(10, 15))),
            fault(FaultKind.FLAT_LINE, tuple(mid + k * STEP for k in range(20, 44))),
            fault(FaultKind.REVISION_CONFLICT, (mid + 60 * STEP,)),
        ],
    )

    def gap(kind: FaultKind, a: int, b: int, method: str) -> VeeExpectation:
        return VeeExpectation(kind, "MTR-00001", CHANNEL, a, b, (b - a) // STEP + 1, "GAP", method)

    assert found == [
        gap(FaultKind.SPIKE, first, first, "like-day"),
        gap(FaultKind.SHORT_GAP, mid, mid + 2 * STEP, "linear"),
        gap(FaultKind.MALFORMED_VALUE, mid + 4 * STEP, mid + 4 * STEP, "linear"),
        gap(FaultKind.GAP, mid + 10 * STEP, mid + 14 * STEP, "like-day"),
        VeeExpectation(
            FaultKind.FLAT_LINE,
            "MTR-00001",
            CHANNEL,
            mid + 20 * STEP,
            mid + 43 * STEP,
            24,
            "FLAT_LINE",
            "",
        ),
    ]


def test_find_run_keeps_a_free_delivered_margin_and_gives_up_when_full() -> None:
    feed = _tiny_feed([300_000] * 192)
    meter = feed.fleet[0]
    rng = random.Random(1)
    found = feed.find_run(rng, [0, 1], 3, [[meter]], margin=1)
    assert found is not None
    _, day, run = found
    assert len(run) == 3 and run[0] - STEP >= feed.ends(meter.timezone, 0)[0]
    assert {(meter.meter_id, end) for end in range(run[0] - STEP, run[-1] + 2 * STEP, STEP)} <= (
        feed.taken
    )
    assert len(feed.taken) == 5
    # a whole day is free only once per meter and day
    assert feed.find_run(rng, [day], 0, [[meter]]) is None
    other = 1 - day
    whole = feed.find_run(rng, [other], 0, [[meter]])
    assert whole is not None and len(whole[2]) == 96
    assert feed.find_run(rng, [other], 1, [[meter]]) is None
    # an empty pool is skipped, the next one used
    assert feed.find_run(rng, [day], 1, [[], [meter]]) is not None
