"""HDLC frames of the DLMS/COSEM serial profile (IEC 62056-46, DLMS UA 1000-2 clause 8.4).

Frame format type 3 (ISO/IEC 13239 Annex H.4)::

    7E | format (2) | dst (1, 2 or 4) | src (1, 2 or 4) | control | [HCS (2) | info] | FCS (2) | 7E

* format: ``1010`` (type 3), the segmentation bit S, then an 11-bit length that counts every
  byte between the flags;
* addresses: 7 bits per byte, the least significant bit an extension bit (1 = last byte).
  A client address is one byte; a server address is the upper HDLC address (the logical
  device) followed, on 2 or 4 bytes, by the lower HDLC address (the physical device);
* HCS: CRC-16/X.25 of format, addresses and control, present only with an information field;
  FCS: the same CRC over everything between the flags but itself. Both are sent LSB first.

There is no byte stuffing: frames are found by their length field, so a 0x7E inside a frame is
just data. :class:`FrameParser` keeps *incomplete* (returns ``NEED_DATA``) apart from *corrupt*
(raises :class:`CorruptFrameError`) and resynchronises on the next flag after damage.

The information field of SNRM and UA frames carries the link parameters
(:class:`HdlcParameters`, IEC 62056-46 6.4.4.4.3.2).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from meterledger.codec.dlms.crc import crc16_x25, crc16_x25_prefixes
from meterledger.codec.dlms.cursor import NEED_DATA, Cursor, NeedData, NeedDataType
from meterledger.codec.dlms.errors import CorruptFrameError, DecodeError, DlmsLocalError

__all__ = [
    "FLAG",
    "MAX_FRAME_LENGTH",
    "MAX_INFO_LENGTH",
    "FrameKind",
    "FrameParser",
    "HdlcAddress",
    "HdlcFrame",
    "HdlcParameters",
    "encode_frame",
    "negotiate",
]

FLAG = 0x7E
MAX_FRAME_LENGTH = 0x7FF  # the 11-bit length field
MAX_INFO_LENGTH = 2030  # the largest maximum-information-field-length IEC 62056-46 allows
_MIN_FRAME_LENGTH = 7  # format 2 + dst 1 + src 1 + control 1 + FCS 2
_FORMAT_TYPE_3 = 0xA000
_SEGMENTED = 0x0800

_U16 = struct.Struct(">H")
_LE16 = struct.Struct("<H")


class FrameKind(enum.IntEnum):
    """Frame types of IEC 62056-46 6.4.3.3, valued as their control byte with N(S), N(R)
    and P/F all zero: ``control = kind | N(R) << 5 | P/F << 4 | N(S) << 1``."""

    I = 0x00  # noqa: E741 - the standard's name for an information frame
    RR = 0x01
    RNR = 0x05
    SNRM = 0x83
    DISC = 0x43
    UA = 0x63
    DM = 0x0F
    FRMR = 0x87
    UI = 0x03


_NUMBERED = frozenset({FrameKind.I, FrameKind.RR, FrameKind.RNR})  # carry N(R)
_WITH_INFO = frozenset({FrameKind.I, FrameKind.UI, FrameKind.SNRM, FrameKind.UA, FrameKind.FRMR})
_SEGMENTABLE = frozenset({FrameKind.I, FrameKind.UI})
_UNNUMBERED = {kind.value: kind for kind in FrameKind if kind.value & 0x03 == 0x03}


def _control_entry(control: int) -> tuple[FrameKind, int, int, bool] | None:
    poll_final = bool(control & 0x10)
    if control & 0x01 == 0:
        return FrameKind.I, (control >> 1) & 0x07, control >> 5, poll_final
    if control & 0x0F == FrameKind.RR:
        return FrameKind.RR, 0, control >> 5, poll_final
    if control & 0x0F == FrameKind.RNR:
        return FrameKind.RNR, 0, control >> 5, poll_final
    kind = _UNNUMBERED.get(control & 0xEF)
    return None if kind is None else (kind, 0, 0, poll_final)


# One look-up decodes a control byte (REJ, SREJ and unknown U frames are None).
_CONTROL_TABLE = tuple(_control_entry(c) for c in range(256))


@dataclass(frozen=True, slots=True)
class HdlcAddress:
    """An HDLC address of 1, 2 or 4 bytes (IEC 62056-46 6.4.2).

    ``upper`` is the whole address of a client (its SAP) or the upper HDLC address of a server
    (the logical device); ``lower`` is a server's lower HDLC address (the physical device), or
    ``None`` for a one-byte address. ``size`` 0 picks the shortest encoding that fits."""

    upper: int
    lower: int | None = None
    size: int = 0
    wire: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        size, upper, lower = self.size, self.upper, self.lower
        if size == 0:
            size = 1 if lower is None else 2 if upper <= 0x7F and lower <= 0x7F else 4
            object.__setattr__(self, "size", size)
        if size == 1:
            if lower is not None or not 0 <= upper <= 0x7F:
                raise DlmsLocalError(f"a 1-byte HDLC address is 0..127 alone, not {self!r}")
            wire = bytes(((upper << 1) | 1,))
        elif size in (2, 4):
            top = 0x7F if size == 2 else 0x3FFF
            if lower is None or not (0 <= upper <= top and 0 <= lower <= top):
                raise DlmsLocalError(f"a {size}-byte HDLC address needs upper, lower 0..{top}")
            if size == 2:
                wire = bytes((upper << 1, (lower << 1) | 1))
            else:
                wire = bytes(
                    (
                        (upper >> 7) << 1,
                        (upper & 0x7F) << 1,
                        (lower >> 7) << 1,
                        ((lower & 0x7F) << 1) | 1,
                    )
                )
        else:
            raise DlmsLocalError(f"an HDLC address has 1, 2 or 4 bytes, not {size}")
        object.__setattr__(self, "wire", wire)

    @classmethod
    def decode(cls, wire: bytes) -> HdlcAddress:
        """The address whose encoding is ``wire`` (extension bits already checked)."""
        found = _ADDRESS_CACHE.get(wire)
        if found is not None:
            return found
        if len(wire) == 1:
            address = cls(wire[0] >> 1)
        elif len(wire) == 2:
            address = cls(wire[0] >> 1, wire[1] >> 1, 2)
        else:
            upper = ((wire[0] >> 1) << 7) | (wire[1] >> 1)
            address = cls(upper, ((wire[2] >> 1) << 7) | (wire[3] >> 1), 4)
        if len(_ADDRESS_CACHE) < 4096:
            _ADDRESS_CACHE[wire] = address
        return address


_ADDRESS_CACHE: dict[bytes, HdlcAddress] = {}


def server_address(logical: int, physical: int, size: int) -> HdlcAddress:
    """A server's HDLC address: the logical device alone in one byte, else the logical
    (upper) and physical (lower) addresses in ``size`` bytes."""
    if size == 1:
        return HdlcAddress(logical)
    return HdlcAddress(logical, physical, size)


@dataclass(frozen=True, slots=True)
class HdlcFrame:
    """One HDLC frame. ``send_seq`` is N(S) (I frames only), ``recv_seq`` N(R) (I, RR, RNR);
    ``segmented`` is the S bit: more segments of the same information follow."""

    kind: FrameKind
    dst: HdlcAddress
    src: HdlcAddress
    poll_final: bool = True
    send_seq: int = 0
    recv_seq: int = 0
    segmented: bool = False
    info: bytes = b""

    def __post_init__(self) -> None:
        kind = self.kind
        if not (0 <= self.send_seq <= 7 and 0 <= self.recv_seq <= 7):
            raise DlmsLocalError("N(S) and N(R) are 0..7")
        if self.send_seq and kind is not FrameKind.I:
            raise DlmsLocalError(f"a {kind.name} frame has no N(S)")
        if self.recv_seq and kind not in _NUMBERED:
            raise DlmsLocalError(f"a {kind.name} frame has no N(R)")
        if self.segmented and kind not in _SEGMENTABLE:
            raise DlmsLocalError(f"a {kind.name} frame cannot be segmented")
        if self.info and kind not in _WITH_INFO:
            raise DlmsLocalError(f"a {kind.name} frame has no information field")

    @property
    def control(self) -> int:
        """The control byte."""
        return self.kind | (self.recv_seq << 5) | (self.poll_final << 4) | (self.send_seq << 1)


def encode_frame(frame: HdlcFrame) -> bytes:
    """The bytes of ``frame``, flags included."""
    return _encode(frame.dst.wire + frame.src.wire, frame.control, frame.segmented, frame.info)


def _encode(addresses: bytes, control: int, segmented: bool, info: bytes) -> bytes:
    """Encode from parts (the link calls this directly, skipping the frame object)."""
    head_length = 3 + len(addresses)
    length = head_length + 2 + (len(info) + 2 if info else 0)
    if length > MAX_FRAME_LENGTH:
        raise DlmsLocalError(f"an HDLC frame holds at most {MAX_FRAME_LENGTH} bytes, not {length}")
    head = _U16.pack(_FORMAT_TYPE_3 | (_SEGMENTED if segmented else 0) | length)
    head += addresses + bytes((control,))
    if info:
        head += _LE16.pack(crc16_x25(head)) + info
    return b"~" + head + _LE16.pack(crc16_x25(head)) + b"~"


class _Rejected(Exception):  # noqa: N818 - internal signal of FrameParser
    def __init__(self, message: str, resume: int, *, lost_sync: bool, decode: bool = False):
        super().__init__(message)
        self.resume = resume
        self.lost_sync = lost_sync
        self.decode = decode


class FrameParser:
    """Finds HDLC frames in a byte stream.

    Feed bytes with :meth:`receive_data`, then call :meth:`next_frame` until it returns
    ``NEED_DATA``. A damaged frame raises :class:`CorruptFrameError` (bad format type, length,
    HCS, FCS, address, missing closing flag, stray bytes between frames); a frame whose
    check sequences hold but whose content is impossible (unknown control field, an
    information field on a DISC...) raises :class:`DecodeError`. Either way the parser has
    already moved past the damage, so the next call carries on with the following frames.
    After corruption the parser hunts flag by flag for the next good frame, and candidates
    that fail while it hunts are skipped silently: one burst of noise, one error (a
    ``DecodeError`` frame is intact and always reported).
    """

    def __init__(self, *, max_frame: int = MAX_FRAME_LENGTH, max_buffer: int = 65536) -> None:
        if not _MIN_FRAME_LENGTH <= max_frame <= MAX_FRAME_LENGTH:
            raise DlmsLocalError(f"max_frame must be {_MIN_FRAME_LENGTH}..{MAX_FRAME_LENGTH}")
        if max_buffer < max_frame + 2:
            raise DlmsLocalError("max_buffer must hold at least one frame and its flags")
        self._max_frame = max_frame
        self._max_buffer = max_buffer
        self._buf = bytearray()
        self._pos = 0
        self._hunting = False

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed."""
        return len(self._buf) - self._pos

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes. More than ``max_buffer`` unconsumed bytes is a local error:
        call :meth:`next_frame` between reads, or feed smaller pieces."""
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        if len(self._buf) + len(data) > self._max_buffer:
            raise DlmsLocalError(
                f"HDLC receive buffer would exceed {self._max_buffer} bytes; drain next_frame()"
            )
        self._buf += data

    def next_frame(self) -> HdlcFrame | NeedDataType:
        """The next complete frame, or ``NEED_DATA``."""
        buf = self._buf
        end = len(buf)
        pos = self._pos
        while True:
            if pos >= end:
                self._pos = pos
                return NEED_DATA
            if buf[pos] != FLAG:
                flag_at = buf.find(FLAG, pos)
                skipped = (end if flag_at < 0 else flag_at) - pos
                pos = end if flag_at < 0 else flag_at
                if not self._hunting:
                    self._hunting = True
                    self._pos = pos
                    raise CorruptFrameError(f"{skipped} byte(s) outside any HDLC frame")
                continue
            while pos + 1 < end and buf[pos + 1] == FLAG:  # inter-frame fill
                pos += 1
            if pos + 3 > end:
                self._pos = pos
                return NEED_DATA
            try:
                parsed = self._parse_at(buf, pos, end)
            except _Rejected as bad:
                pos = bad.resume
                report = bad.decode or not self._hunting
                self._hunting = bad.lost_sync or (self._hunting and not bad.decode)
                if report:
                    self._pos = pos
                    error = DecodeError if bad.decode else CorruptFrameError
                    raise error(str(bad)) from None
                continue
            if parsed is None:
                self._pos = pos
                return NEED_DATA
            frame, self._pos = parsed
            self._hunting = False
            return frame

    def _parse_at(self, buf: bytearray, pos: int, end: int) -> tuple[HdlcFrame, int] | None:
        """Parse the frame whose opening flag is at ``pos``: the frame and the index of its
        closing flag, ``None`` when incomplete, or :class:`_Rejected`."""
        first = buf[pos + 1]
        if first & 0xF0 != 0xA0:
            raise _Rejected(f"frame format type {first >> 4:X}, not A", pos + 1, lost_sync=True)
        length = ((first & 0x07) << 8) | buf[pos + 2]
        if length < _MIN_FRAME_LENGTH:
            raise _Rejected(f"frame length {length} is too short", pos + 1, lost_sync=True)
        if length > self._max_frame:
            raise _Rejected(
                f"frame length {length} exceeds the limit {self._max_frame}",
                pos + 1,
                lost_sync=True,
            )
        start = pos + 1
        stop = start + length  # where the closing flag must be
        at = pos + 3  # one-byte addresses, the usual case, without a call
        if at < end and at < stop - 4 and buf[at] & 0x01:
            dst_end = at + 1
        else:
            dst_end = _address_end(buf, at, end, stop - 4)
        if 0 <= dst_end < end and dst_end < stop - 3 and buf[dst_end] & 0x01:
            control_at = dst_end + 1
        else:
            control_at = -1 if dst_end < 0 else _address_end(buf, dst_end, end, stop - 3)
        if _BAD_ADDRESS in (control_at, dst_end):
            raise _Rejected("HDLC address is not 1, 2 or 4 bytes", pos + 1, lost_sync=True)
        if control_at < 0 or control_at >= end:
            return None
        header_length = control_at + 1 - start
        has_info = length != header_length + 2
        if has_info and length < header_length + 5:
            raise _Rejected(
                f"frame length {length} does not fit its header", pos + 1, lost_sync=True
            )
        if stop >= end:
            # Incomplete. Check the header as soon as it is in, so that a damaged length
            # field is found now rather than after waiting for bytes that never come.
            hcs_at = control_at + 1
            if (
                has_info
                and hcs_at + 2 <= end
                and crc16_x25(buf[start:hcs_at]) != (buf[hcs_at] | (buf[hcs_at + 1] << 8))
            ):
                raise _Rejected("header check sequence (HCS) mismatch", pos + 1, lost_sync=True)
            return None
        if buf[stop] != FLAG:
            raise _Rejected(
                f"no closing flag after the {length} bytes the length field announces",
                pos + 1,
                lost_sync=True,
            )
        data = bytes(buf[start:stop])
        # Every failure from here resumes at the next flag, not at ``stop``: a damaged length
        # byte may point past good frames, and hunting flag by flag never skips one.
        if has_info:
            hcs, fcs = crc16_x25_prefixes(data, header_length, length - 2)
            if hcs != data[header_length] | (data[header_length + 1] << 8):
                raise _Rejected("header check sequence (HCS) mismatch", pos + 1, lost_sync=True)
        else:
            fcs = crc16_x25(data[:-2])
        if fcs != data[-2] | (data[-1] << 8):
            raise _Rejected("frame check sequence (FCS) mismatch", pos + 1, lost_sync=True)
        entry = _CONTROL_TABLE[data[header_length - 1]]
        if entry is None:
            raise _Rejected(
                f"unsupported control field 0x{data[header_length - 1]:02X}",
                stop,
                lost_sync=False,
                decode=True,
            )
        kind, send_seq, recv_seq, poll_final = entry
        segmented = bool(first & 0x08)
        info = data[header_length + 2 : -2] if has_info else b""
        if (info and kind not in _WITH_INFO) or (segmented and kind not in _SEGMENTABLE):
            raise _Rejected(
                f"a {kind.name} frame cannot carry {'segments' if segmented else 'information'}",
                stop,
                lost_sync=False,
                decode=True,
            )
        dst = HdlcAddress.decode(data[2 : dst_end - start])
        src = HdlcAddress.decode(data[dst_end - start : header_length - 1])
        return HdlcFrame(kind, dst, src, poll_final, send_seq, recv_seq, segmented, info), stop


_BAD_ADDRESS = -2


def _address_end(buf: bytearray, at: int, end: int, limit: int) -> int:
    """Index after the address starting at ``at``; -1 when the buffer ends first,
    ``_BAD_ADDRESS`` when it is not 1, 2 or 4 bytes ending before ``limit`` (room for what
    follows it in the frame)."""
    for index in range(at, min(at + 4, limit)):
        if index >= end:
            return -1
        if buf[index] & 0x01:
            return _BAD_ADDRESS if index - at == 2 else index + 1
    return _BAD_ADDRESS


# --- SNRM/UA information field: HDLC parameter negotiation (IEC 62056-46 6.4.4.4.3.2) ---

_FORMAT_ID = 0x81
_GROUP_ID = 0x80
_MAX_INFO_TX = 0x05
_MAX_INFO_RX = 0x06
_WINDOW_TX = 0x07
_WINDOW_RX = 0x08


@dataclass(frozen=True, slots=True)
class HdlcParameters:
    """Link parameters as seen by the station that sends them: an SNRM carries the client's
    (what it will transmit and can receive), a UA the server's. Defaults: 128 bytes, window 1.
    """

    max_info_transmit: int = 128
    max_info_receive: int = 128
    window_transmit: int = 1
    window_receive: int = 1

    def __post_init__(self) -> None:
        for name in ("max_info_transmit", "max_info_receive"):
            if not 1 <= getattr(self, name) <= MAX_INFO_LENGTH:
                raise DlmsLocalError(f"{name} must be 1..{MAX_INFO_LENGTH}")
        for name in ("window_transmit", "window_receive"):
            if not 1 <= getattr(self, name) <= 7:
                raise DlmsLocalError(f"{name} must be 1..7")

    def reversed(self) -> HdlcParameters:
        """The same link from the other end (transmit and receive swapped)."""
        return HdlcParameters(
            self.max_info_receive,
            self.max_info_transmit,
            self.window_receive,
            self.window_transmit,
        )

    def encode(self) -> bytes:
        """The information field: all four parameters, lengths on 2 bytes and windows on 4, as
        in the DLMS UA's published example exchange."""
        group = struct.pack(
            ">BBHBBHBBIBBI",
            _MAX_INFO_TX,
            2,
            self.max_info_transmit,
            _MAX_INFO_RX,
            2,
            self.max_info_receive,
            _WINDOW_TX,
            4,
            self.window_transmit,
            _WINDOW_RX,
            4,
            self.window_receive,
        )
        return bytes((_FORMAT_ID, _GROUP_ID, len(group))) + group

    @classmethod
    def decode(cls, info: bytes) -> HdlcParameters:
        """Parameters from an SNRM or UA information field; absent ones keep their default,
        an empty field means all defaults. Groups other than 0x80 are skipped."""
        values: dict[int, int] = {}
        cursor = Cursor(info)
        try:
            if info and cursor.u8() != _FORMAT_ID:
                raise DecodeError(f"HDLC parameter format identifier is not 0x{_FORMAT_ID:X}")
            while not cursor.at_end():
                group_id, group_length = cursor.u8(), cursor.u8()
                group_end = cursor.pos + group_length
                if group_end > cursor.end:
                    raise NeedData
                while group_id == _GROUP_ID and cursor.pos < group_end:
                    parameter, size = cursor.u8(), cursor.u8()
                    if not 1 <= size <= 4 or cursor.pos + size > group_end:
                        raise DecodeError(f"HDLC parameter 0x{parameter:02X} has length {size}")
                    values[parameter] = int.from_bytes(cursor.take(size), "big")
                cursor.pos = group_end
        except NeedData:
            raise DecodeError("HDLC parameter field is truncated") from None
        default = cls()
        try:
            return cls(
                values.get(_MAX_INFO_TX, default.max_info_transmit),
                values.get(_MAX_INFO_RX, default.max_info_receive),
                values.get(_WINDOW_TX, default.window_transmit),
                values.get(_WINDOW_RX, default.window_receive),
            )
        except DlmsLocalError as exc:
            raise DecodeError(f"HDLC parameters out of range: {exc}") from None


def negotiate(client_proposal: HdlcParameters, server_limits: HdlcParameters) -> HdlcParameters:
    """What the server answers in its UA: each value the smaller of what the client offers and
    what the server can do, from the server's side (what it transmits is what the client
    receives). The client's own view is ``negotiate(...).reversed()``."""
    return HdlcParameters(
        min(client_proposal.max_info_receive, server_limits.max_info_transmit),
        min(client_proposal.max_info_transmit, server_limits.max_info_receive),
        min(client_proposal.window_receive, server_limits.window_transmit),
        min(client_proposal.window_transmit, server_limits.window_receive),
    )
