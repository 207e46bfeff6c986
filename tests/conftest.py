"""Shared fixtures: a fresh store on each backend, a registered meter, CSV writing, ingest.

``store`` (and everything built on it) runs once per backend: SQLite and PostgreSQL (see
``backends.py``). A test that is about one backend only asks for ``sqlite_url`` or uses
``backends.require_pg``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from backends import BACKENDS, Databases, RawDb, pg_unreachable, require_pg
from meterledger.ingest.pipeline import IngestOptions, Ingestor, IngestResult
from meterledger.store import open_store
from meterledger.store.base import Store
from support import HEADER, NOW, add_meter


def pytest_report_header() -> str:
    why = pg_unreachable()
    if why is None:
        return "backends: sqlite, postgresql"
    return f"backends: sqlite only -- PostgreSQL tests will SKIP: {why}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    why = pg_unreachable()
    if why is not None:
        terminalreporter.write_sep("!", "PostgreSQL tests were SKIPPED", yellow=True)
        terminalreporter.write_line(f"{why}. Start the server or set METERLEDGER_TEST_PG.")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    if name == "postgresql":
        require_pg()
    return name


@pytest.fixture
def databases(backend: str, tmp_path: Path) -> Iterator[Databases]:
    """New store URLs on the test's backend (``databases.new_url(name)``), dropped after."""
    made = Databases(backend, tmp_path)
    yield made
    made.cleanup()


@pytest.fixture
def db_url(databases: Databases) -> str:
    return databases.new_url("test")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    yield s
    s.close()


@pytest.fixture
def raw_db(store: Store) -> Iterator[RawDb]:
    """A connection to the fixture store's database behind the store's back."""
    conn = RawDb(store.url)
    yield conn
    conn.close()


@pytest.fixture
def meter(store: Store) -> str:
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
def ingest(store: Store) -> Callable[..., IngestResult]:
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
