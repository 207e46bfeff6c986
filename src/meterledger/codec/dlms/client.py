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
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from meterledger.codec.dlms.acse import (
    Aare,
    Aarq,
    ConfirmedServiceError,
    InitiateRequest,
    InitiateResponse,
    Rlre,
    Rlrq,
    decode_initiate,
    encode_initiate,
    raise_for_aare,
)
from meterledger.codec.dlms.apdu import (
    ActionRequestNormal,
    ActionResponseNormal,
    AttributeReference,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    EntryDescriptor,
    ExceptionResponse,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    RangeDescriptor,
    SelectiveAccess,
    SetRequestNormal,
    SetResponseNormal,
    decode_apdu,
    encode,
    invoke_id_and_priority,
)
from meterledger.codec.dlms.association import (
    ASSOCIATION_LN,
    REPLY_TO_HLS_AUTHENTICATION,
    AssociationMachine,
    AssociationState,
    AssociationTrigger,
    Authentication,
    AuthenticationRejectedError,
    CipherContext,
    CipheringRejectedError,
    CipheringStyle,
    Disconnected,
    Framing,
    HdlcFraming,
    Released,
    Role,
    SecurityPolicy,
    WrapperFraming,
    check_system_title,
    logical_name,
)
from meterledger.codec.dlms.axdr import decode_data_bytes
from meterledger.codec.dlms.codes import (
    AcseServiceUserDiagnostic,
    ActionResult,
    ApduTag,
    ApplicationContext,
    AuthenticationMechanism,
    Conformance,
    DataAccessResult,
    ExceptionServiceError,
    ReleaseRequestReason,
    ServiceErrorType,
)
from meterledger.codec.dlms.cursor import NEED_DATA, _NeedDataType
from meterledger.codec.dlms.data import Data, DataType
from meterledger.codec.dlms.errors import (
    AssociationRejectedError,
    DecodeError,
    DlmsLocalError,
    DlmsRemoteError,
    ExceptionResponseError,
    SecurityError,
)
from meterledger.codec.dlms.hdlc_frame import HdlcAddress, HdlcParameters
from meterledger.codec.dlms.hdlc_link import Connected, HdlcLink
from meterledger.codec.dlms.hls import hls_gmac_response, verify_hls_gmac

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

_C = Conformance
DEFAULT_CONFORMANCE = (
    _C.GET
    | _C.SET
    | _C.ACTION
    | _C.SELECTIVE_ACCESS
    | _C.BLOCK_TRANSFER_WITH_GET_OR_READ
    | _C.MULTIPLE_REFERENCES
    | _C.PRIORITY_MGMT_SUPPORTED
)

_MECHANISM = {
    "none": AuthenticationMechanism.LOWEST,
    "low": AuthenticationMechanism.LOW,
    "hls-gmac": AuthenticationMechanism.HIGH_GMAC,
}
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
_DEFAULT_HDLC = HdlcParameters()
# The conformance bits each request needs, as ints.
_NEEDS_GET = int(_C.GET)
_NEEDS_SELECTIVE = int(_C.GET | _C.SELECTIVE_ACCESS)
_NEEDS_LIST = int(_C.GET | _C.MULTIPLE_REFERENCES)
_NEEDS_SET = int(_C.SET)
_NEEDS_ACTION = int(_C.ACTION)
_INVOKE = tuple(invoke_id_and_priority(i) for i in range(16))
_DECIPHERING = 6  # ServiceError application-reference: deciphering-error (Green Book 9.5)
_GET_LIST_HEAD = struct.Struct(">BBB")
_S = AssociationState
_T = AssociationTrigger

