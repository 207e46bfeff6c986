"""The Zigbee collector's circuit breaker per gateway, against the real simulator on TCP."""

from __future__ import annotations

import asyncio
import logging

import pytest

from meterledger.collect.breaker import (
    BreakerBoard,
    BreakerEvent,
    BreakerSettings,
    BreakerState,
)
from meterledger.collect.zigbee import ZigbeeMeterRef, ZigbeeResult, collect_meters
from meterledger.simulate.zigbee_gateway import GatewayConfig, ZigbeeGateway, eui64_of
from zigbee_support import NOW, MemoryLedger, expected, refs


def board(clock: list[float], events: list[BreakerEvent], **knobs: float) -> BreakerBoard:
    settings = BreakerSettings(threshold=3, cooldown=30.0, **knobs)  # type: ignore[arg-type]
    return BreakerBoard.of(settings, feed="zigbee", clock=lambda: clock[0], listener=events.append)


def codes(results: tuple[ZigbeeResult, ...]) -> list[str | None]:
    return [r.code for r in results]


def test_a_dark_gateway_opens_its_breaker_then_a_later_run_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = [1000.0]  # the breakers' clock: the test moves it past the cool-down
    events: list[BreakerEvent] = []
    breakers = board(clock, events)
    ledger = MemoryLedger()

    async def scenario() -> tuple[tuple[ZigbeeResult, ...], tuple[ZigbeeResult, ...]]:
        config = GatewayConfig(meters=8, port=0, clock=lambda: NOW)
        async with ZigbeeGateway(config) as gateway:
            gateway.dark = set(range(8))  # the whole gateway goes dark
            dark = await collect_meters(
                "127.0.0.1",
                gateway.port,
                refs(8),
                ledger,
                timeout=0.2,
                concurrency=2,
                breakers=breakers,
                breaker_wait=1.0,
            )
            key = f"127.0.0.1:{gateway.port}"
            assert breakers.get(key).state is BreakerState.OPEN
            gateway.dark.clear()  # it answers again
            clock[0] += 30.0  # the cool-down is over
            later = await collect_meters(
                "127.0.0.1",
                gateway.port,
                refs(8),
                ledger,
                timeout=1.0,
                concurrency=2,
                breakers=breakers,
                breaker_wait=1.0,
            )
            for index in range(8):
                assert ledger.series(f"MTR-{index + 1:05d}") == expected(gateway, index)
            return dark, later

    with caplog.at_level(logging.INFO, logger="meterledger.collect"):
        dark, later = asyncio.run(scenario())
    # two meters at a time: 3 timeouts in a row open it (the 4th, under way, times out
    # too); every meter after that fails at once with E03 instead of waiting its timeout
    assert codes(dark) == ["E04"] * 4 + ["E03"] * 4
    assert all(r.seconds < 0.1 for r in dark if r.code == "E03")
    assert "circuit zigbee/127.0.0.1:" in dark[-1].message and "MTR-00008" in dark[-1].message
    opened = [r for r in caplog.records if getattr(r, "code", None) == "circuit-open"]
    assert len(opened) == 1 and opened[0].levelno == logging.ERROR
    # the later run probes, the probe is answered, the circuit closes, every meter is read
    assert all(r.ok for r in later), codes(later)
    (breaker,) = (breakers.get(k) for k in breakers.states())
    assert breaker.opened == 1 and breaker.state is BreakerState.CLOSED
    assert [e.state for e in events] == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]
    assert breaker.name.startswith("zigbee/127.0.0.1:")


def test_refusals_prove_the_gateway_works_and_keep_the_circuit_closed() -> None:
    clock = [0.0]
    events: list[BreakerEvent] = []
    breakers = board(clock, events)
    strangers = [ZigbeeMeterRef(eui64_of(100 + i), f"MTR-{i + 1:05d}") for i in range(6)]

    async def scenario() -> tuple[ZigbeeResult, ...]:
        async with ZigbeeGateway(GatewayConfig(meters=2, port=0, clock=lambda: NOW)) as gateway:
            return await collect_meters(
                "127.0.0.1", gateway.port, strangers, MemoryLedger(), timeout=1.0,
                breakers=breakers,
            )  # fmt: skip

    results = asyncio.run(scenario())
    assert codes(results) == ["E06"] * 6  # Default Response UNSUPPORTED_CLUSTER: refused
    (reading,) = breakers.readings()
    assert reading.state is BreakerState.CLOSED and reading.opened == 0
    assert reading.calls_in_window == 6 and reading.failure_rate == 0.0
    assert events == []


def test_an_unreachable_gateway_counts_against_its_breaker() -> None:
    clock = [0.0]
    events: list[BreakerEvent] = []
    breakers = board(clock, events)

    async def scenario() -> list[list[str | None]]:
        runs = []
        for _ in range(4):
            done = await collect_meters(
                "127.0.0.1", 9, refs(2), MemoryLedger(), timeout=0.5, breakers=breakers,
                breaker_wait=0.0,
            )  # fmt: skip
            runs.append(codes(done))
        return runs

    runs = asyncio.run(scenario())
    # three runs that cannot connect open the circuit; the fourth does not even try
    assert runs == [["E01", "E01"]] * 3 + [["E03", "E03"]]
    assert breakers.get("127.0.0.1:9").opened == 1
    assert [e.state for e in events] == [BreakerState.OPEN]
