"""One Ingestor across many small batches (the head-end's handoff) reuses its registry
snapshot while the registry is unchanged, and sees a meter registered in between."""

from __future__ import annotations

import io

import pytest

from meterledger.ingest.pipeline import IngestOptions, Ingestor
from meterledger.ingest.staging import Snapshot
from meterledger.store import Store
from support import HEADER, NOW, add_meter


def _batch(meter: str, hour: int) -> io.BytesIO:
    line = f"{meter},1.0.1.8.0.255,2024-01-01T{hour:02d}:00:00+00:00,900,1,kWh,actual"
    return io.BytesIO(f"{HEADER}\n{line}\n".encode())


def test_the_snapshot_is_reused_until_the_registry_changes(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_meter(store, "M1")
    loads: list[int] = []
    real = Snapshot.load.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Snapshot], s: Store) -> Snapshot:
        loads.append(1)
        return real(cls, s)  # type: ignore[no-any-return]

    monkeypatch.setattr(Snapshot, "load", classmethod(counting))
    ingestor = Ingestor(store, now=NOW)
    options = IngestOptions(fmt="csv")
    for hour in (1, 2, 3):
        result = ingestor.ingest_stream(_batch("M1", hour), fmt="csv", source="t", options=options)
        assert result.counts.accepted == 1
    assert len(loads) == 1  # loaded once for three batches
    add_meter(store, "M2")  # registered by someone else between two batches
    result = ingestor.ingest_stream(_batch("M2", 4), fmt="csv", source="t", options=options)
    assert result.counts.accepted == 1 and result.counts.quarantined == 0
    assert len(loads) == 2
