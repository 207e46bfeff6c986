"""The MQTT feed: topics and payloads decoded to readings, register totals turned into
intervals, and a subscriber that acknowledges a message only once it has been stored.

Topics (docs/mqtt.md is the contract)::

    {root}/readings/{meter_id}    interval readings: JSON object or array, or canonical CSV
    {root}/registers/{meter_id}   running register totals: JSON object or array, or CSV

``root`` is ``meterledger/v1``. The subscriber takes ``$share/{group}/{root}/#`` at QoS 1
with a fixed client id and ``clean_session`` off, so the broker keeps what arrives while
it is away, and a group of workers splits the messages. aiomqtt 2.x has no manual
acknowledgement of its own; the paho client under it does (``manual_ack``), and this
module turns it on: a message is PUBACKed only after :meth:`MqttFeed.ack`, which the
composition calls once ingest has committed. A crash before that leaves the message in
flight on the broker, which sends it again on reconnect; ingest's idempotency keys make
the second copy a duplicate with no effect.

A payload that cannot be decoded raises :class:`MqttPayloadError` (an ``InputError``)
carrying the topic and the bytes, for a dead letter.

With ``breakers`` the broker has a circuit breaker (key ``host:port``): each connection
attempt is one call, a successful connect a success, a refused connect or a connection
lost a failure. While the circuit is open the subscriber makes no connection attempt: it
*pauses* until the cool-down ends, then one probe connect decides (the jittered backoff is
not added to a pause).
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import aiomqtt

from meterledger.collect.breaker import (
    BreakerBoard,
    BreakerState,
    CircuitBreaker,
    wait_until_allowed,
)
from meterledger.collect.profile import RegisterSample
from meterledger.core.errors import InputError
from meterledger.core.ids import CHANNEL_CATALOG
from meterledger.core.obis import ObisCode
from meterledger.core.reading import Quality, Reading
from meterledger.core.time import epoch_of, from_epoch, iso_utc, parse_instant
from meterledger.core.units import Unit, milli_from_text

__all__ = [
    "READINGS_HEADER",
    "REGISTERS_HEADER",
    "TOPIC_ROOT",
    "Derivation",
    "FeedMessage",
    "MqttFeed",
    "MqttPayloadError",
    "MqttSettings",
    "Received",
    "RegisterFinding",
    "decode_message",
    "derive_intervals",
]

TOPIC_ROOT = "meterledger/v1"
READINGS_HEADER = "meter_id,channel,interval_end,interval_seconds,value,unit,quality"
REGISTERS_HEADER = "meter_id,channel,read_at,value,unit"
log = logging.getLogger("meterledger.collect.mqtt")
Kind = Literal["readings", "registers"]


class MqttPayloadError(InputError):
    """A message that is not a valid reading or register payload (kept for a dead letter)."""

    def __init__(self, topic: str, payload: bytes, detail: str) -> None:
        self.topic = topic
        self.payload = payload
        self.detail = detail
        super().__init__(f"MQTT message on {topic}: {detail}")


@dataclass(frozen=True, slots=True)
class FeedMessage:
    """One decoded message: interval readings or register totals of one meter."""

    topic: str
    kind: Kind
    meter_id: str
    readings: tuple[Reading, ...] = ()
    registers: tuple[RegisterSample, ...] = ()


def _split_topic(topic: str, root: str) -> tuple[Kind, str]:
    rest = topic.removeprefix(root + "/") if topic.startswith(root + "/") else None
    parts = rest.split("/") if rest is not None else []
    if len(parts) != 2 or parts[0] not in ("readings", "registers") or not parts[1]:
        raise InputError(f"not {root}/readings/METER or {root}/registers/METER")
    kind: Kind = "readings" if parts[0] == "readings" else "registers"
    return kind, parts[1]


def _text(value: object, name: str) -> str:
    if isinstance(value, bool) or value is None:
        raise InputError(f"{name} is missing or not a number or text")
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int | str):
        return str(value)
    raise InputError(f"{name} must be text or a number, got {type(value).__name__}")


def _rows(payload: bytes, header: str) -> list[Mapping[str, Any]]:
    text = payload.decode("utf-8").lstrip("\ufeff").strip()
    if not text:
        raise InputError("empty payload")
    if text[0] in "{[":
        data = json.loads(text, parse_float=Decimal)
        rows = data if isinstance(data, list) else [data]
        if not rows or not all(isinstance(r, dict) for r in rows):
            raise InputError("JSON payload must be an object or a non-empty array of objects")
        return rows
    lines = text.splitlines()
    if lines[0].strip() != header:
        raise InputError(f"CSV payload must start with the header {header!r}")
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    rows = list(reader)
    if not rows or any(None in r or None in r.values() for r in rows):
        raise InputError("CSV payload has no rows or a row with the wrong number of fields")
    return rows


def _channel_and_unit(row: Mapping[str, Any]) -> tuple[ObisCode, Unit]:
    channel = ObisCode.parse(_text(row.get("channel"), "channel"))
    try:
        unit = Unit(_text(row.get("unit"), "unit"))
    except ValueError:
        raise InputError(f"unknown unit {row.get('unit')!r}") from None
    spec = CHANNEL_CATALOG.get(str(channel))
    if spec is not None and spec.base is not unit.base:
        raise InputError(f"unit {unit.value} does not measure channel {channel}")
    return channel, unit


def _meter(row: Mapping[str, Any], meter_id: str) -> str:
    named = row.get("meter_id", meter_id)
    if named != meter_id:
        raise InputError(f"row names meter {named!r}, the topic {meter_id!r}")
    return meter_id


def _reading(row: Mapping[str, Any], meter_id: str) -> Reading:
    channel, unit = _channel_and_unit(row)
    seconds = _text(row.get("interval_seconds"), "interval_seconds")
    if not seconds.isdigit():
        raise InputError(f"interval_seconds {seconds!r} is not a whole number")
    quality = row.get("quality")
    return Reading(
        meter_id=_meter(row, meter_id),
        channel=channel,
        interval_end=parse_instant(_text(row.get("interval_end"), "interval_end")),
        interval_seconds=int(seconds),
        value=milli_from_text(_text(row.get("value"), "value"), unit),
        quality=Quality.parse(None if quality is None else _text(quality, "quality")),
    )


def _register(row: Mapping[str, Any], meter_id: str) -> RegisterSample:
    channel, unit = _channel_and_unit(row)
    value = milli_from_text(_text(row.get("value"), "value"), unit)
    if value < 0:
        raise InputError(f"a register total is not negative, got {row.get('value')!r}")
    read_at = epoch_of(parse_instant(_text(row.get("read_at"), "read_at")))
    return RegisterSample(_meter(row, meter_id), str(channel), read_at, value)


def decode_message(topic: str, payload: bytes, *, root: str = TOPIC_ROOT) -> FeedMessage:
    """The readings or register totals in one message; :class:`MqttPayloadError` if the
    topic, the encoding (UTF-8 JSON or CSV) or any row is malformed (all or nothing)."""
    try:
        kind, meter_id = _split_topic(topic, root)
        if kind == "readings":
            rows = _rows(payload, READINGS_HEADER)
            return FeedMessage(
                topic, kind, meter_id, readings=tuple(_reading(r, meter_id) for r in rows)
            )
        rows = _rows(payload, REGISTERS_HEADER)
        return FeedMessage(
            topic, kind, meter_id, registers=tuple(_register(r, meter_id) for r in rows)
        )
    except (InputError, ValueError) as exc:  # json, UTF-8 and int errors are ValueErrors
        raise MqttPayloadError(topic, payload, str(exc)) from exc


# -- register totals to intervals ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterFinding:
    """Something the derivation noticed between two totals (a value, not an exception).

    ``code``: ``register-rollover`` (wrapped, delta corrected), ``register-reset`` (fell to
    near zero: no interval), ``register-decrease`` (fell otherwise: no interval),
    ``register-gap`` (totals further apart than one interval: no interval),
    ``register-off-grid`` (a total not on the interval grid: not used),
    ``register-conflict`` (two totals at one instant: the lower one is used)."""

    code: str
    meter_id: str
    channel: str
    read_at: int
    message: str


@dataclass(frozen=True, slots=True)
class Derivation:
    readings: tuple[Reading, ...]
    findings: tuple[RegisterFinding, ...]


def _modulus(previous: int, min_modulus: int) -> int:
    """The power of ten the register wraps at: the smallest above ``previous``, at least
    ``min_modulus`` (a register has a whole number of digits)."""
    modulus = 10
    while modulus <= previous or modulus < min_modulus:
        modulus *= 10
    return modulus


def derive_intervals(
    totals: Iterable[RegisterSample],
    *,
    interval_seconds: int = 900,
    max_delta: int = 100_000_000,
    min_modulus: int = 1_000_000_000,
) -> Derivation:
    """Interval readings from consecutive register totals of each (meter, channel).

    Totals (milli-units) are used only on the UTC grid of ``interval_seconds``. Two totals
    one interval apart give the interval ending at the later one, valued at their
    difference. A fall is a rollover when the register, wrapping at the power of ten just
    above the earlier total (at least ``min_modulus``), has advanced by at most
    ``max_delta``: the delta is ``modulus - earlier + later``. Any other fall is a reset (to
    at most ``max_delta``) or a decrease: never a negative interval, no interval at all,
    and a finding. Defaults: 100 kWh an interval, registers of 4 kWh digits or more."""
    groups: dict[tuple[str, str], dict[int, int]] = {}
    findings: list[RegisterFinding] = []
    for t in totals:
        at = groups.setdefault((t.meter_id, t.channel), {})
        if t.read_at % interval_seconds:
            findings.append(
                RegisterFinding(
                    "register-off-grid",
                    t.meter_id,
                    t.channel,
                    t.read_at,
                    f"read at {iso_utc(t.read_at)} is not on the {interval_seconds}-second grid",
                )
            )
        elif t.read_at in at and at[t.read_at] != t.value:
            findings.append(
                RegisterFinding(
                    "register-conflict",
                    t.meter_id,
                    t.channel,
                    t.read_at,
                    f"two totals at {iso_utc(t.read_at)}: {at[t.read_at]} and {t.value}",
                )
            )
            at[t.read_at] = min(at[t.read_at], t.value)
        else:
            at[t.read_at] = t.value
    readings: list[Reading] = []
    for (meter_id, channel), by_time in sorted(groups.items()):
        obis = ObisCode.parse(channel)

        def note(code: str, at: int, text: str, m: str = meter_id, c: str = channel) -> None:
            findings.append(RegisterFinding(code, m, c, at, text))

        for before, after in itertools.pairwise(sorted(by_time)):
            old, new = by_time[before], by_time[after]
            if after - before != interval_seconds:
                missing = after - before - interval_seconds
                note("register-gap", after, f"{missing} s without a total before {iso_utc(after)}")
                continue
            delta = new - old
            if delta < 0:
                modulus = _modulus(old, min_modulus)
                wrapped = modulus - old + new
                if wrapped > max_delta:
                    code = "register-reset" if new <= max_delta else "register-decrease"
                    note(code, after, f"fell from {old} to {new}: no interval")
                    continue
                delta = wrapped
                note("register-rollover", after, f"wrapped at {modulus}: {old} -> {new}")
            readings.append(Reading(meter_id, obis, from_epoch(after), interval_seconds, delta))
    findings.sort(key=lambda f: (f.meter_id, f.channel, f.read_at, f.code))
    return Derivation(tuple(readings), tuple(findings))


# -- the subscriber -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Where and how to subscribe. ``group`` None subscribes without sharing. A fixed
    ``client_id`` is what makes the session persistent: the broker keeps it by that id.
    ``batch_max`` stays below the broker's in-flight window (Mosquitto: 20), since a
    message is in flight until it is acknowledged."""

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "meterledger-ingest"
    group: str | None = "meterledger"
    root: str = TOPIC_ROOT
    keepalive: int = 30
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    batch_max: int = 16

    @property
    def subscription(self) -> str:
        topics = f"{self.root}/#"
        return f"$share/{self.group}/{topics}" if self.group else topics


