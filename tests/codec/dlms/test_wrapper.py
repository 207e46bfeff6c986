"""The IEC 62056-47 wrapper: 8-byte header, streaming parser, incomplete versus corrupt."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterledger.codec.dlms.cursor import NEED_DATA
from meterledger.codec.dlms.errors import CorruptFrameError, DlmsLocalError
from meterledger.codec.dlms.wrapper import (
    HEADER_LENGTH,
    WrapperParser,
    WrapperPdu,
    encode_wrapper,
)

# The AARQ of the DLMS UA's example exchange (Gyozo Kmethy, "Examples for DLMS/COSEM
# information exchange"): tag 0x60, length 0x1D, 31 bytes in all.
AARQ = bytes.fromhex("601DA109060760857405080101BE10040E01000000065F1F040000301DFFFF")


def pdus(parser: WrapperParser) -> list[WrapperPdu]:
    out = []
    while (pdu := parser.next_pdu()) is not NEED_DATA:
        assert isinstance(pdu, WrapperPdu)
        out.append(pdu)
    return out


def test_header_laid_out_by_hand() -> None:
    wire = encode_wrapper(0x0010, 0x0001, AARQ)  # public client to the management device
    assert wire[0:2] == b"\x00\x01"  # version 1
    assert wire[2:4] == b"\x00\x10"  # source wPort
    assert wire[4:6] == b"\x00\x01"  # destination wPort
    assert wire[6:8] == b"\x00\x1f"  # length of the APDU
    assert wire[8:] == AARQ
    assert len(wire) == HEADER_LENGTH + 31


def test_parse_a_pdu() -> None:
    parser = WrapperParser()
    parser.receive_data(bytes.fromhex("0001 0001 0010 0004") + b"\xc4\x01\xc1\x00")
    assert pdus(parser) == [WrapperPdu(1, 0x10, b"\xc4\x01\xc1\x00")]
    assert parser.buffered == 0


def test_byte_by_byte() -> None:
    wire = encode_wrapper(0x10, 0x01, AARQ) + encode_wrapper(0x01, 0x10, b"\x61")
    parser = WrapperParser()
    got = []
    for i, byte in enumerate(wire):
        parser.receive_data(bytes((byte,)))
        found = pdus(parser)
        if i not in (len(AARQ) + 7, len(wire) - 1):
            assert found == []
        got += found
    assert got == [WrapperPdu(0x10, 0x01, AARQ), WrapperPdu(0x01, 0x10, b"\x61")]


def test_every_prefix_is_incomplete_not_corrupt() -> None:
    wire = encode_wrapper(0x10, 0x01, AARQ)
    for cut in range(len(wire)):
        parser = WrapperParser()
        parser.receive_data(wire[:cut])
        assert parser.next_pdu() is NEED_DATA


def test_wrong_version_is_corrupt_and_stays_corrupt() -> None:
    parser = WrapperParser()
    parser.receive_data(bytes.fromhex("0002 0010 0001 0001 00"))
    with pytest.raises(CorruptFrameError, match="version"):
        parser.next_pdu()
    parser.receive_data(encode_wrapper(0x10, 0x01, AARQ))  # a TCP stream cannot resynchronise
    with pytest.raises(CorruptFrameError):
        parser.next_pdu()


def test_length_over_the_limit_is_corrupt_before_the_bytes_arrive() -> None:
    parser = WrapperParser(max_apdu=30)
    parser.receive_data(encode_wrapper(0x10, 0x01, AARQ)[:HEADER_LENGTH])
    with pytest.raises(CorruptFrameError, match="exceeds"):
        parser.next_pdu()
    exact = WrapperParser(max_apdu=31)
    exact.receive_data(encode_wrapper(0x10, 0x01, AARQ))
    assert pdus(exact) == [WrapperPdu(0x10, 0x01, AARQ)]


def test_buffer_limit_is_a_local_error() -> None:
    parser = WrapperParser(max_apdu=100, max_buffer=200)
    parser.receive_data(bytes(108))
    with pytest.raises(DlmsLocalError):
        parser.receive_data(bytes(93))


@pytest.mark.parametrize(
    "make",
    [
        lambda: encode_wrapper(-1, 1, b""),
        lambda: encode_wrapper(1, 0x10000, b""),
        lambda: encode_wrapper(1, 1, bytes(0x10000)),
        lambda: WrapperPdu(0x10000, 1, b""),
        lambda: WrapperParser(max_apdu=0x10000),
        lambda: WrapperParser(max_apdu=100, max_buffer=107),
    ],
)
def test_local_errors(make: object) -> None:
    with pytest.raises(DlmsLocalError):
        make()  # type: ignore[operator]


ports = st.integers(0, 0xFFFF)


@given(st.lists(st.tuples(ports, ports, st.binary(max_size=300)), max_size=5), st.data())
def test_round_trip_with_any_split(
    items: list[tuple[int, int, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(encode_wrapper(*item) for item in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    parser = WrapperParser()
    got: list[WrapperPdu] = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        parser.receive_data(stream[a:b])
        got += pdus(parser)
    assert got == [WrapperPdu(*item) for item in items]


def reference(data: bytes, max_apdu: int) -> tuple[list[WrapperPdu], bool]:
    """A slow model of the stream: the PDUs before the first bad header, and whether one is."""
    found: list[WrapperPdu] = []
    pos = 0
    while len(data) - pos >= HEADER_LENGTH:
        version, src, dst, length = struct.unpack_from(">HHHH", data, pos)
        if version != 1 or length > max_apdu:
            return found, True
        if pos + HEADER_LENGTH + length > len(data):
            break
        found.append(WrapperPdu(src, dst, data[pos + HEADER_LENGTH : pos + HEADER_LENGTH + length]))
        pos += HEADER_LENGTH + length
    return found, False


@given(
    st.one_of(
        st.binary(max_size=200),
        st.lists(st.binary(max_size=20), max_size=4).map(
            lambda apdus: b"".join(encode_wrapper(1, 2, a) for a in apdus) + bytes(9)
        ),
    ),
    st.integers(8, 300),
)
def test_random_bytes_give_pdus_then_corrupt_or_need_data(data: bytes, max_apdu: int) -> None:
    expected, corrupt = reference(data, max_apdu)
    parser = WrapperParser(max_apdu=max_apdu)
    parser.receive_data(data)
    got: list[WrapperPdu] = []
    try:
        while (pdu := parser.next_pdu()) is not NEED_DATA:
            assert isinstance(pdu, WrapperPdu)
            got.append(pdu)
    except CorruptFrameError:
        assert corrupt
    else:
        assert not corrupt
    assert got == expected
