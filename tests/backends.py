"""The two store backends for tests: fresh databases, and raw SQL behind the store's back.

``BACKENDS`` names them; the ``backend`` fixture in ``conftest.py`` runs a test on each.

PostgreSQL is the real server named by ``METERLEDGER_TEST_PG`` (an admin URL, default
``postgresql://127.0.0.1:5432/postgres``). Each test process makes one database; each store a
test asks for is a fresh schema in it (the URL sets ``search_path``), dropped afterwards.
A schema costs milliseconds where a database costs a second, and the store keeps everything,
its writer lock included, per schema. When the server cannot be reached the PostgreSQL half of the
suite is skipped with a notice, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import atexit
import functools
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


@functools.cache
def pg_unreachable() -> str | None:
    """Why the PostgreSQL server cannot be used, or None when it can (checked once)."""
    try:
        import psycopg

        with psycopg.connect(ADMIN_URL, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure: missing driver, refused, auth
        return f"PostgreSQL at {ADMIN_URL} unreachable: {exc}".strip()
    return None


def require_pg() -> None:
    """Skip (or, under CI, fail) a test that needs the PostgreSQL server."""
    why = pg_unreachable()
    if why is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI=true: PostgreSQL tests must run, not skip)")
    pytest.skip(why)


_session_db: str | None = None


def _url_with_db(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def _drop_session_db() -> None:
    import psycopg

    if _session_db is not None:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{_session_db}" WITH (FORCE)')


def session_database() -> str:
    """This test process's database (made on first use, dropped at exit); its URL."""
    global _session_db  # noqa: PLW0603 - one per test process, made lazily
    if _session_db is None:
        import psycopg

        name = f"{_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        _session_db = name
        atexit.register(_drop_session_db)
    return _url_with_db(_session_db)


def create_pg_store_url() -> str:
    """A fresh, empty schema in the session database; the URL of a store in it."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    base = session_database()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{base}?options=-csearch_path%3D{schema}"


def drop_pg_store_url(url: str) -> None:
    """Drop the schema of a URL made by :func:`create_pg_store_url`."""
    import psycopg

    base, _, query = url.partition("?")
    schema = query.rpartition("%3D")[2]
    assert schema.startswith("t_"), url
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# the names tests used when each store was a database of its own
create_pg_database = create_pg_store_url
drop_pg_database = drop_pg_store_url


class Databases:
    """Makes store URLs for one backend and cleans them up."""

    def __init__(self, backend: str, folder: Path) -> None:
        self.backend = backend
        self.folder = folder
        self._made: list[str] = []

    def new_url(self, name: str = "test") -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.folder / name}.db"
        url = create_pg_store_url()
        self._made.append(url)
        return url

    def cleanup(self) -> None:
        for url in self._made:
            drop_pg_store_url(url)
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

    def __enter__(self) -> RawDb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
