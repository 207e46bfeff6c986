"""The demo's head-end phase: the last day of the cycle is read from the meters themselves.

The file drop carries the history; for the final day the head-end reads every meter's load
profile over DLMS/COSEM on loopback TCP from the simulator, which serves the same fleet
(same meters, kinds and sizes). A fifth of the meters sit behind a second simulator port
that demands HLS-GMAC and security suite 0 (authenticated encryption). Two meters fail on
purpose and the cycle goes on without them: one never answers (E04 Response Timeout) and
one holds keys the head-end was never given (E09 Security Level Violation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
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

__all__ = ["collect_final_day", "demo_failures"]


def demo_failures(count: int) -> tuple[int, int]:
    """Indexes of the meter that never answers and of the one with unknown keys."""
    return (2 % count, (count - 2) % count) if count > 2 else (0, count - 1)


def _secured(index: int, count: int) -> bool:
    return index >= count - max(1, count // 5)


async def _collect(
    store: Store,
    fleet: list[SimMeter],
    first: datetime,
    days: int,
    seed: int,
    progress: Callable[[MeterResult], None],
) -> dict[str, Any]:
    count = len(fleet)
    silent, wrong = demo_failures(count)
    zone_info = ZoneInfo(fleet[0].timezone if fleet else "UTC")
    local_first = first.astimezone(zone_info).date()
    end_day = local_first + timedelta(days=days + 1)
    # the meters' clock: local midnight ending the day read (a DST change may lie between)
    now = datetime(end_day.year, end_day.month, end_day.day, tzinfo=zone_info).astimezone(UTC)
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
            if _secured(index, count) or index == wrong:
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
                concurrency=min(50, max(1, count)),
                attempts=2,
                backoff_initial=0.05,
                backoff_max=0.2,
                lookback_hours=48.0,
                every_seconds=0.0,
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
        "secured": sum(1 for i in range(count) if _secured(i, count) or i == wrong),
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
    return asyncio.run(_collect(store, fleet, first.astimezone(UTC), days, seed, progress))
