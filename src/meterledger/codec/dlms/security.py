"""Security suite 0 (AES-GCM-128) and the ciphered xDLMS APDUs that carry it.

Green Book (DLMS UA 1000-2), 9.2.7 (security suite 0, protection of xDLMS APDUs) and
IEC 62056-5-3, 8 (the ``glo-``/``ded-`` and ``general-glo-ciphering`` APDUs). Pure and
synchronous: the system title, the invocation counter and the keys are passed in; nothing
here reads a clock, draws randomness or keeps a counter.

The protected content of every ciphered APDU is the same::

    SC (1) || IC (4, big-endian) || ciphertext or plaintext || tag (12, when authenticated)

with ``IV = system title (8) || IC`` and, by the security control (SC):

====================  ==========================  =========================  ==========
SC (suite 0)          GCM input                   AAD                        tag
====================  ==========================  =========================  ==========
0x30 authenticated +  the APDU                    SC || AK                   12 octets
encrypted
0x10 authenticated    nothing (APDU sent plain)   SC || AK || APDU           12 octets
0x20 encrypted        the APDU                    none                       none
====================  ==========================  =========================  ==========

The receiver says what protection it requires (``require``): the SC byte is not covered
by anything when authentication is off, so a receiver that took the SC at its word could
be downgraded from 0x30 to 0x20 and then fed bit-flipped plaintext.

The wire names the encryption key: the tag global or dedicated, the key set bit (0x40)
unicast or broadcast. The decipher functions take the keys the caller holds and use the
one named, refusing when it is missing; :func:`parse_ciphered` reads the security header
without any key. A received invocation counter is committed to its
:class:`InvocationCounter` only after the APDU has verified, so a forgery cannot move it.

Hot path: one ``AESGCM`` per key (cached), and no IntFlag arithmetic per APDU.
"""

from __future__ import annotations

import enum
import functools
import hmac
import struct
from dataclasses import dataclass
from typing import NamedTuple

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from meterledger.codec.dlms.cursor import Cursor, NeedData, encode_length
from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError, SecurityError

__all__ = [
    "AUTHENTICATED",
    "AUTHENTICATED_ENCRYPTED",
    "ENCRYPTED",
    "KEY_LENGTH",
    "MAX_INVOCATION_COUNTER",
    "SUPPORTED_SUITES",
    "SYSTEM_TITLE_LENGTH",
    "TAG_LENGTH",
    "CipheredApdu",
    "CipheredTag",
    "Deciphered",
    "InvocationCounter",
    "Protection",
    "SecurityControl",
    "Unprotected",
    "cipher_apdu",
    "decipher_any",
    "decipher_apdu",
    "general_glo_cipher",
    "parse_ciphered",
    "protect",
    "unprotect",
]

SYSTEM_TITLE_LENGTH = 8
TAG_LENGTH = 12  # security suite 0 truncates the GCM tag to 96 bits
KEY_LENGTH = 16  # AES-128
MAX_INVOCATION_COUNTER = 2**32 - 1
_HEADER_LENGTH = 5  # SC + IC
_GCM_FULL_TAG = 16

_SUITE_MASK = 0x0F
_AUTHENTICATION_BIT = 0x10
_ENCRYPTION_BIT = 0x20
_KEY_SET_BIT = 0x40
_COMPRESSION_BIT = 0x80
_PROTECTION_BITS = _AUTHENTICATION_BIT | _ENCRYPTION_BIT
SUPPORTED_SUITES = frozenset({0})

_IC = struct.Struct(">I")


class Protection(enum.IntFlag):
    """What a receiver requires of a protected APDU; the values are the SC bits."""

    NONE = 0
    AUTHENTICATION = _AUTHENTICATION_BIT
    ENCRYPTION = _ENCRYPTION_BIT
    AUTHENTICATED_ENCRYPTION = _AUTHENTICATION_BIT | _ENCRYPTION_BIT


