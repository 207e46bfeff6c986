"""A file whose name is not valid UTF-8 still ingests, on both backends, and its batch names
it readably (the bytes that are not UTF-8 as ``\\xNN``)."""

from __future__ import annotations

import os
from pathlib import Path

import support
from meterledger.ingest.audit import verify
from meterledger.ingest.pipeline import IngestOptions, Ingestor, source_name
from meterledger.store.base import Store


def test_a_file_name_that_is_not_utf8_is_kept_readable(
    store: Store, meter: str, tmp_path: Path
) -> None:
    name = os.fsdecode(b"\xffday.csv")  # as the OS hands such a name to Python
    path = tmp_path / name
    path.write_text(
        support.HEADER + "\n" + support.row("2024-01-01T00:15:00+00:00", "0.1") + "\n",
        encoding="utf-8",
    )
    result = Ingestor(store, now=support.NOW).ingest_path(path, IngestOptions())
    assert result.counts.accepted == 1
    (entry,) = [r for r in store.audit_rows() if r.kind == "batch.ingested"]
    assert "\\xffday.csv" in entry.payload
    assert source_name(path).endswith("\\xffday.csv")
    assert verify(store).ok
