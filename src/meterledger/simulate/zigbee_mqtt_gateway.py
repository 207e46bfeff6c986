"""A Zigbee gateway on MQTT: the meters of :class:`~.zigbee_gateway.ZigbeeGateway`,
answering requests that arrive on a topic (docs/zigbee.md "Gateway over MQTT").

Topics and payload (the collector's side is ``collect/zigbee_mqtt.py``)::

    {root}/{gateway_id}/req/{eui64hex}    requests, subscribed with QoS 1
    {root}/{gateway_id}/rsp/{eui64hex}    answers, published with QoS 1, not retained

    payload:  EUI64 (8) | endpoint (1) | cluster id (2, big-endian) | ZCL frame

that is the TCP envelope without its 2-octet length prefix. The gateway answers each
request exactly as the TCP gateway does (:meth:`ZigbeeGateway.answer`: the meter's
answer, a Default Response, or silence for a dark meter). A payload shorter than 11
octets, or whose EUI64 is not the topic's, is dropped. The session is clean: requests
published while the gateway is away are not answered (their requests time out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from types import TracebackType

import aiomqtt

from meterledger.simulate.zigbee_gateway import (
    GatewayConfig,
    ZigbeeGateway,
    decode_envelope,
    encode_envelope,
)
from meterledger.simulate.zigbee_meter import ZigbeeMeter

__all__ = ["DEFAULT_ROOT", "ZigbeeMqttGateway", "request_topic", "response_topic"]

DEFAULT_ROOT = "meterledger/zigbee"
_NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)  # small answers go at once
log = logging.getLogger("meterledger.simulate")


def request_topic(root: str, gateway_id: str, eui64: bytes) -> str:
    return f"{root}/{gateway_id}/req/{eui64.hex()}"


def response_topic(root: str, gateway_id: str, eui64: bytes) -> str:
    return f"{root}/{gateway_id}/rsp/{eui64.hex()}"


class ZigbeeMqttGateway:
    """``async with ZigbeeMqttGateway(config, host=..., port=..., gateway_id=...)``
    subscribes to the request topics of ``gateway_id`` on the broker and answers until
    the block ends (the subscription is in place when ``__aenter__`` returns). A broker
    that goes away is reconnected to, every ``retry`` seconds."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        gateway_id: str = "gw1",
        root: str = DEFAULT_ROOT,
        retry: float = 0.5,
    ) -> None:
        if not gateway_id or any(c in gateway_id for c in "/+#"):
            raise ValueError(f"gateway id {gateway_id!r} is one topic level, without / + #")
        self.gateway = ZigbeeGateway(config)  # the meters and their answers; it never listens
        self.host, self.port, self.gateway_id, self.root = host, port, gateway_id, root
        self.retry = retry
        self.stats = {"requests": 0, "responses": 0, "unanswered": 0, "dropped": 0}
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def config(self) -> GatewayConfig:
        return self.gateway.config

    @property
    def dark(self) -> set[int]:
        """The meters that do not answer now (change it to darken or light them)."""
        return self.gateway.dark

    @dark.setter
    def dark(self, meters: set[int]) -> None:
        self.gateway.dark = meters

    def meter(self, meter_index: int) -> ZigbeeMeter:
        return self.gateway.meter(meter_index)

    async def __aenter__(self) -> ZigbeeMqttGateway:
        self._task = asyncio.create_task(self._run(), name="zigbee-mqtt-gateway")
        ready = asyncio.create_task(self._ready.wait())
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            await self._task  # it ended before subscribing: raise its error
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_forever(self) -> None:
        assert self._task is not None, "use the gateway in `async with`"
        await self._task

    async def _run(self) -> None:
        connected_once = False
        while True:
            try:
                client = aiomqtt.Client(
                    self.host, self.port, clean_session=True, socket_options=_NO_DELAY
                )
                async with client:
                    await client.subscribe(f"{self.root}/{self.gateway_id}/req/+", qos=1)
                    connected_once = True
                    self._ready.set()
                    async for message in client.messages:
                        await self._answer(client, message)
            except aiomqtt.MqttError as exc:
                if not connected_once:
                    raise  # a broker that is not there at all: say so at once
                log.warning("MQTT gateway %s: %s; reconnecting", self.gateway_id, exc)
                await asyncio.sleep(self.retry)

    async def _answer(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        payload = message.payload
        data = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
        envelope = decode_envelope(data)
        level = str(message.topic).rpartition("/")[2]
        if envelope is None or envelope.eui64.hex() != level.lower():
            self.stats["dropped"] += 1
            return
        self.stats["requests"] += 1
        reply = self.gateway.answer(envelope)
        if reply is None:
            self.stats["unanswered"] += 1
            return
        if self.config.delay:
            await asyncio.sleep(self.config.delay)
        topic = response_topic(self.root, self.gateway_id, reply.eui64)
        await client.publish(topic, encode_envelope(reply)[2:], qos=1)
        self.stats["responses"] += 1
