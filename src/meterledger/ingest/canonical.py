"""Canonical encoding, idempotency keys and batch digests.

The canonical encoding of a reading is one UTF-8 line, fields separated by U+001F::

    meter_id ␟ channel ␟ interval_end ␟ interval_seconds ␟ value ␟ quality \\n

with ``channel`` in dotted OBIS form, ``interval_end`` as UTC epoch seconds, ``value`` in
integer milli-units and ``quality`` as the integer flag set. The idempotency key is the
SHA-256 of that line. Two deliveries of the same reading, by any path and in any order,
encode to the same bytes and so the same key.

A batch digest is the SHA-256 of the canonical lines of every row a batch stored, sorted by
natural key: the audit chain records it, and ``audit verify`` recomputes it from the tables.
"""

from __future__ import annotations

import hashlib

import polars as pl

from meterledger.core.reading import Reading
from meterledger.core.time import epoch_of

__all__ = [
    "EMPTY_DIGEST",
    "batch_digest",
    "canonical_line",
    "idempotency_key",
    "quarantine_digest",
    "record_key",
]

_SEP = "\x1f"
EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()


def canonical_line(
    meter_id: str, channel: str, interval_end: int, interval_seconds: int, value: int, quality: int
) -> str:
    return (
        _SEP.join(
            (meter_id, channel, str(interval_end), str(interval_seconds), str(value), str(quality))
        )
        + "\n"
    )


def idempotency_key(reading: Reading) -> str:
    line = canonical_line(
        reading.meter_id,
        str(reading.channel),
        epoch_of(reading.interval_end),
        reading.interval_seconds,
        reading.value,
        int(reading.quality),
    )
    return hashlib.sha256(line.encode()).hexdigest()


def batch_digest(rows: pl.DataFrame) -> str:
    """Digest of ``meter_id, channel, interval_end, interval_seconds, value, quality`` rows."""
    if rows.is_empty():
        return EMPTY_DIGEST
    lines = (
        rows.sort("meter_id", "channel", "interval_end")
        .select(
            pl.concat_str(
                [
                    pl.col("meter_id"),
                    pl.col("channel"),
                    pl.col("interval_end").cast(pl.String),
                    pl.col("interval_seconds").cast(pl.String),
                    pl.col("value").cast(pl.String),
                    pl.col("quality").cast(pl.String),
                ],
                separator=_SEP,
            )
        )
        .to_series()
    )
    text = lines.str.join("\n").item() + "\n"
    return hashlib.sha256(text.encode()).hexdigest()


def record_key(fmt: str, raw: str, kind: str = "") -> str:
    """Identity of a quarantined record: the same raw record twice is one record. ``kind``
    separates a revision held for review from the same raw record failing validation."""
    suffix = f"\x00{kind}" if kind else ""
    return hashlib.sha256(f"{fmt}\x00{raw}{suffix}".encode()).hexdigest()


def quarantine_digest(records: list[tuple[str, str, tuple[str, ...]]]) -> str:
    """Digest of quarantined records as ``(record_key, fields, reasons)`` when they were held:
    covers which records a batch held, their reasons, and the fields a replay would store."""
    lines = sorted(
        f"{key}:{hashlib.sha256(fields.encode()).hexdigest()}:{','.join(reasons)}"
        for key, fields, reasons in records
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
