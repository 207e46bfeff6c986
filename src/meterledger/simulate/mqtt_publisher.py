"""An MQTT publisher of simulated meters: interval readings, or running register totals as
home-automation bridges publish them, at QoS 1 (topics and payloads: docs/mqtt.md).

Meter *i* is ``MTR-{i+1:05d}`` (as the DLMS simulator numbers them), a household load shape
(:func:`~meterledger.simulate.loadshapes.profile`) on channel 1.0.1.8.0.255. Messages are
built first, by pure functions of the plan, so a test knows exactly what went out; one
message carries one meter's day.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiomqtt

from meterledger.core.time import iso_utc
from meterledger.core.units import Unit, text_from_milli
from meterledger.simulate.loadshapes import TYPICAL_DAILY_KWH, LoadKind, profile

__all__ = [
    "CHANNEL",
    "TOPIC_ROOT",
    "MqttMessage",
    "PublishPlan",
    "meter_ids",
    "publish",
    "reading_message",
    "reading_messages",
    "register_messages",
]

TOPIC_ROOT = "meterledger/v1"  # the contract's root (collect.mqtt.TOPIC_ROOT)
CHANNEL = "1.0.1.8.0.255"
_DAY = 86_400


@dataclass(frozen=True, slots=True)
class MqttMessage:
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class PublishPlan:
    """What to publish. ``start`` is the UTC epoch (midnight) the first day begins at;
    ``register_start`` the first register total in mWh (None: drawn per meter)."""

    meters: int
    days: int
    start: int
    interval_seconds: int = 900
    seed: int = 7
    root: str = TOPIC_ROOT
    tz: str = "UTC"
    register_start: int | None = None

    def __post_init__(self) -> None:
        if self.meters < 1 or self.days < 1:
            raise ValueError("a plan publishes at least one meter for at least one day")
        if self.start % _DAY or _DAY % self.interval_seconds:
            raise ValueError("start is a UTC midnight and interval_seconds divides a day")


def meter_ids(meters: int) -> list[str]:
    return [f"MTR-{i + 1:05d}" for i in range(meters)]


def _energy(plan: PublishPlan) -> list[list[int]]:
    """Every meter's interval energy (mWh) over the whole plan, from the plan's seed."""
    rng = random.Random(plan.seed)
    low, high = TYPICAL_DAILY_KWH[LoadKind.RESIDENTIAL]
    per_day = _DAY // plan.interval_seconds
    return [
        profile(
            LoadKind.RESIDENTIAL,
            start=plan.start + plan.interval_seconds,
            intervals=plan.days * per_day,
            interval_seconds=plan.interval_seconds,
            tz=plan.tz,
            daily_kwh=rng.uniform(low, high),
            rng=rng,
        )
        for _ in range(plan.meters)
    ]


def _json(rows: Sequence[Mapping[str, object]]) -> bytes:
    return json.dumps(list(rows), separators=(",", ":")).encode("utf-8")


def reading_message(
    root: str, meter_id: str, first_end: int, interval_seconds: int, energy: Sequence[int]
) -> MqttMessage:
    """One JSON array on ``{root}/readings/{meter_id}``: the intervals ending at
    ``first_end``, ``first_end + interval_seconds``, ... with ``energy`` (mWh) each."""
    rows = [
        {
            "meter_id": meter_id,
            "channel": CHANNEL,
            "interval_end": iso_utc(first_end + i * interval_seconds),
            "interval_seconds": interval_seconds,
            "value": text_from_milli(value, Unit.KWH),
            "unit": "kWh",
            "quality": "actual",
        }
        for i, value in enumerate(energy)
    ]
    return MqttMessage(f"{root}/readings/{meter_id}", _json(rows))


def reading_messages(plan: PublishPlan) -> list[MqttMessage]:
    """One JSON array per meter and day on ``{root}/readings/{meter_id}``."""
    per_day = _DAY // plan.interval_seconds
    step = plan.interval_seconds
    out: list[MqttMessage] = []
    for meter_id, energy in zip(meter_ids(plan.meters), _energy(plan), strict=True):
        for day in range(plan.days):
            first = day * per_day
            out.append(
                reading_message(
                    plan.root,
                    meter_id,
                    plan.start + (first + 1) * step,
                    step,
                    energy[first : first + per_day],
                )
            )
    return out


def register_messages(plan: PublishPlan) -> list[MqttMessage]:
    """Running totals at every grid instant (the plan's start included, so a day gives
    its intervals whole), one JSON array per meter and day on ``{root}/registers/{id}``.
    A register of 5 kWh digits wraps at 100 000 kWh, as a bridge's meter does."""
    rng = random.Random(plan.seed + 1)
    modulus = 100_000 * 1_000_000
    per_day = _DAY // plan.interval_seconds
    out: list[MqttMessage] = []
    for meter_id, energy in zip(meter_ids(plan.meters), _energy(plan), strict=True):
        total = plan.register_start
        if total is None:
            total = rng.randrange(1_000_000_000, 20_000_000_000, 1_000)
        totals = [total]
        for value in energy:
            totals.append((totals[-1] + value) % modulus)
        for day in range(plan.days):
            first = 0 if day == 0 else day * per_day + 1
            rows = [
                {
                    "meter_id": meter_id,
                    "channel": CHANNEL,
                    "read_at": iso_utc(plan.start + i * plan.interval_seconds),
                    "value": text_from_milli(totals[i], Unit.KWH),
                    "unit": "kWh",
                }
                for i in range(first, (day + 1) * per_day + 1)
            ]
            out.append(MqttMessage(f"{plan.root}/registers/{meter_id}", _json(rows)))
    return out


async def publish(
    messages: Sequence[MqttMessage],
    *,
    host: str = "127.0.0.1",
    port: int = 1883,
    client_id: str = "",
) -> int:
    """Publish at QoS 1, each message confirmed by the broker (PUBACK) before the next;
    the number published."""
    async with aiomqtt.Client(host, port, identifier=client_id or None) as client:
        for message in messages:
            await client.publish(message.topic, message.payload, qos=1)
    return len(messages)
