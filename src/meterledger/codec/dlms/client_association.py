"""Opening and closing the client's association: the AARQ (an LLS password or an HLS
challenge, a ciphered InitiateRequest in a ciphered context), the AARE (accepted, rejected
or asking for HLS), the HLS-GMAC pass 3/4 (our ``reply_to_HLS_authentication`` ACTION
and the check of the server's f(CtoS)) and the RLRE.

:class:`ClientAssociation` is this part of
:class:`~meterledger.codec.dlms.client.DlmsClient`, on top of its
:class:`~meterledger.codec.dlms.client_services.ClientServices`.
"""

from __future__ import annotations

from meterledger.codec.dlms.acse import (
    Aare,
    Aarq,
    ConfirmedServiceError,
    InitiateRequest,
    InitiateResponse,
    Rlre,
    decode_initiate,
    raise_for_aare,
)
from meterledger.codec.dlms.apdu import (
    ActionRequestNormal,
    ActionResponseNormal,
    CosemMethodDescriptor,
    ExceptionResponse,
    decode_apdu,
    encode,
)
from meterledger.codec.dlms.association import (
    ASSOCIATION_LN,
    REPLY_TO_HLS_AUTHENTICATION,
    AssociationState,
    AssociationTrigger,
    AuthenticationRejectedError,
    Released,
)
from meterledger.codec.dlms.client_events import Associated, ClientEvent
from meterledger.codec.dlms.client_services import (
    _HLS,
    _INVOKE,
    ClientServices,
    _exception_error,
)
from meterledger.codec.dlms.client_settings import _MECHANISM
from meterledger.codec.dlms.codes import (
    AcseServiceUserDiagnostic,
    ActionResult,
    ApplicationContext,
    AuthenticationMechanism,
    Conformance,
    ServiceErrorType,
)
from meterledger.codec.dlms.data import Data, DataType
from meterledger.codec.dlms.errors import (
    AssociationRejectedError,
    DecodeError,
    DlmsLocalError,
    DlmsRemoteError,
    SecurityError,
)
from meterledger.codec.dlms.hls import hls_gmac_response, verify_hls_gmac

__all__ = ["ClientAssociation"]

_DECIPHERING = 6  # ServiceError application-reference: deciphering-error (Green Book 9.5)
_S = AssociationState
_T = AssociationTrigger


