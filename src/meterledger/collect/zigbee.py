"""The Zigbee collector: page back through each meter's GetProfile buffer to stored data.

The gateway links are :mod:`meterledger.collect.zigbee_link` (the envelope carrying raw
ZCL frames over TCP, and its client) and :mod:`meterledger.collect.zigbee_mqtt` (the same
frames on MQTT topics); both are re-exported here. :func:`collect_meters` takes either
(``transport``) and, given a :class:`~meterledger.collect.breaker.BreakerBoard`, passes
every request through the gateway's circuit breaker.

For each meter, :func:`read_meter` asks Read Attributes for Multiplier, Divisor,
UnitofMeasure and ProfileIntervalPeriod, then GetProfile with end time 0 (the most
recent intervals), and pages backwards with ``end_time = response.end_time -
len(intervals) * period`` until an interval ends at or before the last stored interval
end of that channel, or the meter answers NO_INTERVALS_AVAILABLE (the buffer ends). The
delivered channel becomes ``1.0.1.8.0.255``, the received ``1.0.2.8.0.255`` (skipped when
the meter answers INTERVAL_CHANNEL_NOT_SUPPORTED). An invalid interval (0xFFFFFF) is a
gap: no reading is made for it.

Values: ``units x multiplier / divisor`` is the quantity in the unit of measure (kWh);
kept as integer mWh exactly (``x 1 000 000``). A value that is not a whole number of mWh
is refused (E05), never rounded.

Errors are those of :mod:`meterledger.collect.errors`: a meter that does not answer in
time is E04 (:class:`ResponseTimeoutError`), a refusal (Default Response) E06, bytes that
do not decode or an unexpected answer E05. The ledger (the store, through ingest) is the
composition root's (``meterledger zigbee collect``): this module imports neither.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol

from meterledger.codec.zigbee import (
    GetProfile,
    GetProfileResponse,
    IntervalChannel,
    MeteringAttribute,
    ProfileIntervalPeriod,
    ProfileStatus,
    ReadAttributes,
    ReadAttributesResponse,
    UnitOfMeasure,
    ZclStatus,
    from_utc_time,
    to_utc_time,
)
from meterledger.collect.breaker import BreakerBoard
from meterledger.collect.errors import (
    CollectError,
    MeterDataAccessError,
    MeterProtocolError,
    translate,
)
from meterledger.collect.handoff import deliver_or_keep
from meterledger.collect.ledger import DeadLetterLedger, HandoffCounts
from meterledger.collect.retry import RetryPolicy, with_retries
from meterledger.collect.zigbee_guard import GatewayLink
from meterledger.collect.zigbee_link import (
    MAX_MESSAGE,
    METER_ENDPOINT,
    Envelope,
    TcpTransport,
    ZigbeeClient,
    ZigbeeLink,
    ZigbeeTransport,
    decode_envelope,
    encode_envelope,
    parse_eui64,
)
from meterledger.collect.zigbee_mqtt import DEFAULT_ROOT, MqttTransport, ZigbeeMqttClient
from meterledger.core.obis import ObisCode
from meterledger.core.reading import Reading
from meterledger.core.time import from_epoch

__all__ = [
    "DEFAULT_ROOT",
    "DELIVERED_CHANNEL",
    "MAX_MESSAGE",
    "METER_ENDPOINT",
    "READ_POLICY",
    "RECEIVED_CHANNEL",
    "SOURCE",
    "Envelope",
    "MeterReadout",
    "MeterScale",
    "MqttTransport",
    "TcpTransport",
    "ZigbeeClient",
    "ZigbeeLedger",
    "ZigbeeLink",
    "ZigbeeMeterRef",
    "ZigbeeMqttClient",
    "ZigbeeResult",
    "ZigbeeTransport",
    "collect_meters",
    "decode_envelope",
    "encode_envelope",
    "parse_eui64",
    "read_meter",
]

DELIVERED_CHANNEL = "1.0.1.8.0.255"
RECEIVED_CHANNEL = "1.0.2.8.0.255"
SOURCE = "zigbee"
_MILLI_PER_UNIT = {UnitOfMeasure.KWH: 1_000_000}  # kWh -> mWh
_CHANNELS = (
    (IntervalChannel.CONSUMPTION_DELIVERED, DELIVERED_CHANNEL),
    (IntervalChannel.CONSUMPTION_RECEIVED, RECEIVED_CHANNEL),
)
_SCALE_ATTRIBUTES = (
    MeteringAttribute.MULTIPLIER,
    MeteringAttribute.DIVISOR,
    MeteringAttribute.UNIT_OF_MEASURE,
    MeteringAttribute.PROFILE_INTERVAL_PERIOD,
)


# -- one meter ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZigbeeMeterRef:
    """A meter to read: its EUI64 behind the gateway and the utility's meter id;
    ``received`` false reads the delivered channel only (a meter billed on import alone)."""

    eui64: bytes
    meter_id: str
    endpoint: int = METER_ENDPOINT
    received: bool = True


@dataclass(frozen=True, slots=True)
class MeterScale:
    """Multiplier, divisor and unit of measure (SE D.3.2.2.4), and the profile period
    served (None when the meter lacks the attribute)."""

    multiplier: int = 1
    divisor: int = 1
    unit_of_measure: int = UnitOfMeasure.KWH
    profile_interval_period: ProfileIntervalPeriod | None = None

    def milli(self, units: int) -> int:
        """``units`` in milli-units of the base unit (mWh for kWh), exactly, or E05."""
        per_unit = _MILLI_PER_UNIT.get(UnitOfMeasure(self.unit_of_measure))
        if per_unit is None:
            raise MeterProtocolError(f"unit of measure {self.unit_of_measure} is not supported")
        value = Fraction(units * self.multiplier * per_unit, self.divisor)
        if value.denominator != 1:
            raise MeterProtocolError(
                f"{units} units x {self.multiplier} / {self.divisor} is not a whole number "
                "of milli-units (refused, not rounded)"
            )
        return int(value)


@dataclass(frozen=True, slots=True)
class MeterReadout:
    """What one meter gave: its readings (oldest first per channel), gaps and requests."""

    meter_id: str
    scale: MeterScale
    readings: tuple[Reading, ...]
    gaps: int
    requests: int
    channels: tuple[str, ...]


class ZigbeeLedger(Protocol):
    """The collector's view of the store (``cli.collect.StoreLedger`` is one)."""

    def last_interval_ends(self, meter_id: str, channels: Sequence[str]) -> dict[str, int | None]:
        """The latest stored interval end (epoch s) of each channel, or None."""
        ...

    def deliver(self, readings: Sequence[Reading]) -> HandoffCounts:
        """Hand readings to the ingest pipeline as one batch (exactly once)."""
        ...


