"""SET-Request (0xC1) and SET-Response (0xC5) APDUs with their block-transfer forms
(Green Book 9.3.7, 9.5). Import them from :mod:`meterledger.codec.dlms.apdu`.

A datablock carries ``last_block``, ``block_number`` and ``raw_data`` (DataBlock-SA): a piece
of the encoded value(s), numbered from 1.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from meterledger.codec.dlms.apdu_common import (
    AttributeReference,
    CosemAttributeDescriptor,
    ReadData,
    SelectiveAccess,
    check_attribute,
    check_block,
    check_dar,
    check_invoke,
    check_tuple,
    put_access,
    put_block,
    put_count,
    put_descriptor,
    put_items,
    put_values,
    read_access,
    read_attribute,
    read_block,
    read_count,
    read_dar,
    read_items,
    read_values,
)
from meterledger.codec.dlms.axdr import encode_data
from meterledger.codec.dlms.codes import (
    ApduTag,
    DataAccessResult,
    SetRequestType,
    SetResponseType,
)
from meterledger.codec.dlms.cursor import Cursor
from meterledger.codec.dlms.data import Data
from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError

__all__ = [
    "SetRequest",
    "SetRequestNormal",
    "SetRequestWithDatablock",
    "SetRequestWithFirstDatablock",
    "SetRequestWithList",
    "SetRequestWithListAndFirstDatablock",
    "SetResponse",
    "SetResponseDatablock",
    "SetResponseLastDatablock",
    "SetResponseLastDatablockWithList",
    "SetResponseNormal",
    "SetResponseWithList",
]


# --- SET --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetRequestNormal:
    invoke_id_and_priority: int
    descriptor: CosemAttributeDescriptor
    value: Data
    access: SelectiveAccess | None = None

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_attribute(self.descriptor, self.access)
        if not isinstance(self.value, Data):
            raise DlmsLocalError("value must be a Data")


@dataclass(frozen=True, slots=True)
class SetRequestWithFirstDatablock:
    invoke_id_and_priority: int
    descriptor: CosemAttributeDescriptor
    last_block: bool
    block_number: int
    raw_data: bytes
    access: SelectiveAccess | None = None

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_attribute(self.descriptor, self.access)
        check_block(self.last_block, self.block_number, self.raw_data)


@dataclass(frozen=True, slots=True)
class SetRequestWithDatablock:
    invoke_id_and_priority: int
    last_block: bool
    block_number: int
    raw_data: bytes

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_block(self.last_block, self.block_number, self.raw_data)


@dataclass(frozen=True, slots=True)
class SetRequestWithList:
    """One value per item, in order."""

    invoke_id_and_priority: int
    items: tuple[AttributeReference, ...]
    values: tuple[Data, ...]

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_tuple(self.items, AttributeReference, "items")
        check_tuple(self.values, Data, "values")
        if len(self.items) != len(self.values):
            raise DlmsLocalError(f"{len(self.items)} attributes but {len(self.values)} values")


@dataclass(frozen=True, slots=True)
class SetRequestWithListAndFirstDatablock:
    invoke_id_and_priority: int
    items: tuple[AttributeReference, ...]
    last_block: bool
    block_number: int
    raw_data: bytes

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_tuple(self.items, AttributeReference, "items")
        check_block(self.last_block, self.block_number, self.raw_data)


@dataclass(frozen=True, slots=True)
class SetResponseNormal:
    invoke_id_and_priority: int
    result: DataAccessResult

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_dar(self.result)


@dataclass(frozen=True, slots=True)
class SetResponseDatablock:
    """The server took block ``block_number`` and waits for the next."""

    invoke_id_and_priority: int
    block_number: int

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_block(False, self.block_number, b"")


@dataclass(frozen=True, slots=True)
class SetResponseLastDatablock:
    invoke_id_and_priority: int
    result: DataAccessResult
    block_number: int

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_dar(self.result)
        check_block(False, self.block_number, b"")


@dataclass(frozen=True, slots=True)
class SetResponseLastDatablockWithList:
    invoke_id_and_priority: int
    results: tuple[DataAccessResult, ...]
    block_number: int

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_tuple(self.results, DataAccessResult, "results")
        check_block(False, self.block_number, b"")


@dataclass(frozen=True, slots=True)
class SetResponseWithList:
    invoke_id_and_priority: int
    results: tuple[DataAccessResult, ...]

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_tuple(self.results, DataAccessResult, "results")


SetRequest = (
    SetRequestNormal
    | SetRequestWithFirstDatablock
    | SetRequestWithDatablock
    | SetRequestWithList
    | SetRequestWithListAndFirstDatablock
)
SetResponse = (
    SetResponseNormal
    | SetResponseDatablock
    | SetResponseLastDatablock
    | SetResponseLastDatablockWithList
    | SetResponseWithList
)

# --- encoding -----------------------------------------------------------------------------

_U32 = struct.Struct(">I")
_CHOICE: dict[type, int] = {
    SetRequestNormal: SetRequestType.NORMAL,
    SetRequestWithFirstDatablock: SetRequestType.WITH_FIRST_DATABLOCK,
    SetRequestWithDatablock: SetRequestType.WITH_DATABLOCK,
    SetRequestWithList: SetRequestType.WITH_LIST,
    SetRequestWithListAndFirstDatablock: SetRequestType.WITH_LIST_AND_FIRST_DATABLOCK,
    SetResponseNormal: SetResponseType.NORMAL,
    SetResponseDatablock: SetResponseType.DATABLOCK,
    SetResponseLastDatablock: SetResponseType.LAST_DATABLOCK,
    SetResponseLastDatablockWithList: SetResponseType.LAST_DATABLOCK_WITH_LIST,
    SetResponseWithList: SetResponseType.WITH_LIST,
}
SET_TYPES = tuple(_CHOICE)


def encode_set(apdu: SetRequest | SetResponse) -> bytes:
    """The bytes of any SET request or response."""
    tag = ApduTag.SET_REQUEST if isinstance(apdu, SetRequest) else ApduTag.SET_RESPONSE
    out = bytearray((tag, _CHOICE[type(apdu)], apdu.invoke_id_and_priority))
    a = apdu
    if isinstance(a, SetRequestNormal | SetRequestWithFirstDatablock):
        put_descriptor(out, a.descriptor)
        put_access(out, a.access)
        if isinstance(a, SetRequestNormal):
            out += encode_data(a.value)
        else:
            put_block(out, a.last_block, a.block_number, a.raw_data)
    elif isinstance(a, SetRequestWithList | SetRequestWithListAndFirstDatablock):
        put_items(out, a.items)
        if isinstance(a, SetRequestWithList):
            put_values(out, a.values)
        else:
            put_block(out, a.last_block, a.block_number, a.raw_data)
    elif isinstance(a, SetRequestWithDatablock):
        put_block(out, a.last_block, a.block_number, a.raw_data)
    elif isinstance(a, SetResponseNormal):
        out.append(a.result)
    elif isinstance(a, SetResponseDatablock):
        out += _U32.pack(a.block_number)
    elif isinstance(a, SetResponseLastDatablock):
        out.append(a.result)
        out += _U32.pack(a.block_number)
    else:
        put_count(out, len(a.results))
        out += bytes(a.results)
        if isinstance(a, SetResponseLastDatablockWithList):
            out += _U32.pack(a.block_number)
    return bytes(out)


# --- decoding (the cursor is past the APDU tag) ------------------------------------------


def _read_dars(cur: Cursor, what: str) -> tuple[DataAccessResult, ...]:
    return tuple(read_dar(cur) for _ in range(read_count(cur, what)))


def decode_set_request(cur: Cursor, read_data: ReadData) -> SetRequest:
    choice = cur.u8()
    invoke = cur.u8()
    if choice == SetRequestType.NORMAL:
        descriptor = read_attribute(cur)
        access = read_access(cur, read_data)
        return SetRequestNormal(invoke, descriptor, read_data(cur), access)
    if choice == SetRequestType.WITH_FIRST_DATABLOCK:
        descriptor = read_attribute(cur)
        access = read_access(cur, read_data)
        return SetRequestWithFirstDatablock(invoke, descriptor, *read_block(cur), access)
    if choice == SetRequestType.WITH_DATABLOCK:
        return SetRequestWithDatablock(invoke, *read_block(cur))
    if choice == SetRequestType.WITH_LIST:
        items = read_items(cur, read_data, "set-request-with-list")
        return SetRequestWithList(invoke, items, read_values(cur, read_data, "value-list"))
    if choice == SetRequestType.WITH_LIST_AND_FIRST_DATABLOCK:
        items = read_items(cur, read_data, "set-request-with-list-and-first-datablock")
        return SetRequestWithListAndFirstDatablock(invoke, items, *read_block(cur))
    raise DecodeError(f"SET-Request choice {choice} is not defined")


def decode_set_response(cur: Cursor, read_data: ReadData) -> SetResponse:
    choice = cur.u8()
    invoke = cur.u8()
    if choice == SetResponseType.NORMAL:
        return SetResponseNormal(invoke, read_dar(cur))
    if choice == SetResponseType.DATABLOCK:
        return SetResponseDatablock(invoke, cur.u32())
    if choice == SetResponseType.LAST_DATABLOCK:
        result = read_dar(cur)
        return SetResponseLastDatablock(invoke, result, cur.u32())
    if choice == SetResponseType.LAST_DATABLOCK_WITH_LIST:
        results = _read_dars(cur, "set-response-last-datablock-with-list")
        return SetResponseLastDatablockWithList(invoke, results, cur.u32())
    if choice == SetResponseType.WITH_LIST:
        return SetResponseWithList(invoke, _read_dars(cur, "set-response-with-list"))
    raise DecodeError(f"SET-Response choice {choice} is not defined")
