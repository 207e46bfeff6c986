"""States of an HDLC link and the transitions allowed between them (IEC 62056-46 6.4.5).

The table maps ``(role, state)`` to the triggers allowed there and the state each one leads to.
A trigger is a local call (:class:`LinkAction`) or the kind of a received frame
(:class:`~meterledger.codec.dlms.hdlc_frame.FrameKind`). A local call missing from the table
is a :class:`DlmsLocalError` and puts the link in ``ERROR``; a received frame missing from it
is rejected (a ``FrameRejected`` event) and changes nothing, because a noisy line is not
our mistake.
"""

from __future__ import annotations

import enum

from meterledger.codec.dlms.hdlc_frame import FrameKind

__all__ = ["TRANSITIONS", "LinkAction", "LinkState", "Role", "Trigger"]


class Role(enum.Enum):
    """The primary station (client) or the secondary station (server, the meter)."""

    CLIENT = "client"
    SERVER = "server"

    # Members are singletons compared by identity; Enum's own __hash__ hashes the name in
    # Python, and the transition look-ups run for every frame.
    __hash__ = object.__hash__


class LinkState(enum.Enum):
    DISCONNECTED = "disconnected"  # NDM, normal disconnected mode
    CONNECTING = "connecting"  # client: SNRM sent, waiting for UA or DM
    CONNECTED = "connected"  # NRM, normal response mode
    DISCONNECTING = "disconnecting"  # client: DISC sent, waiting for UA or DM
    ERROR = "error"

    __hash__ = object.__hash__  # see Role


class LinkAction(enum.Enum):
    CONNECT = "connect"
    SEND = "send"
    POLL = "poll"
    DISCONNECT = "disconnect"

    __hash__ = object.__hash__  # see Role


Trigger = LinkAction | FrameKind

_C, _S = Role.CLIENT, Role.SERVER
_D, _CING, _ON, _DING = (
    LinkState.DISCONNECTED,
    LinkState.CONNECTING,
    LinkState.CONNECTED,
    LinkState.DISCONNECTING,
)
_K = FrameKind
_A = LinkAction

TRANSITIONS: dict[tuple[Role, LinkState], dict[Trigger, LinkState]] = {
    (_C, _D): {_A.CONNECT: _CING, _K.UI: _D},
    (_C, _CING): {
        _A.CONNECT: _CING,  # the caller's timer ran out: send the SNRM again
        _A.DISCONNECT: _DING,
        _K.UA: _ON,
        _K.DM: _D,
        _K.UI: _CING,
    },
    (_C, _ON): {
        _A.CONNECT: _CING,  # a new SNRM resets the link
        _A.SEND: _ON,
        _A.POLL: _ON,
        _A.DISCONNECT: _DING,
        _K.I: _ON,
        _K.RR: _ON,
        _K.RNR: _ON,
        _K.UI: _ON,
        _K.FRMR: _ON,
        _K.DM: _D,
    },
    (_C, _DING): {_A.DISCONNECT: _DING, _K.UA: _D, _K.DM: _D, _K.UI: _DING},
    (_S, _D): {_K.SNRM: _ON, _K.DISC: _D, _K.UI: _D},
    (_S, _ON): {
        _A.SEND: _ON,
        _K.SNRM: _ON,
        _K.I: _ON,
        _K.RR: _ON,
        _K.RNR: _ON,
        _K.UI: _ON,
        _K.DISC: _D,
    },
    (_C, LinkState.ERROR): {},
    (_S, LinkState.ERROR): {},
    (_S, _CING): {},
    (_S, _DING): {},
}
