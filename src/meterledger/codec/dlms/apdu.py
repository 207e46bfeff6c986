"""xDLMS APDUs of logical-name referencing — GET, SET, ACTION with their block transfer
forms, and exception-response — plus the ACSE ones, behind one pair of functions (Green
Book DLMS UA 1000-2 Ed. 9/10 = IEC 62056-5-3, clause 9.3 and the ``COSEMpdu`` ASN.1 of 9.5).

* :func:`encode` turns any APDU message into bytes;
* :func:`decode_apdu` turns one complete APDU (as the framing layer delimits it) into a
  message, and raises :class:`DecodeError` — never anything else — for bytes that are not
  one: truncated, trailing bytes, an undefined choice or code, a tag it does not know (the
  message names it; ciphered APDUs go through :mod:`meterledger.codec.dlms.security` first).

Messages are frozen dataclasses that check themselves when built (:class:`DlmsLocalError`);
results are :class:`~meterledger.codec.dlms.codes.DataAccessResult` or
:class:`~meterledger.codec.dlms.codes.ActionResult` values, turned into exceptions by
:func:`raise_for_result` where the caller wants that. The Data of a response is decoded with
the limits of ``data_decoder`` (an :class:`~meterledger.codec.dlms.axdr.DataDecoder`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meterledger.codec.dlms.acse import Aare, Aarq, AcseApdu, Rlre, Rlrq, decode_acse, encode_acse
from meterledger.codec.dlms.apdu_action import (
    ACTION_TYPES,
    ActionOutcome,
    ActionRequest,
    ActionRequestNextPblock,
    ActionRequestNormal,
    ActionRequestWithFirstPblock,
    ActionRequestWithList,
    ActionRequestWithListAndFirstPblock,
    ActionRequestWithPblock,
    ActionResponse,
    ActionResponseNextPblock,
    ActionResponseNormal,
    ActionResponseWithList,
    ActionResponseWithPblock,
    decode_action_request,
    decode_action_response,
    encode_action,
)
from meterledger.codec.dlms.apdu_common import (
    INVOKE_ID_MASK,
    PRIORITY_HIGH,
    SERVICE_CLASS_CONFIRMED,
    AttributeReference,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    GetDataResult,
    ReadData,
    SelectiveAccess,
    check_int,
    invoke_id_and_priority,
    invoke_id_of,
    is_confirmed,
    is_high_priority,
)
from meterledger.codec.dlms.apdu_get import (
    GetRequest,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponse,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    decode_get_request,
    decode_get_response,
    encode_get_request_next,
    encode_get_request_normal,
    encode_get_request_with_list,
    encode_get_response_normal,
    encode_get_response_with_datablock,
    encode_get_response_with_list,
)
from meterledger.codec.dlms.apdu_selective import (
    CLOCK_TIME,
    CaptureObjectDefinition,
    EntryDescriptor,
    RangeDescriptor,
    entry_access,
    parse_selective_access,
    range_access,
)
from meterledger.codec.dlms.apdu_set import (
    SET_TYPES,
    SetRequest,
    SetRequestNormal,
    SetRequestWithDatablock,
    SetRequestWithFirstDatablock,
    SetRequestWithList,
    SetRequestWithListAndFirstDatablock,
    SetResponse,
    SetResponseDatablock,
    SetResponseLastDatablock,
    SetResponseLastDatablockWithList,
    SetResponseNormal,
    SetResponseWithList,
    decode_set_request,
    decode_set_response,
    encode_set,
)
from meterledger.codec.dlms.axdr import DataDecoder, decode_data
from meterledger.codec.dlms.codes import (
    ActionResult,
    ApduTag,
    DataAccessResult,
    ExceptionServiceError,
    ExceptionStateError,
)
from meterledger.codec.dlms.cursor import Cursor, NeedData
from meterledger.codec.dlms.data import Data
from meterledger.codec.dlms.errors import (
    ActionError,
    DataAccessError,
    DecodeError,
    DlmsLocalError,
    ExceptionResponseError,
)

__all__ = [
    "CLOCK_TIME",
    "INVOKE_ID_MASK",
    "PRIORITY_HIGH",
    "SERVICE_CLASS_CONFIRMED",
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
    "Apdu",
    "AttributeReference",
    "CaptureObjectDefinition",
    "CosemAttributeDescriptor",
    "CosemMethodDescriptor",
    "EntryDescriptor",
    "ExceptionResponse",
    "GetDataResult",
    "GetRequest",
    "GetRequestNext",
    "GetRequestNormal",
    "GetRequestWithList",
    "GetResponse",
    "GetResponseNormal",
    "GetResponseWithDatablock",
    "GetResponseWithList",
    "RangeDescriptor",
    "SelectiveAccess",
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
    "decode_apdu",
    "encode",
    "entry_access",
    "expect_data",
    "invoke_id_and_priority",
    "invoke_id_of",
    "is_confirmed",
    "is_high_priority",
    "parse_selective_access",
    "raise_for_result",
    "range_access",
]


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    """The server could not even try the request (Green Book 9.5, ``ExceptionResponse``). With
    ``invocation-counter-error`` the server says which ``invocation_counter`` it expects."""

    state_error: ExceptionStateError
    service_error: ExceptionServiceError
    invocation_counter: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.state_error, ExceptionStateError):
            raise DlmsLocalError("state_error must be an ExceptionStateError")
        if not isinstance(self.service_error, ExceptionServiceError):
            raise DlmsLocalError("service_error must be an ExceptionServiceError")
        # invocation-counter-error [6] IMPLICIT Unsigned32: the counter is the alternative's
        # value, so it is there exactly when that is the error.
        if self.service_error is ExceptionServiceError.INVOCATION_COUNTER_ERROR:
            check_int("invocation_counter", self.invocation_counter, 0, 0xFFFFFFFF)
        elif self.invocation_counter is not None:
            raise DlmsLocalError("only invocation-counter-error carries a counter")

    def describe(self) -> str:
        text = f"exception-response: {self.state_error.standard_name}, "
        text += self.service_error.standard_name
        if self.invocation_counter is not None:
            text += f" (the server expects invocation counter {self.invocation_counter})"
        return text


Apdu = (
    GetRequest
    | GetResponse
    | SetRequest
    | SetResponse
    | ActionRequest
    | ActionResponse
    | ExceptionResponse
    | AcseApdu
)

_STATE = {int(m): m for m in ExceptionStateError}
_SERVICE = {int(m): m for m in ExceptionServiceError}


def _encode_exception(apdu: ExceptionResponse) -> bytes:
    head = bytes((ApduTag.EXCEPTION_RESPONSE, apdu.state_error, apdu.service_error))
    if apdu.invocation_counter is None:
        return head
    return head + struct.pack(">I", apdu.invocation_counter)


def _decode_exception(cur: Cursor, read_data: ReadData) -> ExceptionResponse:
    state, service = cur.u8(), cur.u8()
    state_error, service_error = _STATE.get(state), _SERVICE.get(service)
    if state_error is None or service_error is None:
        raise DecodeError(f"exception-response with undefined codes {state}, {service}")
    counter = None
    if service_error is ExceptionServiceError.INVOCATION_COUNTER_ERROR:
        counter = cur.u32()
    return ExceptionResponse(state_error, service_error, counter)


_ENCODERS: dict[type, Callable[[Any], bytes]] = {
    GetRequestNormal: encode_get_request_normal,
    GetRequestNext: encode_get_request_next,
    GetRequestWithList: encode_get_request_with_list,
    GetResponseNormal: encode_get_response_normal,
    GetResponseWithDatablock: encode_get_response_with_datablock,
    GetResponseWithList: encode_get_response_with_list,
    ExceptionResponse: _encode_exception,
    Aarq: encode_acse,
    Aare: encode_acse,
    Rlrq: encode_acse,
    Rlre: encode_acse,
    **dict.fromkeys(SET_TYPES, encode_set),
    **dict.fromkeys(ACTION_TYPES, encode_action),
}

_DECODERS: dict[int, Callable[[Cursor, ReadData], Apdu]] = {
    ApduTag.GET_REQUEST: decode_get_request,
    ApduTag.GET_RESPONSE: decode_get_response,
    ApduTag.SET_REQUEST: decode_set_request,
    ApduTag.SET_RESPONSE: decode_set_response,
    ApduTag.ACTION_REQUEST: decode_action_request,
    ApduTag.ACTION_RESPONSE: decode_action_response,
    ApduTag.EXCEPTION_RESPONSE: _decode_exception,
}
_ACSE_TAGS = frozenset((ApduTag.AARQ, ApduTag.AARE, ApduTag.RLRQ, ApduTag.RLRE))
_KNOWN_TAGS = {int(m): m for m in ApduTag}


def encode(apdu: Apdu) -> bytes:
    """The bytes of one APDU."""
    encoder = _ENCODERS.get(type(apdu))
    if encoder is None:
        raise DlmsLocalError(f"not an APDU this codec encodes: {type(apdu).__name__}")
    return encoder(apdu)


def _unknown(tag: int) -> str:
    known = _KNOWN_TAGS.get(tag)
    if known is None:
        return f"unknown APDU tag 0x{tag:02X}"
    if known.name.startswith(("GLO_", "DED_", "GENERAL_")):
        return f"{known.standard_name} (0x{tag:02X}) is ciphered: decipher it, then decode"
    return f"{known.standard_name} APDU (0x{tag:02X}) is not supported"


def decode_apdu(
    data: bytes | bytearray | memoryview, *, data_decoder: DataDecoder | None = None
) -> Apdu:
    """One complete APDU: the message, or :class:`DecodeError`."""
    if type(data) is not bytes:
        data = bytes(data)  # the A-XDR decoder reads bytes without copying them again
    if not data:
        raise DecodeError("empty APDU")
    tag = data[0]
    if tag in _ACSE_TAGS:
        return decode_acse(data)
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise DecodeError(_unknown(tag))
    cur = Cursor(data, 1)
    try:
        apdu = decoder(cur, decode_data if data_decoder is None else data_decoder.decode)
    except NeedData:
        raise DecodeError(f"{_KNOWN_TAGS[tag].standard_name} APDU is truncated") from None
    except DlmsLocalError as exc:  # a decoded value a message refuses
        raise DecodeError(f"{_KNOWN_TAGS[tag].standard_name}: {exc}") from exc
    if cur.pos != cur.end:
        raise DecodeError(f"{cur.end - cur.pos} bytes after the {type(apdu).__name__}")
    return apdu


def raise_for_result(result: object, what: str = "") -> None:
    """Raise for a result that is a failure: a DataAccessResult other than success
    (:class:`DataAccessError` with the standard's name), an ActionResult other than
    success (:class:`ActionError`) or an :class:`ExceptionResponse`
    (:class:`ExceptionResponseError`). A Data, ``None`` or success returns."""
    if isinstance(result, DataAccessResult):
        if result is not DataAccessResult.SUCCESS:
            raise DataAccessError(int(result), result.standard_name, what)
    elif isinstance(result, ActionResult):
        if result is not ActionResult.SUCCESS:
            raise ActionError(int(result), result.standard_name)
    elif isinstance(result, ExceptionResponse):
        raise ExceptionResponseError(
            int(result.state_error), int(result.service_error), result.describe()
        )


def expect_data(result: GetDataResult, what: str = "") -> Data:
    """The Data of a Get-Data-Result, or the DataAccessError it stands for."""
    if isinstance(result, Data):
        return result
    raise_for_result(result, what)
    raise DataAccessError(int(result), result.standard_name, f"{what} (success without data)")
