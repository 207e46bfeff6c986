"""Security suite 0 and HLS-GMAC between DlmsClient and DlmsServer: both ciphering styles,
counters that only go up (replays refused by the server and by the client, also across
restarts), wrong keys, altered tags, downgrades and a wrong f(CtoS)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from codec.dlms.test_client_server import (  # type: ignore[import-not-found]
    AK,
    CLIENT_TITLE,
    CLOCK,
    EK,
    ENERGY,
    FRAMINGS,
    MANAGEMENT,
    PROFILE,
    SERVER_TITLE,
    STOC,
    Pipe,
    associate,
    client_settings,
    pair,
    server_settings,
    stamp,
)
from meterledger.codec.dlms.apdu import ExceptionResponse, GetResponseNormal, encode
from meterledger.codec.dlms.association import (
    AssociationState,
    AuthenticationRejectedError,
    CipheringRejectedError,
)
from meterledger.codec.dlms.client import (
    ActionCompleted,
    Associated,
    DlmsClient,
    GetResult,
    SetResult,
)
from meterledger.codec.dlms.codes import (
    AcseServiceUserDiagnostic,
    DataAccessResult,
    ExceptionServiceError,
    ExceptionStateError,
)
from meterledger.codec.dlms.cosem import parse_buffer
from meterledger.codec.dlms.data import Data, DataType
from meterledger.codec.dlms.errors import (
    AssociationRejectedError,
    ExceptionResponseError,
    SecurityError,
)
from meterledger.codec.dlms.server import (
    PUBLIC_CLIENT,
    AssociationOpened,
    AssociationRefused,
    ClientPolicy,
    DlmsServer,
    RequestRefused,
)
from meterledger.codec.dlms.wrapper import encode_wrapper

GLO_GET_REQUEST, GLO_GET_RESPONSE, GENERAL_GLO = 0xC8, 0xCC, 0xDB
SERVER_EPOCH = datetime(2024, 6, 1, tzinfo=UTC)


def apdu_of(wrapped: bytes) -> bytes:
    """The APDU of one wrapper PDU."""
    return wrapped[8:]


def from_server(apdu: bytes, client_sap: int = 1) -> bytes:
    return encode_wrapper(1, client_sap, apdu)


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("ciphering", ["glo", "general-glo"])
@pytest.mark.parametrize("auth", ["none", "low", "hls-gmac"])
def test_suite_0_in_either_style(framing: str, ciphering: str, auth: str) -> None:
    pipe = associate(
        framing, auth=auth, security="auth-enc", ciphering=ciphering, server={"max_pdu": 72}
    )
    opened = [e for e in pipe.server_events if isinstance(e, AssociationOpened)]
    assert opened[-1].ciphered and opened[-1].client_system_title == CLIENT_TITLE
    assert pipe.client.server_system_title == SERVER_TITLE

    request = pipe.client.get(3, ENERGY, 2)
    assert ENERGY not in request  # the logical name travels encrypted
    if framing == "wrapper":
        answer = pipe.to_server(request)
        want_request = GLO_GET_REQUEST if ciphering == "glo" else GENERAL_GLO
        want_answer = GLO_GET_RESPONSE if ciphering == "glo" else GENERAL_GLO
        assert apdu_of(request)[0] == want_request and apdu_of(answer)[0] == want_answer
        events = pipe.to_client(answer)
    else:
        events = pipe.send(request)
    assert events == [GetResult(1 + (auth == "hls-gmac"), Data.uint32(100005))]

    rows = pipe.one(pipe.client.get(7, PROFILE, 2))  # ciphered blocks
    assert isinstance(rows, GetResult) and len(parse_buffer(rows.value)) == 96
    done = pipe.one(pipe.client.set(8, CLOCK, 2, stamp(SERVER_EPOCH)))
    assert isinstance(done, SetResult) and done.result is DataAccessResult.SUCCESS
    shifted = pipe.one(pipe.client.action(8, CLOCK, 6, Data(DataType.LONG, 5)))
    assert isinstance(shifted, ActionCompleted)

    # Every counter went once each way, and both ends agree on the last ones.
    assert pipe.server.last_client_counter == pipe.client.last_invocation_counter
    assert pipe.client.last_server_counter == pipe.server.last_invocation_counter


def test_counters_are_used_once_and_in_order() -> None:
    pipe = associate(auth="hls-gmac", security="auth-enc")
    # AARQ (glo-initiateRequest), f(StoC), the ciphered ACTION: three counters.
    assert pipe.client.last_invocation_counter == 1002
    # glo-initiateResponse, f(CtoS), the ciphered ACTION-Response.
    assert pipe.server.last_invocation_counter == 502
    pipe.one(pipe.client.get(3, ENERGY, 2))
    assert pipe.client.last_invocation_counter == 1003
    assert pipe.client.last_server_counter == 503


def test_server_refuses_a_replayed_request() -> None:
    pipe = associate(security="auth-enc")
    request = pipe.client.get(3, ENERGY, 2)
    assert pipe.to_client(pipe.to_server(request)) == [GetResult(1, Data.uint32(100005))]

    refused = pipe.to_server(request)  # the same bytes again
    assert apdu_of(refused)[0] == 0xD8  # exception-response, sent plain
    event = pipe.server_events[-1]
    assert isinstance(event, RequestRefused)
    assert event.service_error is ExceptionServiceError.INVOCATION_COUNTER_ERROR
    assert pipe.server.state is AssociationState.ASSOCIATED

    # The client reads the refusal as a security failure and stays associated.
    pipe.client.get(3, ENERGY, 2)
    with pytest.raises(CipheringRejectedError) as caught:
        pipe.to_client(refused)
    assert isinstance(caught.value, SecurityError)
    assert isinstance(caught.value, ExceptionResponseError)
    assert "expects invocation counter 1002" in str(caught.value)
    assert pipe.client.state is AssociationState.ASSOCIATED
    assert isinstance(pipe.one(pipe.client.get(3, ENERGY, 2)), GetResult)


def test_server_refuses_counters_reused_after_a_restart() -> None:
    first = associate(security="auth-enc")
    first.one(first.client.get(3, ENERGY, 2))
    remembered = first.server.last_client_counter
    assert remembered == 1001

    # The meter remembers; a client restarted with the same reservation is refused.
    policy = ClientPolicy(1, security="auth-enc")
    server = DlmsServer(
        server_settings(clients=(PUBLIC_CLIENT, policy), last_client_counter=remembered),
        first.server.objects,
    )
    client = DlmsClient(client_settings(client_sap=1, security="auth-enc"))
    pipe = Pipe(client, server)
    with pytest.raises(AuthenticationRejectedError) as caught:
        pipe.send(client.start())
    assert isinstance(caught.value, SecurityError)
    assert isinstance(pipe.server_events[-1], AssociationRefused)

    # A fresh reservation above the remembered counter works.
    client = DlmsClient(
        client_settings(client_sap=1, security="auth-enc", invocation_counters=range(5000, 6000))
    )
    pipe.client = client
    assert isinstance(pipe.one(client.start()), Associated)


def test_client_refuses_a_replayed_response() -> None:
    pipe = associate(security="auth-enc")
    first_answer = pipe.to_server(pipe.client.get(3, ENERGY, 2))
    pipe.to_client(first_answer)
    pipe.to_server(pipe.client.get(3, ENERGY, 2))  # the true answer is lost
    with pytest.raises(SecurityError, match="replayed"):
        pipe.to_client(first_answer)
    assert pipe.client.state is AssociationState.ERROR


def test_client_refuses_server_counters_it_has_seen_before() -> None:
    settings = {"last_server_counter": 10**6}  # persisted from an earlier session
    with pytest.raises(SecurityError, match="replayed"):
        associate(security="auth-enc", client=settings)


@pytest.mark.parametrize("framing", FRAMINGS)
def test_wrong_keys_are_a_security_error(framing: str) -> None:
    wrong = bytes(16)
    with pytest.raises(AuthenticationRejectedError) as caught:
        associate(framing, security="auth-enc", client={"ek": wrong})
    assert isinstance(caught.value, SecurityError)
    assert isinstance(caught.value, AssociationRejectedError)
    assert "deciphering-error" in str(caught.value)


@pytest.mark.parametrize("framing", FRAMINGS)
def test_hls_with_a_wrong_key_fails(framing: str) -> None:
    pipe = pair(
        client_settings(framing, client_sap=1, auth="hls-gmac", ak=bytes(16)),
        server_settings(framing, clients=(MANAGEMENT["hls-gmac"],)),
    )
    with pytest.raises(SecurityError, match="refused our f"):
        pipe.send(pipe.client.start())
    assert pipe.client.state is AssociationState.ERROR
    refused = [e for e in pipe.server_events if isinstance(e, AssociationRefused)]
    assert refused and refused[0].reason.startswith("HLS")
    assert pipe.server.state is AssociationState.CONNECTED  # not associated
    if framing == "hdlc":  # the link can still be closed from ERROR
        assert pipe.client.disconnect()


def test_hls_wrong_f_ctos_from_the_server() -> None:
    pipe = pair(
        client_settings(client_sap=1, auth="hls-gmac"),
        server_settings(clients=(MANAGEMENT["hls-gmac"],)),
    )
    aare = pipe.to_server(pipe.client.start())
    assert pipe.to_client(aare) == []
    reply = pipe.to_server(pipe.client.data_to_send())  # the reply_to_HLS ACTION
    forged = reply[:-1] + bytes((reply[-1] ^ 0x01,))  # the last octet of the GMAC tag
    with pytest.raises(SecurityError):
        pipe.to_client(forged)
    assert pipe.client.state is AssociationState.ERROR


def test_hls_gives_one_challenge_per_association() -> None:
    challenges = iter([STOC, bytes(range(32))])
    handed: list[bytes] = []

    def next_challenge() -> bytes:
        handed.append(next(challenges))
        return handed[-1]

    for _ in range(2):
        associate(auth="hls-gmac", server={"challenge": None, "next_challenge": next_challenge})
    assert handed == [STOC, bytes(range(32))]


def test_altered_tag_from_the_server() -> None:
    pipe = associate(security="auth-enc")
    answer = pipe.to_server(pipe.client.get(3, ENERGY, 2))
    forged = answer[:-1] + bytes((answer[-1] ^ 0x80,))
    with pytest.raises(SecurityError, match="tag"):
        pipe.to_client(forged)
    assert pipe.client.state is AssociationState.ERROR


def test_server_answers_an_altered_request_with_deciphering_error() -> None:
    pipe = associate(security="auth-enc")
    request = pipe.client.get(3, ENERGY, 2)
    answer = pipe.to_server(request[:-1] + bytes((request[-1] ^ 0x01,)))
    event = pipe.server_events[-1]
    assert isinstance(event, RequestRefused)
    assert event.service_error is ExceptionServiceError.DECIPHERING_ERROR
    with pytest.raises(CipheringRejectedError, match="deciphering-error"):
        pipe.to_client(answer)
    # The true request still goes through: a forgery does not move the server's counter.
    assert pipe.to_client(pipe.to_server(pipe.client.get(3, ENERGY, 2))) == [
        GetResult(2, Data.uint32(100005))
    ]


def test_client_refuses_an_unprotected_answer_in_a_ciphered_association() -> None:
    pipe = associate(security="auth-enc")
    pipe.client.get(3, ENERGY, 2)
    plain = encode(GetResponseNormal(0xC1, Data.uint32(0)))
    with pytest.raises(SecurityError, match="unprotected"):
        pipe.to_client(from_server(plain))


def test_server_refuses_an_unprotected_request_in_a_ciphered_association() -> None:
    pipe = associate(security="auth-enc")
    plain = bytes.fromhex("C001C100030100010800FF0200")
    answer = pipe.to_server(encode_wrapper(1, 1, plain))
    event = pipe.server_events[-1]
    assert isinstance(event, RequestRefused) and "unprotected" in event.reason
    assert apdu_of(answer) == encode(
        ExceptionResponse(
            ExceptionStateError.SERVICE_NOT_ALLOWED,
            ExceptionServiceError.OPERATION_NOT_POSSIBLE,
        )
    )


def test_ciphered_client_and_unciphered_policy() -> None:
    pipe = pair(
        client_settings(client_sap=1, security="auth-enc"),
        server_settings(clients=(ClientPolicy(1),)),
    )
    with pytest.raises(AssociationRejectedError) as caught:
        pipe.send(pipe.client.start())
    diagnostic = AcseServiceUserDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED
    assert caught.value.diagnostic == diagnostic
    assert not isinstance(caught.value, SecurityError)
    assert pipe.client.state is AssociationState.CONNECTED


def test_general_glo_responses_accepted_by_a_glo_client() -> None:
    """The client accepts either style from the server, whatever style it sends."""
    from meterledger.codec.dlms.security import AUTHENTICATED_ENCRYPTED, general_glo_cipher

    pipe = associate(security="auth-enc")
    pipe.client.get(3, ENERGY, 2)
    counter = (pipe.client.last_server_counter or 0) + 1
    answer = general_glo_cipher(
        encode(GetResponseNormal(0xC1, Data.uint32(7))),
        security=AUTHENTICATED_ENCRYPTED,
        system_title=SERVER_TITLE,
        invocation_counter=counter,
        ek=EK,
        ak=AK,
    )
    assert pipe.to_client(from_server(answer)) == [GetResult(1, Data.uint32(7))]
    # ... but not from another system title.
    pipe.client.get(3, ENERGY, 2)
    other = general_glo_cipher(
        encode(GetResponseNormal(0xC2, Data.uint32(7))),
        security=AUTHENTICATED_ENCRYPTED,
        system_title=bytes(8),
        invocation_counter=counter + 1,
        ek=EK,
        ak=AK,
    )
    with pytest.raises(SecurityError, match="system title"):
        pipe.to_client(from_server(other))


def test_lls_is_checked_even_with_ciphering() -> None:
    policy = replace(MANAGEMENT["low"], security="auth-enc")
    pipe = pair(
        client_settings(client_sap=1, auth="low", security="auth-enc", password=b"wrong"),
        server_settings(clients=(policy,)),
    )
    with pytest.raises(AuthenticationRejectedError) as caught:
        pipe.send(pipe.client.start())
    assert caught.value.diagnostic == AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE
