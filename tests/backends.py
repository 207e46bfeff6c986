"""The two store backends for tests: fresh databases, and raw SQL behind the store's back.

``BACKENDS`` names them; the ``backend`` fixture in ``conftest.py`` runs a test on each.

PostgreSQL is the real server named by ``METERLEDGER_TEST_PG`` (an admin URL, default
``postgresql://127.0.0.1:5432/postgres``). Each test gets a database of its own, created
empty and dropped afterwards. When the server cannot be reached the PostgreSQL half of the
suite is skipped with a notice, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import os
import re
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

BACKENDS = ("sqlite", "postgresql")
ADMIN_URL = os.environ.get("METERLEDGER_TEST_PG", "postgresql://127.0.0.1:5432/postgres")
_PREFIX = "ml_test_"
_unreachable: str | None = None
_checked = False


def pg_unreachable() -> str | None:
    """Why the PostgreSQL server cannot be used, or None when it can (checked once)."""
    global _checked, _unreachable
    if not _checked:
        _checked = True
        try:
            import psycopg

            with psycopg.connect(ADMIN_URL, connect_timeout=3, autocommit=True) as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # any failure: missing driver, refused, auth
            _unreachable = f"PostgreSQL at {ADMIN_URL} unreachable: {exc}".strip()
    return _unreachable


def require_pg() -> None:
    """Skip (or, under CI, fail) a test that needs the PostgreSQL server."""
    why = pg_unreachable()
    if why is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI=true: PostgreSQL tests must run, not skip)")
    pytest.skip(why)


def _url_with_db(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def create_pg_database() -> str:
    """A new empty database; returns its URL."""
    import psycopg

    name = f"{_PREFIX}{uuid.uuid4().hex[:16]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _url_with_db(name)


def drop_pg_database(url: str) -> None:
    import psycopg

    name = url.rpartition("/")[2].partition("?")[0]
    assert name.startswith(_PREFIX), name
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Databases:
    """Makes store URLs for one backend and cleans them up."""

    def __init__(self, backend: str, folder: Path) -> None:
        self.backend = backend
        self.folder = folder
        self._made: list[str] = []

    def new_url(self, name: str = "test") -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.folder / name}.db"
        url = create_pg_database()
        self._made.append(url)
        return url

    def cleanup(self) -> None:
        for url in self._made:
            drop_pg_database(url)
        self._made.clear()


class RawDb:
    """A connection behind the store's back, in autocommit, for tests that tamper.

    SQL is written with ``?`` placeholders; on PostgreSQL they become ``%s``. ``execute``
    returns every row (an empty list for statements without a result)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.backend = "sqlite" if url.startswith("sqlite:") else "postgresql"
        self._conn: Any
        if self.backend == "sqlite":
            path = url.removeprefix("sqlite:///").partition("?")[0]
            self._conn = sqlite3.connect(path, isolation_level=None)
        else:
            import psycopg

            self._conn = psycopg.connect(url, autocommit=True)

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        if self.backend == "postgresql":
            sql = re.sub(r"\?", "%s", sql.replace("%", "%%")) if params else sql
            cursor = self._conn.execute(sql, tuple(params))
            return list(cursor.fetchall()) if cursor.description else []
        cursor = self._conn.execute(sql, tuple(params))
        return list(cursor.fetchall())

    def scalar(self, sql: str, params: Sequence[object] = ()) -> Any:
        rows = self.execute(sql, params)
        assert rows, f"no row from {sql}"
        return rows[0][0]

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        """The exception types a refused statement raises on this backend."""
        if self.backend == "sqlite":
            return (sqlite3.Error,)
        import psycopg

        return (psycopg.Error,)

    @contextmanager
    def refused(self, match: str = "append-only") -> Iterator[None]:
        """Expect the statements inside to be refused with ``match`` in the message."""
        with pytest.raises(self.errors, match=match):
            yield

    def drop_audit_guards(self) -> None:
        """Remove what stops UPDATE and DELETE on the audit table (a tamperer with DDL)."""
        if self.backend == "sqlite":
            for name in ("audit_log_no_update", "audit_log_no_delete"):
                self.execute(f"DROP TRIGGER {name}")
        else:
            self.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")

    def close(self) -> None:
        self._conn.close()
