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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

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
    negotiate_conformance,
)
from meterledger.codec.dlms.apdu import (
    ActionOutcome,
    ActionRequestNormal,
    ActionRequestWithList,
    ActionResponseNormal,
    ActionResponseWithList,
    Apdu,
    ExceptionResponse,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    SelectiveAccess,
    SetRequestNormal,
    SetRequestWithList,
    SetResponseNormal,
    SetResponseWithList,
    decode_apdu,
    encode,
)
from meterledger.codec.dlms.association import (
    ASSOCIATION_LN,
    REPLY_TO_HLS_AUTHENTICATION,
    AssociationMachine,
    AssociationState,
    AssociationTrigger,
    Authentication,
    CipherContext,
    CipheringStyle,
    Disconnected,
    Framing,
    HdlcFraming,
    Released,
    Role,
    SecurityPolicy,
    WrapperFraming,
    check_system_title,
)
from meterledger.codec.dlms.codes import (
    AcseServiceUserDiagnostic,
    ActionResult,
    ApduTag,
    ApplicationContext,
    AssociationResult,
    AuthenticationMechanism,
    ConfirmedService,
    Conformance,
    DataAccessResult,
    ExceptionServiceError,
    ExceptionStateError,
    InitiateError,
    ReleaseResponseReason,
    ServiceErrorType,
)
from meterledger.codec.dlms.cosem import ObjectListEntry, object_list_data
from meterledger.codec.dlms.cursor import NEED_DATA, _NeedDataType
from meterledger.codec.dlms.data import Data, DataType
from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError, SecurityError
from meterledger.codec.dlms.hdlc_frame import HdlcAddress, HdlcParameters
from meterledger.codec.dlms.hdlc_link import Connected, HdlcLink
from meterledger.codec.dlms.hls import check_lls, hls_gmac_response, verify_hls_gmac
from meterledger.codec.dlms.security import parse_ciphered

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

_C = Conformance
SERVER_CONFORMANCE = (
    _C.GET
    | _C.SET
    | _C.ACTION
    | _C.SELECTIVE_ACCESS
    | _C.BLOCK_TRANSFER_WITH_GET_OR_READ
    | _C.MULTIPLE_REFERENCES
    | _C.PRIORITY_MGMT_SUPPORTED
)
_DEFAULT_HDLC = HdlcParameters()
_MIN_CLIENT_PDU = 64  # room for a ciphered block header and a useful block
_BLOCK_HEAD = 12  # C4 02 invoke, last-block, block-number (4), raw-data choice, length (≤3)
_GLO_OVERHEAD = 1 + 3 + 5 + 12  # tag, length, SC + IC, GCM tag
_GENERAL_OVERHEAD = _GLO_OVERHEAD + 2 + 8  # system title and its length
_DECIPHERING = 6  # ServiceError application-reference: deciphering-error
_CIPHERED_REQUESTS = frozenset(
    {
        ApduTag.GLO_GET_REQUEST,
        ApduTag.GLO_SET_REQUEST,
        ApduTag.GLO_ACTION_REQUEST,
        ApduTag.GENERAL_GLO_CIPHERING,
        ApduTag.DED_GET_REQUEST,
        ApduTag.DED_SET_REQUEST,
        ApduTag.DED_ACTION_REQUEST,
        ApduTag.GENERAL_DED_CIPHERING,
    }
)
_XDLMS_REQUESTS = frozenset({ApduTag.GET_REQUEST, ApduTag.SET_REQUEST, ApduTag.ACTION_REQUEST})
_S = AssociationState
_T = AssociationTrigger
_NOT_ALLOWED = ExceptionStateError.SERVICE_NOT_ALLOWED


