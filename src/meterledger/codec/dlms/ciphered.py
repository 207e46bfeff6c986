"""The ciphered xDLMS APDUs (IEC 62056-5-3, 8; Green Book DLMS UA 1000-2, 9.5): the
service-specific ``glo-``/``ded-`` APDUs and the general ones (``general-glo-ciphering``,
``general-ded-ciphering``), built around the protected content of
:mod:`~meterledger.codec.dlms.security_suite` and taken apart again.

The wire names the encryption key: the tag global or dedicated, the key set bit (0x40)
unicast or broadcast. The decipher functions take the keys the caller holds and use the
one named, refusing when it is missing; :func:`parse_ciphered` reads the security header
without any key.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from meterledger.codec.dlms.cursor import Cursor, NeedData, encode_length
from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError, SecurityError
from meterledger.codec.dlms.security_suite import (
    _HEADER_LENGTH,
    _IC,
    _SC_BY_BYTE,
    SYSTEM_TITLE_LENGTH,
    Protection,
    SecurityControl,
    protect,
    unprotect,
)

__all__ = [
    "CipheredApdu",
    "CipheredTag",
    "Deciphered",
    "cipher_apdu",
    "decipher_any",
    "decipher_apdu",
    "general_glo_cipher",
    "parse_ciphered",
]


class CipheredTag(enum.IntEnum):
    """Tags of the ciphered xDLMS APDUs (IEC 62056-5-3, 8 "xDLMS-APDU" CHOICE; Green Book
    9.5). ``glo-`` uses a global key, ``ded-`` the dedicated key of the association."""

    GLO_INITIATE_REQUEST = 33
    GLO_READ_REQUEST = 37
    GLO_WRITE_REQUEST = 38
    GLO_INITIATE_RESPONSE = 40
    GLO_READ_RESPONSE = 44
    GLO_WRITE_RESPONSE = 45
    GLO_CONFIRMED_SERVICE_ERROR = 46
    GLO_UNCONFIRMED_WRITE_REQUEST = 54
    GLO_INFORMATION_REPORT_REQUEST = 56
    DED_INITIATE_REQUEST = 65
    DED_READ_REQUEST = 69
    DED_WRITE_REQUEST = 70
    DED_INITIATE_RESPONSE = 72
    DED_READ_RESPONSE = 76
    DED_WRITE_RESPONSE = 77
    DED_CONFIRMED_SERVICE_ERROR = 78
    DED_UNCONFIRMED_WRITE_REQUEST = 86
    DED_INFORMATION_REPORT_REQUEST = 88
    GLO_GET_REQUEST = 200
    GLO_SET_REQUEST = 201
    GLO_EVENT_NOTIFICATION_REQUEST = 202
    GLO_ACTION_REQUEST = 203
    GLO_GET_RESPONSE = 204
    GLO_SET_RESPONSE = 205
    GLO_ACTION_RESPONSE = 207
    DED_GET_REQUEST = 208
    DED_SET_REQUEST = 209
    DED_EVENT_NOTIFICATION_REQUEST = 210
    DED_ACTION_REQUEST = 211
    DED_GET_RESPONSE = 212
    DED_SET_RESPONSE = 213
    DED_ACTION_RESPONSE = 215
    GENERAL_GLO_CIPHERING = 219
    GENERAL_DED_CIPHERING = 220

    @property
    def dedicated(self) -> bool:
        """Protected with the dedicated key (``ded-`` and general-ded-ciphering)."""
        return self in _DEDICATED_TAGS

    @property
    def general(self) -> bool:
        """The general form, which carries the sender's system title."""
        return self in _GENERAL_TAGS


_GENERAL_TAGS = frozenset({CipheredTag.GENERAL_GLO_CIPHERING, CipheredTag.GENERAL_DED_CIPHERING})
_DEDICATED_TAGS = frozenset(
    {tag for tag in CipheredTag if tag.name.startswith("DED_")}
    | {CipheredTag.GENERAL_DED_CIPHERING}
)
_TAG_BY_BYTE: dict[int, CipheredTag] = {int(tag): tag for tag in CipheredTag}


