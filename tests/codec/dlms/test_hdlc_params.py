"""HDLC parameter negotiation: the SNRM/UA information field (IEC 62056-46 6.4.4.4.3.2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError
from meterledger.codec.dlms.hdlc_frame import MAX_INFO_LENGTH, HdlcParameters, negotiate

P = HdlcParameters


def hx(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_defaults_encode_as_in_the_dlms_ua_example() -> None:
    # Gyozo Kmethy, "Examples for DLMS/COSEM information exchange" (DLMS UA): the UA's
    # information field 818014 05020080 06020080 070400000001 080400000001.
    assert P().encode() == hx("818014 05020080 06020080 070400000001 080400000001")
    assert P.decode(P().encode()) == P(128, 128, 1, 1)


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        # u9n/dlms-cosem issue 62, SNRM sent by Gurux Director: 1-byte and 2-byte values.
        (hx("818013 050180 06020200 070400000001 080400000001"), P(128, 512, 1, 1)),
        # u9n/dlms-cosem issue 95, UA of a MEM600 meter.
        (hx("818014 050200F2 060200F2 070400000001 080400000001"), P(242, 242, 1, 1)),
        # An SNRM in the comments of an open DLMS C decoder (found by search): window rx 7.
        (hx("818012 050180 060180 070400000001 080400000007"), P(128, 128, 1, 7)),
        # By hand from the clause: parameters left out keep their defaults.
        (hx("818007 0501EF 06020400"), P(239, 1024, 1, 1)),
        (hx("81800A 070101 080102 06020100"), P(128, 256, 1, 2)),
        (b"", P()),
        (hx("818000"), P()),
        # An unknown parameter (0x09) and a user group (0xF0) are skipped.
        (hx("818006 0901FF 050140 F00212 34"), P(64, 128, 1, 1)),
    ],
)
def test_decode(info: bytes, expected: HdlcParameters) -> None:
    assert P.decode(info) == expected


@pytest.mark.parametrize(
    "info",
    [
        hx("828014"),  # not the general format identifier
        hx("8180"),  # group without its length
        hx("818005 0502"),  # group shorter than announced
        hx("818003 050000"),  # value of length 0
        hx("818007 0505 0000000080"),  # value of 5 bytes
        hx("818004 05020000"),  # max information length 0
        hx("818004 05020FFF"),  # 4095 > 2030
        hx("818003 070108"),  # window 8
        hx("818004 0503 0001"),  # value runs past the group
    ],
)
def test_decode_errors(info: bytes) -> None:
    with pytest.raises(DecodeError):
        P.decode(info)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_info_transmit": 0},
        {"max_info_receive": MAX_INFO_LENGTH + 1},
        {"window_transmit": 0},
        {"window_receive": 8},
    ],
)
def test_out_of_range_parameters_are_local_errors(kwargs: dict[str, int]) -> None:
    with pytest.raises(DlmsLocalError):
        P(**kwargs)


def test_negotiation_takes_the_smaller_value_from_the_servers_side() -> None:
    client = P(max_info_transmit=512, max_info_receive=1024, window_transmit=3, window_receive=5)
    server = P(max_info_transmit=256, max_info_receive=2030, window_transmit=7, window_receive=1)
    answer = negotiate(client, server)
    # The server transmits what the client can receive, within its own limit, and so on.
    assert answer == P(256, 512, 5, 1)
    assert answer.reversed() == P(512, 256, 1, 5)  # what the client may do


parameters = st.builds(
    P,
    st.integers(1, MAX_INFO_LENGTH),
    st.integers(1, MAX_INFO_LENGTH),
    st.integers(1, 7),
    st.integers(1, 7),
)


@given(parameters)
def test_round_trip(params: HdlcParameters) -> None:
    assert P.decode(params.encode()) == params
    assert params.reversed().reversed() == params


@given(parameters, parameters)
def test_negotiated_values_never_exceed_either_side(
    client: HdlcParameters, server: HdlcParameters
) -> None:
    answer = negotiate(client, server)
    mine = answer.reversed()
    assert mine.max_info_transmit <= client.max_info_transmit
    assert mine.max_info_transmit <= server.max_info_receive
    assert answer.max_info_transmit <= client.max_info_receive
    assert answer.max_info_transmit <= server.max_info_transmit
    assert mine.window_transmit <= min(client.window_transmit, server.window_receive)
    assert negotiate(client, P(MAX_INFO_LENGTH, MAX_INFO_LENGTH, 7, 7)) == client.reversed()