@dataclass(frozen=True, slots=True)
class SecurityControl:
    """The security control byte of the security header (Green Book 9.2.7):
    bits 0-3 security suite id, bit 4 authentication (A), bit 5 encryption (E), bit 6 key
    set (0 unicast, 1 broadcast encryption key), bit 7 compression."""

    authenticated: bool
    encrypted: bool
    suite: int = 0
    broadcast_key: bool = False
    compressed: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.suite <= _SUITE_MASK:
            raise DlmsLocalError(f"security suite id {self.suite} is not 0..15")

    def to_byte(self) -> int:
        return (
            self.suite
            | (_AUTHENTICATION_BIT if self.authenticated else 0)
            | (_ENCRYPTION_BIT if self.encrypted else 0)
            | (_KEY_SET_BIT if self.broadcast_key else 0)
            | (_COMPRESSION_BIT if self.compressed else 0)
        )

    @classmethod
    def from_byte(cls, value: int) -> SecurityControl:
        if not 0 <= value <= 0xFF:
            raise DlmsLocalError(f"security control {value} is not one octet")
        return _SC_BY_BYTE[value]

    @property
    def protection(self) -> Protection:
        return Protection(self.to_byte() & Protection.AUTHENTICATED_ENCRYPTION)


def _decode_sc(value: int) -> SecurityControl:
    return SecurityControl(
        authenticated=bool(value & _AUTHENTICATION_BIT),
        encrypted=bool(value & _ENCRYPTION_BIT),
        suite=value & _SUITE_MASK,
        broadcast_key=bool(value & _KEY_SET_BIT),
        compressed=bool(value & _COMPRESSION_BIT),
    )


# All 256 values, so that decoding a header allocates nothing.
_SC_BY_BYTE = tuple(_decode_sc(value) for value in range(256))

AUTHENTICATED_ENCRYPTED = SecurityControl(authenticated=True, encrypted=True)
AUTHENTICATED = SecurityControl(authenticated=True, encrypted=False)
ENCRYPTED = SecurityControl(authenticated=False, encrypted=True)


@functools.lru_cache(maxsize=1024)
def _aead(key: bytes) -> AESGCM:
    """One AESGCM per key: the key schedule is computed once, not per APDU."""
    return AESGCM(key)


def _check_key(name: str, key: bytes) -> bytes:
    if len(key) != KEY_LENGTH:
        raise DlmsLocalError(f"{name} must be {KEY_LENGTH} octets for suite 0, not {len(key)}")
    return bytes(key)


def _iv(system_title: bytes, invocation_counter: int) -> bytes:
    if len(system_title) != SYSTEM_TITLE_LENGTH:
        raise DlmsLocalError(
            f"a system title is {SYSTEM_TITLE_LENGTH} octets, not {len(system_title)}"
        )
    if not 0 <= invocation_counter <= MAX_INVOCATION_COUNTER:
        raise DlmsLocalError(f"invocation counter {invocation_counter} is not 0..2**32-1")
    return bytes(system_title) + _IC.pack(invocation_counter)


def _unusable(sc: int) -> str | None:
    """Why this codec cannot process an SC (sent or received alike), or None."""
    if sc & _SUITE_MASK not in SUPPORTED_SUITES:
        return f"security suite {sc & _SUITE_MASK} is not supported (suite 0 only)"
    if sc & _COMPRESSION_BIT:
        return "compressed APDUs (security control bit 7) are not supported"
    return None


def protect(
    plain: bytes,
    *,
    security: SecurityControl,
    system_title: bytes,
    invocation_counter: int,
    ek: bytes,
    ak: bytes,
) -> bytes:
    """``SC || IC || ciphertext (or plaintext) || tag`` for ``plain`` under ``security``.

    ``system_title`` is the sender's own; ``invocation_counter`` is the sender's next value
    (see :class:`InvocationCounter`) and must never be used twice with the same key."""
    sc = security.to_byte()
    if not sc & _PROTECTION_BITS:
        raise DlmsLocalError("security control applies neither authentication nor encryption")
    reason = _unusable(sc)
    if reason is not None:
        raise DlmsLocalError(reason)
    iv = _iv(system_title, invocation_counter)
    aead = _aead(_check_key("ek", ek))
    header = bytes((sc,)) + iv[SYSTEM_TITLE_LENGTH:]
    if not security.authenticated:
        # GCM's ciphertext does not depend on the AAD; the tag is simply not sent.
        return header + aead.encrypt(iv, plain, None)[:-_GCM_FULL_TAG]
    sc_ak = bytes((sc,)) + _check_key("ak", ak)
    if security.encrypted:
        sealed = aead.encrypt(iv, plain, sc_ak)
        return header + sealed[: len(sealed) - _GCM_FULL_TAG + TAG_LENGTH]
    tag = aead.encrypt(iv, b"", sc_ak + plain)[:TAG_LENGTH]
    return header + plain + tag


class Unprotected(NamedTuple):
    security: SecurityControl
    invocation_counter: int
    plain: bytes