async def read_scale(client: ZigbeeLink, meter: ZigbeeMeterRef) -> MeterScale:
    """Multiplier, Divisor, UnitofMeasure and ProfileIntervalPeriod of the meter; an
    unsupported Multiplier or Divisor counts as 1, an unsupported unit as kWh."""
    answer = await client.request(
        meter.eui64, ReadAttributes(tuple(_SCALE_ATTRIBUTES)), endpoint=meter.endpoint
    )
    if not isinstance(answer, ReadAttributesResponse):
        raise MeterProtocolError(f"Read Attributes answered by {type(answer).__name__}")
    values = {r.attribute_id: r.value for r in answer.records if r.status == ZclStatus.SUCCESS}
    multiplier = values.get(MeteringAttribute.MULTIPLIER) or 1
    divisor = values.get(MeteringAttribute.DIVISOR)
    if divisor == 0:
        raise MeterProtocolError("the meter's Divisor is 0")
    unit = values.get(MeteringAttribute.UNIT_OF_MEASURE)
    unit = UnitOfMeasure.KWH if unit is None else unit
    try:
        UnitOfMeasure(unit)
    except ValueError:
        raise MeterProtocolError(f"unit of measure 0x{unit:02X} is not supported") from None
    period_code = values.get(MeteringAttribute.PROFILE_INTERVAL_PERIOD)
    period = None
    if period_code is not None:
        try:
            period = ProfileIntervalPeriod(period_code)
        except ValueError:
            raise MeterProtocolError(f"reserved ProfileIntervalPeriod {period_code}") from None
    return MeterScale(multiplier, divisor or 1, unit, period)


