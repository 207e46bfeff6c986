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

The parts: :mod:`~meterledger.codec.dlms.security_suite` (the security control, protect and
unprotect, the invocation counters) and :mod:`~meterledger.codec.dlms.ciphered` (the
ciphered APDUs); this module re-exports them.
"""

from __future__ import annotations

from meterledger.codec.dlms.ciphered import (
    CipheredApdu,
    CipheredTag,
    Deciphered,
    cipher_apdu,
    decipher_any,
    decipher_apdu,
    general_glo_cipher,
    parse_ciphered,
)
from meterledger.codec.dlms.security_suite import (
    AUTHENTICATED,
    AUTHENTICATED_ENCRYPTED,
    ENCRYPTED,
    KEY_LENGTH,
    MAX_INVOCATION_COUNTER,
    SUPPORTED_SUITES,
    SYSTEM_TITLE_LENGTH,
    TAG_LENGTH,
    InvocationCounter,
    Protection,
    SecurityControl,
    Unprotected,
    protect,
    unprotect,
)

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
