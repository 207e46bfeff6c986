"""Opening, authenticating and releasing an association on the server. The AARQ is
checked against the :class:`~meterledger.codec.dlms.server_settings.ClientPolicy` of its
client SAP (application context, mechanism, LLS password, client system title, a ciphered
InitiateRequest, the xDLMS context offered) and answered with an accepting AARE, or a
rejecting one with the Green Book diagnostic; HLS-GMAC goes on to pass 3/4 (the client's
``reply_to_HLS_authentication``); an RLRQ is answered with an RLRE.

:class:`ServerAssociation` is this part of
:class:`~meterledger.codec.dlms.server.DlmsServer`: the state it works on is the server's
(set up by ``DlmsServer.__init__`` and :meth:`ServerAssociation._reset`), and ``_send``
and ``_client_sap`` are the server's, which owns the framing.
"""

from __future__ import annotations

from collections.abc import Callable

from meterledger.codec.dlms.acse import (
    Aare,
    Aarq,
    ConfirmedServiceError,
    InitiateRequest,
    InitiateResponse,
    Rlre,
    Rlrq,
    decode_initiate,
    encode_initiate,
    negotiate_conformance,
)
from meterledger.codec.dlms.apdu import (
    ActionRequestNormal,
    ActionResponseNormal,
    Apdu,
    decode_apdu,
    encode,
)
from meterledger.codec.dlms.association import (
    ASSOCIATION_LN,
    REPLY_TO_HLS_AUTHENTICATION,
    AssociationMachine,
    AssociationTrigger,
    CipherContext,
    CipheringStyle,
    Released,
)
from meterledger.codec.dlms.codes import (
    AcseServiceUserDiagnostic,
    ActionResult,
    ApplicationContext,
    AssociationResult,
    AuthenticationMechanism,
    ConfirmedService,
    Conformance,
    ExceptionServiceError,
    InitiateError,
    ReleaseResponseReason,
    ServiceErrorType,
)
from meterledger.codec.dlms.data import Data, DataType
from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError, SecurityError
from meterledger.codec.dlms.hls import check_lls, hls_gmac_response, verify_hls_gmac
from meterledger.codec.dlms.server_events import (
    AssociationOpened,
    AssociationRefused,
    ServerEvent,
    _Refusal,
)
from meterledger.codec.dlms.server_settings import _MIN_CLIENT_PDU, ClientPolicy, ServerSettings

__all__ = ["ServerAssociation"]

_C = Conformance
_DECIPHERING = 6  # ServiceError application-reference: deciphering-error
_T = AssociationTrigger


