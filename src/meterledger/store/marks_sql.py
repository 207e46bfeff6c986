"""The tables of schema version 7 (``feed_marks``, ``received_files``), once for both
backends, over the backend's ``_billing_rows`` (one statement with ``?`` placeholders,
plain SQL that SQLite and PostgreSQL both run).

:class:`MarkReadAPI` and :class:`MarkWriteAPI` are the abstract methods ``Store`` and
``WriteTx`` add; :class:`MarkReads` and :class:`MarkWrites` implement them.

A feed's high-water mark is an opaque text the feed's collector understands (for a vendor
API the ISO-8601 end of the last reading taken in); it is written in the same transaction
as the readings it covers, so it never runs ahead of them or lags behind. A received file
is recorded once by its SHA-256; recording it again is refused (``False``), which is how a
file drop knows it already took that file in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from meterledger.core.errors import InputError
from meterledger.store.feeds_sql import check_feed
from meterledger.store.records import ReceivedFile

__all__ = ["MarkReadAPI", "MarkReads", "MarkWriteAPI", "MarkWrites", "ReceivedFile"]

_FILE_COLUMNS = "sha256, feed, name, size, batch_count, received_at, moved_to"


def _received(row: Sequence[Any]) -> ReceivedFile:
    return ReceivedFile(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        int(row[3]),
        int(row[4]),
        str(row[5]),
        None if row[6] is None else str(row[6]),
    )


class MarkReadAPI(ABC):
    """What ``Store`` reads of the feed marks and received files (schema version 7)."""

    @abstractmethod
    def feed_mark(self, feed: str) -> str | None:
        """The high-water mark of ``feed``; None if it never set one."""

    @abstractmethod
    def received_file(self, sha256: str) -> ReceivedFile | None:
        """The file recorded with this SHA-256 (lower-case hex); None if never received."""

    @abstractmethod
    def list_received_files(self, feed: str | None = None) -> list[ReceivedFile]:
        """Received files (of one feed), oldest first (by received_at, then sha256)."""


class MarkWriteAPI(ABC):
    """What ``WriteTx`` writes to the feed marks and received files (schema version 7)."""

    @abstractmethod
    def set_feed_mark(self, feed: str, mark: str, at: str) -> None:
        """Set ``feed``'s high-water mark to ``mark`` (updated at ``at``, ISO-8601 UTC)."""

    @abstractmethod
    def add_received_file(self, rec: ReceivedFile) -> bool:
        """Record a received file; False (and nothing written) if its SHA-256 is held."""


class MarkReads(MarkReadAPI):
    @abstractmethod
    def _billing_rows(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one statement with ``?`` placeholders; its rows."""

    def feed_mark(self, feed: str) -> str | None:
        rows = self._billing_rows("SELECT mark FROM feed_marks WHERE feed = ?", (feed,))
        return str(rows[0][0]) if rows else None

    def received_file(self, sha256: str) -> ReceivedFile | None:
        rows = self._billing_rows(
            f"SELECT {_FILE_COLUMNS} FROM received_files WHERE sha256 = ?", (sha256,)
        )
        return _received(rows[0]) if rows else None

    def list_received_files(self, feed: str | None = None) -> list[ReceivedFile]:
        query = f"SELECT {_FILE_COLUMNS} FROM received_files"
        params: list[object] = []
        if feed is not None:
            query += " WHERE feed = ?"
            params.append(feed)
        rows = self._billing_rows(query + " ORDER BY received_at, sha256", params)
        return [_received(r) for r in rows]


class MarkWrites(MarkWriteAPI):
    @abstractmethod
    def _billing_rows(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one statement with ``?`` placeholders; its rows."""

    def set_feed_mark(self, feed: str, mark: str, at: str) -> None:
        check_feed(feed, allow_all=False)
        if not isinstance(mark, str) or not mark:
            raise InputError(f"a feed mark is a non-empty text, got {mark!r}")
        self._billing_rows(
            "INSERT INTO feed_marks (feed, mark, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (feed) DO UPDATE SET mark = excluded.mark,"
            " updated_at = excluded.updated_at",
            (feed, mark, at),
        )

    def add_received_file(self, rec: ReceivedFile) -> bool:
        rows = self._billing_rows(
            f"INSERT INTO received_files ({_FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (sha256) DO NOTHING RETURNING sha256",
            (
                rec.sha256,
                rec.feed,
                rec.name,
                rec.size,
                rec.batch_count,
                rec.received_at,
                rec.moved_to,
            ),
        )
        return bool(rows)