class CosemModel(Protocol):
    """The meter's objects, as the server asks for them. ``obis`` is the 6-octet logical
    name; ``selective`` the raw selective access (see
    :func:`~meterledger.codec.dlms.apdu.parse_selective_access`)."""

    def get(
        self, class_id: int, obis: bytes, attribute: int, selective: SelectiveAccess | None
    ) -> Data | DataAccessResult: ...

    def set(
        self,
        class_id: int,
        obis: bytes,
        attribute: int,
        value: Data,
        selective: SelectiveAccess | None,
    ) -> DataAccessResult: ...

    def action(
        self, class_id: int, obis: bytes, method: int, parameters: Data | None
    ) -> tuple[ActionResult, Data | None]: ...

    def object_list(self) -> tuple[ObjectListEntry, ...]: ...


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    """What the client at ``client_sap`` must present (and how it is protected)."""

    client_sap: int
    auth: Authentication = "none"
    password: bytes | None = None
    security: SecurityPolicy = "none"

    def __post_init__(self) -> None:
        if self.auth not in ("none", "low", "hls-gmac"):
            raise DlmsLocalError(f"auth is 'none', 'low' or 'hls-gmac', not {self.auth!r}")
        if self.security not in ("none", "auth-enc"):
            raise DlmsLocalError(f"security is 'none' or 'auth-enc', not {self.security!r}")
        if self.auth == "low" and not self.password:
            raise DlmsLocalError("an LLS client policy needs the password")


PUBLIC_CLIENT = ClientPolicy(16)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """One logical device. ``ek``/``ak``/``system_title`` (ours) are needed by any policy
    with HLS-GMAC or ciphering; ``invocation_counters`` are our own counters (an iterator
    or range the caller reserves, strictly increasing); ``challenge`` (fixed) or
    ``next_challenge`` (called once per HLS association) supplies StoC. ``max_pdu`` is our
    server-max-receive-pdu-size and the cap on the APDUs we send."""

    framing: Framing = "wrapper"
    logical_address: int = 1
    physical_address: int = 17
    address_size: int = 4
    clients: tuple[ClientPolicy, ...] = (PUBLIC_CLIENT,)
    ek: bytes | None = None
    ak: bytes | None = None
    system_title: bytes | None = None
    challenge: bytes | None = None
    next_challenge: Callable[[], bytes] | None = None
    invocation_counters: Iterable[int] = ()
    last_client_counter: int | None = None
    conformance: Conformance = SERVER_CONFORMANCE
    max_pdu: int = 0xFFFF
    hdlc: HdlcParameters = _DEFAULT_HDLC
    max_apdu: int = 0xFFFF
    max_buffer: int = 1 << 18

    def __post_init__(self) -> None:
        if self.framing not in ("wrapper", "hdlc"):
            raise DlmsLocalError(f"framing is 'wrapper' or 'hdlc', not {self.framing!r}")
        if self.address_size not in (1, 2, 4):
            raise DlmsLocalError("address_size is 1, 2 or 4")
        if not _MIN_CLIENT_PDU <= self.max_pdu <= 0xFFFF:
            raise DlmsLocalError(f"max_pdu must be {_MIN_CLIENT_PDU}..65535")
        if any(p.auth == "hls-gmac" or p.security == "auth-enc" for p in self.clients):
            check_system_title(self.system_title, "system_title")
            for name in ("ek", "ak"):
                key = getattr(self, name)
                if key is None or len(key) != 16:
                    raise DlmsLocalError(f"{name} must be 16 octets for suite 0")
        if any(p.auth == "hls-gmac" for p in self.clients) and (
            self.challenge is None and self.next_challenge is None
        ):
            raise DlmsLocalError("HLS-GMAC needs a challenge or next_challenge")


@dataclass(frozen=True, slots=True)
class LinkOpened:
    """HDLC: an SNRM was answered with UA."""

    client_address: int


@dataclass(frozen=True, slots=True)
class AssociationOpened:
    client_sap: int
    auth: Authentication
    ciphered: bool
    client_system_title: bytes | None


@dataclass(frozen=True, slots=True)
class AssociationRefused:
    client_sap: int
    reason: str


@dataclass(frozen=True, slots=True)
class RequestServed:
    """An xDLMS request was answered (the answer is in :meth:`DlmsServer.data_to_send`)."""

    service: str
    invoke_id: int


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """An APDU was answered with an exception-response (or, an AARQ, with a plain AARE)."""

    reason: str
    service_error: ExceptionServiceError


