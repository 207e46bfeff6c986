"""The canonical CSV and JSON lines formats, read in streamed blocks.

CSV: a header naming ``meter_id, channel, interval_end, interval_seconds, value, unit`` and
optionally ``quality``, in any order; any other column is a :class:`FormatError` (nothing is
silently ignored). Canonical CSV never needs quoting: surrounding double quotes are removed,
and a field with an embedded comma gives a wrong field count, so the row is quarantined as
``MALFORMED_ROW``. Spaces and tabs around a field are removed (no other character is).
Blank lines are skipped; CRLF and a UTF-8 BOM are accepted.

JSON lines: one object per line with the same keys; numbers are kept as their exact text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import partial
from typing import BinaryIO

import polars as pl

from meterledger.core.errors import FormatError
from meterledger.ingest.reasons import Reason
from meterledger.ingest.records import FIELDS, RAW_SCHEMA, raw_frame

__all__ = ["BLOCK_BYTES", "Thunk", "csv_blocks", "iter_csv", "iter_jsonl", "jsonl_blocks"]

BLOCK_BYTES = 4 * 1024 * 1024
REQUIRED = FIELDS[:6]


def _blocks(stream: BinaryIO, block_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Whole lines in blocks of about ``block_bytes``; yields (block, bytes consumed).

    The block is completed to the end of its last line with ``readline``, so each block is
    copied once (a block ends without a newline only at the end of the file)."""
    while True:
        data = stream.read(block_bytes)
        if not data:
            return
        if not data.endswith(b"\n"):
            data += stream.readline()
        yield data, len(data)


def _decode_lines(block: bytes) -> tuple[list[str], list[str | None]]:
    """Split a block into lines; a line that is not UTF-8 becomes an error entry."""
    try:
        lines = block.decode("utf-8").split("\n")
        return lines, [None] * len(lines)
    except UnicodeDecodeError:
        out: list[str] = []
        errors: list[str | None] = []
        for raw in block.split(b"\n"):
            try:
                out.append(raw.decode("utf-8"))
                errors.append(None)
            except UnicodeDecodeError as exc:
                out.append(raw.decode("utf-8", errors="backslashreplace"))
                errors.append(f"not UTF-8 at byte {exc.start}")
        return out, errors


def _read_header(stream: BinaryIO) -> tuple[list[str], int]:
    first = stream.readline()
    if not first:
        raise FormatError("empty file: expected a CSV header")
    try:
        text = first.decode("utf-8-sig").strip()
    except UnicodeDecodeError as exc:
        raise FormatError("the CSV header is not UTF-8") from exc
    names = [name.strip().strip('"').strip() for name in text.split(",")]
    missing = [name for name in REQUIRED if name not in names]
    unknown = [name for name in names if name not in FIELDS]
    if missing or unknown or len(set(names)) != len(names):
        raise FormatError(
            "CSV header must name meter_id,channel,interval_end,interval_seconds,value,unit"
            f"[,quality]; got {text!r}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {unknown}" if unknown else "")
        )
    return names, len(first)


Thunk = Callable[[], pl.DataFrame]


def _line_count(block: bytes) -> int:
    return block.count(b"\n") + (not block.endswith(b"\n"))


def csv_blocks(stream: BinaryIO, *, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[Thunk, int]]:
    """Yield (parse, bytes consumed) per block: cutting blocks and numbering lines is
    sequential and cheap; ``parse()`` builds the raw frame and may run on any thread."""
    names, consumed = _read_header(stream)
    yield raw_frame, consumed
    line_no = 1
    for block, size in _blocks(stream, block_bytes):
        yield partial(_csv_block, block, names, line_no + 1), size
        line_no += _line_count(block)


def iter_csv(
    stream: BinaryIO, *, block_bytes: int = BLOCK_BYTES
) -> Iterator[tuple[pl.DataFrame, int]]:
    """Yield (raw frame, bytes consumed) per block of the canonical CSV."""
    for parse, size in csv_blocks(stream, block_bytes=block_bytes):
        yield parse(), size


def _csv_block(block: bytes, names: list[str], first_no: int) -> pl.DataFrame:
    try:
        # the common case: split lines in polars, without a Python string per line
        lines = pl.Series("line", [block.decode("utf-8")]).str.split("\n").explode()
        errors = pl.Series("decode_error", [None] * lines.len(), dtype=pl.String)
    except UnicodeDecodeError:
        text_lines, error_list = _decode_lines(block)
        lines = pl.Series("line", text_lines, dtype=pl.String)
        errors = pl.Series("decode_error", error_list, dtype=pl.String)
    if lines.len() and block.endswith(b"\n"):
        lines, errors = lines.head(-1), errors.head(-1)
    tidy = b'"' in block or b" " in block or b"\t" in block
    return _csv_frame(lines, errors, names, first_no, tidy=tidy)


