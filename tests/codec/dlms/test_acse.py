"""ACSE APDUs: published AARQ/AARE/RLRQ/RLRE encodings, the association flavours (no
security, LLS, HLS-GMAC, ciphered context with system titles, rejection), strict decoding,
conformance negotiation, Hypothesis round trips and fuzzing.

Sources of the golden vectors (bytes are facts; no code is taken from anywhere):

* GB10 — DLMS UA Green Book Ed. 10, the AARQ/AARE encoding examples of the ACSE clause
  ("page 444"), reproduced byte for byte in u9n/dlms-cosem tests/test_asce/test_aarq.py,
  test_aare.py and test_rlre.py.
* EICT — captures in the EnergyICT (Honeywell) DLMS protocol tests,
  com/energyict/dlms/aso/AssociationControlServiceElementTest.java.
* GO — a ciphered AARE from a meter, in the DecodeAARE tests of a public Go DLMS client.
* HX — a ciphered HLS-GMAC AARE from a Hexing meter, in a public Java head-end test
  (TestMessageGate.java).
"""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterledger.codec.dlms.acse import (
    Aare,
    Aarq,
    ConfirmedServiceError,
    InitiateRequest,
    InitiateResponse,
    Rlre,
    Rlrq,
    decode_acse,
    decode_initiate,
    encode_acse,
    encode_initiate,
    negotiate_conformance,
    raise_for_aare,
)
from meterledger.codec.dlms.codes import (
    VAA_NAME_LN,
    VAA_NAME_SN,
    AcseServiceProviderDiagnostic,
    AcseServiceUserDiagnostic,
    ApplicationContext,
    AssociationResult,
    AuthenticationMechanism,
    ConfirmedService,
    Conformance,
    InitiateError,
    ReleaseRequestReason,
    ReleaseResponseReason,
    ServiceErrorType,
)
from meterledger.codec.dlms.errors import AssociationRejectedError, DecodeError, DlmsLocalError

C = Conformance
H = bytes.fromhex

# The conformance the GB10 AARQ proposes: 00 7E 1F.
PROPOSED = (
    C.PRIORITY_MGMT_SUPPORTED
    | C.ATTRIBUTE0_SUPPORTED_WITH_GET
    | C.BLOCK_TRANSFER_WITH_GET_OR_READ
    | C.BLOCK_TRANSFER_WITH_SET_OR_WRITE
    | C.BLOCK_TRANSFER_WITH_ACTION
    | C.MULTIPLE_REFERENCES
    | C.GET
    | C.SET
    | C.SELECTIVE_ACCESS
    | C.EVENT_NOTIFICATION
    | C.ACTION
)
GB10_INITIATE = InitiateRequest(PROPOSED, client_max_receive_pdu_size=1200)

