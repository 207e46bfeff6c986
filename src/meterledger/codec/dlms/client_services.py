"""The xDLMS services of the client: the GET (normal and with-list), SET and ACTION requests
that :class:`~meterledger.codec.dlms.client.DlmsClient` sends, each checked against the
conformance the server granted, and the responses that answer them, the data blocks of a
long GET included (a GET-Request-Next for each, up to ``ClientSettings.max_response``).
One request is outstanding at a time, and its invoke-id must come back.

:class:`ClientServices` is this part of ``DlmsClient``: the state it works on is the
client's, set up by ``DlmsClient.__init__`` and declared here for the type checker.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

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
    AssociationMachine,
    AssociationState,
    AssociationTrigger,
    CipherContext,
    CipheringRejectedError,
    CipheringStyle,
    HdlcFraming,
    WrapperFraming,
    logical_name,
)
from meterledger.codec.dlms.axdr import decode_data_bytes
from meterledger.codec.dlms.client_events import (
    ActionCompleted,
    ClientEvent,
    GetFailed,
    GetListResult,
    GetResult,
    SetResult,
)
from meterledger.codec.dlms.client_settings import ClientSettings
from meterledger.codec.dlms.codes import (
    ApduTag,
    Conformance,
    DataAccessResult,
    ExceptionServiceError,
)
from meterledger.codec.dlms.data import Data
from meterledger.codec.dlms.errors import (
    DecodeError,
    DlmsLocalError,
    DlmsRemoteError,
    ExceptionResponseError,
)

__all__ = ["AttributeSpec", "ClientServices"]

_C = Conformance
# The conformance bits each request needs, as ints.
_NEEDS_GET = int(_C.GET)
_NEEDS_SELECTIVE = int(_C.GET | _C.SELECTIVE_ACCESS)
_NEEDS_LIST = int(_C.GET | _C.MULTIPLE_REFERENCES)
_NEEDS_SET = int(_C.SET)
_NEEDS_ACTION = int(_C.ACTION)
_INVOKE = tuple(invoke_id_and_priority(i) for i in range(16))
_GET_LIST_HEAD = struct.Struct(">BBB")
_S = AssociationState
_T = AssociationTrigger

# What the client is waiting for.
_GET, _GET_LIST, _SET, _ACTION, _HLS = range(5)

Selective = SelectiveAccess | RangeDescriptor | EntryDescriptor
# (class_id, obis, attribute) or (class_id, obis, attribute, selective access)
AttributeSpec = tuple[int, bytes | str, int] | tuple[int, bytes | str, int, Selective | None]


def _access(selective: Selective | None) -> SelectiveAccess | None:
    if selective is None or isinstance(selective, SelectiveAccess):
        return selective
    return selective.to_access()


class ClientServices:
    """The requests and responses of :class:`~meterledger.codec.dlms.client.DlmsClient`
    (see the module doc); not used alone."""

    # The client's state, set up by DlmsClient.__init__.
    settings: ClientSettings
    _machine: AssociationMachine
    _out: list[bytes]
    _framing: WrapperFraming | HdlcFraming
    _cipher: CipherContext | None
    _ciphered: bool
    _style: CipheringStyle
    _invoke: int
    _waiting: int
    _blocks: list[bytes]
    _block_number: int
    _block_size: int
    _soft: bool
    _granted: int
    _server_max_pdu: int

    # --- requests -------------------------------------------------------------------------

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

    # --- responses ------------------------------------------------------------------------

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


def _exception_error(response: ExceptionResponse) -> ExceptionResponseError:
    service = response.service_error
    cls = (
        CipheringRejectedError
        if service
        in (ExceptionServiceError.DECIPHERING_ERROR, ExceptionServiceError.INVOCATION_COUNTER_ERROR)
        else ExceptionResponseError
    )
    return cls(int(response.state_error), int(service), response.describe())
