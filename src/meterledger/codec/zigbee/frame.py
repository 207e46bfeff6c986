"""A whole ZCL frame: the header and one command, and the two functions that code it.

:func:`decode_frame` picks the command from the frame type, the command id and, for
cluster-specific commands, the direction: command 0x00 is GetProfile from a client and
GetProfileResponse from a server. It raises only :class:`ZclError` subclasses.
"""

from __future__ import annotations

from dataclasses import dataclass

from meterledger.codec.zigbee.codes import METERING_CLUSTER, Direction, FrameType
from meterledger.codec.zigbee.cursor import Cursor
from meterledger.codec.zigbee.errors import ZclUnsupportedError, ZclValueError
from meterledger.codec.zigbee.general import (
    DefaultResponse,
    ReadAttributes,
    ReadAttributesResponse,
    ReportAttributes,
)
from meterledger.codec.zigbee.header import ZclHeader
from meterledger.codec.zigbee.metering import GetProfile, GetProfileResponse

__all__ = ["COMMANDS", "ZclCommand", "ZclFrame", "decode_frame", "encode_frame"]

ZclCommand = (
    ReadAttributes
    | ReadAttributesResponse
    | ReportAttributes
    | DefaultResponse
    | GetProfile
    | GetProfileResponse
)
COMMANDS: tuple[type[ZclCommand], ...] = (
    ReadAttributes,
    ReadAttributesResponse,
    ReportAttributes,
    DefaultResponse,
    GetProfile,
    GetProfileResponse,
)
_GLOBAL = {c.COMMAND_ID: c for c in COMMANDS if c.FRAME_TYPE is FrameType.GLOBAL}
_METERING = {
    (c.DIRECTION, c.COMMAND_ID): c for c in COMMANDS if c.FRAME_TYPE is FrameType.CLUSTER_SPECIFIC
}


@dataclass(frozen=True, slots=True)
class ZclFrame:
    """One ZCL frame; the header must agree with the command (type, id, direction)."""

    header: ZclHeader
    command: ZclCommand

    def __post_init__(self) -> None:
        if not isinstance(self.header, ZclHeader):
            raise ZclValueError("header must be a ZclHeader")
        if not isinstance(self.command, COMMANDS):
            raise ZclValueError(f"not a ZCL command: {type(self.command).__name__}")
        kind = type(self.command)
        if (
            self.header.frame_type is not kind.FRAME_TYPE
            or self.header.command_id != kind.COMMAND_ID
        ):
            raise ZclValueError(
                f"header (frame type {self.header.frame_type.name}, command "
                f"0x{self.header.command_id:02X}) does not match {kind.__name__}"
            )
        if kind.DIRECTION is not None and self.header.direction is not kind.DIRECTION:
            raise ZclValueError(f"{kind.__name__} is sent {kind.DIRECTION.name}")

    @classmethod
    def of(
        cls,
        command: ZclCommand,
        *,
        sequence_number: int,
        direction: Direction | None = None,
        manufacturer_code: int | None = None,
        disable_default_response: bool = False,
    ) -> ZclFrame:
        """A frame whose header is made for ``command`` (global commands need ``direction``)."""
        kind = type(command)
        chosen = kind.DIRECTION if kind.DIRECTION is not None else direction
        if chosen is None:
            raise ZclValueError(f"{kind.__name__} can go either way: give a direction")
        header = ZclHeader(
            frame_type=kind.FRAME_TYPE,
            direction=chosen,
            sequence_number=sequence_number,
            command_id=kind.COMMAND_ID,
            manufacturer_code=manufacturer_code,
            disable_default_response=disable_default_response,
        )
        return cls(header, command)


def encode_frame(frame: ZclFrame) -> bytes:
    """The octets of ``frame``."""
    return frame.header.encode() + frame.command.encode_payload()


def decode_frame(data: bytes, *, cluster: int = METERING_CLUSTER) -> ZclFrame:
    """Decode one whole ZCL frame received on ``cluster``.

    Global commands decode on any cluster; cluster-specific ones only on Metering (0x0702),
    and not when manufacturer specific (their meaning is the manufacturer's).
    """
    cursor = Cursor(data)
    header = ZclHeader.decode(cursor)
    kind: type[ZclCommand] | None
    if header.frame_type is FrameType.GLOBAL:
        kind = _GLOBAL.get(header.command_id)
        if kind is None:
            raise ZclUnsupportedError(f"global command 0x{header.command_id:02X} is not decoded")
    else:
        if cluster != METERING_CLUSTER:
            raise ZclUnsupportedError(f"cluster-specific commands of cluster 0x{cluster:04X}")
        if header.manufacturer_specific:
            raise ZclUnsupportedError(
                f"manufacturer-specific command 0x{header.command_id:02X} "
                f"(manufacturer 0x{header.manufacturer_code:04X})"
            )
        kind = _METERING.get((header.direction, header.command_id))
        if kind is None:
            raise ZclUnsupportedError(
                f"Metering command 0x{header.command_id:02X} {header.direction.name} is not decoded"
            )
    return ZclFrame(header, kind.decode_payload(cursor))
