"""collect/mqtt.py: payload decoding, register totals to intervals (exact cases), and the
subscriber against the real Mosquitto (manual acknowledgement, persistent session)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import aiomqtt
import pytest

from brokers import MQTT_HOST, MQTT_PORT, require_mqtt, unique_id, unique_root
from meterledger.collect.mqtt import (
    MqttFeed,
    MqttPayloadError,
    MqttSettings,
    Received,
    decode_message,
    derive_intervals,
)
from meterledger.collect.profile import RegisterSample
from meterledger.core.time import epoch_of

ROOT = "meterledger/v1"
T0 = epoch_of(datetime(2025, 1, 10, tzinfo=UTC))
CH = "1.0.1.8.0.255"


def reading(**fields: object) -> dict[str, object]:
    row: dict[str, object] = {
        "meter_id": "M1",
        "channel": CH,
        "interval_end": "2025-01-10T00:15:00Z",
        "interval_seconds": 900,
        "value": "0.25",
        "unit": "kWh",
        "quality": "actual",
    }
    row.update(fields)
    return row


def test_json_object_and_array_decode_to_readings() -> None:
    one = decode_message(f"{ROOT}/readings/M1", json.dumps(reading()).encode())
    assert one.kind == "readings" and one.meter_id == "M1"
    (r,) = one.readings
    assert (r.meter_id, str(r.channel), r.interval_seconds, r.value) == ("M1", CH, 900, 250_000)
    assert r.interval_end == datetime(2025, 1, 10, 0, 15, tzinfo=UTC)
    rows = [reading(value=1.5), reading(interval_end="2025-01-10T00:30:00Z", value=2)]
    del rows[0]["meter_id"]  # the topic names the meter
    many = decode_message(f"{ROOT}/readings/M1", json.dumps(rows).encode())
    assert [x.value for x in many.readings] == [1_500_000, 2_000_000]


def test_canonical_csv_decodes_to_readings() -> None:
    text = (
        "meter_id,channel,interval_end,interval_seconds,value,unit,quality\n"
        f"M1,{CH},2025-01-10T00:15:00Z,900,250,Wh,estimated\n"
    )
    (r,) = decode_message(f"{ROOT}/readings/M1", text.encode()).readings
    assert r.value == 250_000 and r.quality.to_text() == "estimated"


def test_register_totals_decode() -> None:
    rows = [{"channel": CH, "read_at": "2025-01-10T00:00:00Z", "value": "12345.678", "unit": "kWh"}]
    msg = decode_message(f"{ROOT}/registers/M1", json.dumps(rows).encode())
    assert msg.registers == (RegisterSample("M1", CH, T0, 12_345_678_000),)
    csv_text = f"meter_id,channel,read_at,value,unit\nM1,{CH},2025-01-10T00:00:00Z,5,Wh\n"
    assert decode_message(f"{ROOT}/registers/M1", csv_text.encode()).registers[0].value == 5_000


@pytest.mark.parametrize(
    ("topic", "payload", "why"),
    [
        (f"{ROOT}/other/M1", json.dumps(reading()), "readings/METER"),
        (f"{ROOT}/readings/M1", "{not json", "Expecting"),
        (f"{ROOT}/readings/M1", "", "empty"),
        (f"{ROOT}/readings/M1", "a,b\n1,2\n", "header"),
        (f"{ROOT}/readings/M2", json.dumps(reading()), "topic"),
        (f"{ROOT}/readings/M1", json.dumps(reading(unit="kvarh")), "does not measure"),
        (f"{ROOT}/readings/M1", json.dumps(reading(value="1e3")), "plain decimal"),
        (f"{ROOT}/readings/M1", json.dumps(reading(value=True)), "value"),
        (f"{ROOT}/readings/M1", json.dumps([1, 2]), "objects"),
        (
            f"{ROOT}/registers/M1",
            json.dumps({"channel": CH, "read_at": "x", "value": 1, "unit": "Wh"}),
            "ISO",
        ),
    ],
)
def test_malformed_payloads_are_typed_errors_with_their_bytes(
    topic: str, payload: str, why: str
) -> None:
    with pytest.raises(MqttPayloadError, match=why) as caught:
        decode_message(topic, payload.encode())
    assert caught.value.payload == payload.encode() and caught.value.topic == topic


def totals(*values: int, step: int = 900, start: int = T0) -> list[RegisterSample]:
    return [RegisterSample("M1", CH, start + i * step, v) for i, v in enumerate(values)]


def test_consecutive_totals_give_their_differences() -> None:
    d = derive_intervals(reversed(totals(1_000, 1_250, 1_250, 2_000)))  # any order
    assert [(epoch_of(r.interval_end) - T0, r.value) for r in d.readings] == [
        (900, 250),
        (1800, 0),
        (2700, 750),
    ]
    assert d.findings == ()


def test_rollover_gives_the_corrected_delta() -> None:
    # a 5-digit kWh register: 99 999.9 kWh -> 0.4 kWh is 0.5 kWh of energy
    d = derive_intervals(totals(99_999_900_000, 400_000, 900_000))
    assert [r.value for r in d.readings] == [500_000, 500_000]
    assert [(f.code, f.read_at - T0) for f in d.findings] == [("register-rollover", 900)]


def test_reset_and_decrease_give_no_interval() -> None:
    d = derive_intervals(totals(5_000_000_000, 5_000_100_000, 20_000, 70_000))
    assert [(epoch_of(r.interval_end) - T0, r.value) for r in d.readings] == [
        (900, 100_000),
        (2700, 50_000),
    ]
    assert [(f.code, f.read_at - T0) for f in d.findings] == [("register-reset", 1800)]
    fall = derive_intervals(totals(5_000_000_000, 4_000_000_000))
    assert fall.readings == () and fall.findings[0].code == "register-decrease"


def test_gaps_off_grid_and_conflicts_are_findings() -> None:
    d = derive_intervals(
        [
            *totals(100, 200),
            RegisterSample("M1", CH, T0 + 2700, 400),
            RegisterSample("M1", CH, T0 + 3000, 450),
            RegisterSample("M1", CH, T0 + 900, 190),
        ]
    )
    assert [(r.value, epoch_of(r.interval_end) - T0) for r in d.readings] == [(90, 900)]
    assert [(f.code, f.read_at - T0) for f in d.findings] == [
        ("register-conflict", 900),
        ("register-gap", 2700),
        ("register-off-grid", 3000),
    ]


def test_channels_and_meters_are_derived_apart() -> None:
    other = [RegisterSample("M2", CH, T0 + 900, 1_000_000), RegisterSample("M2", CH, T0, 0)]
    d = derive_intervals([*totals(10, 30), *other])
    assert [(r.meter_id, r.value) for r in d.readings] == [("M1", 20), ("M2", 1_000_000)]


# -- against the broker -----------------------------------------------------------------


async def _send(root: str, n: int) -> None:
    async with aiomqtt.Client(MQTT_HOST, MQTT_PORT) as client:
        for i in range(n):
            await client.publish(f"{root}/readings/M{i}", f"payload {i}".encode(), qos=1)


async def _take(feed: MqttFeed, *, ack: bool) -> list[Received]:
    got: list[Received] = []
    async for batch in feed.batches(until_idle=1.0):
        got += batch
        if ack:
            assert feed.ack(batch) == len(batch)
    return got


def test_unacknowledged_messages_come_back_acknowledged_ones_do_not() -> None:
    require_mqtt()
    root = unique_root()
    settings = MqttSettings(
        host=MQTT_HOST, port=MQTT_PORT, client_id=unique_id("ack"), group=None, root=root
    )

    async def scenario() -> tuple[list[Received], list[Received], list[Received]]:
        await _take(MqttFeed(settings), ack=True)  # makes the persistent session
        await _send(root, 5)  # while nobody is connected
        unacked = await _take(MqttFeed(settings), ack=False)
        again = await _take(MqttFeed(settings), ack=True)
        after = await _take(MqttFeed(settings), ack=True)
        return unacked, again, after

    unacked, again, after = asyncio.run(scenario())
    expected = sorted(f"payload {i}".encode() for i in range(5))
    assert sorted(m.payload for m in unacked) == expected
    assert sorted(m.payload for m in again) == expected  # redelivered: never acknowledged
    assert after == []


def test_the_feed_reconnects_with_backoff_when_the_broker_is_away() -> None:
    settings = MqttSettings(
        host="127.0.0.1",
        port=1,
        client_id=unique_id("away"),
        backoff_initial=0.01,
        backoff_max=0.02,
    )
    feed = MqttFeed(settings)

    async def scenario() -> None:
        async for _ in feed.batches(until_idle=0.1):
            raise AssertionError("no broker, no message")

    with pytest.raises(TimeoutError):
        asyncio.run(asyncio.wait_for(scenario(), timeout=0.5))
    assert feed.reconnects >= 3 and feed.connections == 0
