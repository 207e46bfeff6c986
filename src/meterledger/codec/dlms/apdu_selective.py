"""Selective access to a Profile Generic buffer (Blue Book DLMS UA 1000-1, 4.3.6, class 7
attribute 2): by range (selector 1) and by entry (selector 2).

The client builds the :class:`SelectiveAccess` of a GET with :func:`range_access` or
:func:`entry_access`; the server reads one back with :func:`parse_selective_access`, which
raises :class:`DecodeError` for parameters of the wrong shape (they came from the wire).

::

    range_descriptor ::= structure {
        restricting_object  capture_object_definition,   -- usually the clock's time
        from_value, to_value                              -- date-time octet-strings, inclusive
        selected_values     array capture_object_definition  -- empty: all columns
    }
    capture_object_definition ::= structure {
        class_id long-unsigned, logical_name octet-string,
        attribute_index integer, data_index long-unsigned
    }
    entry_descriptor ::= structure {
        from_entry double-long-unsigned, to_entry double-long-unsigned (0: the last),
        from_selected_value long-unsigned, to_selected_value long-unsigned (0: the last)
    }
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from meterledger.codec.dlms.apdu_common import SelectiveAccess, check_int, check_tuple
from meterledger.codec.dlms.data import CosemDateTime, Data, DataType
from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError

__all__ = [
    "BY_ENTRY",
    "BY_RANGE",
    "CLOCK_TIME",
    "CaptureObjectDefinition",
    "EntryDescriptor",
    "RangeDescriptor",
    "entry_access",
    "parse_selective_access",
    "range_access",
]

BY_RANGE = 1
BY_ENTRY = 2

_T = DataType


@dataclass(frozen=True, slots=True)
class CaptureObjectDefinition:
    """One column of a profile: an attribute (and, for a structured one, its element
    ``data_index``, 0 = the whole attribute)."""

    class_id: int
    logical_name: bytes
    attribute_index: int
    data_index: int = 0

    def __post_init__(self) -> None:
        check_int("class_id", self.class_id, 0, 0xFFFF)
        if not isinstance(self.logical_name, bytes) or len(self.logical_name) != 6:
            raise DlmsLocalError("logical_name must be the 6 octets of an OBIS code")
        check_int("attribute_index", self.attribute_index, -128, 127)
        check_int("data_index", self.data_index, 0, 0xFFFF)

    def to_data(self) -> Data:
        return Data.structure(
            Data(_T.LONG_UNSIGNED, self.class_id),
            Data(_T.OCTET_STRING, self.logical_name),
            Data(_T.INTEGER, self.attribute_index),
            Data(_T.LONG_UNSIGNED, self.data_index),
        )

    @classmethod
    def from_data(cls, value: Data) -> CaptureObjectDefinition:
        class_id, name, attribute, index = _fields(
            value, (_T.LONG_UNSIGNED, _T.OCTET_STRING, _T.INTEGER, _T.LONG_UNSIGNED)
        )
        if not isinstance(name.value, bytes) or len(name.value) != 6:
            raise DecodeError("capture_object_definition: logical_name is not 6 octets")
        return cls(_int(class_id), name.value, _int(attribute), _int(index))


# The usual restricting object: the time attribute of the Clock (class 8, 0.0.1.0.0.255).
CLOCK_TIME = CaptureObjectDefinition(8, bytes((0, 0, 1, 0, 0, 255)), 2, 0)


def _elements(value: Data, kind: DataType) -> tuple[Data, ...]:
    if value.type is not kind or not isinstance(value.value, tuple):
        raise DecodeError(f"expected {kind.name}, got {value.type.name}")
    if not all(isinstance(item, Data) for item in value.value):
        raise DecodeError(f"{kind.name} holds something other than Data")
    return value.value


def _fields(value: Data, types: tuple[DataType | None, ...]) -> tuple[Data, ...]:
    """The elements of a structure of exactly ``types`` (``None``: any type)."""
    items = _elements(value, _T.STRUCTURE)
    if len(items) != len(types):
        raise DecodeError(f"expected a structure of {len(types)} elements, got {len(items)}")
    for position, (item, kind) in enumerate(zip(items, types, strict=True)):
        if kind is not None and item.type is not kind:
            raise DecodeError(f"element {position + 1}: expected {kind.name}, got {item.type.name}")
    return items


def _int(value: Data) -> int:
    if isinstance(value.value, bool) or not isinstance(value.value, int):
        raise DecodeError(f"{value.type.name} does not hold an integer")
    return value.value


@dataclass(frozen=True, slots=True)
class RangeDescriptor:
    """Entries whose ``restricting_object`` value lies in ``from_value``..``to_value``."""

    restricting_object: CaptureObjectDefinition
    from_value: Data
    to_value: Data
    selected_values: tuple[CaptureObjectDefinition, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.restricting_object, CaptureObjectDefinition):
            raise DlmsLocalError("restricting_object must be a CaptureObjectDefinition")
        if not isinstance(self.from_value, Data) or not isinstance(self.to_value, Data):
            raise DlmsLocalError("from_value and to_value must be Data")
        check_tuple(self.selected_values, CaptureObjectDefinition, "selected_values")

    def to_access(self) -> SelectiveAccess:
        return SelectiveAccess(
            BY_RANGE,
            Data.structure(
                self.restricting_object.to_data(),
                self.from_value,
                self.to_value,
                Data.array(*(column.to_data() for column in self.selected_values)),
            ),
        )

    def from_time(self) -> CosemDateTime:
        """``from_value`` as a date-time (DecodeError if it is not one)."""
        return self.from_value.to_cosem_datetime()

    def to_time(self) -> CosemDateTime:
        return self.to_value.to_cosem_datetime()


@dataclass(frozen=True, slots=True)
class EntryDescriptor:
    """Entries ``from_entry``..``to_entry`` (1-based, 0 = up to the last) and columns
    ``from_selected_value``..``to_selected_value`` (0 = up to the last)."""

    from_entry: int
    to_entry: int = 0
    from_selected_value: int = 1
    to_selected_value: int = 0

    def __post_init__(self) -> None:
        check_int("from_entry", self.from_entry, 0, 0xFFFFFFFF)
        check_int("to_entry", self.to_entry, 0, 0xFFFFFFFF)
        check_int("from_selected_value", self.from_selected_value, 0, 0xFFFF)
        check_int("to_selected_value", self.to_selected_value, 0, 0xFFFF)

    def to_access(self) -> SelectiveAccess:
        return SelectiveAccess(
            BY_ENTRY,
            Data.structure(
                Data(_T.DOUBLE_LONG_UNSIGNED, self.from_entry),
                Data(_T.DOUBLE_LONG_UNSIGNED, self.to_entry),
                Data(_T.LONG_UNSIGNED, self.from_selected_value),
                Data(_T.LONG_UNSIGNED, self.to_selected_value),
            ),
        )


def _time_value(value: datetime | CosemDateTime | Data) -> Data:
    if isinstance(value, Data):
        return value
    if isinstance(value, datetime):
        value = CosemDateTime.from_datetime(value)
    return Data.date_time_octets(value)


def range_access(
    start: datetime | CosemDateTime | Data,
    end: datetime | CosemDateTime | Data,
    *,
    restricting_object: CaptureObjectDefinition = CLOCK_TIME,
    selected_values: tuple[CaptureObjectDefinition, ...] = (),
) -> SelectiveAccess:
    """Selector 1 for a profile read from ``start`` to ``end`` (both inclusive). Times go
    as 12-octet date-time octet-strings, as meters expect them; an aware ``datetime`` keeps
    its own UTC offset (deviation = −offset). Pass a :class:`Data` to send anything else."""
    return RangeDescriptor(
        restricting_object, _time_value(start), _time_value(end), tuple(selected_values)
    ).to_access()


def entry_access(
    from_entry: int, to_entry: int = 0, from_selected_value: int = 1, to_selected_value: int = 0
) -> SelectiveAccess:
    """Selector 2: entries by index (1 = the oldest entry), columns by index."""
    return EntryDescriptor(from_entry, to_entry, from_selected_value, to_selected_value).to_access()


def parse_selective_access(access: SelectiveAccess) -> RangeDescriptor | EntryDescriptor:
    """The server side: the descriptor a GET of a profile buffer asks for."""
    try:
        if access.selector == BY_RANGE:
            restricting, start, end, columns = _fields(
                access.parameters, (_T.STRUCTURE, None, None, _T.ARRAY)
            )
            selected = tuple(
                CaptureObjectDefinition.from_data(c) for c in _elements(columns, _T.ARRAY)
            )
            return RangeDescriptor(
                CaptureObjectDefinition.from_data(restricting), start, end, selected
            )
        if access.selector == BY_ENTRY:
            numbers = _fields(
                access.parameters,
                (
                    _T.DOUBLE_LONG_UNSIGNED,
                    _T.DOUBLE_LONG_UNSIGNED,
                    _T.LONG_UNSIGNED,
                    _T.LONG_UNSIGNED,
                ),
            )
            return EntryDescriptor(*(_int(n) for n in numbers))
    except DlmsLocalError as exc:  # a value out of range for its field
        raise DecodeError(f"selective access: {exc}") from exc
    except DecodeError as exc:
        raise DecodeError(f"selective access selector {access.selector}: {exc}") from exc
    raise DecodeError(f"selective access selector {access.selector} is not by range or entry")
