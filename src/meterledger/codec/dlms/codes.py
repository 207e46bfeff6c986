"""Wire codes of the DLMS/COSEM application layer, as the Green Book names them.

References are to DLMS UA 1000-2 Ed. 9/10 (the "Green Book", = IEC 62056-5-3), clause 9.5
("Abstract syntax of ACSE and COSEM APDUs", the ``COSEMpdu`` ASN.1 module), unless a docstring
says otherwise. Every enum is an :class:`~enum.IntEnum` (or :class:`~enum.IntFlag`) whose value
is the one on the wire; :attr:`WireCode.standard_name` gives the ASN.1 identifier used in
error messages (``read-write-denied``), so logs match the standard word for word.
"""

from __future__ import annotations

import enum

__all__ = [
    "APPLICATION_CONTEXT_OID_PREFIX",
    "CIPHERED_REQUEST_TAGS",
    "CIPHERED_RESPONSE_TAGS",
    "MECHANISM_OID_PREFIX",
    "VAA_NAME_LN",
    "VAA_NAME_SN",
    "AcseServiceProviderDiagnostic",
    "AcseServiceUserDiagnostic",
    "ActionRequestType",
    "ActionResponseType",
    "ActionResult",
    "ApduTag",
    "ApplicationContext",
    "AssociationResult",
    "AuthenticationMechanism",
    "ConfirmedService",
    "Conformance",
    "DataAccessResult",
    "DiagnosticSource",
    "ExceptionServiceError",
    "ExceptionStateError",
    "GetRequestType",
    "GetResponseType",
    "InitiateError",
    "ReleaseRequestReason",
    "ReleaseResponseReason",
    "ServiceErrorType",
    "SetRequestType",
    "SetResponseType",
    "WireCode",
]


class WireCode(enum.IntEnum):
    """An IntEnum whose members know their ASN.1 identifier."""

    @property
    def standard_name(self) -> str:
        """The ASN.1 identifier: ``READ_WRITE_DENIED`` → ``read-write-denied``."""
        return self.name.lower().replace("_", "-")


class ApduTag(WireCode):
    """The first octet of every APDU: the ``XDLMS-APDU`` CHOICE tags (Green Book 9.5, COSEMpdu)
    and the ACSE [APPLICATION n] tags (Green Book 9.5, ``ACSE-APDU``; 0x60 = [APPLICATION 0])."""

    # xDLMS, no ciphering
    INITIATE_REQUEST = 0x01
    READ_REQUEST = 0x05
    WRITE_REQUEST = 0x06
    INITIATE_RESPONSE = 0x08
    READ_RESPONSE = 0x0C
    WRITE_RESPONSE = 0x0D
    CONFIRMED_SERVICE_ERROR = 0x0E
    DATA_NOTIFICATION = 0x0F
    UNCONFIRMED_WRITE_REQUEST = 0x16
    INFORMATION_REPORT_REQUEST = 0x18
    # global ciphering, SN and initiate
    GLO_INITIATE_REQUEST = 0x21
    GLO_READ_REQUEST = 0x25
    GLO_WRITE_REQUEST = 0x26
    GLO_INITIATE_RESPONSE = 0x28
    GLO_READ_RESPONSE = 0x2C
    GLO_WRITE_RESPONSE = 0x2D
    GLO_CONFIRMED_SERVICE_ERROR = 0x2E
    GLO_UNCONFIRMED_WRITE_REQUEST = 0x36
    GLO_INFORMATION_REPORT_REQUEST = 0x38
    # dedicated ciphering, SN and initiate
    DED_INITIATE_REQUEST = 0x41
    DED_READ_REQUEST = 0x45
    DED_WRITE_REQUEST = 0x46
    DED_INITIATE_RESPONSE = 0x48
    DED_READ_RESPONSE = 0x4C
    DED_WRITE_RESPONSE = 0x4D
    DED_CONFIRMED_SERVICE_ERROR = 0x4E
    DED_UNCONFIRMED_WRITE_REQUEST = 0x56
    DED_INFORMATION_REPORT_REQUEST = 0x58
    # ACSE
    AARQ = 0x60
    AARE = 0x61
    RLRQ = 0x62
    RLRE = 0x63
    # LN services
    GET_REQUEST = 0xC0
    SET_REQUEST = 0xC1
    EVENT_NOTIFICATION_REQUEST = 0xC2
    ACTION_REQUEST = 0xC3
    GET_RESPONSE = 0xC4
    SET_RESPONSE = 0xC5
    ACTION_RESPONSE = 0xC7
    GLO_GET_REQUEST = 0xC8
    GLO_SET_REQUEST = 0xC9
    GLO_EVENT_NOTIFICATION_REQUEST = 0xCA
    GLO_ACTION_REQUEST = 0xCB
    GLO_GET_RESPONSE = 0xCC
    GLO_SET_RESPONSE = 0xCD
    GLO_ACTION_RESPONSE = 0xCF
    DED_GET_REQUEST = 0xD0
    DED_SET_REQUEST = 0xD1
    DED_EVENT_NOTIFICATION_REQUEST = 0xD2
    DED_ACTION_REQUEST = 0xD3
    DED_GET_RESPONSE = 0xD4
    DED_SET_RESPONSE = 0xD5
    DED_ACTION_RESPONSE = 0xD7
    EXCEPTION_RESPONSE = 0xD8
    ACCESS_REQUEST = 0xD9
    ACCESS_RESPONSE = 0xDA
    GENERAL_GLO_CIPHERING = 0xDB
    GENERAL_DED_CIPHERING = 0xDC
    GENERAL_CIPHERING = 0xDD
    GENERAL_SIGNING = 0xDF
    GENERAL_BLOCK_TRANSFER = 0xE0


