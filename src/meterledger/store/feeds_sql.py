"""The resilience tables of schema version 6 (``dead_letters``, ``feed_state``,
``breaker_state``), once for both backends, over the backend's ``_billing_rows`` (one
statement with ``?`` placeholders, plain SQL that SQLite and PostgreSQL both run).

:class:`FeedReadAPI` and :class:`FeedWriteAPI` are the abstract methods ``Store`` and
``WriteTx`` add; :class:`FeedReads` and :class:`FeedWrites` implement them.

A dead letter is ``open`` until a replay takes (``replayed``, with the batch it made) or an
operator gives it up (``discarded``); a replay that fails again keeps it ``open`` with the
new error and one more attempt. Dead letters are never deleted. A feed is paused by a row
of ``feed_state`` with ``paused`` true; the feed :data:`ALL_FEEDS` (``*``) pauses every
feed at once.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from meterledger.core.errors import ConflictError, InputError, NotFoundError

__all__ = [
    "ALL_FEEDS",
    "BREAKER_STATES",
    "DEAD_LETTER_STATUSES",
    "BreakerSnapshot",
    "DeadLetterRecord",
    "FeedReadAPI",
    "FeedReads",
    "FeedState",
    "FeedWriteAPI",
    "FeedWrites",
    "NewDeadLetter",
    "check_feed",
]

ALL_FEEDS = "*"
DEAD_LETTER_STATUSES = ("open", "replayed", "discarded")
BREAKER_STATES = ("closed", "open", "half-open")
_FEED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}")
_DL_COLUMNS = (
    "dead_letter_id, feed, source, payload, format, error, attempts, first_failed_at,"
    " last_failed_at, status, replayed_batch"
)
_BREAKER_COLUMNS = (
    "endpoint, state, failure_rate, calls_in_window, opened, opened_at, updated_at, retry_at"
)


def check_feed(feed: str, *, allow_all: bool = True) -> str:
    """``feed`` if it is a feed name (``*`` for all ingestion when ``allow_all``), else
    InputError."""
    if allow_all and feed == ALL_FEEDS:
        return feed
    if not isinstance(feed, str) or _FEED.fullmatch(feed) is None:
        raise InputError(
            f"a feed name is a letter or digit followed by up to 63 of A-Z a-z 0-9 . _ : / -,"
            f" got {feed!r}"
        )
    return feed


@dataclass(frozen=True, slots=True)
class NewDeadLetter:
    """A delivery that failed for good: its bytes as received and the last error."""

    feed: str
    source: str
    payload: bytes
    fmt: str  # csv, jsonl, greenbutton, ...
    error: str
    attempts: int

    def __post_init__(self) -> None:
        check_feed(self.feed, allow_all=False)
        if self.attempts < 1:
            raise InputError(f"a dead letter had at least one attempt, got {self.attempts}")
        if not self.fmt or not self.source:
            raise InputError("a dead letter names its source and format")


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    dead_letter_id: int
    feed: str
    source: str
    payload: bytes
    fmt: str
    error: str
    attempts: int
    first_failed_at: str
    last_failed_at: str
    status: str
    replayed_batch: int | None

    def summary(self) -> dict[str, object]:
        """Everything but the payload (its size instead), for listings."""
        return {
            "id": self.dead_letter_id,
            "feed": self.feed,
            "source": self.source,
            "format": self.fmt,
            "bytes": len(self.payload),
            "error": self.error,
            "attempts": self.attempts,
            "first_failed_at": self.first_failed_at,
            "last_failed_at": self.last_failed_at,
            "status": self.status,
            "replayed_batch": self.replayed_batch,
        }


@dataclass(frozen=True, slots=True)
class FeedState:
    feed: str
    paused: bool
    reason: str | None
    updated_at: str


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """One endpoint's circuit breaker as a collector last saw it. ``opened`` counts the
    times it opened during that run; ``opened_at`` is when it last opened and, for an open
    one, ``retry_at`` when it half-opens (ISO-8601 UTC; schema version 8)."""

    endpoint: str
    state: str
    failure_rate: float
    calls_in_window: int
    opened: int
    opened_at: str | None
    updated_at: str
    retry_at: str | None = None

    def __post_init__(self) -> None:
        if self.state not in BREAKER_STATES:
            raise InputError(f"breaker state must be one of {BREAKER_STATES}, got {self.state!r}")


def _dead_letter(row: Sequence[Any]) -> DeadLetterRecord:
    return DeadLetterRecord(
        int(row[0]),
        str(row[1]),
        str(row[2]),
        bytes(row[3]),
        str(row[4]),
        str(row[5]),
        int(row[6]),
        str(row[7]),
        str(row[8]),
        str(row[9]),
        None if row[10] is None else int(row[10]),
    )


def _breaker(row: Sequence[Any]) -> BreakerSnapshot:
    return BreakerSnapshot(
        str(row[0]),
        str(row[1]),
        float(row[2]),
        int(row[3]),
        int(row[4]),
        None if row[5] is None else str(row[5]),
        str(row[6]),
        None if row[7] is None else str(row[7]),
    )


class FeedReadAPI(ABC):
    """What ``Store`` reads of the resilience tables (schema version 6)."""

    @abstractmethod
    def list_dead_letters(
        self,
        feed: str | None = None,
        status: str | None = "open",
        ids: Sequence[int] | None = None,
    ) -> list[DeadLetterRecord]:
        """Dead letters by id: of one feed, one status (``None``: any), these ids."""

    @abstractmethod
    def get_dead_letter(self, dead_letter_id: int) -> DeadLetterRecord | None: ...

    @abstractmethod
    def open_dead_letters(self) -> dict[str, int]:
        """``feed -> number of open dead letters``, by feed (feeds with none left out)."""

    @abstractmethod
    def feed_states(self) -> list[FeedState]:
        """Every feed an operator paused or resumed, by feed name (``*`` first)."""

    @abstractmethod
    def pause_of(self, feed: str) -> FeedState | None:
        """The pause that stops ``feed``: all ingestion's (``*``) if that is paused, else
        the feed's own; None when it may run."""

    @abstractmethod
    def feed_paused(self, feed: str) -> bool:
        """True if ``feed`` or all ingestion (``*``) is paused."""

    @abstractmethod
    def breaker_states(self) -> list[BreakerSnapshot]:
        """The last snapshot of each endpoint's breaker, by endpoint."""