# Plain APDU tag -> (glo, ded). initiateRequest 1, readRequest 5, writeRequest 6,
# initiateResponse 8, readResponse 12, writeResponse 13, confirmedServiceError 14,
# unconfirmedWriteRequest 22, informationReportRequest 24, get-request 192, set-request 193,
# event-notification-request 194, action-request 195, get-response 196, set-response 197,
# action-response 199.
_CIPHERED_BY_PLAIN: dict[int, tuple[CipheredTag, CipheredTag]] = {
    1: (CipheredTag.GLO_INITIATE_REQUEST, CipheredTag.DED_INITIATE_REQUEST),
    5: (CipheredTag.GLO_READ_REQUEST, CipheredTag.DED_READ_REQUEST),
    6: (CipheredTag.GLO_WRITE_REQUEST, CipheredTag.DED_WRITE_REQUEST),
    8: (CipheredTag.GLO_INITIATE_RESPONSE, CipheredTag.DED_INITIATE_RESPONSE),
    12: (CipheredTag.GLO_READ_RESPONSE, CipheredTag.DED_READ_RESPONSE),
    13: (CipheredTag.GLO_WRITE_RESPONSE, CipheredTag.DED_WRITE_RESPONSE),
    14: (CipheredTag.GLO_CONFIRMED_SERVICE_ERROR, CipheredTag.DED_CONFIRMED_SERVICE_ERROR),
    22: (CipheredTag.GLO_UNCONFIRMED_WRITE_REQUEST, CipheredTag.DED_UNCONFIRMED_WRITE_REQUEST),
    24: (CipheredTag.GLO_INFORMATION_REPORT_REQUEST, CipheredTag.DED_INFORMATION_REPORT_REQUEST),
    192: (CipheredTag.GLO_GET_REQUEST, CipheredTag.DED_GET_REQUEST),
    193: (CipheredTag.GLO_SET_REQUEST, CipheredTag.DED_SET_REQUEST),
    194: (CipheredTag.GLO_EVENT_NOTIFICATION_REQUEST, CipheredTag.DED_EVENT_NOTIFICATION_REQUEST),
    195: (CipheredTag.GLO_ACTION_REQUEST, CipheredTag.DED_ACTION_REQUEST),
    196: (CipheredTag.GLO_GET_RESPONSE, CipheredTag.DED_GET_RESPONSE),
    197: (CipheredTag.GLO_SET_RESPONSE, CipheredTag.DED_SET_RESPONSE),
    199: (CipheredTag.GLO_ACTION_RESPONSE, CipheredTag.DED_ACTION_RESPONSE),
}
_PLAIN_BY_CIPHERED: dict[int, int] = {
    ciphered: plain for plain, pair in _CIPHERED_BY_PLAIN.items() for ciphered in pair
}


def cipher_apdu(
    plain_apdu: bytes,
    *,
    security: SecurityControl,
    system_title: bytes,
    invocation_counter: int,
    ek: bytes,
    ak: bytes,
    dedicated: bool = False,
) -> bytes:
    """The service-specific ciphered form of ``plain_apdu`` (get-request 0xC0 becomes
    glo-get-request 0xC8, or ded-get-request 0xD0 with ``dedicated`` and the dedicated key
    as ``ek``): ``tag || length || SC || IC || ciphertext || tag``."""
    if not plain_apdu:
        raise DlmsLocalError("an empty APDU has no ciphered form")
    pair = _CIPHERED_BY_PLAIN.get(plain_apdu[0])
    if pair is None:
        raise DlmsLocalError(f"APDU tag 0x{plain_apdu[0]:02X} has no service-specific cipher")
    protected = protect(
        plain_apdu,
        security=security,
        system_title=system_title,
        invocation_counter=invocation_counter,
        ek=ek,
        ak=ak,
    )
    return bytes((pair[dedicated],)) + encode_length(len(protected)) + protected


def general_glo_cipher(
    plain_apdu: bytes,
    *,
    security: SecurityControl,
    system_title: bytes,
    invocation_counter: int,
    ek: bytes,
    ak: bytes,
    dedicated: bool = False,
) -> bytes:
    """``general-glo-ciphering`` (0xDB; ``general-ded-ciphering`` 0xDC with ``dedicated``):
    ``tag || 08 || system title || length || SC || IC || ciphertext || tag``. Any xDLMS
    APDU may be carried, and the receiver learns the sender's system title from it."""
    if not plain_apdu:
        raise DlmsLocalError("an empty APDU has no ciphered form")
    protected = protect(
        plain_apdu,
        security=security,
        system_title=system_title,
        invocation_counter=invocation_counter,
        ek=ek,
        ak=ak,
    )
    tag = CipheredTag.GENERAL_DED_CIPHERING if dedicated else CipheredTag.GENERAL_GLO_CIPHERING
    return b"".join(
        (
            bytes((tag, SYSTEM_TITLE_LENGTH)),
            bytes(system_title),
            encode_length(len(protected)),
            protected,
        )
    )


@dataclass(frozen=True, slots=True)
class CipheredApdu:
    """A ciphered APDU taken apart, before any key is used: ``system_title`` is carried
    only by the general forms; ``protected`` is ``SC || IC || content || tag``."""

    tag: CipheredTag
    system_title: bytes | None
    protected: bytes

    @property
    def security(self) -> SecurityControl:
        return _SC_BY_BYTE[self.protected[0]]

    @property
    def invocation_counter(self) -> int:
        return int(_IC.unpack_from(self.protected, 1)[0])


