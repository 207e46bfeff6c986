"""simulate/mqtt_publisher.py: the messages of a plan (exact and decodable by the
subscriber's codec), register totals that add up to the interval readings, and a real
publish to Mosquitto."""

from __future__ import annotations

import asyncio
import json

import aiomqtt
import pytest

from brokers import MQTT_HOST, MQTT_PORT, require_mqtt, unique_root
from meterledger.collect.mqtt import decode_message, derive_intervals
from meterledger.simulate.mqtt_publisher import (
    PublishPlan,
    meter_ids,
    publish,
    reading_messages,
    register_messages,
)

START = 1_736_467_200  # 2025-01-10T00:00:00Z


def test_one_message_per_meter_and_day_decodes_to_a_full_day() -> None:
    plan = PublishPlan(meters=2, days=3, start=START)
    messages = reading_messages(plan)
    assert [m.topic for m in messages] == [
        f"meterledger/v1/readings/{m}" for m in meter_ids(2) for _ in range(3)
    ]
    decoded = [decode_message(m.topic, m.payload) for m in messages]
    assert all(len(d.readings) == 96 for d in decoded)
    first = decoded[0].readings
    assert int(first[0].interval_end.timestamp()) == START + 900
    assert int(decoded[2].readings[-1].interval_end.timestamp()) == START + 3 * 86_400
    assert all(r.value >= 0 for d in decoded for r in d.readings)
    assert reading_messages(plan) == messages  # deterministic from the seed
    assert reading_messages(PublishPlan(meters=2, days=3, start=START, seed=8)) != messages


def test_register_totals_difference_to_the_same_intervals() -> None:
    plan = PublishPlan(meters=2, days=2, start=START, register_start=99_999_000_000)
    readings = [
        r for m in reading_messages(plan) for r in decode_message(m.topic, m.payload).readings
    ]
    totals = [
        t for m in register_messages(plan) for t in decode_message(m.topic, m.payload).registers
    ]
    assert len(totals) == 2 * (2 * 96 + 1)  # the start instant once, then every interval
    assert totals[0].value == 99_999_000_000
    derived = derive_intervals(totals)
    assert [(r.meter_id, r.interval_end, r.value) for r in derived.readings] == [
        (r.meter_id, r.interval_end, r.value) for r in readings
    ]
    assert {f.code for f in derived.findings} == {"register-rollover"}  # 99 999 kWh wraps


def test_a_plan_is_checked() -> None:
    with pytest.raises(ValueError, match="midnight"):
        PublishPlan(meters=1, days=1, start=START + 60)
    with pytest.raises(ValueError, match="at least one"):
        PublishPlan(meters=0, days=1, start=START)


def test_publish_reaches_a_subscriber_at_qos_1() -> None:
    require_mqtt()
    root = unique_root()
    messages = reading_messages(PublishPlan(meters=2, days=1, start=START, root=root))

    async def scenario() -> list[tuple[str, bytes, int]]:
        async with aiomqtt.Client(MQTT_HOST, MQTT_PORT) as sub:
            await sub.subscribe(f"{root}/#", qos=1)
            assert await publish(messages, host=MQTT_HOST, port=MQTT_PORT) == 2
            got = []
            async for m in sub.messages:
                assert isinstance(m.payload, bytes)
                got.append((str(m.topic), m.payload, m.qos))
                if len(got) == 2:
                    return got
        return got

    got = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert got == [(m.topic, m.payload, 1) for m in messages]
    assert json.loads(got[0][1])[0]["meter_id"] == "MTR-00001"
