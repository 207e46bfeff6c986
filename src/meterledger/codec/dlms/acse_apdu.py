"""The ACSE APDUs — AARQ, AARE, RLRQ, RLRE (Green Book DLMS UA 1000-2 9.3.2 COSEM-OPEN,
9.3.3 COSEM-RELEASE) — as frozen dataclasses that check themselves when built, with what
an association does with them: :func:`negotiate_conformance` and :func:`raise_for_aare`.
Their BER encoding is in :mod:`~meterledger.codec.dlms.acse`, which re-exports these.

User-information is a plain xDLMS initiate PDU of the right kind, or a ciphered one kept as
``bytes`` (tag included), whose tag and length are checked but not its content.
"""

from __future__ import annotations

from dataclasses import dataclass

from meterledger.codec.dlms.apdu_common import check_bytes, check_int
from meterledger.codec.dlms.apdu_initiate import (
    ConfirmedServiceError,
    InitiateRequest,
    InitiateResponse,
)
from meterledger.codec.dlms.codes import (
    CIPHERED_REQUEST_TAGS,
    CIPHERED_RESPONSE_TAGS,
    AcseServiceProviderDiagnostic,
    AcseServiceUserDiagnostic,
    ApduTag,
    ApplicationContext,
    AssociationResult,
    AuthenticationMechanism,
    Conformance,
    ReleaseRequestReason,
    ReleaseResponseReason,
)
from meterledger.codec.dlms.cursor import Cursor, NeedData
from meterledger.codec.dlms.errors import AssociationRejectedError, DecodeError, DlmsLocalError

__all__ = [
    "Aare",
    "Aarq",
    "AcseApdu",
    "Rlre",
    "Rlrq",
    "negotiate_conformance",
    "raise_for_aare",
]

_GENERAL_CIPHERING = frozenset(
    {ApduTag.GENERAL_GLO_CIPHERING, ApduTag.GENERAL_DED_CIPHERING, ApduTag.GENERAL_CIPHERING}
)


def _check_info(info: object, plain: type | tuple[type, ...], tags: frozenset[ApduTag]) -> None:
    """User-information is a plain initiate PDU of the right kind, or a ciphered one: that
    stays opaque, but its tag must fit, and a glo-/ded- APDU (``tag length SC IC ciphertext
    tag``) must be exactly as long as its length says."""
    if info is None or isinstance(info, plain):
        return
    if not isinstance(info, bytes):
        raise DlmsLocalError(f"user_information cannot be a {type(info).__name__}")
    if not info or info[0] not in tags:
        raise DlmsLocalError("user_information bytes must be a ciphered initiate APDU")
    if info[0] not in _GENERAL_CIPHERING and _content_end(info) != len(info):
        raise DlmsLocalError("user_information: the ciphered APDU is not as long as it says")


def _content_end(value: bytes) -> int:
    cur = Cursor(value, 1)
    try:
        length = cur.length()
    except (NeedData, DecodeError):
        return -1
    return cur.pos + length


@dataclass(frozen=True, slots=True)
class Aarq:
    """A-ASSOCIATE request. ``authentication`` is bit 0 of sender-acse-requirements (the
    authentication functional unit); only with it may ``mechanism`` and
    ``calling_authentication_value`` (LLS password, HLS challenge CtoS) be present.
    ``calling_ap_title`` is the client system title (8 octets) in ciphered contexts;
    ``calling_ae_qualifier`` may carry the client's certificate."""

    user_information: InitiateRequest | bytes | None
    application_context: ApplicationContext | int = ApplicationContext.LN_NO_CIPHERING
    authentication: bool = False
    mechanism: AuthenticationMechanism | int | None = None
    calling_authentication_value: bytes | None = None
    calling_ap_title: bytes | None = None
    calling_ae_qualifier: bytes | None = None
    called_ap_title: bytes | None = None
    called_ae_qualifier: bytes | None = None

    def __post_init__(self) -> None:
        check_int("application_context", self.application_context, 0, 127)
        _check_authentication(
            self.authentication, self.mechanism, self.calling_authentication_value
        )
        for name in ("calling_ap_title", "calling_ae_qualifier", "called_ap_title"):
            check_bytes(name, getattr(self, name))
        check_bytes("called_ae_qualifier", self.called_ae_qualifier)
        _check_info(self.user_information, InitiateRequest, CIPHERED_REQUEST_TAGS)

    @classmethod
    def build(
        cls,
        initiate: InitiateRequest | bytes,
        *,
        mechanism: AuthenticationMechanism = AuthenticationMechanism.LOWEST,
        secret: bytes | None = None,
        context: ApplicationContext = ApplicationContext.LN_NO_CIPHERING,
        system_title: bytes | None = None,
        certificate: bytes | None = None,
    ) -> Aarq:
        """The usual client AARQ: authentication fields when ``mechanism`` is above
        ``LOWEST`` (``secret`` = LLS password or HLS challenge), the system title as
        calling-AP-title."""
        authenticated = mechanism is not AuthenticationMechanism.LOWEST
        if authenticated and secret is None:
            raise DlmsLocalError(f"mechanism {mechanism.standard_name} needs a secret")
        if context.ciphered and (system_title is None or len(system_title) != 8):
            raise DlmsLocalError("a ciphered context needs the 8-octet client system title")
        return cls(
            initiate,
            context,
            authenticated,
            mechanism if authenticated else None,
            secret if authenticated else None,
            system_title,
            certificate,
        )


