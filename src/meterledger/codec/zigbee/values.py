"""Attribute values on the wire: a data type id, then the value (ZCL 07-5123, 2.6.2).

Integers of 1-8 octets, least significant octet first; signed types in two's complement.
The "invalid" values of each type (0xFF..FF for unsigned, 0x80..00 for signed) are carried
as they are: what an attribute's invalid value means is the cluster's business.
"""

from __future__ import annotations

from meterledger.codec.zigbee.codes import DataType
from meterledger.codec.zigbee.cursor import Cursor
from meterledger.codec.zigbee.errors import ZclUnsupportedError, ZclValueError

__all__ = ["check_value", "decode_data_type", "decode_value", "encode_value"]


def _bounds(data_type: DataType) -> tuple[int, int]:
    bits = 8 * data_type.size
    if data_type.signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if data_type is DataType.BOOLEAN:
        return 0, 0xFF  # 0 false, 1 true, 0xFF invalid; other octets are still carried
    return 0, (1 << bits) - 1


def check_value(data_type: DataType, value: object, name: str = "value") -> None:
    """Refuse a value that is not an int within ``data_type``'s range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ZclValueError(f"{name} must be an integer, not {type(value).__name__}")
    low, high = _bounds(data_type)
    if not low <= value <= high:
        raise ZclValueError(f"{name} {value} is outside {data_type.name} ({low}..{high})")


def decode_data_type(cursor: Cursor) -> DataType:
    code = cursor.u8("the attribute data type")
    try:
        return DataType(code)
    except ValueError:
        raise ZclUnsupportedError(f"unsupported ZCL data type 0x{code:02X}") from None


def decode_value(cursor: Cursor, data_type: DataType) -> int:
    raw = cursor.uint(data_type.size, f"a {data_type.name} value")
    if data_type.signed and raw >> (8 * data_type.size - 1):
        raw -= 1 << (8 * data_type.size)
    return raw


def encode_value(data_type: DataType, value: int) -> bytes:
    check_value(data_type, value)
    return value.to_bytes(data_type.size, "little", signed=data_type.signed)
