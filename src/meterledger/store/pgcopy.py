"""PostgreSQL binary COPY of all-``int8`` rows, encoded and decoded with numpy.

The bulk paths of the PostgreSQL store move only 64-bit integers (ids, epoch seconds,
milli-units, flags), so one fixed record layout covers them: per row a big-endian ``int16``
field count, then per field an ``int32`` length (8) and the ``int8`` value. numpy builds and
reads that layout in one pass, with no Python object per value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.adapt import Loader
from psycopg.pq import Format

from meterledger.core.errors import TerminalStoreError

__all__ = [
    "INT8_ARRAY_OID",
    "SIGNATURE",
    "Int8ArrayLoader",
    "copy_in_ints",
    "copy_in_records",
    "copy_out_ints",
    "decode_int8_rows",
    "int8_records",
    "select_int8_arrays",
]

INT8_ARRAY_OID = 1016  # bigint[]

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # flags, no extension
_TRAILER = b"\xff\xff"


def _dtype(columns: int) -> np.dtype[np.void]:
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for i in range(columns):
        fields += [(f"l{i}", ">i4"), (f"v{i}", ">i8")]
    return np.dtype(fields)


def int8_records(columns: Sequence[np.ndarray]) -> np.ndarray:
    """Equal-length int64 columns as binary COPY rows: a structured array whose bytes are
    the rows exactly (see :func:`copy_in_records`); a column can still be set in place."""
    count = len(columns[0]) if columns else 0
    rows = np.empty(count, dtype=_dtype(len(columns)))
    rows["n"] = len(columns)
    for i, column in enumerate(columns):
        rows[f"l{i}"] = 8
        rows[f"v{i}"] = column
    return rows


def decode_int8_rows(data: bytes | memoryview, columns: int) -> list[np.ndarray]:
    """The int64 columns of a binary COPY stream whose rows are ``columns`` non-null int8s."""
    view = memoryview(data)
    if len(view) < len(_HEADER) + 2 or bytes(view[: len(SIGNATURE)]) != SIGNATURE:
        raise TerminalStoreError("COPY output is not PostgreSQL binary COPY")
    extension = int.from_bytes(view[15:19], "big")
    body = view[19 + extension :]
    if bytes(body[-2:]) != _TRAILER:
        raise TerminalStoreError("COPY output ended without its trailer")
    body = body[:-2]
    dtype = _dtype(columns)
    if len(body) % dtype.itemsize:
        raise TerminalStoreError(f"COPY rows are not {columns} non-null bigint fields")
    rows = np.frombuffer(body, dtype=dtype)
    if len(rows) and (
        (rows["n"] != columns).any() or any((rows[f"l{i}"] != 8).any() for i in range(columns))
    ):
        raise TerminalStoreError(f"COPY rows are not {columns} non-null bigint fields")
    return [rows[f"v{i}"].astype(np.int64) for i in range(columns)]


def copy_out_ints(
    conn: psycopg.Connection[Any], query: str, columns: int, params: Sequence[object] = ()
) -> list[np.ndarray]:
    """Run ``query`` (all bigint columns, none null) as a binary COPY; return its columns."""
    chunks: list[bytes] = []
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(sql.SQL(query))
    with conn.cursor() as cursor, cursor.copy(statement, params or None) as copy:
        for data in copy:
            chunks.append(bytes(data))
    return decode_int8_rows(b"".join(chunks), columns)


def copy_in_ints(
    conn: psycopg.Connection[Any],
    table: str,
    columns: Sequence[str],
    arrays: Sequence[np.ndarray],
) -> None:
    """Binary COPY of equal-length int64 ``arrays`` into ``columns`` of ``table``."""
    copy_in_records(conn, table, columns, int8_records(arrays))


def copy_in_records(
    conn: psycopg.Connection[Any], table: str, columns: Sequence[str], records: np.ndarray
) -> None:
    """Binary COPY of :func:`int8_records` into ``columns`` of ``table``; the rows go to
    the driver as a view of the array, not a copy."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        copy.write(_HEADER)
        if len(records):
            copy.write(records.data.cast("B"))
        copy.write(_TRAILER)


class Int8ArrayLoader(Loader):
    """Loads a binary one-dimensional ``bigint[]`` without NULLs straight into an int64
    ndarray (psycopg's own loader would build one Python int per element)."""

    format = Format.BINARY

    def load(self, data: Any) -> np.ndarray:
        view = memoryview(data)
        dims = int.from_bytes(view[0:4], "big")
        if dims == 0:
            return np.empty(0, dtype=np.int64)
        if dims != 1 or int.from_bytes(view[4:8], "big") != 0:
            raise TerminalStoreError("expected a one-dimensional bigint[] without NULLs")
        count = int.from_bytes(view[12:16], "big")
        items = np.frombuffer(view[20:], dtype=np.dtype([("l", ">i4"), ("v", ">i8")]), count=count)
        return items["v"].astype(np.int64)


def select_int8_arrays(
    conn: psycopg.Connection[Any], query: str, columns: int, params: Sequence[object] = ()
) -> list[np.ndarray]:
    """Run ``query``, which returns one row of ``columns`` ``bigint[]`` (NULL when there
    were no rows), and return them as int64 arrays. For bounded results: one array must stay
    under PostgreSQL's 1 GB field limit."""
    with conn.cursor(binary=True) as cursor:
        cursor.adapters.register_loader(INT8_ARRAY_OID, Int8ArrayLoader)
        row = cursor.execute(query, params).fetchone()
    empty = np.empty(0, dtype=np.int64)
    if row is None:
        return [empty] * columns
    return [empty if value is None else value for value in row]
