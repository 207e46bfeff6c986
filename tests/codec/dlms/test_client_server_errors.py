"""What goes wrong between DlmsClient and DlmsServer: rejected associations, exception
responses, aborted block transfers, calls out of order, used-up counters, and garbage —
the server answers it and never raises; the client raises only our typed errors."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec.dlms.test_client_server import (  # type: ignore[import-not-found]
    ENERGY,
    FRAMINGS,
    MANAGEMENT,
    PASSWORD,
    PROFILE,
    SMALL_HDLC,
    Meter,
    associate,
    client_settings,
    drain_server,
    pair,
    server_settings,
)
from meterledger.codec.dlms.apdu import (
    ExceptionResponse,
    GetRequestNext,
    GetResponseWithDatablock,
    decode_apdu,
    encode,
)
from meterledger.codec.dlms.association import (
    TRANSITIONS,
    AssociationMachine,
    AssociationState,
    AssociationTrigger,
    AuthenticationRejectedError,
    CipheringRejectedError,
    Role,
)
from meterledger.codec.dlms.client import ClientSettings, DlmsClient, GetFailed, GetResult
from meterledger.codec.dlms.codes import (
    AcseServiceUserDiagnostic,
    Conformance,
    DataAccessResult,
    ExceptionServiceError,
    ExceptionStateError,
)
from meterledger.codec.dlms.cursor import NEED_DATA
from meterledger.codec.dlms.data import Data
from meterledger.codec.dlms.errors import (
    AssociationRejectedError,
    DlmsLocalError,
    DlmsRemoteError,
    ExceptionResponseError,
    SecurityError,
)
from meterledger.codec.dlms.server import (
    PUBLIC_CLIENT,
    SERVER_CONFORMANCE,
    AssociationRefused,
    ClientPolicy,
    DlmsServer,
    RequestRefused,
    ServerSettings,
)
from meterledger.codec.dlms.wrapper import encode_wrapper

S = AssociationState


def exception_response(service: ExceptionServiceError) -> bytes:
    return encode(ExceptionResponse(ExceptionStateError.SERVICE_NOT_ALLOWED, service))


# --- rejected associations -------------------------------------------------------------------


@pytest.mark.parametrize("framing", FRAMINGS)
def test_wrong_password(framing: str) -> None:
    pipe = pair(
        client_settings(framing, client_sap=1, auth="low", password=b"not-this"),
        server_settings(framing),
    )
    with pytest.raises(AssociationRejectedError) as caught:
        pipe.send(pipe.client.start())
    assert caught.value.diagnostic == AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE
    assert isinstance(caught.value, AuthenticationRejectedError)  # also E09
    assert isinstance(caught.value, SecurityError)
    assert pipe.client.state is S.CONNECTED
    refused = pipe.server_events[-1]
    assert isinstance(refused, AssociationRefused) and "password" in refused.reason
    with pytest.raises(DlmsLocalError):  # not associated
        pipe.client.get(3, ENERGY, 2)
    assert pipe.client.state is S.ERROR


def test_rejected_association_leaves_the_hdlc_link_to_close() -> None:
    pipe = pair(
        client_settings("hdlc", client_sap=1, auth="low", password=b"not-this"),
        server_settings("hdlc"),
    )
    with pytest.raises(AssociationRejectedError):
        pipe.send(pipe.client.start())
    assert pipe.client.state is S.CONNECTED
    pipe.send(pipe.client.disconnect())
    assert pipe.client.state is S.DISCONNECTED


@pytest.mark.parametrize(
    ("client", "diagnostic"),
    [
        ({"client_sap": 7}, AcseServiceUserDiagnostic.NO_REASON_GIVEN),
        ({"client_sap": 1}, AcseServiceUserDiagnostic.AUTHENTICATION_MECHANISM_NAME_REQUIRED),
        (
            {"client_sap": 16, "auth": "low"},
            AcseServiceUserDiagnostic.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED,
        ),
        (
            {"client_sap": 1, "auth": "hls-gmac"},
            AcseServiceUserDiagnostic.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED,
        ),
    ],
)
def test_association_refusals(client: dict[str, object], diagnostic: int) -> None:
    pipe = pair(client_settings(**client), server_settings())
    with pytest.raises(AssociationRejectedError) as caught:
        pipe.send(pipe.client.start())
    assert caught.value.diagnostic == diagnostic
    assert not isinstance(caught.value, SecurityError)


def test_initiate_refused_for_a_tiny_pdu() -> None:
    pipe = pair(client_settings(max_receive_pdu=32), server_settings())
    with pytest.raises(AssociationRejectedError, match="pdu-size-too-short"):
        pipe.send(pipe.client.start())


def test_initiate_refused_without_common_services() -> None:
    pipe = pair(client_settings(conformance=Conformance.WRITE), server_settings())
    with pytest.raises(AssociationRejectedError, match="incompatible-conformance"):
        pipe.send(pipe.client.start())


# --- exception responses and failures inside an association ----------------------------------


def test_exception_response_keeps_the_association() -> None:
    pipe = associate()
    pipe.client.get(3, ENERGY, 2)
    refusal = encode_wrapper(1, 16, exception_response(ExceptionServiceError.SERVICE_NOT_SUPPORTED))
    with pytest.raises(ExceptionResponseError) as caught:
        pipe.to_client(refusal)
    assert not isinstance(caught.value, CipheringRejectedError)
    assert caught.value.service_error == ExceptionServiceError.SERVICE_NOT_SUPPORTED
    assert pipe.client.state is S.ASSOCIATED
    assert isinstance(pipe.one(pipe.client.get(3, ENERGY, 2)), GetResult)


def test_server_answers_requests_before_an_association() -> None:
    server = DlmsServer(server_settings(), Meter())
    server.receive_data(encode_wrapper(16, 1, bytes.fromhex("C001C100030100010800FF0200")))
    events = drain_server(server)
    assert isinstance(events[0], RequestRefused)
    assert decode_apdu(server.data_to_send()[8:]) == ExceptionResponse(
        ExceptionStateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.OPERATION_NOT_POSSIBLE
    )
    # An RLRQ without an association is answered all the same.
    server.receive_data(encode_wrapper(16, 1, bytes.fromhex("6203800100")))
    drain_server(server)
    assert server.data_to_send()[8] == 0x63


def test_aborted_block_transfer_is_a_failed_get() -> None:
    pipe = associate(server={"max_pdu": 64})
    first = pipe.to_server(pipe.client.get(7, PROFILE, 2))
    assert pipe.to_client(first) == []
    assert pipe.client.data_to_send()  # the GET-Request-Next the client wants to send
    wrong = encode(GetRequestNext(0xC1, 5))  # ask for the wrong block instead
    aborted = pipe.to_server(encode_wrapper(16, 1, wrong))
    block = decode_apdu(aborted[8:])
    assert isinstance(block, GetResponseWithDatablock)
    assert block.raw_data is DataAccessResult.DATA_BLOCK_NUMBER_INVALID
    assert pipe.to_client(aborted) == [GetFailed(1, DataAccessResult.DATA_BLOCK_NUMBER_INVALID)]
    assert pipe.client.state is S.ASSOCIATED
    # And a GET-Request-Next with nothing in progress.
    stray = pipe.to_server(encode_wrapper(16, 1, encode(GetRequestNext(0xC2, 1))))
    stray_block = decode_apdu(stray[8:])
    assert isinstance(stray_block, GetResponseWithDatablock)
    assert stray_block.raw_data is DataAccessResult.NO_LONG_GET_IN_PROGRESS


def test_block_out_of_order_is_fatal() -> None:
    pipe = associate(server={"max_pdu": 64})
    pipe.to_client(pipe.to_server(pipe.client.get(7, PROFILE, 2)))
    skipped = encode(GetResponseWithDatablock(0xC1, False, 3, b"\x00"))
    with pytest.raises(DlmsRemoteError, match="block 3, expected 2"):
        pipe.to_client(encode_wrapper(1, 16, skipped))
    assert pipe.client.state is S.ERROR


def test_response_for_another_invoke_id() -> None:
    pipe = associate()
    pipe.client.get(3, ENERGY, 2)
    other = bytes.fromhex("C401C5000600000001")  # invoke id 5
    with pytest.raises(DlmsRemoteError, match="invoke-id 5"):
        pipe.to_client(encode_wrapper(1, 16, other))


def test_conformance_not_granted() -> None:
    narrow = SERVER_CONFORMANCE & ~Conformance.MULTIPLE_REFERENCES
    pipe = associate(server={"conformance": narrow})
    with pytest.raises(DlmsLocalError, match="multiple-references"):
        pipe.client.get_with_list([(3, ENERGY, 2)])
    assert pipe.client.state is S.ASSOCIATED  # nothing was sent
    assert isinstance(pipe.one(pipe.client.get(3, ENERGY, 2)), GetResult)


def test_request_larger_than_the_server_pdu() -> None:
    pipe = associate(server={"max_pdu": 64})
    with pytest.raises(DlmsLocalError, match="exceeds"):
        pipe.client.set(1, ENERGY, 2, Data.octets(bytes(80)))


# --- local misuse --------------------------------------------------------------------------


def test_calls_out_of_order() -> None:
    client = DlmsClient(client_settings())
    with pytest.raises(DlmsLocalError):
        client.get(3, ENERGY, 2)
    assert client.state is S.ERROR
    with pytest.raises(DlmsLocalError, match="ERROR"):
        client.next_event()

    pipe = associate()
    pipe.client.get(3, ENERGY, 2)
    with pytest.raises(DlmsLocalError):  # one request at a time
        pipe.client.get(3, ENERGY, 2)
    assert pipe.client.state is S.ERROR

    pipe = associate()
    with pytest.raises(DlmsLocalError):
        pipe.client.start()
    pipe = associate()
    pipe.one(pipe.client.release())
    with pytest.raises(DlmsLocalError):
        pipe.client.release()


def test_bad_arguments_change_nothing() -> None:
    pipe = associate()
    with pytest.raises(DlmsLocalError):
        pipe.client.get(3, "1.0.1.8.0", 2)
    with pytest.raises(DlmsLocalError):
        pipe.client.get(70000, ENERGY, 2)
    with pytest.raises(DlmsLocalError):
        pipe.client.get_with_list([])
    assert pipe.client.state is S.ASSOCIATED


def test_counters_run_out() -> None:
    pipe = associate(security="auth-enc", client={"invocation_counters": range(1000, 1002)})
    assert isinstance(pipe.one(pipe.client.get(3, ENERGY, 2)), GetResult)
    with pytest.raises(DlmsLocalError, match="used up"):
        pipe.client.get(3, ENERGY, 2)
    assert pipe.client.state is S.ERROR


def test_counters_must_increase() -> None:
    pipe = associate(security="auth-enc", client={"invocation_counters": [7, 7]})
    with pytest.raises(DlmsLocalError, match="does not follow"):
        pipe.client.get(3, ENERGY, 2)


@pytest.mark.parametrize(
    "changes",
    [
        {"framing": "serial"},
        {"auth": "high"},
        {"auth": "low", "password": None},
        {"auth": "hls-gmac", "challenge": b"short"},
        {"security": "auth-enc", "system_title": b"short"},
        {"security": "auth-enc", "ek": None},
        {"ciphering": "ded"},
        {"max_receive_pdu": 5},
        {"address_size": 3},
    ],
)
def test_settings_check_themselves(changes: dict[str, object]) -> None:
    base = {"ek": bytes(16), "ak": bytes(16), "system_title": bytes(8), "challenge": bytes(8)}
    with pytest.raises(DlmsLocalError):
        ClientSettings(**{**base, **changes})  # type: ignore[arg-type]


def test_server_settings_check_themselves() -> None:
    with pytest.raises(DlmsLocalError):
        ServerSettings(clients=(ClientPolicy(1, "hls-gmac"),))  # no keys
    with pytest.raises(DlmsLocalError):
        ServerSettings(max_pdu=10)
    with pytest.raises(DlmsLocalError):
        ClientPolicy(1, "low")  # no password


def test_transition_table_is_complete_and_closed() -> None:
    states = set(AssociationState)
    for (role, state), moves in TRANSITIONS.items():
        assert isinstance(role, Role) and state in states
        assert set(moves.values()) <= states
    machine = AssociationMachine(Role.CLIENT)
    with pytest.raises(DlmsLocalError):
        machine.fire(AssociationTrigger.RESPONSE)
    assert machine.state is S.ERROR


# --- garbage ------------------------------------------------------------------------------

APDU_TAGS = st.sampled_from([0x60, 0x62, 0xC0, 0xC1, 0xC3, 0xC8, 0xDB, 0xD8, 0x01, 0xFF])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tag=APDU_TAGS,
    body=st.binary(max_size=80),
    associated=st.booleans(),
    security=st.sampled_from(["none", "auth-enc"]),
)
def test_server_answers_any_apdu_and_never_raises(
    tag: int, body: bytes, associated: bool, security: str
) -> None:
    if associated:
        pipe = associate(security=security)
        server, sap = pipe.server, 1 if security != "none" else 16
    else:
        server, sap = DlmsServer(server_settings(), Meter()), 16
    server.receive_data(encode_wrapper(sap, 1, bytes((tag,)) + body))
    events = drain_server(server)
    assert len(events) == 1
    assert server.data_to_send()  # always an answer: an AARE, RLRE or exception-response


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(noise=st.binary(max_size=200), framing=st.sampled_from(FRAMINGS))
def test_hdlc_noise_never_breaks_the_server(noise: bytes, framing: str) -> None:
    if framing == "wrapper":  # a broken wrapper stream is final: CorruptFrameError
        noise = b"\x00\x01" + noise
    server = DlmsServer(server_settings(framing, hdlc=SMALL_HDLC), Meter())
    server.receive_data(noise)
    try:
        drain_server(server)
    except DlmsRemoteError:
        assert framing == "wrapper"
    pipe = associate(framing)
    assert isinstance(pipe.one(pipe.client.get(3, ENERGY, 2)), GetResult)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    answer=st.binary(min_size=1, max_size=60),
    security=st.sampled_from(["none", "auth-enc"]),
    prefix=st.sampled_from([b"", b"\xc4\x01\xc1", b"\xc4\x02\xc1", b"\xcc", b"\xdb\x08"]),
)
def test_client_raises_only_typed_errors(answer: bytes, security: str, prefix: bytes) -> None:
    pipe = associate(security=security)
    pipe.client.get(3, ENERGY, 2)
    sap = 1 if security != "none" else 16
    pipe.client.receive_data(encode_wrapper(1, sap, prefix + answer))
    try:
        while pipe.client.next_event() is not NEED_DATA:
            pass
    except DlmsRemoteError:
        pass


def test_client_ignores_pdus_for_another_wport() -> None:
    pipe = associate()
    pipe.client.get(3, ENERGY, 2)
    answer = pipe.to_server(b"")  # nothing
    assert answer == b""
    pipe.client.receive_data(encode_wrapper(1, 99, b"\xc4\x01\xc1\x00\x06\x00\x00\x00\x01"))
    assert pipe.client.next_event() is NEED_DATA


def test_lls_password_compared_whole() -> None:
    pipe = pair(
        client_settings(client_sap=1, auth="low", password=PASSWORD + b"9"),
        server_settings(clients=(PUBLIC_CLIENT, MANAGEMENT["low"])),
    )
    with pytest.raises(AuthenticationRejectedError):
        pipe.send(pipe.client.start())
