"""ACSE APDUs — AARQ, AARE, RLRQ, RLRE — in BER (Green Book 9.3.2 COSEM-OPEN, 9.3.3
COSEM-RELEASE, the ``ACSE-APDU`` module of 9.5). Their user-information carries an xDLMS
InitiateRequest, InitiateResponse or ConfirmedServiceError
(:mod:`~meterledger.codec.dlms.apdu_initiate`, re-exported here).

The decoders are strict: lengths are checked at every level, elements must come in the order
of the SEQUENCE, and only the optional ACSE fields that DLMS does not use (AP/AE invocation
identifiers, application-context-name-list, implementation-information) are skipped; any
other unknown element is a :class:`DecodeError`. What an *association* may refuse — an
unknown application context or mechanism, a missing password — decodes, so that a server
can answer it with the right AARE diagnostic.

A ciphered xDLMS APDU in user-information (``glo-initiateRequest`` 0x21 and the like) is
kept as ``bytes``, tag included, for :mod:`meterledger.codec.dlms.security` to decipher;
:func:`decode_initiate` reads the plaintext.

The APDUs, frozen dataclasses that check themselves when built, are in
:mod:`~meterledger.codec.dlms.acse_apdu`; this module is their BER encoding and decoding,
and re-exports them.
"""

from __future__ import annotations

import enum
from typing import TypeVar

from meterledger.codec.dlms.acse_apdu import (
    Aare,
    Aarq,
    AcseApdu,
    Rlre,
    Rlrq,
    negotiate_conformance,
    raise_for_aare,
)
from meterledger.codec.dlms.apdu_common import defined
from meterledger.codec.dlms.apdu_initiate import (
    ConfirmedServiceError,
    Initiate,
    InitiateRequest,
    InitiateResponse,
    decode_initiate,
    encode_initiate,
)
from meterledger.codec.dlms.codes import (
    APPLICATION_CONTEXT_OID_PREFIX,
    CIPHERED_REQUEST_TAGS,
    CIPHERED_RESPONSE_TAGS,
    MECHANISM_OID_PREFIX,
    AcseServiceProviderDiagnostic,
    AcseServiceUserDiagnostic,
    ApduTag,
    ApplicationContext,
    AssociationResult,
    AuthenticationMechanism,
    ReleaseRequestReason,
    ReleaseResponseReason,
)
from meterledger.codec.dlms.cursor import Cursor, NeedData, encode_length
from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError

__all__ = [
    "Aare",
    "Aarq",
    "AcseApdu",
    "ConfirmedServiceError",
    "InitiateRequest",
    "InitiateResponse",
    "Rlre",
    "Rlrq",
    "decode_acse",
    "decode_initiate",
    "encode_acse",
    "encode_initiate",
    "negotiate_conformance",
    "raise_for_aare",
]

_E = TypeVar("_E", bound=enum.IntEnum)


def _arc(cls: type[_E], value: int) -> _E | int:
    """A known last arc as its enum member; an unknown one stays an int (the association,
    not the decoder, refuses it, with the AARE diagnostic that says why)."""
    try:
        return cls(value)
    except ValueError:
        return value


# BER helpers. Every tag DLMS uses fits one octet (tag numbers < 31).


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + encode_length(len(content)) + content


def _ber_int(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True)


def _octets(tag: int, value: bytes | None) -> bytes:
    """An [n] EXPLICIT OCTET STRING (AP-title, AE-qualifier, user-information)."""
    return b"" if value is None else _tlv(tag, _tlv(0x04, value))


_AUTH_FU = b"\x07\x80"  # BIT STRING, 7 unused bits, bit 0 (authentication) set


def _auth_fields(
    tags: tuple[int, int, int], auth: bool, mech: int | None, value: bytes | None
) -> bytes:
    if not auth:
        return b""
    assert mech is not None
    out = _tlv(tags[0], _AUTH_FU) + _tlv(tags[1], MECHANISM_OID_PREFIX + bytes((mech,)))
    if value is not None:
        out += _tlv(tags[2], _tlv(0x80, value))  # Authentication-value: charstring [0]
    return out


