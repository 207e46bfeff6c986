"""The xDLMS initiate PDUs that ACSE user-information carries, in A-XDR: InitiateRequest
(0x01), InitiateResponse (0x08) and ConfirmedServiceError (0x0E) (Green Book, the
``COSEMpdu`` module of 9.5). :mod:`meterledger.codec.dlms.acse` re-exports them.

:func:`decode_initiate` also reads the plaintext of a deciphered glo-/ded-initiate APDU.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from meterledger.codec.dlms.apdu_common import check_bytes, check_int, defined
from meterledger.codec.dlms.codes import (
    VAA_NAME_LN,
    ApduTag,
    ConfirmedService,
    Conformance,
    InitiateError,
    ServiceErrorType,
)
from meterledger.codec.dlms.cursor import Cursor, NeedData, encode_length
from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError

__all__ = [
    "DLMS_VERSION",
    "SERVICE_ERROR_VALUES",
    "ConfirmedServiceError",
    "Initiate",
    "InitiateRequest",
    "InitiateResponse",
    "decode_initiate",
    "encode_initiate",
]

DLMS_VERSION = 6

# The ENUMERATED value names of each ServiceError alternative (Green Book 9.5), index = value.
# ``change-scope`` and ``other`` define no list.
SERVICE_ERROR_VALUES: dict[ServiceErrorType, tuple[str, ...]] = {
    ServiceErrorType.APPLICATION_REFERENCE: (
        "other",
        "time-elapsed",
        "application-unreachable",
        "application-reference-invalid",
        "application-context-unsupported",
        "provider-communication-error",
        "deciphering-error",
    ),
    ServiceErrorType.HARDWARE_RESOURCE: (
        "other",
        "memory-unavailable",
        "processor-resource-unavailable",
        "mass-storage-unavailable",
        "other-resource-unavailable",
    ),
    ServiceErrorType.VDE_STATE_ERROR: (
        "other",
        "no-dlms-context",
        "loading-data-set",
        "status-nochange",
        "status-inoperable",
    ),
    ServiceErrorType.SERVICE: ("other", "pdu-size", "service-unsupported"),
    ServiceErrorType.DEFINITION: (
        "other",
        "object-undefined",
        "object-class-inconsistent",
        "object-attribute-inconsistent",
    ),
    ServiceErrorType.ACCESS: (
        "other",
        "scope-of-access-violated",
        "object-access-violated",
        "hardware-fault",
        "object-unavailable",
    ),
    ServiceErrorType.INITIATE: (
        "other",
        "dlms-version-too-low",
        "incompatible-conformance",
        "pdu-size-too-short",
        "refused-by-the-VDE-Handler",
    ),
    ServiceErrorType.LOAD_DATA_SET: (
        "other",
        "primitive-out-of-sequence",
        "not-loadable",
        "dataset-size-too-large",
        "not-awaited-segment",
        "interpretation-failure",
        "storage-failure",
        "data-set-not-ready",
    ),
    ServiceErrorType.TASK: (
        "other",
        "no-remote-control",
        "ti-stopped",
        "ti-running",
        "ti-unusable",
    ),
}

_CONFORMANCE_TAG = b"\x5f\x1f\x04\x00"  # [APPLICATION 31], length 4, no unused bits
_U16 = struct.Struct(">H")


@dataclass(frozen=True, slots=True)
class InitiateRequest:
    """xDLMS InitiateRequest (tag 0x01), Green Book 9.5. ``dedicated_key`` only when the
    request is ciphered; ``response_allowed`` is False for an unconfirmed association."""

    proposed_conformance: Conformance
    client_max_receive_pdu_size: int = 0xFFFF
    proposed_dlms_version_number: int = DLMS_VERSION
    dedicated_key: bytes | None = None
    response_allowed: bool = True
    proposed_quality_of_service: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.proposed_conformance, Conformance):
            raise DlmsLocalError("proposed_conformance must be a Conformance")
        check_int("client_max_receive_pdu_size", self.client_max_receive_pdu_size, 0, 0xFFFF)
        check_int("proposed_dlms_version_number", self.proposed_dlms_version_number, 0, 255)
        check_bytes("dedicated_key", self.dedicated_key)
        if self.proposed_quality_of_service is not None:
            check_int("proposed_quality_of_service", self.proposed_quality_of_service, -128, 127)


@dataclass(frozen=True, slots=True)
class InitiateResponse:
    """xDLMS InitiateResponse (tag 0x08), Green Book 9.5. ``vaa_name`` is 0x0007 for
    LN referencing and 0xFA00 for SN."""

    negotiated_conformance: Conformance
    server_max_receive_pdu_size: int
    negotiated_dlms_version_number: int = DLMS_VERSION
    negotiated_quality_of_service: int | None = None
    vaa_name: int = VAA_NAME_LN

    def __post_init__(self) -> None:
        if not isinstance(self.negotiated_conformance, Conformance):
            raise DlmsLocalError("negotiated_conformance must be a Conformance")
        check_int("server_max_receive_pdu_size", self.server_max_receive_pdu_size, 0, 0xFFFF)
        check_int("negotiated_dlms_version_number", self.negotiated_dlms_version_number, 0, 255)
        check_int("vaa_name", self.vaa_name, 0, 0xFFFF)
        if self.negotiated_quality_of_service is not None:
            check_int(
                "negotiated_quality_of_service", self.negotiated_quality_of_service, -128, 127
            )


@dataclass(frozen=True, slots=True)
class ConfirmedServiceError:
    """xDLMS ConfirmedServiceError (tag 0x0E): which ``service`` failed, the kind of
    trouble and its ENUMERATED value — in an AARE, ``initiateError`` with e.g.
    ``initiate: dlms-version-too-low``."""

    service: ConfirmedService
    error_type: ServiceErrorType
    value: int

    def __post_init__(self) -> None:
        if not isinstance(self.service, ConfirmedService):
            raise DlmsLocalError("service must be a ConfirmedService")
        if not isinstance(self.error_type, ServiceErrorType):
            raise DlmsLocalError("error_type must be a ServiceErrorType")
        check_int("value", self.value, 0, 255)
        names = SERVICE_ERROR_VALUES.get(self.error_type)
        if names is not None and self.value >= len(names):
            raise DlmsLocalError(f"{self.error_type.standard_name} has no value {self.value}")

    @classmethod
    def initiate(cls, error: InitiateError) -> ConfirmedServiceError:
        """The error an AARE carries when the proposed xDLMS context is refused."""
        return cls(ConfirmedService.INITIATE_ERROR, ServiceErrorType.INITIATE, int(error))

    @property
    def initiate_error(self) -> InitiateError | None:
        if self.error_type is ServiceErrorType.INITIATE:
            return InitiateError(self.value)
        return None

    def describe(self) -> str:
        names = SERVICE_ERROR_VALUES.get(self.error_type)
        value = names[self.value] if names is not None else str(self.value)
        return f"{self.service.standard_name}: {self.error_type.standard_name}: {value}"


Initiate = InitiateRequest | InitiateResponse | ConfirmedServiceError


def encode_initiate(pdu: Initiate) -> bytes:
    """The A-XDR encoding of an xDLMS initiate PDU (what user-information carries)."""
    if isinstance(pdu, InitiateRequest):
        out = bytearray(b"\x01")
        if pdu.dedicated_key is None:
            out.append(0)
        else:
            out += b"\x01" + encode_length(len(pdu.dedicated_key)) + pdu.dedicated_key
        out += b"\x00" if pdu.response_allowed else b"\x01\x00"  # BOOLEAN DEFAULT TRUE
        qos = pdu.proposed_quality_of_service
        out += b"\x00" if qos is None else struct.pack(">Bb", 1, qos)
        out.append(pdu.proposed_dlms_version_number)
        out += _CONFORMANCE_TAG + pdu.proposed_conformance.to_bytes3()
        out += _U16.pack(pdu.client_max_receive_pdu_size)
        return bytes(out)
    if isinstance(pdu, InitiateResponse):
        qos = pdu.negotiated_quality_of_service
        head = b"\x08\x00" if qos is None else struct.pack(">BBb", 8, 1, qos)
        return b"".join(
            (
                head,
                bytes((pdu.negotiated_dlms_version_number,)),
                _CONFORMANCE_TAG,
                pdu.negotiated_conformance.to_bytes3(),
                struct.pack(">HH", pdu.server_max_receive_pdu_size, pdu.vaa_name),
            )
        )
    if isinstance(pdu, ConfirmedServiceError):
        return bytes((ApduTag.CONFIRMED_SERVICE_ERROR, pdu.service, pdu.error_type, pdu.value))
    raise DlmsLocalError(f"not an xDLMS initiate PDU: {type(pdu).__name__}")


def _conformance(cur: Cursor) -> Conformance:
    if cur.take(4) != _CONFORMANCE_TAG:
        raise DecodeError("conformance is not an [APPLICATION 31] BIT STRING of 24 bits")
    return Conformance.from_bytes3(cur.take(3))


def _flag(cur: Cursor, what: str) -> bool:
    flag = cur.u8()
    if flag > 1:
        raise DecodeError(f"{what}: presence flag 0x{flag:02X} (must be 0 or 1)")
    return flag == 1


def _signed8(cur: Cursor) -> int:
    value = cur.u8()
    return value - 256 if value > 127 else value


def decode_initiate(data: bytes | bytearray | memoryview) -> Initiate:
    """Decode an InitiateRequest, InitiateResponse or ConfirmedServiceError (plaintext)."""
    cur = Cursor(data)
    try:
        pdu = _read_initiate(cur)
    except NeedData:
        raise DecodeError("xDLMS initiate PDU is truncated") from None
    except DlmsLocalError as exc:
        raise DecodeError(str(exc)) from exc
    if not cur.at_end():
        raise DecodeError(f"{cur.remaining} bytes after the xDLMS initiate PDU")
    return pdu


def _read_initiate(cur: Cursor) -> Initiate:
    tag = cur.u8()
    if tag == ApduTag.INITIATE_REQUEST:
        key = cur.take(cur.length()) if _flag(cur, "dedicated-key") else None
        allowed = bool(cur.u8()) if _flag(cur, "response-allowed") else True
        qos = _signed8(cur) if _flag(cur, "proposed-quality-of-service") else None
        version = cur.u8()
        conformance = _conformance(cur)
        return InitiateRequest(conformance, cur.u16(), version, key, allowed, qos)
    if tag == ApduTag.INITIATE_RESPONSE:
        qos = _signed8(cur) if _flag(cur, "negotiated-quality-of-service") else None
        version = cur.u8()
        conformance = _conformance(cur)
        size = cur.u16()
        return InitiateResponse(conformance, size, version, qos, cur.u16())
    if tag == ApduTag.CONFIRMED_SERVICE_ERROR:
        service = defined(ConfirmedService, cur.u8(), "confirmedServiceError")
        kind = defined(ServiceErrorType, cur.u8(), "ServiceError")
        return ConfirmedServiceError(service, kind, cur.u8())
    raise DecodeError(f"0x{tag:02X} is not an initiateRequest, initiateResponse or error")
