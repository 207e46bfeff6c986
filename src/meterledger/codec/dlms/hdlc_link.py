"""The HDLC link of IEC 62056-46 as a sans-IO object: a client (primary station) or a server
(secondary station) in normal response mode, window size 1.

Use::

    link = HdlcLink(Role.CLIENT, local_address=HdlcAddress(16),
                    peer_address=HdlcAddress(1, 17))
    write(link.connect())                      # SNRM
    link.receive_data(read())
    event = link.next_event()                  # Connected(params, peer) ... or NEED_DATA
    write(link.data_to_send())                 # after every next_event()
    for frame in link.send_apdu(apdu): write(frame)

Choices, and why:

* **Outgoing bytes.** Calls return what they make (``connect``, ``disconnect``, ``poll``, and
  ``send_apdu`` the frames that may go now). What the link sends *in reaction* to a received
  frame — an RR for each segment received, the next segment once the peer's RR acknowledges
  the last one, a server's UA or DM, a retransmission — queues up in :meth:`data_to_send`,
  which the caller drains after every :meth:`next_event` (as h2 does). That keeps
  ``next_event`` returning only events.
* **Window 1.** One I frame is outstanding at a time, so ``send_apdu`` returns only the first
  segment of a long APDU; the others follow through ``data_to_send`` as the RRs arrive.
  Parameters with a window other than 1 are refused; a peer's larger window is negotiated
  down (``negotiate`` takes the minimum).
* **The turn.** Every frame the client sends has P=1 and hands the turn to the server; every
  server frame has F=1 and hands it back. The client may ``send_apdu`` only on its turn. A
  server's ``send_apdu`` without a pending poll returns ``[]``: the response waits for the
  client's next poll, as normal response mode requires.
* **Errors.** Corrupt or undecodable frames, frames for another address, out-of-state frames
  and I frames out of sequence become :class:`FrameRejected` events: noise on a line is not a
  reason to stop. An I frame whose N(S) is not the expected V(R) is discarded and answered
  with an RR repeating V(R), which tells the peer what to resend; we never send FRMR. An RR
  whose N(R) does not acknowledge our last I frame makes us retransmit it, so recovery after
  a timeout (the caller's clock, not ours) is: call :meth:`poll`.
* **LLC.** ``send_apdu`` prefixes ``E6 E6 00`` (client) or ``E6 E7 00`` (server) before
  segmenting; ``Data`` events carry the APDU without it. A received information field must
  start with ``E6 E6 00`` or ``E6 E7 00``.

Local calls that the state forbids raise :class:`DlmsLocalError` and put the link in
``LinkState.ERROR`` (see :mod:`meterledger.codec.dlms.hdlc_state` for the table).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import NoReturn

from meterledger.codec.dlms.cursor import NEED_DATA, NeedDataType
from meterledger.codec.dlms.errors import CorruptFrameError, DecodeError, DlmsLocalError
from meterledger.codec.dlms.hdlc_frame import (
    MAX_FRAME_LENGTH,
    FrameKind,
    FrameParser,
    HdlcAddress,
    HdlcFrame,
    HdlcParameters,
    _encode,
    negotiate,
)
from meterledger.codec.dlms.hdlc_state import TRANSITIONS, LinkAction, LinkState, Role, Trigger

__all__ = [
    "LLC_REQUEST",
    "LLC_RESPONSE",
    "Connected",
    "Data",
    "Disconnected",
    "Event",
    "FrameRejected",
    "HdlcLink",
    "RejectReason",
]

LLC_REQUEST = b"\xe6\xe6\x00"  # destination LSAP, source LSAP (command), quality
LLC_RESPONSE = b"\xe6\xe7\x00"  # source LSAP with the response bit

_SNRM, _DISC, _UA, _DM = 0x93, 0x53, 0x73, 0x1F  # U frames with P/F set
_DEFAULTS = HdlcParameters()


class RejectReason(enum.Enum):
    CORRUPT = "corrupt"  # the parser raised CorruptFrameError
    UNDECODABLE = "undecodable"  # intact frame, impossible content (DecodeError)
    WRONG_ADDRESS = "wrong-address"  # for another station, or from one we are not linked to
    UNEXPECTED = "unexpected"  # a frame kind the link state does not allow
    OUT_OF_SEQUENCE = "out-of-sequence"  # N(S) or N(R) not what window 1 allows
    BAD_LLC = "bad-llc"  # the information does not start with an LLC header
    TOO_LONG = "too-long"  # the reassembled APDU would exceed max_apdu
    PEER_REJECT = "peer-reject"  # the peer sent FRMR


@dataclass(frozen=True, slots=True)
class Connected:
    """The link is up; ``params`` are the negotiated values from our side."""

    params: HdlcParameters
    peer: HdlcAddress


@dataclass(frozen=True, slots=True)
class Data:
    """A complete APDU (segments reassembled, LLC header removed)."""

    apdu: bytes


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The link is down. ``cause``: UA (our DISC confirmed), DISC (the client's) or DM."""

    cause: FrameKind


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """A received frame was dropped; the link carries on."""

    reason: RejectReason
    detail: str
    frame: HdlcFrame | None = None


