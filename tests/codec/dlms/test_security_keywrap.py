"""AES key wrap (RFC 3394) and the Security setup key_transfer parameter.

Golden vector: RFC 3394, 4.1 "Wrap 128 bits of Key Data with a 128-bit KEK"."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterledger.codec.dlms.data import Data, DataType
from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError, SecurityError
from meterledger.codec.dlms.keywrap import (
    KeyId,
    WrappedKey,
    key_transfer_data,
    parse_key_transfer,
    unwrap_key,
    unwrap_key_transfer,
    wrap_key,
    wrap_keys,
)

KEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
WRAPPED = bytes.fromhex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")


def test_rfc3394_vector() -> None:
    assert wrap_key(KEK, KEY) == WRAPPED
    assert unwrap_key(KEK, WRAPPED) == KEY


def test_wrong_kek_is_a_security_error() -> None:
    with pytest.raises(SecurityError, match="integrity"):
        unwrap_key(bytes(16), WRAPPED)


def test_tampering_any_byte_is_a_security_error() -> None:
    for position in range(len(WRAPPED)):
        altered = bytearray(WRAPPED)
        altered[position] ^= 0x01
        with pytest.raises(SecurityError):
            unwrap_key(KEK, bytes(altered))


def test_sizes() -> None:
    with pytest.raises(DecodeError):
        unwrap_key(KEK, WRAPPED[:-1])
    with pytest.raises(DecodeError):
        unwrap_key(KEK, WRAPPED[:16])
    with pytest.raises(DlmsLocalError):
        wrap_key(KEK, KEY[:8])
    with pytest.raises(DlmsLocalError):
        wrap_key(KEK[:15], KEY)


@given(
    kek=st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    key=st.integers(2, 8).flatmap(lambda n: st.binary(min_size=8 * n, max_size=8 * n)),
)
def test_wrap_round_trip(kek: bytes, key: bytes) -> None:
    wrapped = wrap_key(kek, key)
    assert len(wrapped) == len(key) + 8
    assert unwrap_key(kek, wrapped) == key


def test_key_transfer_parameter_shape() -> None:
    entries = wrap_keys(KEK, [(KeyId.GLOBAL_UNICAST_ENCRYPTION, KEY)])
    parameter = key_transfer_data(entries)
    assert parameter == Data.array(
        Data.structure(Data(DataType.ENUM, 0), Data(DataType.OCTET_STRING, WRAPPED))
    )
    assert parse_key_transfer(parameter) == (WrappedKey(KeyId.GLOBAL_UNICAST_ENCRYPTION, WRAPPED),)


def test_key_transfer_round_trip_of_all_keys() -> None:
    new = {
        KeyId.GLOBAL_UNICAST_ENCRYPTION: bytes(range(16)),
        KeyId.GLOBAL_BROADCAST_ENCRYPTION: bytes(range(16, 32)),
        KeyId.AUTHENTICATION: bytes(range(32, 48)),
        KeyId.MASTER: bytes(range(48, 64)),
    }
    parameter = key_transfer_data(wrap_keys(KEK, new.items()))
    assert [item.items[0].value for item in parameter.items] == [0, 1, 2, 3]
    assert unwrap_key_transfer(KEK, parameter) == new
    with pytest.raises(SecurityError):
        unwrap_key_transfer(bytes(16), parameter)


def _entry(key_id: Data, wrapped: Data) -> Data:
    return Data.structure(key_id, wrapped)


@pytest.mark.parametrize(
    ("parameter", "message"),
    [
        (Data.structure(), "not an array"),
        (Data.array(), "no key"),
        (Data.array(Data.octets(WRAPPED)), "structure"),
        (Data.array(Data.structure(Data.enum(0))), "structure"),
        (Data.array(_entry(Data.uint8(0), Data.octets(WRAPPED))), "enum"),
        (Data.array(_entry(Data.enum(0), Data.uint8(1))), "octet-string"),
        (Data.array(_entry(Data.enum(4), Data.octets(WRAPPED))), "unknown key_id"),
        (Data.array(_entry(Data.enum(0), Data.octets(WRAPPED[:20]))), "multiple of 8"),
        (
            Data.array(
                _entry(Data.enum(2), Data.octets(WRAPPED)),
                _entry(Data.enum(2), Data.octets(WRAPPED)),
            ),
            "twice",
        ),
    ],
)
def test_malformed_key_transfer_parameters(parameter: Data, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        parse_key_transfer(parameter)


def test_building_checks_its_input() -> None:
    with pytest.raises(DlmsLocalError):
        key_transfer_data([])
    with pytest.raises(DlmsLocalError):
        WrappedKey(KeyId.MASTER, b"too short")