async def _page_channel(
    client: ZigbeeLink,
    meter: ZigbeeMeterRef,
    channel: IntervalChannel,
    stop_at: int | None,
    periods: int,
    max_pages: int,
) -> tuple[list[tuple[int, int | None, int]], int] | None:
    """``(interval_end epoch s, units or None, interval s)`` newest first, and the request
    count; None when the meter does not serve the channel."""
    found: list[tuple[int, int | None, int]] = []
    end_time, requests = 0, 0
    while requests < max_pages:
        answer = await client.request(
            meter.eui64, GetProfile(channel, end_time, periods), endpoint=meter.endpoint
        )
        requests += 1
        if not isinstance(answer, GetProfileResponse):
            raise MeterProtocolError(f"GetProfile answered by {type(answer).__name__}")
        status = answer.status
        if status in (
            ProfileStatus.INTERVAL_CHANNEL_NOT_SUPPORTED,
            ProfileStatus.UNDEFINED_INTERVAL_CHANNEL_REQUESTED,
        ):
            if channel is IntervalChannel.CONSUMPTION_DELIVERED:
                raise MeterDataAccessError(f"the delivered channel is refused: {status.name}")
            return None
        if status is ProfileStatus.NO_INTERVALS_AVAILABLE_FOR_THE_REQUESTED_TIME:
            break
        if status not in (
            ProfileStatus.SUCCESS,
            ProfileStatus.MORE_PERIODS_REQUESTED_THAN_CAN_BE_RETURNED,
        ):
            raise MeterProtocolError(f"GetProfile answered {status.name}")
        if not answer.intervals:
            break
        step = answer.profile_interval_period.seconds
        reached = False
        for end, units in zip(answer.interval_ends(), answer.intervals, strict=True):
            end_s = from_utc_time(end)
            if stop_at is not None and end_s <= stop_at:
                reached = True
                break
            found.append((end_s, units, step))
        next_end = answer.end_time - len(answer.intervals) * step
        if reached or next_end <= 0 or (end_time and next_end >= end_time):
            break
        end_time = next_end
    return found, requests


async def read_meter(
    client: ZigbeeLink,
    meter: ZigbeeMeterRef,
    last_ends: dict[str, int | None],
    *,
    periods: int = 24,
    max_pages: int = 2_800,
    received: bool = True,
) -> MeterReadout:
    """Read the meter's intervals after ``last_ends`` (channel -> epoch s or None: the
    whole buffer), as readings of source ``zigbee``."""
    scale = await read_scale(client, meter)
    readings: list[Reading] = []
    gaps, requests, channels = 0, 1, []
    for channel, obis in _CHANNELS if received else _CHANNELS[:1]:
        stop_at = last_ends.get(obis)
        if stop_at is not None:
            to_utc_time(stop_at)  # a stored end before 2000 cannot be asked for
        paged = await _page_channel(client, meter, channel, stop_at, periods, max_pages)
        if paged is None:
            continue
        found, asked = paged
        requests += asked
        channels.append(obis)
        code = ObisCode.parse(obis)
        for end_s, units, step in sorted(set(found)):
            if units is None:
                gaps += 1  # an invalid interval is a gap, never a reading
                continue
            readings.append(
                Reading(
                    meter.meter_id,
                    code,
                    from_epoch(end_s),
                    step,
                    scale.milli(units),
                    source=SOURCE,
                )
            )
    return MeterReadout(meter.meter_id, scale, tuple(readings), gaps, requests, tuple(channels))


# -- many meters ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZigbeeResult:
    """The outcome for one meter; ``intervals`` counts readings handed to ingest."""

    meter_id: str
    eui64: str
    ok: bool
    code: str | None
    message: str
    intervals: int = 0
    gaps: int = 0
    requests: int = 0
    seconds: float = 0.0
    handoff: HandoffCounts = field(default_factory=HandoffCounts)

    def to_dict(self) -> dict[str, object]:
        return {
            "meter_id": self.meter_id,
            "eui64": self.eui64,
            "ok": self.ok,
            "code": self.code,
            "message": self.message,
            "intervals": self.intervals,
            "gaps": self.gaps,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "accepted": self.handoff.accepted,
            "duplicates": self.handoff.duplicates,
        }


#: A meter's reads within a run: the first retry within 0.5 s, none waiting over 5 s
#: (``collect_meters(attempts=...)``; ``zigbee collect --attempts``, 2 by default).
READ_POLICY = RetryPolicy(attempts=2, initial=0.5, maximum=5.0)