# What may stand, still ciphered, in the user-information of an AARQ/RLRQ and of an AARE/RLRE
# (Green Book 9.2.7.2 and 9.5: glo-/ded-initiateRequest, or a general ciphering APDU).
CIPHERED_REQUEST_TAGS = frozenset(
    {
        ApduTag.GLO_INITIATE_REQUEST,
        ApduTag.DED_INITIATE_REQUEST,
        ApduTag.GENERAL_GLO_CIPHERING,
        ApduTag.GENERAL_DED_CIPHERING,
        ApduTag.GENERAL_CIPHERING,
    }
)
CIPHERED_RESPONSE_TAGS = frozenset(
    {
        ApduTag.GLO_INITIATE_RESPONSE,
        ApduTag.DED_INITIATE_RESPONSE,
        ApduTag.GLO_CONFIRMED_SERVICE_ERROR,
        ApduTag.DED_CONFIRMED_SERVICE_ERROR,
        ApduTag.GENERAL_GLO_CIPHERING,
        ApduTag.GENERAL_DED_CIPHERING,
        ApduTag.GENERAL_CIPHERING,
    }
)


class GetRequestType(WireCode):
    """``Get-Request`` CHOICE (Green Book 9.5)."""

    NORMAL = 1
    NEXT = 2
    WITH_LIST = 3


class GetResponseType(WireCode):
    """``Get-Response`` CHOICE (Green Book 9.5)."""

    NORMAL = 1
    WITH_DATABLOCK = 2
    WITH_LIST = 3


class SetRequestType(WireCode):
    """``Set-Request`` CHOICE (Green Book 9.5)."""

    NORMAL = 1
    WITH_FIRST_DATABLOCK = 2
    WITH_DATABLOCK = 3
    WITH_LIST = 4
    WITH_LIST_AND_FIRST_DATABLOCK = 5


class SetResponseType(WireCode):
    """``Set-Response`` CHOICE (Green Book 9.5)."""

    NORMAL = 1
    DATABLOCK = 2
    LAST_DATABLOCK = 3
    LAST_DATABLOCK_WITH_LIST = 4
    WITH_LIST = 5


class ActionRequestType(WireCode):
    """``Action-Request`` CHOICE (Green Book 9.5)."""

    NORMAL = 1
    NEXT_PBLOCK = 2
    WITH_LIST = 3
    WITH_FIRST_PBLOCK = 4
    WITH_LIST_AND_FIRST_PBLOCK = 5
    WITH_PBLOCK = 6


class ActionResponseType(WireCode):
    """``Action-Response`` CHOICE (Green Book 9.5)."""

    NORMAL = 1
    WITH_PBLOCK = 2
    WITH_LIST = 3
    NEXT_PBLOCK = 4


class DataAccessResult(WireCode):
    """``Data-Access-Result`` ENUMERATED (Green Book 9.5): the outcome of one GET or SET."""

    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_GET_ABORTED = 15
    NO_LONG_GET_IN_PROGRESS = 16
    LONG_SET_ABORTED = 17
    NO_LONG_SET_IN_PROGRESS = 18
    DATA_BLOCK_NUMBER_INVALID = 19
    OTHER_REASON = 250


class ActionResult(WireCode):
    """``Action-Result`` ENUMERATED (Green Book 9.5): the outcome of one ACTION."""

    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_ACTION_ABORTED = 15
    NO_LONG_ACTION_IN_PROGRESS = 16
    OTHER_REASON = 250