def _csv_frame(
    lines: pl.Series, errors: pl.Series, names: list[str], first_no: int, *, tidy: bool = True
) -> pl.DataFrame:
    """``tidy``: strip spaces, tabs and quotes around fields (skipped when the block has
    none of them, where the pass would change nothing). Other characters are data."""
    n = len(names)
    frame = (
        pl.DataFrame([lines, errors])
        .with_columns(
            pl.int_range(first_no, first_no + lines.len(), dtype=pl.Int64).alias("record_no"),
            pl.col("line").str.strip_suffix("\r").alias("raw"),
        )
        .filter(pl.col("raw").str.strip_chars(" \t") != "")
    )
    commas = pl.col("raw").str.count_matches(",", literal=True)
    split = pl.col("raw").str.split_exact(",", n - 1).struct.rename_fields(names)
    frame = frame.with_columns(commas.alias("commas"), split.alias("parts")).unnest("parts")
    ok = (pl.col("commas") == n - 1) & pl.col("decode_error").is_null()
    cleaned = [
        pl.when(ok)
        .then(pl.col(name).str.strip_chars(" \t").str.strip_chars('"') if tidy else pl.col(name))
        .alias(name)
        for name in names
    ]
    error = pl.when(pl.col("decode_error").is_not_null() | ~ok).then(
        pl.lit(Reason.MALFORMED_ROW.value)
    )
    detail = (
        pl.when(pl.col("decode_error").is_not_null())
        .then(pl.col("decode_error"))
        .when(~ok)
        .then(pl.format("expected {} fields, found {}", pl.lit(n), pl.col("commas") + 1))
    )
    frame = frame.with_columns(*cleaned, error.alias("error"), detail.alias("error_detail"))
    frame = frame.with_columns(
        [pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in names]
    )
    missing = [pl.lit(None, dtype=pl.String).alias(c) for c in FIELDS if c not in names]
    return frame.with_columns(*missing).select(list(RAW_SCHEMA)).cast(RAW_SCHEMA)  # type: ignore[arg-type]


def jsonl_blocks(
    stream: BinaryIO, *, block_bytes: int = BLOCK_BYTES
) -> Iterator[tuple[Thunk, int]]:
    """Yield (parse, bytes consumed) per block of JSON lines (see :func:`csv_blocks`)."""
    line_no = 0
    for block, size in _blocks(stream, block_bytes):
        yield partial(_jsonl_block, block, line_no + 1), size
        line_no += _line_count(block)


def iter_jsonl(
    stream: BinaryIO, *, block_bytes: int = BLOCK_BYTES
) -> Iterator[tuple[pl.DataFrame, int]]:
    """Yield (raw frame, bytes consumed) per block of JSON lines."""
    for parse, size in jsonl_blocks(stream, block_bytes=block_bytes):
        yield parse(), size


def _jsonl_block(block: bytes, first_no: int) -> pl.DataFrame:
    lines, errors = _decode_lines(block)
    if lines and lines[-1] == "" and block.endswith(b"\n"):
        lines.pop()
        errors.pop()
    rows: list[dict[str, object]] = []
    for line_no, (line, decode_error) in enumerate(zip(lines, errors, strict=True), first_no):
        raw = line.rstrip("\r")
        if not raw.strip(" \t"):
            continue
        row: dict[str, object] = {"record_no": line_no, "raw": raw}
        problem = decode_error or _jsonl_fields(raw, row)
        if problem:
            row["error"] = Reason.MALFORMED_ROW.value
            row["error_detail"] = problem
        rows.append(row)
    return raw_frame(rows)


def _jsonl_fields(raw: str, row: dict[str, object]) -> str | None:
    """Fill ``row`` with the record's fields as text; return a problem or None."""
    try:
        record = json.loads(raw, parse_float=str, parse_int=str, parse_constant=str)
    except (json.JSONDecodeError, RecursionError) as exc:
        return f"not JSON: {exc}"
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        return f"unknown keys {unknown}"
    for name in FIELDS:
        value = record.get(name)
        if value is None or isinstance(value, str):
            if isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return f"{name} is not valid Unicode (a lone surrogate)"
            row[name] = value.strip(" \t") or None if isinstance(value, str) else None
        else:
            return f"{name} must be a string or a number, got {type(value).__name__}"
    return None