# What the client is waiting for.
_GET, _GET_LIST, _SET, _ACTION, _HLS = range(5)


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """How to reach and authenticate to one meter. Nothing here is generated by the codec:
    ``challenge`` (CtoS, 8..64 random octets for HLS) and ``invocation_counters`` (the
    values reserved for this client, e.g. ``range(first, first + n)``, each used once,
    strictly increasing) come from the caller. Settings serve one :class:`DlmsClient`:
    two clients built from one ``range`` would reuse counters.

    ``client_sap`` 16 is the public client (``auth="none"``); a management client (1 is
    usual) authenticates with LLS (``"low"``, ``password``) or ``"hls-gmac"``. HDLC
    addresses the server as ``server_logical`` (upper) + ``server_physical`` (lower) on
    ``address_size`` 1, 2 or 4 bytes (1: the logical address alone). ``security``
    ``"auth-enc"`` ciphers every xDLMS APDU with suite 0 in ``ciphering`` style;
    ``last_server_counter`` is the last server counter accepted before (persisted by the
    caller from :attr:`DlmsClient.last_server_counter`).
    """

    framing: Framing = "wrapper"
    client_sap: int = 16
    server_logical: int = 1
    server_physical: int = 17
    address_size: int = 4
    auth: Authentication = "none"
    password: bytes | None = None
    security: SecurityPolicy = "none"
    ciphering: CipheringStyle = "glo"
    ek: bytes | None = None
    ak: bytes | None = None
    system_title: bytes | None = None
    challenge: bytes | None = None
    invocation_counters: Iterable[int] = ()
    last_server_counter: int | None = None
    max_receive_pdu: int = 0xFFFF
    conformance: Conformance = DEFAULT_CONFORMANCE
    hdlc: HdlcParameters = _DEFAULT_HDLC
    max_apdu: int = 0xFFFF  # the largest APDU (or HDLC reassembly) accepted
    max_response: int = 1 << 22  # the largest value reassembled from data blocks
    max_buffer: int = 1 << 18  # received bytes not yet parsed

    def __post_init__(self) -> None:
        if self.framing not in ("wrapper", "hdlc"):
            raise DlmsLocalError(f"framing is 'wrapper' or 'hdlc', not {self.framing!r}")
        if self.auth not in _MECHANISM:
            raise DlmsLocalError(f"auth is 'none', 'low' or 'hls-gmac', not {self.auth!r}")
        if self.security not in ("none", "auth-enc"):
            raise DlmsLocalError(f"security is 'none' or 'auth-enc', not {self.security!r}")
        if self.ciphering not in ("glo", "general-glo"):
            raise DlmsLocalError(f"ciphering is 'glo' or 'general-glo', not {self.ciphering!r}")
        if self.auth == "low" and not self.password:
            raise DlmsLocalError("LLS needs a password")
        if self.auth == "hls-gmac" and (
            self.challenge is None or not 8 <= len(self.challenge) <= 64
        ):
            raise DlmsLocalError("HLS-GMAC needs a challenge (CtoS) of 8..64 octets")
        if self.auth == "hls-gmac" or self.security == "auth-enc":
            check_system_title(self.system_title, "system_title")
            for name in ("ek", "ak"):
                key = getattr(self, name)
                if key is None or len(key) != 16:
                    raise DlmsLocalError(f"{name} must be 16 octets for suite 0")
        if not 12 <= self.max_receive_pdu <= 0xFFFF:
            raise DlmsLocalError("max_receive_pdu must be 12..65535")
        if not 1 <= self.max_apdu <= 0xFFFF:
            raise DlmsLocalError("max_apdu must be 1..65535")
        if self.address_size not in (1, 2, 4):
            raise DlmsLocalError("address_size is 1, 2 or 4")


@dataclass(frozen=True, slots=True)
class Associated:
    """The association is ready: AARE accepted (and, with HLS, f(CtoS) verified)."""

    server_system_title: bytes | None
    negotiated_conformance: Conformance
    server_max_pdu: int


@dataclass(frozen=True, slots=True)
class GetResult:
    invoke_id: int
    value: Data


@dataclass(frozen=True, slots=True)
class GetFailed:
    invoke_id: int
    result: DataAccessResult


@dataclass(frozen=True, slots=True)
class GetListResult:
    """One entry per attribute of :meth:`DlmsClient.get_with_list`, in order."""

    invoke_id: int
    results: tuple[Data | DataAccessResult, ...]


@dataclass(frozen=True, slots=True)
class SetResult:
    invoke_id: int
    result: DataAccessResult


@dataclass(frozen=True, slots=True)
class ActionCompleted:
    """The ACTION-Response: ``result`` and the method's return parameters, if any."""

    invoke_id: int
    result: ActionResult
    return_data: Data | DataAccessResult | None


ClientEvent = (
    Associated
    | GetResult
    | GetFailed
    | GetListResult
    | SetResult
    | ActionCompleted
    | Released
    | Disconnected
)
Selective = SelectiveAccess | RangeDescriptor | EntryDescriptor
# (class_id, obis, attribute) or (class_id, obis, attribute, selective access)
AttributeSpec = tuple[int, bytes | str, int] | tuple[int, bytes | str, int, Selective | None]


def _access(selective: Selective | None) -> SelectiveAccess | None:
    if selective is None or isinstance(selective, SelectiveAccess):
        return selective
    return selective.to_access()


