"""Helpers for tests: constants, meter registration, CSV lines. Import as ``import support``."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

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
