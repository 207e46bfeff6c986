"""Fixtures of the store tests that are about PostgreSQL only: ``pg_url`` (a fresh, empty
schema), ``pg`` (a migrated store in it) and ``raw`` (a connection behind its back)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backends import RawDb, create_pg_store_url, drop_pg_store_url, require_pg
from meterledger.store import open_store
from meterledger.store.postgres import PostgresStore


@pytest.fixture
def pg_url() -> Iterator[str]:
    require_pg()
    url = create_pg_store_url()
    yield url
    drop_pg_store_url(url)


@pytest.fixture
def pg(pg_url: str) -> Iterator[PostgresStore]:
    store = open_store(pg_url)
    assert isinstance(store, PostgresStore)
    yield store
    store.close()


@pytest.fixture
def raw(pg: PostgresStore) -> Iterator[RawDb]:
    conn = RawDb(pg.url)
    yield conn
    conn.close()
