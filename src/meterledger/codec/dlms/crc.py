"""CRC-16/X.25, the HCS and FCS of HDLC frames (IEC 62056-46 Annex A, ISO/IEC 13239 FCS-16,
RFC 1662): polynomial x^16 + x^12 + x^5 + 1 (0x1021, bit-reflected 0x8408), initial value
0xFFFF, final XOR 0xFFFF, bits reflected; the two check bytes go on the wire least
significant first (see :func:`fcs_bytes`). Check value: ``crc16_x25(b"123456789") == 0x906E``.

Two implementations that agree on every input (a property test checks it):

* :func:`crc16_x25` runs in C. ``binascii.crc_hqx`` is the table-driven *unreflected*
  CRC-CCITT; a reflected CRC equals the bit reversal of the unreflected CRC taken over
  bit-reversed bytes, and ``bytes.translate`` reverses the bytes in C. That is about ten times
  faster than any Python loop, which matters: every frame is checked twice.
* :func:`crc16_x25_bytewise` is the textbook reflected table loop over a memoryview, kept as
  the readable reference.
"""

from __future__ import annotations

import binascii
import struct

__all__ = [
    "CRC16_X25_TABLE",
    "crc16_x25",
    "crc16_x25_bytewise",
    "crc16_x25_prefixes",
    "fcs_bytes",
]

_POLY_REFLECTED = 0x8408
_INIT = 0xFFFF
_XOROUT = 0xFFFF

# _REVERSED[b] is b with its eight bits in the opposite order.
_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))
_LE16 = struct.Struct("<H")


def _table_entry(byte: int) -> int:
    crc = byte
    for _ in range(8):
        crc = (crc >> 1) ^ _POLY_REFLECTED if crc & 1 else crc >> 1
    return crc


CRC16_X25_TABLE: tuple[int, ...] = tuple(_table_entry(b) for b in range(256))


def crc16_x25(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/X.25 of ``data`` (as an integer; see :func:`fcs_bytes` for the wire order)."""
    if isinstance(data, memoryview):
        data = data.tobytes()
    register = binascii.crc_hqx(data.translate(_REVERSED), _INIT)
    return ((_REVERSED[register & 0xFF] << 8) | _REVERSED[register >> 8]) ^ _XOROUT


def crc16_x25_prefixes(data: bytes | bytearray, first: int, second: int) -> tuple[int, int]:
    """The CRCs of ``data[:first]`` and ``data[:second]`` (``first <= second``) in one pass:
    an HDLC frame's HCS and FCS share their start."""
    view = memoryview(data.translate(_REVERSED))
    head = binascii.crc_hqx(view[:first], _INIT)
    whole = binascii.crc_hqx(view[first:second], head)
    return (
        ((_REVERSED[head & 0xFF] << 8) | _REVERSED[head >> 8]) ^ _XOROUT,
        ((_REVERSED[whole & 0xFF] << 8) | _REVERSED[whole >> 8]) ^ _XOROUT,
    )


def crc16_x25_bytewise(data: bytes | bytearray | memoryview) -> int:
    """The same CRC, one table look-up per byte (the reference implementation)."""
    crc = _INIT
    table = CRC16_X25_TABLE
    for byte in memoryview(data).cast("B"):
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc ^ _XOROUT


def fcs_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """The two check-sequence bytes of ``data`` as transmitted: least significant first."""
    return _LE16.pack(crc16_x25(data))
