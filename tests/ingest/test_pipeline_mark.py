"""A feed's high-water mark goes in with the last block of readings it covers, or not at
all (both backends)."""

from __future__ import annotations

import io

import pytest

from meterledger.core.errors import InputError
from meterledger.ingest.pipeline import IngestOptions, Ingestor
from meterledger.store.base import Store
from support import HEADER, NOW

LINES = [f"M1,1.0.1.8.0.255,2024-06-01T00:{m:02d}:00Z,900,{m}.5,Wh,actual" for m in (15, 30, 45)]


def csv(lines: list[str]) -> io.BytesIO:
    return io.BytesIO((HEADER + "\n" + "".join(x + "\n" for x in lines)).encode())


def test_the_mark_is_set_with_the_readings_of_every_block(store: Store, meter: str) -> None:
    # tiny blocks: two batches, the mark goes in with the second
    options = IngestOptions(block_bytes=64)
    result = Ingestor(store, now=NOW).ingest_stream(
        csv(LINES), fmt="csv", source="vendor", options=options, mark=("vendor", "m-1")
    )
    assert result.batches == 2 and result.counts.accepted == 3
    assert store.feed_mark("vendor") == "m-1"
    assert store.count("readings") == 3


def test_the_readings_roll_back_when_the_mark_cannot_be_written(store: Store, meter: str) -> None:
    # "*" is not a feed one can mark: the write of the (only) block fails as a whole
    with pytest.raises(InputError):
        Ingestor(store, now=NOW).ingest_stream(
            csv(LINES), fmt="csv", source="vendor", options=IngestOptions(), mark=("*", "m")
        )
    assert store.count("readings") == 0 and store.count("batches") == 0
    assert store.count("feed_marks") == 0


def test_no_mark_leaves_the_marks_alone_and_an_empty_page_still_marks(
    store: Store, meter: str
) -> None:
    ingestor = Ingestor(store, now=NOW)
    ingestor.ingest_stream(csv(LINES[:1]), fmt="csv", source="x", options=IngestOptions())
    assert store.count("feed_marks") == 0
    ingestor.ingest_stream(
        csv([]), fmt="csv", source="vendor", options=IngestOptions(), mark=("vendor", "m-2")
    )
    assert store.feed_mark("vendor") == "m-2"
    assert store.count("readings") == 1
