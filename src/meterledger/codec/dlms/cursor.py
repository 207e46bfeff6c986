"""A read cursor over a memoryview, for every decoder in the DLMS codec.

Decoders never catch ``IndexError`` to mean "incomplete": they ask the cursor, which raises
:class:`NeedData` when the bytes run out (a frame parser turns that into ``NEED_DATA``) and
:class:`DecodeError` for what is wrong.
"""

from __future__ import annotations

import struct

from meterledger.codec.dlms.errors import DecodeError

__all__ = ["NEED_DATA", "Cursor", "NeedData", "NeedDataType", "encode_length"]


class NeedData(Exception):  # noqa: N818 - a signal, not an error
    """The input ended before the value did (more bytes may complete it)."""


class _NeedDataType:
    """The "give me more bytes" result of a parser (a singleton, like h11's NEED_DATA)."""

    _instance: _NeedDataType | None = None

    def __new__(cls) -> _NeedDataType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedDataType()
NeedDataType = _NeedDataType  # the public name, for annotations and isinstance

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class Cursor:
    """Reads big-endian values from ``data`` starting at ``pos``."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0) -> None:
        self.data = memoryview(data)
        self.pos = pos
        self.end = len(self.data)

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def at_end(self) -> bool:
        return self.pos >= self.end

    def _need(self, n: int) -> None:
        if self.pos + n > self.end:
            raise NeedData

    def u8(self) -> int:
        self._need(1)
        value = self.data[self.pos]
        self.pos += 1
        return value

    def peek(self) -> int:
        self._need(1)
        return self.data[self.pos]

    def u16(self) -> int:
        self._need(2)
        (value,) = _U16.unpack_from(self.data, self.pos)
        self.pos += 2
        return int(value)

    def u32(self) -> int:
        self._need(4)
        (value,) = _U32.unpack_from(self.data, self.pos)
        self.pos += 4
        return int(value)

    def u64(self) -> int:
        self._need(8)
        (value,) = _U64.unpack_from(self.data, self.pos)
        self.pos += 8
        return int(value)

    def take(self, n: int) -> bytes:
        if n < 0:
            raise DecodeError(f"negative length {n}")
        self._need(n)
        value = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return value

    def length(self) -> int:
        """A BER/A-XDR length: one byte < 0x80, or 0x8N followed by N bytes (N ≤ 4)."""
        first = self.u8()
        if first < 0x80:
            return first
        count = first & 0x7F
        if count == 0 or count > 4:
            raise DecodeError(f"unsupported length form 0x{first:02X}")
        value = 0
        for _ in range(count):
            value = (value << 8) | self.u8()
        return value


def encode_length(n: int) -> bytes:
    """The BER/A-XDR length of ``n``."""
    if n < 0:
        raise ValueError(f"negative length {n}")
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body
