"""A Zigbee gateway on TCP: N simulated Smart Energy meters behind one listening port.

Framing (both directions, one message after the other on the stream)::

    octets:  2          8        1          2            n
             length     EUI64    endpoint   cluster id   ZCL frame

``length`` (big-endian) counts what follows it (11 + n, at most :data:`MAX_MESSAGE`); the
EUI64 is written most significant octet first, as it is printed; the cluster id is
big-endian. The ZCL frame is exactly the APS payload a meter would send or receive. An
answer carries the meter's EUI64, endpoint and cluster.

Meter ``i`` (0-based, ``MTR-{i+1:05d}`` of :func:`~meterledger.simulate.fleet.make_fleet`,
whose kind and size drive its load shape) has the EUI64 :func:`eui64_of` ``(i)`` and its
Metering server on endpoint :data:`METER_ENDPOINT`. The gateway answers:

* GetProfile and Read Attributes from the meter (:class:`~.zigbee_meter.ZigbeeMeter`),
  driven up to the gateway's clock first, so the buffer fills as time passes;
* an unknown EUI64, another endpoint or another cluster: a Default Response with status
  UNSUPPORTED_CLUSTER;
* a ZCL frame that does not decode: a Default Response MALFORMED_COMMAND (sequence number and
  command id from the header if it could be read, else 0); a well-formed command the meter
  does not serve (or a response sent to it): UNSUP_CLUSTER_COMMAND, UNSUP_GENERAL_COMMAND,
  or their manufacturer-specific kin;
* a *dark* meter: nothing at all (the client times out);
* an envelope shorter than 11 octets is dropped; a length above :data:`MAX_MESSAGE` ends
  the connection (the stream cannot be resynchronised).

Time. "Now" is ``GatewayConfig.clock`` (epoch seconds; the wall clock by default, read here
at the edge, never in the meter). A meter is built on first use with ``days`` days of
history before the moment it is built, so its buffer (``buffer`` periods) is full from the
start when the days cover it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from meterledger.codec.zigbee import (
    METERING_CLUSTER,
    DefaultResponse,
    Direction,
    FrameType,
    GetProfile,
    ProfileIntervalPeriod,
    ReadAttributes,
    ZclCommand,
    ZclError,
    ZclFrame,
    ZclHeader,
    ZclStatus,
    ZclUnsupportedError,
    decode_frame,
    encode_frame,
)
from meterledger.codec.zigbee.cursor import Cursor
from meterledger.core.errors import ConfigError
from meterledger.core.time import parse_zone
from meterledger.simulate.fleet import make_fleet
from meterledger.simulate.stream_server import StreamServer
from meterledger.simulate.zigbee_meter import ShapedLoad, ZigbeeMeter

__all__ = [
    "EUI64_BASE",
    "MAX_MESSAGE",
    "METER_ENDPOINT",
    "Envelope",
    "GatewayConfig",
    "ZigbeeGateway",
    "decode_envelope",
    "encode_envelope",
    "eui64_of",
]

#: Meter ``i`` has EUI64 ``EUI64_BASE + i`` (a locally administered prefix, b"\x02MLZ").
EUI64_BASE = 0x024D4C5A_00000000
METER_ENDPOINT = 1
#: The largest ``length`` accepted (the envelope and a ZCL frame well above any APS payload).
MAX_MESSAGE = 2048
_HEAD = 11  # EUI64, endpoint, cluster id


def eui64_of(meter_index: int) -> bytes:
    """The EUI64 of meter ``meter_index``, most significant octet first."""
    return (EUI64_BASE + meter_index).to_bytes(8, "big")


@dataclass(frozen=True, slots=True)
class Envelope:
    """One gateway message: the meter addressed and the raw ZCL frame."""

    eui64: bytes
    endpoint: int
    cluster: int
    zcl: bytes


def encode_envelope(envelope: Envelope) -> bytes:
    """The message on the stream, length prefix included."""
    body = (
        envelope.eui64
        + bytes((envelope.endpoint,))
        + envelope.cluster.to_bytes(2, "big")
        + envelope.zcl
    )
    if len(envelope.eui64) != 8 or len(body) > MAX_MESSAGE:
        raise ValueError("an envelope has an 8-octet EUI64 and at most MAX_MESSAGE octets")
    return len(body).to_bytes(2, "big") + body


def decode_envelope(body: bytes) -> Envelope | None:
    """An envelope from the octets after the length prefix; None when too short."""
    if len(body) < _HEAD:
        return None
    return Envelope(body[:8], body[8], int.from_bytes(body[9:11], "big"), body[11:])


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    """The meters behind the gateway. ``dark`` meters never answer; ``outages`` give
    meter ``i`` spans ``(start, end)`` (epoch s) without power (invalid intervals);
    ``delay`` seconds pass before each answer."""

    meters: int
    seed: int = 1
    host: str = "127.0.0.1"
    port: int = 7702
    period: ProfileIntervalPeriod = ProfileIntervalPeriod.MINUTES_15
    buffer: int = 96
    days: int = 1
    max_periods_per_response: int = 24
    tz: str = "America/New_York"
    dark: frozenset[int] = frozenset()
    outages: Mapping[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    clock: Callable[[], int] | None = None
    delay: float = 0.0  # seconds before each answer (a slow radio network)

    def __post_init__(self) -> None:
        if not 1 <= self.meters < 99_999:
            raise ConfigError(f"a gateway serves 1..99998 meters, not {self.meters}")
        if self.days < 0:
            raise ConfigError(f"days must not be negative, got {self.days}")
        if not 1 <= self.buffer <= 0xFFFF:
            raise ConfigError(f"buffer must be 1..65535 periods, got {self.buffer}")
        if self.delay < 0:
            raise ConfigError(f"delay must not be negative, got {self.delay}")
        if not 1 <= self.max_periods_per_response <= 0xFF:
            raise ConfigError("max_periods_per_response must be 1..255")
        if any(not 0 <= index < self.meters for index in (*self.dark, *self.outages)):
            raise ConfigError("dark meters or outages name a meter index outside the fleet")
        ProfileIntervalPeriod(self.period)
        parse_zone(self.tz)


class ZigbeeGateway(StreamServer):
    """``async with ZigbeeGateway(config) as gateway`` listens on ``config.host`` and
    ``config.port`` (0 picks a free one: see :attr:`port`) until the block ends; or
    ``await gateway.start(host, port)`` and ``await gateway.close()``."""

    what = "the gateway"

    def __init__(self, config: GatewayConfig) -> None:
        super().__init__()
        self.config = config
        self.clock: Callable[[], int] = config.clock or (lambda: int(time.time()))
        self.stats.update(requests=0, responses=0, unanswered=0)
        self._fleet = make_fleet(config.meters, seed=config.seed, tz=config.tz)
        self._by_eui = {eui64_of(index): index for index in range(config.meters)}
        self._loads: dict[int, ShapedLoad] = {}
        #: The meters that do not answer now (``config.dark`` at first): a test darkens
        #: the whole gateway, or lights it again, by changing this set.
        self.dark: set[int] = set(config.dark)
        #: meter index -> how many more requests it leaves unanswered (a lossy mesh)
        self.drop_next: dict[int, int] = {}

    # -- meters --------------------------------------------------------------------------

    def meter_index(self, eui64: bytes) -> int | None:
        return self._by_eui.get(eui64)

    def meter(self, meter_index: int) -> ZigbeeMeter:
        """Meter ``meter_index``, built (with its history) on first use, then driven to now."""
        if not 0 <= meter_index < self.config.meters:
            raise IndexError(f"no meter {meter_index} behind a gateway of {self.config.meters}")
        now = self.clock()
        load = self._loads.get(meter_index)
        if load is None:
            load = self._loads[meter_index] = self._build(meter_index, now)
        load.drive(max(now, load.meter.now))
        return load.meter

    def _build(self, index: int, now: int) -> ShapedLoad:
        config, spec = self.config, self._fleet[index]
        seconds = ProfileIntervalPeriod(config.period).seconds
        start = (now - config.days * 86_400) // seconds * seconds
        # A meter in the field has run for years: its summation does not start at zero.
        installed = random.Random(f"{config.seed}:{index}:summation").randrange(10**6, 10**8)
        meter = ZigbeeMeter(
            start=start,
            period=config.period,
            max_periods=config.buffer,
            max_periods_per_response=config.max_periods_per_response,
            summation_delivered=installed,
        )
        return ShapedLoad(
            meter,
            kind=spec.kind,
            daily_kwh=spec.daily_kwh,
            tz=config.tz,
            seed=f"{config.seed}:{index}",
            outages=config.outages.get(index, ()),
        )

    # -- one request -----------------------------------------------------------------------

    def answer(self, envelope: Envelope) -> Envelope | None:
        """The gateway's answer to one message (None: silence)."""
        index = self.meter_index(envelope.eui64)
        if index is not None and index in self.dark:
            return None
        if index is not None and self.drop_next.get(index, 0) > 0:
            self.drop_next[index] -= 1
            return None
        served = (
            index is not None
            and envelope.endpoint == METER_ENDPOINT
            and envelope.cluster == METERING_CLUSTER
        )
        try:
            frame = decode_frame(envelope.zcl, cluster=envelope.cluster)
        except ZclError as error:
            reply = _refusal(envelope.zcl, error)
        else:
            if index is None or not served:
                reply = _default_response(frame.header, ZclStatus.UNSUPPORTED_CLUSTER)
            else:
                reply = self._command(index, frame)
        return Envelope(envelope.eui64, envelope.endpoint, envelope.cluster, encode_frame(reply))

    def _command(self, index: int, frame: ZclFrame) -> ZclFrame:
        header, command = frame.header, frame.command
        if header.direction is Direction.CLIENT_TO_SERVER and not header.manufacturer_specific:
            if isinstance(command, GetProfile):
                return _reply(header, self.meter(index).get_profile(command))
            if isinstance(command, ReadAttributes):
                return _reply(header, self.meter(index).read_attributes(command))
        return _default_response(header, _unsupported(header))

    # -- serving ---------------------------------------------------------------------------

    async def start(self, host: str | None = None, port: int | None = None) -> None:
        """Listen on ``host``/``port`` (the config's when not given)."""
        await self.listen(
            self.config.host if host is None else host,
            self.config.port if port is None else port,
        )

    async def start_default(self) -> None:
        await self.start()

    def drop_connections(self) -> None:
        """End every connection now (a gateway that reboots); it keeps listening."""
        for writer in list(self._writers):
            writer.close()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            length = int.from_bytes(await reader.readexactly(2), "big")
            if length > MAX_MESSAGE:
                return
            envelope = decode_envelope(await reader.readexactly(length))
            self.stats["requests"] += 1
            reply = None if envelope is None else self.answer(envelope)
            if reply is None:
                self.stats["unanswered"] += 1
                continue
            if self.config.delay:
                await asyncio.sleep(self.config.delay)
            writer.write(encode_envelope(reply))
            await writer.drain()
            self.stats["responses"] += 1