AARQ_NO_SECURITY = H("601DA109060760857405080101BE10040E01000000065F1F0400007E1F04B0")  # GB10
AARQ_LLS = H(  # GB10: LLS, password "12345678"
    "6036A1090607608574050801018A0207808B0760857405080201AC0A80083132333435363738"
    "BE10040E01000000065F1F0400007E1F04B0"
)
AARQ_HLS_GMAC = H(  # GB10 / EICT: HLS-GMAC, challenge CtoS "K56iVagY"
    "6036A1090607608574050801018A0207808B0760857405080205AC0A80084B35366956616759"
    "BE10040E01000000065F1F0400007E1F04B0"
)
AARQ_CIPHERED_LLS = H(  # GB10: LN with ciphering, system title "MMM\0\0\xbcaN", glo-initiateRequest
    "6066A109060760857405080103A60A04084D4D4D0000BC614E8A0207808B0760857405080201"
    "AC0A80083132333435363738BE34043221303001234567801302FF8A7874133D414CED25B4"
    "2534D28DB0047720606B175BD52211BE6841DB204D39EE6FDB8E356855"
)
AARE_ACCEPTED = H(  # the AARE answering AARQ_NO_SECURITY: conformance 00 1E 1D, PDU 1224
    "6129A109060760857405080101A203020100A305A103020100BE10040E0800065F1F0400001E1D04C80007"
)
AARE_ACCEPTED_500 = H(  # GB10
    "6129A109060760857405080101A203020100A305A103020100BE10040E0800065F1F040000501F01F40007"
)
AARE_BAD_CONTEXT = H(  # GB10: rejected-permanent, application-context-name-not-supported
    "6129A109060760857405080101A203020101A305A103020102BE10040E0800065F1F040000501F01F40007"
)
AARE_VERSION_TOO_LOW = H(  # GB10: rejected, initiateError dlms-version-too-low
    "611FA109060760857405080101A203020101A305A103020101BE0604040E010601"
)
AARE_HLS_GMAC = H(  # GB10: accepted, authentication-required, StoC "P6wRJ21F"
    "6142A109060760857405080101A203020100A305A10302010E88020780890760857405080205"
    "AA0A8008503677524A323146BE10040E0800065F1F040000501F01F40007"
)
AARE_WITH_QOS = H(  # EICT: negotiated-quality-of-service present (0)
    "612AA109060760857405080101A203020100A305A103020100BE11040F080100065F1F0400007C1F04000007"
)
AARE_CIPHERED = H(  # GO: LN with ciphering, server system title 4C475A2022604828
    "6148A109060760857405080103A203020100A305A103020100A40A04084C475A2022604828"
    "BE230421281F300000003149963E23D6DA824A369644B66A9A17C60C3CA3F63E58608FA192"
)
AARE_CIPHERED_HLS = H(  # HX: ciphered context, HLS-GMAC, StoC "F0C5759B"
    "6161A109060760857405080103A203020100A305A10302010EA40A040848584501353EC609"
    "88020780890760857405080205AA0A80084630433537353942BE230421281F3000000DF7EC99"
    "33D1A0BE2DF245B2768E39EB37E3869E960F795B6861BEAB"
)
RLRE_CIPHERED = H(  # GB10: RLRE reason normal with a glo-initiateResponse
    "6328800100BE230421281F3001234567891214A0845E475714383F65BC19745CA235906525E4F3E1C893"
)
RLRE_PLAIN_INITIATE = H("6316800100BE11040F080100065F1F0400001E1D04C80007")  # GB10

GOLDEN = [
    AARQ_NO_SECURITY,
    AARQ_LLS,
    AARQ_HLS_GMAC,
    AARQ_CIPHERED_LLS,
    AARE_ACCEPTED,
    AARE_ACCEPTED_500,
    AARE_BAD_CONTEXT,
    AARE_VERSION_TOO_LOW,
    AARE_HLS_GMAC,
    AARE_WITH_QOS,
    AARE_CIPHERED,
    AARE_CIPHERED_HLS,
    RLRE_CIPHERED,
    RLRE_PLAIN_INITIATE,
    H("6200"),
    H("6203800100"),
    H("6300"),
    H("6303800100"),
]


@pytest.mark.parametrize("encoded", GOLDEN, ids=lambda b: b[:6].hex())
def test_golden_vectors_decode_and_encode_back_to_the_same_bytes(encoded: bytes) -> None:
    assert encode_acse(decode_acse(encoded)) == encoded


def test_aarq_without_security_is_built_byte_for_byte() -> None:
    assert encode_acse(Aarq.build(GB10_INITIATE)) == AARQ_NO_SECURITY
    aarq = decode_acse(AARQ_NO_SECURITY)
    assert aarq == Aarq(GB10_INITIATE)
    assert isinstance(aarq, Aarq)
    assert aarq.application_context is ApplicationContext.LN_NO_CIPHERING
    assert not aarq.authentication and aarq.mechanism is None


def test_aarq_with_lls_carries_the_password() -> None:
    aarq = Aarq.build(GB10_INITIATE, mechanism=AuthenticationMechanism.LOW, secret=b"12345678")
    assert encode_acse(aarq) == AARQ_LLS
    decoded = decode_acse(AARQ_LLS)
    assert decoded == aarq
    assert isinstance(decoded, Aarq)
    assert decoded.mechanism is AuthenticationMechanism.LOW
    assert decoded.calling_authentication_value == b"12345678"


def test_aarq_with_hls_gmac_carries_the_client_challenge() -> None:
    aarq = Aarq.build(
        GB10_INITIATE, mechanism=AuthenticationMechanism.HIGH_GMAC, secret=b"K56iVagY"
    )
    assert encode_acse(aarq) == AARQ_HLS_GMAC
    assert decode_acse(AARQ_HLS_GMAC) == aarq