ServerEvent = (
    LinkOpened
    | AssociationOpened
    | AssociationRefused
    | RequestServed
    | RequestRefused
    | Released
    | Disconnected
)


class _Refusal(Exception):  # noqa: N818 - internal signal: answer with an exception-response
    def __init__(
        self,
        reason: str,
        service: ExceptionServiceError,
        state: ExceptionStateError = _NOT_ALLOWED,
        counter: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.service = service
        self.state = state
        self.counter = counter


class _AareRefusal(Exception):  # noqa: N818 - internal signal: answer with a rejecting AARE
    def __init__(
        self,
        reason: str,
        diagnostic: AcseServiceUserDiagnostic = AcseServiceUserDiagnostic.NO_REASON_GIVEN,
        info: ConfirmedServiceError | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.diagnostic = diagnostic
        self.info = info


def _initiate_error(error: InitiateError) -> ConfirmedServiceError:
    return ConfirmedServiceError.initiate(error)


_UNDECIPHERABLE = ConfirmedServiceError(
    ConfirmedService.INITIATE_ERROR, ServiceErrorType.APPLICATION_REFERENCE, _DECIPHERING
)


class DlmsServer:
    """The server end of the associations on one connection (see the module doc)."""

    def __init__(self, settings: ServerSettings, objects: CosemModel) -> None:
        self.settings = settings
        self.objects = objects
        self._out: list[bytes] = []
        self._policies = {p.client_sap: p for p in settings.clients}
        self._framing: WrapperFraming | HdlcFraming
        if settings.framing == "hdlc":
            local = (
                HdlcAddress(settings.logical_address)
                if settings.address_size == 1
                else HdlcAddress(
                    settings.logical_address, settings.physical_address, settings.address_size
                )
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

    def _reset(self) -> None:
        """Forget the association (not the counters)."""
        self._policy: ClientPolicy | None = None
        self._ciphered = False
        self._conformance = Conformance(0)
        self._client_max_pdu = 0
        self._client_title: bytes | None = None
        self._stoc = b""
        self._ctos = b""
        self._blocks: list[bytes] = []
        self._block_sent = 0
        self._block_invoke = 0

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
        out = self._out
        if not out:
            return b""
        data = b"".join(out)
        out.clear()
        return data

    def next_event(self) -> ServerEvent | _NeedDataType:
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

    def _unwrap(self, apdu: bytes) -> tuple[bytes, CipheringStyle | None]:
        tag = apdu[0]
        cipher = self._cipher
        if not self._ciphered:
            if tag in _CIPHERED_REQUESTS:
                raise _Refusal("a ciphered APDU in an unciphered association", _DECIPHER)
            return apdu, None
        if tag not in _CIPHERED_REQUESTS:
            raise _Refusal(
                f"unprotected APDU 0x{tag:02X} in a ciphered association",
                ExceptionServiceError.OPERATION_NOT_POSSIBLE,
            )
        assert cipher is not None
        try:
            counter = parse_ciphered(apdu).invocation_counter
        except DecodeError as exc:
            raise _Refusal(f"malformed ciphered APDU: {exc}", _DECIPHER) from None
        last = cipher.peer_counter.last
        if last is not None and counter <= last:
            expected = min(last + 1, 0xFFFFFFFF)
            raise _Refusal(
                f"invocation counter {counter} replayed (last {last})",
                ExceptionServiceError.INVOCATION_COUNTER_ERROR,
                counter=expected,
            )
        try:
            opened = cipher.open(apdu)
        except (SecurityError, DecodeError) as exc:
            raise _Refusal(str(exc), _DECIPHER) from None
        plain = opened.plain_apdu
        if plain[0] not in _XDLMS_REQUESTS:
            raise _Refusal(f"ciphered APDU 0x{plain[0]:02X} is no request", _DECIPHER)
        return plain, "general-glo" if opened.ciphered_tag.general else "glo"

    def _on_xdlms(self, apdu: bytes) -> ServerEvent | None:
        state = self._machine.state
        if state is not _S.ASSOCIATED and state is not _S.AUTHENTICATING:
            raise _Refusal("no association", ExceptionServiceError.OPERATION_NOT_POSSIBLE)
        plain, style = self._unwrap(apdu)
        try:
            request = decode_apdu(plain)
        except DecodeError as exc:
            raise _Refusal(str(exc), ExceptionServiceError.OTHER_REASON) from None
        if state is _S.AUTHENTICATING:
            return self._on_hls(request, style)
        kind = type(request)
        if kind is not GetRequestNext:
            self._blocks = []
        if kind is GetRequestNormal:
            assert isinstance(request, GetRequestNormal)
            d = request.descriptor
            value = self._get(d.class_id, d.instance_id, d.attribute_id, request.access)
            invoke = request.invoke_id_and_priority
            encoded = encode(GetResponseNormal(invoke, value))
            return self._answer_get(encoded, 4, invoke, style, "get")
        if kind is GetRequestNext:
            assert isinstance(request, GetRequestNext)
            return self._next_block(request, style)
        if kind is GetRequestWithList:
            assert isinstance(request, GetRequestWithList)
            results = tuple(
                self._get(
                    item.descriptor.class_id,
                    item.descriptor.instance_id,
                    item.descriptor.attribute_id,
                    item.access,
                )
                for item in request.items
            )
            invoke = request.invoke_id_and_priority
            encoded = encode(GetResponseWithList(invoke, results))
            return self._answer_get(encoded, 3, invoke, style, "get-with-list")
        if kind is SetRequestNormal:
            assert isinstance(request, SetRequestNormal)
            d = request.descriptor
            result = self.objects.set(
                d.class_id, d.instance_id, d.attribute_id, request.value, request.access
            )
            invoke = request.invoke_id_and_priority
            return self._answer(SetResponseNormal(invoke, result), style, "set", invoke)
        if kind is SetRequestWithList:
            assert isinstance(request, SetRequestWithList)
            dars = tuple(
                self.objects.set(
                    item.descriptor.class_id,
                    item.descriptor.instance_id,
                    item.descriptor.attribute_id,
                    value,
                    item.access,
                )
                for item, value in zip(request.items, request.values, strict=True)
            )
            invoke = request.invoke_id_and_priority
            return self._answer(SetResponseWithList(invoke, dars), style, "set-with-list", invoke)
        if kind is ActionRequestNormal:
            assert isinstance(request, ActionRequestNormal)
            outcome = self._action(request)
            invoke = request.invoke_id_and_priority
            response = ActionResponseNormal(invoke, outcome.result, outcome.return_data)
            return self._answer(response, style, "action", invoke)
        if kind is ActionRequestWithList:
            assert isinstance(request, ActionRequestWithList)
            outcomes = tuple(
                self._action(ActionRequestNormal(request.invoke_id_and_priority, d, p))
                for d, p in zip(request.descriptors, request.parameters, strict=True)
            )
            invoke = request.invoke_id_and_priority
            response_list = ActionResponseWithList(invoke, outcomes)
            return self._answer(response_list, style, "action-with-list", invoke)
        raise _Refusal(
            f"{kind.__name__} is not supported", ExceptionServiceError.SERVICE_NOT_SUPPORTED
        )

    def _answer(
        self, response: Apdu, style: CipheringStyle | None, service: str, invoke: int
    ) -> ServerEvent:
        encoded = encode(response)
        if len(encoded) + self._overhead(style) > self._limit():
            raise _Refusal(f"{service} response too long", ExceptionServiceError.PDU_TOO_LONG)
        self._send(encoded, style)
        return RequestServed(service, invoke & 0x0F)

    def _limit(self) -> int:
        return min(self._client_max_pdu or 0xFFFF, self.settings.max_pdu)

    @staticmethod
    def _overhead(style: CipheringStyle | None) -> int:
        if style is None:
            return 0
        return _GLO_OVERHEAD if style == "glo" else _GENERAL_OVERHEAD

    def _get(
        self, class_id: int, obis: bytes, attribute: int, access: SelectiveAccess | None
    ) -> Data | DataAccessResult:
        if class_id == 15 and obis == ASSOCIATION_LN and access is None:
            if attribute == 1:
                return Data.octets(ASSOCIATION_LN)
            if attribute == 2:
                return object_list_data(self.objects.object_list())
        return self.objects.get(class_id, obis, attribute, access)

    def _action(self, request: ActionRequestNormal) -> ActionOutcome:
        d = request.descriptor
        if (
            d.class_id == 15
            and d.instance_id == ASSOCIATION_LN
            and d.method_id == REPLY_TO_HLS_AUTHENTICATION
        ):  # only while authenticating
            return ActionOutcome(ActionResult.READ_WRITE_DENIED)
        result, data = self.objects.action(
            d.class_id, d.instance_id, d.method_id, request.parameters
        )
        return ActionOutcome(result, data)

    def _answer_get(
        self,
        encoded: bytes,
        raw_from: int,
        invoke: int,
        style: CipheringStyle | None,
        service: str,
    ) -> ServerEvent:
        """Send a GET answer whole, or its first block when it is too long for the client
        (``raw_from``: where the raw data starts, past the head and any result choice)."""
        overhead = self._overhead(style)
        limit = self._limit()
        if len(encoded) + overhead <= limit:
            self._send(encoded, style)
            return RequestServed(service, invoke & 0x0F)
        raw = encoded[raw_from:]
        size = limit - overhead - _BLOCK_HEAD
        self._blocks = [raw[i : i + size] for i in range(0, len(raw), size)]
        self._block_sent = 0
        self._block_invoke = invoke
        self._send_block(invoke, style)
        return RequestServed(service, invoke & 0x0F)

    def _send_block(self, invoke: int, style: CipheringStyle | None) -> None:
        number = self._block_sent + 1
        last = number == len(self._blocks)
        block = GetResponseWithDatablock(invoke, last, number, self._blocks[number - 1])
        self._block_sent = number
        if last:
            self._blocks = []
        self._send(encode(block), style)

    def _next_block(self, request: GetRequestNext, style: CipheringStyle | None) -> ServerEvent:
        invoke = request.invoke_id_and_priority
        problem = None
        if not self._blocks or (invoke & 0x0F) != (self._block_invoke & 0x0F):
            problem = DataAccessResult.NO_LONG_GET_IN_PROGRESS
        elif request.block_number != self._block_sent:
            problem = DataAccessResult.DATA_BLOCK_NUMBER_INVALID
        if problem is not None:
            self._blocks = []
            aborted = GetResponseWithDatablock(invoke, True, request.block_number, problem)
            self._send(encode(aborted), style)
            return RequestServed("get-next", invoke & 0x0F)
        self._send_block(invoke, style)
        return RequestServed("get-next", invoke & 0x0F)

    # --- association ----------------------------------------------------------------------

    def _on_rlrq(self, apdu: bytes) -> ServerEvent:
        try:
            request = decode_apdu(apdu)
        except DecodeError as exc:
            raise _Refusal(str(exc), ExceptionServiceError.OTHER_REASON) from None
        if not isinstance(request, Rlrq):
            raise _Refusal("not an RLRQ", ExceptionServiceError.OTHER_REASON)
        self._send(encode(Rlre(ReleaseResponseReason.NORMAL)), None)
        self._machine.fire(_T.RLRE)
        self._reset()
        return Released(request.reason)

    def _on_aarq(self, apdu: bytes) -> ServerEvent | None:
        try:
            aarq = decode_apdu(apdu)
        except DecodeError as exc:
            raise _Refusal(str(exc), ExceptionServiceError.OTHER_REASON) from None
        if not isinstance(aarq, Aarq):
            raise _Refusal("not an AARQ", ExceptionServiceError.OTHER_REASON)
        if not self._machine.allows(_T.AARE_ACCEPTED):
            raise _Refusal("no link", ExceptionServiceError.OPERATION_NOT_POSSIBLE)
        self._reset()
        client_sap = self._client_sap()
        context = aarq.application_context
        try:
            return self._associate(aarq, client_sap)
        except _AareRefusal as refusal:
            aare = Aare(
                AssociationResult.REJECTED_PERMANENT,
                refusal.diagnostic,
                refusal.info,
                context if isinstance(context, int) and 0 <= context <= 127 else 1,
            )
            self._send(encode(aare), None)
            self._machine.fire(_T.AARE_REJECTED)
            self._reset()
            return AssociationRefused(client_sap, refusal.reason)

    def _associate(self, aarq: Aarq, client_sap: int) -> ServerEvent | None:
        diag = AcseServiceUserDiagnostic
        policy = self._policies.get(client_sap)
        if policy is None:
            raise _AareRefusal(f"no association for client SAP {client_sap}")
        ciphered = policy.security == "auth-enc"
        wanted = ApplicationContext.LN_CIPHERING if ciphered else ApplicationContext.LN_NO_CIPHERING
        if aarq.application_context != wanted:
            raise _AareRefusal(
                f"application context {aarq.application_context}, expected {wanted.name}",
                diag.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED,
            )
        mechanism = _MECHANISMS[policy.auth]
        offered = aarq.mechanism if aarq.authentication else AuthenticationMechanism.LOWEST
        if offered != mechanism:
            if mechanism is not AuthenticationMechanism.LOWEST and not aarq.authentication:
                raise _AareRefusal(
                    "authentication required", diag.AUTHENTICATION_MECHANISM_NAME_REQUIRED
                )
            raise _AareRefusal(
                f"mechanism {offered} instead of {mechanism.name}",
                diag.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED,
            )
        secret = aarq.calling_authentication_value
        if policy.auth == "low":
            assert policy.password is not None
            try:
                check_lls(policy.password, secret or b"")
            except SecurityError:
                raise _AareRefusal("wrong LLS password", diag.AUTHENTICATION_FAILURE) from None
        cipher = self._cipher
        title = aarq.calling_ap_title
        if ciphered or policy.auth == "hls-gmac":
            if title is None or len(title) != 8:
                raise _AareRefusal("no client system title", diag.CALLING_AP_TITLE_NOT_RECOGNIZED)
            assert cipher is not None
            cipher.peer_title = title
        if policy.auth == "hls-gmac" and (secret is None or not 8 <= len(secret) <= 64):
            raise _AareRefusal("HLS challenge (CtoS) of a wrong size", diag.AUTHENTICATION_FAILURE)
        carried = aarq.user_information
        info: object = carried
        style: CipheringStyle | None = None
        if isinstance(carried, bytes):
            if not ciphered:
                raise _AareRefusal(
                    "ciphered InitiateRequest in an unciphered context",
                    diag.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED,
                )
            assert cipher is not None
            try:
                opened = cipher.open(carried)
                info = decode_initiate(opened.plain_apdu)
            except (SecurityError, DecodeError) as exc:
                raise _AareRefusal(str(exc), info=_UNDECIPHERABLE) from None
            style = "general-glo" if opened.ciphered_tag.general else "glo"
        elif ciphered:
            raise _AareRefusal("InitiateRequest not ciphered", info=_UNDECIPHERABLE)
        if not isinstance(info, InitiateRequest):
            raise _AareRefusal("no InitiateRequest", info=_initiate_error(InitiateError.OTHER))
        granted = self._negotiate(info)
        self._policy = policy
        self._ciphered = ciphered
        self._conformance = granted
        self._client_max_pdu = info.client_max_receive_pdu_size
        self._client_title = title
        initiate = encode_initiate(InitiateResponse(granted, self.settings.max_pdu))
        user_info: InitiateResponse | bytes = InitiateResponse(granted, self.settings.max_pdu)
        if style is not None:
            assert cipher is not None
            user_info = cipher.seal(initiate, style)
        context = aarq.application_context
        own_title = None if cipher is None else cipher.own_title
        if policy.auth == "hls-gmac":
            assert secret is not None
            self._ctos = secret
            self._stoc = self._challenge()
            aare = Aare(
                AssociationResult.ACCEPTED,
                diag.AUTHENTICATION_REQUIRED,
                user_info,
                context,
                True,
                AuthenticationMechanism.HIGH_GMAC,
                self._stoc,
                own_title,
            )
            self._send(encode(aare), None)
            self._machine.fire(_T.AARE_HLS)
            return None
        aare = Aare(
            AssociationResult.ACCEPTED,
            diag.NULL,
            user_info,
            context,
            responding_ap_title=own_title if ciphered else None,
        )
        self._send(encode(aare), None)
        self._machine.fire(_T.AARE_ACCEPTED)
        return AssociationOpened(client_sap, policy.auth, ciphered, title)

    def _negotiate(self, request: InitiateRequest) -> Conformance:
        if request.proposed_dlms_version_number < 6:
            raise _AareRefusal(
                "DLMS version below 6", info=_initiate_error(InitiateError.DLMS_VERSION_TOO_LOW)
            )
        if request.dedicated_key is not None:
            raise _AareRefusal(
                "dedicated keys are not supported", info=_initiate_error(InitiateError.OTHER)
            )
        if request.client_max_receive_pdu_size < _MIN_CLIENT_PDU:
            raise _AareRefusal(
                f"client max receive PDU {request.client_max_receive_pdu_size}",
                info=_initiate_error(InitiateError.PDU_SIZE_TOO_SHORT),
            )
        granted = negotiate_conformance(request.proposed_conformance, self.settings.conformance)
        if not granted & (_C.GET | _C.SET | _C.ACTION):
            raise _AareRefusal(
                "no common service", info=_initiate_error(InitiateError.INCOMPATIBLE_CONFORMANCE)
            )
        return granted

    def _challenge(self) -> bytes:
        settings = self.settings
        challenge = settings.next_challenge() if settings.next_challenge else settings.challenge
        if challenge is None or not 8 <= len(challenge) <= 64:
            raise DlmsLocalError("the server challenge (StoC) must be 8..64 octets")
        return bytes(challenge)

    def _on_hls(self, request: Apdu, style: CipheringStyle | None) -> ServerEvent:
        """Pass 3/4: check f(StoC), answer f(CtoS)."""
        if not isinstance(request, ActionRequestNormal):
            raise _Refusal("HLS not finished", ExceptionServiceError.OPERATION_NOT_POSSIBLE)
        d = request.descriptor
        if (d.class_id, d.instance_id, d.method_id) != (
            15,
            ASSOCIATION_LN,
            REPLY_TO_HLS_AUTHENTICATION,
        ):
            raise _Refusal("HLS not finished", ExceptionServiceError.OPERATION_NOT_POSSIBLE)
        cipher = self._cipher
        policy = self._policy
        assert cipher is not None and self._client_title is not None and policy is not None
        invoke = request.invoke_id_and_priority
        reply = request.parameters
        try:
            if reply is None or reply.type is not DataType.OCTET_STRING:
                raise SecurityError("reply_to_HLS_authentication without an octet-string")
            assert isinstance(reply.value, bytes)
            verify_hls_gmac(
                reply.value,
                self._stoc,
                system_title=self._client_title,
                ak=cipher.ak,
                ek=cipher.ek,
            )
        except SecurityError as exc:
            self._send(encode(ActionResponseNormal(invoke, ActionResult.READ_WRITE_DENIED)), style)
            client_sap = self._client_sap()
            self._machine.fire(_T.FAIL)
            self._reset()
            return AssociationRefused(client_sap, f"HLS: {exc}")
        answer = hls_gmac_response(
            self._ctos,
            system_title=cipher.own_title,
            invocation_counter=cipher.next_counter(),
            ak=cipher.ak,
            ek=cipher.ek,
        )
        response = ActionResponseNormal(invoke, ActionResult.SUCCESS, Data.octets(answer))
        self._send(encode(response), style)
        self._machine.fire(_T.HLS_PASSED)
        client_sap = self._client_sap()
        return AssociationOpened(client_sap, policy.auth, self._ciphered, self._client_title)


_DECIPHER = ExceptionServiceError.DECIPHERING_ERROR
_MECHANISMS = {
    "none": AuthenticationMechanism.LOWEST,
    "low": AuthenticationMechanism.LOW,
    "hls-gmac": AuthenticationMechanism.HIGH_GMAC,
}
