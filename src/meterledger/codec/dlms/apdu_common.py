"""What the xDLMS service APDUs share (Green Book 9.5, ``COSEMpdu``): the
invoke-id-and-priority byte, attribute and method descriptors, selective access, data blocks
and results, with their A-XDR readers and writers.

Use :mod:`meterledger.codec.dlms.apdu`, which re-exports the public names; the readers and
writers here are the building blocks of its ``encode`` and ``decode_apdu``.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from meterledger.codec.dlms.axdr import encode_data
from meterledger.codec.dlms.codes import ActionResult, DataAccessResult
from meterledger.codec.dlms.cursor import Cursor, encode_length
from meterledger.codec.dlms.data import Data
from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError

__all__ = [
    "INVOKE_ID_MASK",
    "PRIORITY_HIGH",
    "SERVICE_CLASS_CONFIRMED",
    "AttributeReference",
    "CosemAttributeDescriptor",
    "CosemMethodDescriptor",
    "GetDataResult",
    "SelectiveAccess",
    "invoke_id_and_priority",
    "invoke_id_of",
    "is_confirmed",
    "is_high_priority",
]

# Invoke-Id-And-Priority ::= Unsigned8 (Green Book 9.5): bits 0-3 invoke-id, 4-5 reserved,
# bit 6 service-class (1 = confirmed), bit 7 priority (1 = high).
INVOKE_ID_MASK = 0x0F
SERVICE_CLASS_CONFIRMED = 0x40
PRIORITY_HIGH = 0x80

ReadData = Callable[[Cursor], Data]
GetDataResult = Data | DataAccessResult


def invoke_id_and_priority(invoke_id: int, *, confirmed: bool = True, high: bool = True) -> int:
    """The Invoke-Id-And-Priority byte. The default, confirmed and high priority, is what the
    Green Book examples and most clients send (0xC1 for invoke id 1)."""
    check_int("invoke_id", invoke_id, 0, INVOKE_ID_MASK)
    return (
        invoke_id | (SERVICE_CLASS_CONFIRMED if confirmed else 0) | (PRIORITY_HIGH if high else 0)
    )


def invoke_id_of(value: int) -> int:
    return value & INVOKE_ID_MASK


def is_confirmed(value: int) -> bool:
    return bool(value & SERVICE_CLASS_CONFIRMED)


def is_high_priority(value: int) -> bool:
    return bool(value & PRIORITY_HIGH)


def check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DlmsLocalError(f"{name} must be an integer {low}..{high}, got {value!r}")


def check_bytes(name: str, value: object) -> None:
    """``value`` is bytes or None."""
    if value is not None and not isinstance(value, bytes):
        raise DlmsLocalError(f"{name} must be bytes, got {type(value).__name__}")


_E = TypeVar("_E", bound=enum.IntEnum)


def defined(cls: type[_E], value: int, what: str) -> _E:
    """The member of ``cls`` a decoded value stands for, or DecodeError naming the field."""
    try:
        return cls(value)
    except ValueError:
        raise DecodeError(f"{what}: {value} is not a defined value") from None


def check_invoke(value: object) -> None:
    check_int("invoke_id_and_priority", value, 0, 0xFF)


def check_block(last_block: object, block_number: object, raw_data: object) -> None:
    if not isinstance(last_block, bool):
        raise DlmsLocalError("last_block must be a bool")
    check_int("block_number", block_number, 0, 0xFFFFFFFF)
    if not isinstance(raw_data, bytes):
        raise DlmsLocalError("raw_data must be bytes")


def check_result(value: object, what: str = "result") -> None:
    if not isinstance(value, Data | DataAccessResult):
        raise DlmsLocalError(f"{what} must be a Data or a DataAccessResult")


def check_dar(value: object, what: str = "result") -> None:
    if not isinstance(value, DataAccessResult):
        raise DlmsLocalError(f"{what} must be a DataAccessResult")


def check_tuple(value: object, kind: type | tuple[type, ...], what: str) -> None:
    if not isinstance(value, tuple) or not all(isinstance(item, kind) for item in value):
        raise DlmsLocalError(f"{what} must be a tuple of {getattr(kind, '__name__', kind)}")


def _check_descriptor(class_id: int, instance_id: bytes, member_id: int, what: str) -> None:
    check_int("class_id", class_id, 0, 0xFFFF)
    if not isinstance(instance_id, bytes) or len(instance_id) != 6:
        raise DlmsLocalError(
            f"instance_id must be the 6 octets of a logical name, got {instance_id!r}"
        )
    check_int(what, member_id, -128, 127)  # Integer8; negative ids are manufacturer specific


@dataclass(frozen=True, slots=True)
class CosemAttributeDescriptor:
    """``Cosem-Attribute-Descriptor``: interface class, logical name (OBIS, 6 octets) and
    attribute index."""

    class_id: int
    instance_id: bytes
    attribute_id: int

    def __post_init__(self) -> None:
        _check_descriptor(self.class_id, self.instance_id, self.attribute_id, "attribute_id")


@dataclass(frozen=True, slots=True)
class CosemMethodDescriptor:
    """``Cosem-Method-Descriptor``: interface class, logical name and method index."""

    class_id: int
    instance_id: bytes
    method_id: int

    def __post_init__(self) -> None:
        _check_descriptor(self.class_id, self.instance_id, self.method_id, "method_id")


@dataclass(frozen=True, slots=True)
class SelectiveAccess:
    """``Selective-Access-Descriptor``: an access selector and its parameters (for Profile
    Generic buffers selector 1 is by range, 2 by entry; see ``apdu.range_access``)."""

    selector: int
    parameters: Data

    def __post_init__(self) -> None:
        check_int("selector", self.selector, 0, 255)
        if not isinstance(self.parameters, Data):
            raise DlmsLocalError("selective access parameters must be a Data")


@dataclass(frozen=True, slots=True)
class AttributeReference:
    """``Cosem-Attribute-Descriptor-With-Selection``: one element of a with-list request."""

    descriptor: CosemAttributeDescriptor
    access: SelectiveAccess | None = None

    def __post_init__(self) -> None:
        check_attribute(self.descriptor, self.access)


def check_method(descriptor: object) -> None:
    if not isinstance(descriptor, CosemMethodDescriptor):
        raise DlmsLocalError("descriptor must be a CosemMethodDescriptor")


def check_attribute(descriptor: object, access: object) -> None:
    if not isinstance(descriptor, CosemAttributeDescriptor):
        raise DlmsLocalError("descriptor must be a CosemAttributeDescriptor")
    if access is not None and not isinstance(access, SelectiveAccess):
        raise DlmsLocalError("access must be a SelectiveAccess")


# --- writers: append to a bytearray ------------------------------------------------------

_DESCRIPTOR = struct.Struct(">H6sb")
_BLOCK_HEAD = struct.Struct(">BI")


def put_descriptor(out: bytearray, d: CosemAttributeDescriptor | CosemMethodDescriptor) -> None:
    member = d.attribute_id if isinstance(d, CosemAttributeDescriptor) else d.method_id
    out += _DESCRIPTOR.pack(d.class_id, d.instance_id, member)


def put_access(out: bytearray, access: SelectiveAccess | None) -> None:
    if access is None:
        out.append(0)
    else:
        out.append(1)
        out.append(access.selector)
        out += encode_data(access.parameters)


def put_count(out: bytearray, n: int) -> None:
    out += encode_length(n)


def put_items(out: bytearray, items: tuple[AttributeReference, ...]) -> None:
    """SEQUENCE OF Cosem-Attribute-Descriptor-With-Selection (GET and SET with-list)."""
    put_count(out, len(items))
    for item in items:
        put_descriptor(out, item.descriptor)
        put_access(out, item.access)


def put_values(out: bytearray, values: tuple[Data, ...]) -> None:
    """SEQUENCE OF Data (SET values, ACTION parameters, with-list)."""
    put_count(out, len(values))
    for value in values:
        out += encode_data(value)


def put_block(out: bytearray, last_block: bool, block_number: int, raw_data: bytes) -> None:
    """DataBlock-SA: last-block, block-number, raw-data."""
    out += _BLOCK_HEAD.pack(last_block, block_number)
    out += encode_length(len(raw_data))
    out += raw_data


def put_get_data_result(out: bytearray, result: GetDataResult) -> None:
    """Get-Data-Result CHOICE: data [0] or data-access-result [1]."""
    if isinstance(result, DataAccessResult):
        out.append(1)
        out.append(result)
    else:
        out.append(0)
        out += encode_data(result)


# --- readers: from a Cursor (NeedData when the bytes end) --------------------------------

_DAR = {int(m): m for m in DataAccessResult}
_ACTION_RESULT = {int(m): m for m in ActionResult}


def read_signed8(cur: Cursor) -> int:
    value = cur.u8()
    return value - 256 if value > 127 else value


def read_attribute(cur: Cursor) -> CosemAttributeDescriptor:
    class_id = cur.u16()
    return CosemAttributeDescriptor(class_id, cur.take(6), read_signed8(cur))


def read_method(cur: Cursor) -> CosemMethodDescriptor:
    class_id = cur.u16()
    return CosemMethodDescriptor(class_id, cur.take(6), read_signed8(cur))


def read_flag(cur: Cursor, what: str) -> bool:
    """An A-XDR OPTIONAL presence octet."""
    flag = cur.u8()
    if flag > 1:
        raise DecodeError(f"{what}: presence flag 0x{flag:02X} (must be 0 or 1)")
    return flag == 1


def read_access(cur: Cursor, read_data: ReadData) -> SelectiveAccess | None:
    if not read_flag(cur, "access-selection"):
        return None
    selector = cur.u8()
    return SelectiveAccess(selector, read_data(cur))


def read_count(cur: Cursor, what: str) -> int:
    """A SEQUENCE OF count. Every element takes at least one byte, so a count beyond the
    bytes left is corrupt, and refusing it early bounds the work."""
    n = cur.length()
    if n > cur.remaining:
        raise DecodeError(f"{what}: {n} elements announced, {cur.remaining} bytes left")
    return n


def read_items(cur: Cursor, read_data: ReadData, what: str) -> tuple[AttributeReference, ...]:
    """SEQUENCE OF Cosem-Attribute-Descriptor-With-Selection (GET and SET with-list)."""
    items = []
    for _ in range(read_count(cur, what)):
        descriptor = read_attribute(cur)
        items.append(AttributeReference(descriptor, read_access(cur, read_data)))
    return tuple(items)


def read_values(cur: Cursor, read_data: ReadData, what: str) -> tuple[Data, ...]:
    """SEQUENCE OF Data (SET values, ACTION parameters, with-list)."""
    return tuple(read_data(cur) for _ in range(read_count(cur, what)))


def read_block(cur: Cursor) -> tuple[bool, int, bytes]:
    last = cur.u8() != 0  # A-XDR BOOLEAN: any non-zero octet is TRUE
    number = cur.u32()
    return last, number, cur.take(cur.length())


def read_dar(cur: Cursor) -> DataAccessResult:
    value = cur.u8()
    result = _DAR.get(value)
    if result is None:
        raise DecodeError(f"Data-Access-Result {value} is not defined")
    return result


def read_action_result(cur: Cursor) -> ActionResult:
    value = cur.u8()
    result = _ACTION_RESULT.get(value)
    if result is None:
        raise DecodeError(f"Action-Result {value} is not defined")
    return result


def read_get_data_result(cur: Cursor, read_data: ReadData) -> GetDataResult:
    choice = cur.u8()
    if choice == 0:
        return read_data(cur)
    if choice == 1:
        return read_dar(cur)
    raise DecodeError(f"Get-Data-Result choice {choice} (must be 0 data or 1 result)")
