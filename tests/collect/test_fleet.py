"""The fleet collector's policies without a network: breakers, deadlines, bounded
concurrency, one meter's failure not stopping the others (fake transports and ledger)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from threading import current_thread
from typing import Any

from meterledger.collect.breaker import BreakerEvent, BreakerState
from meterledger.collect.config import MeterEndpoint, parse_fleet
from meterledger.collect.errors import ConnectFailedError
from meterledger.collect.fleet import (
    ClockSample,
    FleetCollector,
    HandoffCounts,
    RegisterCounts,
    RegisterLedger,
)
from meterledger.collect.profile import RegisterSample
from meterledger.collect.transport import Transport
from meterledger.core.reading import Reading


class MemoryLedger:
    def __init__(self) -> None:
        self.delivered: list[Reading] = []
        self.sessions: list[tuple[str, ClockSample | None, int | None]] = []
        self.reads: dict[str, int] = {}

    def last_read_ms(self, meter_id: str) -> int | None:
        return self.reads.get(meter_id)

    def last_interval_ends(self, meter_id: str, channels: Sequence[str]) -> dict[str, int | None]:
        return dict.fromkeys(channels)

    def server_counter(self, meter_id: str) -> int:
        return 0

    def reserve_counters(self, meter_id: str, block: int) -> range:
        return range(1, block + 1)

    def record_session(
        self, meter_id: str, clock: ClockSample | None, server_counter: int | None
    ) -> None:
        self.sessions.append((meter_id, clock, server_counter))

    def deliver(self, readings: Sequence[Reading]) -> HandoffCounts:
        self.delivered += readings
        return HandoffCounts(records=len(readings), accepted=len(readings), batches=1)


class Silent:
    """A transport that connects and then never answers."""

    peer = "silent"

    async def send(self, data: bytes) -> None:
        return None

    async def receive(self) -> bytes:
        await asyncio.sleep(3600)
        return b""

    def close(self) -> None:
        return None


def fleet(n: int, **collector: Any) -> Any:
    return parse_fleet(
        {
            "collector": {"attempts": 1, "backoff_initial": 0, "backoff_max": 0, **collector},
            "defaults": {"host": "10.0.0.1", "port": 4059, "timeout": 0.05},
            "meters": [{"meter_id": f"M{i}", "server_sap": 1 + i} for i in range(n)],
        }
    )


def test_a_dead_gateway_opens_its_circuit_and_spares_the_rest() -> None:
    calls: list[str] = []

    async def refuse(meter: MeterEndpoint) -> Transport:
        calls.append(meter.meter_id)
        raise ConnectFailedError("connection refused")

    now = [0.0]
    collector = FleetCollector(
        fleet(6, concurrency=1, breaker_threshold=3, breaker_cooldown=30),
        MemoryLedger(),
        connect=refuse,
        monotonic=lambda: now[0],
        force=True,
    )
    run = asyncio.run(collector.run())
    assert [r.code for r in run.results] == ["E01", "E01", "E01", "E03", "E03", "E03"]
    assert calls == ["M0", "M1", "M2"]  # the open circuit spared three connection attempts
    assert "circuit dlms/10.0.0.1:4059 is open" in run.results[3].message
    # after the cool-down one trial goes through; it fails and re-opens the circuit
    now[0] += 30
    run = asyncio.run(collector.run())
    assert [r.code for r in run.results] == ["E01", "E03", "E03", "E03", "E03", "E03"]
    assert calls == ["M0", "M1", "M2", "M0"]


def test_transient_failures_are_retried_within_the_deadline() -> None:
    attempts: list[str] = []

    async def silent(meter: MeterEndpoint) -> Transport:
        attempts.append(meter.meter_id)
        return Silent()

    collector = FleetCollector(
        fleet(1, attempts=3), MemoryLedger(), connect=silent, force=True, breakers=None
    )
    (result,) = asyncio.run(collector.run()).results
    assert (result.code, result.attempts) == ("E04", 3)
    assert attempts == ["M0"] * 3


def test_the_deadline_bounds_all_attempts() -> None:
    async def silent(meter: MeterEndpoint) -> Transport:
        return Silent()

    plan = parse_fleet(
        {
            "collector": {
                "attempts": 50,
                "backoff_initial": 0,
                "backoff_max": 0,
                "breaker_threshold": 1000,
            },
            "meters": [{"meter_id": "M0", "host": "h", "timeout": 0.05, "deadline": 0.3}],
        }
    )
    (result,) = asyncio.run(
        FleetCollector(plan, MemoryLedger(), connect=silent, force=True).run()
    ).results
    assert result.code == "E07" and 2 <= result.attempts < 50
    assert "deadline of 0.3 s" in result.message and "last: E04" in result.message
    assert result.seconds < 2


def test_concurrency_is_bounded_and_every_meter_gets_a_result() -> None:
    live = [0]
    peak = [0]

    async def slow(meter: MeterEndpoint) -> Transport:
        live[0] += 1
        peak[0] = max(peak[0], live[0])
        await asyncio.sleep(0.01)
        live[0] -= 1
        if meter.meter_id.endswith("7"):
            raise ConnectFailedError("refused")
        return Silent()

    plan = fleet(40, concurrency=5, breaker_threshold=1000)
    run = asyncio.run(FleetCollector(plan, MemoryLedger(), connect=slow, force=True).run())
    assert peak[0] <= 5
    assert len(run.results) == 40
    assert [r.meter_id for r in run.results] == sorted(f"M{i}" for i in range(40))
    assert {r.code for r in run.results} == {"E01", "E04"}
    assert sum(r.code == "E01" for r in run.results) == 4  # M7, M17, M27, M37


def test_not_due_meters_are_skipped_unless_forced() -> None:
    ledger = MemoryLedger()
    ledger.reads["M0"] = 1_000_000 * 1000 - 60_000  # a minute ago

    async def silent(meter: MeterEndpoint) -> Transport:
        return Silent()

    plan = fleet(2)
    run = asyncio.run(FleetCollector(plan, ledger, connect=silent, clock=lambda: 1_000_000.0).run())
    assert [(r.meter_id, r.skipped, r.code) for r in run.results] == [
        ("M0", True, None),
        ("M1", False, "E04"),
    ]


class RegisterMemoryLedger(MemoryLedger):
    def __init__(self) -> None:
        super().__init__()
        self.registers: list[RegisterSample] = []

    def deliver_registers(self, reads: Sequence[RegisterSample]) -> RegisterCounts:
        self.registers += reads
        return RegisterCounts(reads=len(reads), new=len(reads))


def test_register_reads_go_only_to_a_ledger_that_keeps_them() -> None:
    plain, keeping = MemoryLedger(), RegisterMemoryLedger()
    assert not isinstance(plain, RegisterLedger) and isinstance(keeping, RegisterLedger)
    assert FleetCollector(fleet(1), plain).registers is None
    assert FleetCollector(fleet(1), keeping).registers is keeping


def test_the_fleet_files_breaker_settings_and_the_listener() -> None:
    """A failure rate of 100 % over min_calls opens the circuit before threshold failures
    in a row would; each change reaches the listener, named dlms/<endpoint>."""
    calls: list[str] = []
    events: list[BreakerEvent] = []
    threads: list[str] = []

    def hear(event: BreakerEvent) -> None:
        events.append(event)
        threads.append(current_thread().name)

    async def refuse(meter: MeterEndpoint) -> Transport:
        calls.append(meter.meter_id)
        raise ConnectFailedError("connection refused")

    now = [0.0]
    collector = FleetCollector(
        fleet(
            8,
            concurrency=1,
            breaker_threshold=50,
            breaker_min_calls=4,
            breaker_failure_rate=0.5,
            breaker_window=10,
            breaker_cooldown=30,
            breaker_probes=2,
        ),
        MemoryLedger(),
        connect=refuse,
        monotonic=lambda: now[0],
        force=True,
        listener=hear,
    )
    run = asyncio.run(collector.run())
    assert [r.code for r in run.results] == ["E01"] * 4 + ["E03"] * 4
    # told on the ledger's one thread, where a listener may use the store
    assert threads == ["meterledger-ledger_0"] * len(events)
    assert calls == ["M0", "M1", "M2", "M3"]  # min_calls, not the threshold of 50
    assert [(e.name, e.state, e.why) for e in events] == [
        ("dlms/10.0.0.1:4059", BreakerState.OPEN, "4 of 4 calls failed in 10 s (100% > 50%)")
    ]
    breaker = collector.breakers.get("10.0.0.1:4059")
    assert (breaker.window, breaker.probes, breaker.cooldown) == (10.0, 2, 30.0)
    # after the cool-down a probe batch of two: the first probe fails and re-opens it
    now[0] += 30
    asyncio.run(collector.run())
    assert calls[4:] == ["M0"]
    assert [e.state for e in events[1:]] == [BreakerState.HALF_OPEN, BreakerState.OPEN]
    assert events[-1].why == "a probe failed" and events[-1].reading.opened == 2


def test_a_failing_listener_never_stops_a_read() -> None:
    def broken(event: BreakerEvent) -> None:
        raise RuntimeError("the store is down")

    async def refuse(meter: MeterEndpoint) -> Transport:
        raise ConnectFailedError("connection refused")

    collector = FleetCollector(
        fleet(3, concurrency=1, breaker_threshold=1), MemoryLedger(), connect=refuse,
        force=True, listener=broken,
    )  # fmt: skip
    run = asyncio.run(collector.run())
    assert [r.code for r in run.results] == ["E01", "E03", "E03"]
