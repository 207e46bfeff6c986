"""COSEM interface classes (Blue Book, DLMS UA 1000-1 clause 4.3–4.4) as typed values.

Only what a head-end reads and sets: Data (1), Register (3), Extended Register (4), Profile
Generic (7), Clock (8), Association LN (15) and Security Setup (64). Each class lists its
attribute and method numbers; the ``parse_*`` functions turn the :class:`Data` a server
returns into typed values and the ``*_data`` functions build what a server sends.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, tzinfo

from meterledger.codec.dlms.data import CosemDateTime, Data, DataType
from meterledger.codec.dlms.errors import DecodeError

__all__ = [
    "AccessRight",
    "AssociationLnAttr",
    "CaptureObject",
    "ClassId",
    "ClockAttr",
    "ClockValue",
    "ObjectListEntry",
    "ProfileAttr",
    "RegisterAttr",
    "RegisterValue",
    "ScalerUnit",
    "SecuritySetupMethod",
    "capture_objects_data",
    "clock_value",
    "obis_bytes",
    "obis_text",
    "object_list_data",
    "parse_buffer",
    "parse_capture_objects",
    "parse_object_list",
    "parse_scaler_unit",
    "scaler_unit_data",
]


class ClassId(enum.IntEnum):
    """COSEM interface class ids (Blue Book 4.3/4.4)."""

    DATA = 1
    REGISTER = 3
    EXTENDED_REGISTER = 4
    PROFILE_GENERIC = 7
    CLOCK = 8
    ASSOCIATION_LN = 15
    SECURITY_SETUP = 64


class RegisterAttr(enum.IntEnum):
    """Register (3) and Extended Register (4) attributes."""

    LOGICAL_NAME = 1
    VALUE = 2
    SCALER_UNIT = 3
    STATUS = 4  # extended register
    CAPTURE_TIME = 5  # extended register


class ProfileAttr(enum.IntEnum):
    """Profile Generic (7) attributes."""

    LOGICAL_NAME = 1
    BUFFER = 2
    CAPTURE_OBJECTS = 3
    CAPTURE_PERIOD = 4
    SORT_METHOD = 5
    SORT_OBJECT = 6
    ENTRIES_IN_USE = 7
    PROFILE_ENTRIES = 8


class ClockAttr(enum.IntEnum):
    """Clock (8) attributes; method 6 is ``shift_time`` (long, seconds)."""

    LOGICAL_NAME = 1
    TIME = 2
    TIME_ZONE = 3
    STATUS = 4
    DAYLIGHT_SAVINGS_BEGIN = 5
    DAYLIGHT_SAVINGS_END = 6
    DAYLIGHT_SAVINGS_DEVIATION = 7
    DAYLIGHT_SAVINGS_ENABLED = 8
    CLOCK_BASE = 9


class AssociationLnAttr(enum.IntEnum):
    """Association LN (15) attributes; method 1 is ``reply_to_HLS_authentication``."""

    LOGICAL_NAME = 1
    OBJECT_LIST = 2
    ASSOCIATED_PARTNERS_ID = 3
    APPLICATION_CONTEXT_NAME = 4
    XDLMS_CONTEXT_INFO = 5
    AUTHENTICATION_MECHANISM_NAME = 6
    SECRET = 7
    ASSOCIATION_STATUS = 8


class SecuritySetupMethod(enum.IntEnum):
    """Security Setup (64) methods."""

    SECURITY_ACTIVATE = 1
    KEY_TRANSFER = 2  # global_key_transfer: array of structure{key_id, key_wrapped}


class AccessRight(enum.IntEnum):
    """Attribute access modes in the object list (Blue Book 4.4.3)."""

    NO_ACCESS = 0
    READ = 1
    WRITE = 2
    READ_WRITE = 3


def obis_bytes(text: str) -> bytes:
    """``"1.0.1.8.0.255"`` → 6 bytes (also ``1-0:1.8.0*255``)."""
    cleaned = text.replace("-", ".").replace(":", ".").replace("*", ".").replace("&", ".")
    parts = cleaned.split(".")
    if len(parts) != 6:
        raise DecodeError(f"an OBIS code has six groups: {text!r}")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise DecodeError(f"an OBIS code is six numbers: {text!r}") from None
    if any(not 0 <= v <= 255 for v in values):
        raise DecodeError(f"OBIS groups are 0-255: {text!r}")
    return bytes(values)


def obis_text(value: bytes) -> str:
    if len(value) != 6:
        raise DecodeError(f"a logical name is 6 octets, got {len(value)}")
    return ".".join(str(b) for b in value)


def _expect(d: Data, kind: DataType, what: str) -> object:
    if d.type is not kind:
        raise DecodeError(f"{what}: expected {kind.name}, got {d.type.name}")
    return d.value


def _int(d: Data, what: str) -> int:
    if not isinstance(d.value, int) or isinstance(d.value, bool):
        raise DecodeError(f"{what}: expected an integer, got {d.type.name}")
    return d.value


def _octets(d: Data, what: str) -> bytes:
    value = _expect(d, DataType.OCTET_STRING, what)
    assert isinstance(value, bytes)
    return value


def _fields(d: Data, count: int, what: str) -> tuple[Data, ...]:
    value = _expect(d, DataType.STRUCTURE, what)
    assert isinstance(value, tuple)
    if len(value) < count:
        raise DecodeError(f"{what}: expected {count} fields, got {len(value)}")
    return value


def _elements(d: Data, what: str) -> tuple[Data, ...]:
    value = _expect(d, DataType.ARRAY, what)
    assert isinstance(value, tuple)
    return value


# -- Register ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScalerUnit:
    """Value × 10^scaler in ``unit`` (the Blue Book's unit enumeration: 30 Wh, 27 W ...)."""

    scaler: int
    unit: int


def parse_scaler_unit(d: Data) -> ScalerUnit:
    scaler, unit = _fields(d, 2, "scaler_unit")[:2]
    return ScalerUnit(_int(scaler, "scaler"), _int(unit, "unit"))


def scaler_unit_data(value: ScalerUnit) -> Data:
    return Data.structure(Data(DataType.INTEGER, value.scaler), Data(DataType.ENUM, value.unit))


@dataclass(frozen=True, slots=True)
class RegisterValue:
    """A register reading: the raw value as sent, its scaler and unit."""

    raw: int
    scaler: int
    unit: int

    def milli(self) -> int:
        """The value in milli-units of the unit (exact when scaler ≥ −3)."""
        exponent = self.scaler + 3
        factor: int = 10 ** abs(exponent)
        return self.raw * factor if exponent >= 0 else self.raw // factor


# -- Clock ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClockValue:
    time: datetime
    deviation: int | None
    status: int | None


def clock_value(d: Data, zone: tzinfo | None = None) -> ClockValue:
    """Clock attribute 2 (an octet-string of 12 or a date-time) → the instant. A meter that
    leaves the deviation unspecified sends local time: ``zone`` (its IANA zone) reads it."""
    from meterledger.codec.dlms.axdr import cosem_datetime_from_octets

    if d.type is DataType.DATE_TIME and isinstance(d.value, CosemDateTime):
        value = d.value
    else:
        value = cosem_datetime_from_octets(_octets(d, "clock time"))
    return ClockValue(value.to_datetime(zone), value.deviation, value.status)


# -- Profile Generic --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaptureObject:
    class_id: int
    logical_name: bytes
    attribute: int
    data_index: int = 0

    @property
    def obis(self) -> str:
        return obis_text(self.logical_name)


def parse_capture_objects(d: Data) -> tuple[CaptureObject, ...]:
    objects = []
    for item in _elements(d, "capture_objects"):
        class_id, name, attribute, index = _fields(item, 4, "capture object")[:4]
        objects.append(
            CaptureObject(
                _int(class_id, "class_id"),
                _octets(name, "logical_name"),
                _int(attribute, "attribute_index"),
                _int(index, "data_index"),
            )
        )
    return tuple(objects)


def capture_objects_data(objects: tuple[CaptureObject, ...]) -> Data:
    return Data.array(
        *(
            Data.structure(
                Data.uint16(o.class_id),
                Data.octets(o.logical_name),
                Data.int8(o.attribute),
                Data.uint16(o.data_index),
            )
            for o in objects
        )
    )


def parse_buffer(d: Data) -> tuple[tuple[Data, ...], ...]:
    """The buffer (attribute 2): an array of structures, one per captured row."""
    rows = []
    for row in _elements(d, "buffer"):
        value = _expect(row, DataType.STRUCTURE, "buffer row")
        assert isinstance(value, tuple)
        rows.append(value)
    return tuple(rows)


# -- Association LN ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectListEntry:
    class_id: int
    version: int
    logical_name: bytes
    attribute_access: tuple[tuple[int, int], ...] = ()  # (attribute, AccessRight)
    method_access: tuple[tuple[int, bool], ...] = ()

    @property
    def obis(self) -> str:
        return obis_text(self.logical_name)


def parse_object_list(d: Data) -> tuple[ObjectListEntry, ...]:
    entries = []
    for item in _elements(d, "object_list"):
        fields = _fields(item, 3, "object list element")
        attrs: list[tuple[int, int]] = []
        methods: list[tuple[int, bool]] = []
        if len(fields) > 3 and fields[3].type is DataType.STRUCTURE:
            rights = fields[3].items
            if rights and rights[0].type is DataType.ARRAY:
                for a in rights[0].items:
                    f = _fields(a, 2, "attribute access")
                    attrs.append((_int(f[0], "attribute_id"), _int(f[1], "access_mode")))
            if len(rights) > 1 and rights[1].type is DataType.ARRAY:
                for m in rights[1].items:
                    f = _fields(m, 2, "method access")
                    methods.append((_int(f[0], "method_id"), bool(f[1].value)))
        entries.append(
            ObjectListEntry(
                _int(fields[0], "class_id"),
                _int(fields[1], "version"),
                _octets(fields[2], "logical_name"),
                tuple(attrs),
                tuple(methods),
            )
        )
    return tuple(entries)


def object_list_data(entries: tuple[ObjectListEntry, ...]) -> Data:
    def rights(e: ObjectListEntry) -> Data:
        attributes = Data.array(
            *(
                Data.structure(Data.int8(a), Data.enum(mode), Data.null())
                for a, mode in e.attribute_access
            )
        )
        methods = Data.array(
            *(
                Data.structure(Data.int8(m), Data(DataType.BOOLEAN, allowed))
                for m, allowed in e.method_access
            )
        )
        return Data.structure(attributes, methods)

    return Data.array(
        *(
            Data.structure(
                Data.uint16(e.class_id),
                Data.uint8(e.version),
                Data.octets(e.logical_name),
                rights(e),
            )
            for e in entries
        )
    )
