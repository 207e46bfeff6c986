"""Storage: the Store interface and its backends, chosen by URL."""

from __future__ import annotations

from meterledger.core.errors import ConfigError
from meterledger.store.base import (
    AccountRecord,
    BillRecord,
    NewBill,
    Store,
    TariffRecord,
)
from meterledger.store.urls import redact_url

__all__ = [
    "AccountRecord",
    "BillRecord",
    "NewBill",
    "Store",
    "TariffRecord",
    "open_store",
    "redact_url",
]


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open the store named by ``url``: ``sqlite:///PATH`` or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        from meterledger.store.sqlite import SqliteStore

        store: Store = SqliteStore(url)
    elif url.startswith(("postgresql://", "postgres://")):
        try:
            from meterledger.store.postgres import PostgresStore
        except ImportError as exc:  # pragma: no cover - psycopg is a dependency
            raise ConfigError(f"the PostgreSQL backend needs psycopg: {exc}") from exc
        store = PostgresStore(url)
    else:
        raise ConfigError(
            f"unknown store URL {url!r}: expected sqlite:///PATH or postgresql://HOST/DB"
        )
    if migrate:
        store.migrate()
    return store
