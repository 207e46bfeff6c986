"""States of a DLMS/COSEM association and the one table of transitions between them
(Green Book, DLMS UA 1000-2, 9.4.1 "application association establishment and release"
and 9.2.7.4 for the HLS pass 3/4), in the manner of h11's ``_state.py``.

Both ends share one :class:`AssociationState` enum; :data:`TRANSITIONS` maps
``(role, state)`` to the triggers allowed there and the state each leads to. The client
fires triggers for what it sends (``SEND_*``) and what it receives; a trigger missing from
the table is a :class:`DlmsLocalError` and the machine moves to ``ERROR``. A server never
calls :meth:`AssociationMachine.fire` for a peer's APDU it has not checked with
:meth:`AssociationMachine.allows` first: an APDU the state forbids is answered (an
exception-response), not fatal, because a misbehaving client is not the meter's mistake.

Client life cycle (HDLC adds the link states; the wrapper starts at ``CONNECTED``)::

    IDLE ─SEND_SNRM→ LINK_PENDING ─LINK_UP→ CONNECTED ─SEND_AARQ→ ASSOCIATING
    ASSOCIATING ─AARE_ACCEPTED→ ASSOCIATED            (no authentication or LLS)
    ASSOCIATING ─AARE_HLS→ AUTHENTICATING ─HLS_PASSED→ ASSOCIATED
    ASSOCIATED ─SEND_REQUEST→ AWAITING_RESPONSE ─RESPONSE→ ASSOCIATED
    ASSOCIATED ─SEND_RLRQ→ RELEASING ─RLRE→ CONNECTED
    CONNECTED/ASSOCIATED ─SEND_DISC→ DISCONNECTING ─LINK_DOWN→ DISCONNECTED

The server moves ``IDLE ─LINK_UP→ CONNECTED ─AARE_ACCEPTED→ ASSOCIATED`` (or through
``AUTHENTICATING`` with HLS), back to ``CONNECTED`` on RLRQ and to ``DISCONNECTED`` on DISC.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from meterledger.codec.dlms.codes import ReleaseRequestReason, ReleaseResponseReason
from meterledger.codec.dlms.cosem import obis_bytes
from meterledger.codec.dlms.cursor import NEED_DATA, NeedDataType
from meterledger.codec.dlms.errors import (
    AssociationRejectedError,
    DecodeError,
    DlmsLocalError,
    ExceptionResponseError,
    SecurityError,
)
from meterledger.codec.dlms.hdlc_link import Connected, FrameRejected, HdlcLink
from meterledger.codec.dlms.hdlc_link import Data as LinkData
from meterledger.codec.dlms.hdlc_link import Disconnected as LinkDown
from meterledger.codec.dlms.hdlc_state import Role
from meterledger.codec.dlms.security import (
    AUTHENTICATED_ENCRYPTED,
    MAX_INVOCATION_COUNTER,
    SYSTEM_TITLE_LENGTH,
    Deciphered,
    InvocationCounter,
    Protection,
    cipher_apdu,
    decipher_any,
    general_glo_cipher,
)
from meterledger.codec.dlms.wrapper import WrapperParser, encode_wrapper

__all__ = [
    "ASSOCIATION_LN",
    "REPLY_TO_HLS_AUTHENTICATION",
    "TRANSITIONS",
    "AssociationMachine",
    "AssociationState",
    "AssociationTrigger",
    "Authentication",
    "AuthenticationRejectedError",
    "CipherContext",
    "CipheringRejectedError",
    "CipheringStyle",
    "Disconnected",
    "Framing",
    "HdlcFraming",
    "Released",
    "Role",
    "SecurityPolicy",
    "WrapperFraming",
    "check_system_title",
    "logical_name",
]

Framing = Literal["wrapper", "hdlc"]
Authentication = Literal["none", "low", "hls-gmac"]
SecurityPolicy = Literal["none", "auth-enc"]
CipheringStyle = Literal["glo", "general-glo"]

# The current association (Association LN, class 15) and its method 1,
# reply_to_HLS_authentication (Blue Book 4.4.3).
ASSOCIATION_LN = bytes((0, 0, 40, 0, 0, 255))
REPLY_TO_HLS_AUTHENTICATION = 1


class AssociationState(enum.Enum):
    IDLE = "idle"  # nothing sent (HDLC: link down)
    LINK_PENDING = "link-pending"  # client: SNRM sent, waiting for UA
    CONNECTED = "connected"  # link up (or TCP wrapper), no application association
    ASSOCIATING = "associating"  # client: AARQ sent, waiting for AARE
    AUTHENTICATING = "authenticating"  # HLS pass 3/4: reply_to_HLS_authentication pending
    ASSOCIATED = "associated"  # ready for GET/SET/ACTION
    AWAITING_RESPONSE = "awaiting-response"  # client: one request outstanding (or its blocks)
    RELEASING = "releasing"  # client: RLRQ sent, waiting for RLRE
    DISCONNECTING = "disconnecting"  # client: DISC sent, waiting for UA/DM
    DISCONNECTED = "disconnected"  # link closed; the object is spent
    ERROR = "error"  # a local or fatal remote protocol error; the object is spent


class AssociationTrigger(enum.Enum):
    SEND_SNRM = "send-snrm"
    LINK_UP = "link-up"  # UA received (client) / SNRM received (server)
    SEND_AARQ = "send-aarq"
    AARE_ACCEPTED = "aare-accepted"  # association ready (server: an accepting AARE sent)
    AARE_HLS = "aare-hls"  # accepted, HLS pass 3/4 to do
    AARE_REJECTED = "aare-rejected"
    HLS_PASSED = "hls-passed"
    SEND_REQUEST = "send-request"  # GET, SET, ACTION (client)
    RESPONSE = "response"  # the last part of a response (client)
    SEND_RLRQ = "send-rlrq"
    RLRE = "rlre"  # release done (client: RLRE received; server: RLRE sent)
    SEND_DISC = "send-disc"
    LINK_DOWN = "link-down"  # UA/DM after DISC (client), DISC received (server), DM
    FAIL = "fail"


_S = AssociationState
_T = AssociationTrigger
_C, _V = Role.CLIENT, Role.SERVER

TRANSITIONS: dict[tuple[Role, AssociationState], dict[AssociationTrigger, AssociationState]] = {
    (_C, _S.IDLE): {_T.SEND_SNRM: _S.LINK_PENDING, _T.SEND_AARQ: _S.ASSOCIATING},
    (_C, _S.LINK_PENDING): {
        _T.SEND_SNRM: _S.LINK_PENDING,  # the caller's timer ran out: SNRM again
        _T.LINK_UP: _S.CONNECTED,
        _T.LINK_DOWN: _S.DISCONNECTED,  # DM: the meter refuses the link
        _T.SEND_DISC: _S.DISCONNECTING,
    },
    (_C, _S.CONNECTED): {
        _T.SEND_AARQ: _S.ASSOCIATING,
        _T.SEND_DISC: _S.DISCONNECTING,
        _T.LINK_DOWN: _S.DISCONNECTED,
    },
    (_C, _S.ASSOCIATING): {
        _T.AARE_ACCEPTED: _S.ASSOCIATED,
        _T.AARE_HLS: _S.AUTHENTICATING,
        _T.AARE_REJECTED: _S.CONNECTED,
        _T.SEND_DISC: _S.DISCONNECTING,
        _T.LINK_DOWN: _S.DISCONNECTED,
    },
    (_C, _S.AUTHENTICATING): {
        _T.HLS_PASSED: _S.ASSOCIATED,
        _T.SEND_DISC: _S.DISCONNECTING,
        _T.LINK_DOWN: _S.DISCONNECTED,
    },
    (_C, _S.ASSOCIATED): {
        _T.SEND_REQUEST: _S.AWAITING_RESPONSE,
        _T.SEND_RLRQ: _S.RELEASING,
        _T.SEND_DISC: _S.DISCONNECTING,
        _T.LINK_DOWN: _S.DISCONNECTED,
    },
    (_C, _S.AWAITING_RESPONSE): {
        _T.RESPONSE: _S.ASSOCIATED,
        _T.SEND_DISC: _S.DISCONNECTING,
        _T.LINK_DOWN: _S.DISCONNECTED,
    },
    (_C, _S.RELEASING): {
        _T.RLRE: _S.CONNECTED,
        _T.SEND_DISC: _S.DISCONNECTING,
        _T.LINK_DOWN: _S.DISCONNECTED,
    },
    (_C, _S.DISCONNECTING): {_T.SEND_DISC: _S.DISCONNECTING, _T.LINK_DOWN: _S.DISCONNECTED},
    (_C, _S.DISCONNECTED): {},
    # ERROR is terminal for the association; closing the HDLC link stays possible, so that a
    # meter is not left holding a dead link until its inactivity timer runs out.
    (_C, _S.ERROR): {_T.SEND_DISC: _S.DISCONNECTING},
    (_V, _S.IDLE): {_T.LINK_UP: _S.CONNECTED, _T.LINK_DOWN: _S.IDLE},
    (_V, _S.CONNECTED): {
        _T.LINK_UP: _S.CONNECTED,  # SNRM again: the link is reset
        _T.RLRE: _S.CONNECTED,  # an RLRQ without an association is answered all the same
        _T.AARE_ACCEPTED: _S.ASSOCIATED,
        _T.AARE_HLS: _S.AUTHENTICATING,
        _T.AARE_REJECTED: _S.CONNECTED,
        _T.LINK_DOWN: _S.DISCONNECTED,
    },
    (_V, _S.AUTHENTICATING): {
        _T.HLS_PASSED: _S.ASSOCIATED,
        _T.FAIL: _S.CONNECTED,  # a wrong f(StoC): the association is not established
        _T.LINK_UP: _S.CONNECTED,
        _T.AARE_ACCEPTED: _S.ASSOCIATED,  # a new AARQ replaces the pending one
        _T.AARE_HLS: _S.AUTHENTICATING,
        _T.AARE_REJECTED: _S.CONNECTED,
        _T.RLRE: _S.CONNECTED,
        _T.LINK_DOWN: _S.DISCONNECTED,
    },
    (_V, _S.ASSOCIATED): {
        _T.LINK_UP: _S.CONNECTED,
        _T.AARE_ACCEPTED: _S.ASSOCIATED,
        _T.AARE_HLS: _S.AUTHENTICATING,
        _T.AARE_REJECTED: _S.CONNECTED,
        _T.RLRE: _S.CONNECTED,
        _T.LINK_DOWN: _S.DISCONNECTED,
    },
    (_V, _S.DISCONNECTED): {_T.LINK_UP: _S.CONNECTED},  # HDLC: a new SNRM after DISC
    (_V, _S.ERROR): {},
}


class AssociationMachine:
    """The state of one end of one association, moved only through :data:`TRANSITIONS`."""

    __slots__ = ("_role", "_table", "state")

    def __init__(self, role: Role, state: AssociationState = AssociationState.IDLE) -> None:
        if (role, state) not in TRANSITIONS:
            raise DlmsLocalError(f"{state.value} is not a {role.value} state")
        self._role = role
        # This role's rows, keyed by state alone: one look-up less on every request.
        self._table = {s: moves for (r, s), moves in TRANSITIONS.items() if r is role}
        self.state = state

    @property
    def role(self) -> Role:
        return self._role

    def allows(self, trigger: AssociationTrigger) -> bool:
        return trigger in self._table[self.state]

    def fire(self, trigger: AssociationTrigger) -> AssociationState:
        """Move on ``trigger``; one the table does not allow is a DlmsLocalError (→ ERROR)."""
        following = self._table[self.state].get(trigger)
        if following is None:
            was = self.state
            self.state = AssociationState.ERROR
            raise DlmsLocalError(f"{self._role.value}: {trigger.value} not allowed in {was.value}")
        self.state = following
        return following

    def fail(self) -> None:
        """Move to ERROR (a fatal remote error, or a local one found outside :meth:`fire`)."""
        self.state = AssociationState.ERROR


# --- what both ends share -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Released:
    """The association is released (client: RLRE received; server: RLRQ answered)."""

    reason: ReleaseResponseReason | ReleaseRequestReason | None = None


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The HDLC link is down: our DISC confirmed, the peer's DISC, or a DM."""


