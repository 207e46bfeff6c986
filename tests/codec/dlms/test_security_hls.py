"""LLS and HLS-GMAC (authentication mechanism 5).

Golden vector: Green Book (DLMS UA 1000-2) 9.2.7.4, Table 43 "HLS example using
authentication-mechanism 5 with GMAC" (Ed. 8.1), as quoted in a public AES-GCM unit test
and on the Gurux forum ("problem of HLS peer authentication with GMAC")::

                      client              server
    system title      4D4D4D0000000001    4D4D4D0000BC614E
    IC                00000001            01234567
    EK 000102030405060708090A0B0C0D0E0F, AK D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF, SC 10
    CtoS 4B35366956616759 ("K56iVagY"), StoC 503677524A323146 ("P6wRJ21F")
    f(StoC) = 10 00000001 1A52FE7DD3E72748973C1E28   (client -> server)
    f(CtoS) = 10 01234567 FE1466AFB3DBCD4F9389E2B7   (server -> client)
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterledger.codec.dlms.errors import DlmsLocalError, SecurityError
from meterledger.codec.dlms.hls import (
    HLS_GMAC_RESPONSE_LENGTH,
    check_lls,
    hls_gmac_response,
    verify_hls_gmac,
)
from meterledger.codec.dlms.security import AUTHENTICATED_ENCRYPTED

CLIENT_TITLE = bytes.fromhex("4D4D4D0000000001")
SERVER_TITLE = bytes.fromhex("4D4D4D0000BC614E")
EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
CTOS = b"K56iVagY"
STOC = b"P6wRJ21F"
F_STOC = bytes.fromhex("10000000011A52FE7DD3E72748973C1E28")
F_CTOS = bytes.fromhex("1001234567FE1466AFB3DBCD4F9389E2B7")


def test_green_book_client_reply_f_stoc() -> None:
    reply = hls_gmac_response(STOC, system_title=CLIENT_TITLE, invocation_counter=1, ak=AK, ek=EK)
    assert reply == F_STOC
    # The server checks it against the challenge it sent, with the client's title.
    assert verify_hls_gmac(F_STOC, STOC, system_title=CLIENT_TITLE, ak=AK, ek=EK) == 1


def test_green_book_server_reply_f_ctos() -> None:
    reply = hls_gmac_response(
        CTOS, system_title=SERVER_TITLE, invocation_counter=0x01234567, ak=AK, ek=EK
    )
    assert reply == F_CTOS
    assert verify_hls_gmac(F_CTOS, CTOS, system_title=SERVER_TITLE, ak=AK, ek=EK) == 0x01234567


def test_wrong_challenge_is_rejected() -> None:
    with pytest.raises(SecurityError):
        verify_hls_gmac(F_STOC, CTOS, system_title=CLIENT_TITLE, ak=AK, ek=EK)


def test_reply_from_the_wrong_party_is_rejected() -> None:
    # f(StoC) is bound to the client's system title; it cannot pass as the server's.
    with pytest.raises(SecurityError):
        verify_hls_gmac(F_STOC, STOC, system_title=SERVER_TITLE, ak=AK, ek=EK)


@pytest.mark.parametrize("which", ["ak", "ek"])
def test_wrong_key_is_rejected(which: str) -> None:
    keys = {"ak": AK, "ek": EK, which: bytes(16)}
    with pytest.raises(SecurityError):
        verify_hls_gmac(F_CTOS, CTOS, system_title=SERVER_TITLE, **keys)


def test_tampering_any_byte_of_the_reply_is_rejected() -> None:
    for position in range(len(F_CTOS)):
        for mask in (0x01, 0x20, 0x80):
            altered = bytearray(F_CTOS)
            altered[position] ^= mask
            with pytest.raises(SecurityError):
                verify_hls_gmac(bytes(altered), CTOS, system_title=SERVER_TITLE, ak=AK, ek=EK)


@pytest.mark.parametrize(
    "reply",
    [b"", F_CTOS[:-1], F_CTOS + b"\x00", bytes.fromhex("30") + F_CTOS[1:]],
    ids=["empty", "short", "long", "encrypted-sc"],
)
def test_malformed_replies_are_security_errors(reply: bytes) -> None:
    with pytest.raises(SecurityError):
        verify_hls_gmac(reply, CTOS, system_title=SERVER_TITLE, ak=AK, ek=EK)


def test_challenge_sizes() -> None:
    with pytest.raises(SecurityError, match="challenge"):  # the peer's challenge
        hls_gmac_response(b"1234567", system_title=CLIENT_TITLE, invocation_counter=1, ak=AK, ek=EK)
    with pytest.raises(DlmsLocalError, match="challenge"):  # our own
        verify_hls_gmac(F_STOC, bytes(65), system_title=CLIENT_TITLE, ak=AK, ek=EK)
    with pytest.raises(DlmsLocalError):
        hls_gmac_response(
            STOC,
            system_title=CLIENT_TITLE,
            invocation_counter=1,
            ak=AK,
            ek=EK,
            security=AUTHENTICATED_ENCRYPTED,
        )


@given(
    stoc=st.binary(min_size=8, max_size=64),
    ctos=st.binary(min_size=8, max_size=64),
    client_ic=st.integers(0, 2**32 - 1),
    server_ic=st.integers(0, 2**32 - 1),
    ak=st.binary(min_size=16, max_size=16),
    ek=st.binary(min_size=16, max_size=16),
)
def test_four_pass_round_trip_both_directions(
    stoc: bytes, ctos: bytes, client_ic: int, server_ic: int, ak: bytes, ek: bytes
) -> None:
    f_stoc = hls_gmac_response(
        stoc, system_title=CLIENT_TITLE, invocation_counter=client_ic, ak=ak, ek=ek
    )
    assert len(f_stoc) == HLS_GMAC_RESPONSE_LENGTH
    assert verify_hls_gmac(f_stoc, stoc, system_title=CLIENT_TITLE, ak=ak, ek=ek) == client_ic
    f_ctos = hls_gmac_response(
        ctos, system_title=SERVER_TITLE, invocation_counter=server_ic, ak=ak, ek=ek
    )
    assert verify_hls_gmac(f_ctos, ctos, system_title=SERVER_TITLE, ak=ak, ek=ek) == server_ic
    if ctos != stoc:
        with pytest.raises(SecurityError):
            verify_hls_gmac(f_ctos, stoc, system_title=SERVER_TITLE, ak=ak, ek=ek)


def test_lls_password() -> None:
    check_lls(b"12345678", b"12345678")
    for wrong in (b"12345679", b"1234567", b"", b"123456789"):
        with pytest.raises(SecurityError, match="LLS"):
            check_lls(b"12345678", wrong)
