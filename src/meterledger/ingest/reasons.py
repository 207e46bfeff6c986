"""Reason codes: why a record was quarantined. Stable strings, part of the public contract.

Rules are data: :data:`REASONS` lists every code with what it means; ``meterledger
quarantine reasons`` prints it, and docs/ingest.md documents it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["REASONS", "Reason", "ReasonInfo"]


class Reason(enum.StrEnum):
    MALFORMED_ROW = "MALFORMED_ROW"
    MALFORMED_METER_ID = "MALFORMED_METER_ID"
    UNKNOWN_METER = "UNKNOWN_METER"
    METER_INACTIVE = "METER_INACTIVE"
    MALFORMED_CHANNEL = "MALFORMED_CHANNEL"
    UNKNOWN_CHANNEL = "UNKNOWN_CHANNEL"
    MALFORMED_TIMESTAMP = "MALFORMED_TIMESTAMP"
    MALFORMED_INTERVAL = "MALFORMED_INTERVAL"
    MISALIGNED_INTERVAL = "MISALIGNED_INTERVAL"
    FUTURE_INTERVAL = "FUTURE_INTERVAL"
    MISSING_VALUE = "MISSING_VALUE"
    MALFORMED_VALUE = "MALFORMED_VALUE"
    VALUE_PRECISION = "VALUE_PRECISION"
    UNKNOWN_UNIT = "UNKNOWN_UNIT"
    UNIT_MISMATCH = "UNIT_MISMATCH"
    MALFORMED_QUALITY = "MALFORMED_QUALITY"
    NEGATIVE_VALUE = "NEGATIVE_VALUE"
    IMPLAUSIBLE_VALUE = "IMPLAUSIBLE_VALUE"
    DUPLICATE_KEY_CONFLICT = "DUPLICATE_KEY_CONFLICT"
    REVISION_CONFLICT = "REVISION_CONFLICT"


@dataclass(frozen=True, slots=True)
class ReasonInfo:
    code: Reason
    meaning: str


REASONS: tuple[ReasonInfo, ...] = (
    ReasonInfo(
        Reason.MALFORMED_ROW,
        "the record cannot be split into fields (wrong field count, "
        "broken JSON, bad XML element, not UTF-8)",
    ),
    ReasonInfo(Reason.MALFORMED_METER_ID, "meter id missing or not 1-64 of [A-Za-z0-9._:/-]"),
    ReasonInfo(Reason.UNKNOWN_METER, "no meter with this id is registered"),
    ReasonInfo(Reason.METER_INACTIVE, "the meter is inactive or retired"),
    ReasonInfo(Reason.MALFORMED_CHANNEL, "channel is not an OBIS code"),
    ReasonInfo(Reason.UNKNOWN_CHANNEL, "the meter has no such channel"),
    ReasonInfo(Reason.MALFORMED_TIMESTAMP, "interval_end is not ISO-8601 with a UTC offset"),
    ReasonInfo(Reason.MALFORMED_INTERVAL, "interval_seconds is not an integer that divides a day"),
    ReasonInfo(Reason.MISALIGNED_INTERVAL, "interval_end is not on the local grid of its length"),
    ReasonInfo(Reason.FUTURE_INTERVAL, "the interval ends after the time of receipt"),
    ReasonInfo(Reason.MISSING_VALUE, "value missing, empty or NaN"),
    ReasonInfo(Reason.MALFORMED_VALUE, "value is not a plain decimal number in range"),
    ReasonInfo(Reason.VALUE_PRECISION, "value is finer than one milli-unit of the base unit"),
    ReasonInfo(Reason.UNKNOWN_UNIT, "unit is not one of Wh, kWh, MWh, varh, kvarh, L, m3"),
    ReasonInfo(Reason.UNIT_MISMATCH, "the unit does not measure what the channel measures"),
    ReasonInfo(Reason.MALFORMED_QUALITY, "quality is not a known flag list"),
    ReasonInfo(Reason.NEGATIVE_VALUE, "negative value on a channel that cannot go negative"),
    ReasonInfo(
        Reason.IMPLAUSIBLE_VALUE, "more than the meter's capacity could deliver in the interval"
    ),
    ReasonInfo(
        Reason.DUPLICATE_KEY_CONFLICT,
        "the same (meter, channel, interval_end) twice in one batch with different values",
    ),
    ReasonInfo(
        Reason.REVISION_CONFLICT,
        "a second, different actual for a stored key: kept as a "
        "version, held for review, billing view unchanged",
    ),
)