async def _hand_over(
    ledger: ZigbeeLedger, meter_id: str, readings: Sequence[Reading]
) -> HandoffCounts:
    """The meter's readings to the ledger; one that keeps dead letters (the store's) has
    them retried and, still failing, kept (E08 naming it): a meter's circular buffer may
    have moved on by the next run, so they are not left to be read again."""
    if not isinstance(ledger, DeadLetterLedger):
        return ledger.deliver(readings)

    async def deliver() -> HandoffCounts:
        return ledger.deliver(readings)

    return await deliver_or_keep(ledger, meter_id, readings, deliver)


async def collect_meters(
    host: str,
    port: int,
    meters: Sequence[ZigbeeMeterRef],
    ledger: ZigbeeLedger,
    *,
    timeout: float = 5.0,
    periods: int = 24,
    concurrency: int = 8,
    clock: Callable[[], float] = time.monotonic,
    transport: ZigbeeTransport | None = None,
    breakers: BreakerBoard | None = None,
    breaker_wait: float | None = None,
    attempts: int = 1,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[ZigbeeResult, ...]:
    """Read ``meters`` through the gateway at ``host:port``, at most ``concurrency`` at a
    time, and hand each meter's readings to ``ledger`` as its own batch. A failing meter
    (E01-E08) does not stop the others. The ledger is called on the event loop's thread,
    one call at a time (reads are short; a slow store delays answers, not the outcome).

    ``transport`` reaches the gateway another way (:class:`MqttTransport`; default:
    ``TcpTransport(host, port)``; ``host`` and ``port`` are then not used). With
    ``breakers``, every request goes through the breaker of ``transport.key``
    (``host:port`` or ``mqtt:gateway_id``): while it is open the meters wait, each at most
    ``breaker_wait`` seconds (default: one cool-down and one ``timeout``, so a probe can go
    and be answered), then fail with E03; nothing is lost, the next run pages back. A
    request whose connection was lost is sent once more on a new one
    (:class:`~meterledger.collect.zigbee_guard.GatewayLink`). A meter whose read fails on
    the way (no answer in time, E04; the connection lost or refused) is read again, up to
    ``attempts`` reads in all, after a backoff with full jitter (the first retry within
    0.5 s, none over 5 s; :data:`READ_POLICY`); an open circuit (E03) or a refusal is final.
    The reads are idempotent: a retry asks the meter the same questions."""
    policy = RetryPolicy(attempts, READ_POLICY.initial, READ_POLICY.maximum)
    limit = asyncio.Semaphore(concurrency)
    gateway = transport or TcpTransport(host, port)
    breaker = None if breakers is None else breakers.get(gateway.key)
    wait = 0.0
    if breaker is not None:
        wait = breaker.cooldown + timeout if breaker_wait is None else breaker_wait

    async def one(client: ZigbeeLink, meter: ZigbeeMeterRef) -> ZigbeeResult:
        async with limit:
            started = clock()  # the meter's own time, not its wait for a free slot
            try:
                last = ledger.last_interval_ends(
                    meter.meter_id, (DELIVERED_CHANNEL, RECEIVED_CHANNEL)
                )

                async def read(number: int) -> MeterReadout:
                    return await read_meter(
                        client, meter, last, periods=periods, received=meter.received
                    )

                readout = await with_retries(read, policy, sleep=sleep, name=meter.meter_id)
                handoff = await _hand_over(ledger, meter.meter_id, readout.readings)
            except Exception as exc:  # every failure becomes this meter's result
                error = translate(exc, meter_id=meter.meter_id)
                return ZigbeeResult(
                    meter.meter_id,
                    meter.eui64.hex(),
                    False,
                    error.code,
                    str(error),
                    seconds=clock() - started,
                )
        return ZigbeeResult(
            meter.meter_id,
            meter.eui64.hex(),
            True,
            None,
            f"{len(readout.readings)} interval(s), {readout.gaps} gap(s)",
            intervals=len(readout.readings),
            gaps=readout.gaps,
            requests=readout.requests,
            seconds=clock() - started,
            handoff=handoff,
        )

    try:
        async with GatewayLink(gateway, timeout, breaker, wait) as client:
            return tuple(await asyncio.gather(*(one(client, m) for m in meters)))
    except CollectError as error:  # the gateway itself cannot be reached: every meter fails
        return tuple(
            ZigbeeResult(m.meter_id, m.eui64.hex(), False, error.code, f"{m.meter_id}: {error}")
            for m in meters
        )
