"""Shared by the Zigbee collector tests: an in-memory ledger, meter references, the
simulator's expected series, and async tests run in an event loop of their own."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from meterledger.collect.ledger import HandoffCounts
from meterledger.collect.zigbee import DELIVERED_CHANNEL, ZigbeeMeterRef
from meterledger.core.reading import Reading
from meterledger.core.time import epoch_of
from meterledger.simulate.zigbee_gateway import eui64_of
from meterledger.simulate.zigbee_meter import ZigbeeMeter
from support import InThread

__all__ = ["InThread"]  # re-exported: the Zigbee tests run their gateways with it

NOW = 1_709_269_200 + 3 * 86_400 + 500  # 500 s into a 15-minute interval
LATEST_END = NOW // 900 * 900


class MemoryLedger:
    """Readings kept by natural key: a second delivery of the same one is a duplicate."""

    def __init__(self) -> None:
        self.held: dict[tuple[str, str, int], int] = {}

    def last_interval_ends(self, meter_id: str, channels: Sequence[str]) -> dict[str, int | None]:
        ends: dict[str, int | None] = {}
        for channel in channels:
            mine = [e for (m, c, e) in self.held if m == meter_id and c == channel]
            ends[channel] = max(mine) if mine else None
        return ends

    def deliver(self, readings: Sequence[Reading]) -> HandoffCounts:
        counts = HandoffCounts(records=len(readings), batches=1 if readings else 0)
        for r in readings:
            key = (r.meter_id, str(r.channel), epoch_of(r.interval_end))
            if key in self.held:
                counts.duplicates += 1
            else:
                self.held[key] = r.value
                counts.accepted += 1
        return counts

    def series(self, meter_id: str, channel: str = DELIVERED_CHANNEL) -> list[tuple[int, int]]:
        return sorted(
            (e, v) for (m, c, e), v in self.held.items() if m == meter_id and c == channel
        )


def refs(count: int) -> list[ZigbeeMeterRef]:
    return [ZigbeeMeterRef(eui64_of(i), f"MTR-{i + 1:05d}") for i in range(count)]


def synchronously(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run an async test in an event loop of its own (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())

    return run


class Meters(Protocol):
    """A gateway of simulated meters (TCP or MQTT)."""

    def meter(self, meter_index: int) -> ZigbeeMeter: ...


def expected(gateway: Meters, index: int, *, received: bool = False) -> list[tuple[int, int]]:
    meter = gateway.meter(index)
    factor = meter.multiplier * 1_000_000 // meter.divisor
    out = []
    for e in meter.entries:
        units = e.received if received else e.delivered
        if units is not None:
            out.append((e.interval_end, units * factor))
    return out
