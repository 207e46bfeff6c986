"""Fault test (issue 7): ``meterledger zigbee collect`` killed with SIGKILL part-way and run
again stores every interval exactly once, over TCP and over MQTT.

The simulated gateway runs in the test process (a thread of its own, on a fixed clock, a
little slow to answer) so that the test knows every interval the meters hold; the
collector runs as a subprocess of the ``meterledger`` entry point on a SQLite file. The
checks are those of ``test_restarts.py`` (its helpers are imported): the stored values
equal the simulator's, no reading has a second version, the audited batches accept
exactly the stored count, and ``meterledger audit verify`` passes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from brokers import MQTT_HOST, MQTT_PORT, require_mqtt, unique_id, unique_root
from faults.test_restarts import assert_exactly_once, command, kill, stored_count, wait_for
from meterledger.simulate.zigbee_gateway import GatewayConfig, ZigbeeGateway, eui64_of
from meterledger.simulate.zigbee_mqtt_gateway import ZigbeeMqttGateway
from meterledger.store import open_store
from support import add_meter
from zigbee_support import NOW, InThread

METERS = [f"ZFL-{n:05d}" for n in range(1, 7)]
Row = tuple[str, int, int]


def new_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'zigbee-faults.db'}"
    store = open_store(url)
    try:
        for meter in METERS:
            add_meter(store, meter, capacity=1_000_000_000)
    finally:
        store.close()
    return url


def config(delay: float) -> GatewayConfig:
    """96 intervals a channel, 8 a request: 1 + 13 + 13 requests a meter, ``delay`` s each."""
    return GatewayConfig(meters=len(METERS), port=0, tz="UTC", clock=lambda: NOW, delay=delay)


def expected(gateway: Any) -> list[Row]:
    rows: list[Row] = []
    for index, meter_id in enumerate(METERS):
        meter = gateway.meter(index)
        factor = meter.multiplier * 1_000_000 // meter.divisor
        for entry in meter.entries:
            for units in (entry.delivered, entry.received):
                if units is not None:
                    rows.append((meter_id, entry.interval_end, units * factor))
    return rows


def collect_args(url: str, transport: list[str]) -> list[str]:
    args = ["zigbee", "collect", *transport, "--periods", "8", "--concurrency", "2"]
    args += ["--timeout", "2", "--db", url, "--json"]
    for index, meter_id in enumerate(METERS):
        args += ["--meter", f"{eui64_of(index).hex()}={meter_id}"]
    return command(*args)


def kill_then_rerun(url: str, args: list[str], rows: list[Row]) -> dict[str, Any]:
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:  # a meter's readings are one batch: wait for the first meters to be stored
        wait_for(lambda: stored_count(url) >= 2 * 96, 60, "the first meters to be stored")
    finally:
        kill(first)
    at_kill = stored_count(url)
    assert 0 < at_kill < len(rows), at_kill  # killed part-way
    again = subprocess.run(args, capture_output=True, text=True, timeout=90, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    report: dict[str, Any] = json.loads(again.stdout)
    assert report["summary"]["ok"] == len(METERS)
    assert report["summary"]["accepted"] == len(rows) - at_kill  # only what was missing
    return report


@pytest.mark.slow
def test_zigbee_collect_over_tcp_killed_with_sigkill_then_rerun_stores_everything_once(
    tmp_path: Path,
) -> None:
    url = new_db(tmp_path)
    with InThread(ZigbeeGateway(config(0.02))) as gateway:
        rows = expected(gateway)
        assert len(rows) == len(METERS) * 2 * 96
        args = collect_args(url, ["--host", "127.0.0.1", "--port", str(gateway.port)])
        kill_then_rerun(url, args, rows)
        third = subprocess.run(args, capture_output=True, text=True, timeout=90, check=False)
    assert third.returncode == 0, third.stdout + third.stderr
    summary = json.loads(third.stdout)["summary"]
    assert summary["accepted"] == 0 and summary["duplicates"] == 0  # nothing new, no effect
    assert_exactly_once(url, rows)


@pytest.mark.slow
def test_zigbee_collect_over_mqtt_killed_with_sigkill_then_rerun_stores_everything_once(
    tmp_path: Path,
) -> None:
    require_mqtt()
    url = new_db(tmp_path)
    root, gateway_id = unique_root(), unique_id("gw")
    mqtt_gateway = ZigbeeMqttGateway(
        config(0.02), host=MQTT_HOST, port=MQTT_PORT, gateway_id=gateway_id, root=root
    )
    transport = ["--gateway-id", gateway_id, "--mqtt-root", root]
    transport += ["--mqtt-host", MQTT_HOST, "--mqtt-port", str(MQTT_PORT)]
    with InThread(mqtt_gateway) as gateway:
        rows = expected(gateway)
        kill_then_rerun(url, collect_args(url, transport), rows)
    assert_exactly_once(url, rows)
