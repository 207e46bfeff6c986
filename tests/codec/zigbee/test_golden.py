"""Golden vectors, built octet by octet from the layouts in the standards.

ZCL 07-5123 2.4.1 (header: frame control, [manufacturer code], sequence, command id; all
multi-octet fields least significant octet first), 2.5.1/2.5.2/2.5.11/2.5.12 (global
commands); SE 105638r09 D.3.3.3.1.1 (GetProfile) and D.3.2.3.1.1 (GetProfileResponse).
"""

from __future__ import annotations

import pytest

from meterledger.codec.zigbee import (
    AttributeRecord,
    DataType,
    DefaultResponse,
    Direction,
    FrameType,
    GetProfile,
    GetProfileResponse,
    IntervalChannel,
    MeteringAttribute,
    ProfileIntervalPeriod,
    ProfileStatus,
    ReadAttributes,
    ReadAttributesResponse,
    ReportAttributes,
    ZclFrame,
    ZclHeader,
    ZclStatus,
    ZclTruncatedError,
    decode_frame,
    encode_frame,
)

# GetProfile, client to server: frame control 0x01 (cluster specific, direction 0),
# sequence 0x2A, command 0x00; channel 0, end time 0x2D1E_4F80 (LE), 4 periods.
GET_PROFILE = bytes.fromhex("01 2A 0000804F1E2D04")
# GetProfileResponse, server to client: frame control 0x09 (cluster specific | direction),
# sequence 0x2A, command 0x00; end time 0x2D1E4F80, status 0, period 3 (15 min), 3 intervals:
# 0x000102 = 258, invalid 0xFFFFFF, 0x0A0000 = 655360 (each LE).
GET_PROFILE_RESPONSE = bytes.fromhex("09 2A 00804F1E2D000303020100FFFFFF00000A")
# Read Attributes, client to server, default response disabled (0x10): ids 0x0000, 0x0301.
READ_ATTRIBUTES = bytes.fromhex("10 05 0000000103")
# Read Attributes Response, server to client (0x18 = direction | disable default response):
# 0x0000 success uint48 1_000_000 (0x0F4240), 0x0302 UNSUPPORTED_ATTRIBUTE (0x86).
READ_ATTRIBUTES_RESPONSE = bytes.fromhex("18 05 010000 00 25 40420F0000000203 86")
# Report Attributes, server to client: 0x0300 enum8 0 (kWh), 0x0303 bitmap8 0x2B.
REPORT_ATTRIBUTES = bytes.fromhex("18 06 0A0003 30 000303 18 2B")
# Default Response from the server to a manufacturer-specific frame (0x0C = mfr | direction),
# manufacturer 0x1037 (LE 37 10); answers command 0x00 with UNSUP_CLUSTER_COMMAND 0x81.
DEFAULT_RESPONSE = bytes.fromhex("0C 3710 07 0B00 81")

END = 0x2D1E4F80


def test_get_profile_decodes_field_by_field() -> None:
    frame = decode_frame(GET_PROFILE)
    assert frame.header == ZclHeader(
        FrameType.CLUSTER_SPECIFIC, Direction.CLIENT_TO_SERVER, 0x2A, 0x00
    )
    assert frame.command == GetProfile(IntervalChannel.CONSUMPTION_DELIVERED, END, 4)
    assert frame.command.interval_channel is IntervalChannel.CONSUMPTION_DELIVERED
    assert encode_frame(frame) == GET_PROFILE


def test_get_profile_response_invalid_interval_is_none() -> None:
    frame = decode_frame(GET_PROFILE_RESPONSE)
    command = frame.command
    assert isinstance(command, GetProfileResponse)
    assert command.end_time == END
    assert command.status is ProfileStatus.SUCCESS
    assert command.profile_interval_period is ProfileIntervalPeriod.MINUTES_15
    assert command.intervals == (258, None, 655360)
    assert command.number_of_periods_delivered == 3
    assert command.interval_ends() == (END, END - 900, END - 1800)
    assert encode_frame(frame) == GET_PROFILE_RESPONSE


def test_command_zero_is_chosen_by_direction() -> None:
    as_server = bytes((0x09,)) + GET_PROFILE[1:]  # a GetProfile body sent server to client
    with pytest.raises(ZclTruncatedError, match="number of periods delivered"):
        decode_frame(as_server)  # read as a GetProfileResponse, six octets are too few