class FeedWriteAPI(ABC):
    """What ``WriteTx`` writes to the resilience tables (schema version 6)."""

    @abstractmethod
    def add_dead_letter(self, letter: NewDeadLetter, at: str) -> int:
        """Store an ``open`` dead letter failed first and last at ``at``; its id."""

    @abstractmethod
    def dead_letter_replayed(self, dead_letter_id: int, batch_id: int | None) -> None:
        """An open dead letter was replayed into ``batch_id`` (None: the replay made no
        batch). NotFoundError if unknown; ConflictError if it is not open."""

    @abstractmethod
    def dead_letter_failed(self, dead_letter_id: int, error: str, at: str) -> int:
        """A replay of an open dead letter failed again: keep it open with ``error`` and
        one more attempt; the attempts now. NotFoundError / ConflictError as above."""

    @abstractmethod
    def discard_dead_letter(self, dead_letter_id: int) -> None:
        """Give an open dead letter up (kept, status ``discarded``)."""

    @abstractmethod
    def set_feed_paused(self, feed: str, paused: bool, reason: str | None, at: str) -> None:
        """Pause or resume ``feed`` (``*``: all ingestion)."""

    @abstractmethod
    def put_breaker_states(self, snapshots: Sequence[BreakerSnapshot]) -> None:
        """Replace each named endpoint's snapshot (others are kept)."""


