"""The DLMS/COSEM server (the meter) as one sans-IO object: it answers what a client sends
from a :class:`CosemModel` the caller supplies, and reads and writes only bytes.

Use::

    server = DlmsServer(ServerSettings(...), model)
    server.receive_data(read())
    while (event := server.next_event()) is not NEED_DATA:
        log(event)                              # AssociationOpened, RequestServed, ...
    write(server.data_to_send())                # the answers (drop or delay them to
                                                # simulate a faulty line)

Every answer is queued for :meth:`DlmsServer.data_to_send`; the events only report. What
the server does, by case:

* **AARQ.** The client SAP picks a :class:`ClientPolicy` (authentication and security).
  The AARE rejects, with the Green Book diagnostic, an unknown client, a wrong application
  context (``application-context-name-not-supported``), a missing or other mechanism, a
  wrong LLS password (``authentication-failure``) and an xDLMS context it cannot grant
  (a ConfirmedServiceError ``initiateError``: version, conformance, PDU size). A ciphered
  InitiateRequest that does not decipher (wrong keys or system title, replayed counter)
  is rejected with ``initiateError: application-reference: deciphering-error``. HLS-GMAC
  sends StoC (``ServerSettings.challenge`` or ``next_challenge()``) and waits for the
  ``reply_to_HLS_authentication`` ACTION; a wrong f(StoC) is answered
  ``read-write-denied`` and the association is not established.
* **Ciphering.** In an ``auth-enc`` association every request must be ciphered, in either
  style; the answer goes in the style of the request, with the next counter from
  ``ServerSettings.invocation_counters``. A request whose tag does not verify is answered
  with an exception-response ``deciphering-error``; one whose counter is not above the
  last accepted (a replay) with ``invocation-counter-error`` carrying the counter
  expected. Both go plain, and a :class:`RequestRefused` event reports them; the
  association stays up. Persist :attr:`DlmsServer.last_client_counter` between
  connections and pass it back as ``ServerSettings.last_client_counter``.
* **Services.** GET (normal, with-list, next), SET (normal, with-list), ACTION (normal,
  with-list); a response larger than ``min(client max receive PDU, ServerSettings.max_pdu)``
  goes as GET-Response-With-Datablock blocks, each sent on the client's GET-Request-Next.
  Association LN (0.0.40.0.0.255) attributes 1 and 2 (the object list) are answered from
  ``CosemModel.object_list()``.
* **Anything malformed or out of place** is answered with an exception-response and a
  :class:`RequestRefused` event; it never raises for what the client sends. Only a
  broken wrapper stream (:class:`CorruptFrameError`, unrecoverable on TCP: close the
  connection), local errors (a model returning what cannot be encoded, our counters used
  up) and the model's own exceptions propagate.

The parts: :mod:`~meterledger.codec.dlms.server_settings` (the model protocol, the client
policies, :class:`ServerSettings`), :mod:`~meterledger.codec.dlms.server_events` (what
``next_event`` reports), :mod:`~meterledger.codec.dlms.server_association` (AARQ, HLS,
RLRQ) and :mod:`~meterledger.codec.dlms.server_services` (ciphered requests, GET, SET,
ACTION, data blocks). :class:`DlmsServer` builds on the last two and owns the framing and
the queue of answers; this module re-exports the public names of all of them.
"""

from __future__ import annotations

from meterledger.codec.dlms.apdu import ExceptionResponse, encode
from meterledger.codec.dlms.association import (
    AssociationMachine,
    AssociationState,
    AssociationTrigger,
    CipherContext,
    CipheringStyle,
    Disconnected,
    HdlcFraming,
    Released,
    Role,
    WrapperFraming,
    drain_queue,
)
from meterledger.codec.dlms.codes import ApduTag, Conformance, ExceptionServiceError
from meterledger.codec.dlms.cursor import NEED_DATA, NeedDataType
from meterledger.codec.dlms.hdlc_frame import server_address
from meterledger.codec.dlms.hdlc_link import Connected, HdlcLink
from meterledger.codec.dlms.server_events import (
    AssociationOpened,
    AssociationRefused,
    LinkOpened,
    RequestRefused,
    RequestServed,
    ServerEvent,
    _Refusal,
)
from meterledger.codec.dlms.server_services import ServerServices
from meterledger.codec.dlms.server_settings import (
    PUBLIC_CLIENT,
    SERVER_CONFORMANCE,
    ClientPolicy,
    CosemModel,
    ServerSettings,
)

