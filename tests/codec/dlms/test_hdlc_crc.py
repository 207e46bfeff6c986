"""CRC-16/X.25, the HDLC frame and header check sequence (IEC 62056-46 Annex A)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meterledger.codec.dlms.crc import (
    CRC16_X25_TABLE,
    crc16_x25,
    crc16_x25_bytewise,
    crc16_x25_prefixes,
    fcs_bytes,
)


def test_check_value_of_the_catalogue() -> None:
    # The "check" of CRC-16/X.25 (CRC-16/IBM-SDLC) in every CRC catalogue: CRC of "123456789".
    assert crc16_x25(b"123456789") == 0x906E
    assert crc16_x25_bytewise(b"123456789") == 0x906E


def test_empty_input_is_init_xor_xorout() -> None:
    assert crc16_x25(b"") == 0x0000
    assert crc16_x25_bytewise(b"") == 0x0000


def test_table_starts_as_published_in_rfc_1662() -> None:
    # RFC 1662 appendix C.2 ``fcstab`` (the same table as IEC 62056-46 Annex A).
    assert CRC16_X25_TABLE[:8] == (0x0000, 0x1189, 0x2312, 0x329B, 0x4624, 0x57AD, 0x6536, 0x74BF)
    assert CRC16_X25_TABLE[255] == 0x0F78
    assert len(CRC16_X25_TABLE) == 256


def test_fcs_is_sent_least_significant_byte_first() -> None:
    # SNRM 7E A0 07 03 21 93 0F 01 7E: the FCS of A0 07 03 21 93 is 0x010F, sent 0F 01.
    header = bytes.fromhex("A0070321 93")
    assert crc16_x25(header) == 0x010F
    assert fcs_bytes(header) == b"\x0f\x01"


def test_accepts_bytes_bytearray_and_memoryview() -> None:
    data = b"\x7e\xa0\x07\x03\x21\x93"
    expected = crc16_x25(data)
    assert crc16_x25(bytearray(data)) == expected
    assert crc16_x25(memoryview(data)) == expected
    assert crc16_x25(memoryview(data)[1:]) == crc16_x25(data[1:])
    assert crc16_x25_bytewise(memoryview(bytearray(data))) == expected


@given(st.binary(max_size=600))
def test_fast_and_bytewise_agree(data: bytes) -> None:
    assert crc16_x25(data) == crc16_x25_bytewise(data)


@given(st.binary(max_size=300))
def test_good_frame_residue(data: bytes) -> None:
    # A frame followed by its FCS leaves the constant residue (RFC 1662 "good final FCS"
    # 0xF0B8, after the final XOR 0x0F47): what a receiver may check instead of comparing.
    assert crc16_x25(data + fcs_bytes(data)) == 0xF0B8 ^ 0xFFFF


@given(st.binary(min_size=1, max_size=200), st.integers(0, 7), st.data())
def test_any_single_bit_flip_changes_the_crc(data: bytes, bit: int, draw: st.DataObject) -> None:
    index = draw.draw(st.integers(0, len(data) - 1))
    flipped = bytearray(data)
    flipped[index] ^= 1 << bit
    assert crc16_x25(bytes(flipped)) != crc16_x25(data)


@given(st.binary(max_size=300), st.data())
def test_prefixes_in_one_pass(data: bytes, draw: st.DataObject) -> None:
    second = draw.draw(st.integers(0, len(data)))
    first = draw.draw(st.integers(0, second))
    assert crc16_x25_prefixes(data, first, second) == (
        crc16_x25(data[:first]),
        crc16_x25(data[:second]),
    )
    assert crc16_x25_prefixes(bytearray(data), first, second) == crc16_x25_prefixes(
        data, first, second
    )