def _user_information(info: Initiate | bytes | None) -> bytes:
    if info is None:
        return b""
    return _octets(0xBE, info if isinstance(info, bytes) else encode_initiate(info))


def _context(ctx: int) -> bytes:
    return _tlv(0xA1, _tlv(0x06, APPLICATION_CONTEXT_OID_PREFIX + bytes((ctx,))))


def encode_acse(apdu: AcseApdu) -> bytes:
    """The BER encoding of an AARQ, AARE, RLRQ or RLRE."""
    if isinstance(apdu, Aarq):
        body = b"".join(
            (
                _context(apdu.application_context),
                _octets(0xA2, apdu.called_ap_title),
                _octets(0xA3, apdu.called_ae_qualifier),
                _octets(0xA6, apdu.calling_ap_title),
                _octets(0xA7, apdu.calling_ae_qualifier),
                _auth_fields(
                    (0x8A, 0x8B, 0xAC),
                    apdu.authentication,
                    apdu.mechanism,
                    apdu.calling_authentication_value,
                ),
                _user_information(apdu.user_information),
            )
        )
        return _tlv(ApduTag.AARQ, body)
    if isinstance(apdu, Aare):
        source = 0xA1 if isinstance(apdu.diagnostic, AcseServiceUserDiagnostic) else 0xA2
        body = b"".join(
            (
                _context(apdu.application_context),
                _tlv(0xA2, _tlv(0x02, _ber_int(apdu.result))),
                _tlv(0xA3, _tlv(source, _tlv(0x02, _ber_int(apdu.diagnostic)))),
                _octets(0xA4, apdu.responding_ap_title),
                _octets(0xA5, apdu.responding_ae_qualifier),
                _auth_fields(
                    (0x88, 0x89, 0xAA),
                    apdu.authentication,
                    apdu.mechanism,
                    apdu.responding_authentication_value,
                ),
                _user_information(apdu.user_information),
            )
        )
        return _tlv(ApduTag.AARE, body)
    if isinstance(apdu, Rlrq | Rlre):
        tag = ApduTag.RLRQ if isinstance(apdu, Rlrq) else ApduTag.RLRE
        reason = b"" if apdu.reason is None else _tlv(0x80, _ber_int(apdu.reason))
        return _tlv(tag, reason + _user_information(apdu.user_information))
    raise DlmsLocalError(f"not an ACSE APDU: {type(apdu).__name__}")


# Decoding. Each APDU is a table: tag → field name; elements come in tag-number order.
_SKIPPED = "-"  # an ACSE field DLMS does not use: allowed, ignored
# fmt: off
_AARQ_FIELDS = {
    0x80: "protocol-version", 0xA1: "application-context-name",
    0xA2: "called-AP-title", 0xA3: "called-AE-qualifier", 0xA4: _SKIPPED, 0xA5: _SKIPPED,
    0xA6: "calling-AP-title", 0xA7: "calling-AE-qualifier", 0xA8: _SKIPPED, 0xA9: _SKIPPED,
    0x8A: "acse-requirements", 0x8B: "mechanism-name", 0xAC: "authentication-value",
    0xAD: _SKIPPED, 0x9D: _SKIPPED, 0xBE: "user-information",
}
_AARE_FIELDS = {
    0x80: "protocol-version", 0xA1: "application-context-name",
    0xA2: "result", 0xA3: "result-source-diagnostic",
    0xA4: "responding-AP-title", 0xA5: "responding-AE-qualifier", 0xA6: _SKIPPED, 0xA7: _SKIPPED,
    0x88: "acse-requirements", 0x89: "mechanism-name", 0xAA: "authentication-value",
    0xAB: _SKIPPED, 0x9D: _SKIPPED, 0xBE: "user-information",
}
# fmt: on
_RELEASE_FIELDS = {0x80: "reason", 0xBE: "user-information"}