def test_ciphered_aarq_keeps_the_glo_initiate_request_opaque_with_the_system_title() -> None:
    aarq = decode_acse(AARQ_CIPHERED_LLS)
    assert isinstance(aarq, Aarq)
    assert aarq.application_context is ApplicationContext.LN_CIPHERING
    assert aarq.calling_ap_title == b"MMM\x00\x00\xbcaN"
    assert aarq.mechanism is AuthenticationMechanism.LOW
    assert aarq.calling_authentication_value == b"12345678"
    assert isinstance(aarq.user_information, bytes)
    assert aarq.user_information[:7] == H("21303001234567")  # tag, length, SC, IC
    rebuilt = Aarq.build(
        aarq.user_information,
        mechanism=AuthenticationMechanism.LOW,
        secret=b"12345678",
        context=ApplicationContext.LN_CIPHERING,
        system_title=b"MMM\x00\x00\xbcaN",
    )
    assert encode_acse(rebuilt) == AARQ_CIPHERED_LLS


def test_ciphered_hls_gmac_aarq_built_by_hand_from_the_standard_layout() -> None:
    # A6 calling-AP-title, 8A acse-requirements, 8B mechanism 5, AC challenge, BE glo-initiate
    glo = H("2103") + H("300000")  # a (tiny) glo-initiateRequest: tag, length 3, content
    aarq = Aarq.build(
        glo,
        mechanism=AuthenticationMechanism.HIGH_GMAC,
        secret=b"0123456789ABCDEF",
        context=ApplicationContext.LN_CIPHERING,
        system_title=H("4D4D4D0000BC614E"),
    )
    body = (
        H("A109060760857405080103")
        + H("A60A04084D4D4D0000BC614E")
        + H("8A020780")
        + H("8B0760857405080205")
        + H("AC128010")
        + b"0123456789ABCDEF"
        + H("BE0704052103300000")
    )
    assert encode_acse(aarq) == bytes((0x60, len(body))) + body
    assert decode_acse(encode_acse(aarq)) == aarq


def test_aare_accepted_carries_the_negotiated_initiate_response() -> None:
    aare = decode_acse(AARE_ACCEPTED)
    expected_conformance = (
        C.BLOCK_TRANSFER_WITH_GET_OR_READ
        | C.BLOCK_TRANSFER_WITH_SET_OR_WRITE
        | C.BLOCK_TRANSFER_WITH_ACTION
        | C.MULTIPLE_REFERENCES
        | C.GET
        | C.SET
        | C.SELECTIVE_ACCESS
        | C.ACTION
    )
    assert aare == Aare(
        AssociationResult.ACCEPTED,
        AcseServiceUserDiagnostic.NULL,
        InitiateResponse(expected_conformance, 1224),
    )
    assert isinstance(aare, Aare) and aare.accepted
    raise_for_aare(aare)  # no error


def test_aare_with_quality_of_service_and_vaa_name() -> None:
    aare = decode_acse(AARE_WITH_QOS)
    assert isinstance(aare, Aare)
    info = aare.user_information
    assert isinstance(info, InitiateResponse)
    assert info.negotiated_quality_of_service == 0
    assert info.server_max_receive_pdu_size == 0x0400
    assert info.vaa_name == VAA_NAME_LN


def test_aare_hls_gmac_gives_the_server_challenge() -> None:
    aare = decode_acse(AARE_HLS_GMAC)
    assert isinstance(aare, Aare)
    assert aare.accepted
    assert aare.diagnostic is AcseServiceUserDiagnostic.AUTHENTICATION_REQUIRED
    assert aare.authentication and aare.mechanism is AuthenticationMechanism.HIGH_GMAC
    assert aare.responding_authentication_value == b"P6wRJ21F"


@pytest.mark.parametrize("encoded", [AARE_CIPHERED, AARE_CIPHERED_HLS])
def test_ciphered_aare_gives_the_server_system_title_and_opaque_response(encoded: bytes) -> None:
    aare = decode_acse(encoded)
    assert isinstance(aare, Aare)
    assert aare.application_context is ApplicationContext.LN_CIPHERING
    assert aare.responding_ap_title is not None and len(aare.responding_ap_title) == 8
    assert isinstance(aare.user_information, bytes)
    assert aare.user_information[0] == 0x28  # glo-initiateResponse


def test_rejected_aare_names_its_diagnostic() -> None:
    aare = decode_acse(AARE_BAD_CONTEXT)
    assert isinstance(aare, Aare)
    assert aare.result is AssociationResult.REJECTED_PERMANENT
    assert aare.diagnostic is AcseServiceUserDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED
    with pytest.raises(AssociationRejectedError) as caught:
        raise_for_aare(aare)
    assert caught.value.result == 1 and caught.value.diagnostic == 2
    assert "application-context-name-not-supported" in str(caught.value)


