"""The profile-wide ("global") commands the metering client and server exchange.

ZCL 07-5123, 2.5: Read Attributes (2.5.1, command 0x00), Read Attributes Response (2.5.2,
0x01), Report Attributes (2.5.11, 0x0A) and Default Response (2.5.12, 0x0B). Each payload
follows the frame header; attribute ids are uint16, statuses uint8, values as in
:mod:`meterledger.codec.zigbee.values`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from meterledger.codec.zigbee.codes import DataType, Direction, FrameType, GlobalCommand, ZclStatus
from meterledger.codec.zigbee.cursor import Cursor
from meterledger.codec.zigbee.errors import ZclValueError
from meterledger.codec.zigbee.header import check_uint
from meterledger.codec.zigbee.values import (
    check_value,
    decode_data_type,
    decode_value,
    encode_value,
)

__all__ = [
    "AttributeRecord",
    "DefaultResponse",
    "ReadAttributes",
    "ReadAttributesResponse",
    "ReportAttributes",
    "known_status",
]


def known_status(code: int) -> int:
    """A :class:`ZclStatus` when the code is one, else the octet (newer revisions add codes)."""
    try:
        return ZclStatus(code)
    except ValueError:
        return code


def _check_tuple(items: object, kind: type, name: str) -> None:
    if not isinstance(items, tuple):
        raise ZclValueError(f"{name} must be a tuple")
    for item in items:
        if not isinstance(item, kind):
            raise ZclValueError(f"{name} holds a {type(item).__name__}, not a {kind.__name__}")


@dataclass(frozen=True, slots=True)
class AttributeRecord:
    """One attribute: its id and, on success, its data type and value.

    In a Read Attributes Response a record whose ``status`` is not SUCCESS carries neither
    type nor value (ZCL 2.5.2.1); in a Report Attributes every record succeeds.
    """

    attribute_id: int
    data_type: DataType | None = None
    value: int | None = None
    status: int = ZclStatus.SUCCESS

    def __post_init__(self) -> None:
        check_uint(self.attribute_id, 16, "attribute_id")
        check_uint(self.status, 8, "status")
        if self.status == ZclStatus.SUCCESS:
            if not isinstance(self.data_type, DataType):
                raise ZclValueError("a successful attribute record needs a DataType")
            check_value(self.data_type, self.value, f"attribute 0x{self.attribute_id:04X}")
        elif self.data_type is not None or self.value is not None:
            raise ZclValueError("a failed attribute record carries no data type or value")

    def _encode_typed(self) -> bytes:
        assert self.data_type is not None and self.value is not None  # checked when built
        return bytes((self.data_type,)) + encode_value(self.data_type, self.value)

    @classmethod
    def _decode_typed(cls, cursor: Cursor, attribute_id: int) -> AttributeRecord:
        data_type = decode_data_type(cursor)
        return cls(attribute_id, data_type, decode_value(cursor, data_type))


@dataclass(frozen=True, slots=True)
class ReadAttributes:
    """Ask for the values of ``attribute_ids`` (ZCL 2.5.1)."""

    NAME: ClassVar[str] = "read_attributes"
    FRAME_TYPE: ClassVar[FrameType] = FrameType.GLOBAL
    COMMAND_ID: ClassVar[int] = GlobalCommand.READ_ATTRIBUTES
    DIRECTION: ClassVar[Direction | None] = None

    attribute_ids: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_tuple(self.attribute_ids, int, "attribute_ids")
        for attribute_id in self.attribute_ids:
            check_uint(attribute_id, 16, "attribute_id")

    def encode_payload(self) -> bytes:
        return b"".join(a.to_bytes(2, "little") for a in self.attribute_ids)

    @classmethod
    def decode_payload(cls, cursor: Cursor) -> ReadAttributes:
        ids: list[int] = []
        while not cursor.at_end():
            ids.append(cursor.u16("an attribute id"))
        return cls(tuple(ids))


@dataclass(frozen=True, slots=True)
class ReadAttributesResponse:
    """One record per attribute asked for, each with its own status (ZCL 2.5.2)."""

    NAME: ClassVar[str] = "read_attributes_response"
    FRAME_TYPE: ClassVar[FrameType] = FrameType.GLOBAL
    COMMAND_ID: ClassVar[int] = GlobalCommand.READ_ATTRIBUTES_RESPONSE
    DIRECTION: ClassVar[Direction | None] = None

    records: tuple[AttributeRecord, ...]

    def __post_init__(self) -> None:
        _check_tuple(self.records, AttributeRecord, "records")

    def encode_payload(self) -> bytes:
        out = bytearray()
        for record in self.records:
            out += record.attribute_id.to_bytes(2, "little") + bytes((record.status,))
            if record.status == ZclStatus.SUCCESS:
                out += record._encode_typed()
        return bytes(out)

    @classmethod
    def decode_payload(cls, cursor: Cursor) -> ReadAttributesResponse:
        records: list[AttributeRecord] = []
        while not cursor.at_end():
            attribute_id = cursor.u16("an attribute id")
            status = cursor.u8("an attribute status")
            if status == ZclStatus.SUCCESS:
                records.append(AttributeRecord._decode_typed(cursor, attribute_id))
            else:
                records.append(AttributeRecord(attribute_id, status=known_status(status)))
        return cls(tuple(records))


@dataclass(frozen=True, slots=True)
class ReportAttributes:
    """Attribute values the server reports unasked (ZCL 2.5.11): id, data type, value."""

    NAME: ClassVar[str] = "report_attributes"
    FRAME_TYPE: ClassVar[FrameType] = FrameType.GLOBAL
    COMMAND_ID: ClassVar[int] = GlobalCommand.REPORT_ATTRIBUTES
    DIRECTION: ClassVar[Direction | None] = None

    records: tuple[AttributeRecord, ...]

    def __post_init__(self) -> None:
        _check_tuple(self.records, AttributeRecord, "records")
        for record in self.records:
            if record.status != ZclStatus.SUCCESS:
                raise ZclValueError("a reported attribute has no status; give it a value")

    def encode_payload(self) -> bytes:
        return b"".join(
            r.attribute_id.to_bytes(2, "little") + r._encode_typed() for r in self.records
        )

    @classmethod
    def decode_payload(cls, cursor: Cursor) -> ReportAttributes:
        records: list[AttributeRecord] = []
        while not cursor.at_end():
            attribute_id = cursor.u16("an attribute id")
            records.append(AttributeRecord._decode_typed(cursor, attribute_id))
        return cls(tuple(records))


@dataclass(frozen=True, slots=True)
class DefaultResponse:
    """The answer to a command that has no response of its own, or failed (ZCL 2.5.12)."""

    NAME: ClassVar[str] = "default_response"
    FRAME_TYPE: ClassVar[FrameType] = FrameType.GLOBAL
    COMMAND_ID: ClassVar[int] = GlobalCommand.DEFAULT_RESPONSE
    DIRECTION: ClassVar[Direction | None] = None

    command_id: int
    status: int

    def __post_init__(self) -> None:
        check_uint(self.command_id, 8, "command_id")
        check_uint(self.status, 8, "status")

    def encode_payload(self) -> bytes:
        return bytes((self.command_id, self.status))

    @classmethod
    def decode_payload(cls, cursor: Cursor) -> DefaultResponse:
        command_id = cursor.u8("the command id")
        status = cursor.u8("the status code")
        cursor.expect_end("a Default Response")
        return cls(command_id, known_status(status))
