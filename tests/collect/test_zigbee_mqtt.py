"""The Zigbee gateway over MQTT: the simulator's MQTT gateway and the collector's client on
the real Mosquitto, each test under a topic root of its own."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import aiomqtt
import pytest

from brokers import MQTT_HOST, MQTT_PORT, Broker, free_port, require_mqtt, unique_id, unique_root
from meterledger.codec.zigbee import (
    METERING_CLUSTER,
    Direction,
    GetProfile,
    GetProfileResponse,
    IntervalChannel,
    ReadAttributes,
    ZclFrame,
    decode_frame,
    encode_frame,
)
from meterledger.collect.breaker import BreakerBoard, BreakerSettings, BreakerState
from meterledger.collect.ledger import HandoffCounts
from meterledger.collect.zigbee import (
    MqttTransport,
    ZigbeeMqttClient,
    ZigbeeResult,
    collect_meters,
)
from meterledger.collect.zigbee_mqtt import request_topic, response_topic
from meterledger.core.reading import Reading
from meterledger.simulate import zigbee_mqtt_gateway as sim
from meterledger.simulate.zigbee_gateway import GatewayConfig, eui64_of
from meterledger.simulate.zigbee_mqtt_gateway import ZigbeeMqttGateway
from zigbee_support import NOW, MemoryLedger, expected, refs

LATEST_END = NOW // 900 * 900


def mqtt_gateway(root: str, gateway_id: str, **options: object) -> ZigbeeMqttGateway:
    config = GatewayConfig(
        meters=options.pop("meters", 3),  # type: ignore[arg-type]
        port=0,
        clock=lambda: NOW,
        **options,  # type: ignore[arg-type]
    )
    return ZigbeeMqttGateway(
        config, host=MQTT_HOST, port=MQTT_PORT, gateway_id=gateway_id, root=root
    )


async def collect(
    gateway: ZigbeeMqttGateway, ledger: MemoryLedger, meters: int, timeout: float = 2.0
) -> dict[str, ZigbeeResult]:
    transport = MqttTransport(MQTT_HOST, MQTT_PORT, gateway.gateway_id, root=gateway.root)
    done = await collect_meters(
        MQTT_HOST, MQTT_PORT, refs(meters), ledger, timeout=timeout, transport=transport
    )
    return {r.meter_id: r for r in done}


def test_topics_are_the_simulator_s() -> None:
    eui = eui64_of(5)
    assert request_topic("r/x", "gw1", eui) == sim.request_topic("r/x", "gw1", eui)
    assert response_topic("r/x", "gw1", eui) == sim.response_topic("r/x", "gw1", eui)
    assert request_topic("r", "gw1", eui) == "r/gw1/req/024d4c5a00000005"
    with pytest.raises(ValueError, match="one MQTT topic level"):
        MqttTransport("h", 1883, "gw/1")
    with pytest.raises(ValueError, match="one MQTT topic level"):
        ZigbeeMqttClient("h", 1883, "gw+")
    assert MqttTransport("h", 1883, "dcu-17").key == "mqtt:dcu-17"


def test_the_payload_is_the_envelope_without_its_length() -> None:
    """A request made by hand, as a third-party gateway's client would, is answered on the
    response topic with exactly the documented octets."""
    require_mqtt()
    root, gateway_id = unique_root(), unique_id("gw")
    request = ZclFrame.of(
        GetProfile(IntervalChannel.CONSUMPTION_DELIVERED, 0, 3),
        sequence_number=42,
        direction=Direction.CLIENT_TO_SERVER,
    )
    eui = eui64_of(1)

    async def scenario() -> tuple[str, bytes, dict[str, int]]:
        async with (
            mqtt_gateway(root, gateway_id) as gateway,
            aiomqtt.Client(MQTT_HOST, MQTT_PORT) as client,
        ):
            await client.subscribe(f"{root}/{gateway_id}/rsp/#", qos=1)
            payload = eui + b"\x01\x07\x02" + encode_frame(request)
            await client.publish(f"{root}/{gateway_id}/req/{eui.hex()}", payload, qos=1)
            message = await asyncio.wait_for(anext(client.messages), 5)
            assert isinstance(message.payload, bytes)
            return str(message.topic), message.payload, dict(gateway.stats)

    topic, payload, stats = asyncio.run(scenario())
    assert topic == f"{root}/{gateway_id}/rsp/024d4c5a00000001"
    assert payload[:8] == eui and payload[8] == 1
    assert int.from_bytes(payload[9:11], "big") == METERING_CLUSTER
    answer = decode_frame(payload[11:])
    assert answer.header.sequence_number == 42
    assert isinstance(answer.command, GetProfileResponse)
    assert answer.command.end_time != 0 and len(answer.command.intervals) == 3
    assert stats == {"requests": 1, "responses": 1, "unanswered": 0, "dropped": 0}


def test_collect_over_mqtt_reads_what_the_simulator_holds_once() -> None:
    require_mqtt()
    root, gateway_id = unique_root(), unique_id("gw")
    ledger = MemoryLedger()

    async def scenario() -> None:
        async with mqtt_gateway(root, gateway_id, dark=frozenset({1})) as gateway:
            started = time.monotonic()
            first = await collect(gateway, ledger, 3, timeout=0.5)
            assert time.monotonic() - started < 5
            dark = first["MTR-00002"]
            assert not dark.ok and dark.code == "E04" and "no answer" in dark.message
            for index in (0, 2):
                result = first[f"MTR-{index + 1:05d}"]
                assert result.ok and result.intervals == 2 * 96
                assert result.handoff.accepted == 2 * 96
                assert ledger.series(f"MTR-{index + 1:05d}") == expected(gateway, index)
            assert ledger.series("MTR-00002") == []

            again = await collect(gateway, ledger, 3, timeout=0.5)  # nothing twice
            for index in (0, 2):
                result = again[f"MTR-{index + 1:05d}"]
                assert result.ok and result.intervals == 0 and result.handoff.accepted == 0
            assert len(ledger.held) == 2 * 2 * 96
            assert gateway.stats["unanswered"] >= 2  # the dark meter, both runs

    asyncio.run(scenario())


def test_mqtt_requests_pass_the_gateway_s_breaker() -> None:
    require_mqtt()
    root, gateway_id = unique_root(), unique_id("gw")
    clock = [0.0]
    breakers = BreakerBoard.of(
        BreakerSettings(threshold=2, cooldown=30.0), feed="zigbee", clock=lambda: clock[0]
    )

    async def scenario() -> tuple[ZigbeeResult, ...]:
        async with mqtt_gateway(root, gateway_id, meters=4) as gateway:
            gateway.dark = {0, 1, 2, 3}
            transport = MqttTransport(MQTT_HOST, MQTT_PORT, gateway_id, root=root)
            return await collect_meters(
                MQTT_HOST, MQTT_PORT, refs(4), MemoryLedger(), timeout=0.3, concurrency=1,
                transport=transport, breakers=breakers, breaker_wait=0.0,
            )  # fmt: skip

    results = asyncio.run(scenario())
    assert [r.code for r in results] == ["E04", "E04", "E03", "E03"]
    breaker = breakers.get(f"mqtt:{gateway_id}")
    assert breaker.name == f"zigbee/mqtt:{gateway_id}"
    assert breaker.state is BreakerState.OPEN and breaker.opened == 1


def test_an_unreachable_broker_fails_every_meter_e01() -> None:
    async def scenario() -> tuple[ZigbeeResult, ...]:
        transport = MqttTransport("127.0.0.1", 9, "gw1")
        return await collect_meters(
            "127.0.0.1", 9, refs(2), MemoryLedger(), timeout=0.5, transport=transport
        )

    results = asyncio.run(scenario())
    assert [r.code for r in results] == ["E01", "E01"]
    assert "MQTT broker 127.0.0.1:9" in results[0].message


def test_read_attributes_over_the_client() -> None:
    require_mqtt()
    root, gateway_id = unique_root(), unique_id("gw")

    async def scenario() -> object:
        async with mqtt_gateway(root, gateway_id):
            client = ZigbeeMqttClient(MQTT_HOST, MQTT_PORT, gateway_id, root=root, timeout=2)
            async with client:
                return await client.request(eui64_of(0), ReadAttributes((0x0301, 0x0302)))

    answer = asyncio.run(scenario())
    values = [r.value for r in answer.records]  # type: ignore[attr-defined]
    assert values == [1, 1000]  # Multiplier 1, Divisor 1000: one unit is 1 Wh


class StoppingLedger(MemoryLedger):
    """Stops the broker when the first meter is delivered, and starts it again later."""

    def __init__(self, broker: Broker) -> None:
        super().__init__()
        self.broker = broker
        self.restarter: threading.Thread | None = None

    def deliver(self, readings: Sequence[Reading]) -> HandoffCounts:
        if self.restarter is None:
            self.broker.stop()

            def restart() -> None:
                time.sleep(0.6)
                self.broker.start()

            self.restarter = threading.Thread(target=restart, daemon=True)
            self.restarter.start()
        return super().deliver(readings)


def test_a_broker_restarted_mid_run_fails_meters_not_readings(tmp_path: Path) -> None:
    """The broker goes away after the first meter: the meters asked meanwhile fail (E01,
    E02, or E04 for a request the gateway never saw), nothing half-read is stored, and once
    it is back a second run reads the rest, each interval once."""
    if shutil.which("mosquitto") is None:
        pytest.fail("mosquitto is not installed (this test runs a private broker)")
    broker = Broker(tmp_path, free_port())
    broker.start()
    ledger = StoppingLedger(broker)
    config = GatewayConfig(meters=4, port=0, clock=lambda: NOW, delay=0.01)
    gateway = ZigbeeMqttGateway(
        config, host="127.0.0.1", port=broker.port, gateway_id="gw", root="t", retry=0.1
    )
    transport = MqttTransport("127.0.0.1", broker.port, "gw", root="t")

    async def scenario() -> tuple[tuple[ZigbeeResult, ...], tuple[ZigbeeResult, ...]]:
        async with gateway:
            first = await collect_meters(
                "", 0, refs(4), ledger, timeout=0.5, concurrency=1, transport=transport
            )
            assert ledger.restarter is not None
            await asyncio.to_thread(ledger.restarter.join, 15)
            await asyncio.sleep(0.5)  # the gateway reconnects every 0.1 s
            second = await collect_meters(
                "", 0, refs(4), ledger, timeout=2.0, concurrency=1, transport=transport
            )
            return first, second

    try:
        first, second = asyncio.run(scenario())
    finally:
        broker.stop()
    assert first[0].ok and first[0].intervals == 2 * 96
    failed = [r.code for r in first if not r.ok]
    assert failed and set(failed) <= {"E01", "E02", "E04"}, [r.message for r in first]
    assert all(r.ok for r in second), [r.message for r in second]
    assert second[0].intervals == 0  # already stored: no second copy
    assert sum(r.handoff.duplicates for r in (*first, *second)) == 0
    for index in range(4):
        assert ledger.series(f"MTR-{index + 1:05d}") == expected(gateway, index)
