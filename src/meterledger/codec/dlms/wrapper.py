"""The IEC 62056-47 wrapper (DLMS UA 1000-2, 7.3.3.4): the TCP and UDP transport of DLMS.

Each APDU is preceded by an 8-byte header, all big-endian::

    version (0x0001) | source wPort | destination wPort | length of the APDU

wPorts are the client and server SAPs (a public client is 0x0010, the management logical
device 0x0001). There are no flags and no check sequence: TCP delivers the bytes in order, so
a wrong version means the stream has lost its framing for good. :class:`WrapperParser`
therefore treats corruption as final: once it has raised :class:`CorruptFrameError` it raises
it again on every call, and the connection should be closed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from meterledger.codec.dlms.cursor import NEED_DATA, NeedDataType
from meterledger.codec.dlms.errors import CorruptFrameError, DlmsLocalError

__all__ = [
    "HEADER_LENGTH",
    "MAX_WRAPPER_APDU",
    "WRAPPER_VERSION",
    "WrapperParser",
    "WrapperPdu",
    "encode_wrapper",
]

WRAPPER_VERSION = 0x0001
HEADER_LENGTH = 8
MAX_WRAPPER_APDU = 0xFFFF  # the length field is 16 bits
_HEADER = struct.Struct(">HHHH")


@dataclass(frozen=True, slots=True)
class WrapperPdu:
    """One wrapped APDU: from wPort ``src`` to wPort ``dst``."""

    src: int
    dst: int
    apdu: bytes

    def __post_init__(self) -> None:
        if not (0 <= self.src <= 0xFFFF and 0 <= self.dst <= 0xFFFF):
            raise DlmsLocalError("wPorts are 0..65535")
        if len(self.apdu) > MAX_WRAPPER_APDU:
            raise DlmsLocalError(f"a wrapped APDU has at most {MAX_WRAPPER_APDU} bytes")


def encode_wrapper(src: int, dst: int, apdu: bytes) -> bytes:
    """The header and ``apdu``."""
    if len(apdu) > MAX_WRAPPER_APDU:
        raise DlmsLocalError(f"a wrapped APDU has at most {MAX_WRAPPER_APDU} bytes")
    try:
        return _HEADER.pack(WRAPPER_VERSION, src, dst, len(apdu)) + apdu
    except struct.error:
        raise DlmsLocalError(f"wPorts are 0..65535, not {src} and {dst}") from None


class WrapperParser:
    """Splits a byte stream into :class:`WrapperPdu` values.

    ``max_apdu`` bounds the length a header may announce (more is corrupt: we would otherwise
    wait for bytes no honest peer sends); ``max_buffer`` bounds the unconsumed bytes (more is
    a local error: drain :meth:`next_pdu` between reads)."""

    def __init__(self, *, max_apdu: int = MAX_WRAPPER_APDU, max_buffer: int = 262144) -> None:
        if not 0 <= max_apdu <= MAX_WRAPPER_APDU:
            raise DlmsLocalError(f"max_apdu must be 0..{MAX_WRAPPER_APDU}")
        if max_buffer < max_apdu + HEADER_LENGTH:
            raise DlmsLocalError("max_buffer must hold at least one PDU")
        self._max_apdu = max_apdu
        self._max_buffer = max_buffer
        self._buf = bytearray()
        self._pos = 0
        self._corrupt: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed."""
        return len(self._buf) - self._pos

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if self._corrupt is not None:
            return  # the stream is beyond repair; next_pdu() says so
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        if len(self._buf) + len(data) > self._max_buffer:
            raise DlmsLocalError(
                f"wrapper receive buffer would exceed {self._max_buffer} bytes; drain next_pdu()"
            )
        self._buf += data

    def next_pdu(self) -> WrapperPdu | NeedDataType:
        """The next complete PDU, or ``NEED_DATA``."""
        if self._corrupt is not None:
            raise CorruptFrameError(self._corrupt)
        buf, pos = self._buf, self._pos
        if len(buf) - pos < HEADER_LENGTH:
            return NEED_DATA
        version, src, dst, length = _HEADER.unpack_from(buf, pos)
        if version != WRAPPER_VERSION:
            self._corrupt = f"wrapper version 0x{version:04X}, not 0x{WRAPPER_VERSION:04X}"
        elif length > self._max_apdu:
            self._corrupt = f"wrapped APDU of {length} bytes exceeds the limit {self._max_apdu}"
        if self._corrupt is not None:
            self._buf.clear()
            self._pos = 0
            raise CorruptFrameError(self._corrupt)
        end = pos + HEADER_LENGTH + length
        if end > len(buf):
            return NEED_DATA
        self._pos = end
        return WrapperPdu(src, dst, bytes(buf[pos + HEADER_LENGTH : end]))