def _fields(body: bytes, table: dict[int, str], what: str) -> dict[str, bytes]:
    cur = Cursor(body)
    found: dict[str, bytes] = {}
    last = -1
    while not cur.at_end():
        tag = cur.u8()
        name = table.get(tag)
        if name is None:
            raise DecodeError(f"{what}: unexpected element tag 0x{tag:02X}")
        if tag & 0x1F <= last:
            raise DecodeError(f"{what}: {name} (0x{tag:02X}) out of order or repeated")
        last = tag & 0x1F
        value = cur.take(cur.length())
        if name != _SKIPPED:
            found[name] = value
    return found


def _inner(value: bytes, tag: int, what: str) -> bytes:
    """The content of the single TLV with ``tag`` that makes up ``value``."""
    cur = Cursor(value)
    got = cur.u8()
    if got != tag:
        raise DecodeError(f"{what}: expected tag 0x{tag:02X}, found 0x{got:02X}")
    content = cur.take(cur.length())
    if not cur.at_end():
        raise DecodeError(f"{what}: {cur.remaining} bytes after the value")
    return content


def _read_ber_int(content: bytes, what: str) -> int:
    if not 1 <= len(content) <= 4:
        raise DecodeError(f"{what}: INTEGER of {len(content)} octets")
    return int.from_bytes(content, "big", signed=True)


def _oid_arc(oid: bytes, prefix: bytes, what: str) -> int:
    if len(oid) != len(prefix) + 1 or not oid.startswith(prefix) or oid[-1] > 127:
        raise DecodeError(f"{what}: {oid.hex()} is not a DLMS UA object identifier")
    return oid[-1]


def _bit0(content: bytes, what: str) -> bool:
    """Bit 0 of a BIT STRING (first octet: the number of unused bits)."""
    if not content or content[0] > 7 or (len(content) == 1 and content[0] != 0):
        raise DecodeError(f"{what}: malformed BIT STRING")
    return len(content) > 1 and bool(content[1] & 0x80)


def _read_auth(found: dict[str, bytes], what: str) -> tuple[bool, int | None, bytes | None]:
    auth = "acse-requirements" in found and _bit0(found["acse-requirements"], what)
    mech: AuthenticationMechanism | int | None = None
    if "mechanism-name" in found:
        arc = _oid_arc(found["mechanism-name"], MECHANISM_OID_PREFIX, f"{what} mechanism-name")
        mech = _arc(AuthenticationMechanism, arc)
    value = None
    if "authentication-value" in found:
        value = _inner(found["authentication-value"], 0x80, f"{what} authentication-value")
    return auth, mech, value


def _read_context(found: dict[str, bytes], what: str) -> ApplicationContext | int:
    if "application-context-name" not in found:
        raise DecodeError(f"{what} has no application-context-name")
    oid = _inner(found["application-context-name"], 0x06, f"{what} application-context-name")
    arc = _oid_arc(oid, APPLICATION_CONTEXT_OID_PREFIX, f"{what} application-context-name")
    return _arc(ApplicationContext, arc)


def _read_protocol_version(found: dict[str, bytes], what: str) -> None:
    if "protocol-version" in found and not _bit0(found["protocol-version"], what):
        raise DecodeError(f"{what}: protocol-version without version1")


def _read_octets(found: dict[str, bytes], name: str, what: str) -> bytes | None:
    if name not in found:
        return None
    return _inner(found[name], 0x04, f"{what} {name}")


def _read_user_info(
    found: dict[str, bytes], what: str, ciphered: frozenset[ApduTag]
) -> Initiate | bytes | None:
    apdu = _read_octets(found, "user-information", what)
    if apdu is None:
        return None
    if apdu and apdu[0] in ciphered:
        return apdu
    return decode_initiate(apdu)


def _wrong(what: str, info: object) -> DecodeError:
    return DecodeError(f"{what} user-information carries a {type(info).__name__}")


def decode_acse(data: bytes | bytearray | memoryview) -> AcseApdu:
    """Decode one complete AARQ, AARE, RLRQ or RLRE; DecodeError for anything malformed."""
    cur = Cursor(data)
    try:
        tag = cur.u8()
        body = cur.take(cur.length())
        if not cur.at_end():
            raise DecodeError(f"{cur.remaining} bytes after the ACSE APDU")
        return _decode_body(tag, body)
    except NeedData:
        raise DecodeError("ACSE APDU is truncated") from None
    except DlmsLocalError as exc:
        raise DecodeError(str(exc)) from exc