def test_read_attributes() -> None:
    frame = decode_frame(READ_ATTRIBUTES)
    assert frame.header.disable_default_response is True
    assert frame.header.direction is Direction.CLIENT_TO_SERVER
    assert frame.command == ReadAttributes((MeteringAttribute.CURRENT_SUMMATION_DELIVERED, 0x0301))
    assert encode_frame(frame) == READ_ATTRIBUTES


def test_read_attributes_response_mixes_success_and_failure() -> None:
    frame = decode_frame(READ_ATTRIBUTES_RESPONSE)
    assert frame.command == ReadAttributesResponse(
        (
            AttributeRecord(0x0000, DataType.UINT48, 1_000_000),
            AttributeRecord(0x0302, status=ZclStatus.UNSUPPORTED_ATTRIBUTE),
        )
    )
    assert encode_frame(frame) == READ_ATTRIBUTES_RESPONSE


def test_report_attributes() -> None:
    frame = decode_frame(REPORT_ATTRIBUTES)
    assert frame.command == ReportAttributes(
        (
            AttributeRecord(MeteringAttribute.UNIT_OF_MEASURE, DataType.ENUM8, 0),
            AttributeRecord(MeteringAttribute.SUMMATION_FORMATTING, DataType.BITMAP8, 0x2B),
        )
    )
    assert encode_frame(frame) == REPORT_ATTRIBUTES


def test_default_response_with_manufacturer_code() -> None:
    frame = decode_frame(DEFAULT_RESPONSE)
    assert frame.header.manufacturer_code == 0x1037
    assert frame.header.manufacturer_specific is True
    assert frame.header.frame_control == 0x0C
    assert frame.command == DefaultResponse(0x00, ZclStatus.UNSUP_CLUSTER_COMMAND)
    assert encode_frame(frame) == DEFAULT_RESPONSE


def test_signed_values_are_twos_complement() -> None:
    # InstantaneousDemand, int24 -2 = 0xFFFFFE (LE FE FF FF)
    data = bytes.fromhex("18 01 0A 0004 2A FEFFFF")
    frame = decode_frame(data)
    assert frame.command == ReportAttributes(
        (AttributeRecord(MeteringAttribute.INSTANTANEOUS_DEMAND, DataType.INT24, -2),)
    )
    assert encode_frame(frame) == data


def test_frame_of_builds_the_header() -> None:
    frame = ZclFrame.of(GetProfile(1, 0, 24), sequence_number=9)
    assert encode_frame(frame) == bytes.fromhex("01 09 00 01 00000000 18")
    report = ZclFrame.of(
        ReportAttributes((AttributeRecord(0x0001, DataType.UINT48, 0x0102030405),)),
        sequence_number=1,
        direction=Direction.SERVER_TO_CLIENT,
    )
    assert encode_frame(report) == bytes.fromhex("08 01 0A 0100 25 050403020100")


def test_metering_attribute_ids() -> None:
    assert MeteringAttribute.CURRENT_SUMMATION_DELIVERED == 0x0000
    assert MeteringAttribute.CURRENT_SUMMATION_RECEIVED == 0x0001
    assert MeteringAttribute.PROFILE_INTERVAL_PERIOD == 0x000F
    assert MeteringAttribute.UNIT_OF_MEASURE == 0x0300
    assert MeteringAttribute.MULTIPLIER == 0x0301
    assert MeteringAttribute.DIVISOR == 0x0302
    assert MeteringAttribute.SUMMATION_FORMATTING == 0x0303
    assert MeteringAttribute.CURRENT_PARTIAL_PROFILE_INTERVAL_VALUE_DELIVERED == 0x0407
    assert MeteringAttribute.CURRENT_PARTIAL_PROFILE_INTERVAL_VALUE_RECEIVED == 0x0408


def test_every_period_and_status() -> None:
    assert [(p.value, p.seconds) for p in ProfileIntervalPeriod] == [
        (0, 86400),
        (1, 3600),
        (2, 1800),
        (3, 900),
        (4, 600),
        (5, 450),
        (6, 300),
        (7, 150),
        (8, 60),
    ]
    assert [s.value for s in ProfileStatus] == [0, 1, 2, 3, 4, 5]
    assert ProfileStatus(5) is ProfileStatus.NO_INTERVALS_AVAILABLE_FOR_THE_REQUESTED_TIME