Event = Connected | Data | Disconnected | FrameRejected


class HdlcLink:
    """One end of an HDLC link. ``params`` is the client's proposal or the server's limits.
    A server without ``peer_address`` accepts an SNRM from any client and then talks only
    to that one until the link goes down."""

    _unacked: bytes | None
    _segments: deque[bytes]
    _rx: list[bytes]
    _ui: list[bytes]

    def __init__(
        self,
        role: Role,
        *,
        local_address: HdlcAddress,
        peer_address: HdlcAddress | None = None,
        params: HdlcParameters = _DEFAULTS,
        max_apdu: int = 65535,
        max_frame: int = MAX_FRAME_LENGTH,
        max_buffer: int = 65536,
    ) -> None:
        if role is Role.CLIENT and peer_address is None:
            raise DlmsLocalError("a client link needs the server's peer_address")
        if params.window_transmit != 1 or params.window_receive != 1:
            raise DlmsLocalError("HdlcLink implements window size 1 only")
        if max_apdu < 1:
            raise DlmsLocalError("max_apdu must be positive")
        self.role = role
        self.local_address = local_address
        self._configured_peer = peer_address
        self._wanted = params
        self._max_apdu = max_apdu
        self._parser = FrameParser(max_frame=max_frame, max_buffer=max_buffer)
        self._llc_out = LLC_REQUEST if role is Role.CLIENT else LLC_RESPONSE
        self._state = LinkState.DISCONNECTED
        self._to_send: list[bytes] = []
        self._set_peer(peer_address)
        self._reset()

    # --- what callers see ---------------------------------------------------------------

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def params(self) -> HdlcParameters:
        """The parameters in force (from our side); the defaults until connected."""
        return self._params

    @property
    def peer_address(self) -> HdlcAddress | None:
        return self._peer

    def connect(self) -> bytes:
        """Client: the SNRM (with our parameters unless they are all defaults)."""
        after = self._act(LinkAction.CONNECT)
        self._reset()
        self._state = after
        self._turn = False
        return _encode(
            self._addresses,
            _SNRM,
            False,
            b"" if self._wanted == _DEFAULTS else self._wanted.encode(),
        )

    def disconnect(self) -> bytes:
        """Client: the DISC."""
        self._state = self._act(LinkAction.DISCONNECT)
        self._turn = False
        return _encode(self._addresses, _DISC, False, b"")

    def poll(self) -> bytes:
        """Client: an RR with P=1, to ask again after a timeout (the server answers with its
        next segment, a retransmission or an RR)."""
        self._state = self._act(LinkAction.POLL)
        self._turn = False
        return self._rr()

    def send_apdu(self, apdu: bytes) -> list[bytes]:
        """Split ``LLC + apdu`` into I frames of at most the negotiated information length and
        return those that may be sent now (see the module docstring)."""
        if not apdu:
            self._fail("an APDU has at least one byte")
        after = self._act(LinkAction.SEND)
        if self.role is Role.CLIENT and not self._turn:
            self._fail("the server has not answered the last frame yet: wait, or poll()")
        if self._segments:
            self._fail("the previous APDU is still being sent")
        payload = self._llc_out + apdu
        size = self._params.max_info_transmit
        if len(payload) <= size:
            self._segments = deque((payload,))
        else:
            self._segments = deque(payload[i : i + size] for i in range(0, len(payload), size))
        self._state = after
        if not self._turn or self._unacked is not None:
            return []
        return [self._send_segment()]

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if self._state is LinkState.ERROR:
            raise DlmsLocalError("the HDLC link is in ERROR")
        try:
            self._parser.receive_data(data)
        except DlmsLocalError:
            self._state = LinkState.ERROR
            raise

    def next_event(self) -> Event | NeedDataType:
        """The next event from the received bytes, or ``NEED_DATA``. Drain
        :meth:`data_to_send` afterwards: handling a frame may have queued a reply."""
        if self._state is LinkState.ERROR:
            raise DlmsLocalError("the HDLC link is in ERROR")
        while True:
            try:
                frame = self._parser.next_frame()
            except CorruptFrameError as exc:
                return FrameRejected(RejectReason.CORRUPT, str(exc))
            except DecodeError as exc:
                return FrameRejected(RejectReason.UNDECODABLE, str(exc))
            if not isinstance(frame, HdlcFrame):
                return NEED_DATA
            event = self._handle(frame)
            if event is not None:
                return event

    def data_to_send(self) -> bytes:
        """Frames queued in reaction to received ones (RRs, segments, UA, DM, resends)."""
        if not self._to_send:
            return b""
        out = b"".join(self._to_send)
        self._to_send.clear()
        return out

    # --- state ----------------------------------------------------------------------------

    def _set_peer(self, peer: HdlcAddress | None) -> None:
        self._peer = peer
        self._addresses = (peer.wire if peer is not None else b"") + self.local_address.wire

    def _reset(self) -> None:
        self._params = _DEFAULTS
        self._vs = 0  # V(S): N(S) of our next I frame
        self._vr = 0  # V(R): N(S) we expect next
        self._unacked = None  # our last I frame until the peer acknowledges it
        self._segments = deque()  # information fields still to send
        self._turn = self.role is Role.CLIENT  # may we transmit (P/F bookkeeping)
        self._rx = []
        self._rx_size = 0
        self._rx_overflow = False
        self._ui = []  # segments of UI frames (no sequence numbers, no acknowledgement)
        self._ui_size = 0

    def _act(self, action: LinkAction) -> LinkState:
        after = TRANSITIONS[(self.role, self._state)].get(action)
        if after is None:
            self._fail(
                f"{action.value} is not allowed for an HDLC {self.role.value} "
                f"in state {self._state.value}"
            )
        return after

    def _fail(self, message: str) -> NoReturn:
        self._state = LinkState.ERROR
        raise DlmsLocalError(message)

    # --- sending --------------------------------------------------------------------------

    def _rr(self) -> bytes:
        return _encode(self._addresses, (self._vr << 5) | 0x11, False, b"")

    def _reply(self, frame: bytes) -> None:
        self._to_send.append(frame)
        self._turn = False

    def _send_segment(self) -> bytes:
        info = self._segments.popleft()
        frame = _encode(
            self._addresses, (self._vr << 5) | 0x10 | (self._vs << 1), bool(self._segments), info
        )
        self._vs = (self._vs + 1) & 7
        self._unacked = frame
        self._turn = False
        return frame

    # --- receiving ------------------------------------------------------------------------

    def _handle(self, frame: HdlcFrame) -> Event | None:
        if frame.dst.wire != self.local_address.wire or (
            self._peer is not None and frame.src.wire != self._peer.wire
        ):
            return FrameRejected(RejectReason.WRONG_ADDRESS, f"{frame.src} -> {frame.dst}", frame)
        trigger: Trigger = frame.kind
        after = TRANSITIONS[(self.role, self._state)].get(trigger)
        if frame.poll_final:
            self._turn = True
        if after is None:
            if self.role is Role.SERVER and self._state is LinkState.DISCONNECTED and self._turn:
                self._reply(_encode(frame.src.wire + self.local_address.wire, _DM, False, b""))
            return FrameRejected(
                RejectReason.UNEXPECTED,
                f"{frame.kind.name} in state {self._state.value}",
                frame,
            )
        kind = frame.kind
        if kind is FrameKind.I:
            return self._on_information(frame)
        if kind is FrameKind.RR or kind is FrameKind.RNR:
            return self._on_receive_ready(frame)
        if kind is FrameKind.UI:
            return self._on_unnumbered_information(frame)
        if kind is FrameKind.SNRM:
            return self._on_snrm(frame)
        if kind is FrameKind.UA and after is LinkState.CONNECTED:
            return self._on_ua_connect(frame)
        if kind is FrameKind.FRMR:
            return FrameRejected(RejectReason.PEER_REJECT, f"FRMR {frame.info.hex()}", frame)
        if kind is FrameKind.DISC:
            if self._state is LinkState.CONNECTED:
                self._reply(_encode(self._addresses, _UA, False, b""))
                self._down()
                return Disconnected(FrameKind.DISC)
            self._reply(_encode(frame.src.wire + self.local_address.wire, _DM, False, b""))
            return None
        self._down()  # UA to our DISC, or DM
        return Disconnected(kind)

    def _down(self) -> None:
        self._state = LinkState.DISCONNECTED
        self._reset()
        self._set_peer(self._configured_peer)

    def _on_snrm(self, frame: HdlcFrame) -> Event:
        try:
            proposal = HdlcParameters.decode(frame.info)
        except DecodeError as exc:
            self._reply(_encode(frame.src.wire + self.local_address.wire, _DM, False, b""))
            return FrameRejected(RejectReason.UNDECODABLE, str(exc), frame)
        agreed = negotiate(proposal, self._wanted)
        self._reset()
        self._set_peer(frame.src)
        self._params = agreed
        self._state = LinkState.CONNECTED
        self._reply(_encode(self._addresses, _UA, False, agreed.encode()))
        return Connected(agreed, frame.src)

    def _on_ua_connect(self, frame: HdlcFrame) -> Event:
        try:
            answer = HdlcParameters.decode(frame.info)
        except DecodeError as exc:
            return FrameRejected(RejectReason.UNDECODABLE, str(exc), frame)
        self._params = negotiate(self._wanted, answer).reversed()
        self._state = LinkState.CONNECTED
        self._turn = True
        return Connected(self._params, frame.src)

    def _acknowledges(self, recv_seq: int) -> bool:
        """Does N(R) acknowledge everything we sent? (Window 1: it may only lag by one.)"""
        if recv_seq == self._vs:
            self._unacked = None
            return True
        return False

    def _on_information(self, frame: HdlcFrame) -> Event | None:
        if frame.send_seq != self._vr or not self._acknowledges(frame.recv_seq):
            if self._turn:
                self._reply(self._rr())
            return FrameRejected(
                RejectReason.OUT_OF_SEQUENCE,
                f"N(S)={frame.send_seq} N(R)={frame.recv_seq}, expected {self._vr} and {self._vs}",
                frame,
            )
        self._vr = (self._vr + 1) & 7
        if self.role is Role.SERVER:
            self._segments.clear()  # a new request abandons what was left of a response
        event = self._collect(frame.info)
        if frame.segmented:
            if self._turn:
                self._reply(self._rr())
            return event
        payload = b"".join(self._rx) if len(self._rx) != 1 else self._rx[0]
        overflow = self._rx_overflow
        self._rx, self._rx_size, self._rx_overflow = [], 0, False
        if overflow:
            return event
        return self._deliver(payload, frame)

    def _collect(self, info: bytes) -> Event | None:
        if self._rx_overflow:
            return None
        self._rx_size += len(info)
        if self._rx_size > self._max_apdu + len(LLC_REQUEST):
            self._rx, self._rx_overflow = [], True
            return FrameRejected(RejectReason.TOO_LONG, f"APDU longer than {self._max_apdu}")
        self._rx.append(info)
        return None

    def _deliver(self, payload: bytes, frame: HdlcFrame) -> Event:
        if len(payload) < 3 or payload[0] != 0xE6 or payload[1] & 0xFE != 0xE6 or payload[2]:
            return FrameRejected(RejectReason.BAD_LLC, payload[:3].hex(), frame)
        return Data(payload[3:])

    def _on_receive_ready(self, frame: HdlcFrame) -> Event | None:
        if not self._acknowledges(frame.recv_seq):
            if self._unacked is not None and frame.recv_seq == (self._vs - 1) & 7:
                if self._turn:  # the peer did not get our last I frame: send it again
                    self._to_send.append(self._unacked)
                    self._turn = False
                return None
            if self._turn and self.role is Role.SERVER:
                self._reply(self._rr())
            return FrameRejected(
                RejectReason.OUT_OF_SEQUENCE, f"N(R)={frame.recv_seq}, V(S)={self._vs}", frame
            )
        if not self._turn or frame.kind is FrameKind.RNR:
            if self._turn and self.role is Role.SERVER:
                self._reply(self._rr())
            return None
        if self._segments:
            self._to_send.append(self._send_segment())
        elif self.role is Role.SERVER:
            self._reply(self._rr())  # polled with nothing (yet) to say
        return None

    def _on_unnumbered_information(self, frame: HdlcFrame) -> Event | None:
        if not frame.info:
            return None
        self._ui.append(frame.info)
        self._ui_size += len(frame.info)
        if self._ui_size > self._max_apdu + len(LLC_REQUEST):
            self._ui, self._ui_size = [], 0
            return FrameRejected(RejectReason.TOO_LONG, f"APDU longer than {self._max_apdu}")
        if frame.segmented:
            return None
        payload = b"".join(self._ui)
        self._ui, self._ui_size = [], 0
        return self._deliver(payload, frame)
