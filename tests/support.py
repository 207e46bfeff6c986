"""Helpers for tests: constants, meter registration, CSV lines. Import as ``import support``."""

from __future__ import annotations

import asyncio
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from meterledger.ingest.pipeline import register_meter
from meterledger.store.base import MeterRecord, Store

HEADER = "meter_id,channel,interval_end,interval_seconds,value,unit,quality"
NOW = datetime(2025, 1, 1, tzinfo=UTC)  # receipt time used by ingest in tests


def add_meter(
    store: Store,
    meter_id: str = "M1",
    *,
    service: str = "electric",
    tz: str = "UTC",
    capacity: int = 25_000_000,
    status: str = "active",
    unit: str = "kWh",
) -> None:
    """Register a meter with every catalogue channel of its service (capacity in milli/h)."""
    with store.write() as tx:
        register_meter(
            tx,
            MeterRecord(
                meter_id, service, unit, tz, None, status, capacity, "2024-01-01T00:00:00+00:00"
            ),
        )


def row(
    end: str,
    value: str,
    *,
    meter: str = "M1",
    channel: str = "1.0.1.8.0.255",
    seconds: str = "900",
    unit: str = "kWh",
    quality: str = "actual",
) -> str:
    """One canonical CSV data line."""
    return f"{meter},{channel},{end},{seconds},{value},{unit},{quality}"


def reference_dir(kind: str) -> Path | None:
    """``shared/reference/<kind>`` beside the repository (CI clones it there)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "reference" / kind
        if candidate.is_dir():
            return candidate
    return None


def needs_reference(found: Path | None) -> pytest.MarkDecorator:
    """Skip where the shared reference data is absent, except under CI, where it must be."""
    return pytest.mark.skipif(
        found is None and not os.environ.get("CI"),
        reason="shared/reference not found beside the repository",
    )


class InThread:
    """Runs a simulator (``async with``: a Zigbee gateway, a DLMS simulator) on an event
    loop of its own thread, for a test whose collector is a subprocess or blocks."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                async with self.gateway:
                    self._ready.set()
                    await self._stop.wait()
            except BaseException as exc:
                self._error = exc
                self._ready.set()

        self.loop.run_until_complete(main())

    def __enter__(self) -> Any:
        self._thread.start()
        assert self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self.gateway

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self.loop.close()
