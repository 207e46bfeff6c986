"""A little-endian read cursor over a memoryview, for every ZCL decoder.

ZCL sends multi-octet fields least significant octet first (ZCL 07-5123, 2.6.1 "Data
Types"). Decoders never index past the end and never catch ``IndexError``: the cursor raises
:class:`~meterledger.codec.zigbee.errors.ZclTruncatedError` naming the field it was reading.
"""

from __future__ import annotations

from meterledger.codec.zigbee.errors import ZclMalformedError, ZclTruncatedError

__all__ = ["Cursor"]


class Cursor:
    """Reads little-endian unsigned integers from ``data`` starting at ``pos``."""

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

    def uint(self, size: int, what: str) -> int:
        """An unsigned integer of ``size`` octets; ``what`` names it in the error."""
        if self.pos + size > self.end:
            raise ZclTruncatedError(
                f"frame ends in {what}: needs {size} octet(s) at offset {self.pos}, "
                f"{self.remaining} left"
            )
        value = int.from_bytes(self.data[self.pos : self.pos + size], "little")
        self.pos += size
        return value

    def u8(self, what: str) -> int:
        return self.uint(1, what)

    def u16(self, what: str) -> int:
        return self.uint(2, what)

    def u24(self, what: str) -> int:
        return self.uint(3, what)

    def u32(self, what: str) -> int:
        return self.uint(4, what)

    def expect_end(self, what: str) -> None:
        """Octets after the last field are corrupt, not padding (we keep frames exact)."""
        if not self.at_end():
            raise ZclMalformedError(f"{self.remaining} octet(s) after the end of {what}")
