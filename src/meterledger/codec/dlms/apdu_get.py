"""GET-Request (0xC0) and GET-Response (0xC4) APDUs (Green Book 9.3.6, 9.5).

Import them from :mod:`meterledger.codec.dlms.apdu`. The common case, one attribute read by
a client, is the fast path: :func:`encode_get_request_normal` is one ``struct.pack`` and a
GET-Response-Normal is decoded straight from the caller's cursor, the Data with it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from meterledger.codec.dlms.apdu_common import (
    AttributeReference,
    CosemAttributeDescriptor,
    GetDataResult,
    ReadData,
    SelectiveAccess,
    check_attribute,
    check_block,
    check_invoke,
    check_result,
    check_tuple,
    put_access,
    put_count,
    put_descriptor,
    put_get_data_result,
    put_items,
    read_access,
    read_attribute,
    read_count,
    read_dar,
    read_get_data_result,
    read_items,
)
from meterledger.codec.dlms.axdr import encode_data
from meterledger.codec.dlms.codes import ApduTag, DataAccessResult, GetRequestType, GetResponseType
from meterledger.codec.dlms.cursor import Cursor, encode_length
from meterledger.codec.dlms.data import Data
from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError

__all__ = [
    "GetRequest",
    "GetRequestNext",
    "GetRequestNormal",
    "GetRequestWithList",
    "GetResponse",
    "GetResponseNormal",
    "GetResponseWithDatablock",
    "GetResponseWithList",
]


@dataclass(frozen=True, slots=True)
class GetRequestNormal:
    """Read one attribute, optionally through selective access."""

    invoke_id_and_priority: int
    descriptor: CosemAttributeDescriptor
    access: SelectiveAccess | None = None

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_attribute(self.descriptor, self.access)


@dataclass(frozen=True, slots=True)
class GetRequestNext:
    """Ask for the block after ``block_number`` (the last one received) of a long GET."""

    invoke_id_and_priority: int
    block_number: int

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_block(False, self.block_number, b"")


@dataclass(frozen=True, slots=True)
class GetRequestWithList:
    """Read several attributes at once (needs the multiple-references conformance bit)."""

    invoke_id_and_priority: int
    items: tuple[AttributeReference, ...]

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_tuple(self.items, AttributeReference, "items")


@dataclass(frozen=True, slots=True)
class GetResponseNormal:
    """The value read, or why it could not be."""

    invoke_id_and_priority: int
    result: GetDataResult

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_result(self.result)


@dataclass(frozen=True, slots=True)
class GetResponseWithDatablock:
    """One block of a long GET: ``raw_data`` is a piece of the encoded Data (the pieces
    joined decode to the value), or a Data-Access-Result that ends the transfer."""

    invoke_id_and_priority: int
    last_block: bool
    block_number: int
    raw_data: bytes | DataAccessResult

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        raw = self.raw_data if isinstance(self.raw_data, bytes) else b""
        check_block(self.last_block, self.block_number, raw)
        if not isinstance(self.raw_data, bytes | DataAccessResult):
            raise DlmsLocalError("raw_data must be bytes or a DataAccessResult")


@dataclass(frozen=True, slots=True)
class GetResponseWithList:
    """One result per item of a GetRequestWithList, in order."""

    invoke_id_and_priority: int
    results: tuple[GetDataResult, ...]

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_tuple(self.results, (Data, DataAccessResult), "results")


GetRequest = GetRequestNormal | GetRequestNext | GetRequestWithList
GetResponse = GetResponseNormal | GetResponseWithDatablock | GetResponseWithList

# --- encoding -----------------------------------------------------------------------------

_NORMAL_PLAIN = struct.Struct(">BBBH6sbB")  # C0 01 invoke class obis attribute 00
_HEAD = struct.Struct(">BBB")
_NEXT = struct.Struct(">BBBI")
_BLOCK_HEAD = struct.Struct(">BI")


def encode_get_request_normal(apdu: GetRequestNormal) -> bytes:
    d = apdu.descriptor
    if apdu.access is None:
        return _NORMAL_PLAIN.pack(
            ApduTag.GET_REQUEST,
            GetRequestType.NORMAL,
            apdu.invoke_id_and_priority,
            d.class_id,
            d.instance_id,
            d.attribute_id,
            0,
        )
    out = bytearray(
        _HEAD.pack(ApduTag.GET_REQUEST, GetRequestType.NORMAL, apdu.invoke_id_and_priority)
    )
    put_descriptor(out, d)
    put_access(out, apdu.access)
    return bytes(out)


def encode_get_request_next(apdu: GetRequestNext) -> bytes:
    return _NEXT.pack(
        ApduTag.GET_REQUEST, GetRequestType.NEXT, apdu.invoke_id_and_priority, apdu.block_number
    )


def encode_get_request_with_list(apdu: GetRequestWithList) -> bytes:
    out = bytearray(
        _HEAD.pack(ApduTag.GET_REQUEST, GetRequestType.WITH_LIST, apdu.invoke_id_and_priority)
    )
    put_items(out, apdu.items)
    return bytes(out)


def encode_get_response_normal(apdu: GetResponseNormal) -> bytes:
    head = _HEAD.pack(ApduTag.GET_RESPONSE, GetResponseType.NORMAL, apdu.invoke_id_and_priority)
    result = apdu.result
    if isinstance(result, DataAccessResult):
        return head + bytes((1, result))
    return head + b"\x00" + encode_data(result)


def encode_get_response_with_datablock(apdu: GetResponseWithDatablock) -> bytes:
    out = bytearray(
        _HEAD.pack(
            ApduTag.GET_RESPONSE, GetResponseType.WITH_DATABLOCK, apdu.invoke_id_and_priority
        )
    )
    out += _BLOCK_HEAD.pack(apdu.last_block, apdu.block_number)
    if isinstance(apdu.raw_data, DataAccessResult):
        out += bytes((1, apdu.raw_data))
    else:
        out.append(0)
        out += encode_length(len(apdu.raw_data))
        out += apdu.raw_data
    return bytes(out)


def encode_get_response_with_list(apdu: GetResponseWithList) -> bytes:
    out = bytearray(
        _HEAD.pack(ApduTag.GET_RESPONSE, GetResponseType.WITH_LIST, apdu.invoke_id_and_priority)
    )
    put_count(out, len(apdu.results))
    for result in apdu.results:
        put_get_data_result(out, result)
    return bytes(out)


# --- decoding (the cursor is past the APDU tag) ------------------------------------------


def decode_get_request(cur: Cursor, read_data: ReadData) -> GetRequest:
    choice = cur.u8()
    invoke = cur.u8()
    if choice == GetRequestType.NORMAL:
        descriptor = read_attribute(cur)
        return GetRequestNormal(invoke, descriptor, read_access(cur, read_data))
    if choice == GetRequestType.NEXT:
        return GetRequestNext(invoke, cur.u32())
    if choice == GetRequestType.WITH_LIST:
        items = read_items(cur, read_data, "get-request-with-list")
        return GetRequestWithList(invoke, items)
    raise DecodeError(f"GET-Request choice {choice} is not defined")


_new = object.__new__
_set = object.__setattr__


def _response_normal(invoke: int, result: GetDataResult) -> GetResponseNormal:
    # The hot path of every read: both fields are valid by construction (one octet, and a
    # Data or a DataAccessResult), so the message is made without checking them again.
    response: GetResponseNormal = _new(GetResponseNormal)
    _set(response, "invoke_id_and_priority", invoke)
    _set(response, "result", result)
    return response


def decode_get_response(cur: Cursor, read_data: ReadData) -> GetResponse:
    choice = cur.u8()
    invoke = cur.u8()
    if choice == GetResponseType.NORMAL:
        return _response_normal(invoke, read_get_data_result(cur, read_data))
    if choice == GetResponseType.WITH_DATABLOCK:
        last = cur.u8() != 0
        number = cur.u32()
        which = cur.u8()
        if which == 0:
            return GetResponseWithDatablock(invoke, last, number, cur.take(cur.length()))
        if which == 1:
            return GetResponseWithDatablock(invoke, last, number, read_dar(cur))
        raise DecodeError(f"DataBlock-G result choice {which} (must be 0 raw-data or 1 result)")
    if choice == GetResponseType.WITH_LIST:
        count = read_count(cur, "get-response-with-list")
        results = tuple(read_get_data_result(cur, read_data) for _ in range(count))
        return GetResponseWithList(invoke, results)
    raise DecodeError(f"GET-Response choice {choice} is not defined")