def parse_ciphered(data: bytes) -> CipheredApdu:
    """Split a whole ciphered APDU (either style) into its parts; no cryptography.

    ``data`` is one complete APDU as delimited by the transport, so a short one is
    :class:`DecodeError`, as are trailing bytes."""
    cursor = Cursor(data)
    try:
        raw_tag = cursor.u8()
        tag = _TAG_BY_BYTE.get(raw_tag)
        if tag is None:
            raise DecodeError(f"0x{raw_tag:02X} is not a ciphered APDU tag")
        system_title = None
        if tag.general:
            title_length = cursor.length()
            if title_length != SYSTEM_TITLE_LENGTH:
                raise DecodeError(f"system title of {title_length} octets (expected 8)")
            system_title = cursor.take(title_length)
        length = cursor.length()
        if length < _HEADER_LENGTH:
            raise DecodeError(f"ciphered content of {length} octets has no security header")
        protected = cursor.take(length)
    except NeedData:
        raise DecodeError("ciphered APDU is truncated") from None
    if not cursor.at_end():
        raise DecodeError(f"{cursor.remaining} octets after the ciphered APDU")
    return CipheredApdu(tag, system_title, protected)


@dataclass(frozen=True, slots=True)
class Deciphered:
    """The plain APDU and how it was protected. ``system_title`` is the one the IV used:
    carried in the APDU (general forms) or given by the caller (service-specific)."""

    plain_apdu: bytes
    security: SecurityControl
    invocation_counter: int
    system_title: bytes
    ciphered_tag: CipheredTag

    @property
    def dedicated(self) -> bool:
        return self.ciphered_tag.dedicated


def _encryption_key(
    parsed: CipheredApdu, ek: bytes, broadcast_ek: bytes | None, dedicated_ek: bytes | None
) -> bytes:
    """The key the wire says was used: the tag names global or dedicated, the SC's key set
    bit unicast or broadcast. The tag is not authenticated, so a missing key is refused
    rather than guessed."""
    broadcast = parsed.security.broadcast_key
    if parsed.tag.dedicated:
        if broadcast:
            raise SecurityError(f"{parsed.tag.name} with the broadcast key set bit")
        if dedicated_ek is None:
            raise SecurityError(f"{parsed.tag.name} but this association has no dedicated key")
        return dedicated_ek
    if broadcast:
        if broadcast_ek is None:
            raise SecurityError("APDU under the broadcast key, and none was given")
        return broadcast_ek
    return ek


def _open(
    parsed: CipheredApdu,
    *,
    system_title: bytes | None,
    ek: bytes,
    ak: bytes,
    broadcast_ek: bytes | None,
    dedicated_ek: bytes | None,
    require: Protection,
) -> Deciphered:
    title = parsed.system_title
    if title is None:
        if system_title is None:
            raise DlmsLocalError(f"{parsed.tag.name} needs the sender's system title")
        title = system_title
    elif system_title is not None and title != bytes(system_title):
        raise SecurityError(f"APDU from system title {title.hex().upper()}, not the peer's")
    key = _encryption_key(parsed, ek, broadcast_ek, dedicated_ek)
    security, invocation_counter, plain = unprotect(
        parsed.protected, system_title=title, ek=key, ak=ak, require=require
    )
    if not plain:
        raise DecodeError(f"{parsed.tag.name} carries an empty APDU")
    expected = _PLAIN_BY_CIPHERED.get(parsed.tag)
    if expected is not None and plain[0] != expected:
        raise DecodeError(
            f"{parsed.tag.name} carries an APDU tagged 0x{plain[0]:02X}, not 0x{expected:02X}"
        )
    return Deciphered(plain, security, invocation_counter, bytes(title), parsed.tag)


def decipher_apdu(
    ciphered: bytes,
    *,
    system_title: bytes,
    ek: bytes,
    ak: bytes,
    broadcast_ek: bytes | None = None,
    dedicated_ek: bytes | None = None,
    require: Protection = Protection.AUTHENTICATION,
) -> Deciphered:
    """Decipher a service-specific ``glo-``/``ded-`` APDU; ``system_title`` is the sender's.

    ``ek`` is the global unicast encryption key; a ``ded-`` APDU needs ``dedicated_ek`` and
    one under the broadcast key ``broadcast_ek`` (else SecurityError). The plain APDU must
    be the service the ciphered tag names (glo-get-request carries a get-request)."""
    parsed = parse_ciphered(ciphered)
    if parsed.tag.general:
        raise DecodeError(f"{parsed.tag.name} is not a service-specific ciphered APDU")
    return _open(
        parsed,
        system_title=system_title,
        ek=ek,
        ak=ak,
        broadcast_ek=broadcast_ek,
        dedicated_ek=dedicated_ek,
        require=require,
    )


def decipher_any(
    ciphered: bytes,
    *,
    ek: bytes,
    ak: bytes,
    system_title: bytes | None = None,
    broadcast_ek: bytes | None = None,
    dedicated_ek: bytes | None = None,
    require: Protection = Protection.AUTHENTICATION,
) -> Deciphered:
    """Decipher either style, told apart by the tag. The general forms carry the sender's
    system title; when ``system_title`` is given too, a different one is a SecurityError.
    The service-specific forms need ``system_title``. Keys as in :func:`decipher_apdu`."""
    return _open(
        parse_ciphered(ciphered),
        system_title=system_title,
        ek=ek,
        ak=ak,
        broadcast_ek=broadcast_ek,
        dedicated_ek=dedicated_ek,
        require=require,
    )
