"""The Zigbee collector against the real simulator gateway over loopback TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest

from meterledger.collect.errors import MeterProtocolError
from meterledger.collect.ledger import HandoffCounts
from meterledger.collect.zigbee import (
    RECEIVED_CHANNEL,
    Envelope,
    MeterScale,
    ZigbeeResult,
    collect_meters,
    decode_envelope,
    encode_envelope,
    parse_eui64,
)
from meterledger.core.reading import Reading
from meterledger.simulate import zigbee_gateway as sim
from meterledger.simulate.zigbee_gateway import GatewayConfig, ZigbeeGateway, eui64_of
from zigbee_support import NOW, MemoryLedger, expected, refs, synchronously

LATEST_END = NOW // 900 * 900


async def collect(
    gateway: ZigbeeGateway, ledger: MemoryLedger, meters: int, timeout: float = 2.0
) -> dict[str, ZigbeeResult]:
    done = await collect_meters("127.0.0.1", gateway.port, refs(meters), ledger, timeout=timeout)
    return {r.meter_id: r for r in done}


@asynccontextmanager
async def gateway_of(clock: list[int], **options: Any) -> AsyncIterator[ZigbeeGateway]:
    config = GatewayConfig(
        meters=options.pop("meters", 3), port=0, clock=lambda: clock[0], **options
    )
    async with ZigbeeGateway(config) as gateway:
        yield gateway


def test_envelope_is_the_simulator_s_bytes() -> None:
    envelope = Envelope(eui64_of(7), 1, 0x0702, b"\x00\x05\x00\x00\x03")
    wire = encode_envelope(envelope)
    assert wire == sim.encode_envelope(
        sim.Envelope(eui64_of(7), 1, 0x0702, b"\x00\x05\x00\x00\x03")
    )
    assert wire[:2] == b"\x00\x10"
    assert decode_envelope(wire[2:]) == envelope
    assert decode_envelope(b"\x00" * 10) is None
    assert parse_eui64("02:4D:4C:5A:00:00:00:07") == eui64_of(7)
    with pytest.raises(ValueError, match="16 hex digits"):
        parse_eui64("024d4c5a")


def test_scale_is_exact_or_refused() -> None:
    assert MeterScale(1, 1000).milli(123) == 123_000  # 0.123 kWh = 123 000 mWh
    assert MeterScale(5, 10_000).milli(7) == 3_500
    assert MeterScale(1, 1).milli(2) == 2_000_000
    with pytest.raises(MeterProtocolError, match="not a whole number"):
        MeterScale(1, 3_000_000).milli(1)
    with pytest.raises(MeterProtocolError, match="unit of measure 1"):
        MeterScale(1, 1000, unit_of_measure=1).milli(1)


@synchronously
async def test_first_collect_reads_the_whole_buffer_then_only_new_intervals() -> None:
    clock = [NOW]
    async with gateway_of(clock, buffer=96, days=2, max_periods_per_response=24) as gateway:
        ledger = MemoryLedger()
        first = await collect(gateway, ledger, 3)
        assert all(r.ok for r in first.values())
        for index in range(3):
            meter_id = f"MTR-{index + 1:05d}"
            assert ledger.series(meter_id) == expected(gateway, index)
            assert ledger.series(meter_id, RECEIVED_CHANNEL) == expected(
                gateway, index, received=True
            )
            assert len(ledger.series(meter_id)) == 96
            assert first[meter_id].intervals == 192 and first[meter_id].gaps == 0
            # attributes, then 4 pages of 24 and the NO_INTERVALS answer, per channel
            assert first[meter_id].requests == 1 + 5 + 5
        assert ledger.series("MTR-00001")[-1][0] == LATEST_END

        clock[0] = NOW + 5 * 900  # five more intervals closed
        second = await collect(gateway, ledger, 3)
        for index in range(3):
            result = second[f"MTR-{index + 1:05d}"]
            assert result.ok and result.intervals == 10  # five per channel
            assert result.handoff.accepted == 10 and result.handoff.duplicates == 0
            assert result.requests == 1 + 1 + 1  # one page reaches the stored data
        series = ledger.series("MTR-00002")
        assert len(series) == 101 and series[-1][0] == LATEST_END + 5 * 900
        assert series[-5:] == expected(gateway, 1)[-5:]

        third = await collect(gateway, ledger, 3)  # nothing new: no second effect
        assert all(r.ok and r.intervals == 0 for r in third.values())
        assert len(ledger.held) == 3 * 2 * 101


@synchronously
async def test_a_meter_billed_on_import_is_read_on_its_delivered_channel_only() -> None:
    clock = [NOW]
    async with gateway_of(clock, meters=2, buffer=96, days=2) as gateway:
        ledger = MemoryLedger()
        import_only = [replace(r, received=False) for r in refs(2)]
        done = await collect_meters("127.0.0.1", gateway.port, import_only, ledger, timeout=2.0)
        assert [(r.ok, r.intervals, r.requests) for r in done] == [(True, 96, 1 + 5)] * 2
        assert ledger.series("MTR-00001") == expected(gateway, 0)
        assert ledger.series("MTR-00001", RECEIVED_CHANNEL) == []


@synchronously
async def test_outages_become_gaps_not_readings() -> None:
    clock = [NOW]
    outage = (LATEST_END - 10 * 900 + 1, LATEST_END - 6 * 900 - 1)
    async with gateway_of(clock, meters=1, outages={0: (outage,)}) as gateway:
        ledger = MemoryLedger()
        result = (await collect(gateway, ledger, 1))["MTR-00001"]
        entries = gateway.meter(0).entries
        invalid = [e.interval_end for e in entries if e.delivered is None]
        assert invalid == [LATEST_END - k * 900 for k in (9, 8, 7, 6)]
        ends = {e for e, _ in ledger.series("MTR-00001")}
        assert not ends & set(invalid)
        assert result.gaps == 2 * len(invalid)  # delivered and received
        assert ledger.series("MTR-00001") == expected(gateway, 0)
        assert len(ends) == 96 - len(invalid)


@synchronously
async def test_dark_meter_times_out_and_the_others_are_read() -> None:
    clock = [NOW]
    async with gateway_of(clock, dark=frozenset({1})) as gateway:
        ledger = MemoryLedger()
        results = await collect(gateway, ledger, 3, timeout=0.3)
        dark = results["MTR-00002"]
        assert not dark.ok and dark.code == "E04"
        assert "MTR-00002" in dark.message and "no answer" in dark.message
        assert results["MTR-00001"].ok and results["MTR-00003"].ok
        assert ledger.series("MTR-00002") == []
        assert ledger.series("MTR-00003") == expected(gateway, 2)


@synchronously
async def test_multiplier_and_divisor_are_applied() -> None:
    clock = [NOW]
    async with gateway_of(clock, meters=2) as gateway:
        gateway.meter(0).multiplier, gateway.meter(0).divisor = 3, 10_000
        gateway.meter(1).divisor = 7  # 1e6 / 7 mWh per unit: not exact, refused
        ledger = MemoryLedger()
        results = await collect(gateway, ledger, 2)
        series = ledger.series("MTR-00001")
        units = [e.delivered for e in gateway.meter(0).entries]
        assert [v for _, v in series] == [u * 300 for u in units if u is not None]
        assert len(series) == 96 and any(v != 0 for _, v in series)
        bad = results["MTR-00002"]
        assert not bad.ok and bad.code == "E05" and "not a whole number" in bad.message
        assert ledger.series("MTR-00002") == []


@synchronously
async def test_unreachable_gateway_fails_every_meter() -> None:
    results = await collect_meters("127.0.0.1", 9, refs(2), MemoryLedger(), timeout=0.5)
    assert [r.code for r in results] == ["E01", "E01"]


class DroppingLedger(MemoryLedger):
    """Drops the gateway's connections when the first meter's readings are delivered."""

    def __init__(self, gateway: ZigbeeGateway) -> None:
        super().__init__()
        self.gateway = gateway

    def deliver(self, readings: Sequence[Reading]) -> HandoffCounts:
        if not self.held:
            self.gateway.drop_connections()
        return super().deliver(readings)


@synchronously
async def test_a_lost_connection_is_reopened_and_the_request_sent_again() -> None:
    clock = [NOW]
    async with gateway_of(clock, meters=3) as gateway:
        ledger = DroppingLedger(gateway)
        done = await collect_meters(
            "127.0.0.1", gateway.port, refs(3), ledger, timeout=2.0, concurrency=1
        )
        assert [r.code for r in done] == [None, None, None]
        assert gateway.stats["connections"] == 2  # the gateway "rebooted" once
        for index in range(3):
            assert ledger.series(f"MTR-{index + 1:05d}") == expected(gateway, index)