class FeedReads(FeedReadAPI):
    @abstractmethod
    def _billing_rows(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one statement with ``?`` placeholders; its rows."""

    def list_dead_letters(
        self,
        feed: str | None = None,
        status: str | None = "open",
        ids: Sequence[int] | None = None,
    ) -> list[DeadLetterRecord]:
        if status is not None and status not in DEAD_LETTER_STATUSES:
            raise InputError(f"status must be one of {DEAD_LETTER_STATUSES}, got {status!r}")
        query = f"SELECT {_DL_COLUMNS} FROM dead_letters WHERE 1 = 1"
        params: list[object] = []
        if feed is not None:
            query += " AND feed = ?"
            params.append(feed)
        if status is not None:
            query += " AND status = ?"
            params.append(status)
        if ids is not None:
            if not ids:
                return []
            query += f" AND dead_letter_id IN ({', '.join('?' for _ in ids)})"
            params.extend(int(i) for i in ids)
        return [_dead_letter(r) for r in self._billing_rows(query + " ORDER BY 1", params)]

    def get_dead_letter(self, dead_letter_id: int) -> DeadLetterRecord | None:
        found = self.list_dead_letters(status=None, ids=[dead_letter_id])
        return found[0] if found else None

    def open_dead_letters(self) -> dict[str, int]:
        rows = self._billing_rows(
            "SELECT feed, count(*) FROM dead_letters WHERE status = 'open'"
            " GROUP BY feed ORDER BY feed"
        )
        return {str(feed): int(n) for feed, n in rows}

    def feed_states(self) -> list[FeedState]:
        rows = self._billing_rows(
            "SELECT feed, paused, reason, updated_at FROM feed_state ORDER BY feed"
        )
        return [FeedState(str(f), bool(p), r, str(u)) for f, p, r, u in rows]

    def pause_of(self, feed: str) -> FeedState | None:
        held = {s.feed: s for s in self.feed_states() if s.paused}
        return held.get(ALL_FEEDS) or held.get(feed)

    def feed_paused(self, feed: str) -> bool:
        return self.pause_of(feed) is not None

    def breaker_states(self) -> list[BreakerSnapshot]:
        rows = self._billing_rows(f"SELECT {_BREAKER_COLUMNS} FROM breaker_state ORDER BY 1")
        return [_breaker(r) for r in rows]


class FeedWrites(FeedWriteAPI):
    @abstractmethod
    def _billing_rows(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one statement with ``?`` placeholders; its rows."""

    def add_dead_letter(self, letter: NewDeadLetter, at: str) -> int:
        rows = self._billing_rows(
            "INSERT INTO dead_letters (feed, source, payload, format, error, attempts,"
            " first_failed_at, last_failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING dead_letter_id",
            (
                letter.feed,
                letter.source,
                bytes(letter.payload),
                letter.fmt,
                letter.error,
                letter.attempts,
                at,
                at,
            ),
        )
        return int(rows[0][0])

    def _open_letter(self, dead_letter_id: int) -> int:
        rows = self._billing_rows(
            "SELECT status, attempts FROM dead_letters WHERE dead_letter_id = ?",
            (dead_letter_id,),
        )
        if not rows:
            raise NotFoundError(f"no dead letter {dead_letter_id}")
        if rows[0][0] != "open":
            raise ConflictError(f"dead letter {dead_letter_id} is {rows[0][0]}, not open")
        return int(rows[0][1])

    def dead_letter_replayed(self, dead_letter_id: int, batch_id: int | None) -> None:
        self._open_letter(dead_letter_id)
        self._billing_rows(
            "UPDATE dead_letters SET status = 'replayed', replayed_batch = ?"
            " WHERE dead_letter_id = ?",
            (batch_id, dead_letter_id),
        )

    def dead_letter_failed(self, dead_letter_id: int, error: str, at: str) -> int:
        attempts = self._open_letter(dead_letter_id) + 1
        self._billing_rows(
            "UPDATE dead_letters SET error = ?, attempts = ?, last_failed_at = ?"
            " WHERE dead_letter_id = ?",
            (error, attempts, at, dead_letter_id),
        )
        return attempts

    def discard_dead_letter(self, dead_letter_id: int) -> None:
        self._open_letter(dead_letter_id)
        self._billing_rows(
            "UPDATE dead_letters SET status = 'discarded' WHERE dead_letter_id = ?",
            (dead_letter_id,),
        )

    def set_feed_paused(self, feed: str, paused: bool, reason: str | None, at: str) -> None:
        check_feed(feed)
        self._billing_rows(
            "INSERT INTO feed_state (feed, paused, reason, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (feed) DO UPDATE SET paused = excluded.paused,"
            " reason = excluded.reason, updated_at = excluded.updated_at",
            (feed, bool(paused), reason, at),
        )

    def put_breaker_states(self, snapshots: Sequence[BreakerSnapshot]) -> None:
        for s in snapshots:
            self._billing_rows(
                f"INSERT INTO breaker_state ({_BREAKER_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (endpoint) DO UPDATE SET state = excluded.state,"
                " failure_rate = excluded.failure_rate,"
                " calls_in_window = excluded.calls_in_window, opened = excluded.opened,"
                " opened_at = excluded.opened_at, updated_at = excluded.updated_at,"
                " retry_at = excluded.retry_at",
                (
                    s.endpoint,
                    s.state,
                    float(s.failure_rate),
                    s.calls_in_window,
                    s.opened,
                    s.opened_at,
                    s.updated_at,
                    s.retry_at,
                ),
            )