class ExceptionStateError(WireCode):
    """``ExceptionResponse.state-error`` [0] ENUMERATED (Green Book 9.5)."""

    SERVICE_NOT_ALLOWED = 1
    SERVICE_UNKNOWN = 2


class ExceptionServiceError(WireCode):
    """``ExceptionResponse.service-error`` [1] CHOICE (Green Book 9.5). Only
    ``invocation-counter-error`` carries a value: the Unsigned32 counter the server expects."""

    OPERATION_NOT_POSSIBLE = 1
    SERVICE_NOT_SUPPORTED = 2
    OTHER_REASON = 3
    PDU_TOO_LONG = 4
    DECIPHERING_ERROR = 5
    INVOCATION_COUNTER_ERROR = 6


class ConfirmedService(WireCode):
    """Which service a ``ConfirmedServiceError`` (tag 0x0E) reports on: its CHOICE tags
    (Green Book 9.5; tag 0 is reserved). An AARE that refuses the xDLMS context carries
    ``initiateError``."""

    INITIATE_ERROR = 1
    GET_STATUS = 2
    GET_NAME_LIST = 3
    GET_VARIABLE_ATTRIBUTE = 4
    READ = 5
    WRITE = 6
    GET_DATA_SET_ATTRIBUTE = 7
    GET_TI_ATTRIBUTE = 8
    CHANGE_SCOPE = 9
    START = 10
    STOP = 11
    RESUME = 12
    MAKE_USABLE = 13
    INITIATE_LOAD = 14
    LOAD_SEGMENT = 15
    TERMINATE_LOAD = 16
    INITIATE_UPLOAD = 17
    UPLOAD_SEGMENT = 18
    TERMINATE_UPLOAD = 19


class ServiceErrorType(WireCode):
    """The ``ServiceError`` CHOICE tags (Green Book 9.5): what kind of trouble, each with its
    own ENUMERATED value list (only ``initiate`` is modelled as :class:`InitiateError`)."""

    APPLICATION_REFERENCE = 0
    HARDWARE_RESOURCE = 1
    VDE_STATE_ERROR = 2
    SERVICE = 3
    DEFINITION = 4
    ACCESS = 5
    INITIATE = 6
    LOAD_DATA_SET = 7
    CHANGE_SCOPE = 8
    TASK = 9
    OTHER = 10


class InitiateError(WireCode):
    """``ServiceError.initiate`` [6] ENUMERATED (Green Book 9.5)."""

    OTHER = 0
    DLMS_VERSION_TOO_LOW = 1
    INCOMPATIBLE_CONFORMANCE = 2
    PDU_SIZE_TOO_SHORT = 3
    REFUSED_BY_THE_VDE_HANDLER = 4


class AssociationResult(WireCode):
    """``Association-result`` INTEGER of the AARE (Green Book 9.5, from ISO/IEC 8650-1)."""

    ACCEPTED = 0
    REJECTED_PERMANENT = 1
    REJECTED_TRANSIENT = 2


class DiagnosticSource(WireCode):
    """The ``Associate-source-diagnostic`` CHOICE tags: who gives the diagnostic."""

    ACSE_SERVICE_USER = 1
    ACSE_SERVICE_PROVIDER = 2


class AcseServiceUserDiagnostic(WireCode):
    """``Associate-source-diagnostic.acse-service-user`` [1] INTEGER (Green Book 9.5)."""

    NULL = 0
    NO_REASON_GIVEN = 1
    APPLICATION_CONTEXT_NAME_NOT_SUPPORTED = 2
    CALLING_AP_TITLE_NOT_RECOGNIZED = 3
    CALLING_AP_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 4
    CALLING_AE_QUALIFIER_NOT_RECOGNIZED = 5
    CALLING_AE_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 6
    CALLED_AP_TITLE_NOT_RECOGNIZED = 7
    CALLED_AP_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 8
    CALLED_AE_QUALIFIER_NOT_RECOGNIZED = 9
    CALLED_AE_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 10
    AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED = 11  # sic, "recognised"
    AUTHENTICATION_MECHANISM_NAME_REQUIRED = 12
    AUTHENTICATION_FAILURE = 13
    AUTHENTICATION_REQUIRED = 14


class AcseServiceProviderDiagnostic(WireCode):
    """``Associate-source-diagnostic.acse-service-provider`` [2] INTEGER (Green Book 9.5)."""

    NULL = 0
    NO_REASON_GIVEN = 1
    NO_COMMON_ACSE_VERSION = 2


class ReleaseRequestReason(WireCode):
    """``Release-request-reason`` INTEGER of the RLRQ (Green Book 9.5)."""

    NORMAL = 0
    URGENT = 1
    USER_DEFINED = 30


