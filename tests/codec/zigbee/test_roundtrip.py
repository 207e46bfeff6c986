"""Hypothesis: every message encodes and decodes back to itself, and any octets at all
decode to a frame or raise a ZclError, never anything else."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meterledger.codec.zigbee import (
    AttributeRecord,
    DataType,
    DefaultResponse,
    Direction,
    GetProfile,
    GetProfileResponse,
    ProfileIntervalPeriod,
    ProfileStatus,
    ReadAttributes,
    ReadAttributesResponse,
    ReportAttributes,
    ZclCommand,
    ZclError,
    ZclFrame,
    decode_frame,
    encode_frame,
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def typed_records(draw: st.DrawFn) -> AttributeRecord:
    data_type = draw(st.sampled_from(list(DataType)))
    bits = 8 * data_type.size
    if data_type.signed:
        value = draw(st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1))
    else:
        value = draw(st.integers(0, (1 << bits) - 1))
    return AttributeRecord(draw(u16), data_type, value)


failed_records = st.builds(lambda a, s: AttributeRecord(a, status=s), u16, st.integers(1, 0xFF))

commands: st.SearchStrategy[ZclCommand] = st.one_of(
    st.builds(GetProfile, u8, u32, u8),
    st.builds(
        GetProfileResponse,
        u32,
        st.sampled_from(list(ProfileStatus)),
        st.sampled_from(list(ProfileIntervalPeriod)),
        st.lists(st.none() | st.integers(0, 0xFFFFFE), max_size=255).map(tuple),
    ),
    st.builds(ReadAttributes, st.lists(u16, max_size=40).map(tuple)),
    st.builds(
        ReadAttributesResponse,
        st.lists(typed_records() | failed_records, max_size=20).map(tuple),
    ),
    st.builds(ReportAttributes, st.lists(typed_records(), max_size=20).map(tuple)),
    st.builds(DefaultResponse, u8, u8),
)


@settings(max_examples=800)
@given(
    commands,
    u8,
    st.sampled_from(list(Direction)),
    st.none() | u16,
    st.booleans(),
)
def test_every_frame_round_trips(
    command: ZclCommand,
    sequence: int,
    direction: Direction,
    manufacturer: int | None,
    disable: bool,
) -> None:
    if isinstance(command, GetProfile | GetProfileResponse):
        manufacturer = None  # manufacturer-specific cluster commands are the vendor's
    frame = ZclFrame.of(
        command,
        sequence_number=sequence,
        direction=direction,
        manufacturer_code=manufacturer,
        disable_default_response=disable,
    )
    data = encode_frame(frame)
    decoded = decode_frame(data)
    assert decoded == frame
    assert encode_frame(decoded) == data


@settings(max_examples=3000)
@given(st.binary(max_size=64))
def test_random_octets_decode_or_raise_zcl_error(data: bytes) -> None:
    try:
        frame = decode_frame(data)
    except ZclError:
        return
    assert encode_frame(frame) == data  # whatever decodes is exact


@settings(max_examples=1500)
@given(commands, st.data())
def test_mutated_frames_decode_or_raise_zcl_error(command: ZclCommand, data: st.DataObject) -> None:
    frame = ZclFrame.of(command, sequence_number=1, direction=Direction.SERVER_TO_CLIENT)
    octets = bytearray(encode_frame(frame))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(octets) - 1))
        octets[index] = data.draw(u8)
    cut = data.draw(st.integers(0, len(octets)))
    try:
        decoded = decode_frame(bytes(octets[:cut]))
    except ZclError:
        return
    assert encode_frame(decoded) == bytes(octets[:cut])
