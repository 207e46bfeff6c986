"""The simulator's Zigbee gateway on MQTT (the real Mosquitto) and ``simulate zigbee --mqtt``."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import aiomqtt
import pytest
from typer.testing import CliRunner

from brokers import MQTT_HOST, MQTT_PORT, require_mqtt, unique_id, unique_root
from meterledger.cli.app import app
from meterledger.codec.zigbee import (
    DefaultResponse,
    Direction,
    ReadAttributes,
    ZclFrame,
    ZclStatus,
    decode_frame,
    encode_frame,
)
from meterledger.core.errors import ConfigError
from meterledger.simulate.zigbee_gateway import GatewayConfig, eui64_of
from meterledger.simulate.zigbee_mqtt_gateway import ZigbeeMqttGateway

runner = CliRunner()


def _request(sequence: int) -> bytes:
    frame = ZclFrame.of(
        ReadAttributes((0x0302,)), sequence_number=sequence, direction=Direction.CLIENT_TO_SERVER
    )
    return encode_frame(frame)


def test_dark_meters_unknown_eui64s_and_strays() -> None:
    require_mqtt()
    root, gateway_id = unique_root(), unique_id("gw")
    base = f"{root}/{gateway_id}"

    async def scenario() -> tuple[list[tuple[str, bytes]], dict[str, int]]:
        config = GatewayConfig(meters=2, port=0, dark=frozenset({1}))
        gateway = ZigbeeMqttGateway(
            config, host=MQTT_HOST, port=MQTT_PORT, gateway_id=gateway_id, root=root
        )
        async with gateway, aiomqtt.Client(MQTT_HOST, MQTT_PORT) as client:
            await client.subscribe(f"{base}/rsp/+", qos=1)
            stranger = eui64_of(50)
            head = b"\x01\x07\x02"
            await client.publish(f"{base}/req/{eui64_of(1).hex()}", eui64_of(1) + head
                                 + _request(1), qos=1)  # fmt: skip
            await client.publish(f"{base}/req/{eui64_of(0).hex()}", b"short", qos=1)
            await client.publish(f"{base}/req/{eui64_of(1).hex()}", eui64_of(0) + head
                                 + _request(2), qos=1)  # fmt: skip
            await client.publish(f"{base}/req/{stranger.hex()}", stranger + head
                                 + _request(3), qos=1)  # fmt: skip
            message = await asyncio.wait_for(anext(client.messages), 5)
            assert isinstance(message.payload, bytes)
            await asyncio.sleep(0.2)  # nothing else comes
            assert len(client.messages) == 0
            return [(str(message.topic), message.payload)], dict(gateway.stats)

    answers, stats = asyncio.run(scenario())
    ((topic, payload),) = answers  # only the stranger is answered: unsupported cluster
    assert topic == f"{base}/rsp/{eui64_of(50).hex()}"
    reply = decode_frame(payload[11:])
    assert isinstance(reply.command, DefaultResponse)
    assert reply.command.status == ZclStatus.UNSUPPORTED_CLUSTER
    assert reply.header.sequence_number == 3
    assert stats == {"requests": 2, "responses": 1, "unanswered": 1, "dropped": 2}


def test_gateway_id_and_delay_are_checked() -> None:
    with pytest.raises(ValueError, match="one topic level"):
        ZigbeeMqttGateway(GatewayConfig(meters=1), gateway_id="a/b")
    with pytest.raises(ConfigError, match="delay"):
        GatewayConfig(meters=1, delay=-1)


def test_simulate_zigbee_mqtt_serves_and_reports_its_topics() -> None:
    require_mqtt()
    root, gateway_id = unique_root(), unique_id("gw")
    got: list[bytes] = []

    async def ask() -> None:
        async with aiomqtt.Client(MQTT_HOST, MQTT_PORT) as client:
            await client.subscribe(f"{root}/{gateway_id}/rsp/+", qos=1)
            deadline = time.monotonic() + 10
            while not got and time.monotonic() < deadline:  # until the gateway is up
                request = eui64_of(0) + b"\x01\x07\x02" + _request(9)
                await client.publish(f"{root}/{gateway_id}/req/{eui64_of(0).hex()}", request,
                                     qos=1)  # fmt: skip
                try:
                    message = await asyncio.wait_for(anext(client.messages), 0.5)
                except TimeoutError:
                    continue
                assert isinstance(message.payload, bytes)
                got.append(message.payload)

    asker = threading.Thread(target=lambda: asyncio.run(ask()), daemon=True)
    asker.start()
    args = ["simulate", "zigbee", "--mqtt", "--mqtt-host", MQTT_HOST, "--mqtt-port",
            str(MQTT_PORT), "--gateway-id", gateway_id, "--mqtt-root", root, "--meters", "2",
            "--duration", "1.5", "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    asker.join(10)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["transport"] == "mqtt" and summary["gateway_id"] == gateway_id
    assert summary["request_topic"] == f"{root}/{gateway_id}/req/{{eui64}}"
    assert summary["response_topic"] == f"{root}/{gateway_id}/rsp/{{eui64}}"
    assert "host" not in summary and summary["eui64"]["MTR-00002"] == eui64_of(1).hex()
    assert got and decode_frame(got[0][11:]).command.records[0].value == 1000  # type: ignore[attr-defined]


def test_simulate_zigbee_mqtt_refuses_a_bad_gateway_id_and_a_missing_broker() -> None:
    bad = runner.invoke(app, ["simulate", "zigbee", "--mqtt", "--gateway-id", "a#"])
    assert bad.exit_code == 2 and "one topic level" in bad.output
    gone = runner.invoke(app, ["simulate", "zigbee", "--mqtt", "--mqtt-port", "9",
                               "--duration", "1"])  # fmt: skip
    assert gone.exit_code == 2 and "MQTT broker 127.0.0.1:9" in gone.output