def _decode_body(tag: int, body: bytes) -> AcseApdu:
    if tag == ApduTag.AARQ:
        return _decode_aarq(_fields(body, _AARQ_FIELDS, "AARQ"))
    if tag == ApduTag.AARE:
        return _decode_aare(_fields(body, _AARE_FIELDS, "AARE"))
    if tag in (ApduTag.RLRQ, ApduTag.RLRE):
        what = "RLRQ" if tag == ApduTag.RLRQ else "RLRE"
        found = _fields(body, _RELEASE_FIELDS, what)
        reason = None
        if "reason" in found:
            reason = _read_ber_int(found["reason"], f"{what} reason")
        if tag == ApduTag.RLRQ:
            request = _read_user_info(found, what, CIPHERED_REQUEST_TAGS)
            if not (request is None or isinstance(request, InitiateRequest | bytes)):
                raise _wrong(what, request)
            why = None if reason is None else defined(ReleaseRequestReason, reason, "RLRQ reason")
            return Rlrq(why, request)
        response = _read_user_info(found, what, CIPHERED_RESPONSE_TAGS)
        if not (response is None or isinstance(response, InitiateResponse | bytes)):
            raise _wrong(what, response)
        done = None if reason is None else defined(ReleaseResponseReason, reason, "RLRE reason")
        return Rlre(done, response)
    raise DecodeError(f"0x{tag:02X} is not an ACSE APDU tag (AARQ, AARE, RLRQ or RLRE)")


def _decode_aarq(found: dict[str, bytes]) -> Aarq:
    _read_protocol_version(found, "AARQ")
    auth, mech, value = _read_auth(found, "AARQ")
    info = _read_user_info(found, "AARQ", CIPHERED_REQUEST_TAGS)
    if not (info is None or isinstance(info, InitiateRequest | bytes)):
        raise _wrong("AARQ", info)
    return Aarq(
        info,
        _read_context(found, "AARQ"),
        auth,
        mech,
        value,
        _read_octets(found, "calling-AP-title", "AARQ"),
        _read_octets(found, "calling-AE-qualifier", "AARQ"),
        _read_octets(found, "called-AP-title", "AARQ"),
        _read_octets(found, "called-AE-qualifier", "AARQ"),
    )


def _decode_aare(found: dict[str, bytes]) -> Aare:
    _read_protocol_version(found, "AARE")
    if "result" not in found or "result-source-diagnostic" not in found:
        raise DecodeError("AARE lacks result or result-source-diagnostic")
    result = _read_ber_int(_inner(found["result"], 0x02, "AARE result"), "AARE result")
    diagnostic = _read_diagnostic(found["result-source-diagnostic"])
    auth, mech, value = _read_auth(found, "AARE")
    info = _read_user_info(found, "AARE", CIPHERED_RESPONSE_TAGS)
    if isinstance(info, InitiateRequest):
        raise _wrong("AARE", info)
    return Aare(
        defined(AssociationResult, result, "AARE result"),
        diagnostic,
        info,
        _read_context(found, "AARE"),
        auth,
        mech,
        value,
        _read_octets(found, "responding-AP-title", "AARE"),
        _read_octets(found, "responding-AE-qualifier", "AARE"),
    )


def _read_diagnostic(value: bytes) -> AcseServiceUserDiagnostic | AcseServiceProviderDiagnostic:
    cur = Cursor(value)
    source = cur.u8()
    content = cur.take(cur.length())
    if not cur.at_end():
        raise DecodeError("AARE result-source-diagnostic: bytes after the value")
    code = _read_ber_int(_inner(content, 0x02, "AARE diagnostic"), "AARE diagnostic")
    if source == 0xA1:
        return defined(AcseServiceUserDiagnostic, code, "acse-service-user diagnostic")
    if source == 0xA2:
        return defined(AcseServiceProviderDiagnostic, code, "acse-service-provider diagnostic")
    raise DecodeError(f"AARE result-source-diagnostic: unknown source tag 0x{source:02X}")
