"""Shared fixtures: a fresh SQLite store, a registered meter, CSV writing, ingest."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from meterledger.ingest.pipeline import IngestOptions, Ingestor, IngestResult
from meterledger.store.sqlite import SqliteStore
from support import HEADER, NOW, add_meter


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[SqliteStore]:
    s = SqliteStore(db_url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def meter(store: SqliteStore) -> str:
    """Meter M1: electric, UTC, 25 kW capacity."""
    add_meter(store)
    return "M1"


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    """Write data lines (without header) to a CSV file and return its path."""

    def write(lines: Sequence[str], name: str = "in.csv") -> Path:
        path = tmp_path / name
        path.write_text(HEADER + "\n" + "".join(line + "\n" for line in lines), encoding="utf-8")
        return path

    return write


@pytest.fixture
def ingest(store: SqliteStore) -> Callable[..., IngestResult]:
    """Ingest a path into the fixture store with receipt time support.NOW."""

    def run(path: Path, **options: object) -> IngestResult:
        return Ingestor(store, now=NOW).ingest_path(path, IngestOptions(**options))  # type: ignore[arg-type]

    return run


@pytest.fixture
def deliver(
    write_csv: Callable[..., Path], ingest: Callable[..., IngestResult]
) -> Callable[..., IngestResult]:
    """Deliver CSV lines as a new file (each delivery its own file name) and ingest it."""
    count = 0

    def run(*lines: str) -> IngestResult:
        nonlocal count
        count += 1
        return ingest(write_csv(list(lines), name=f"delivery{count}.csv"))

    return run
