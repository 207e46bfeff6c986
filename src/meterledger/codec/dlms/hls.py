"""Association authentication: LLS (mechanism 1) and HLS-GMAC (mechanism 5).

Green Book (DLMS UA 1000-2), 9.2.7.4 "HLS authentication mechanisms", Table "HLS example
using authentication-mechanism 5 with GMAC". After the AARQ/AARE exchange of challenges
(CtoS from the client, StoC from the server), each party proves it holds the keys::

    f(challenge) = SC || IC || GMAC-tag(SC || AK || challenge)

with ``SC = 0x10`` (authentication only, suite 0), the GCM key EK and
``IV = the responder's system title || its IC``. The client sends f(StoC) in the ACTION
``reply_to_HLS_authentication`` (Association LN, method 1) and the server answers with
f(CtoS) in the reply. Challenges are the caller's (drawn from a CSPRNG outside the codec).
"""

from __future__ import annotations

import hmac

from meterledger.codec.dlms.errors import DlmsLocalError, SecurityError
from meterledger.codec.dlms.security import (
    AUTHENTICATED,
    TAG_LENGTH,
    Protection,
    SecurityControl,
    protect,
    unprotect,
)

__all__ = [
    "HLS_GMAC_RESPONSE_LENGTH",
    "MAX_CHALLENGE_LENGTH",
    "MIN_CHALLENGE_LENGTH",
    "check_lls",
    "hls_gmac_response",
    "verify_hls_gmac",
]

# IEC 62056-5-3 / Green Book 9.2.7.4: challenges are random strings of 8 to 64 octets.
MIN_CHALLENGE_LENGTH = 8
MAX_CHALLENGE_LENGTH = 64
_HEADER_LENGTH = 5  # SC + IC
HLS_GMAC_RESPONSE_LENGTH = _HEADER_LENGTH + TAG_LENGTH


def check_lls(expected: bytes, received: bytes) -> None:
    """LLS: the password in calling-authentication-value must be the secret.

    Compared in constant time (only the length can show through). Raises SecurityError."""
    if not hmac.compare_digest(bytes(expected), bytes(received)):
        raise SecurityError("LLS password does not match")


def _challenge_problem(challenge: bytes) -> str | None:
    if MIN_CHALLENGE_LENGTH <= len(challenge) <= MAX_CHALLENGE_LENGTH:
        return None
    return (
        f"HLS challenge of {len(challenge)} octets "
        f"(must be {MIN_CHALLENGE_LENGTH}..{MAX_CHALLENGE_LENGTH})"
    )


def hls_gmac_response(
    challenge: bytes,
    *,
    system_title: bytes,
    invocation_counter: int,
    ak: bytes,
    ek: bytes,
    security: SecurityControl = AUTHENTICATED,
) -> bytes:
    """f(challenge) for the peer's ``challenge``: ``SC || IC || tag`` (17 octets).

    ``system_title`` and ``invocation_counter`` are the responder's own (ours). A
    challenge of the wrong size came from the peer, so it is a SecurityError."""
    problem = _challenge_problem(challenge)
    if problem is not None:
        raise SecurityError(problem)
    if not security.authenticated or security.encrypted:
        raise DlmsLocalError("HLS-GMAC uses a security control with authentication only")
    protected = protect(
        challenge,
        security=security,
        system_title=system_title,
        invocation_counter=invocation_counter,
        ek=ek,
        ak=ak,
    )
    # protect() returns SC || IC || challenge || tag; the challenge is not sent back.
    return protected[:_HEADER_LENGTH] + protected[-TAG_LENGTH:]


def verify_hls_gmac(
    response: bytes,
    challenge: bytes,
    *,
    system_title: bytes,
    ak: bytes,
    ek: bytes,
) -> int:
    """Check the peer's f(``challenge``) for the challenge we sent; return its IC.

    ``system_title`` is the peer's (the responder's). Raises SecurityError for anything
    but a valid reply; the caller feeds the IC to the peer's
    :class:`~meterledger.codec.dlms.security.InvocationCounter`."""
    problem = _challenge_problem(challenge)
    if problem is not None:
        raise DlmsLocalError(problem)
    if len(response) != HLS_GMAC_RESPONSE_LENGTH:
        raise SecurityError(
            f"HLS-GMAC reply of {len(response)} octets (expected {HLS_GMAC_RESPONSE_LENGTH})"
        )
    security = SecurityControl.from_byte(response[0])
    if not security.authenticated or security.encrypted:
        raise SecurityError(f"HLS-GMAC reply with security control 0x{response[0]:02X}")
    header, tag = bytes(response[:_HEADER_LENGTH]), bytes(response[_HEADER_LENGTH:])
    _, invocation_counter, _ = unprotect(
        header + bytes(challenge) + tag,
        system_title=system_title,
        ek=ek,
        ak=ak,
        require=Protection.AUTHENTICATION,
    )
    return invocation_counter
