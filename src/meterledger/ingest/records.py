"""The raw record frame every parser yields: the record's fields as text, before validation.

Columns: ``record_no`` (Int64: line or element number in the source), the seven canonical
fields as ``String`` (null when absent), ``raw`` (the record as it arrived) and ``error`` /
``error_detail`` (set by a parser that could not split the record into fields).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

__all__ = ["FIELDS", "RAW_SCHEMA", "raw_frame"]

FIELDS = ("meter_id", "channel", "interval_end", "interval_seconds", "value", "unit", "quality")

RAW_SCHEMA: dict[str, type[pl.DataType]] = {
    "record_no": pl.Int64,
    **{name: pl.String for name in FIELDS},
    "raw": pl.String,
    "error": pl.String,
    "error_detail": pl.String,
}


def raw_frame(rows: Sequence[Mapping[str, object]] | None = None) -> pl.DataFrame:
    """Build a raw frame from dicts (missing keys become null); for small parsers and tests."""
    if not rows:
        return pl.DataFrame(schema=RAW_SCHEMA)
    columns = {name: [row.get(name) for row in rows] for name in RAW_SCHEMA}
    return pl.DataFrame(columns, schema=RAW_SCHEMA)
