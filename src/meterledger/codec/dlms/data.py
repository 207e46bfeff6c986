"""COSEM data values: the A-XDR ``Data`` CHOICE of the Blue Book (DLMS UA 1000-1, 4.1.5) as
Python values. The encoding and decoding live in :mod:`meterledger.codec.dlms.axdr`.

A :class:`Data` keeps its wire type, so a value decodes and encodes to the same bytes:
``Data(DataType.DOUBLE_LONG_UNSIGNED, 5)``. Values by type:

* NULL_DATA, DONT_CARE: ``None``
* BOOLEAN: ``bool``
* integer types (INTEGER ... LONG64_UNSIGNED, ENUM): ``int`` (range-checked)
* OCTET_STRING: ``bytes``; VISIBLE_STRING: ``str`` (ASCII); UTF8_STRING: ``str``
* BCD: ``int`` (one byte, -99..99 as in A-XDR)
* BIT_STRING: :class:`BitString`
* FLOAT32, FLOAT64: ``float``
* ARRAY, STRUCTURE: ``tuple[Data, ...]``
* COMPACT_ARRAY: :class:`CompactArray`
* DATE_TIME: :class:`CosemDateTime`; DATE: :class:`CosemDate`; TIME: :class:`CosemTime`
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from meterledger.codec.dlms.errors import DlmsLocalError

__all__ = [
    "BitString",
    "CompactArray",
    "CosemDate",
    "CosemDateTime",
    "CosemTime",
    "Data",
    "DataType",
    "TypeDescription",
]


class DataType(enum.IntEnum):
    """Tags of the Data CHOICE (Blue Book 4.1.5, Table 2)."""

    NULL_DATA = 0
    ARRAY = 1
    STRUCTURE = 2
    BOOLEAN = 3
    BIT_STRING = 4
    DOUBLE_LONG = 5
    DOUBLE_LONG_UNSIGNED = 6
    OCTET_STRING = 9
    VISIBLE_STRING = 10
    UTF8_STRING = 12
    BCD = 13
    INTEGER = 15
    LONG = 16
    UNSIGNED = 17
    LONG_UNSIGNED = 18
    COMPACT_ARRAY = 19
    LONG64 = 20
    LONG64_UNSIGNED = 21
    ENUM = 22
    FLOAT32 = 23
    FLOAT64 = 24
    DATE_TIME = 25
    DATE = 26
    TIME = 27
    DONT_CARE = 255


INTEGER_RANGES: dict[DataType, tuple[int, int]] = {
    DataType.INTEGER: (-(2**7), 2**7 - 1),
    DataType.LONG: (-(2**15), 2**15 - 1),
    DataType.DOUBLE_LONG: (-(2**31), 2**31 - 1),
    DataType.LONG64: (-(2**63), 2**63 - 1),
    DataType.UNSIGNED: (0, 2**8 - 1),
    DataType.LONG_UNSIGNED: (0, 2**16 - 1),
    DataType.DOUBLE_LONG_UNSIGNED: (0, 2**32 - 1),
    DataType.LONG64_UNSIGNED: (0, 2**64 - 1),
    DataType.ENUM: (0, 2**8 - 1),
    DataType.BCD: (-99, 99),
}


@dataclass(frozen=True, slots=True)
class BitString:
    """``length`` bits, most significant first in ``data`` (unused trailing bits zero)."""

    length: int
    data: bytes

    def __post_init__(self) -> None:
        if self.length < 0 or len(self.data) != (self.length + 7) // 8:
            raise DlmsLocalError(
                f"bit-string of {self.length} bits needs {(self.length + 7) // 8} bytes"
            )


@dataclass(frozen=True, slots=True)
class TypeDescription:
    """The type of a compact array's elements: a simple type, an array of ``count``
    elements of one description, or a structure of descriptions."""

    type: DataType
    count: int = 0
    elements: tuple[TypeDescription, ...] = ()


@dataclass(frozen=True, slots=True)
class CompactArray:
    description: TypeDescription
    contents: tuple[Data, ...]


# Blue Book 4.1.6.1: 0xFF (or 0xFFFF for the year) means "not specified"; deviation 0x8000.
NOT_SPECIFIED = 0xFF
DEVIATION_NOT_SPECIFIED = -0x8000


@dataclass(frozen=True, slots=True)
class CosemDate:
    year: int | None
    month: int | None  # 1..12; 0xFD/0xFE (DST end/begin) kept as the raw int
    day: int | None  # 1..31; 0xFD/0xFE (second last / last day) kept as the raw int
    weekday: int | None  # 1 = Monday .. 7


@dataclass(frozen=True, slots=True)
class CosemTime:
    hour: int | None
    minute: int | None
    second: int | None
    hundredths: int | None


@dataclass(frozen=True, slots=True)
class CosemDateTime:
    """date-time (12 octets): local date and time, ``deviation`` = minutes of local time
    *behind* UTC as the Blue Book defines it (local = UTC − deviation... see
    :meth:`to_datetime`), ``None`` when not specified; ``status`` the clock status bits."""

    date: CosemDate
    time: CosemTime
    deviation: int | None
    status: int | None

    def to_datetime(self) -> datetime:
        """The aware instant. The Blue Book's deviation is "local time to UTC" in minutes:
        UTC = local + deviation, so the UTC offset is ``-deviation``."""
        d, t = self.date, self.time
        if None in (d.year, d.month, d.day, t.hour, t.minute, t.second):
            raise DlmsLocalError("date-time has unspecified fields; it is not one instant")
        assert d.year is not None and d.month is not None and d.day is not None
        assert t.hour is not None and t.minute is not None and t.second is not None
        offset = 0 if self.deviation is None else -self.deviation
        zone = timezone(timedelta(minutes=offset))
        micro = (t.hundredths or 0) * 10_000
        return datetime(d.year, d.month, d.day, t.hour, t.minute, t.second, micro, tzinfo=zone)

    @classmethod
    def from_datetime(cls, value: datetime, status: int | None = 0) -> CosemDateTime:
        """From an aware datetime, in its own offset (deviation = −offset minutes)."""
        if value.tzinfo is None or value.utcoffset() is None:
            raise DlmsLocalError("a COSEM date-time needs an aware datetime")
        offset = value.utcoffset()
        assert offset is not None
        minutes = int(offset.total_seconds() // 60)
        return cls(
            CosemDate(value.year, value.month, value.day, value.isoweekday()),
            CosemTime(value.hour, value.minute, value.second, value.microsecond // 10_000),
            -minutes,
            status,
        )

    def utc(self) -> datetime:
        return self.to_datetime().astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Data:
    """One value of the Data CHOICE with its type (see the module docstring)."""

    type: DataType
    value: object = None

    # Short constructors for the common types.
    @classmethod
    def null(cls) -> Data:
        return cls(DataType.NULL_DATA)

    @classmethod
    def octets(cls, value: bytes) -> Data:
        return cls(DataType.OCTET_STRING, bytes(value))

    @classmethod
    def structure(cls, *items: Data) -> Data:
        return cls(DataType.STRUCTURE, tuple(items))

    @classmethod
    def array(cls, *items: Data) -> Data:
        return cls(DataType.ARRAY, tuple(items))

    @classmethod
    def uint8(cls, value: int) -> Data:
        return cls(DataType.UNSIGNED, value)

    @classmethod
    def uint16(cls, value: int) -> Data:
        return cls(DataType.LONG_UNSIGNED, value)

    @classmethod
    def uint32(cls, value: int) -> Data:
        return cls(DataType.DOUBLE_LONG_UNSIGNED, value)

    @classmethod
    def int8(cls, value: int) -> Data:
        return cls(DataType.INTEGER, value)

    @classmethod
    def enum(cls, value: int) -> Data:
        return cls(DataType.ENUM, value)

    @property
    def items(self) -> tuple[Data, ...]:
        """The elements of an ARRAY or STRUCTURE."""
        if self.type not in (DataType.ARRAY, DataType.STRUCTURE):
            raise DlmsLocalError(f"{self.type.name} has no elements")
        assert isinstance(self.value, tuple)
        return self.value
