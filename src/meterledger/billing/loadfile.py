"""Load files for ``meterledger bill``: ``timestamp,kwh_delivered[,kwh_received]``.

Timestamps are interval *starts*: ISO-8601 with a UTC offset, or naive and read in the given
zone (the repeated autumn hour is told apart by order: a naive time that does not move forward
is read with the later offset). Energy is kWh, exact decimals, stored as integer mWh.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from meterledger.core.errors import FormatError, InputError

__all__ = ["LoadSeries", "read_load_csv"]

_MILLI = Decimal(1_000_000)
_MAX_KWH = Decimal(1_000_000_000)  # per interval: beyond any meter, and int64 mWh stays safe


@dataclass(frozen=True)
class LoadSeries:
    """A load file as arrays: interval ends (UTC epoch seconds, ascending), delivered and
    received mWh, and the interval length in seconds."""

    interval_end: np.ndarray
    delivered: np.ndarray
    received: np.ndarray
    interval_seconds: int

    @property
    def first_start(self) -> int:
        return int(self.interval_end[0]) - self.interval_seconds

    @property
    def last_end(self) -> int:
        return int(self.interval_end[-1])


def _milli(text: str, line: int, column: str) -> int:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise FormatError(f"line {line}: {column} {text!r} is not a number") from None
    if not value.is_finite():
        raise FormatError(f"line {line}: {column} {text!r} is not a finite number")
    if value < 0:
        raise FormatError(f"line {line}: {column} {text!r} is negative")
    if value > _MAX_KWH:
        raise FormatError(f"line {line}: {column} {text!r} is implausible (over {_MAX_KWH} kWh)")
    milli = value * _MILLI
    if milli != milli.to_integral_value():
        raise FormatError(f"line {line}: {column} {text!r} has more than 6 decimals of kWh")
    return int(milli)


def _instant(text: str, zone: ZoneInfo | None, previous: int | None, line: int) -> int:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise FormatError(f"line {line}: timestamp {text!r} is not ISO-8601") from None
    if value.tzinfo is not None:
        return int(value.timestamp())
    if zone is None:
        raise InputError(
            f"line {line}: timestamp {text!r} has no UTC offset; give --tz to read local times"
        )
    first = value.replace(tzinfo=zone)
    epoch = int(first.timestamp())
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != value:
        raise FormatError(f"line {line}: {text!r} does not exist in {zone.key} (a DST gap)")
    if previous is not None and epoch <= previous:
        later = int(value.replace(tzinfo=zone, fold=1).timestamp())
        if later > previous:
            return later
    return epoch


def read_load_csv(path: Path, zone: ZoneInfo | None = None) -> LoadSeries:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read load file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise FormatError(f"load file {path} is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if (
        header[:2] != ["timestamp", "kwh_delivered"]
        or len(header) > 3
        or (len(header) == 3 and header[2] != "kwh_received")
    ):
        raise FormatError(
            f"{path}: the header must be timestamp,kwh_delivered[,kwh_received]; got "
            f"{','.join(header) or '(empty file)'}"
        )
    starts: list[int] = []
    delivered: list[int] = []
    received: list[int] = []
    previous: int | None = None
    for line, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise FormatError(f"{path} line {line}: expected {len(header)} fields, got {len(row)}")
        start = _instant(row[0], zone, previous, line)
        if previous is not None and start <= previous:
            raise FormatError(
                f"{path} line {line}: timestamp {row[0]!r} is not after the line before"
            )
        previous = start
        starts.append(start)
        delivered.append(_milli(row[1], line, "kwh_delivered"))
        received.append(_milli(row[2], line, "kwh_received") if len(header) == 3 else 0)
    if not starts:
        raise FormatError(f"{path}: no readings after the header")
    start_array = np.asarray(starts, dtype=np.int64)
    seconds = 900
    if len(starts) > 1:
        # The interval length is the most common step; a gap is a multiple of it, and any
        # other step (a 5-minute row in 15-minute data) makes the file irregular.
        steps, counts = np.unique(np.diff(start_array), return_counts=True)
        seconds = int(steps[np.argmax(counts)])
        odd = steps[(steps % seconds) != 0]
        if len(odd):
            raise FormatError(
                f"{path}: intervals are not on a regular {seconds}-second grid (a step of "
                f"{int(odd[0])} s); give one interval length per file"
            )
    return LoadSeries(
        start_array + seconds,
        np.asarray(delivered, dtype=np.int64),
        np.asarray(received, dtype=np.int64),
        seconds,
    )
