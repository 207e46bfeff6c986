"""The xDLMS services on the server: a request is opened (in an ``auth-enc`` association it
must be ciphered; one that does not decipher or replays a counter is refused), decoded and
answered from the :class:`~meterledger.codec.dlms.server_settings.CosemModel` — GET, SET
and ACTION, normal and with-list, the selective access passed on to the model, the
Association LN attributes 1 and 2 from its object list. A GET answer too long for the
client goes as data blocks, each sent on the client's GET-Request-Next; any other answer
must fit ``min(client max receive PDU, ServerSettings.max_pdu)``.

:class:`ServerServices` is this part of :class:`~meterledger.codec.dlms.server.DlmsServer`,
on top of its :class:`~meterledger.codec.dlms.server_association.ServerAssociation`.
"""

from __future__ import annotations

from meterledger.codec.dlms.apdu import (
    ActionOutcome,
    ActionRequestNormal,
    ActionRequestWithList,
    ActionResponseNormal,
    ActionResponseWithList,
    Apdu,
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
    encode,
)
from meterledger.codec.dlms.association import (
    ASSOCIATION_LN,
    REPLY_TO_HLS_AUTHENTICATION,
    AssociationState,
    CipheringStyle,
)
from meterledger.codec.dlms.codes import (
    ActionResult,
    ApduTag,
    DataAccessResult,
    ExceptionServiceError,
)
from meterledger.codec.dlms.cosem import object_list_data
from meterledger.codec.dlms.data import Data
from meterledger.codec.dlms.errors import DecodeError, SecurityError
from meterledger.codec.dlms.security import parse_ciphered
from meterledger.codec.dlms.server_association import ServerAssociation, decode_request
from meterledger.codec.dlms.server_events import RequestServed, ServerEvent, _Refusal
from meterledger.codec.dlms.server_settings import CosemModel

__all__ = ["ServerServices"]

_BLOCK_HEAD = 12  # C4 02 invoke, last-block, block-number (4), raw-data choice, length (≤3)
_GLO_OVERHEAD = 1 + 3 + 5 + 12  # tag, length, SC + IC, GCM tag
_GENERAL_OVERHEAD = _GLO_OVERHEAD + 2 + 8  # system title and its length
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
_DECIPHER = ExceptionServiceError.DECIPHERING_ERROR


class ServerServices(ServerAssociation):
    """The services of :class:`~meterledger.codec.dlms.server.DlmsServer` (see the module
    doc); not used alone."""

    # The server's model, set up by DlmsServer.__init__.
    objects: CosemModel

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
        request = decode_request(plain)
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
