"""The Zigbee gateway link: the envelope on the TCP stream and an asyncio client over it.

Framing (both directions, one message after another; the same bytes as the simulator's
gateway, docs/simulator.md "Zigbee Smart Energy meters")::

    octets:  2          8        1          2            n
             length     EUI64    endpoint   cluster id   ZCL frame

``length`` (big-endian) counts what follows it (11 + n, at most :data:`MAX_MESSAGE`); the
EUI64 is most significant octet first, the cluster id big-endian. :class:`ZigbeeClient`
matches answers to requests by EUI64 and ZCL sequence number; a meter that does not answer
within the timeout is E04 (:class:`~meterledger.collect.errors.ResponseTimeoutError`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from meterledger.codec.zigbee import (
    METERING_CLUSTER,
    DefaultResponse,
    Direction,
    ZclCommand,
    ZclError,
    ZclFrame,
    ZclStatus,
    decode_frame,
    encode_frame,
)
from meterledger.collect.errors import (
    CollectError,
    ConnectionLostError,
    MeterDataAccessError,
    MeterProtocolError,
    ResponseTimeoutError,
    translate,
)

__all__ = [
    "MAX_MESSAGE",
    "METER_ENDPOINT",
    "Correlator",
    "Envelope",
    "TcpTransport",
    "ZigbeeClient",
    "ZigbeeLink",
    "ZigbeeTransport",
    "decode_envelope",
    "encode_envelope",
    "parse_eui64",
]

METER_ENDPOINT = 1
MAX_MESSAGE = 2048
_HEAD = 11  # EUI64, endpoint, cluster id


# -- the envelope ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Envelope:
    """One gateway message: the device addressed (EUI64, endpoint, cluster) and a ZCL frame."""

    eui64: bytes
    endpoint: int
    cluster: int
    zcl: bytes


def encode_envelope(envelope: Envelope) -> bytes:
    """The message on the stream, the 2-octet big-endian length prefix included."""
    if len(envelope.eui64) != 8:
        raise ValueError("an EUI64 has 8 octets")
    if not 0 <= envelope.endpoint <= 0xFF or not 0 <= envelope.cluster <= 0xFFFF:
        raise ValueError("the endpoint is one octet, the cluster id two")
    body = (
        envelope.eui64
        + bytes((envelope.endpoint,))
        + envelope.cluster.to_bytes(2, "big")
        + envelope.zcl
    )
    if len(body) > MAX_MESSAGE:
        raise ValueError(f"a message holds at most {MAX_MESSAGE} octets")
    return len(body).to_bytes(2, "big") + body


def decode_envelope(body: bytes) -> Envelope | None:
    """The envelope in the octets after the length prefix; None when too short to route."""
    if len(body) < _HEAD:
        return None
    return Envelope(bytes(body[:8]), body[8], int.from_bytes(body[9:11], "big"), bytes(body[11:]))


def parse_eui64(text: str) -> bytes:
    """``024d4c5a00000001`` or ``02:4D:4C:5A:00:00:00:01`` as 8 octets (ValueError else)."""
    digits = text.replace(":", "").replace("-", "").strip()
    if len(digits) != 16:
        raise ValueError(f"an EUI64 is 16 hex digits, got {text!r}")
    return bytes.fromhex(digits)


# -- answers matched to requests --------------------------------------------------------------


class ZigbeeLink(Protocol):
    """What the collector needs of a gateway link (:class:`ZigbeeClient` over TCP,
    :class:`~meterledger.collect.zigbee_mqtt.ZigbeeMqttClient` over MQTT)."""

    async def request(
        self, eui64: bytes, command: ZclCommand, *, endpoint: int = METER_ENDPOINT
    ) -> ZclCommand:
        """Send ``command`` to the meter and return its answer's command."""
        ...


