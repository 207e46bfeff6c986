"""The DLMS/COSEM client as one sans-IO object (like wsproto's ``WSConnection``): it
composes the framing (IEC 62056-47 wrapper or HDLC), the association (AARQ/AARE, LLS,
HLS-GMAC), security suite 0 and the xDLMS services, and reads and writes only bytes.

Use::

    client = DlmsClient(ClientSettings(framing="hdlc", ...))
    write(client.start())                      # SNRM (HDLC) or AARQ (wrapper)
    while True:
        client.receive_data(read())
        while (event := client.next_event()) is not NEED_DATA:
            handle(event)                      # Associated, GetResult, ...
        write(client.data_to_send())           # what the client sends on its own
    write(client.get(3, "1.0.1.8.0.255", 2))   # once Associated

The ``data_to_send`` contract: the methods that make a request (``start``, ``get``,
``get_with_list``, ``set``, ``action``, ``release``, ``disconnect``, ``poll``) *return*
their bytes. Everything the client must send by itself, in reaction to what it received,
is queued while :meth:`DlmsClient.next_event` runs: the AARQ once the UA arrives, the HLS
``reply_to_HLS_authentication`` ACTION after the AARE, a GET-Request-Next for each data
block, the HDLC RR that asks for the next segment and the next segment of our own long
APDU. :meth:`DlmsClient.data_to_send` returns those bytes, in order, and empties the queue
(``b""`` when there is nothing). Call it after ``next_event`` has returned ``NEED_DATA`` —
by then nothing more can happen until the peer hears from us — or after every event; the
bytes are the same. A new request before the last one is answered (its blocks included)
is a ``DlmsLocalError``: one request is outstanding at a time.

Errors: ``next_event`` raises what the peer did wrong. An exception-response is
:class:`ExceptionResponseError` (a :class:`CipheringRejectedError`, also a
:class:`SecurityError`, for deciphering and invocation-counter errors) and the client stays
associated; an AARE that rejects is :class:`AssociationRejectedError` (an
:class:`AuthenticationRejectedError` for a wrong password or undecipherable keys) and the
client is left ``CONNECTED`` so that ``disconnect()`` can close the link. Anything else — a
bad tag, a replayed server counter, a wrong f(CtoS), a malformed APDU — moves the client to
``ERROR``. A call the state does not allow raises :class:`DlmsLocalError` and moves to
``ERROR`` too; a bad argument raises it without changing the state (nothing was sent).
From ``ERROR`` only ``disconnect()`` remains, so that an HDLC link can still be closed.
An APDU that arrives when no answer is awaited (an event notification, a late duplicate)
is dropped.

The parts: :mod:`~meterledger.codec.dlms.client_settings` (:class:`ClientSettings`),
:mod:`~meterledger.codec.dlms.client_events` (what ``next_event`` returns),
:mod:`~meterledger.codec.dlms.client_services` (GET, SET, ACTION and data blocks) and
:mod:`~meterledger.codec.dlms.client_association` (AARQ, AARE, HLS, RLRE).
:class:`DlmsClient` builds on the last two and drives the framing; this module re-exports
the public names of all of them.
"""

from __future__ import annotations

from meterledger.codec.dlms.acse import InitiateRequest, Rlrq, encode_initiate
from meterledger.codec.dlms.apdu import encode
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
from meterledger.codec.dlms.client_association import ClientAssociation
from meterledger.codec.dlms.client_events import (
    ActionCompleted,
    Associated,
    ClientEvent,
    GetFailed,
    GetListResult,
    GetResult,
    SetResult,
)
from meterledger.codec.dlms.client_services import _GET, AttributeSpec
from meterledger.codec.dlms.client_settings import DEFAULT_CONFORMANCE, ClientSettings
from meterledger.codec.dlms.codes import ApduTag, Conformance, ReleaseRequestReason
from meterledger.codec.dlms.cursor import NEED_DATA, NeedDataType
from meterledger.codec.dlms.errors import DlmsLocalError, DlmsRemoteError, SecurityError
from meterledger.codec.dlms.hdlc_frame import HdlcAddress, server_address
from meterledger.codec.dlms.hdlc_link import Connected, HdlcLink

