"""The ZCL frame header (ZCL 07-5123, 2.4.1 "General ZCL Frame Format").

::

    octets:  1              0/2                 1                 1
             frame control  manufacturer code   sequence number   command id

Frame control (2.4.1.1): bits 0-1 frame type, bit 2 manufacturer specific, bit 3 direction,
bit 4 disable default response, bits 5-7 reserved (must be zero: a frame that sets them is
refused, so every decoded frame encodes back to the same octets).
"""

from __future__ import annotations

from dataclasses import dataclass

from meterledger.codec.zigbee.codes import Direction, FrameType
from meterledger.codec.zigbee.cursor import Cursor
from meterledger.codec.zigbee.errors import (
    ZclMalformedError,
    ZclUnsupportedError,
    ZclValueError,
)

__all__ = ["ZclHeader", "check_uint"]

_MANUFACTURER_SPECIFIC = 0x04
_DIRECTION = 0x08
_DISABLE_DEFAULT_RESPONSE = 0x10
_RESERVED = 0xE0


def check_uint(value: object, bits: int, name: str) -> None:
    """Refuse anything but an ``int`` (not a bool) in 0 .. 2**bits - 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ZclValueError(f"{name} must be an integer, not {type(value).__name__}")
    if not 0 <= value < 1 << bits:
        raise ZclValueError(f"{name} {value} does not fit in {bits} bits")


@dataclass(frozen=True, slots=True)
class ZclHeader:
    """The header of one ZCL frame; ``manufacturer_code`` is None unless manufacturer specific."""

    frame_type: FrameType
    direction: Direction
    sequence_number: int
    command_id: int
    manufacturer_code: int | None = None
    disable_default_response: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.frame_type, FrameType):
            raise ZclValueError(f"frame_type must be a FrameType, not {self.frame_type!r}")
        if not isinstance(self.direction, Direction):
            raise ZclValueError(f"direction must be a Direction, not {self.direction!r}")
        check_uint(self.sequence_number, 8, "sequence_number")
        check_uint(self.command_id, 8, "command_id")
        if self.manufacturer_code is not None:
            check_uint(self.manufacturer_code, 16, "manufacturer_code")
        if not isinstance(self.disable_default_response, bool):
            raise ZclValueError("disable_default_response must be a bool")

    @property
    def manufacturer_specific(self) -> bool:
        return self.manufacturer_code is not None

    @property
    def frame_control(self) -> int:
        """The frame control octet."""
        value = int(self.frame_type)
        if self.manufacturer_code is not None:
            value |= _MANUFACTURER_SPECIFIC
        if self.direction is Direction.SERVER_TO_CLIENT:
            value |= _DIRECTION
        if self.disable_default_response:
            value |= _DISABLE_DEFAULT_RESPONSE
        return value

    def encode(self) -> bytes:
        out = bytearray((self.frame_control,))
        if self.manufacturer_code is not None:
            out += self.manufacturer_code.to_bytes(2, "little")
        out += bytes((self.sequence_number, self.command_id))
        return bytes(out)

    @classmethod
    def decode(cls, cursor: Cursor) -> ZclHeader:
        control = cursor.u8("the frame control")
        if control & _RESERVED:
            raise ZclMalformedError(f"reserved frame control bits set: 0x{control:02X}")
        kind = control & 0x03
        if kind not in (FrameType.GLOBAL, FrameType.CLUSTER_SPECIFIC):
            raise ZclUnsupportedError(f"reserved frame type {kind} (frame control 0x{control:02X})")
        manufacturer = (
            cursor.u16("the manufacturer code") if control & _MANUFACTURER_SPECIFIC else None
        )
        sequence = cursor.u8("the sequence number")
        command = cursor.u8("the command id")
        return cls(
            frame_type=FrameType(kind),
            direction=Direction.SERVER_TO_CLIENT
            if control & _DIRECTION
            else Direction.CLIENT_TO_SERVER,
            sequence_number=sequence,
            command_id=command,
            manufacturer_code=manufacturer,
            disable_default_response=bool(control & _DISABLE_DEFAULT_RESPONSE),
        )
