"""ACTION-Request (0xC3) and ACTION-Response (0xC7) APDUs with their block-transfer
forms (Green Book 9.3.8, 9.5). Import them from :mod:`meterledger.codec.dlms.apdu`.

A pblock carries ``last_block``, ``block_number`` and ``raw_data`` (DataBlock-SA): a piece of
the encoded parameters or return data, numbered from 1.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from meterledger.codec.dlms.apdu_common import (
    CosemMethodDescriptor,
    GetDataResult,
    ReadData,
    check_block,
    check_invoke,
    check_method,
    check_result,
    check_tuple,
    put_block,
    put_count,
    put_descriptor,
    put_get_data_result,
    put_values,
    read_action_result,
    read_block,
    read_count,
    read_flag,
    read_get_data_result,
    read_method,
    read_values,
)
from meterledger.codec.dlms.axdr import encode_data
from meterledger.codec.dlms.codes import (
    ActionRequestType,
    ActionResponseType,
    ActionResult,
    ApduTag,
)
from meterledger.codec.dlms.cursor import Cursor
from meterledger.codec.dlms.data import Data
from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError

__all__ = [
    "ActionOutcome",
    "ActionRequest",
    "ActionRequestNextPblock",
    "ActionRequestNormal",
    "ActionRequestWithFirstPblock",
    "ActionRequestWithList",
    "ActionRequestWithListAndFirstPblock",
    "ActionRequestWithPblock",
    "ActionResponse",
    "ActionResponseNextPblock",
    "ActionResponseNormal",
    "ActionResponseWithList",
    "ActionResponseWithPblock",
]


# --- ACTION -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionRequestNormal:
    """Invoke one method; ``parameters`` is the method-invocation-parameters Data, if any."""

    invoke_id_and_priority: int
    descriptor: CosemMethodDescriptor
    parameters: Data | None = None

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_method(self.descriptor)
        if self.parameters is not None and not isinstance(self.parameters, Data):
            raise DlmsLocalError("parameters must be a Data")


@dataclass(frozen=True, slots=True)
class ActionRequestNextPblock:
    invoke_id_and_priority: int
    block_number: int

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_block(False, self.block_number, b"")


@dataclass(frozen=True, slots=True)
class ActionRequestWithList:
    """One parameters Data per method, in order."""

    invoke_id_and_priority: int
    descriptors: tuple[CosemMethodDescriptor, ...]
    parameters: tuple[Data, ...]

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_tuple(self.descriptors, CosemMethodDescriptor, "descriptors")
        check_tuple(self.parameters, Data, "parameters")
        if len(self.descriptors) != len(self.parameters):
            raise DlmsLocalError(
                f"{len(self.descriptors)} methods but {len(self.parameters)} parameters"
            )


@dataclass(frozen=True, slots=True)
class ActionRequestWithFirstPblock:
    invoke_id_and_priority: int
    descriptor: CosemMethodDescriptor
    last_block: bool
    block_number: int
    raw_data: bytes

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_method(self.descriptor)
        check_block(self.last_block, self.block_number, self.raw_data)


@dataclass(frozen=True, slots=True)
class ActionRequestWithListAndFirstPblock:
    invoke_id_and_priority: int
    descriptors: tuple[CosemMethodDescriptor, ...]
    last_block: bool
    block_number: int
    raw_data: bytes

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_tuple(self.descriptors, CosemMethodDescriptor, "descriptors")
        check_block(self.last_block, self.block_number, self.raw_data)


@dataclass(frozen=True, slots=True)
class ActionRequestWithPblock:
    invoke_id_and_priority: int
    last_block: bool
    block_number: int
    raw_data: bytes

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_block(self.last_block, self.block_number, self.raw_data)


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """``Action-Response-With-Optional-Data``: the result and any return parameters."""

    result: ActionResult
    return_data: GetDataResult | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.result, ActionResult):
            raise DlmsLocalError("result must be an ActionResult")
        if self.return_data is not None:
            check_result(self.return_data, "return_data")


@dataclass(frozen=True, slots=True)
class ActionResponseNormal:
    invoke_id_and_priority: int
    result: ActionResult
    return_data: GetDataResult | None = None

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        ActionOutcome(self.result, self.return_data)


@dataclass(frozen=True, slots=True)
class ActionResponseWithPblock:
    invoke_id_and_priority: int
    last_block: bool
    block_number: int
    raw_data: bytes

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_block(self.last_block, self.block_number, self.raw_data)


@dataclass(frozen=True, slots=True)
class ActionResponseWithList:
    invoke_id_and_priority: int
    results: tuple[ActionOutcome, ...]

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_tuple(self.results, ActionOutcome, "results")


@dataclass(frozen=True, slots=True)
class ActionResponseNextPblock:
    invoke_id_and_priority: int
    block_number: int

    def __post_init__(self) -> None:
        check_invoke(self.invoke_id_and_priority)
        check_block(False, self.block_number, b"")


ActionRequest = (
    ActionRequestNormal
    | ActionRequestNextPblock
    | ActionRequestWithList
    | ActionRequestWithFirstPblock
    | ActionRequestWithListAndFirstPblock
    | ActionRequestWithPblock
)
ActionResponse = (
    ActionResponseNormal
    | ActionResponseWithPblock
    | ActionResponseWithList
    | ActionResponseNextPblock
)

# --- encoding -----------------------------------------------------------------------------

_U32 = struct.Struct(">I")
_CHOICE: dict[type, int] = {
    ActionRequestNormal: ActionRequestType.NORMAL,
    ActionRequestNextPblock: ActionRequestType.NEXT_PBLOCK,
    ActionRequestWithList: ActionRequestType.WITH_LIST,
    ActionRequestWithFirstPblock: ActionRequestType.WITH_FIRST_PBLOCK,
    ActionRequestWithListAndFirstPblock: ActionRequestType.WITH_LIST_AND_FIRST_PBLOCK,
    ActionRequestWithPblock: ActionRequestType.WITH_PBLOCK,
    ActionResponseNormal: ActionResponseType.NORMAL,
    ActionResponseWithPblock: ActionResponseType.WITH_PBLOCK,
    ActionResponseWithList: ActionResponseType.WITH_LIST,
    ActionResponseNextPblock: ActionResponseType.NEXT_PBLOCK,
}
ACTION_TYPES = tuple(_CHOICE)


def _put_outcome(out: bytearray, result: ActionResult, data: GetDataResult | None) -> None:
    out.append(result)
    if data is None:
        out.append(0)
    else:
        out.append(1)
        put_get_data_result(out, data)


def encode_action(apdu: ActionRequest | ActionResponse) -> bytes:
    """The bytes of any ACTION request or response."""
    tag = ApduTag.ACTION_REQUEST if isinstance(apdu, ActionRequest) else ApduTag.ACTION_RESPONSE
    out = bytearray((tag, _CHOICE[type(apdu)], apdu.invoke_id_and_priority))
    a = apdu
    if isinstance(a, ActionRequestNormal):
        put_descriptor(out, a.descriptor)
        if a.parameters is None:
            out.append(0)
        else:
            out.append(1)
            out += encode_data(a.parameters)
    elif isinstance(a, ActionRequestWithList | ActionRequestWithListAndFirstPblock):
        put_count(out, len(a.descriptors))
        for descriptor in a.descriptors:
            put_descriptor(out, descriptor)
        if isinstance(a, ActionRequestWithList):
            put_values(out, a.parameters)
        else:
            put_block(out, a.last_block, a.block_number, a.raw_data)
    elif isinstance(a, ActionRequestWithFirstPblock):
        put_descriptor(out, a.descriptor)
        put_block(out, a.last_block, a.block_number, a.raw_data)
    elif isinstance(a, ActionRequestWithPblock | ActionResponseWithPblock):
        put_block(out, a.last_block, a.block_number, a.raw_data)
    elif isinstance(a, ActionRequestNextPblock | ActionResponseNextPblock):
        out += _U32.pack(a.block_number)
    elif isinstance(a, ActionResponseNormal):
        _put_outcome(out, a.result, a.return_data)
    else:
        put_count(out, len(a.results))
        for outcome in a.results:
            _put_outcome(out, outcome.result, outcome.return_data)
    return bytes(out)


# --- decoding (the cursor is past the APDU tag) ------------------------------------------


def decode_action_request(cur: Cursor, read_data: ReadData) -> ActionRequest:
    choice = cur.u8()
    invoke = cur.u8()
    if choice == ActionRequestType.NORMAL:
        descriptor = read_method(cur)
        parameters = read_data(cur) if read_flag(cur, "method-invocation-parameters") else None
        return ActionRequestNormal(invoke, descriptor, parameters)
    if choice == ActionRequestType.NEXT_PBLOCK:
        return ActionRequestNextPblock(invoke, cur.u32())
    if choice in (ActionRequestType.WITH_LIST, ActionRequestType.WITH_LIST_AND_FIRST_PBLOCK):
        count = read_count(cur, "action-request-with-list")
        descriptors = tuple(read_method(cur) for _ in range(count))
        if choice == ActionRequestType.WITH_LIST:
            values = read_values(cur, read_data, "method-invocation-parameters")
            return ActionRequestWithList(invoke, descriptors, values)
        return ActionRequestWithListAndFirstPblock(invoke, descriptors, *read_block(cur))
    if choice == ActionRequestType.WITH_FIRST_PBLOCK:
        descriptor = read_method(cur)
        return ActionRequestWithFirstPblock(invoke, descriptor, *read_block(cur))
    if choice == ActionRequestType.WITH_PBLOCK:
        return ActionRequestWithPblock(invoke, *read_block(cur))
    raise DecodeError(f"ACTION-Request choice {choice} is not defined")


def _read_outcome(cur: Cursor, read_data: ReadData) -> ActionOutcome:
    result = read_action_result(cur)
    data = read_get_data_result(cur, read_data) if read_flag(cur, "return-parameters") else None
    return ActionOutcome(result, data)


def decode_action_response(cur: Cursor, read_data: ReadData) -> ActionResponse:
    choice = cur.u8()
    invoke = cur.u8()
    if choice == ActionResponseType.NORMAL:
        outcome = _read_outcome(cur, read_data)
        return ActionResponseNormal(invoke, outcome.result, outcome.return_data)
    if choice == ActionResponseType.WITH_PBLOCK:
        return ActionResponseWithPblock(invoke, *read_block(cur))
    if choice == ActionResponseType.WITH_LIST:
        count = read_count(cur, "action-response-with-list")
        return ActionResponseWithList(
            invoke, tuple(_read_outcome(cur, read_data) for _ in range(count))
        )
    if choice == ActionResponseType.NEXT_PBLOCK:
        return ActionResponseNextPblock(invoke, cur.u32())
    raise DecodeError(f"ACTION-Response choice {choice} is not defined")