__all__ = [
    "DEFAULT_CONFORMANCE",
    "ActionCompleted",
    "Associated",
    "AttributeSpec",
    "ClientEvent",
    "ClientSettings",
    "Disconnected",
    "DlmsClient",
    "GetFailed",
    "GetListResult",
    "GetResult",
    "Released",
    "SetResult",
]

# Ciphered APDU tags a server may answer with in a glo association (either style).
_CIPHERED_RESPONSES = frozenset(
    {
        ApduTag.GLO_GET_RESPONSE,
        ApduTag.GLO_SET_RESPONSE,
        ApduTag.GLO_ACTION_RESPONSE,
        ApduTag.GENERAL_GLO_CIPHERING,
        ApduTag.DED_GET_RESPONSE,
        ApduTag.DED_SET_RESPONSE,
        ApduTag.DED_ACTION_RESPONSE,
        ApduTag.GENERAL_DED_CIPHERING,
    }
)
_S = AssociationState
_T = AssociationTrigger


class DlmsClient(ClientAssociation):
    """The client end of one association with one logical device (see the module doc)."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self._machine = AssociationMachine(Role.CLIENT)
        self._out: list[bytes] = []
        self._framing: WrapperFraming | HdlcFraming
        if settings.framing == "hdlc":
            server = server_address(
                settings.server_logical, settings.server_physical, settings.address_size
            )
            self._link: HdlcLink | None = HdlcLink(
                Role.CLIENT,
                local_address=HdlcAddress(settings.client_sap),
                peer_address=server,
                params=settings.hdlc,
                max_apdu=settings.max_apdu,
                max_buffer=settings.max_buffer,
            )
            self._framing = HdlcFraming(self._link, self._out)
        else:
            self._link = None
            self._framing = WrapperFraming(
                settings.client_sap,
                settings.server_logical,
                max_apdu=settings.max_apdu,
                max_buffer=settings.max_buffer,
            )
        self._cipher: CipherContext | None = None
        if settings.auth == "hls-gmac" or settings.security == "auth-enc":
            assert settings.ek is not None and settings.ak is not None
            assert settings.system_title is not None
            self._cipher = CipherContext(
                ek=bytes(settings.ek),
                ak=bytes(settings.ak),
                own_title=bytes(settings.system_title),
                counters=iter(settings.invocation_counters),
                peer_last=settings.last_server_counter,
            )
        self._ciphered = settings.security == "auth-enc"
        self._style: CipheringStyle = settings.ciphering
        self._invoke = 0
        self._waiting = _GET
        self._blocks: list[bytes] = []
        self._block_number = 0
        self._block_size = 0
        self._soft = False  # the error being raised leaves the state as it is
        self._conformance = Conformance(0)
        self._granted = 0  # the same, as an int: IntFlag operators are slow on the GET path
        self._server_max_pdu = 0
        self._server_title: bytes | None = None
        self._initiate = encode_initiate(
            InitiateRequest(settings.conformance, settings.max_receive_pdu)
        )

    # --- what callers see -----------------------------------------------------------------

    @property
    def state(self) -> AssociationState:
        return self._machine.state

    @property
    def negotiated_conformance(self) -> Conformance:
        return self._conformance

    @property
    def server_system_title(self) -> bytes | None:
        return self._server_title

    @property
    def server_max_pdu(self) -> int:
        return self._server_max_pdu

    @property
    def last_server_counter(self) -> int | None:
        """The last server invocation counter accepted (persist it; pass it back in
        :attr:`ClientSettings.last_server_counter` next time)."""
        return None if self._cipher is None else self._cipher.peer_counter.last

    @property
    def last_invocation_counter(self) -> int | None:
        """The last of our own counters used (``None``: none yet)."""
        return None if self._cipher is None else self._cipher.last_sent

    @property
    def rejected_frames(self) -> int:
        """HDLC frames the link dropped (noise, wrong address, out of sequence)."""
        return self._framing.rejected if isinstance(self._framing, HdlcFraming) else 0

    def start(self) -> bytes:
        """HDLC: the SNRM (the AARQ follows the UA through :meth:`data_to_send`; call
        again after the caller's timeout to repeat the SNRM); wrapper: the AARQ."""
        if self._link is not None:
            self._machine.fire(_T.SEND_SNRM)
            return self._local(self._link.connect)
        return self._aarq()

    def poll(self) -> bytes:
        """HDLC: an RR to ask again after the caller's timeout (the meter repeats its last
        frame); wrapper: nothing to send."""
        if self._link is None:
            return b""
        return self._local(self._link.poll)

    def release(self) -> bytes:
        """The RLRQ; :class:`Released` follows the RLRE."""
        self._machine.fire(_T.SEND_RLRQ)
        return self._local(self._framing.wrap, encode(Rlrq(ReleaseRequestReason.NORMAL)))

    def disconnect(self) -> bytes:
        """HDLC: the DISC (:class:`Disconnected` follows the UA or DM). Wrapper: nothing to
        send; the client is disconnected at once and the caller closes the socket."""
        self._machine.fire(_T.SEND_DISC)
        if self._link is None:
            self._machine.fire(_T.LINK_DOWN)
            return b""
        return self._local(self._link.disconnect)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self._framing.receive_data(data)
        except DlmsLocalError:
            self._machine.fail()
            raise

    def data_to_send(self) -> bytes:
        """What the client sends on its own (see the module docstring); drains the queue."""
        return drain_queue(self._out)

    def next_event(self) -> ClientEvent | NeedDataType:
        """The next event from the bytes received, or ``NEED_DATA``."""
        if self._machine.state is _S.ERROR:
            raise DlmsLocalError("the DLMS client is in ERROR")
        framing = self._framing
        try:
            while True:
                item = framing.next_item(False)
                if type(item) is bytes:
                    event = self._on_apdu(item)
                elif item is NEED_DATA:
                    return NEED_DATA
                else:
                    event = self._on_link(item)
                if event is not None:
                    return event
        except DlmsRemoteError:
            if self._soft:
                self._soft = False
            else:
                self._machine.fail()
            raise
        except DlmsLocalError:
            self._machine.fail()
            raise

    # --- receiving ------------------------------------------------------------------------

    def _on_link(self, event: object) -> ClientEvent | None:
        machine = self._machine
        if type(event) is Connected:
            if machine.state is _S.LINK_PENDING:
                machine.fire(_T.LINK_UP)
                self._out.append(self._aarq())
            return None
        if machine.allows(_T.LINK_DOWN):
            machine.fire(_T.LINK_DOWN)
            return Disconnected()
        return None

    def _on_apdu(self, apdu: bytes) -> ClientEvent | None:
        state = self._machine.state
        if state is _S.AWAITING_RESPONSE:
            return self._on_response(self._open(apdu))
        if state is _S.ASSOCIATING:
            return self._on_aare(apdu)
        if state is _S.AUTHENTICATING:
            return self._on_hls_reply(self._open(apdu))
        if state is _S.RELEASING:
            return self._on_rlre(apdu)
        return None  # unsolicited (an event notification, a late answer): not ours to judge

    def _open(self, apdu: bytes) -> bytes:
        if not self._ciphered or not apdu:
            return apdu
        tag = apdu[0]
        if tag in _CIPHERED_RESPONSES:
            assert self._cipher is not None
            return self._cipher.open(apdu).plain_apdu
        if tag == ApduTag.EXCEPTION_RESPONSE:
            return apdu  # sent plain: the server could not decipher what we sent
        raise SecurityError(f"unprotected APDU 0x{tag:02X} in a ciphered association")