def test_rejected_aare_with_confirmed_service_error() -> None:
    aare = decode_acse(AARE_VERSION_TOO_LOW)
    assert isinstance(aare, Aare)
    error = aare.user_information
    assert error == ConfirmedServiceError.initiate(InitiateError.DLMS_VERSION_TOO_LOW)
    assert isinstance(error, ConfirmedServiceError)
    assert error.initiate_error is InitiateError.DLMS_VERSION_TOO_LOW
    assert error.describe() == "initiate-error: initiate: dlms-version-too-low"
    with pytest.raises(AssociationRejectedError, match="dlms-version-too-low"):
        raise_for_aare(aare)


def test_aare_rejected_by_the_acse_service_provider() -> None:
    aare = Aare(
        AssociationResult.REJECTED_TRANSIENT, AcseServiceProviderDiagnostic.NO_COMMON_ACSE_VERSION
    )
    encoded = encode_acse(aare)
    assert encoded == H("6117A109060760857405080101A203020102A305A203020102")
    assert decode_acse(encoded) == aare


def test_release_request_and_response() -> None:
    assert decode_acse(H("6200")) == Rlrq()
    assert decode_acse(H("6203800100")) == Rlrq(ReleaseRequestReason.NORMAL)
    assert decode_acse(H("6300")) == Rlre()
    assert decode_acse(H("6303800100")) == Rlre(ReleaseResponseReason.NORMAL)
    rlre = decode_acse(RLRE_PLAIN_INITIATE)
    assert isinstance(rlre, Rlre) and isinstance(rlre.user_information, InitiateResponse)
    ciphered = decode_acse(RLRE_CIPHERED)
    assert isinstance(ciphered, Rlre) and isinstance(ciphered.user_information, bytes)


def test_initiate_request_optional_fields_in_a_xdr() -> None:
    request = InitiateRequest(
        C.GET, 0x0400, dedicated_key=bytes(range(16)), response_allowed=False,
        proposed_quality_of_service=-1,
    )  # fmt: skip
    encoded = encode_initiate(request)
    # 01, dedicated-key present (16), response-allowed FALSE, QoS -1, version 6, conformance, size
    assert encoded == (
        H("010110") + bytes(range(16)) + H("0100") + H("01FF") + H("06")
        + H("5F1F0400000010") + H("0400")
    )  # fmt: skip
    assert decode_initiate(encoded) == request


def test_conformance_bits_are_the_green_book_positions() -> None:
    # Bit n of the 24-bit string is 1 << (23 - n): 00 7E 1F is the GB10 proposal.
    assert PROPOSED.to_bytes3() == H("007E1F")
    assert C.READ.to_bytes3() == H("100000")  # bit 3
    assert C.GENERAL_PROTECTION.to_bytes3() == H("400000")  # bit 1
    assert C.ATTRIBUTE0_SUPPORTED_WITH_SET.to_bytes3() == H("008000")  # bit 8
    assert C.DATA_NOTIFICATION.to_bytes3() == H("000080")  # bit 16
    assert C.GET.to_bytes3() == H("000010")  # bit 19
    assert C.ACTION.to_bytes3() == H("000001")  # bit 23
    assert C.from_bytes3(H("001E1D")).names() == (
        "block-transfer-with-get-or-read",
        "block-transfer-with-set-or-write",
        "block-transfer-with-action",
        "multiple-references",
        "get",
        "set",
        "selective-access",
        "action",
    )


def test_negotiate_conformance_grants_what_both_support() -> None:
    server = C.GET | C.SET | C.ACTION | C.SELECTIVE_ACCESS | C.BLOCK_TRANSFER_WITH_GET_OR_READ
    granted = negotiate_conformance(PROPOSED, server)
    assert granted == server
    assert negotiate_conformance(C.GET | C.READ, C.SET) == C(0)
    assert negotiate_conformance(C.GET | C.GENERAL_PROTECTION, server) == C.GET


# --- strictness ---------------------------------------------------------------------------


