"""Revision rules: what a valid reading does to the billing view. Runs inside the write tx.

For each incoming reading, against the current value for its key:

======================================  ===========================================
incoming vs current                     effect
======================================  ===========================================
no current value                        NEW: inserted, version 1
identical (value, quality, length)      DUPLICATE: no effect
identical to any stored older version   DUPLICATE: a re-delivery never flip-flops
lower rank (an estimate behind an       IGNORED: kept as a version, not billed
actual, an actual behind an edit)
current is an estimate, or incoming     SUPERSEDE: the old value becomes a version
is an edit
same rank, same value, other flags      SUPERSEDE
actual vs a different actual            CONFLICT: kept as a pending version,
                                        ``REVISION_CONFLICT`` review, view unchanged
======================================  ===========================================

Ranks: edited 3 > actual 2 > estimated 1 (``core.reading.quality_rank``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from meterledger.core.reading import Quality
from meterledger.ingest.canonical import batch_digest
from meterledger.store.base import READING_COLUMNS, WriteTx, key_spans

__all__ = ["Applied", "Effect", "Prepared", "apply_readings", "rank", "stored_columns"]

_KEY = ["channel_id", "interval_end"]


class Effect(enum.StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    SUPERSEDE = "supersede"
    CONFLICT = "conflict"


def rank(column: str) -> pl.Expr:
    flags = pl.col(column)
    return (
        pl.when((flags & int(Quality.EDITED)) != 0)
        .then(3)
        .when((flags & int(Quality.ESTIMATED)) != 0)
        .then(1)
        .otherwise(2)
    )


@dataclass(frozen=True, slots=True)
class Prepared:
    """Work done ahead, off the write transaction, for the common case that every row is
    new: the good rows sorted by key, and their digest."""

    rows: pl.DataFrame
    digest: str
    spans: list[tuple[int, int, int]]
    encoded: object | None = None  # the backend's own insert work (Store.encode_new)

    @classmethod
    def of(
        cls, good: pl.DataFrame, encode: Callable[[pl.DataFrame], object | None] | None = None
    ) -> Prepared:
        rows = good.sort(_KEY)
        encoded = encode(rows) if encode is not None and rows.height else None
        return cls(rows, batch_digest(stored_columns(good)), key_spans(good), encoded)


@dataclass(frozen=True, slots=True)
class Applied:
    """What the batch did. ``stored_rows``/``stored_digest``: every row the batch wrote;
    ``conflicts``: rows held for review (to quarantine as REVISION_CONFLICT)."""

    new: int
    duplicates: int
    ignored: int
    superseded: int
    conflicts: pl.DataFrame
    stored_rows: int
    stored_digest: str


def stored_columns(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.select(
        "meter_id", "channel", "interval_end", "interval_seconds", "value", "quality"
    )


def apply_readings(
    tx: WriteTx,
    good: pl.DataFrame,
    *,
    batch_id: int,
    received_at: int,
    ahead: Prepared | None = None,
) -> Applied:
    found = tx.current_for(good.select(_KEY), ahead.spans if ahead is not None else None)
    if ahead is not None and found.is_empty():
        tx.insert_new(ahead.rows, batch_id=batch_id, received_at=received_at, encoded=ahead.encoded)
        return Applied(
            new=good.height,
            duplicates=0,
            ignored=0,
            superseded=0,
            conflicts=good.clear(),
            stored_rows=good.height,
            stored_digest=ahead.digest,
        )
    current = found.select(
        *_KEY,
        pl.col("value").alias("cur_value"),
        pl.col("quality").alias("cur_quality"),
        pl.col("interval_seconds").alias("cur_seconds"),
        pl.col("version").alias("cur_version"),
    )
    rows = good.join(current, on=_KEY, how="left")
    same = (
        (pl.col("value") == pl.col("cur_value"))
        & (pl.col("quality") == pl.col("cur_quality"))
        & (pl.col("interval_seconds") == pl.col("cur_seconds"))
    )
    r_in, r_cur = rank("quality"), rank("cur_quality")
    effect = (
        pl.when(pl.col("cur_value").is_null())
        .then(pl.lit(Effect.NEW.value))
        .when(same)
        .then(pl.lit(Effect.DUPLICATE.value))
        .when(r_in < r_cur)
        .then(pl.lit(Effect.IGNORED.value))
        .when((r_cur == 1) | (r_in == 3))
        .then(pl.lit(Effect.SUPERSEDE.value))
        .when(
            (pl.col("value") == pl.col("cur_value"))
            & (pl.col("interval_seconds") == pl.col("cur_seconds"))
        )
        .then(pl.lit(Effect.SUPERSEDE.value))
        .otherwise(pl.lit(Effect.CONFLICT.value))
    )
    rows = rows.with_columns(effect.alias("effect"))
    changing = rows.filter(~pl.col("effect").is_in([Effect.NEW.value, Effect.DUPLICATE.value]))
    # stored versions are read once: for the no-flip-flop check and the next version number
    stored = _EMPTY_VERSIONS if changing.is_empty() else tx.versions_for(changing.select(_KEY))
    rows = _against_versions(rows, stored)
    counts = rows.group_by("effect").len()
    count = dict(zip(counts["effect"].to_list(), counts["len"].to_list(), strict=True))

    stamp = [
        pl.lit(batch_id, dtype=pl.Int64).alias("batch_id"),
        pl.lit(received_at, dtype=pl.Int64).alias("received_at"),
    ]
    new = rows.filter(pl.col("effect") == Effect.NEW.value)
    if not new.is_empty():
        tx.insert_new(new.sort(_KEY), batch_id=batch_id, received_at=received_at)
    later = rows.filter(
        pl.col("effect").is_in(
            [Effect.IGNORED.value, Effect.SUPERSEDE.value, Effect.CONFLICT.value]
        )
    )
    if not later.is_empty():
        newest = stored.group_by(_KEY).agg(pl.col("version").max().alias("stored_version"))
        later = later.join(newest, on=_KEY, how="left").with_columns(
            *stamp,
            (pl.max_horizontal("cur_version", pl.col("stored_version").fill_null(0)) + 1).alias(
                "version"
            ),
        )
        for kind, status, reason in (
            (Effect.IGNORED, "ignored", "BEHIND_A_HIGHER_RANK"),
            (Effect.CONFLICT, "pending_review", "REVISION_CONFLICT"),
        ):
            part = later.filter(pl.col("effect") == kind.value).select(READING_COLUMNS)
            tx.insert_versions(part, status, reason)
        tx.replace_readings(
            later.filter(pl.col("effect") == Effect.SUPERSEDE.value).select(READING_COLUMNS),
            "SUPERSEDED_BY_REVISION",
        )
    written = rows.filter(pl.col("effect") != Effect.DUPLICATE.value)
    return Applied(
        new=count.get(Effect.NEW.value, 0),
        duplicates=count.get(Effect.DUPLICATE.value, 0),
        ignored=count.get(Effect.IGNORED.value, 0),
        superseded=count.get(Effect.SUPERSEDE.value, 0),
        conflicts=later.filter(pl.col("effect") == Effect.CONFLICT.value),
        stored_rows=written.height,
        stored_digest=batch_digest(stored_columns(written)),
    )


_EMPTY_VERSIONS = pl.DataFrame(schema=dict.fromkeys(READING_COLUMNS, pl.Int64))


def _against_versions(rows: pl.DataFrame, stored: pl.DataFrame) -> pl.DataFrame:
    """A value identical to any stored version of its key has already had its effect."""
    if stored.is_empty():
        return rows
    seen = stored.select(
        *_KEY, "value", "quality", "interval_seconds", pl.lit(True).alias("_seen")
    ).unique()
    marked = rows.join(seen, on=[*_KEY, "value", "quality", "interval_seconds"], how="left")
    return marked.with_columns(
        pl.when(pl.col("_seen").fill_null(False))
        .then(pl.lit(Effect.DUPLICATE.value))
        .otherwise(pl.col("effect"))
        .alias("effect")
    ).drop("_seen")
