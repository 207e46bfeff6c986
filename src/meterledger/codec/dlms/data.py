"""COSEM data values: the A-XDR ``Data`` CHOICE of the Blue Book (DLMS UA 1000-1, 4.1.5) as
Python values. The encoding and decoding live in :mod:`meterledger.codec.dlms.axdr`.

A :class:`Data` keeps its wire type, so a value decodes and encodes to the same bytes:
``Data(DataType.DOUBLE_LONG_UNSIGNED, 5)``. Values by type:

* NULL_DATA, DONT_CARE: ``None``
* BOOLEAN: ``bool``
* integer types (INTEGER ... LONG64_UNSIGNED, ENUM): ``int`` (range-checked on encode)
* OCTET_STRING: ``bytes``; VISIBLE_STRING: ``str`` (ASCII); UTF8_STRING: ``str``
* BCD: ``int``, the raw signed byte: the CHOICE declares ``bcd [13] IMPLICIT Integer8``;
  reading the two nibbles as decimal digits is left to the caller
* BIT_STRING: :class:`BitString`
* FLOAT32, FLOAT64: ``float``
* ARRAY, STRUCTURE: ``tuple[Data, ...]``
* COMPACT_ARRAY: :class:`CompactArray`
* DATE_TIME: :class:`CosemDateTime`; DATE: :class:`CosemDate`; TIME: :class:`CosemTime`

Dates and times (Blue Book 4.1.6.1), which check their fields when built, live in
:mod:`meterledger.codec.dlms.cosem_time` and are re-exported here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from meterledger.codec.dlms.cosem_time import (
    DAYLIGHT_SAVING_ACTIVE,
    DEVIATION_NOT_SPECIFIED,
    DST_BEGIN,
    DST_END,
    LAST_DAY,
    NOT_SPECIFIED,
    SECOND_LAST_DAY,
    ClockStatus,
    CosemDate,
    CosemDateTime,
    CosemTime,
)
from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError

__all__ = [
    "DAYLIGHT_SAVING_ACTIVE",
    "DEVIATION_NOT_SPECIFIED",
    "DST_BEGIN",
    "DST_END",
    "INTEGER_RANGES",
    "LAST_DAY",
    "NOT_SPECIFIED",
    "SECOND_LAST_DAY",
    "BitString",
    "ClockStatus",
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
    DataType.BCD: (-(2**7), 2**7 - 1),  # Integer8 on the wire (see the module docstring)
}


@dataclass(frozen=True, slots=True)
class BitString:
    """``length`` bits, most significant first in ``data``. The unused trailing bits of
    the last byte are kept as received (an encoder sends zeros: see :meth:`from_bits`)."""

    length: int
    data: bytes

    def __post_init__(self) -> None:
        if self.length < 0 or len(self.data) != (self.length + 7) // 8:
            raise DlmsLocalError(
                f"bit-string of {self.length} bits needs {(self.length + 7) // 8} bytes"
            )

    @classmethod
    def from_bits(cls, bits: Iterable[bool | int]) -> BitString:
        """From bits in order, the first one the most significant bit of the first byte."""
        flags = [bool(b) for b in bits]
        padded = flags + [False] * (-len(flags) % 8)
        data = bytes(
            sum(1 << (7 - i) for i in range(8) if padded[start + i])
            for start in range(0, len(padded), 8)
        )
        return cls(len(flags), data)

    @property
    def bits(self) -> tuple[bool, ...]:
        """The bits in order (``bits[0]`` is the most significant bit of ``data[0]``)."""
        return tuple(bool(self.data[i >> 3] & (0x80 >> (i & 7))) for i in range(self.length))


@dataclass(frozen=True, slots=True)
class TypeDescription:
    """The type of a compact array's elements (Blue Book 4.1.5, TypeDescription): a simple
    type, an ARRAY of ``count`` elements of the one description in ``elements``, or a
    STRUCTURE of the descriptions in ``elements``. A COMPACT_ARRAY is not a description."""

    type: DataType
    count: int = 0
    elements: tuple[TypeDescription, ...] = ()

    def __post_init__(self) -> None:
        kind = self.type
        if kind is DataType.ARRAY:
            if not 0 <= self.count <= 0xFFFF or len(self.elements) != 1:
                raise DlmsLocalError("an ARRAY description has 0..65535 elements of one type")
        elif kind is DataType.STRUCTURE:
            if self.count:
                raise DlmsLocalError("a STRUCTURE description has no count")
        elif kind is DataType.COMPACT_ARRAY or not isinstance(kind, DataType):
            raise DlmsLocalError(f"{kind!r} cannot describe compact-array elements")
        elif self.count or self.elements:
            raise DlmsLocalError(f"{kind.name} is a simple type: no count, no elements")
        if not all(isinstance(e, TypeDescription) for e in self.elements):
            raise DlmsLocalError("the elements of a description are descriptions")

    @classmethod
    def array(cls, count: int, element: TypeDescription) -> TypeDescription:
        return cls(DataType.ARRAY, count, (element,))

    @classmethod
    def structure(cls, *elements: TypeDescription) -> TypeDescription:
        return cls(DataType.STRUCTURE, 0, tuple(elements))

    @classmethod
    def of(cls, value: Data) -> TypeDescription:
        """The description a value matches (an array's elements must all match its first)."""
        kind = value.type
        if kind is DataType.STRUCTURE:
            return cls.structure(*(cls.of(item) for item in value.items))
        if kind is DataType.ARRAY:
            items = value.items
            if not items:
                raise DlmsLocalError("an empty array does not say its element type")
            element = cls.of(items[0])
            if any(cls.of(item) != element for item in items[1:]):
                raise DlmsLocalError("array elements of different types have no description")
            return cls.array(len(items), element)
        return cls(kind)


@dataclass(frozen=True, slots=True)
class CompactArray:
    """compact-array: elements that all match ``description``, sent without their tags."""

    description: TypeDescription
    contents: tuple[Data, ...]


@dataclass(frozen=True, slots=True)
class Data:
    """One value of the Data CHOICE with its type (see the module docstring).

    The decoder builds these without calling ``__init__`` (it is the cost of a GET): keep
    the class free of ``__post_init__`` and of fields beyond these two."""

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
    def uint64(cls, value: int) -> Data:
        return cls(DataType.LONG64_UNSIGNED, value)

    @classmethod
    def int8(cls, value: int) -> Data:
        return cls(DataType.INTEGER, value)

    @classmethod
    def int16(cls, value: int) -> Data:
        return cls(DataType.LONG, value)

    @classmethod
    def int32(cls, value: int) -> Data:
        return cls(DataType.DOUBLE_LONG, value)

    @classmethod
    def int64(cls, value: int) -> Data:
        return cls(DataType.LONG64, value)

    @classmethod
    def enum(cls, value: int) -> Data:
        return cls(DataType.ENUM, value)

    @classmethod
    def boolean(cls, value: bool) -> Data:
        return cls(DataType.BOOLEAN, bool(value))

    @classmethod
    def visible_string(cls, value: str) -> Data:
        return cls(DataType.VISIBLE_STRING, value)

    @classmethod
    def date_time(cls, value: CosemDateTime) -> Data:
        return cls(DataType.DATE_TIME, value)

    @classmethod
    def date_time_octets(cls, value: CosemDateTime) -> Data:
        """A date-time as most attributes carry it: an octet-string of 12."""
        return cls(DataType.OCTET_STRING, value.to_octets())

    @property
    def items(self) -> tuple[Data, ...]:
        """The elements of an ARRAY or STRUCTURE."""
        if self.type not in (DataType.ARRAY, DataType.STRUCTURE):
            raise DlmsLocalError(f"{self.type.name} has no elements")
        assert isinstance(self.value, tuple)
        return self.value

    def to_cosem_datetime(self) -> CosemDateTime:
        """A DATE_TIME, or an OCTET_STRING of 12 holding one (:class:`DecodeError` if not)."""
        if self.type is DataType.DATE_TIME and isinstance(self.value, CosemDateTime):
            return self.value
        if self.type is DataType.OCTET_STRING and isinstance(self.value, (bytes, bytearray)):
            return CosemDateTime.from_octets(bytes(self.value))
        raise DecodeError(f"expected a date-time, got {self.type.name}")