class _AareRefusal(Exception):  # noqa: N818 - internal signal: answer with a rejecting AARE
    def __init__(
        self,
        reason: str,
        diagnostic: AcseServiceUserDiagnostic = AcseServiceUserDiagnostic.NO_REASON_GIVEN,
        info: ConfirmedServiceError | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.diagnostic = diagnostic
        self.info = info


def _initiate_error(error: InitiateError) -> ConfirmedServiceError:
    return ConfirmedServiceError.initiate(error)


_UNDECIPHERABLE = ConfirmedServiceError(
    ConfirmedService.INITIATE_ERROR, ServiceErrorType.APPLICATION_REFERENCE, _DECIPHERING
)


def decode_request(apdu: bytes) -> Apdu:
    """The message ``apdu`` decodes to; one that does not is refused (other-reason)."""
    try:
        return decode_apdu(apdu)
    except DecodeError as exc:
        raise _Refusal(str(exc), ExceptionServiceError.OTHER_REASON) from None


class ServerAssociation:
    """The association of :class:`~meterledger.codec.dlms.server.DlmsServer` (see the
    module doc); not used alone."""

    # The server's state and primitives, set up by DlmsServer.__init__.
    settings: ServerSettings
    _policies: dict[int, ClientPolicy]
    _machine: AssociationMachine
    _cipher: CipherContext | None
    _send: Callable[[bytes, CipheringStyle | None], None]
    _client_sap: Callable[[], int]

    def _reset(self) -> None:
        """Forget the association (not the counters)."""
        self._policy: ClientPolicy | None = None
        self._ciphered = False
        self._conformance = Conformance(0)
        self._client_max_pdu = 0
        self._client_title: bytes | None = None
        self._stoc = b""
        self._ctos = b""
        self._blocks: list[bytes] = []
        self._block_sent = 0
        self._block_invoke = 0

    # --- association ----------------------------------------------------------------------

    def _on_rlrq(self, apdu: bytes) -> ServerEvent:
        request = decode_request(apdu)
        if not isinstance(request, Rlrq):
            raise _Refusal("not an RLRQ", ExceptionServiceError.OTHER_REASON)
        self._send(encode(Rlre(ReleaseResponseReason.NORMAL)), None)
        self._machine.fire(_T.RLRE)
        self._reset()
        return Released(request.reason)

    def _on_aarq(self, apdu: bytes) -> ServerEvent | None:
        aarq = decode_request(apdu)
        if not isinstance(aarq, Aarq):
            raise _Refusal("not an AARQ", ExceptionServiceError.OTHER_REASON)
        if not self._machine.allows(_T.AARE_ACCEPTED):
            raise _Refusal("no link", ExceptionServiceError.OPERATION_NOT_POSSIBLE)
        self._reset()
        client_sap = self._client_sap()
        context = aarq.application_context
        try:
            return self._associate(aarq, client_sap)
        except _AareRefusal as refusal:
            aare = Aare(
                AssociationResult.REJECTED_PERMANENT,
                refusal.diagnostic,
                refusal.info,
                context if isinstance(context, int) and 0 <= context <= 127 else 1,
            )
            self._send(encode(aare), None)
            self._machine.fire(_T.AARE_REJECTED)
            self._reset()
            return AssociationRefused(client_sap, refusal.reason)

    def _associate(self, aarq: Aarq, client_sap: int) -> ServerEvent | None:
        diag = AcseServiceUserDiagnostic
        policy = self._policies.get(client_sap)
        if policy is None:
            raise _AareRefusal(f"no association for client SAP {client_sap}")
        ciphered = policy.security == "auth-enc"
        wanted = ApplicationContext.LN_CIPHERING if ciphered else ApplicationContext.LN_NO_CIPHERING
        if aarq.application_context != wanted:
            raise _AareRefusal(
                f"application context {aarq.application_context}, expected {wanted.name}",
                diag.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED,
            )
        mechanism = _MECHANISMS[policy.auth]
        offered = aarq.mechanism if aarq.authentication else AuthenticationMechanism.LOWEST
        if offered != mechanism:
            if mechanism is not AuthenticationMechanism.LOWEST and not aarq.authentication:
                raise _AareRefusal(
                    "authentication required", diag.AUTHENTICATION_MECHANISM_NAME_REQUIRED
                )
            raise _AareRefusal(
                f"mechanism {offered} instead of {mechanism.name}",
                diag.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED,
            )
        secret = aarq.calling_authentication_value
        if policy.auth == "low":
            assert policy.password is not None
            try:
                check_lls(policy.password, secret or b"")
            except SecurityError:
                raise _AareRefusal("wrong LLS password", diag.AUTHENTICATION_FAILURE) from None
        cipher = self._cipher
        title = aarq.calling_ap_title
        if ciphered or policy.auth == "hls-gmac":
            if title is None or len(title) != 8:
                raise _AareRefusal("no client system title", diag.CALLING_AP_TITLE_NOT_RECOGNIZED)
            assert cipher is not None
            cipher.peer_title = title
        if policy.auth == "hls-gmac" and (secret is None or not 8 <= len(secret) <= 64):
            raise _AareRefusal("HLS challenge (CtoS) of a wrong size", diag.AUTHENTICATION_FAILURE)
        carried = aarq.user_information
        info: object = carried
        style: CipheringStyle | None = None
        if isinstance(carried, bytes):
            if not ciphered:
                raise _AareRefusal(
                    "ciphered InitiateRequest in an unciphered context",
                    diag.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED,
                )
            assert cipher is not None
            try:
                opened = cipher.open(carried)
                info = decode_initiate(opened.plain_apdu)
            except (SecurityError, DecodeError) as exc:
                raise _AareRefusal(str(exc), info=_UNDECIPHERABLE) from None
            style = "general-glo" if opened.ciphered_tag.general else "glo"
        elif ciphered:
            raise _AareRefusal("InitiateRequest not ciphered", info=_UNDECIPHERABLE)
        if not isinstance(info, InitiateRequest):
            raise _AareRefusal("no InitiateRequest", info=_initiate_error(InitiateError.OTHER))
        granted = self._negotiate(info)
        self._policy = policy
        self._ciphered = ciphered
        self._conformance = granted
        self._client_max_pdu = info.client_max_receive_pdu_size
        self._client_title = title
        initiate = encode_initiate(InitiateResponse(granted, self.settings.max_pdu))
        user_info: InitiateResponse | bytes = InitiateResponse(granted, self.settings.max_pdu)
        if style is not None:
            assert cipher is not None
            user_info = cipher.seal(initiate, style)
        context = aarq.application_context
        own_title = None if cipher is None else cipher.own_title
        if policy.auth == "hls-gmac":
            assert secret is not None
            self._ctos = secret
            self._stoc = self._challenge()
            aare = Aare(
                AssociationResult.ACCEPTED,
                diag.AUTHENTICATION_REQUIRED,
                user_info,
                context,
                True,
                AuthenticationMechanism.HIGH_GMAC,
                self._stoc,
                own_title,
            )
            self._send(encode(aare), None)
            self._machine.fire(_T.AARE_HLS)
            return None
        aare = Aare(
            AssociationResult.ACCEPTED,
            diag.NULL,
            user_info,
            context,
            responding_ap_title=own_title if ciphered else None,
        )
        self._send(encode(aare), None)
        self._machine.fire(_T.AARE_ACCEPTED)
        return AssociationOpened(client_sap, policy.auth, ciphered, title)

    def _negotiate(self, request: InitiateRequest) -> Conformance:
        if request.proposed_dlms_version_number < 6:
            raise _AareRefusal(
                "DLMS version below 6", info=_initiate_error(InitiateError.DLMS_VERSION_TOO_LOW)
            )
        if request.dedicated_key is not None:
            raise _AareRefusal(
                "dedicated keys are not supported", info=_initiate_error(InitiateError.OTHER)
            )
        if request.client_max_receive_pdu_size < _MIN_CLIENT_PDU:
            raise _AareRefusal(
                f"client max receive PDU {request.client_max_receive_pdu_size}",
                info=_initiate_error(InitiateError.PDU_SIZE_TOO_SHORT),
            )
        granted = negotiate_conformance(request.proposed_conformance, self.settings.conformance)
        if not granted & (_C.GET | _C.SET | _C.ACTION):
            raise _AareRefusal(
                "no common service", info=_initiate_error(InitiateError.INCOMPATIBLE_CONFORMANCE)
            )
        return granted

    def _challenge(self) -> bytes:
        settings = self.settings
        challenge = settings.next_challenge() if settings.next_challenge else settings.challenge
        if challenge is None or not 8 <= len(challenge) <= 64:
            raise DlmsLocalError("the server challenge (StoC) must be 8..64 octets")
        return bytes(challenge)

    def _on_hls(self, request: Apdu, style: CipheringStyle | None) -> ServerEvent:
        """Pass 3/4: check f(StoC), answer f(CtoS)."""
        if not isinstance(request, ActionRequestNormal):
            raise _Refusal("HLS not finished", ExceptionServiceError.OPERATION_NOT_POSSIBLE)
        d = request.descriptor
        if (d.class_id, d.instance_id, d.method_id) != (
            15,
            ASSOCIATION_LN,
            REPLY_TO_HLS_AUTHENTICATION,
        ):
            raise _Refusal("HLS not finished", ExceptionServiceError.OPERATION_NOT_POSSIBLE)
        cipher = self._cipher
        policy = self._policy
        assert cipher is not None and self._client_title is not None and policy is not None
        invoke = request.invoke_id_and_priority
        reply = request.parameters
        try:
            if reply is None or reply.type is not DataType.OCTET_STRING:
                raise SecurityError("reply_to_HLS_authentication without an octet-string")
            assert isinstance(reply.value, bytes)
            verify_hls_gmac(
                reply.value,
                self._stoc,
                system_title=self._client_title,
                ak=cipher.ak,
                ek=cipher.ek,
            )
        except SecurityError as exc:
            self._send(encode(ActionResponseNormal(invoke, ActionResult.READ_WRITE_DENIED)), style)
            client_sap = self._client_sap()
            self._machine.fire(_T.FAIL)
            self._reset()
            return AssociationRefused(client_sap, f"HLS: {exc}")
        answer = hls_gmac_response(
            self._ctos,
            system_title=cipher.own_title,
            invocation_counter=cipher.next_counter(),
            ak=cipher.ak,
            ek=cipher.ek,
        )
        response = ActionResponseNormal(invoke, ActionResult.SUCCESS, Data.octets(answer))
        self._send(encode(response), style)
        self._machine.fire(_T.HLS_PASSED)
        client_sap = self._client_sap()
        return AssociationOpened(client_sap, policy.auth, self._ciphered, self._client_title)


_MECHANISMS = {
    "none": AuthenticationMechanism.LOWEST,
    "low": AuthenticationMechanism.LOW,
    "hls-gmac": AuthenticationMechanism.HIGH_GMAC,
}
