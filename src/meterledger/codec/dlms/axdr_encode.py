"""Encoding the A-XDR ``Data`` CHOICE (described in :mod:`meterledger.codec.dlms.axdr`,
which re-exports :func:`encode_data` and :func:`encode_value`): one encoder per tag, each
checking its value against the type and raising :class:`DlmsLocalError` for one that does
not fit, nesting capped at :data:`~meterledger.codec.dlms.axdr_decode.MAX_DEPTH_LIMIT`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from meterledger.codec.dlms.axdr_decode import MAX_DEPTH_LIMIT, _zero_size
from meterledger.codec.dlms.cosem_time import CosemDate, CosemDateTime, CosemTime
from meterledger.codec.dlms.data import (
    INTEGER_RANGES,
    BitString,
    CompactArray,
    Data,
    DataType,
    TypeDescription,
)
from meterledger.codec.dlms.errors import DlmsLocalError

__all__ = ["encode_data", "encode_value"]

T = DataType

_Out = bytearray
_Encoder = Callable[[object, _Out, int], None]
_LENGTHS = [bytes((n,)) for n in range(0x80)]


def _put_length(n: int, out: _Out) -> None:
    if n < 0x80:
        out += _LENGTHS[n]
    elif n <= 0xFFFFFFFF:
        body = n.to_bytes((n.bit_length() + 7) // 8, "big")
        out.append(0x80 | len(body))
        out += body
    else:
        raise DlmsLocalError(f"length {n} does not fit A-XDR's four length bytes")


def _integer(kind: DataType, fmt: str) -> _Encoder:
    low, high = INTEGER_RANGES[kind]
    pack = struct.Struct(fmt).pack

    def encode(value: object, out: _Out, depth: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise DlmsLocalError(f"{kind.name} needs an int, not {type(value).__name__}")
        if not low <= value <= high:
            raise DlmsLocalError(f"{value} does not fit {kind.name} ({low}..{high})")
        out += pack(value)

    return encode


def _float(kind: DataType, fmt: str) -> _Encoder:
    pack = struct.Struct(fmt).pack

    def encode(value: object, out: _Out, depth: int) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise DlmsLocalError(f"{kind.name} needs a float, not {type(value).__name__}")
        try:
            out += pack(value)
        except (OverflowError, struct.error) as exc:
            raise DlmsLocalError(f"{value!r} does not fit {kind.name}") from exc

    return encode


def _nothing(value: object, out: _Out, depth: int) -> None:
    if value is not None:
        raise DlmsLocalError(f"null-data/dont-care carry no value, not {value!r}")


def _boolean(value: object, out: _Out, depth: int) -> None:
    if not isinstance(value, bool):
        raise DlmsLocalError(f"BOOLEAN needs a bool, not {type(value).__name__}")
    out.append(1 if value else 0)


def _octet_string(value: object, out: _Out, depth: int) -> None:
    if not isinstance(value, (bytes, bytearray)):
        raise DlmsLocalError(f"OCTET_STRING needs bytes, not {type(value).__name__}")
    _put_length(len(value), out)
    out += value


def _visible_string(value: object, out: _Out, depth: int) -> None:
    if not isinstance(value, str) or not value.isascii():
        raise DlmsLocalError(f"VISIBLE_STRING needs an ASCII str, not {value!r:.40}")
    _put_length(len(value), out)
    out += value.encode("ascii")


def _utf8_string(value: object, out: _Out, depth: int) -> None:
    if not isinstance(value, str):
        raise DlmsLocalError(f"UTF8_STRING needs a str, not {type(value).__name__}")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DlmsLocalError(f"UTF8_STRING cannot hold {value!r:.40}") from exc
    _put_length(len(raw), out)
    out += raw


def _bit_string(value: object, out: _Out, depth: int) -> None:
    if not isinstance(value, BitString):
        raise DlmsLocalError(f"BIT_STRING needs a BitString, not {type(value).__name__}")
    _put_length(value.length, out)
    out += value.data


def _octets_of(kind: DataType, cls: type[CosemDateTime | CosemDate | CosemTime]) -> _Encoder:
    def encode(value: object, out: _Out, depth: int) -> None:
        if not isinstance(value, cls):
            raise DlmsLocalError(f"{kind.name} needs a {cls.__name__}, not {value!r:.60}")
        out += value.to_octets()

    return encode


def _elements(kind: DataType, value: object) -> tuple[Data, ...] | list[Data]:
    if not isinstance(value, (tuple, list)):
        raise DlmsLocalError(f"{kind.name} needs a tuple of Data, not {type(value).__name__}")
    return value


def _sequence(kind: DataType) -> _Encoder:
    def encode(value: object, out: _Out, depth: int) -> None:
        items = _elements(kind, value)
        _put_length(len(items), out)
        for item in items:
            _encode(item, out, depth + 1)

    return encode


def _description(desc: TypeDescription, out: _Out, depth: int) -> None:
    if depth > MAX_DEPTH_LIMIT:
        raise DlmsLocalError(f"type description nested deeper than {MAX_DEPTH_LIMIT}")
    out.append(desc.type)
    if desc.type is T.ARRAY:
        out += desc.count.to_bytes(2, "big")
        _description(desc.elements[0], out, depth + 1)
    elif desc.type is T.STRUCTURE:
        _put_length(len(desc.elements), out)
        for element in desc.elements:
            _description(element, out, depth + 1)


def _packed(d: object, desc: TypeDescription, out: _Out, depth: int) -> None:
    if not isinstance(d, Data) or d.type != desc.type:
        raise DlmsLocalError(f"compact-array element {d!r:.60} is not a {desc.type.name}")
    if depth > MAX_DEPTH_LIMIT:
        raise DlmsLocalError(f"compact-array element nested deeper than {MAX_DEPTH_LIMIT}")
    if desc.type is T.STRUCTURE or desc.type is T.ARRAY:
        items = _elements(desc.type, d.value)
        if desc.type is T.STRUCTURE:
            if len(items) != len(desc.elements):
                raise DlmsLocalError(f"structure of {len(items)} for {len(desc.elements)} types")
            for item, element in zip(items, desc.elements, strict=True):
                _packed(item, element, out, depth + 1)
        else:
            if len(items) != desc.count:
                raise DlmsLocalError(f"array of {len(items)} elements, described {desc.count}")
            for item in items:
                _packed(item, desc.elements[0], out, depth + 1)
    else:
        _ENCODERS[desc.type](d.value, out, depth)


def _compact_array(value: object, out: _Out, depth: int) -> None:
    if not isinstance(value, CompactArray):
        raise DlmsLocalError(f"COMPACT_ARRAY needs a CompactArray, not {type(value).__name__}")
    desc = value.description
    if not isinstance(desc, TypeDescription):
        raise DlmsLocalError("a compact-array needs a TypeDescription")
    if value.contents and _zero_size(desc):
        raise DlmsLocalError("elements of no size cannot be counted: the contents are lost")
    _description(desc, out, depth)
    contents = bytearray()
    for item in _elements(T.COMPACT_ARRAY, value.contents):
        _packed(item, desc, contents, depth + 1)
    _put_length(len(contents), out)
    out += contents


_ENCODERS: dict[int, _Encoder] = {
    T.NULL_DATA: _nothing,
    T.DONT_CARE: _nothing,
    T.ARRAY: _sequence(T.ARRAY),
    T.STRUCTURE: _sequence(T.STRUCTURE),
    T.BOOLEAN: _boolean,
    T.BIT_STRING: _bit_string,
    T.DOUBLE_LONG: _integer(T.DOUBLE_LONG, ">i"),
    T.DOUBLE_LONG_UNSIGNED: _integer(T.DOUBLE_LONG_UNSIGNED, ">I"),
    T.OCTET_STRING: _octet_string,
    T.VISIBLE_STRING: _visible_string,
    T.UTF8_STRING: _utf8_string,
    T.BCD: _integer(T.BCD, ">b"),
    T.INTEGER: _integer(T.INTEGER, ">b"),
    T.LONG: _integer(T.LONG, ">h"),
    T.UNSIGNED: _integer(T.UNSIGNED, ">B"),
    T.LONG_UNSIGNED: _integer(T.LONG_UNSIGNED, ">H"),
    T.COMPACT_ARRAY: _compact_array,
    T.LONG64: _integer(T.LONG64, ">q"),
    T.LONG64_UNSIGNED: _integer(T.LONG64_UNSIGNED, ">Q"),
    T.ENUM: _integer(T.ENUM, ">B"),
    T.FLOAT32: _float(T.FLOAT32, ">f"),
    T.FLOAT64: _float(T.FLOAT64, ">d"),
    T.DATE_TIME: _octets_of(T.DATE_TIME, CosemDateTime),
    T.DATE: _octets_of(T.DATE, CosemDate),
    T.TIME: _octets_of(T.TIME, CosemTime),
}


def _encode(d: object, out: _Out, depth: int) -> None:
    if not isinstance(d, Data):
        raise DlmsLocalError(f"expected a Data, not {type(d).__name__}")
    if depth > MAX_DEPTH_LIMIT:
        raise DlmsLocalError(f"arrays/structures nested deeper than {MAX_DEPTH_LIMIT}")
    encoder = _ENCODERS.get(d.type)
    if encoder is None:
        raise DlmsLocalError(f"unknown Data type {d.type!r}")
    out.append(d.type)
    encoder(d.value, out, depth)


def encode_data(d: Data) -> bytes:
    """The A-XDR bytes of ``d`` (:class:`DlmsLocalError` if a value does not fit its type)."""
    out = bytearray()
    _encode(d, out, 0)
    return bytes(out)


def encode_value(kind: DataType, value: object = None) -> bytes:
    """``encode_data(Data(kind, value))``."""
    return encode_data(Data(kind, value))