class Correlator:
    """Requests in flight, keyed by EUI64 and ZCL sequence number: a transport hands every
    answer it receives to :meth:`answered` and fails them all with :meth:`lost`."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._pending: dict[tuple[bytes, int], asyncio.Future[ZclFrame]] = {}
        self._next = 0
        self.lost_with: CollectError | None = None

    def answered(self, envelope: Envelope | None) -> None:
        """An envelope from the gateway: the answer of the request it matches, if any (an
        answer nobody waits for, or that does not decode, is dropped: that request times
        out, E04)."""
        if envelope is None or envelope.cluster != METERING_CLUSTER:
            return
        try:
            frame = decode_frame(envelope.zcl, cluster=envelope.cluster)
        except ZclError:
            return
        waiter = self._pending.get((envelope.eui64, frame.header.sequence_number))
        if waiter is not None and not waiter.done():
            waiter.set_result(frame)

    def lost(self, error: CollectError) -> None:
        """The link is gone: every request in flight, and every later one, fails."""
        self.lost_with = error
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(error)

    def _sequence(self, eui64: bytes) -> int:
        for _ in range(256):
            self._next = (self._next + 1) % 256
            if (eui64, self._next) not in self._pending:
                return self._next
        raise MeterProtocolError("256 requests to one meter in flight")

    async def request(
        self,
        eui64: bytes,
        command: ZclCommand,
        endpoint: int,
        send: Callable[[Envelope], Awaitable[None]],
    ) -> ZclCommand:
        """Frame ``command``, ``send`` it and wait for its answer (E04 on timeout, E06 on a
        failed Default Response)."""
        if self.lost_with is not None:
            raise self.lost_with
        sequence = self._sequence(eui64)
        frame = ZclFrame.of(command, sequence_number=sequence, direction=Direction.CLIENT_TO_SERVER)
        waiter: asyncio.Future[ZclFrame] = asyncio.get_running_loop().create_future()
        key = (eui64, sequence)
        self._pending[key] = waiter
        try:
            await send(Envelope(eui64, endpoint, METERING_CLUSTER, encode_frame(frame)))
            answer = await asyncio.wait_for(waiter, self.timeout)
        except TimeoutError:
            raise ResponseTimeoutError(
                f"no answer to {type(command).__name__} within {self.timeout:g} s"
            ) from None
        except OSError as exc:
            raise translate(exc) from exc
        finally:
            del self._pending[key]
        reply = answer.command
        if isinstance(reply, DefaultResponse) and reply.status != ZclStatus.SUCCESS:
            name = getattr(reply.status, "name", f"0x{reply.status:02X}")
            raise MeterDataAccessError(f"{type(command).__name__} refused: {name}")
        return reply


# -- the TCP client ---------------------------------------------------------------------------


class ZigbeeClient:
    """Requests to meters behind one gateway connection; answers matched by EUI64 and ZCL
    sequence number, so many meters can be asked at once. ``async with`` connects."""

    def __init__(self, host: str, port: int, *, timeout: float = 5.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._answers = Correlator(timeout)
        self._listener: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ZigbeeClient:
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout
            )
        except (OSError, TimeoutError) as exc:
            raise translate(exc) from exc
        self._listener = asyncio.create_task(self._listen(), name="zigbee-gateway-reader")
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
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()

    async def _listen(self) -> None:
        assert self._reader is not None
        try:
            while True:
                length = int.from_bytes(await self._reader.readexactly(2), "big")
                self._answers.answered(decode_envelope(await self._reader.readexactly(length)))
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self._answers.lost(ConnectionLostError(f"the gateway closed the connection ({exc!r})"))

    async def _send(self, envelope: Envelope) -> None:
        assert self._writer is not None
        self._writer.write(encode_envelope(envelope))
        await self._writer.drain()

    async def request(
        self, eui64: bytes, command: ZclCommand, *, endpoint: int = METER_ENDPOINT
    ) -> ZclCommand:
        """Send ``command`` to the meter and return its answer's command (E04 on timeout,
        E06 when it answers with a failed Default Response)."""
        if self._writer is None:
            raise RuntimeError("use the client in `async with`")
        return await self._answers.request(eui64, command, endpoint, self._send)


# -- transports ---------------------------------------------------------------------------------


class ZigbeeTransport(Protocol):
    """How a gateway is reached: ``key`` names it (its circuit breaker's key) and
    ``connect`` opens a link to it (``async with``; E01 when it cannot be reached)."""

    @property
    def key(self) -> str: ...

    def connect(self, timeout: float) -> AbstractAsyncContextManager[ZigbeeLink]: ...


@dataclass(frozen=True, slots=True)
class TcpTransport:
    """A gateway on a TCP stream (the envelope with its length prefix)."""

    host: str
    port: int

    @property
    def key(self) -> str:
        return f"{self.host}:{self.port}"

    def connect(self, timeout: float) -> ZigbeeClient:
        return ZigbeeClient(self.host, self.port, timeout=timeout)
