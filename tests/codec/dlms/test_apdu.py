"""xDLMS service APDUs: published GET/ACTION encodings, SET, block transfer and
exception-response built by hand from the Green Book layout (9.5, ``COSEMpdu``), invoke ids,
results turned into exceptions, selective access by range and entry, strict decoding.

Sources of the golden vectors (bytes are facts; no code is taken from anywhere):

* GB — the Green Book's clock read, ``C0 01 C1 00 08 00 00 01 00 00 FF 02 00``.
* HDLC — a clock GET-Response captured from a meter, in the comments of a public Gurux-based
  Arduino client (``7ea021...c401c100090c07e0010906152638ff800000...7e``).
* U9N — u9n/dlms-cosem tests/test_xdlms/test_get.py and test_action.py (frame counter read,
  get-next, get-with-list, HLS reply_to_HLS_authentication ACTION and its response).
* GO — a Profile Generic read by range and its response, in the GetRequest tests of a public
  Go DLMS client (``C001C100070100630100FF0201010204...``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meterledger.codec.dlms.apdu import (
    CLOCK_TIME,
    ActionOutcome,
    ActionRequestNormal,
    ActionResponseNormal,
    ActionResponseWithList,
    Apdu,
    AttributeReference,
    CaptureObjectDefinition,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    EntryDescriptor,
    ExceptionResponse,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    RangeDescriptor,
    SelectiveAccess,
    SetRequestNormal,
    SetRequestWithDatablock,
    SetRequestWithFirstDatablock,
    SetResponseDatablock,
    SetResponseLastDatablock,
    SetResponseNormal,
    decode_apdu,
    encode,
    entry_access,
    expect_data,
    invoke_id_and_priority,
    invoke_id_of,
    is_confirmed,
    is_high_priority,
    parse_selective_access,
    raise_for_result,
    range_access,
)
from meterledger.codec.dlms.axdr import DataDecoder
from meterledger.codec.dlms.codes import (
    ActionResult,
    ApduTag,
    DataAccessResult,
    ExceptionServiceError,
    ExceptionStateError,
)
from meterledger.codec.dlms.data import CosemDate, CosemDateTime, CosemTime, Data, DataType
from meterledger.codec.dlms.errors import (
    ActionError,
    DataAccessError,
    DecodeError,
    DlmsLocalError,
    ExceptionResponseError,
)

H = bytes.fromhex
CLOCK = bytes((0, 0, 1, 0, 0, 255))
CLOCK_TIME_ATTRIBUTE = CosemAttributeDescriptor(8, CLOCK, 2)
LOAD_PROFILE = bytes((1, 0, 99, 1, 0, 255))


def test_get_request_normal_for_the_clock_is_the_green_book_example() -> None:  # GB
    request = GetRequestNormal(0xC1, CLOCK_TIME_ATTRIBUTE)
    assert encode(request) == H("C001C100080000010000FF0200")
    assert decode_apdu(H("C001C100080000010000FF0200")) == request


def test_get_response_normal_with_the_clock_captured_from_a_meter() -> None:  # HDLC
    encoded = H("C401C100090C07E0010906152638FF800000")
    response = decode_apdu(encoded)
    assert isinstance(response, GetResponseNormal)
    assert response.invoke_id_and_priority == 0xC1
    value = expect_data(response.result)
    assert value.type is DataType.OCTET_STRING
    moment = value.to_cosem_datetime()
    assert moment.date == CosemDate(2016, 1, 9, 6)
    assert moment.time == CosemTime(21, 38, 56, None)
    assert moment.deviation is None and moment.status == 0
    assert encode(response) == encoded


@pytest.mark.parametrize(
    ("encoded", "apdu"),
    [
        (  # U9N: the frame counter 0.0.43.1.0.255, class 1, attribute 2
            H("C001C10001 00002B0100FF 0200"),
            GetRequestNormal(0xC1, CosemAttributeDescriptor(1, H("00002B0100FF"), 2)),
        ),
        (H("C002C100000001"), GetRequestNext(0xC1, 1)),  # U9N
        (  # U9N: two attributes in one request
            H("C003C102 0001 00002A0000FF 02 00 0008 0000010000FF 02 00"),
            GetRequestWithList(
                0xC1,
                (
                    AttributeReference(CosemAttributeDescriptor(1, H("00002A0000FF"), 2)),
                    AttributeReference(CLOCK_TIME_ATTRIBUTE),
                ),
            ),
        ),
        (H("C401C100 06 00001391"), GetResponseNormal(0xC1, Data.uint32(5009))),  # U9N
        (  # U9N: hardware-fault instead of data
            H("C401C10101"),
            GetResponseNormal(0xC1, DataAccessResult.HARDWARE_FAULT),
        ),
        (  # U9N: reply_to_HLS_authentication (Association LN 0.0.40.0.0.255, method 1)
            H("C301C0000F0000280000FF010109111000001A90E6D2221FA2FD85EED61ACC22"),
            ActionRequestNormal(
                0xC0,
                CosemMethodDescriptor(15, H("0000280000FF"), 1),
                Data.octets(H("1000001A90E6D2221FA2FD85EED61ACC22")),
            ),
        ),
        (  # U9N: the same method without parameters
            H("C301C0000F0000280000FF0100"),
            ActionRequestNormal(0xC0, CosemMethodDescriptor(15, H("0000280000FF"), 1)),
        ),
        (H("C701C00000"), ActionResponseNormal(0xC0, ActionResult.SUCCESS)),  # U9N
        (  # U9N: success with the server's f(CtoS)
            H("C701C000010009111000001AFDE8857B728A3499106AA665D1"),
            ActionResponseNormal(
                0xC0,
                ActionResult.SUCCESS,
                Data.octets(H("1000001AFDE8857B728A3499106AA665D1")),
            ),
        ),
        (  # U9N: return parameters that are a Data-Access-Result (other-reason)
            H("C701C0000101FA"),
            ActionResponseNormal(0xC0, ActionResult.SUCCESS, DataAccessResult.OTHER_REASON),
        ),
    ],
)
def test_published_get_and_action_vectors(encoded: bytes, apdu: Apdu) -> None:
    assert decode_apdu(encoded) == apdu
    assert encode(apdu) == encoded


def test_get_by_range_is_the_published_profile_read() -> None:  # GO
    encoded = H(
        "C001C100070100630100FF02"
        "01"  # access-selection present, selector 1
        "01"
        "0204"  # range_descriptor: structure of 4
        "020412000809060000010000FF0F02120000"  # the clock's time attribute
        "090C07E40101030A000000000000"  # 2020-01-01 Wed 10:00:00, deviation 0, status 0
        "090C07E40101030B000000000000"  # to 11:00:00
        "0100"  # selected_values: all columns
    )
    start = datetime(2020, 1, 1, 10, tzinfo=UTC)
    end = datetime(2020, 1, 1, 11, tzinfo=UTC)
    request = GetRequestNormal(
        0xC1, CosemAttributeDescriptor(7, LOAD_PROFILE, 2), range_access(start, end)
    )
    assert encode(request) == encoded
    decoded = decode_apdu(encoded)
    assert decoded == request
    assert isinstance(decoded, GetRequestNormal) and decoded.access is not None
    descriptor = parse_selective_access(decoded.access)
    assert isinstance(descriptor, RangeDescriptor)
    assert descriptor.restricting_object == CLOCK_TIME
    assert descriptor.from_time().utc() == start and descriptor.to_time().utc() == end
    assert descriptor.selected_values == ()
    # ... and its answer: an array of two double-long-unsigned
    answer = decode_apdu(H("C401C100010206000000010600000002"))
    assert answer == GetResponseNormal(0xC1, Data.array(Data.uint32(1), Data.uint32(2)))


def test_range_access_with_selected_columns_and_other_time_forms() -> None:
    energy = CaptureObjectDefinition(3, bytes((1, 0, 1, 8, 0, 255)), 2)
    start = CosemDateTime(CosemDate(2024, 3, 1, None), CosemTime(0, 0, 0, 0), None, None)
    access = range_access(start, Data.null(), selected_values=(CLOCK_TIME, energy))
    descriptor = parse_selective_access(access)
    assert isinstance(descriptor, RangeDescriptor)
    assert descriptor.from_time() == start
    assert descriptor.to_value == Data.null()
    assert descriptor.selected_values == (CLOCK_TIME, energy)
    assert descriptor.to_access() == access


def test_entry_access_round_trips_and_is_laid_out_as_the_blue_book_says() -> None:
    access = entry_access(1, 96)
    assert access == SelectiveAccess(
        2,
        Data.structure(
            Data(DataType.DOUBLE_LONG_UNSIGNED, 1),
            Data(DataType.DOUBLE_LONG_UNSIGNED, 96),
            Data(DataType.LONG_UNSIGNED, 1),
            Data(DataType.LONG_UNSIGNED, 0),
        ),
    )
    assert parse_selective_access(access) == EntryDescriptor(1, 96)
    request = GetRequestNormal(0xC1, CosemAttributeDescriptor(7, LOAD_PROFILE, 2), access)
    assert encode(request).endswith(H("0102 0204 0600000001 0600000060 120001 120000"))


@pytest.mark.parametrize(
    "parameters",
    [
        Data.uint8(1),  # not a structure
        Data.structure(CLOCK_TIME.to_data(), Data.null(), Data.null()),  # three elements
        Data.structure(Data.uint8(1), Data.null(), Data.null(), Data.array()),  # bad object
        Data.structure(  # logical name of 5 octets
            Data.structure(Data.uint16(8), Data.octets(b"\x00" * 5), Data.int8(2), Data.uint16(0)),
            Data.null(),
            Data.null(),
            Data.array(),
        ),
        Data.structure(CLOCK_TIME.to_data(), Data.null(), Data.null(), Data.array(Data.uint8(1))),
    ],
)
def test_malformed_range_descriptor_is_a_decode_error(parameters: Data) -> None:
    with pytest.raises(DecodeError):
        parse_selective_access(SelectiveAccess(1, parameters))


def test_unknown_selector_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="selector 3"):
        parse_selective_access(SelectiveAccess(3, Data.null()))


def test_set_request_and_responses_built_from_the_layout() -> None:
    # C1 01 invoke, class 8, 0.0.1.0.0.255, attribute 2, no selection, then the Data
    moment = CosemDateTime(CosemDate(2024, 6, 15, 6), CosemTime(20, 23, 45, 0), -120, 0x80)
    request = SetRequestNormal(0xC1, CLOCK_TIME_ATTRIBUTE, Data.date_time_octets(moment))
    encoded = H("C101C100080000010000FF0200090C07E8060F0614172D00FF8880")
    assert encode(request) == encoded
    assert decode_apdu(encoded) == request
    assert encode(SetResponseNormal(0xC1, DataAccessResult.SUCCESS)) == H("C501C100")
    assert decode_apdu(H("C501C103")) == SetResponseNormal(0xC1, DataAccessResult.READ_WRITE_DENIED)


def test_set_with_datablocks() -> None:
    first = SetRequestWithFirstDatablock(0xC1, CLOCK_TIME_ATTRIBUTE, False, 1, H("0102"))
    assert encode(first) == H("C102C1 0008 0000010000FF 02 00 00 00000001 02 0102")
    nxt = SetRequestWithDatablock(0xC1, True, 2, H("0303"))
    assert encode(nxt) == H("C103C10100000002020303")
    assert encode(SetResponseDatablock(0xC1, 1)) == H("C502C100000001")
    assert encode(SetResponseLastDatablock(0xC1, DataAccessResult.SUCCESS, 2)) == H(
        "C503C10000000002"
    )
    for apdu in (first, nxt):
        assert decode_apdu(encode(apdu)) == apdu


def test_get_response_with_datablock_carries_raw_bytes_or_a_result() -> None:
    block = GetResponseWithDatablock(0xC1, False, 1, H("0102030405"))
    assert encode(block) == H("C402C1 00 00000001 00 05 0102030405")
    aborted = GetResponseWithDatablock(0xC1, True, 3, DataAccessResult.LONG_GET_ABORTED)
    assert encode(aborted) == H("C402C1 01 00000003 01 0F")
    for apdu in (block, aborted):
        assert decode_apdu(encode(apdu)) == apdu


def test_get_response_with_list_mixes_data_and_results() -> None:
    response = GetResponseWithList(0xC1, (Data.uint16(7), DataAccessResult.OBJECT_UNDEFINED))
    assert encode(response) == H("C403C102 00 120007 01 04")
    assert decode_apdu(encode(response)) == response


def test_action_response_with_list() -> None:
    response = ActionResponseWithList(
        0xC2,
        (ActionOutcome(ActionResult.SUCCESS), ActionOutcome(ActionResult.TYPE_UNMATCHED)),
    )
    assert encode(response) == H("C703C2 02 0000 0C00")
    assert decode_apdu(encode(response)) == response


@pytest.mark.parametrize(
    ("encoded", "apdu"),
    [
        (
            H("D80102"),
            ExceptionResponse(
                ExceptionStateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.SERVICE_NOT_SUPPORTED
            ),
        ),
        (
            H("D8020600000005"),
            ExceptionResponse(
                ExceptionStateError.SERVICE_UNKNOWN,
                ExceptionServiceError.INVOCATION_COUNTER_ERROR,
                5,
            ),
        ),
    ],
)
def test_exception_response(encoded: bytes, apdu: ExceptionResponse) -> None:
    assert encode(apdu) == encoded
    assert decode_apdu(encoded) == apdu


def test_invocation_counter_error_always_carries_the_counter() -> None:
    with pytest.raises(DecodeError, match="truncated"):
        decode_apdu(H("D80106"))
    with pytest.raises(DecodeError, match="truncated"):
        decode_apdu(H("D8010600"))
    with pytest.raises(DlmsLocalError):
        ExceptionResponse(
            ExceptionStateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.INVOCATION_COUNTER_ERROR
        )


def test_raise_for_result_uses_the_standard_names() -> None:
    raise_for_result(DataAccessResult.SUCCESS)
    raise_for_result(ActionResult.SUCCESS)
    raise_for_result(Data.uint8(1))
    with pytest.raises(DataAccessError, match="read-write-denied") as caught:
        raise_for_result(DataAccessResult.READ_WRITE_DENIED, "clock time")
    assert caught.value.result == 3 and caught.value.name == "read-write-denied"
    assert "clock time" in str(caught.value)
    with pytest.raises(ActionError, match="object-undefined"):
        raise_for_result(ActionResult.OBJECT_UNDEFINED)
    exception = ExceptionResponse(
        ExceptionStateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.INVOCATION_COUNTER_ERROR, 9
    )
    with pytest.raises(ExceptionResponseError, match="invocation-counter-error") as raised:
        raise_for_result(exception)
    assert raised.value.state_error == 1 and raised.value.service_error == 6
    assert "expects invocation counter 9" in str(raised.value)


def test_expect_data_returns_the_value_or_raises() -> None:
    assert expect_data(Data.uint8(3)) == Data.uint8(3)
    with pytest.raises(DataAccessError, match="object-unavailable"):
        expect_data(DataAccessResult.OBJECT_UNAVAILABLE)
    with pytest.raises(DataAccessError, match="success without data"):
        expect_data(DataAccessResult.SUCCESS)


def test_invoke_id_and_priority_byte() -> None:
    assert invoke_id_and_priority(1) == 0xC1
    assert invoke_id_and_priority(0, high=False) == 0x40
    assert invoke_id_and_priority(15, confirmed=False, high=False) == 0x0F
    assert invoke_id_of(0xC7) == 7
    assert is_confirmed(0xC1) and not is_confirmed(0x81)
    assert is_high_priority(0x81) and not is_high_priority(0x41)
    with pytest.raises(DlmsLocalError):
        invoke_id_and_priority(16)


def test_apdu_tags_are_the_green_book_values() -> None:
    expected = {
        "GET_REQUEST": 0xC0,
        "SET_REQUEST": 0xC1,
        "ACTION_REQUEST": 0xC3,
        "GET_RESPONSE": 0xC4,
        "SET_RESPONSE": 0xC5,
        "ACTION_RESPONSE": 0xC7,
        "GLO_GET_REQUEST": 0xC8,
        "GLO_ACTION_RESPONSE": 0xCF,
        "EXCEPTION_RESPONSE": 0xD8,
        "GENERAL_GLO_CIPHERING": 0xDB,
        "INITIATE_REQUEST": 0x01,
        "INITIATE_RESPONSE": 0x08,
        "CONFIRMED_SERVICE_ERROR": 0x0E,
        "GLO_INITIATE_REQUEST": 0x21,
        "AARQ": 0x60,
        "AARE": 0x61,
        "RLRQ": 0x62,
        "RLRE": 0x63,
    }
    assert {name: int(ApduTag[name]) for name in expected} == expected


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        (b"", "empty"),
        (H("C8100000"), r"glo-get-request \(0xC8\) is ciphered"),
        (H("DB0800"), "general-glo-ciphering"),
        (H("C2"), r"event-notification-request APDU \(0xC2\) is not supported"),
        (H("FF"), "unknown APDU tag 0xFF"),
        (H("C001C100080000010000FF02"), "get-request APDU is truncated"),
        (H("C001C100080000010000FF020000"), "1 bytes after the GetRequestNormal"),
        (H("C004C1"), "GET-Request choice 4"),
        (H("C401C10200"), "Get-Data-Result choice 2"),
        (H("C401C10105"), "Data-Access-Result 5 is not defined"),
        (H("C701C00800"), "Action-Result 8 is not defined"),
        (H("C001C100080000010000FF0202"), "presence flag"),
        (H("D80306"), "undefined codes"),
        (H("C403C1 05 0000"), "5 elements announced"),
        (H("C402C10000000001 02"), "DataBlock-G result choice 2"),
        (H("C101C1 0008 0000010000FF 02 00"), "truncated"),
        (H("C104C1 01 0008 0000010000FF 02 00 00"), "1 attributes but 0"),
    ],
)
def test_malformed_apdus_are_decode_errors_that_say_why(encoded: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_apdu(encoded)


def test_data_limits_are_the_callers() -> None:
    nested = H("C401C100") + H("0201") * 5 + H("1101")
    assert isinstance(decode_apdu(nested), GetResponseNormal)
    with pytest.raises(DecodeError):
        decode_apdu(nested, data_decoder=DataDecoder(max_depth=3))


def test_bytearray_and_memoryview_input() -> None:
    encoded = H("C401C100 06 00001391")
    assert decode_apdu(bytearray(encoded)) == decode_apdu(memoryview(encoded)[0:])


def test_messages_check_themselves_when_built() -> None:
    with pytest.raises(DlmsLocalError):
        CosemAttributeDescriptor(8, b"\x00" * 5, 2)
    with pytest.raises(DlmsLocalError):
        CosemAttributeDescriptor(0x10000, CLOCK, 2)
    with pytest.raises(DlmsLocalError):
        CosemAttributeDescriptor(8, CLOCK, 128)
    with pytest.raises(DlmsLocalError):
        GetRequestNormal(256, CLOCK_TIME_ATTRIBUTE)
    with pytest.raises(DlmsLocalError):
        GetResponseNormal(0xC1, 5)  # type: ignore[arg-type]
    with pytest.raises(DlmsLocalError):
        GetRequestNext(0xC1, -1)
    with pytest.raises(DlmsLocalError):
        ExceptionResponse(
            ExceptionStateError.SERVICE_UNKNOWN, ExceptionServiceError.OTHER_REASON, 1
        )
    with pytest.raises(DlmsLocalError):
        encode(object())  # type: ignore[arg-type]


def test_manufacturer_specific_negative_attribute_ids() -> None:
    request = GetRequestNormal(0xC1, CosemAttributeDescriptor(1, CLOCK, -2))
    assert encode(request)[-2:] == H("FE00")
    assert decode_apdu(encode(request)) == request
