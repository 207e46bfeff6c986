"""Decoding the A-XDR ``Data`` CHOICE (the encoding is described in
:mod:`meterledger.codec.dlms.axdr`, which re-exports this module's public names).

The decoder for one pair of limits is built once, as closures (fast free variables), and
builds values without the ``Data`` dataclass ``__init__``; the one-byte values are
built in advance. It reads ``bytes`` with explicit positions: bytes that end early raise
:class:`~meterledger.codec.dlms.cursor.NeedData`, bytes that cannot be an encoding
:class:`DecodeError`; ``max_depth`` and ``max_elements`` bound what hostile input can cost.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable

from meterledger.codec.dlms.cosem_time import CosemDate, CosemDateTime, CosemTime
from meterledger.codec.dlms.cursor import Cursor, NeedData
from meterledger.codec.dlms.data import BitString, CompactArray, Data, DataType, TypeDescription
from meterledger.codec.dlms.errors import DecodeError

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_ELEMENTS",
    "MAX_DEPTH_LIMIT",
    "DataDecoder",
    "decode_data",
    "decode_data_bytes",
]

DEFAULT_MAX_DEPTH = 32
DEFAULT_MAX_ELEMENTS = 100_000
MAX_DEPTH_LIMIT = 100  # keeps the recursive codec far from Python's recursion limit

T = DataType
_Buf = bytes
_Result = tuple[Data, int]

# -- values built without the dataclass __init__ (half the cost; Data has no __post_init__)
_new = object.__new__
_set_type = Data.__dict__["type"].__set__
_set_value = Data.__dict__["value"].__set__


def _make(kind: DataType, value: object) -> Data:
    d: Data = _new(Data)
    _set_type(d, kind)
    _set_value(d, value)
    return d


# Fixed-size bodies by tag: (type, size, unpack_from).
_FIXED: list[tuple[DataType, int, Callable[[_Buf, int], tuple[object, ...]]] | None] = [None] * 256
for _kind, _fmt in (
    (T.DOUBLE_LONG, ">i"), (T.DOUBLE_LONG_UNSIGNED, ">I"), (T.LONG, ">h"),
    (T.LONG_UNSIGNED, ">H"), (T.LONG64, ">q"), (T.LONG64_UNSIGNED, ">Q"),
    (T.FLOAT32, ">f"), (T.FLOAT64, ">d"),
):  # fmt: skip
    _s = struct.Struct(_fmt)
    _FIXED[_kind] = (_kind, _s.size, _s.unpack_from)

# One-byte bodies by tag: every possible value built once (values are immutable).
_BYTE: list[tuple[Data, ...] | None] = [None] * 256
_BYTE[T.UNSIGNED] = tuple(_make(T.UNSIGNED, b) for b in range(256))
_BYTE[T.ENUM] = tuple(_make(T.ENUM, b) for b in range(256))
_BYTE[T.INTEGER] = tuple(_make(T.INTEGER, b - 256 if b > 127 else b) for b in range(256))
_BYTE[T.BCD] = tuple(_make(T.BCD, b - 256 if b > 127 else b) for b in range(256))
_BYTE[T.BOOLEAN] = tuple(_make(T.BOOLEAN, b != 0) for b in range(256))

_EMPTY: list[Data | None] = [None] * 256  # bodies of no bytes
_EMPTY[T.NULL_DATA] = _make(T.NULL_DATA, None)
_EMPTY[T.DONT_CARE] = _make(T.DONT_CARE, None)

_SIMPLE_DESCRIPTIONS = {
    int(k): TypeDescription(k) for k in DataType if k not in (T.ARRAY, T.STRUCTURE, T.COMPACT_ARRAY)
}


def _length(buf: _Buf, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise NeedData
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if count == 0 or count > 4:
        raise DecodeError(f"unsupported length form 0x{first:02X}")
    nxt = pos + 1 + count
    if nxt > end:
        raise NeedData
    return int.from_bytes(buf[pos + 1 : nxt], "big"), nxt


def _weight(desc: TypeDescription) -> int:
    """How many Data values one element of ``desc`` decodes into."""
    if desc.type is T.STRUCTURE:
        return 1 + sum(_weight(e) for e in desc.elements)
    if desc.type is T.ARRAY:
        return 1 + desc.count * _weight(desc.elements[0])
    return 1


def _zero_size(desc: TypeDescription) -> bool:
    """An element of ``desc`` takes no bytes (so a count could not be read back)."""
    kind = desc.type
    if kind is T.STRUCTURE:
        return all(_zero_size(e) for e in desc.elements)
    if kind is T.ARRAY:
        return desc.count == 0 or _zero_size(desc.elements[0])
    return kind is T.NULL_DATA or kind is T.DONT_CARE


@functools.lru_cache(maxsize=16)
def _decoder(max_depth: int, max_elements: int) -> Callable[[_Buf, int, int, int], _Result]:
    """The decoding functions for one pair of limits, as closures (fast free variables)."""
    fixed, one_byte, empty = _FIXED, _BYTE, _EMPTY
    make, new, set_type, set_value = _make, _new, _set_type, _set_value
    octet_string_type = T.OCTET_STRING
    containers = {1: T.ARRAY, 2: T.STRUCTURE}

    def value(buf: _Buf, pos: int, end: int, depth: int) -> _Result:
        if pos >= end:
            raise NeedData
        return body(buf[pos], buf, pos + 1, end, depth)

    def body(tag: int, buf: _Buf, pos: int, end: int, depth: int) -> _Result:
        cached = one_byte[tag]
        if cached is not None:
            if pos >= end:
                raise NeedData
            return cached[buf[pos]], pos + 1
        spec = fixed[tag]
        if spec is not None:
            kind, size, unpack = spec
            nxt = pos + size
            if nxt > end:
                raise NeedData
            return make(kind, unpack(buf, pos)[0]), nxt
        handler = others.get(tag)
        if handler is None:
            nothing = empty[tag]
            if nothing is not None:
                return nothing, pos
            raise DecodeError(f"unknown Data tag {tag} (0x{tag:02X})")
        return handler(buf, pos, end, depth)

    def sequence(kind: DataType) -> Callable[[_Buf, int, int, int], _Result]:
        def decode(buf: _Buf, pos: int, end: int, depth: int) -> _Result:
            return elements(kind, buf, pos, end, depth)

        return decode

    def elements(kind: DataType, buf: _Buf, pos: int, end: int, depth: int) -> _Result:
        if pos < end and buf[pos] < 0x80:
            count = buf[pos]
            pos += 1
        else:
            count, pos = _length(buf, pos, end)
        if count > max_elements:
            raise DecodeError(f"{kind.name} of {count} elements (limit {max_elements})")
        if depth >= max_depth:
            raise DecodeError(f"arrays/structures nested deeper than {max_depth}")
        inner = depth + 1
        items: list[Data] = []
        append = items.append
        # The hot loop of every GET: the common elements are decoded inline.
        for _ in range(count):
            if pos >= end:
                raise NeedData
            tag = buf[pos]
            pos += 1
            cached = one_byte[tag]
            if cached is not None:
                if pos >= end:
                    raise NeedData
                append(cached[buf[pos]])
                pos += 1
                continue
            spec = fixed[tag]
            if spec is not None:
                kind_, size, unpack = spec
                nxt = pos + size
                if nxt > end:
                    raise NeedData
                item = new(Data)
                set_type(item, kind_)
                set_value(item, unpack(buf, pos)[0])
                append(item)
                pos = nxt
                continue
            if tag == 9 and pos < end and buf[pos] < 0x80:  # a short octet-string
                nxt = pos + 1 + buf[pos]
                if nxt > end:
                    raise NeedData
                item = new(Data)
                set_type(item, octet_string_type)
                set_value(item, buf[pos + 1 : nxt])
                append(item)
                pos = nxt
                continue
            if tag in {1, 2}:
                item, pos = elements(containers[tag], buf, pos, end, inner)
            else:
                item, pos = body(tag, buf, pos, end, inner)
            append(item)
        item = new(Data)
        set_type(item, kind)
        set_value(item, tuple(items))
        return item, pos

    def chunk(buf: _Buf, pos: int, end: int) -> tuple[bytes, int]:
        n, pos = _length(buf, pos, end)
        nxt = pos + n
        if nxt > end:
            raise NeedData
        return buf[pos:nxt], nxt

    def octet_string(buf: _Buf, pos: int, end: int, depth: int) -> _Result:
        raw, pos = chunk(buf, pos, end)
        return make(T.OCTET_STRING, raw), pos

    def visible_string(buf: _Buf, pos: int, end: int, depth: int) -> _Result:
        raw, pos = chunk(buf, pos, end)
        if not raw.isascii():
            raise DecodeError(f"visible-string is not ASCII: {raw[:32]!r}")
        return make(T.VISIBLE_STRING, raw.decode("ascii")), pos

    def utf8_string(buf: _Buf, pos: int, end: int, depth: int) -> _Result:
        raw, pos = chunk(buf, pos, end)
        try:
            return make(T.UTF8_STRING, raw.decode("utf-8")), pos
        except UnicodeDecodeError as exc:
            raise DecodeError(f"utf8-string is not UTF-8: {exc.reason}") from exc

    def bit_string(buf: _Buf, pos: int, end: int, depth: int) -> _Result:
        bits, pos = _length(buf, pos, end)
        nxt = pos + (bits + 7) // 8
        if nxt > end:
            raise NeedData
        return make(T.BIT_STRING, BitString(bits, buf[pos:nxt])), nxt

    def octets_of(
        kind: DataType, size: int, parse: Callable[[bytes], object]
    ) -> Callable[[_Buf, int, int, int], _Result]:
        def decode(buf: _Buf, pos: int, end: int, depth: int) -> _Result:
            nxt = pos + size
            if nxt > end:
                raise NeedData
            return make(kind, parse(buf[pos:nxt])), nxt

        return decode

    def description(buf: _Buf, pos: int, end: int, depth: int) -> tuple[TypeDescription, int]:
        if depth >= max_depth:
            raise DecodeError(f"type description nested deeper than {max_depth}")
        if pos >= end:
            raise NeedData
        tag = buf[pos]
        pos += 1
        if tag == T.ARRAY:
            if pos + 2 > end:
                raise NeedData
            count = (buf[pos] << 8) | buf[pos + 1]
            element, pos = description(buf, pos + 2, end, depth + 1)
            return TypeDescription(T.ARRAY, count, (element,)), pos
        if tag == T.STRUCTURE:
            count, pos = _length(buf, pos, end)
            if count > max_elements:
                raise DecodeError(f"structure description of {count} elements")
            elements = []
            for _ in range(count):
                element, pos = description(buf, pos, end, depth + 1)
                elements.append(element)
            return TypeDescription(T.STRUCTURE, 0, tuple(elements)), pos
        simple = _SIMPLE_DESCRIPTIONS.get(tag)
        if simple is None:
            raise DecodeError(f"tag {tag} (0x{tag:02X}) cannot describe compact-array elements")
        return simple, pos

    def packed(desc: TypeDescription) -> Callable[[_Buf, int, int], _Result]:
        """A decoder for elements of ``desc`` without tags, built once per compact array."""
        kind = desc.type
        if kind is T.STRUCTURE:
            parts = tuple(packed(e) for e in desc.elements)

            def structure(buf: _Buf, pos: int, end: int) -> _Result:
                items = []
                for part in parts:
                    item, pos = part(buf, pos, end)
                    items.append(item)
                return make(kind, tuple(items)), pos

            return structure
        if kind is T.ARRAY:
            part, count = packed(desc.elements[0]), desc.count

            def array(buf: _Buf, pos: int, end: int) -> _Result:
                items = []
                for _ in range(count):
                    item, pos = part(buf, pos, end)
                    items.append(item)
                return make(kind, tuple(items)), pos

            return array
        cached = one_byte[kind]
        if cached is not None:
            values = cached

            def one(buf: _Buf, pos: int, end: int) -> _Result:
                if pos >= end:
                    raise NeedData
                return values[buf[pos]], pos + 1

            return one
        spec = fixed[kind]
        if spec is not None:
            size, unpack = spec[1], spec[2]

            def number(buf: _Buf, pos: int, end: int) -> _Result:
                nxt = pos + size
                if nxt > end:
                    raise NeedData
                return make(kind, unpack(buf, pos)[0]), nxt

            return number

        def other(buf: _Buf, pos: int, end: int) -> _Result:
            return body(kind, buf, pos, end, max_depth)

        return other

    def compact_array(buf: _Buf, pos: int, end: int, depth: int) -> _Result:
        desc, pos = description(buf, pos, end, depth + 1)
        size, pos = _length(buf, pos, end)
        stop = pos + size
        if stop > end:
            raise NeedData
        items: list[Data] = []
        if size:
            if _zero_size(desc):
                raise DecodeError("compact-array of elements of no size has contents")
            weight = _weight(desc)  # values per element, checked before any is decoded
            element = packed(desc)
            try:
                while pos < stop:
                    if (len(items) + 1) * weight > max_elements:
                        raise DecodeError(f"compact-array of more than {max_elements} values")
                    item, pos = element(buf, pos, stop)
                    items.append(item)
            except NeedData:
                raise DecodeError("compact-array element runs past the contents") from None
        return make(T.COMPACT_ARRAY, CompactArray(desc, tuple(items))), stop

    others: dict[int, Callable[[_Buf, int, int, int], _Result]] = {
        T.ARRAY: sequence(T.ARRAY),
        T.STRUCTURE: sequence(T.STRUCTURE),
        T.OCTET_STRING: octet_string,
        T.VISIBLE_STRING: visible_string,
        T.UTF8_STRING: utf8_string,
        T.BIT_STRING: bit_string,
        T.COMPACT_ARRAY: compact_array,
        T.DATE_TIME: octets_of(T.DATE_TIME, 12, CosemDateTime.from_octets),
        T.DATE: octets_of(T.DATE, 5, CosemDate.from_octets),
        T.TIME: octets_of(T.TIME, 4, CosemTime.from_octets),
    }
    return value


_DEFAULT_DECODER = _decoder(DEFAULT_MAX_DEPTH, DEFAULT_MAX_ELEMENTS)


def _view(cur: Cursor) -> tuple[bytes, int, int]:
    """The cursor's bytes as ``bytes`` (indexing and slicing a memoryview cost more) with
    the start and end positions in them; a full view of a bytes object is used as is."""
    mv = cur.data
    obj = mv.obj
    if type(obj) is bytes and mv.nbytes == len(obj) and cur.end == len(obj):
        return obj, cur.pos, cur.end
    return bytes(mv[cur.pos : cur.end]), 0, cur.end - cur.pos


def _check_limits(max_depth: int, max_elements: int) -> None:
    if not 1 <= max_depth <= MAX_DEPTH_LIMIT:
        raise ValueError(f"max_depth must be 1..{MAX_DEPTH_LIMIT}, not {max_depth}")
    if max_elements < 1:
        raise ValueError(f"max_elements must be positive, not {max_elements}")


def decode_data(
    cur: Cursor, *, max_depth: int = DEFAULT_MAX_DEPTH, max_elements: int = DEFAULT_MAX_ELEMENTS
) -> Data:
    """One tagged Data from the cursor, which then points past it. :class:`NeedData` when
    the bytes end first (the cursor has not moved), :class:`DecodeError` when they are not
    an encoding."""
    if max_depth == DEFAULT_MAX_DEPTH and max_elements == DEFAULT_MAX_ELEMENTS:
        decode = _DEFAULT_DECODER
    else:
        _check_limits(max_depth, max_elements)
        decode = _decoder(max_depth, max_elements)
    return _run(decode, cur)


def _run(decode: Callable[[_Buf, int, int, int], _Result], cur: Cursor) -> Data:
    buf, start, end = _view(cur)
    result, stop = decode(buf, start, end, 0)
    cur.pos += stop - start
    return result


def decode_data_bytes(
    data: bytes | bytearray | memoryview,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Data:
    """Exactly one Data filling ``data``: bytes that end early or are left over are a
    :class:`DecodeError` (here the input is complete, so short means corrupt)."""
    cur = Cursor(data if type(data) is bytes else bytes(data))
    try:
        result = decode_data(cur, max_depth=max_depth, max_elements=max_elements)
    except NeedData:
        raise DecodeError(f"truncated Data ({len(data)} bytes)") from None
    if not cur.at_end():
        raise DecodeError(f"{cur.remaining} bytes after the Data")
    return result


class DataDecoder:
    """:func:`decode_data` with its limits fixed once (the codec's constructor arguments)."""

    __slots__ = ("_decode", "max_depth", "max_elements")

    def __init__(
        self, *, max_depth: int = DEFAULT_MAX_DEPTH, max_elements: int = DEFAULT_MAX_ELEMENTS
    ) -> None:
        _check_limits(max_depth, max_elements)
        self.max_depth = max_depth
        self.max_elements = max_elements
        self._decode = _decoder(max_depth, max_elements)

    def decode(self, cur: Cursor) -> Data:
        return _run(self._decode, cur)

    def decode_bytes(self, data: bytes | bytearray | memoryview) -> Data:
        return decode_data_bytes(data, max_depth=self.max_depth, max_elements=self.max_elements)