class DlmsClient:
    """The client end of one association with one logical device (see the module doc)."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self._machine = AssociationMachine(Role.CLIENT)
        self._out: list[bytes] = []
        self._framing: WrapperFraming | HdlcFraming
        if settings.framing == "hdlc":
            server = (
                HdlcAddress(settings.server_logical)
                if settings.address_size == 1
                else HdlcAddress(
                    settings.server_logical, settings.server_physical, settings.address_size
                )
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

    def get(
        self,
        class_id: int,
        obis: bytes | str,
        attribute: int,
        *,
        selective: Selective | None = None,
    ) -> bytes:
        """GET one attribute (``selective``: e.g. ``range_access(start, end)``)."""
        self._ready(_NEEDS_GET if selective is None else _NEEDS_SELECTIVE)
        invoke = (self._invoke + 1) & 0x0F
        name = obis if type(obis) is bytes and len(obis) == 6 else logical_name(obis)
        apdu = encode(
            GetRequestNormal(
                _INVOKE[invoke],
                CosemAttributeDescriptor(class_id, name, attribute),
                _access(selective),
            )
        )
        return self._request(apdu, invoke, _GET)

    def get_with_list(self, items: Sequence[AttributeSpec | AttributeReference]) -> bytes:
        """GET several attributes in one request (needs multiple-references)."""
        self._ready(_NEEDS_LIST)
        if not items:
            raise DlmsLocalError("get_with_list needs at least one attribute")
        references = []
        for item in items:
            if isinstance(item, AttributeReference):
                references.append(item)
                continue
            class_id, obis, attribute = item[0], item[1], item[2]
            access = _access(item[3]) if len(item) > 3 else None
            descriptor = CosemAttributeDescriptor(class_id, logical_name(obis), attribute)
            references.append(AttributeReference(descriptor, access))
        invoke = (self._invoke + 1) & 0x0F
        apdu = encode(GetRequestWithList(_INVOKE[invoke], tuple(references)))
        return self._request(apdu, invoke, _GET_LIST)

    def set(
        self,
        class_id: int,
        obis: bytes | str,
        attribute: int,
        value: Data,
        *,
        selective: Selective | None = None,
    ) -> bytes:
        """SET one attribute to ``value``."""
        self._ready(_NEEDS_SET)
        invoke = (self._invoke + 1) & 0x0F
        descriptor = CosemAttributeDescriptor(class_id, logical_name(obis), attribute)
        apdu = encode(SetRequestNormal(_INVOKE[invoke], descriptor, value, _access(selective)))
        return self._request(apdu, invoke, _SET)

    def action(
        self, class_id: int, obis: bytes | str, method: int, parameters: Data | None = None
    ) -> bytes:
        """Invoke ``method`` of an object, with its parameters if it takes any."""
        self._ready(_NEEDS_ACTION)
        invoke = (self._invoke + 1) & 0x0F
        descriptor = CosemMethodDescriptor(class_id, logical_name(obis), method)
        apdu = encode(ActionRequestNormal(_INVOKE[invoke], descriptor, parameters))
        return self._request(apdu, invoke, _ACTION)

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
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def next_event(self) -> ClientEvent | _NeedDataType:
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

    # --- sending --------------------------------------------------------------------------

    def _local(self, call: Callable[..., bytes], *args: object) -> bytes:
        """Run a framing call; its local error puts the client in ERROR as well."""
        try:
            return call(*args)
        except DlmsLocalError:
            self._machine.fail()
            raise

    def _ready(self, needs: int) -> None:
        machine = self._machine
        if machine.state is not _S.ASSOCIATED:
            machine.fire(_T.SEND_REQUEST)  # raises: not allowed here
        if self._granted & needs != needs:
            missing = Conformance(needs & ~self._granted)
            raise DlmsLocalError(f"the server did not grant {', '.join(missing.names())}")

    def _request(self, apdu: bytes, invoke: int, waiting: int) -> bytes:
        self._machine.fire(_T.SEND_REQUEST)
        self._invoke = invoke
        self._waiting = waiting
        self._blocks = []
        self._block_number = 0
        self._block_size = 0
        return self._local(self._send, apdu)

    def _send(self, apdu: bytes) -> bytes:
        if self._ciphered:
            assert self._cipher is not None
            apdu = self._cipher.seal(apdu, self._style)
        limit = self._server_max_pdu
        if limit and len(apdu) > limit:
            raise DlmsLocalError(f"an APDU of {len(apdu)} octets exceeds the server's {limit}")
        return self._framing.wrap(apdu)

    def _aarq(self) -> bytes:
        self._machine.fire(_T.SEND_AARQ)
        settings = self.settings
        info: InitiateRequest | bytes = InitiateRequest(
            settings.conformance, settings.max_receive_pdu
        )
        cipher = self._cipher
        if self._ciphered:
            assert cipher is not None
            info = self._local(cipher.seal, self._initiate, "glo")  # glo-initiateRequest
        secret = settings.password if settings.auth == "low" else settings.challenge
        aarq = Aarq.build(
            info,
            mechanism=_MECHANISM[settings.auth],
            secret=secret,
            context=(
                ApplicationContext.LN_CIPHERING
                if self._ciphered
                else ApplicationContext.LN_NO_CIPHERING
            ),
            system_title=None if cipher is None else cipher.own_title,
        )
        return self._local(self._framing.wrap, encode(aarq))

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

    def _check_invoke(self, invoke_id_and_priority: int) -> int:
        invoke = invoke_id_and_priority & 0x0F
        if invoke != self._invoke:
            raise DlmsRemoteError(f"response for invoke-id {invoke}, expected {self._invoke}")
        return invoke

    def _on_response(self, plain: bytes) -> ClientEvent | None:
        response = decode_apdu(plain)
        kind = type(response)
        waiting = self._waiting
        machine = self._machine
        if kind is GetResponseNormal and waiting == _GET:
            assert isinstance(response, GetResponseNormal)
            invoke = self._check_invoke(response.invoke_id_and_priority)
            machine.fire(_T.RESPONSE)
            result = response.result
            if type(result) is Data:
                return GetResult(invoke, result)
            assert isinstance(result, DataAccessResult)
            return GetFailed(invoke, result)
        if kind is GetResponseWithDatablock and waiting in (_GET, _GET_LIST):
            assert isinstance(response, GetResponseWithDatablock)
            return self._on_block(response)
        if kind is GetResponseWithList and waiting == _GET_LIST:
            assert isinstance(response, GetResponseWithList)
            invoke = self._check_invoke(response.invoke_id_and_priority)
            machine.fire(_T.RESPONSE)
            return GetListResult(invoke, response.results)
        if kind is SetResponseNormal and waiting == _SET:
            assert isinstance(response, SetResponseNormal)
            invoke = self._check_invoke(response.invoke_id_and_priority)
            machine.fire(_T.RESPONSE)
            return SetResult(invoke, response.result)
        if kind is ActionResponseNormal and waiting == _ACTION:
            assert isinstance(response, ActionResponseNormal)
            invoke = self._check_invoke(response.invoke_id_and_priority)
            machine.fire(_T.RESPONSE)
            return ActionCompleted(invoke, response.result, response.return_data)
        if kind is ExceptionResponse:
            assert isinstance(response, ExceptionResponse)
            machine.fire(_T.RESPONSE)
            self._soft = True
            raise _exception_error(response)
        raise DecodeError(f"{kind.__name__} does not answer the request sent")

    def _on_block(self, block: GetResponseWithDatablock) -> ClientEvent | None:
        invoke = self._check_invoke(block.invoke_id_and_priority)
        raw = block.raw_data
        if isinstance(raw, DataAccessResult):  # the server aborted the long GET
            self._machine.fire(_T.RESPONSE)
            self._blocks = []
            if self._waiting == _GET:
                return GetFailed(invoke, raw)
            raise DlmsRemoteError(f"GET-with-list aborted by the server: {raw.standard_name}")
        if block.block_number != self._block_number + 1:
            raise DecodeError(f"data block {block.block_number}, expected {self._block_number + 1}")
        self._block_number = block.block_number
        self._block_size += len(raw)
        if self._block_size > self.settings.max_response:
            raise DecodeError(f"a response of over {self.settings.max_response} octets")
        self._blocks.append(raw)
        if not block.last_block:
            next_request = encode(GetRequestNext(_INVOKE[invoke], block.block_number))
            self._out.append(self._send(next_request))
            return None
        whole = b"".join(self._blocks)
        self._blocks = []
        self._machine.fire(_T.RESPONSE)
        if self._waiting == _GET:
            return GetResult(invoke, decode_data_bytes(whole))
        head = _GET_LIST_HEAD.pack(ApduTag.GET_RESPONSE, 3, _INVOKE[invoke])
        listed = decode_apdu(head + whole)
        assert isinstance(listed, GetResponseWithList)
        return GetListResult(invoke, listed.results)

    def _on_aare(self, apdu: bytes) -> ClientEvent | None:
        aare = decode_apdu(apdu)
        if isinstance(aare, ExceptionResponse):
            raise _exception_error(aare)
        if not isinstance(aare, Aare):
            raise DecodeError(f"{type(aare).__name__} where the AARE was expected")
        machine = self._machine
        if not aare.accepted:
            machine.fire(_T.AARE_REJECTED)
            self._soft = True
            raise _rejection(aare)
        cipher = self._cipher
        if cipher is not None:
            title = aare.responding_ap_title
            if title is None or len(title) != 8:
                raise SecurityError("the AARE does not carry the server system title")
            cipher.peer_title = self._server_title = title
        carried = aare.user_information
        info: object = carried
        if isinstance(carried, bytes):
            if cipher is None:
                raise DecodeError("a ciphered InitiateResponse in an unciphered association")
            info = decode_initiate(cipher.open(carried).plain_apdu)
        if not isinstance(info, InitiateResponse):
            raise DecodeError("the accepting AARE carries no InitiateResponse")
        self._conformance = info.negotiated_conformance
        self._granted = int(info.negotiated_conformance)
        self._server_max_pdu = info.server_max_receive_pdu_size
        hls_asked = aare.diagnostic is AcseServiceUserDiagnostic.AUTHENTICATION_REQUIRED
        if self.settings.auth != "hls-gmac":
            if hls_asked:
                raise DlmsRemoteError("the server asks for HLS, which was not proposed")
            machine.fire(_T.AARE_ACCEPTED)
            return self._associated()
        challenge = aare.responding_authentication_value
        if (
            not hls_asked
            or aare.mechanism is not AuthenticationMechanism.HIGH_GMAC
            or challenge is None
        ):
            raise SecurityError("the server accepted HLS-GMAC without its challenge (StoC)")
        assert cipher is not None
        machine.fire(_T.AARE_HLS)
        reply = hls_gmac_response(
            challenge,
            system_title=cipher.own_title,
            invocation_counter=cipher.next_counter(),
            ak=cipher.ak,
            ek=cipher.ek,
        )
        self._invoke = invoke = (self._invoke + 1) & 0x0F
        self._waiting = _HLS
        descriptor = CosemMethodDescriptor(15, ASSOCIATION_LN, REPLY_TO_HLS_AUTHENTICATION)
        request = ActionRequestNormal(_INVOKE[invoke], descriptor, Data.octets(reply))
        self._out.append(self._send(encode(request)))
        return None

    def _on_hls_reply(self, plain: bytes) -> ClientEvent:
        response = decode_apdu(plain)
        if isinstance(response, ExceptionResponse):
            raise _exception_error(response)
        if not isinstance(response, ActionResponseNormal):
            raise DecodeError(f"{type(response).__name__} answers reply_to_HLS_authentication")
        self._check_invoke(response.invoke_id_and_priority)
        if response.result is not ActionResult.SUCCESS:
            raise SecurityError(f"the server refused our f(StoC): {response.result.standard_name}")
        data = response.return_data
        if not isinstance(data, Data) or data.type is not DataType.OCTET_STRING:
            raise SecurityError("the server's HLS reply carries no f(CtoS)")
        cipher = self._cipher
        assert cipher is not None and self._server_title is not None
        assert self.settings.challenge is not None and isinstance(data.value, bytes)
        verify_hls_gmac(
            data.value,
            self.settings.challenge,
            system_title=self._server_title,
            ak=cipher.ak,
            ek=cipher.ek,
        )
        self._machine.fire(_T.HLS_PASSED)
        return self._associated()

    def _associated(self) -> Associated:
        return Associated(self._server_title, self._conformance, self._server_max_pdu)

    def _on_rlre(self, apdu: bytes) -> ClientEvent:
        rlre = decode_apdu(apdu)
        if not isinstance(rlre, Rlre):
            raise DecodeError(f"{type(rlre).__name__} where the RLRE was expected")
        self._machine.fire(_T.RLRE)
        return Released(rlre.reason)


def _exception_error(response: ExceptionResponse) -> ExceptionResponseError:
    service = response.service_error
    cls = (
        CipheringRejectedError
        if service
        in (ExceptionServiceError.DECIPHERING_ERROR, ExceptionServiceError.INVOCATION_COUNTER_ERROR)
        else ExceptionResponseError
    )
    return cls(int(response.state_error), int(service), response.describe())


def _rejection(aare: Aare) -> AssociationRejectedError:
    try:
        raise_for_aare(aare)
    except AssociationRejectedError as exc:
        info = aare.user_information
        deciphering = (
            isinstance(info, ConfirmedServiceError)
            and info.error_type is ServiceErrorType.APPLICATION_REFERENCE
            and info.value == _DECIPHERING
        )
        if deciphering or aare.diagnostic is AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE:
            return AuthenticationRejectedError(exc.result, exc.diagnostic, str(exc))
        return exc
    raise DlmsLocalError("the AARE was accepted")  # pragma: no cover - callers check first