def _check_authentication(authentication: bool, mechanism: object, value: object) -> None:
    if not isinstance(authentication, bool):
        raise DlmsLocalError("authentication must be a bool")
    if not authentication:
        if mechanism is not None or value is not None:
            raise DlmsLocalError(
                "mechanism-name and authentication-value need the authentication functional "
                "unit (acse-requirements bit 0)"
            )
        return
    if mechanism is None:
        raise DlmsLocalError("the authentication functional unit needs a mechanism-name")
    check_int("mechanism", mechanism, 0, 127)
    check_bytes("authentication value", value)


@dataclass(frozen=True, slots=True)
class Aare:
    """A-ASSOCIATE response. ``diagnostic`` is an acse-service-user or acse-service-provider
    code (its type picks the CHOICE). With HLS the server sets ``authentication``,
    ``mechanism`` and its challenge StoC in ``responding_authentication_value``;
    ``responding_ap_title`` is the server system title in ciphered contexts."""

    result: AssociationResult
    diagnostic: AcseServiceUserDiagnostic | AcseServiceProviderDiagnostic
    user_information: InitiateResponse | ConfirmedServiceError | bytes | None = None
    application_context: ApplicationContext | int = ApplicationContext.LN_NO_CIPHERING
    authentication: bool = False
    mechanism: AuthenticationMechanism | int | None = None
    responding_authentication_value: bytes | None = None
    responding_ap_title: bytes | None = None
    responding_ae_qualifier: bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.result, AssociationResult):
            raise DlmsLocalError("result must be an AssociationResult")
        if not isinstance(
            self.diagnostic, AcseServiceUserDiagnostic | AcseServiceProviderDiagnostic
        ):
            raise DlmsLocalError("diagnostic must be an acse-service-user or -provider code")
        check_int("application_context", self.application_context, 0, 127)
        _check_authentication(
            self.authentication, self.mechanism, self.responding_authentication_value
        )
        check_bytes("responding_ap_title", self.responding_ap_title)
        check_bytes("responding_ae_qualifier", self.responding_ae_qualifier)
        plain = (InitiateResponse, ConfirmedServiceError)
        _check_info(self.user_information, plain, CIPHERED_RESPONSE_TAGS)

    @property
    def accepted(self) -> bool:
        return self.result is AssociationResult.ACCEPTED


@dataclass(frozen=True, slots=True)
class Rlrq:
    """A-RELEASE request; in a ciphered association it may carry a ciphered
    InitiateRequest (Green Book 9.3.3, COSEM-RELEASE) as user-information."""

    reason: ReleaseRequestReason | None = None
    user_information: InitiateRequest | bytes | None = None

    def __post_init__(self) -> None:
        if self.reason is not None and not isinstance(self.reason, ReleaseRequestReason):
            raise DlmsLocalError("reason must be a ReleaseRequestReason")
        _check_info(self.user_information, InitiateRequest, CIPHERED_REQUEST_TAGS)


@dataclass(frozen=True, slots=True)
class Rlre:
    """A-RELEASE response, optionally with an (often ciphered) InitiateResponse."""

    reason: ReleaseResponseReason | None = None
    user_information: InitiateResponse | bytes | None = None

    def __post_init__(self) -> None:
        if self.reason is not None and not isinstance(self.reason, ReleaseResponseReason):
            raise DlmsLocalError("reason must be a ReleaseResponseReason")
        _check_info(self.user_information, InitiateResponse, CIPHERED_RESPONSE_TAGS)


AcseApdu = Aarq | Aare | Rlrq | Rlre


def negotiate_conformance(proposed: Conformance, supported: Conformance) -> Conformance:
    """What the server grants: the services both sides support (bitwise AND)."""
    return Conformance(proposed & supported)


def raise_for_aare(aare: Aare) -> None:
    """AssociationRejectedError unless the AARE accepted the association."""
    if aare.accepted:
        return
    source = "user" if isinstance(aare.diagnostic, AcseServiceUserDiagnostic) else "provider"
    text = f"association {aare.result.standard_name}: acse-service-{source} "
    text += aare.diagnostic.standard_name
    if isinstance(aare.user_information, ConfirmedServiceError):
        text += f" ({aare.user_information.describe()})"
    raise AssociationRejectedError(int(aare.result), int(aare.diagnostic), text)
