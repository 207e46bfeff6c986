"""Monthly partitions of ``readings`` and ``reading_versions`` on PostgreSQL.

A month's partition ``readings_pYYYYMM`` holds ``month_start < interval_end <=
next_month_start``; everything ending on or before 1990 is in ``readings_before_1990``
(made by migration 1). :class:`Partitions` makes missing months inside the caller's
transaction, which holds the writer lock.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from meterledger.core.errors import TerminalStoreError

__all__ = ["FLOOR_END", "PARTITIONED", "Partitions", "months_for", "months_of"]

PARTITIONED = ("readings", "reading_versions")

# Readings ending on or before 1990-01-01T00:00Z share one partition: a historical import
# or a garbled feed spanning centuries makes one table, not thousands of monthly ones.
FLOOR_END = 631_152_000


def _month_bounds(months: np.ndarray) -> list[tuple[int, int, int, int]]:
    """``(year, month, lo, hi)`` for datetime64[M] values."""
    index = months.astype(np.int64)  # months since 1970-01
    starts = months.astype("datetime64[s]").astype(np.int64)
    nexts = (months + 1).astype("datetime64[s]").astype(np.int64)
    return [
        (int(1970 + i // 12), int(i % 12 + 1), int(a) + 1, int(b) + 1)
        for i, a, b in zip(index.tolist(), starts.tolist(), nexts.tolist(), strict=True)
    ]


def months_for(first_end: int, last_end: int) -> list[tuple[int, int, int, int]]:
    """``(year, month, lo, hi)`` of every monthly partition holding an interval end in
    ``[first_end, last_end]``. A partition holds ``month_start < interval_end <=
    next_month_start`` (bounds ``FROM (month_start + 1) TO (next_month_start + 1)``), so an
    interval ending at midnight on the 1st belongs to the month it measured. Months that
    end on or before :data:`FLOOR_END` are left out: they are in the floor partition."""
    first = np.datetime64(max(first_end, FLOOR_END + 1) - 1, "s").astype("datetime64[M]")
    last = np.datetime64(last_end - 1, "s").astype("datetime64[M]")
    if last < first:
        return []
    return _month_bounds(np.arange(first, last + 1))


def months_of(ends: np.ndarray) -> list[tuple[int, int, int, int]]:
    """:func:`months_for` of just the months that these interval ends fall in."""
    ends = ends[ends > FLOOR_END]
    if not len(ends):
        return []
    low, high = (np.array([ends.min(), ends.max()]) - 1).astype("datetime64[s]")
    if low.astype("datetime64[M]") == high.astype("datetime64[M]"):  # the common case
        return _month_bounds(np.array([low.astype("datetime64[M]")]))
    return _month_bounds(np.unique((ends - 1).astype("datetime64[s]").astype("datetime64[M]")))


class Partitions:
    """Creates the monthly partitions of ``readings`` and ``reading_versions`` on demand,
    inside the caller's transaction (which holds the writer lock).

    A partition is made as a plain table and then attached: ``ATTACH PARTITION`` takes only
    a SHARE UPDATE EXCLUSIVE lock on the parent, so readers are never blocked, where
    ``CREATE TABLE ... PARTITION OF`` would take ACCESS EXCLUSIVE."""

    def __init__(self) -> None:
        self._partitioned: bool | None = None
        # months seen attached; forgotten on any failed write, so a month detached since
        # costs one failed batch and then a clear error, never a wrong answer
        self._known: set[tuple[int, int]] = set()

    def forget(self) -> None:
        self._known.clear()

    def partitioned(self, conn: psycopg.Connection[Any]) -> bool:
        if self._partitioned is None:
            row = conn.execute(
                "SELECT to_regclass('readings') IS NOT NULL, EXISTS (SELECT 1 FROM"
                " pg_partitioned_table WHERE partrelid = to_regclass('readings'))"
            ).fetchone()
            if row is None or not row[0]:
                return False  # not migrated yet: decided once the table exists
            self._partitioned = bool(row[1])
        return self._partitioned

    def ensure_for(self, conn: psycopg.Connection[Any], ends: np.ndarray) -> list[str]:
        """Make the missing partitions for the months these interval ends fall in (only
        those months: a batch holding 1900 and 2024 needs two, not 1,500)."""
        return self.ensure_months(conn, months_of(ends))

    def missing(self, conn: psycopg.Connection[Any], ends: np.ndarray) -> int:
        """How many months of these interval ends have no partition yet."""
        if not self.partitioned(conn):
            return 0
        months = [m for m in months_of(ends) if m[:2] not in self._known]
        if not months:
            return 0
        found = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE c.relname = ANY(%s) AND i.inhparent = to_regclass('readings')",
            ([f"readings_p{y:04d}{m:02d}" for y, m, _, _ in months],),
        ).fetchall()
        names = {r[0] for r in found}
        self._known |= {(y, m) for y, m, _, _ in months if f"readings_p{y:04d}{m:02d}" in names}
        return len(months) - len(names)

    def ensure_months(
        self, conn: psycopg.Connection[Any], months: list[tuple[int, int, int, int]]
    ) -> list[str]:
        if not self.partitioned(conn):  # a TimescaleDB hypertable makes its own chunks
            return []
        months = [m for m in months if m[:2] not in self._known]
        if not months:
            return []
        wanted = {
            f"{table}_p{year:04d}{month:02d}": (table, lo, hi)
            for table in PARTITIONED
            for year, month, lo, hi in months
        }
        found = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE c.relname = ANY(%s) AND i.inhparent IN (to_regclass('readings'),"
            " to_regclass('reading_versions'))",
            (list(wanted),),
        ).fetchall()
        missing = sorted(set(wanted) - {r[0] for r in found})
        if missing:
            stray = conn.execute(
                "SELECT relname FROM pg_class WHERE relname = ANY(%s) AND relkind = 'r'"
                " AND relnamespace = current_schema()::regnamespace",
                (missing,),
            ).fetchall()
            if stray:
                names = ", ".join(sorted(r[0] for r in stray))
                raise TerminalStoreError(
                    f"readings arrived for a month whose partition is detached ({names}):"
                    " re-attach it (ALTER TABLE ... ATTACH PARTITION) or finish the retention"
                    " (DROP TABLE) before ingesting that month again"
                )
        made: list[str] = []
        for name in missing:
            table, lo, hi = wanted[name]
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
                ).format(sql.Identifier(name), sql.Identifier(table))
            )
            conn.execute(
                sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(table), sql.Identifier(name), sql.Literal(lo), sql.Literal(hi)
                )
            )
            made.append(name)
        self._known |= {m[:2] for m in months}
        return made