__all__ = [
    "PUBLIC_CLIENT",
    "SERVER_CONFORMANCE",
    "AssociationOpened",
    "AssociationRefused",
    "ClientPolicy",
    "CosemModel",
    "Disconnected",
    "DlmsServer",
    "LinkOpened",
    "Released",
    "RequestRefused",
    "RequestServed",
    "ServerEvent",
    "ServerSettings",
]

_S = AssociationState
_T = AssociationTrigger


class DlmsServer(ServerServices):
    """The server end of the associations on one connection (see the module doc)."""

    def __init__(self, settings: ServerSettings, objects: CosemModel) -> None:
        self.settings = settings
        self.objects = objects
        self._out: list[bytes] = []
        self._policies = {p.client_sap: p for p in settings.clients}
        self._framing: WrapperFraming | HdlcFraming
        if settings.framing == "hdlc":
            local = server_address(
                settings.logical_address, settings.physical_address, settings.address_size
            )
            self._link: HdlcLink | None = HdlcLink(
                Role.SERVER,
                local_address=local,
                params=settings.hdlc,
                max_apdu=settings.max_apdu,
                max_buffer=settings.max_buffer,
            )
            self._framing = HdlcFraming(self._link, self._out)
            self._machine = AssociationMachine(Role.SERVER, _S.IDLE)
        else:
            self._link = None
            self._framing = WrapperFraming(
                settings.logical_address,
                None,
                max_apdu=settings.max_apdu,
                max_buffer=settings.max_buffer,
            )
            self._machine = AssociationMachine(Role.SERVER, _S.CONNECTED)
        self._cipher: CipherContext | None = None
        if settings.ek is not None and settings.ak is not None and settings.system_title:
            self._cipher = CipherContext(
                ek=bytes(settings.ek),
                ak=bytes(settings.ak),
                own_title=bytes(settings.system_title),
                counters=iter(settings.invocation_counters),
                peer_last=settings.last_client_counter,
            )
        self._reset()

    # --- what callers see -----------------------------------------------------------------

    @property
    def state(self) -> AssociationState:
        return self._machine.state

    @property
    def last_client_counter(self) -> int | None:
        """The last client invocation counter accepted (persist it between connections)."""
        return None if self._cipher is None else self._cipher.peer_counter.last

    @property
    def last_invocation_counter(self) -> int | None:
        """The last of our own counters used."""
        return None if self._cipher is None else self._cipher.last_sent

    @property
    def negotiated_conformance(self) -> Conformance:
        return self._conformance

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self._framing.receive_data(data)

    def data_to_send(self) -> bytes:
        """The answers and link frames queued so far; drains the queue."""
        return drain_queue(self._out)

    def next_event(self) -> ServerEvent | NeedDataType:
        while True:
            item = self._framing.next_item(True)
            if type(item) is bytes:
                event = self._on_apdu(item)
            elif item is NEED_DATA:
                return NEED_DATA
            else:
                event = self._on_link(item)
            if event is not None:
                return event

    # --- link -----------------------------------------------------------------------------

    def _client_sap(self) -> int:
        if self._link is None:
            assert isinstance(self._framing, WrapperFraming) and self._framing.peer is not None
            return self._framing.peer
        peer = self._link.peer_address
        return -1 if peer is None else peer.upper

    def _on_link(self, event: object) -> ServerEvent | None:
        self._reset()
        if type(event) is Connected:
            self._machine.fire(_T.LINK_UP)
            return LinkOpened(event.peer.upper)
        if self._machine.allows(_T.LINK_DOWN):
            self._machine.fire(_T.LINK_DOWN)
        return Disconnected()

    def _send(self, apdu: bytes, style: CipheringStyle | None) -> None:
        if style is not None:
            assert self._cipher is not None
            apdu = self._cipher.seal(apdu, style)
        data = self._framing.wrap(apdu)
        if data:
            self._out.append(data)

    # --- APDUs ----------------------------------------------------------------------------

    def _on_apdu(self, apdu: bytes) -> ServerEvent | None:
        try:
            if not apdu:
                raise _Refusal("empty APDU", ExceptionServiceError.OTHER_REASON)
            tag = apdu[0]
            if tag == ApduTag.AARQ:
                return self._on_aarq(apdu)
            if tag == ApduTag.RLRQ:
                return self._on_rlrq(apdu)
            return self._on_xdlms(apdu)
        except _Refusal as refusal:
            answer = ExceptionResponse(refusal.state, refusal.service, refusal.counter)
            self._send(encode(answer), None)
            return RequestRefused(refusal.reason, refusal.service)