class ClientAssociation(ClientServices):
    """The association of :class:`~meterledger.codec.dlms.client.DlmsClient` (see the
    module doc); not used alone."""

    # The client's state, set up by DlmsClient.__init__.
    _initiate: bytes
    _conformance: Conformance
    _server_title: bytes | None

    def _aarq(self) -> bytes:
        self._machine.fire(_T.SEND_AARQ)
        settings = self.settings
        info: InitiateRequest | bytes = InitiateRequest(
            settings.conformance, settings.max_receive_pdu
        )
        cipher = self._cipher
        if self._ciphered:
            assert cipher is not None
            info = self._local(cipher.seal, self._initiate, "glo")  # glo-initiateRequest
        secret = settings.password if settings.auth == "low" else settings.challenge
        aarq = Aarq.build(
            info,
            mechanism=_MECHANISM[settings.auth],
            secret=secret,
            context=(
                ApplicationContext.LN_CIPHERING
                if self._ciphered
                else ApplicationContext.LN_NO_CIPHERING
            ),
            system_title=None if cipher is None else cipher.own_title,
        )
        return self._local(self._framing.wrap, encode(aarq))

    def _on_aare(self, apdu: bytes) -> ClientEvent | None:
        aare = decode_apdu(apdu)
        if isinstance(aare, ExceptionResponse):
            raise _exception_error(aare)
        if not isinstance(aare, Aare):
            raise DecodeError(f"{type(aare).__name__} where the AARE was expected")
        machine = self._machine
        if not aare.accepted:
            machine.fire(_T.AARE_REJECTED)
            self._soft = True
            raise _rejection(aare)
        cipher = self._cipher
        if cipher is not None:
            title = aare.responding_ap_title
            if title is None or len(title) != 8:
                raise SecurityError("the AARE does not carry the server system title")
            cipher.peer_title = self._server_title = title
        carried = aare.user_information
        info: object = carried
        if isinstance(carried, bytes):
            if cipher is None:
                raise DecodeError("a ciphered InitiateResponse in an unciphered association")
            info = decode_initiate(cipher.open(carried).plain_apdu)
        if not isinstance(info, InitiateResponse):
            raise DecodeError("the accepting AARE carries no InitiateResponse")
        self._conformance = info.negotiated_conformance
        self._granted = int(info.negotiated_conformance)
        self._server_max_pdu = info.server_max_receive_pdu_size
        hls_asked = aare.diagnostic is AcseServiceUserDiagnostic.AUTHENTICATION_REQUIRED
        if self.settings.auth != "hls-gmac":
            if hls_asked:
                raise DlmsRemoteError("the server asks for HLS, which was not proposed")
            machine.fire(_T.AARE_ACCEPTED)
            return self._associated()
        challenge = aare.responding_authentication_value
        if (
            not hls_asked
            or aare.mechanism is not AuthenticationMechanism.HIGH_GMAC
            or challenge is None
        ):
            raise SecurityError("the server accepted HLS-GMAC without its challenge (StoC)")
        assert cipher is not None
        machine.fire(_T.AARE_HLS)
        reply = hls_gmac_response(
            challenge,
            system_title=cipher.own_title,
            invocation_counter=cipher.next_counter(),
            ak=cipher.ak,
            ek=cipher.ek,
        )
        self._invoke = invoke = (self._invoke + 1) & 0x0F
        self._waiting = _HLS
        descriptor = CosemMethodDescriptor(15, ASSOCIATION_LN, REPLY_TO_HLS_AUTHENTICATION)
        request = ActionRequestNormal(_INVOKE[invoke], descriptor, Data.octets(reply))
        self._out.append(self._send(encode(request)))
        return None

    def _on_hls_reply(self, plain: bytes) -> ClientEvent:
        response = decode_apdu(plain)
        if isinstance(response, ExceptionResponse):
            raise _exception_error(response)
        if not isinstance(response, ActionResponseNormal):
            raise DecodeError(f"{type(response).__name__} answers reply_to_HLS_authentication")
        self._check_invoke(response.invoke_id_and_priority)
        if response.result is not ActionResult.SUCCESS:
            raise SecurityError(f"the server refused our f(StoC): {response.result.standard_name}")
        data = response.return_data
        if not isinstance(data, Data) or data.type is not DataType.OCTET_STRING:
            raise SecurityError("the server's HLS reply carries no f(CtoS)")
        cipher = self._cipher
        assert cipher is not None and self._server_title is not None
        assert self.settings.challenge is not None and isinstance(data.value, bytes)
        verify_hls_gmac(
            data.value,
            self.settings.challenge,
            system_title=self._server_title,
            ak=cipher.ak,
            ek=cipher.ek,
        )
        self._machine.fire(_T.HLS_PASSED)
        return self._associated()

    def _associated(self) -> Associated:
        return Associated(self._server_title, self._conformance, self._server_max_pdu)

    def _on_rlre(self, apdu: bytes) -> ClientEvent:
        rlre = decode_apdu(apdu)
        if not isinstance(rlre, Rlre):
            raise DecodeError(f"{type(rlre).__name__} where the RLRE was expected")
        self._machine.fire(_T.RLRE)
        return Released(rlre.reason)


def _rejection(aare: Aare) -> AssociationRejectedError:
    try:
        raise_for_aare(aare)
    except AssociationRejectedError as exc:
        info = aare.user_information
        deciphering = (
            isinstance(info, ConfirmedServiceError)
            and info.error_type is ServiceErrorType.APPLICATION_REFERENCE
            and info.value == _DECIPHERING
        )
        if deciphering or aare.diagnostic is AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE:
            return AuthenticationRejectedError(exc.result, exc.diagnostic, str(exc))
        return exc
    raise DlmsLocalError("the AARE was accepted")  # pragma: no cover - callers check first
