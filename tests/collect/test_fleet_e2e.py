"""The fleet collector end to end: real loopback TCP to the DLMS simulator, a real store
(both backends), readings through the ingest pipeline.

One simulator serves five meters as logical devices 1..5 with HLS-GMAC and suite 0:
MTR-00001 drifts 60 s a day, MTR-00004 never answers (E04), MTR-00005 holds keys the
head-end never got (E09). Simulator, collector and ingest share one fake "now"."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from meterledger.cli.collect import StoreLedger
from meterledger.collect.config import Fleet, parse_fleet
from meterledger.collect.fleet import CollectRun, FleetCollector, HandoffCounts, RegisterCounts
from meterledger.collect.profile import RegisterSample
from meterledger.core.reading import Reading
from meterledger.core.time import epoch_of
from meterledger.simulate.dlms_server import (
    DlmsSimulator,
    Framing,
    MeterBehaviour,
    SecurityMode,
    SimulatorConfig,
)
from meterledger.store.base import Store
from support import add_meter

START = datetime(2024, 3, 1, 5, tzinfo=UTC)  # midnight in New York
TZ = "America/New_York"
IMPORT = "1.0.1.8.0.255"
IDS = [f"MTR-{i:05d}" for i in range(1, 6)]
GOOD = IDS[:3]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def epoch(self) -> float:
        return self.now.timestamp()


class SpyLedger(StoreLedger):
    """The store ledger, noting every counter block it hands out and every handoff."""

    def __init__(self, store: Store, clock: Clock) -> None:
        super().__init__(store, now=clock)
        self.blocks: list[tuple[str, range]] = []
        self.handoffs: list[tuple[str, frozenset[str]]] = []  # (what, meters)

    def deliver_registers(self, reads: Sequence[RegisterSample]) -> RegisterCounts:
        self.handoffs.append(("registers", frozenset(r.meter_id for r in reads)))
        return super().deliver_registers(reads)

    def deliver(self, readings: Sequence[Reading]) -> HandoffCounts:
        self.handoffs.append(("readings", frozenset(r.meter_id for r in readings)))
        return super().deliver(readings)

    def reserve_counters(self, meter_id: str, block: int) -> range:
        got = super().reserve_counters(meter_id, block)
        self.blocks.append((meter_id, got))
        return got


def simulator(clock: Clock, framing: Framing = Framing.WRAPPER) -> DlmsSimulator:
    return DlmsSimulator(
        SimulatorConfig(
            meters=5,
            port=0,
            start=START,
            days=3,
            tz=TZ,
            framing=framing,
            security=SecurityMode.HLS_AUTH_ENC,
            clock=clock,
            overrides={
                0: MeterBehaviour(clock_drift_s_per_day=60.0),
                3: MeterBehaviour(silent=True),
                4: MeterBehaviour(wrong_keys=True),
            },
        )
    )


def fleet_for(sim: DlmsSimulator, framing: Framing = Framing.WRAPPER, **collector: Any) -> Fleet:
    meters = []
    for i, meter_id in enumerate(IDS):
        keys = sim.keys(i)
        meters.append(
            {
                "meter_id": meter_id,
                "server_sap": 1 + i,
                "ek": f"hex:{keys.ek.hex()}",
                "ak": f"hex:{keys.ak.hex()}",
            }
        )
    return parse_fleet(
        {
            "collector": {
                "attempts": 2,
                "backoff_initial": 0,
                "backoff_max": 0,
                "counter_block": 64,
                **collector,
            },
            "defaults": {
                "host": "127.0.0.1",
                "port": sim.port,
                "framing": framing.value,
                "client_sap": 1,
                "auth": "hls-gmac",
                "security": "auth-enc",
                "timeout": 0.3,
                "deadline": 20,
                "timezone": TZ,
            },
            "meters": meters,
        }
    )


def register(store: Store) -> None:
    for meter_id in IDS:
        add_meter(store, meter_id, tz=TZ, capacity=1_000_000_000)


def run_with_simulator(
    store: Store, clock: Clock, steps: Sequence[dict[str, Any]], framing: Framing = Framing.WRAPPER
) -> tuple[list[CollectRun], SpyLedger]:
    """Collect once per step (``advance``: seconds to move "now" first; the rest are
    collector options), all against one simulator."""
    ledger = SpyLedger(store, clock)
    runs: list[CollectRun] = []

    async def main() -> None:
        async with simulator(clock, framing) as sim:
            fleet = fleet_for(sim, framing)
            for step in steps:
                options = dict(step)
                clock.now += timedelta(seconds=options.pop("advance", 0))
                collector = FleetCollector(fleet, ledger, clock=clock.epoch, **options)
                runs.append(await collector.run())

    asyncio.run(main())
    return runs, ledger


def by_id(run: CollectRun) -> dict[str, Any]:
    return {r.meter_id: r for r in run.results}


def import_ends(store: Store, meter_id: str) -> list[int]:
    frame = store.readings(meter_id, 0, 2**40, IMPORT)
    return [int(v) for v in frame.get_column("interval_end").to_list()]


@pytest.mark.parametrize("framing", [Framing.WRAPPER, Framing.HDLC])
def test_collect_three_meters_one_silent_one_with_wrong_keys(
    store: Store, framing: Framing
) -> None:
    register(store)
    clock = Clock(START + timedelta(days=1))
    (run,), _ = run_with_simulator(store, clock, [{"force": True}], framing)
    results = by_id(run)
    for meter_id in GOOD:
        assert results[meter_id].ok and results[meter_id].code is None
        assert results[meter_id].intervals == 95  # a day of 96; the first row is the baseline
    silent, wrong = results["MTR-00004"], results["MTR-00005"]
    assert (silent.ok, silent.code, silent.attempts) == (False, "E04", 2)  # retried
    assert "E04 Response Timeout" in silent.message and "MTR-00004" in silent.message
    assert (wrong.ok, wrong.code, wrong.attempts) == (False, "E09", 1)  # never retried
    assert "E09 Security Level Violation" in wrong.message
    assert run.handoff.accepted == 3 * 95 and run.handoff.quarantined == 0
    assert store.count("readings") == 3 * 95
    # the clock: drift recorded per meter
    assert results["MTR-00001"].drift_ms == 60_000
    assert results["MTR-00002"].drift_ms == 0
    (read,) = store.clock_reads("MTR-00001")
    assert read.drift_ms == 60_000 and read.read_at == epoch_of(clock.now) * 1000
    assert store.clock_reads("MTR-00004") == []


def test_recollect_is_exactly_once_and_resumes_from_the_last_interval(store: Store) -> None:
    register(store)
    clock = Clock(START + timedelta(days=1))
    runs, _ = run_with_simulator(
        store,
        clock,
        [
            {"force": True},  # the first day
            {"force": True},  # the same again: nothing new
            {"since": START},  # a re-read of everything: duplicates, no effect
            {},  # on schedule: read moments ago, not due
            {"advance": 86_400},  # a day later: the next day, from the last interval
        ],
    )
    first, again, reread, scheduled, next_day = runs
    stored = store.count("readings")
    # register reads: one per row read after the last stored (the first read's baseline
    # row opens the period), exactly once like the readings
    assert first.registers == RegisterCounts(reads=3 * 96, new=3 * 96)
    assert again.registers == RegisterCounts()
    assert reread.registers == RegisterCounts(reads=3 * 96, duplicates=3 * 96)
    assert scheduled.registers == RegisterCounts()
    assert next_day.registers == RegisterCounts(reads=3 * 96, new=3 * 96)
    assert store.count("register_reads") == 3 * (96 + 96)
    assert first.handoff.accepted == 3 * 95
    assert [by_id(again)[m].intervals for m in GOOD] == [0, 0, 0]
    assert again.handoff.records == 0
    assert [by_id(reread)[m].intervals for m in GOOD] == [95, 95, 95]
    assert reread.handoff.accepted == 0 and reread.handoff.duplicates == 3 * 95
    assert all(by_id(scheduled)[m].skipped for m in GOOD)
    assert "not due" in by_id(scheduled)["MTR-00001"].message
    # a meter that failed has no clock read: it is due at once
    assert [by_id(scheduled)[m].code for m in IDS[3:]] == ["E04", "E09"]
    assert [by_id(next_day)[m].intervals for m in GOOD] == [96, 96, 96]
    assert next_day.handoff.accepted == 3 * 96
    assert stored == 3 * (95 + 96)
    for meter_id in GOOD:  # no gap and no overlap at the resumption point
        ends = import_ends(store, meter_id)
        assert ends == list(range(ends[0], ends[0] + 900 * len(ends), 900))
        assert ends[-1] == epoch_of(clock.now)
    # the drifting meter's second day shows twice the drift
    assert by_id(next_day)["MTR-00001"].drift_ms == 120_000


def test_invocation_counters_are_never_reused_across_sessions(store: Store) -> None:
    register(store)
    clock = Clock(START + timedelta(days=1))
    runs, ledger = run_with_simulator(
        store, clock, [{"force": True}, {"force": True, "advance": 3600}, {"force": True}]
    )
    for run in runs:  # the simulator refuses a replayed counter: every session went through
        assert all(by_id(run)[m].ok for m in GOOD)
    for meter_id in IDS:
        blocks = [b for m, b in ledger.blocks if m == meter_id]
        sessions = sum(by_id(run)[meter_id].attempts for run in runs)
        assert len(blocks) == sessions  # one block per session, retries included
        seen: set[int] = set()
        for block in blocks:
            assert seen.isdisjoint(block)
            seen |= set(block)
        assert store.counters(meter_id).reserved_upto == max(seen)
    last = [store.counters(m).server_last for m in GOOD]
    assert all(value > 0 for value in last)  # the meters' counters persisted
    assert store.counters("MTR-00004").server_last == 0


def test_register_reads_are_the_totals_at_each_capture_time(store: Store) -> None:
    """Each interval is exactly the difference of the register reads at its two ends, and
    a batch's register reads are handed to the store before its readings."""
    register(store)
    clock = Clock(START + timedelta(days=1))
    (run,), ledger = run_with_simulator(store, clock, [{"force": True}])
    assert run.registers.new == 3 * 96 and run.registers.conflicts == 0
    channels = {c.meter_id: c.channel_id for c in store.list_channels() if c.obis == IMPORT}
    for meter_id in GOOD:
        reads = store.register_reads([channels[meter_id]], 0, 2**40)
        frame = store.readings(meter_id, 0, 2**40, IMPORT)
        ends = [int(v) for v in frame.get_column("interval_end").to_list()]
        assert reads.read_at.tolist() == [ends[0] - 900, *ends]
        deltas = [int(b - a) for a, b in zip(reads.value[:-1], reads.value[1:], strict=True)]
        assert deltas == [int(v) for v in frame.get_column("value").to_list()]
        assert int(reads.value[0]) > 0  # a running total, not an interval
    assert store.register_reads([channels[m] for m in IDS[3:]], 0, 2**40).rows == 0
    kinds = [what for what, _ in ledger.handoffs]
    assert kinds.count("registers") == kinds.count("readings") >= 1
    for (first, meters), (second, same) in zip(
        ledger.handoffs[::2], ledger.handoffs[1::2], strict=True
    ):
        assert (first, second) == ("registers", "readings") and meters == same
