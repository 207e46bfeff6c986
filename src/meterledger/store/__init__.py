"""Storage: the Store interface and its backends, chosen by URL."""

from __future__ import annotations

from meterledger.core.errors import ConfigError
from meterledger.store.base import Store

__all__ = ["Store", "open_store"]


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open the store named by ``url`` (``sqlite:///path``; ``postgresql://`` comes next)."""
    if url.startswith("sqlite:///"):
        from meterledger.store.sqlite import SqliteStore

        store: Store = SqliteStore(url)
    elif url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("the PostgreSQL backend is not available yet; use sqlite:///PATH")
    else:
        raise ConfigError(f"unknown store URL {url!r}: expected sqlite:///PATH")
    if migrate:
        store.migrate()
    return store
