"""Truncated, malformed and unsupported frames each raise their own ZclError; building an
invalid message raises ZclValueError; UTCTime conversions."""

from __future__ import annotations

import pytest

from meterledger.codec.zigbee import (
    ZIGBEE_EPOCH,
    AttributeRecord,
    DataType,
    Direction,
    FrameType,
    GetProfile,
    GetProfileResponse,
    ProfileIntervalPeriod,
    ProfileStatus,
    ReportAttributes,
    ZclError,
    ZclFrame,
    ZclHeader,
    ZclMalformedError,
    ZclTruncatedError,
    ZclUnsupportedError,
    ZclValueError,
    decode_frame,
    from_utc_time,
    to_utc_time,
)
from meterledger.core.errors import LocalProtocolError, RemoteProtocolError

RESPONSE = bytes.fromhex("09 2A 00 804F1E2D 00 03 02 020100 FFFFFF")


@pytest.mark.parametrize("cut", range(len(RESPONSE)))
def test_every_prefix_is_truncated(cut: int) -> None:
    with pytest.raises(ZclTruncatedError):
        decode_frame(RESPONSE[:cut])


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (RESPONSE + b"\x00", ZclMalformedError, "after the end"),
        (bytes.fromhex("21 01 00 00 00000000 01"), ZclMalformedError, "reserved frame control"),
        (bytes.fromhex("09 01 00 00000000 06 00 00"), ZclMalformedError, "status 0x06"),
        (bytes.fromhex("09 01 00 00000000 00 09 00"), ZclMalformedError, "period 9"),
        (bytes.fromhex("02 01 00"), ZclUnsupportedError, "frame type 2"),
        (bytes.fromhex("00 01 06"), ZclUnsupportedError, "global command 0x06"),
        (bytes.fromhex("01 01 07"), ZclUnsupportedError, "Metering command 0x07"),
        (bytes.fromhex("05 3710 01 00"), ZclUnsupportedError, "manufacturer-specific"),
        (bytes.fromhex("18 01 0A 0000 42 03616263"), ZclUnsupportedError, "data type 0x42"),
        (bytes.fromhex("18 01 0B 00"), ZclTruncatedError, "status code"),
        (bytes.fromhex("18 01 0B 00 00 00"), ZclMalformedError, "Default Response"),
    ],
)
def test_bad_frames(data: bytes, error: type[ZclError], words: str) -> None:
    with pytest.raises(error, match=words):
        decode_frame(data)


def test_cluster_commands_only_on_metering() -> None:
    with pytest.raises(ZclUnsupportedError, match="0x0006"):
        decode_frame(bytes.fromhex("01 01 00 00 00000000 01"), cluster=0x0006)
    assert decode_frame(bytes.fromhex("00 01 00 0000"), cluster=0x0006).command is not None


def test_error_tree() -> None:
    assert issubclass(ZclTruncatedError, RemoteProtocolError)
    assert issubclass(ZclValueError, LocalProtocolError)
    assert issubclass(ZclValueError, ValueError)
    assert not issubclass(ZclTruncatedError, ZclMalformedError)


@pytest.mark.parametrize(
    "build",
    [
        lambda: GetProfile(256, 0, 1),
        lambda: GetProfile(0, -1, 1),
        lambda: GetProfile(0, 0, True),
        lambda: GetProfileResponse(
            0, ProfileStatus.SUCCESS, ProfileIntervalPeriod.DAILY, (0xFFFFFF,)
        ),
        lambda: GetProfileResponse(
            0, ProfileStatus.SUCCESS, ProfileIntervalPeriod.DAILY, (1 << 24,)
        ),
        lambda: GetProfileResponse(
            0, ProfileStatus.SUCCESS, ProfileIntervalPeriod.DAILY, (0,) * 256
        ),
        lambda: GetProfileResponse(0, 0, ProfileIntervalPeriod.DAILY, ()),  # type: ignore[arg-type]
        lambda: AttributeRecord(0, DataType.UINT8, 256),
        lambda: AttributeRecord(0, DataType.INT8, -129),
        lambda: AttributeRecord(0, DataType.UINT48, None),
        lambda: AttributeRecord(0, DataType.UINT8, 1, status=0x86),
        lambda: ReportAttributes((AttributeRecord(0, status=0x86),)),
        lambda: ZclHeader(FrameType.GLOBAL, Direction.CLIENT_TO_SERVER, 256, 0),
        lambda: ZclHeader(FrameType.GLOBAL, Direction.CLIENT_TO_SERVER, 0, 0, 0x10000),
        lambda: ZclFrame(
            ZclHeader(FrameType.GLOBAL, Direction.CLIENT_TO_SERVER, 0, 0), GetProfile(0, 0, 1)
        ),
        lambda: ZclFrame(
            ZclHeader(FrameType.CLUSTER_SPECIFIC, Direction.SERVER_TO_CLIENT, 0, 0),
            GetProfile(0, 0, 1),
        ),
        lambda: ZclFrame.of(ReportAttributes(()), sequence_number=0),
    ],
)
def test_invalid_messages_refuse_to_exist(build: object) -> None:
    with pytest.raises(ZclValueError):
        build()  # type: ignore[operator]


def test_utc_time() -> None:
    assert ZIGBEE_EPOCH == 946684800
    assert to_utc_time(946684800) == 0
    assert to_utc_time(1_704_067_200) == 757_382_400  # 2024-01-01T00:00:00Z
    assert from_utc_time(757_382_400) == 1_704_067_200
    assert from_utc_time(0xFFFFFFFE) == 0xFFFFFFFE + ZIGBEE_EPOCH
    with pytest.raises(ZclValueError):
        to_utc_time(946684799)
    with pytest.raises(ZclValueError):
        from_utc_time(0xFFFFFFFF)