def unprotect(
    data: bytes,
    *,
    system_title: bytes,
    ek: bytes,
    ak: bytes,
    require: Protection = Protection.AUTHENTICATION,
) -> Unprotected:
    """Check and remove the protection that :func:`protect` applied.

    ``system_title`` is the *sender's*. Raises :class:`SecurityError` when the tag does not
    verify, the SC lacks a protection in ``require`` or names what we cannot process, and
    :class:`DecodeError` when ``data`` is too short to hold what its SC announces."""
    view = memoryview(data)
    if len(view) < _HEADER_LENGTH:
        raise DecodeError(f"security header needs {_HEADER_LENGTH} octets, got {len(view)}")
    sc = view[0]
    security = _SC_BY_BYTE[sc]
    # Plain ints here: IntFlag arithmetic costs microseconds on every APDU.
    applied = sc & _PROTECTION_BITS
    missing = int(require) & _PROTECTION_BITS & ~applied
    if missing:
        lacking = Protection(missing).name
        raise SecurityError(f"security control 0x{sc:02X} lacks required {lacking}")
    if not applied:
        raise SecurityError(f"security control 0x{sc:02X} applies no protection")
    reason = _unusable(sc)
    if reason is not None:
        raise SecurityError(reason)
    (invocation_counter,) = _IC.unpack_from(view, 1)
    iv = _iv(system_title, invocation_counter)
    aead = _aead(_check_key("ek", ek))
    body = view[_HEADER_LENGTH:]
    if not security.authenticated:
        return Unprotected(
            security, invocation_counter, aead.encrypt(iv, body, None)[:-_GCM_FULL_TAG]
        )
    if len(body) < TAG_LENGTH:
        raise DecodeError(f"authenticated content needs a {TAG_LENGTH}-octet tag")
    split = len(body) - TAG_LENGTH
    content, received_tag = body[:split], body[split:]
    sc_ak = bytes((sc,)) + _check_key("ak", ak)
    if security.encrypted:
        # AESGCM only verifies full 16-octet tags. GCM is a stream cipher, so encrypting
        # the ciphertext yields the plaintext, and encrypting that plaintext again yields
        # the tag over the received ciphertext: two cheap calls on one cached key. The
        # plaintext leaves this function only once that tag has been compared.
        plain = aead.encrypt(iv, content, None)[:-_GCM_FULL_TAG]
        expected = aead.encrypt(iv, plain, sc_ak)[split : split + TAG_LENGTH]
    else:
        plain = bytes(content)
        expected = aead.encrypt(iv, b"", sc_ak + plain)[:TAG_LENGTH]
    if not hmac.compare_digest(expected, received_tag):
        raise SecurityError("authentication tag does not verify (wrong key or altered APDU)")
    return Unprotected(security, invocation_counter, plain)


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


@dataclass(slots=True)
class InvocationCounter:
    """One direction's invocation counter (Green Book 9.2.7): as the sender's, it
    hands out the next value; as the receiver's, it rejects replays. ``last`` is the last
    value used or accepted (``None``: none yet); storing it is the caller's job.

    Receivers call :meth:`accept` only after :func:`unprotect` has verified the APDU (or
    :meth:`check` before it, to drop replays early), so a forgery cannot move the counter.
    """

    last: int | None = None

    def __post_init__(self) -> None:
        if self.last is not None and not 0 <= self.last <= MAX_INVOCATION_COUNTER:
            raise DlmsLocalError(f"invocation counter {self.last} is not 0..2**32-1")

    @property
    def exhausted(self) -> bool:
        return self.last == MAX_INVOCATION_COUNTER

    def next(self) -> int:
        """The value for the next APDU we protect (and remember it as used)."""
        if self.last is None:
            value = 0
        elif self.last >= MAX_INVOCATION_COUNTER:
            raise DlmsLocalError("invocation counter exhausted at 2**32-1: change the key")
        else:
            value = self.last + 1
        self.last = value
        return value

    def check(self, received: int) -> None:
        """SecurityError unless ``received`` is newer than the last accepted value."""
        if not 0 <= received <= MAX_INVOCATION_COUNTER:
            raise DlmsLocalError(f"invocation counter {received} is not 0..2**32-1")
        if self.last is not None and received <= self.last:
            raise SecurityError(
                f"invocation counter replayed or older: {received} after {self.last}"
            )

    def accept(self, received: int) -> None:
        """:meth:`check`, then remember ``received`` as the last accepted value."""
        self.check(received)
        self.last = received
