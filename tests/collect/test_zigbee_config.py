"""The Zigbee fleet file: gateways, meters, options, and errors that name the bad key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meterledger.collect.zigbee import MqttTransport, TcpTransport
from meterledger.collect.zigbee_config import load_zigbee_fleet, parse_zigbee_fleet
from meterledger.core.errors import ConfigError

EXAMPLE = """
options:
  timeout: 2.5
  periods: 48
  concurrency: 4
  attempts: 3
  breaker_threshold: 3
  breaker_failure_rate: 0.25
  breaker_min_calls: 8
  breaker_window: 30
  breaker_cooldown: 10
  breaker_probes: 2
  breaker_wait: 12
gateways:
  - host: 10.0.0.7
    port: 7702
    meters:
      - {eui64: 024d4c5a00000000, meter_id: MTR-00001}
      - {eui64: "02:4D:4C:5A:00:00:00:01", meter_id: MTR-00002, endpoint: 2}
  - transport: mqtt
    host: broker.example
    gateway_id: dcu-17
    meters:
      - {eui64: 024d4c5a00000002, meter_id: MTR-00003}
"""


def test_the_example_file(tmp_path: Path) -> None:
    path = tmp_path / "zigbee.yaml"
    path.write_text(EXAMPLE, "utf-8")
    fleet = load_zigbee_fleet(path)
    tcp, mqtt = fleet.gateways
    assert tcp.transport == TcpTransport("10.0.0.7", 7702) and tcp.key == "10.0.0.7:7702"
    assert mqtt.transport == MqttTransport("broker.example", 1883, "dcu-17")
    assert mqtt.key == "mqtt:dcu-17"
    assert [(m.eui64.hex(), m.meter_id, m.endpoint) for m in fleet.meters] == [
        ("024d4c5a00000000", "MTR-00001", 1),
        ("024d4c5a00000001", "MTR-00002", 2),
        ("024d4c5a00000002", "MTR-00003", 1),
    ]
    o = fleet.options
    assert (o.timeout, o.periods, o.concurrency, o.breaker_wait) == (2.5, 48, 4, 12.0)
    assert o.attempts == 3
    b = o.breaker
    assert (b.threshold, b.failure_rate, b.min_calls, b.window) == (3, 0.25, 8, 30.0)
    assert (b.cooldown, b.probes) == (10.0, 2)


def test_defaults() -> None:
    fleet = parse_zigbee_fleet(
        {"gateways": [{"meters": [{"eui64": "024d4c5a00000000", "meter_id": "M1"}]}]}
    )
    assert fleet.gateways[0].transport == TcpTransport("127.0.0.1", 7702)
    assert fleet.options.timeout == 5.0 and fleet.options.breaker.cooldown == 60.0
    assert fleet.options.breaker_wait is None


METER = {"eui64": "024d4c5a00000000", "meter_id": "M1"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"gateway": []}, "f.yaml: unknown keys ['gateway']"),
        ({"gateways": []}, "f.yaml: gateways: a non-empty list"),
        ({"gateways": [{"meters": [METER]}], "options": {"timout": 1}}, "options: unknown keys"),
        (
            {"gateways": [{"meters": [METER]}], "options": {"timeout": "soon"}},
            "f.yaml: options.timeout: expected a number, got 'soon'",
        ),
        (
            {"gateways": [{"meters": [METER]}], "options": {"periods": 300}},
            "f.yaml: options.periods: 1..255, got 300",
        ),
        (
            {"gateways": [{"meters": [METER]}], "options": {"attempts": 6}},
            "f.yaml: options.attempts: 1..5, got 6",
        ),
        (
            {"gateways": [{"meters": [METER]}], "options": {"breaker_failure_rate": 1.5}},
            "f.yaml: options: a failure rate limit is in [0, 1)",
        ),
        ({"gateways": [{"meters": []}]}, "f.yaml: gateways[0].meters: a non-empty list"),
        (
            {"gateways": [{"transport": "udp", "meters": [METER]}]},
            "f.yaml: gateways[0].transport: one of tcp, mqtt, got 'udp'",
        ),
        (
            {"gateways": [{"transport": "mqtt", "meters": [METER]}]},
            "f.yaml: gateways[0]: gateway_id is required for transport mqtt",
        ),
        (
            {"gateways": [{"transport": "mqtt", "gateway_id": "a/b", "meters": [METER]}]},
            "f.yaml: gateways[0]: gateway id 'a/b' is one MQTT topic level",
        ),
        (
            {"gateways": [{"gateway_id": "g", "meters": [METER]}]},
            "f.yaml: gateways[0]: unknown keys ['gateway_id']",
        ),
        (
            {"gateways": [{"port": 70000, "meters": [METER]}]},
            "f.yaml: gateways[0].port: 70000 out of range",
        ),
        (
            {"gateways": [{"meters": [METER, {"eui64": "024d4c5a00000001", "meter": "x"}]}]},
            "f.yaml: gateways[0].meters[1]: unknown keys ['meter']",
        ),
        (
            {"gateways": [{"meters": [{"eui64": "0102", "meter_id": "M1"}]}]},
            "f.yaml: gateways[0].meters[0].eui64: an EUI64 is 16 hex digits",
        ),
        (
            {"gateways": [{"meters": [{"eui64": "024d4c5a00000000"}]}]},
            "f.yaml: gateways[0].meters[0]: meter_id is required",
        ),
        (
            {"gateways": [{"meters": [{**METER, "endpoint": 0}]}]},
            "f.yaml: gateways[0].meters[0].endpoint: 1..240",
        ),
        (
            {"gateways": [{"meters": [METER, {**METER, "meter_id": "M2"}]}]},
            "f.yaml: gateways[0].meters[1].eui64: 024d4c5a00000000 is also meters[0]",
        ),
        (
            {"gateways": [{"meters": [METER]}, {"port": 7703, "meters": [METER]}]},
            "f.yaml: gateways[1].meters[0].meter_id: M1 is also gateways[0].meters[0]",
        ),
        (
            {"gateways": [{"meters": [METER]}, {"meters": [{**METER, "meter_id": "M2"}]}]},
            "f.yaml: gateways[1]: 127.0.0.1:7702 is also gateways[0]",
        ),
    ],
)
def test_errors_name_the_path_of_the_bad_key(data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_zigbee_fleet(data, "f.yaml")
    assert message in str(caught.value)


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("gateways: [", "utf-8")
    with pytest.raises(ConfigError, match="cannot read"):
        load_zigbee_fleet(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_zigbee_fleet(tmp_path / "missing.yaml")