@dataclass(frozen=True, slots=True)
class Received:
    """A message as it came off the wire, not yet acknowledged."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    connection: int  # which connection delivered it: an ack goes back on that one only


class MqttFeed:
    """Batches of messages from the broker; :meth:`ack` each batch once it is stored.

    The connection is opened (and after a failure reopened, with exponential backoff and
    full jitter) by :meth:`batches`; a message received but never acknowledged is sent
    again by the broker on the next connection. With ``breakers`` the broker's circuit
    breaker (``breaker``) pauses the reconnects while it is open."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        rng: random.Random | None = None,
        breakers: BreakerBoard | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.connections = 0
        self.reconnects = 0
        self.attempts = 0  # connection attempts
        self.pauses = 0  # waits for an open circuit
        self.paused_seconds = 0.0
        if breakers is not None and breakers.probes != 1:
            raise ValueError(
                "the broker's probe is one connection, held open once it succeeds: a probe "
                f"batch of {breakers.probes} would never complete (probes must be 1)"
            )
        self.breaker: CircuitBreaker | None = (
            None if breakers is None else breakers.get(f"{settings.host}:{settings.port}")
        )
        self._client: aiomqtt.Client | None = None

    def _new_client(self) -> aiomqtt.Client:
        s = self.settings
        client = aiomqtt.Client(
            s.host, s.port, identifier=s.client_id, clean_session=False, keepalive=s.keepalive
        )
        client._client.manual_ack_set(True)  # PUBACK only from ack(), after the commit
        return client

    async def batches(self, *, until_idle: float | None = None) -> AsyncIterator[list[Received]]:
        """Yield up to ``batch_max`` messages at a time, as they arrive; stop after
        ``until_idle`` seconds without one (None: never)."""
        s = self.settings
        breaker = self.breaker
        delay = s.backoff_initial
        while True:
            if breaker is not None:
                await self._admit(breaker)
            connected = False
            try:
                self.attempts += 1
                async with self._new_client() as client:
                    connected = True
                    if breaker is not None:
                        breaker.record_success()
                    self.connections += 1
                    self._client = client
                    await client.subscribe(s.subscription, qos=1)
                    delay = s.backoff_initial
                    async for batch in self._read(client, until_idle):
                        yield batch
                    return
            except aiomqtt.MqttError as exc:
                self._client = None
                self.reconnects += 1
                if breaker is not None:
                    breaker.record_failure()  # refused, or the connection was lost
                if breaker is not None and breaker.state is not BreakerState.CLOSED:
                    pause = 0.0  # the circuit opened: its cool-down is the wait
                else:
                    pause = self.rng.uniform(0.0, delay)
                log.warning(
                    "MQTT broker %s:%d: %s; reconnecting in %.2f s",
                    s.host,
                    s.port,
                    exc,
                    pause,
                    extra={"code": "mqtt-reconnect"},
                )
                await self.sleep(pause)
                delay = min(delay * 2, s.backoff_max)
            except BaseException:
                if breaker is not None and not connected:
                    breaker.release()  # cancelled while connecting: no verdict
                raise
            finally:
                self._client = None

    async def _admit(self, breaker: CircuitBreaker) -> None:
        """Return when a connection attempt may go; pause while the circuit is open."""
        if breaker.allow():
            return
        log.warning(
            "MQTT feed paused: circuit %s is open, probe connect in %.1f s",
            breaker.name,
            breaker.retry_after(),
            extra={"endpoint": breaker.name, "code": "feed-paused"},
        )
        self.pauses += 1
        began = time.monotonic()
        try:
            await wait_until_allowed(breaker, sleep=self.sleep)
        finally:
            self.paused_seconds += time.monotonic() - began

    async def _read(
        self, client: aiomqtt.Client, until_idle: float | None
    ) -> AsyncIterator[list[Received]]:
        messages = client.messages
        while True:
            try:
                first = await asyncio.wait_for(anext(messages), timeout=until_idle)
            except TimeoutError:
                return
            batch = [self._received(first)]
            while len(batch) < self.settings.batch_max and len(messages):
                batch.append(self._received(await anext(messages)))
            yield batch

    def _received(self, message: aiomqtt.Message) -> Received:
        payload = message.payload
        data = payload if isinstance(payload, bytes) else str(payload).encode("utf-8")
        return Received(str(message.topic), data, message.mid, message.qos, self.connections)

    def ack(self, batch: Iterable[Received]) -> int:
        """PUBACK the messages (QoS 1) still on their connection; the count acknowledged.
        One from a connection since lost is not: the broker sends it again."""
        client = self._client
        done = 0
        for message in batch:
            if message.qos == 0:
                continue
            if client is None or message.connection != self.connections:
                continue
            if client._client.ack(message.mid, message.qos) == 0:  # MQTT_ERR_SUCCESS
                done += 1
        return done