class AuthenticationRejectedError(AssociationRejectedError, SecurityError):
    """The AARE refused our credentials: an LLS password (``authentication-failure``) or a
    ciphered InitiateRequest the server could not decipher (wrong keys or system title).
    Both an association rejection and a security failure (E09)."""


class CipheringRejectedError(ExceptionResponseError, SecurityError):
    """The server's exception-response ``deciphering-error`` or ``invocation-counter-error``:
    it could not authenticate our ciphered APDU (wrong keys, or a counter it has seen)."""


@functools.lru_cache(maxsize=4096)
def _obis_from_text(text: str) -> bytes:
    try:
        return obis_bytes(text)
    except DecodeError as exc:
        raise DlmsLocalError(str(exc)) from None


def logical_name(obis: bytes | str) -> bytes:
    """The 6 octets of a logical name given as bytes or as text (``"1.0.1.8.0.255"``)."""
    if type(obis) is bytes and len(obis) == 6:
        return obis
    if isinstance(obis, str):
        return _obis_from_text(obis)
    if isinstance(obis, bytes | bytearray | memoryview) and len(obis) == 6:
        return bytes(obis)
    raise DlmsLocalError(f"a logical name is 6 octets or OBIS text, not {obis!r}")


class CipherContext:
    """Security suite 0 for one end of an association: our keys, our system title and the
    invocation counters reserved for us; the peer's system title (once known) and the
    last counter accepted from it. Counters come from the caller's iterator and must
    increase; running out is a :class:`DlmsLocalError` (a counter is never reused)."""

    __slots__ = ("_counters", "ak", "ek", "last_sent", "own_title", "peer_counter", "peer_title")

    def __init__(
        self,
        *,
        ek: bytes,
        ak: bytes,
        own_title: bytes,
        counters: Iterator[int],
        peer_last: int | None = None,
    ) -> None:
        self.ek = ek
        self.ak = ak
        self.own_title = own_title
        self.peer_title: bytes | None = None
        self._counters = counters
        self.last_sent: int | None = None
        self.peer_counter = InvocationCounter(peer_last)

    def next_counter(self) -> int:
        value = next(self._counters, None)
        if value is None:
            raise DlmsLocalError("the reserved invocation counters are used up: reserve more")
        last = self.last_sent
        if (
            type(value) is not int
            or not 0 <= value <= MAX_INVOCATION_COUNTER
            or (last is not None and value <= last)
        ):
            raise DlmsLocalError(f"invocation counter {value!r} does not follow {last}")
        self.last_sent = value
        return value

    def seal(self, apdu: bytes, style: CipheringStyle) -> bytes:
        """``apdu`` authenticated and encrypted with the next counter, in ``style``."""
        ic = self.next_counter()
        if style == "glo":
            return cipher_apdu(
                apdu,
                security=AUTHENTICATED_ENCRYPTED,
                system_title=self.own_title,
                invocation_counter=ic,
                ek=self.ek,
                ak=self.ak,
            )
        return general_glo_cipher(
            apdu,
            security=AUTHENTICATED_ENCRYPTED,
            system_title=self.own_title,
            invocation_counter=ic,
            ek=self.ek,
            ak=self.ak,
        )

    def open(self, ciphered: bytes) -> Deciphered:
        """Decipher a peer's APDU (either style) and accept its counter. A bad tag, a
        downgraded security control, another system title or a counter not above the last
        one accepted is a :class:`SecurityError`; the counter moves only after the tag
        verified."""
        opened = decipher_any(
            ciphered,
            ek=self.ek,
            ak=self.ak,
            system_title=self.peer_title,
            require=Protection.AUTHENTICATED_ENCRYPTION,
        )
        if opened.dedicated:
            raise SecurityError("a ded- APDU, but no dedicated key was agreed")
        self.peer_counter.accept(opened.invocation_counter)
        return opened


