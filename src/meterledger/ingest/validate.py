"""Validation: raw text fields → typed readings, or quarantine reasons. Vectorised (polars).

Two stages, both run on the staging threads. :func:`prepare` needs no store: it parses every
field (exact decimal → integer milli-units, timestamps, OBIS codes, units, quality flags).
:func:`check` joins the prepared rows with a snapshot of the registered meters and channels
and applies the rules that need them. If the registry has changed by the time the block is
written, the writer runs :func:`check` again inside its transaction.

Distinct values are few (a file has thousands of timestamps but millions of rows), so
timestamps, OBIS codes, units and quality texts are parsed once per distinct value.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import polars as pl

from meterledger.core.errors import InputError
from meterledger.core.ids import is_valid_meter_id
from meterledger.core.obis import ObisCode
from meterledger.core.reading import Quality
from meterledger.core.time import epoch_of, is_aligned, parse_instant, parse_zone
from meterledger.core.units import Unit
from meterledger.ingest.reasons import Reason

__all__ = ["Checked", "Registry", "check", "prepare"]

_MISSING_WORDS = ["nan", "+nan", "-nan", "null", "none", "na", "n/a"]


def _spellings(word: str) -> list[str]:
    """Every upper/lower-case spelling of ``word``: matched exactly, so no value is ever
    lowercased (that pass over every value cost more than the whole match)."""
    spellings = [""]
    for char in word:
        spellings = [s + c for s in spellings for c in {char.lower(), char.upper()}]
    return spellings


_MISSING_SPELLINGS = sorted({s for word in _MISSING_WORDS for s in _spellings(word)})
_DECIMAL = r"^([+-]?)([0-9]*)(?:\.([0-9]*))?$"  # ASCII digits only, never \d
_MAX_DIGITS = 18  # int64 milli-units hold 18 full decimal digits


@lru_cache(maxsize=200_000)
def _epoch_or_none(text: str) -> int | None:
    try:
        return epoch_of(parse_instant(text))
    except InputError:
        return None


@lru_cache(maxsize=4096)
def _obis_or_none(text: str) -> str | None:
    try:
        return str(ObisCode.parse(text))
    except InputError:
        return None


@lru_cache(maxsize=4096)
def _quality_or_none(text: str) -> int | None:
    try:
        return int(Quality.parse(text))
    except InputError:
        return None


def _map_distinct(column: pl.Series, parse: object, dtype: type[pl.DataType]) -> pl.Series:
    """``parse`` applied once per distinct value, mapped back by a hash join."""
    distinct = column.drop_nulls().unique()
    parsed = pl.Series("v", [parse(v) for v in distinct.to_list()], dtype=dtype)  # type: ignore[operator]
    table = pl.DataFrame({"k": distinct, "v": parsed})
    joined = column.rename("k").to_frame().join(table, on="k", how="left", maintain_order="left")
    return joined.get_column("v")


_UNIT_TABLE = pl.DataFrame(
    {
        "unit": [u.value for u in Unit],
        "k": [u.decimals for u in Unit],
        "base": [u.base.value for u in Unit],
    },
    schema={"unit": pl.String, "k": pl.Int64, "base": pl.String},
)


def prepare(raw: pl.DataFrame) -> pl.DataFrame:
    """Add typed columns: ``end, seconds, milli, quality_flags, obis, base, meter_ok`` and the
    per-field error codes ``value_error``. Needs no store."""
    ends = _map_distinct(raw["interval_end"], _epoch_or_none, pl.Int64)
    obis = _map_distinct(raw["channel"], _obis_or_none, pl.String)
    quality = _map_distinct(raw["quality"], _quality_or_none, pl.Int64)
    frame = raw.with_columns(
        ends.alias("end"),
        obis.alias("obis"),
        pl.when(pl.col("quality").is_null())
        .then(pl.lit(0, dtype=pl.Int64))
        .otherwise(quality)
        .alias("quality_flags"),
    )
    value = pl.col("value")
    # a DFA match validates without allocating; the split then only sees well-formed text
    body = pl.when(value.str.contains(_DECIMAL)).then(
        value.str.strip_prefix("-").str.strip_prefix("+")
    )
    parts = body.str.split_exact(".", 1)
    int_text, frac_text = parts.struct.field("field_0"), parts.struct.field("field_1")
    frame = frame.join(_UNIT_TABLE, on="unit", how="left", maintain_order="left")
    frame = frame.with_columns(
        _map_distinct(raw["meter_id"], is_valid_meter_id, pl.Boolean)
        .fill_null(False)
        .alias("meter_ok"),
        pl.col("interval_seconds").cast(pl.Int64, strict=False).alias("seconds"),
        value.str.starts_with("-").alias("_negative"),
        int_text.str.strip_chars_start("0").alias("_int"),
        frac_text.fill_null("").str.strip_chars_end("0").alias("_frac"),
        (int_text.str.len_bytes() + frac_text.fill_null("").str.len_bytes()).alias("_digits"),
    )
    missing = value.is_null() | value.is_in(_MISSING_SPELLINGS)
    malformed = pl.col("_digits").fill_null(0) == 0
    too_long = pl.col("_int").str.len_chars() + pl.col("k") > _MAX_DIGITS
    too_fine = pl.col("_frac").str.len_chars() > pl.col("k")
    magnitude = pl.when(pl.col("_int") == "").then(0).otherwise(
        pl.col("_int").cast(pl.Int64, strict=False)
    ) * pl.lit(10, dtype=pl.Int64).pow(pl.col("k")) + pl.col("_frac").str.pad_end(9, "0").str.slice(
        0, 9
    ).cast(pl.Int64, strict=False) // pl.lit(10, dtype=pl.Int64).pow(9 - pl.col("k"))
    error = (
        pl.when(missing)
        .then(pl.lit(Reason.MISSING_VALUE.value))
        .when(malformed | too_long)
        .then(pl.lit(Reason.MALFORMED_VALUE.value))
        .when(pl.col("k").is_null())
        .then(None)  # unit problem reported by the unit rule
        .when(too_fine)
        .then(pl.lit(Reason.VALUE_PRECISION.value))
    )
    frame = frame.with_columns(error.alias("value_error"))
    milli = pl.when(pl.col("value_error").is_null() & pl.col("k").is_not_null()).then(
        pl.when(pl.col("_negative")).then(-magnitude).otherwise(magnitude)
    )
    return frame.with_columns(milli.alias("milli")).drop(
        "_negative", "_int", "_frac", "_digits", "k"
    )


@dataclass(slots=True)
class Registry:
    """The meters and channels known to the store, as frames for joining."""

    meters: pl.DataFrame  # meter_id, timezone, capacity, status
    channels: pl.DataFrame  # meter_id, obis, channel_id, base_unit, allows_negative


@dataclass(frozen=True, slots=True)
class Checked:
    """``good``: rows to apply (``channel_id, interval_end, interval_seconds, value, quality,
    meter_id, channel, record_no, raw``). ``bad``: rows to quarantine with ``reasons`` (list)
    and ``detail``. ``repeats``: identical repeats of a key inside the batch (no effect)."""

    good: pl.DataFrame
    bad: pl.DataFrame
    repeats: int


@lru_cache(maxsize=1_000_000)
def _aligned(tz: str, end: int, seconds: int) -> bool:
    return seconds > 0 and is_aligned(end, seconds, parse_zone(tz))


def _alignment(frame: pl.DataFrame) -> pl.Series:
    triples = frame.select("timezone", "end", "seconds").unique().drop_nulls()
    results = [_aligned(tz, end, seconds) for tz, end, seconds in triples.iter_rows()]
    table = triples.with_columns(pl.Series("aligned", results, dtype=pl.Boolean))
    joined = frame.select("timezone", "end", "seconds").join(
        table, on=["timezone", "end", "seconds"], how="left", maintain_order="left"
    )
    return joined["aligned"].fill_null(True)


def check(prepared: pl.DataFrame, registry: Registry, *, now: int) -> Checked:
    frame = prepared.join(registry.meters, on="meter_id", how="left", maintain_order="left").join(
        registry.channels, on=["meter_id", "obis"], how="left", maintain_order="left"
    )
    frame = frame.with_columns(_alignment(frame).alias("aligned"))
    row_ok = pl.col("error").is_null()
    known = pl.col("timezone").is_not_null()
    seconds_ok = (pl.col("seconds") > 0) & (86_400 % pl.col("seconds").clip(1) == 0)
    value_ok = pl.col("milli").is_not_null()
    rules: list[tuple[Reason, pl.Expr, pl.Expr]] = [
        (Reason.MALFORMED_ROW, ~row_ok, pl.col("error_detail")),
        (
            Reason.MALFORMED_METER_ID,
            row_ok & ~pl.col("meter_ok"),
            pl.format("meter id {} is malformed", pl.col("meter_id").fill_null("(missing)")),
        ),
        (
            Reason.UNKNOWN_METER,
            row_ok & pl.col("meter_ok") & ~known,
            pl.format("meter {} is not registered", pl.col("meter_id")),
        ),
        (
            Reason.METER_INACTIVE,
            known & (pl.col("status") != "active"),
            pl.format("meter {} is {}", pl.col("meter_id"), pl.col("status")),
        ),
        (
            Reason.MALFORMED_CHANNEL,
            row_ok & pl.col("obis").is_null(),
            pl.format("channel {} is not an OBIS code", pl.col("channel").fill_null("(missing)")),
        ),
        (
            Reason.UNKNOWN_CHANNEL,
            known & pl.col("obis").is_not_null() & pl.col("channel_id").is_null(),
            pl.format("meter {} has no channel {}", pl.col("meter_id"), pl.col("obis")),
        ),
        (
            Reason.MALFORMED_TIMESTAMP,
            row_ok & pl.col("end").is_null(),
            pl.format(
                "interval_end {} is not ISO-8601 with a UTC offset",
                pl.col("interval_end").fill_null("(missing)"),
            ),
        ),
        (
            Reason.MALFORMED_INTERVAL,
            row_ok & ~seconds_ok.fill_null(False),
            pl.format(
                "interval_seconds {} does not divide a day",
                pl.col("interval_seconds").fill_null("(missing)"),
            ),
        ),
        (
            Reason.MISALIGNED_INTERVAL,
            known & seconds_ok.fill_null(False) & pl.col("end").is_not_null() & ~pl.col("aligned"),
            pl.format(
                "interval_end {} is not on the {}-second local grid",
                pl.col("interval_end"),
                pl.col("seconds"),
            ),
        ),
        (
            Reason.FUTURE_INTERVAL,
            pl.col("end").fill_null(0) > now,
            pl.format("interval_end {} is after receipt", pl.col("interval_end")),
        ),
        (
            Reason.MISSING_VALUE,
            row_ok & (pl.col("value_error") == Reason.MISSING_VALUE.value),
            pl.lit("value is missing"),
        ),
        (
            Reason.MALFORMED_VALUE,
            row_ok & (pl.col("value_error") == Reason.MALFORMED_VALUE.value),
            pl.format("value {} is not a plain decimal in range", pl.col("value")),
        ),
        (
            Reason.VALUE_PRECISION,
            row_ok & (pl.col("value_error") == Reason.VALUE_PRECISION.value),
            pl.format("value {} {} is finer than one milli-unit", pl.col("value"), pl.col("unit")),
        ),
        (
            Reason.UNKNOWN_UNIT,
            row_ok & pl.col("base").is_null(),
            pl.format("unit {} is unknown", pl.col("unit").fill_null("(missing)")),
        ),
        (
            Reason.UNIT_MISMATCH,
            pl.col("base").is_not_null()
            & pl.col("base_unit").is_not_null()
            & (pl.col("base") != pl.col("base_unit")),
            pl.format(
                "unit {} does not fit channel {} ({})",
                pl.col("unit"),
                pl.col("obis"),
                pl.col("base_unit"),
            ),
        ),
        (
            Reason.MALFORMED_QUALITY,
            row_ok & pl.col("quality").is_not_null() & pl.col("quality_flags").is_null(),
            pl.format("quality {} is not a known flag list", pl.col("quality")),
        ),
        (
            Reason.NEGATIVE_VALUE,
            value_ok & (pl.col("milli") < 0) & ~pl.col("allows_negative").fill_null(True),
            pl.format("negative value {} on channel {}", pl.col("value"), pl.col("obis")),
        ),
        (
            Reason.IMPLAUSIBLE_VALUE,
            value_ok
            & known
            & seconds_ok.fill_null(False)
            & (pl.col("milli").abs() > (pl.col("capacity") * pl.col("seconds") + 3599) // 3600),
            pl.format(
                "value {} {} exceeds what the meter can deliver in {} s",
                pl.col("value"),
                pl.col("unit"),
                pl.col("seconds"),
            ),
        ),
    ]
    flags = frame.select(*[mask.fill_null(False).alias(code.value) for code, mask, _ in rules])
    failing = pl.any_horizontal(pl.all())
    bad_mask = flags.select(failing.alias("bad")).to_series()
    good = frame.filter(~bad_mask)
    bad = _describe(frame.filter(bad_mask), flags.filter(bad_mask), rules)
    good, conflicts, repeats = _batch_duplicates(good)
    if not conflicts.is_empty():
        bad = pl.concat([bad, conflicts], how="vertical_relaxed")
    return Checked(good=good, bad=bad.sort("record_no"), repeats=repeats)


def _describe(
    frame: pl.DataFrame, flags: pl.DataFrame, rules: list[tuple[Reason, pl.Expr, pl.Expr]]
) -> pl.DataFrame:
    if frame.is_empty():
        return _bad_frame(
            frame.with_columns(
                pl.lit([], dtype=pl.List(pl.String)).alias("reasons"), pl.lit("").alias("detail")
            )
        )
    both = pl.concat([frame, flags.rename({c: f"_r_{c}" for c in flags.columns})], how="horizontal")
    codes = [pl.when(pl.col(f"_r_{code.value}")).then(pl.lit(code.value)) for code, _, _ in rules]
    texts = [pl.when(pl.col(f"_r_{code.value}")).then(text) for code, _, text in rules]
    described = both.with_columns(
        pl.concat_list(codes).list.drop_nulls().alias("reasons"),
        pl.concat_list(texts).list.drop_nulls().list.join("; ").alias("detail"),
    )
    return _bad_frame(described)


_BAD_COLUMNS = (
    "record_no",
    "meter_id",
    "channel",
    "interval_end",
    "interval_seconds",
    "value",
    "unit",
    "quality",
    "raw",
    "reasons",
    "detail",
)


def _bad_frame(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(_BAD_COLUMNS)


def _batch_duplicates(good: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Same key twice in one batch: identical → one kept; different → all quarantined."""
    key = ["channel_id", "end"]
    if not good.select(pl.struct(key).is_duplicated().any()).item():
        # the common case, checked cheaply: every key appears once
        marked = good.with_columns(
            pl.lit(1, dtype=pl.UInt32).alias("_variants"), pl.lit(True).alias("_first")
        )
    else:
        marked = good.with_columns(
            pl.struct("milli", "quality_flags", "seconds").n_unique().over(key).alias("_variants"),
            pl.struct(key).is_first_distinct().alias("_first"),
        )
    clash = marked.filter(pl.col("_variants") > 1)
    kept = marked.filter((pl.col("_variants") == 1) & pl.col("_first"))
    repeats = marked.height - clash.height - kept.height
    conflicts = clash.with_columns(
        pl.lit([Reason.DUPLICATE_KEY_CONFLICT.value]).alias("reasons"),
        pl.format(
            "meter {} channel {} interval_end {} appears {} times in this batch with "
            "different values",
            pl.col("meter_id"),
            pl.col("obis"),
            pl.col("interval_end"),
            pl.len().over(key),
        ).alias("detail"),
    )
    good_out = kept.select(
        "channel_id",
        pl.col("end").alias("interval_end"),
        pl.col("seconds").alias("interval_seconds"),
        pl.col("milli").alias("value"),
        pl.col("quality_flags").fill_null(0).alias("quality"),
        "meter_id",
        pl.col("obis").alias("channel"),
        "record_no",
        "raw",
    )
    return good_out, _bad_frame(conflicts), repeats
