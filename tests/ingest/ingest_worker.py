"""Ingest files into a store from a process of its own (for the concurrency and crash tests).

    python ingest_worker.py DB_URL FILE... [--block-bytes N] [--ready PATH --go PATH]

``DB_URL`` is any store URL (``sqlite:///...`` or ``postgresql://...``) whose schema exists.

``--ready``/``--go`` make a start barrier: the worker opens the store, touches ``ready`` and
waits for ``go`` to exist, so several workers begin ingesting at the same moment. Prints the
summed counts as one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support.NOW

import support
from meterledger.ingest.pipeline import IngestOptions, Ingestor
from meterledger.store import open_store
from meterledger.store.base import BatchCounts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--block-bytes", type=int, default=16_384)
    parser.add_argument("--ready", type=Path)
    parser.add_argument("--go", type=Path)
    args = parser.parse_args(argv)

    store = open_store(args.db, migrate=False)  # any backend; the test made the schema
    if args.ready is not None:
        args.ready.touch()
    if args.go is not None:
        deadline = time.monotonic() + 30
        while not args.go.exists():
            if time.monotonic() > deadline:
                return 3
            time.sleep(0.001)
    ingestor = Ingestor(store, now=support.NOW)
    total = BatchCounts()
    batches = entries = 0
    for path in args.files:
        result = ingestor.ingest_path(path, IngestOptions(block_bytes=args.block_bytes))
        total.add(result.counts)
        batches += result.batches
        entries += result.audit_entries
    store.close()
    sys.stdout.write(json.dumps({**asdict(total), "batches": batches, "audit_entries": entries}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