def check_system_title(value: bytes | None, what: str) -> bytes:
    if value is None or len(value) != SYSTEM_TITLE_LENGTH:
        raise DlmsLocalError(f"{what} must be {SYSTEM_TITLE_LENGTH} octets")
    return bytes(value)


def drain_queue(out: list[bytes]) -> bytes:
    """The bytes queued in ``out``, joined; empties it."""
    if not out:
        return b""
    data = out[0] if len(out) == 1 else b"".join(out)
    out.clear()
    return data


class WrapperFraming:
    """APDUs over the IEC 62056-47 wrapper. ``peer`` ``None`` (a server before the first
    PDU) accepts any source wPort and answers the last one seen; PDUs for another
    destination are dropped, as a meter ignores what is not addressed to it."""

    __slots__ = ("_parser", "local", "peer")

    def __init__(self, local: int, peer: int | None, *, max_apdu: int, max_buffer: int) -> None:
        self.local = local
        self.peer = peer
        self._parser = WrapperParser(max_apdu=max_apdu, max_buffer=max_buffer)

    def wrap(self, apdu: bytes) -> bytes:
        if self.peer is None:
            raise DlmsLocalError("no peer wPort to answer yet")
        return encode_wrapper(self.local, self.peer, apdu)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self._parser.receive_data(data)

    def next_item(self, learn_peer: bool) -> bytes | Connected | LinkDown | NeedDataType:
        while True:
            pdu = self._parser.next_pdu()
            if pdu is NEED_DATA:
                return NEED_DATA
            assert not isinstance(pdu, NeedDataType)
            if pdu.dst != self.local:
                continue
            if self.peer != pdu.src:
                if not learn_peer:
                    continue
                self.peer = pdu.src
            return pdu.apdu


class HdlcFraming:
    """APDUs over an :class:`HdlcLink`. What the link sends in reaction to frames (RRs, the
    next segments, UA, DM) goes into ``out``, the facade's send queue, as it appears."""

    __slots__ = ("link", "out", "rejected")

    def __init__(self, link: HdlcLink, out: list[bytes]) -> None:
        self.link = link
        self.out = out
        self.rejected = 0  # frames the link dropped (noise, wrong address, out of sequence)

    def wrap(self, apdu: bytes) -> bytes:
        frames = self.link.send_apdu(apdu)
        return frames[0] if len(frames) == 1 else b"".join(frames)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self.link.receive_data(data)

    def next_item(self, learn_peer: bool) -> bytes | Connected | LinkDown | NeedDataType:
        link = self.link
        while True:
            event = link.next_event()
            pending = link.data_to_send()
            if pending:
                self.out.append(pending)
            if type(event) is LinkData:
                return event.apdu
            if type(event) is FrameRejected:
                self.rejected += 1
                continue
            assert not isinstance(event, LinkData | FrameRejected)
            return event