def _reply(request: ZclHeader, command: ZclCommand) -> ZclFrame:
    return ZclFrame.of(
        command,
        sequence_number=request.sequence_number,
        direction=Direction.SERVER_TO_CLIENT,
        disable_default_response=True,
    )


def _default_response(request: ZclHeader | None, status: ZclStatus) -> ZclFrame:
    command_id = 0 if request is None else request.command_id
    sequence = 0 if request is None else request.sequence_number
    return ZclFrame.of(
        DefaultResponse(command_id, status),
        sequence_number=sequence,
        direction=Direction.SERVER_TO_CLIENT,
        disable_default_response=True,
    )


def _refusal(zcl: bytes, error: ZclError) -> ZclFrame:
    """The Default Response to a frame that does not decode: its header, if readable, says
    whether the command is merely one we do not serve or the frame is broken."""
    try:
        header = ZclHeader.decode(Cursor(zcl))
    except ZclError:
        return _default_response(None, ZclStatus.MALFORMED_COMMAND)
    if not isinstance(error, ZclUnsupportedError):
        return _default_response(header, ZclStatus.MALFORMED_COMMAND)
    return _default_response(header, _unsupported(header))


def _unsupported(header: ZclHeader) -> ZclStatus:
    if header.frame_type is FrameType.GLOBAL:
        if header.manufacturer_specific:
            return ZclStatus.UNSUP_MANUF_GENERAL_COMMAND
        return ZclStatus.UNSUP_GENERAL_COMMAND
    if header.manufacturer_specific:
        return ZclStatus.UNSUP_MANUF_CLUSTER_COMMAND
    return ZclStatus.UNSUP_CLUSTER_COMMAND
