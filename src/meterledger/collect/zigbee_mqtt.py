"""The Zigbee gateway reached over MQTT: raw ZCL frames on a request and a response topic.

Topics (``root`` defaults to :data:`DEFAULT_ROOT`; ``eui64hex`` is 16 lower-case hex
digits, most significant octet first)::

    {root}/{gateway_id}/req/{eui64hex}    collector -> gateway, QoS 1
    {root}/{gateway_id}/rsp/{eui64hex}    gateway -> collector, QoS 1, not retained

Payload, both ways: the TCP envelope without its length prefix (the MQTT message has its
own length)::

    octets:  8        1          2            n
             EUI64    endpoint   cluster id   ZCL frame

The EUI64 in the payload must be the topic's; a message whose payload is shorter than 11
octets, or names another EUI64 than its topic, is dropped. :class:`ZigbeeMqttClient`
subscribes to ``{root}/{gateway_id}/rsp/+`` *before* it sends anything (a clean session,
so nothing from an earlier run arrives), publishes each request and matches the answer by
EUI64 and ZCL sequence number, exactly as the TCP client does. A meter that does not
answer within the timeout is E04; a broker that cannot be reached is E01; a connection
lost in the middle is E02.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from dataclasses import dataclass
from types import TracebackType

import aiomqtt

from meterledger.codec.zigbee import ZclCommand
from meterledger.collect.errors import ConnectFailedError, ConnectionLostError
from meterledger.collect.zigbee_link import (
    METER_ENDPOINT,
    Correlator,
    Envelope,
    decode_envelope,
    encode_envelope,
)

__all__ = [
    "DEFAULT_ROOT",
    "MqttTransport",
    "ZigbeeMqttClient",
    "check_topic_level",
    "request_topic",
    "response_topic",
]

DEFAULT_ROOT = "meterledger/zigbee"
#: One small request waits on one small answer: Nagle's algorithm would hold each back.
_NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


def check_topic_level(text: str, what: str) -> str:
    """``text`` if it is one non-empty topic level without wildcards (ValueError else)."""
    if not text or any(c in text for c in "/+#\x00"):
        raise ValueError(f"{what} {text!r} is one MQTT topic level, without / + #")
    return text


def _check_root(root: str) -> str:
    if not root or any(c in root for c in "+#\x00") or root.startswith("/") or root.endswith("/"):
        raise ValueError(f"topic root {root!r}: no wildcards, no leading or trailing /")
    return root


def request_topic(root: str, gateway_id: str, eui64: bytes) -> str:
    """Where the collector publishes a request to the meter ``eui64``."""
    return f"{root}/{gateway_id}/req/{eui64.hex()}"


def response_topic(root: str, gateway_id: str, eui64: bytes) -> str:
    """Where the gateway publishes the answer of the meter ``eui64``."""
    return f"{root}/{gateway_id}/rsp/{eui64.hex()}"


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload).encode("utf-8")


class ZigbeeMqttClient:
    """Requests to meters behind the gateway ``gateway_id``, through the broker at
    ``host:port``; the same :meth:`request` as
    :class:`~meterledger.collect.zigbee_link.ZigbeeClient`. ``async with`` connects."""

    def __init__(
        self,
        host: str,
        port: int,
        gateway_id: str,
        *,
        root: str = DEFAULT_ROOT,
        timeout: float = 5.0,
        client_id: str | None = None,
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.gateway_id = check_topic_level(gateway_id, "gateway id")
        self.root = _check_root(root)
        self.client_id = client_id or f"meterledger-zigbee-{uuid.uuid4().hex[:12]}"
        self._answers = Correlator(timeout)
        self._client: aiomqtt.Client | None = None
        self._listener: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ZigbeeMqttClient:
        client = aiomqtt.Client(
            self.host,
            self.port,
            identifier=self.client_id,
            clean_session=True,
            timeout=self.timeout,
            socket_options=_NO_DELAY,
        )
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise ConnectFailedError(f"MQTT broker {self.host}:{self.port}: {exc}") from exc
        self._client = client
        try:
            await client.subscribe(f"{self.root}/{self.gateway_id}/rsp/+", qos=1)
        except aiomqtt.MqttError as exc:
            await self._disconnect()
            raise ConnectionLostError(f"MQTT broker {self.host}:{self.port}: {exc}") from exc
        self._listener = asyncio.create_task(self._listen(client), name="zigbee-mqtt-reader")
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._disconnect()

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)

    async def _listen(self, client: aiomqtt.Client) -> None:
        try:
            async for message in client.messages:
                envelope = decode_envelope(_payload_bytes(message.payload))
                level = str(message.topic).rpartition("/")[2]
                if envelope is None or envelope.eui64.hex() != level.lower():
                    continue  # not an answer we can route: its request times out
                self._answers.answered(envelope)
        except aiomqtt.MqttError as exc:
            self._answers.lost(ConnectionLostError(f"the MQTT broker went away ({exc})"))

    async def _send(self, envelope: Envelope) -> None:
        client = self._client
        if client is None:
            raise ConnectionLostError("the MQTT connection is closed")
        topic = request_topic(self.root, self.gateway_id, envelope.eui64)
        try:
            await client.publish(topic, encode_envelope(envelope)[2:], qos=1)
        except aiomqtt.MqttError as exc:
            raise ConnectionLostError(f"publishing to {topic}: {exc}") from exc

    async def request(
        self, eui64: bytes, command: ZclCommand, *, endpoint: int = METER_ENDPOINT
    ) -> ZclCommand:
        """Publish ``command`` to the meter and return its answer's command (E04 on
        timeout, E06 when it answers with a failed Default Response)."""
        if self._client is None:
            raise RuntimeError("use the client in `async with`")
        return await self._answers.request(eui64, command, endpoint, self._send)


@dataclass(frozen=True, slots=True)
class MqttTransport:
    """The gateway ``gateway_id`` behind the MQTT broker at ``host:port``; its breaker key
    is ``mqtt:gateway_id``."""

    host: str
    port: int
    gateway_id: str
    root: str = DEFAULT_ROOT
    client_id: str | None = None

    def __post_init__(self) -> None:
        check_topic_level(self.gateway_id, "gateway id")
        _check_root(self.root)

    @property
    def key(self) -> str:
        return f"mqtt:{self.gateway_id}"

    def connect(self, timeout: float) -> ZigbeeMqttClient:
        return ZigbeeMqttClient(
            self.host,
            self.port,
            self.gateway_id,
            root=self.root,
            timeout=timeout,
            client_id=self.client_id,
        )
