"""Security suite 0 (AES-GCM-128) on the protected content of an xDLMS APDU: the security
control byte, :func:`protect` and :func:`unprotect`, and the :class:`InvocationCounter`
of each direction (Green Book DLMS UA 1000-2, 9.2.7). The ciphered APDUs that carry the
content are in :mod:`~meterledger.codec.dlms.ciphered`; :mod:`~meterledger.codec.dlms.security`
re-exports both and describes the whole (the content layout, the SC table, ``require``).

Pure and synchronous: the system title, the invocation counter and the keys are passed in.
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
    "InvocationCounter",
    "Protection",
    "SecurityControl",
    "Unprotected",
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