def _wrap(tag: int, body: bytes) -> bytes:
    return bytes((tag, len(body))) + body


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        (H(""), "truncated"),
        (H("60"), "truncated"),
        (H("601E") + AARQ_NO_SECURITY[2:], "truncated"),
        (AARQ_NO_SECURITY + H("00"), "after the ACSE APDU"),
        (H("6403800100"), "not an ACSE APDU"),
        (H("6000"), "no application-context-name"),
        # elements out of order: user-information before the context name
        (_wrap(0x60, AARQ_NO_SECURITY[13:] + AARQ_NO_SECURITY[2:13]), "out of order"),
        # an element ACSE does not define for an AARQ ([14])
        (H("6002AE00"), "unexpected element tag 0xAE"),
        # the application context of another organisation
        (H("600BA109060760857405090101"), "not a DLMS UA object identifier"),
        # mechanism-name without the authentication functional unit
        (H("6014A1090607608574050801018B0760857405080201"), "functional"),
        # authentication value in the bit-string form
        (H("600FA109060760857405080101AC028100"), "expected tag 0x80"),
        # user-information that is not an initiateRequest
        (H("6011A109060760857405080101BE040402C001"), "0xC0 is not an initiateRequest"),
        # a glo-initiateRequest whose length is wrong
        (H("6012A109060760857405080103BE0504032105AA"), "as long as it says"),
        # an initiateRequest with a presence flag of 2
        (H("601DA109060760857405080101BE10040E01020000065F1F0400007E1F04B0"), "presence flag"),
        # a conformance block that is not [APPLICATION 31] of 24 bits
        (H("601DA109060760857405080101BE10040E01000000065F1F0500007E1F04B0"), "APPLICATION 31"),
        # AARE without result
        (H("610BA109060760857405080101"), "lacks result"),
        # AARE with an undefined result value
        (_wrap(0x61, H("A109060760857405080101A203020103A305A103020100")), "not a defined value"),
        # AARE diagnostic from an undefined source [3]
        (_wrap(0x61, H("A109060760857405080101A203020100A305A303020100")), "unknown source"),
        # RLRQ with reason 5
        (H("6203800105"), "not a defined value"),
        # an indefinite BER length
        (H("6080"), "length form"),
    ],
)
def test_malformed_acse_is_a_decode_error(encoded: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_acse(encoded)


def test_unused_acse_fields_are_skipped_where_the_standard_allows_them() -> None:
    # called-AP-invocation-id [4] and implementation-information [29] are ACSE fields DLMS
    # does not use: skipped. Everything else stays as it was.
    body = AARQ_NO_SECURITY[2:13] + H("A403020101") + H("9D026869") + AARQ_NO_SECURITY[13:]
    assert decode_acse(bytes((0x60, len(body))) + body) == decode_acse(AARQ_NO_SECURITY)


def test_unknown_context_and_mechanism_decode_so_the_server_can_answer_them() -> None:
    # context 9 and mechanism 42 are not defined, yet the AARQ decodes; the association
    # replies application-context-name-not-supported / mechanism-name-not-recognised.
    body = H("A109060760857405080109") + H("8A020780") + H("8B076085740508022A")
    aarq = decode_acse(bytes((0x60, len(body))) + body)
    assert isinstance(aarq, Aarq)
    assert aarq.application_context == 9 and aarq.mechanism == 42
    assert aarq.user_information is None


def test_messages_check_themselves_when_built() -> None:
    with pytest.raises(DlmsLocalError):
        Aarq(GB10_INITIATE, mechanism=AuthenticationMechanism.LOW)  # without authentication
    with pytest.raises(DlmsLocalError):
        Aarq(GB10_INITIATE, authentication=True)  # without a mechanism
    with pytest.raises(DlmsLocalError, match="system title"):
        Aarq.build(GB10_INITIATE, context=ApplicationContext.LN_CIPHERING)
    with pytest.raises(DlmsLocalError, match="needs a secret"):
        Aarq.build(GB10_INITIATE, mechanism=AuthenticationMechanism.HIGH_GMAC)
    with pytest.raises(DlmsLocalError):
        Aarq(b"\x01\x00")  # plain bytes are not a ciphered APDU
    with pytest.raises(DlmsLocalError):
        InitiateRequest(C.GET, 0x10000)
    with pytest.raises(DlmsLocalError):
        ConfirmedServiceError(ConfirmedService.INITIATE_ERROR, ServiceErrorType.INITIATE, 9)
    with pytest.raises(DlmsLocalError):
        Aare(AssociationResult.ACCEPTED, AcseServiceUserDiagnostic.NULL, user_information=H("01"))


# --- Hypothesis: round trips and fuzzing --------------------------------------------------

conformances = st.integers(0, 0xFFFFFF).map(C)
u16 = st.integers(0, 0xFFFF)
titles = st.none() | st.binary(min_size=8, max_size=8)
blobs = st.none() | st.binary(max_size=300)
initiate_requests = st.builds(
    InitiateRequest,
    conformances,
    u16,
    st.integers(0, 255),
    st.none() | st.binary(min_size=1, max_size=32),
    st.booleans(),
    st.none() | st.integers(-128, 127),
)
initiate_responses = st.builds(
    InitiateResponse,
    conformances,
    u16,
    st.integers(0, 255),
    st.none() | st.integers(-128, 127),
    st.sampled_from([VAA_NAME_LN, VAA_NAME_SN]),
)
service_errors = st.sampled_from(
    [
        ConfirmedServiceError.initiate(e) for e in InitiateError
    ] + [ConfirmedServiceError(ConfirmedService.READ, ServiceErrorType.ACCESS, 2)]
)  # fmt: skip


def _ciphered(tag: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=5, max_size=200).map(lambda c: bytes((tag, len(c))) + c)


contexts = st.sampled_from(list(ApplicationContext)) | st.integers(0, 127)


@st.composite
def authentications(draw: st.DrawFn) -> tuple[bool, int | None, bytes | None]:
    if not draw(st.booleans()):
        return False, None, None
    mechanism = draw(st.sampled_from(list(AuthenticationMechanism)) | st.integers(0, 127))
    return True, mechanism, draw(blobs)


@st.composite
def aarqs(draw: st.DrawFn) -> Aarq:
    auth, mechanism, value = draw(authentications())
    info = draw(st.none() | initiate_requests | _ciphered(0x21))
    return Aarq(
        info, draw(contexts), auth, mechanism, value, draw(titles), draw(blobs), draw(titles)
    )


@st.composite
def aares(draw: st.DrawFn) -> Aare:
    auth, mechanism, value = draw(authentications())
    diagnostic = draw(
        st.sampled_from(list(AcseServiceUserDiagnostic) + list(AcseServiceProviderDiagnostic))
    )
    info = draw(st.none() | initiate_responses | service_errors | _ciphered(0x28))
    return Aare(
        draw(st.sampled_from(list(AssociationResult))),
        diagnostic,
        info,
        draw(contexts),
        auth,
        mechanism,
        value,
        draw(titles),
        draw(blobs),
    )


releases = st.builds(
    Rlrq, st.none() | st.sampled_from(list(ReleaseRequestReason)), st.none() | initiate_requests
) | st.builds(
    Rlre, st.none() | st.sampled_from(list(ReleaseResponseReason)), st.none() | _ciphered(0x28)
)


@given(aarqs() | aares() | releases)
def test_every_acse_apdu_round_trips(apdu: Aarq | Aare | Rlrq | Rlre) -> None:
    assert decode_acse(encode_acse(apdu)) == apdu


@given(initiate_requests | initiate_responses | service_errors)
def test_every_initiate_pdu_round_trips(
    pdu: InitiateRequest | InitiateResponse | ConfirmedServiceError,
) -> None:
    assert decode_initiate(encode_initiate(pdu)) == pdu


@given(st.binary(max_size=120))
def test_random_bytes_are_only_ever_a_decode_error(data: bytes) -> None:
    candidates = (data, _wrap(0x60, data[:127]), _wrap(0x61, data[:127]), _wrap(0x63, data[:127]))
    for candidate in candidates:
        with contextlib.suppress(DecodeError):
            decode_acse(candidate)
    with contextlib.suppress(DecodeError):
        decode_initiate(data)


@given(st.sampled_from(GOLDEN), st.randoms(use_true_random=False), st.integers(1, 6))
def test_mutated_golden_vectors_are_only_ever_a_decode_error(
    encoded: bytes, rnd: random.Random, flips: int
) -> None:
    mutated = bytearray(encoded)
    for _ in range(flips):
        choice = rnd.randrange(3)
        where = rnd.randrange(len(mutated) + 1)
        if choice == 0 and where < len(mutated):
            mutated[where] = rnd.randrange(256)
        elif choice == 1:
            mutated.insert(where, rnd.randrange(256))
        elif where < len(mutated):
            del mutated[where]
    try:
        apdu = decode_acse(bytes(mutated))
    except DecodeError:
        return
    assert decode_acse(encode_acse(apdu)) == apdu  # whatever decodes is a valid message