class ReleaseResponseReason(WireCode):
    """``Release-response-reason`` INTEGER of the RLRE (Green Book 9.5)."""

    NORMAL = 0
    NOT_FINISHED = 1
    USER_DEFINED = 30


class ApplicationContext(WireCode):
    """The last arc of the application context name ``{2 16 756 5 8 1 n}``
    (joint-iso-ccitt country(16) country-name(756) identified-organization(5) DLMS-UA(8)
    application-context(1); Green Book 9.4.2, "the COSEM application context")."""

    LN_NO_CIPHERING = 1
    SN_NO_CIPHERING = 2
    LN_CIPHERING = 3
    SN_CIPHERING = 4

    @property
    def ciphered(self) -> bool:
        return self in (ApplicationContext.LN_CIPHERING, ApplicationContext.SN_CIPHERING)


class AuthenticationMechanism(WireCode):
    """The last arc of the mechanism name ``{2 16 756 5 8 2 n}`` (Green Book 9.4.2)."""

    LOWEST = 0
    LOW = 1  # LLS: a password
    HIGH = 2  # HLS, manufacturer specific
    HIGH_MD5 = 3
    HIGH_SHA1 = 4
    HIGH_GMAC = 5
    HIGH_SHA256 = 6
    HIGH_ECDSA = 7


# BER contents of the OBJECT IDENTIFIERs {2 16 756 5 8 1} and {2 16 756 5 8 2}, without the
# last arc: 2*40+16 = 0x60, 756 = 0x85 0x74 in base 128.
APPLICATION_CONTEXT_OID_PREFIX = bytes((0x60, 0x85, 0x74, 0x05, 0x08, 0x01))
MECHANISM_OID_PREFIX = bytes((0x60, 0x85, 0x74, 0x05, 0x08, 0x02))

# InitiateResponse.vaa-name (Green Book 9.4.6.1 / 9.5): fixed per referencing method.
VAA_NAME_LN = 0x0007
VAA_NAME_SN = 0xFA00


def _bit(number: int) -> int:
    # Bit 0 of the 24-bit string is the most significant bit of its first octet, so the flag
    # value of bit n is 1 << (23 - n) and the three octets read big-endian give the flags.
    return 1 << (23 - number)


class Conformance(enum.IntFlag):
    """The xDLMS conformance block, ``[APPLICATION 31] IMPLICIT BIT STRING (SIZE(24))``
    (Green Book 9.4.6.1 and 9.5). ``int(flags).to_bytes(3, "big")`` is the wire form.

    Bit 6 is ``reserved-six`` in Ed. 9/10; later editions call it ``delta-value-encoding``.
    """

    RESERVED_ZERO = _bit(0)
    GENERAL_PROTECTION = _bit(1)
    GENERAL_BLOCK_TRANSFER = _bit(2)
    READ = _bit(3)
    WRITE = _bit(4)
    UNCONFIRMED_WRITE = _bit(5)
    DELTA_VALUE_ENCODING = _bit(6)
    RESERVED_SEVEN = _bit(7)
    ATTRIBUTE0_SUPPORTED_WITH_SET = _bit(8)
    PRIORITY_MGMT_SUPPORTED = _bit(9)
    ATTRIBUTE0_SUPPORTED_WITH_GET = _bit(10)
    BLOCK_TRANSFER_WITH_GET_OR_READ = _bit(11)
    BLOCK_TRANSFER_WITH_SET_OR_WRITE = _bit(12)
    BLOCK_TRANSFER_WITH_ACTION = _bit(13)
    MULTIPLE_REFERENCES = _bit(14)
    INFORMATION_REPORT = _bit(15)
    DATA_NOTIFICATION = _bit(16)
    ACCESS = _bit(17)
    PARAMETERIZED_ACCESS = _bit(18)
    GET = _bit(19)
    SET = _bit(20)
    SELECTIVE_ACCESS = _bit(21)
    EVENT_NOTIFICATION = _bit(22)
    ACTION = _bit(23)

    def to_bytes3(self) -> bytes:
        """The three octets of the bit string, bit 0 first."""
        return int(self).to_bytes(3, "big")

    @classmethod
    def from_bytes3(cls, octets: bytes) -> Conformance:
        return cls(int.from_bytes(octets, "big"))

    def names(self) -> tuple[str, ...]:
        """The Green Book names of the bits set, in bit order."""
        return tuple(
            member.name.lower().replace("_", "-")
            for member in sorted(Conformance, key=lambda m: -m.value)
            if member.name is not None and member in self
        )
