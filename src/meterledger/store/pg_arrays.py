"""PostgreSQL reads of many channels' current readings as int64 ndarrays.

One range scan of the primary key per channel, already in interval order (the LATERAL
subquery with ``OFFSET 0`` is never flattened into a hash join over whole partitions), each
channel's rows aggregated into one ``bigint[]`` per column and loaded straight into
ndarrays by :class:`~meterledger.store.pgcopy.Int8ArrayLoader`: no Python object per value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg

from meterledger.store.pgcopy import INT8_ARRAY_OID, Int8ArrayLoader

__all__ = ["channel_arrays", "concat_channels"]


def channel_arrays(
    conn: psycopg.Connection[Any],
    channel_ids: Sequence[int],
    start: int,
    end: int,
    columns: Sequence[str],
) -> dict[int, list[np.ndarray]]:
    """``channel_id -> [one array per column]`` of the readings with ``start <
    interval_end <= end``, each in ``interval_end`` order; channels without rows are left
    out. ``columns`` are trusted column names of ``readings``."""
    picked = ", ".join(columns)
    aggregated = ", ".join(f"array_agg(r.{c}) AS a{i}" for i, c in enumerate(columns))
    outputs = ", ".join(f"a.a{i}" for i in range(len(columns)))
    # ``interval_end >= start + 1``: partition pruning does not know that bigint is
    # discrete, and ``> start`` would scan the month before as well
    query = (
        f"SELECT s.c, {outputs} FROM unnest(%s::bigint[]) AS s (c) CROSS JOIN LATERAL"
        f" (SELECT {aggregated} FROM (SELECT {picked} FROM readings WHERE channel_id = s.c"
        " AND interval_end >= %s AND interval_end <= %s ORDER BY interval_end OFFSET 0) r) a"
    )
    with conn.cursor(binary=True) as cursor:
        cursor.adapters.register_loader(INT8_ARRAY_OID, Int8ArrayLoader)
        rows = cursor.execute(query, ([int(c) for c in channel_ids], start + 1, end)).fetchall()
    return {int(row[0]): list(row[1:]) for row in rows if row[1] is not None}


def concat_channels(
    found: dict[int, list[np.ndarray]], channel_ids: Sequence[int], columns: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The rows of ``channel_ids`` in that order: per-row channel ids and ``columns``
    concatenated arrays."""
    empty = np.empty(0, dtype=np.int64)
    parts = [found.get(int(c)) for c in channel_ids]
    counts = [0 if p is None else len(p[0]) for p in parts]
    ids = np.repeat(np.asarray(channel_ids, dtype=np.int64), counts)
    arrays = [
        np.concatenate([p[i] for p in parts if p is not None]) if any(counts) else empty
        for i in range(columns)
    ]
    return ids, arrays
