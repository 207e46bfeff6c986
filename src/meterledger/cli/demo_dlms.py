"""The demo's DLMS head-end: the last day of the cycle is read from the meters themselves.

The file drop carries the history; for the final day the head-end reads the load profile
of the meters given to it (:mod:`meterledger.cli.demo_feeds` shares the fleet out among
DLMS, Zigbee, the vendor API and MQTT) over DLMS/COSEM on loopback TCP from the simulator,
which serves the same fleet (same meters, kinds and sizes). The last fifth of the fleet
sits behind a second simulator port that demands HLS-GMAC and security suite 0
(authenticated encryption). Two meters fail on purpose and the cycle goes on without them:
one never answers (E04 Response Timeout) and one holds keys the head-end was never given
(E09 Security Level Violation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from meterledger.cli.collect import StoreLedger
from meterledger.collect.config import CollectorOptions, Fleet, MeterEndpoint
from meterledger.collect.fleet import FleetCollector, MeterResult
from meterledger.simulate.dlms_meter import keys_for
from meterledger.simulate.dlms_server import (
    DlmsSimulator,
    MeterBehaviour,
    SecurityMode,
    SimulatorConfig,
    logical_address,
)
from meterledger.simulate.fleet import SimMeter
from meterledger.store import Store

__all__ = ["collect_final_day", "demo_failures", "final_day", "read_dlms", "secured"]


def demo_failures(count: int) -> tuple[int, int]:
    """Indexes of the meter that never answers and of the one with unknown keys."""
    return (2 % count, (count - 2) % count) if count > 2 else (0, count - 1)


def secured(index: int, count: int) -> bool:
    """Is meter ``index`` behind the port that demands HLS-GMAC and suite 0?"""
    return index >= count - max(1, count // 5)


def final_day(fleet: list[SimMeter], first: datetime, days: int) -> tuple[datetime, datetime]:
    """The UTC start and end of local day ``days + 1`` of the cycle starting at ``first``
    (local midnights: a DST change makes it 23 or 25 hours). Its end is the meters' clock."""
    zone_info = ZoneInfo(fleet[0].timezone if fleet else "UTC")
    local_first = first.astimezone(zone_info).date()
    begin, end = (local_first + timedelta(days=n) for n in (days, days + 1))

    def midnight(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=zone_info).astimezone(UTC)

    return midnight(begin), midnight(end)


async def read_dlms(
    store: Store,
    fleet: list[SimMeter],
    first: datetime,
    days: int,
    seed: int,
    progress: Callable[[MeterResult], None],
    indexes: Collection[int] | None = None,
) -> dict[str, Any]:
    """Read day ``days + 1`` over DLMS from the meters ``indexes`` (None: all)."""
    count = len(fleet)
    chosen = set(range(count)) if indexes is None else set(indexes)
    silent, wrong = demo_failures(count)
    now = final_day(fleet, first, days)[1]
    zone = fleet[0].timezone if fleet else "UTC"

    def config(security: SecurityMode, overrides: dict[int, MeterBehaviour]) -> SimulatorConfig:
        return SimulatorConfig(
            meters=count,
            seed=seed,
            port=0,
            days=days + 2,  # a day to spare: the profile spans 24-hour days from start
            start=first,
            tz=zone,
            clock=lambda: now,
            security=security,
            overrides=overrides,
        )

    plain = config(SecurityMode.NONE, {silent: MeterBehaviour(silent=True)})
    secure = config(SecurityMode.HLS_AUTH_ENC, {wrong: MeterBehaviour(wrong_keys=True)})
    async with DlmsSimulator(plain) as open_port, DlmsSimulator(secure) as secure_port:
        endpoints = []
        for index, meter in enumerate(fleet):
            if index not in chosen:
                continue
            if secured(index, count) or index == wrong:
                keys = keys_for(index, seed)
                endpoint = MeterEndpoint(
                    meter_id=meter.meter_id,
                    host="127.0.0.1",
                    port=secure_port.port,
                    server_sap=logical_address(index),
                    client_sap=1,
                    auth="hls-gmac",
                    security="auth-enc",
                    ek=keys.ek,
                    ak=keys.ak,
                    timezone=meter.timezone,
                    timeout=1.0,
                    deadline=20.0,
                )
            else:
                endpoint = MeterEndpoint(
                    meter_id=meter.meter_id,
                    host="127.0.0.1",
                    port=open_port.port,
                    server_sap=logical_address(index),
                    timezone=meter.timezone,
                    timeout=1.0,
                    deadline=20.0,
                )
            endpoints.append(endpoint)
        plan = Fleet(
            tuple(endpoints),
            CollectorOptions(
                concurrency=min(50, max(1, len(endpoints))),
                attempts=2,
                backoff_initial=0.05,
                backoff_max=0.2,
                lookback_hours=48.0,
                every_seconds=0.0,
                # A port of the demo serves about a dozen meters, one of them silent on
                # purpose: its two timeouts would be 17 % of the port's calls and open the
                # port's breaker for every meter. A gateway's failure rate should speak for
                # the gateway, so it waits for more calls than one round makes here.
                breaker_min_calls=max(20, 2 * len(endpoints)),
            ),
        )
        collector = FleetCollector(
            plan,
            StoreLedger(store, now=lambda: now),
            force=True,
            clock=now.timestamp,
        )
        run = await collector.run(progress)
    failed = [r for r in run.results if not r.ok]
    return {
        "meters_read": sum(1 for r in run.results if r.ok),
        "meters": len(endpoints),
        "secured": sum(1 for i in chosen if secured(i, count) or i == wrong),
        "failed": sorted(
            ({"meter_id": r.meter_id, "code": r.code, "message": r.message} for r in failed),
            key=lambda f: str(f["meter_id"]),
        ),
        "intervals_accepted": run.handoff.accepted,
        "duplicates": run.handoff.duplicates,
    }


def collect_final_day(
    store: Store,
    fleet: list[SimMeter],
    first: datetime,
    days: int,
    seed: int,
    progress: Callable[[MeterResult], None],
) -> dict[str, Any]:
    """Read day ``days + 1`` of the cycle that starts at ``first`` (UTC) from every meter."""
    return asyncio.run(read_dlms(store, fleet, first.astimezone(UTC), days, seed, progress))
