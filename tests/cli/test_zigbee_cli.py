"""``meterledger zigbee collect``: the simulator gateway on loopback TCP, a real store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from backends import RawDb
from brokers import MQTT_HOST, MQTT_PORT, require_mqtt, unique_id, unique_root
from collect.test_fleet_deadletters import refuse_batches
from meterledger.cli.app import app
from meterledger.core.reading import Quality
from meterledger.simulate.zigbee_gateway import GatewayConfig, ZigbeeGateway, eui64_of
from meterledger.simulate.zigbee_mqtt_gateway import ZigbeeMqttGateway
from meterledger.store.base import Store
from support import add_meter
from zigbee_support import InThread, expected

runner = CliRunner()
NOW = 1_709_269_200 + 3 * 86_400 + 500
LATEST_END = NOW // 900 * 900
OUTAGE = (LATEST_END - 30 * 900 + 1, LATEST_END - 28 * 900 - 1)  # two intervals dark
IDS = ["MTR-00001", "MTR-00002", "MTR-00003"]


@pytest.fixture
def gateway() -> Iterator[tuple[ZigbeeGateway, list[int]]]:
    """Three meters on a clock the test moves; the third is dark, the first had an outage."""
    clock = [NOW]
    gw = ZigbeeGateway(
        GatewayConfig(
            meters=3,
            port=0,
            tz="UTC",
            clock=lambda: clock[0],
            dark=frozenset({2}),
            outages={0: (OUTAGE,)},
        )
    )
    with InThread(gw):
        yield gw, clock


def _stored(store: Store, meter_id: str) -> dict[int, tuple[int, int]]:
    frame = store.readings(meter_id, 0, 2**40, "1.0.1.8.0.255")
    ends = frame.get_column("interval_end").to_list()
    values = frame.get_column("value").to_list()
    qualities = frame.get_column("quality").to_list()
    return {int(e): (int(v), int(q)) for e, v, q in zip(ends, values, qualities, strict=True)}


def test_zigbee_collect(store: Store, gateway: tuple[ZigbeeGateway, list[int]]) -> None:
    gw, clock = gateway
    for meter_id in IDS:
        add_meter(store, meter_id, capacity=1_000_000_000)
    args = ["zigbee", "collect", "--port", str(gw.port), "--timeout", "0.3", "--db", store.url]
    for i, meter_id in enumerate(IDS):
        args += ["--meter", f"{eui64_of(i).hex()}={meter_id}"]

    first = runner.invoke(app, [*args, "--json"])
    assert first.exit_code == 1, first.output  # the dark meter failed; the others were read
    payload = json.loads(first.stdout)
    codes = {r["meter_id"]: r["code"] for r in payload["results"]}
    assert codes == {"MTR-00001": None, "MTR-00002": None, "MTR-00003": "E04"}
    by_id = {r["meter_id"]: r for r in payload["results"]}
    assert by_id["MTR-00001"]["gaps"] == 4  # two intervals, both channels
    assert payload["summary"]["accepted"] == 2 * 96 + 2 * 94

    entries = gw.meter(1).entries
    assert {e: v for e, (v, _) in _stored(store, "MTR-00002").items()} == {
        x.interval_end: x.delivered * 1000 for x in entries if x.delivered is not None
    }
    # the outage's intervals came in as gaps; VEE estimated them
    outage_ends = [e.interval_end for e in gw.meter(0).entries if e.delivered is None]
    assert outage_ends == [LATEST_END - 29 * 900, LATEST_END - 28 * 900]
    held = _stored(store, "MTR-00001")
    assert payload["vee"]["estimated"] >= 2
    for end in outage_ends:
        assert end in held and held[end][1] & Quality.ESTIMATED
    actual = {e: v for e, (v, q) in held.items() if q == Quality.ACTUAL}
    assert actual == {
        x.interval_end: x.delivered * 1000 for x in gw.meter(0).entries if x.delivered is not None
    }

    again = runner.invoke(app, [*args, "--json"])  # nothing new: no second effect
    summary = json.loads(again.stdout)["summary"]
    assert summary["accepted"] == 0 and summary["duplicates"] == 0
    assert len(_stored(store, "MTR-00002")) == 96

    clock[0] = NOW + 3 * 900
    later = runner.invoke(app, [*args, "--json"])
    by_id = {r["meter_id"]: r for r in json.loads(later.stdout)["results"]}
    assert by_id["MTR-00002"]["intervals"] == 6 and by_id["MTR-00002"]["accepted"] == 6
    assert by_id["MTR-00002"]["requests"] == 3
    stored = _stored(store, "MTR-00002")
    assert len(stored) == 99 and max(stored) == LATEST_END + 3 * 900


def test_zigbee_collect_refuses_a_malformed_meter(store: Store) -> None:
    result = runner.invoke(app, ["zigbee", "collect", "--meter", "0102=M1", "--db", store.url])
    assert result.exit_code == 2 and "16 hex digits" in result.output
    result = runner.invoke(
        app, ["zigbee", "collect", "--meter", eui64_of(0).hex(), "--db", store.url]
    )
    assert result.exit_code == 2 and "EUI64=METER_ID" in result.output


def test_zigbee_collect_breaker_opens_on_a_dark_gateway_and_status_shows_it(
    store: Store, gateway: tuple[ZigbeeGateway, list[int]]
) -> None:
    gw, _ = gateway
    for meter_id in IDS:
        add_meter(store, meter_id, capacity=1_000_000_000)
    gw.dark = {0, 1, 2}  # the whole gateway goes dark

    def one_at_a_time(timeout: float) -> list[str]:
        args = ["zigbee", "collect", "--port", str(gw.port), "--timeout", str(timeout)]
        args += ["--db", store.url, "--breaker-threshold", "2", "--breaker-wait", "0"]
        args += ["--attempts", "1"]  # one read a meter: the breaker's count is exact
        for i, meter_id in enumerate(IDS):
            args += ["--meter", f"{eui64_of(i).hex()}={meter_id}"]
        return [*args, "--concurrency", "1", "--json"]

    dark = runner.invoke(app, one_at_a_time(0.2))  # a short wait for what never answers
    assert dark.exit_code == 1, dark.output
    payload = json.loads(dark.stdout)
    assert [r["code"] for r in payload["results"]] == ["E04", "E04", "E03"]
    name = f"zigbee/127.0.0.1:{gw.port}"
    assert payload["breakers"] == [
        {"name": name, "state": "open", "failure_rate": 1.0, "calls_in_window": 2, "opened": 1}
    ]
    status = runner.invoke(app, ["status", "--db", store.url, "--json"])
    report = json.loads(status.stdout)
    assert report["circuit_paused"] == ["zigbee"]
    (saved,) = [b for b in report["breakers"] if b["endpoint"] == name]
    assert saved["state"] == "open" and saved["opened"] == 1

    gw.dark = set()  # it answers again: the next run reads everything, the circuit closes
    again = runner.invoke(app, one_at_a_time(5.0))  # a loaded machine may answer slowly
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["summary"]["accepted"] == 3 * 2 * 96 - 4  # 4 gaps
    report = json.loads(runner.invoke(app, ["status", "--db", store.url, "--json"]).stdout)
    assert report["circuit_paused"] == []
    (saved,) = [b for b in report["breakers"] if b["endpoint"] == name]
    assert saved["state"] == "closed"


def test_zigbee_collect_refuses_bad_breaker_settings(store: Store) -> None:
    meter = f"{eui64_of(0).hex()}=MTR-00001"
    args = ["zigbee", "collect", "--meter", meter, "--db", store.url]
    result = runner.invoke(app, [*args, "--breaker-failure-rate", "1.5"])
    assert result.exit_code == 2 and "failure rate" in result.output
    result = runner.invoke(app, [*args, "--timeout", "0"])
    assert result.exit_code == 2 and "--timeout is a positive number" in result.output


def _mqtt_gateway(root: str, gateway_id: str, **options: Any) -> ZigbeeMqttGateway:
    config = GatewayConfig(meters=3, port=0, tz="UTC", clock=lambda: NOW, **options)
    return ZigbeeMqttGateway(
        config, host=MQTT_HOST, port=MQTT_PORT, gateway_id=gateway_id, root=root
    )


def test_zigbee_collect_over_mqtt(store: Store) -> None:
    require_mqtt()
    for meter_id in IDS:
        add_meter(store, meter_id, capacity=1_000_000_000)
    root, gateway_id = unique_root(), unique_id("gw")
    with InThread(_mqtt_gateway(root, gateway_id, dark=frozenset({2}))) as gw:
        args = ["zigbee", "collect", "--gateway-id", gateway_id, "--mqtt-root", root]
        args += ["--mqtt-host", MQTT_HOST, "--mqtt-port", str(MQTT_PORT)]
        args += ["--timeout", "0.3", "--db", store.url, "--json"]
        for i, meter_id in enumerate(IDS):
            args += ["--meter", f"{eui64_of(i).hex()}={meter_id}"]
        first = runner.invoke(app, args)
        assert first.exit_code == 1, first.output
        payload = json.loads(first.stdout)
        codes = {r["meter_id"]: r["code"] for r in payload["results"]}
        assert codes == {"MTR-00001": None, "MTR-00002": None, "MTR-00003": "E04"}
        assert {r["gateway"] for r in payload["results"]} == {f"mqtt:{gateway_id}"}
        assert payload["summary"]["accepted"] == 2 * 2 * 96
        for index in (0, 1):
            held = {e: v for e, (v, _) in _stored(store, IDS[index]).items()}
            assert held == {
                x.interval_end: x.delivered * 1000
                for x in gw.meter(index).entries
                if x.delivered is not None
            }
        assert payload["breakers"][0]["name"] == f"zigbee/mqtt:{gateway_id}"
        again = json.loads(runner.invoke(app, args).stdout)["summary"]
        assert again["accepted"] == 0 and again["duplicates"] == 0
        assert len(_stored(store, "MTR-00001")) == 96


def test_zigbee_collect_from_a_fleet_file_with_a_tcp_and_an_mqtt_gateway(
    store: Store, gateway: tuple[ZigbeeGateway, list[int]], tmp_path: Path
) -> None:
    require_mqtt()
    tcp, _ = gateway
    root, gateway_id = unique_root(), unique_id("gw")
    behind_mqtt = ["MQ-00001", "MQ-00002"]
    for meter_id in [*IDS, *behind_mqtt]:
        add_meter(store, meter_id, capacity=1_000_000_000)
    fleet = {
        "options": {"timeout": 0.3, "periods": 48, "breaker_threshold": 3},
        "gateways": [
            {
                "host": "127.0.0.1",
                "port": tcp.port,
                "meters": [{"eui64": eui64_of(i).hex(), "meter_id": m} for i, m in enumerate(IDS)],
            },
            {
                "transport": "mqtt",
                "host": MQTT_HOST,
                "port": MQTT_PORT,
                "gateway_id": gateway_id,
                "root": root,
                "meters": [
                    {"eui64": eui64_of(i).hex(), "meter_id": m, "endpoint": 1}
                    for i, m in enumerate(behind_mqtt)
                ],
            },
        ],
    }
    path = tmp_path / "zigbee.yaml"
    path.write_text(yaml.safe_dump(fleet), "utf-8")
    with InThread(_mqtt_gateway(root, gateway_id, max_periods_per_response=48)) as mqtt_gw:
        done = runner.invoke(app, ["zigbee", "collect", "--fleet", str(path), "--db", store.url,
                                   "--json"])  # fmt: skip
        assert done.exit_code == 1, done.output  # the TCP gateway's third meter is dark
        payload = json.loads(done.stdout)
        by_id = {r["meter_id"]: r for r in payload["results"]}
        assert by_id["MTR-00003"]["code"] == "E04"
        assert by_id["MQ-00002"]["ok"] and by_id["MQ-00002"]["gateway"] == f"mqtt:{gateway_id}"
        assert by_id["MTR-00002"]["gateway"] == f"127.0.0.1:{tcp.port}"
        # 48 periods a request: two pages and the end of the buffer, per channel
        assert by_id["MQ-00001"]["requests"] == 1 + 3 + 3
        assert payload["summary"]["gateways"] == 2
        held = {e: v for e, (v, _) in _stored(store, "MQ-00002").items()}
        assert held == {
            x.interval_end: x.delivered * 1000
            for x in mqtt_gw.meter(1).entries
            if x.delivered is not None
        }
        names = sorted(b["name"] for b in payload["breakers"])
        assert names == sorted([f"zigbee/127.0.0.1:{tcp.port}", f"zigbee/mqtt:{gateway_id}"])
    both = runner.invoke(app, ["zigbee", "collect", "--fleet", str(path), "--meter",
                               f"{eui64_of(0).hex()}=MTR-00001", "--db", store.url])  # fmt: skip
    assert both.exit_code == 2 and "not both" in both.output


def test_zigbee_collect_names_the_bad_key_of_a_fleet_file(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "gateways:\n  - host: 127.0.0.1\n    meters:\n      - {eui64: 0102, meter_id: M1}\n",
        "utf-8",
    )
    done = runner.invoke(app, ["zigbee", "collect", "--fleet", str(path), "--db", store.url])
    assert done.exit_code == 2
    assert f"{path}: gateways[0].meters[0].eui64: an EUI64 is 16 hex digits" in " ".join(
        done.output.split()
    )


def test_zigbee_collect_keeps_what_the_store_refuses_as_dead_letters(
    store: Store, gateway: tuple[ZigbeeGateway, list[int]]
) -> None:
    """The store refuses every batch (a trigger of its own): each meter's readings are
    retried, then kept as a dead letter of feed zigbee (E08 names it), since the meter's
    circular buffer may have moved on by the next run; a replay stores them once."""
    gw, _ = gateway
    for meter_id in IDS:
        add_meter(store, meter_id, capacity=1_000_000_000)
    with RawDb(store.url) as raw:
        refuse_batches(raw)
    args = ["zigbee", "collect", "--port", str(gw.port), "--timeout", "2", "--db", store.url]
    for i, meter_id in enumerate(IDS[:2]):  # the third is dark
        args += ["--meter", f"{eui64_of(i).hex()}={meter_id}"]
    refused = runner.invoke(app, [*args, "--json"])
    assert refused.exit_code == 1, refused.output
    results = json.loads(refused.stdout)["results"]
    assert [r["code"] for r in results] == ["E08", "E08"]
    assert all("kept as dead letter" in r["message"] for r in results)
    letters = store.list_dead_letters(feed="zigbee")
    assert sorted(d.source for d in letters) == IDS[:2]
    with RawDb(store.url) as raw:
        raw.execute(
            "DROP TRIGGER refuse_batches" + (" ON batches" if raw.backend != "sqlite" else "")
        )
        if raw.backend != "sqlite":
            raw.execute("DROP FUNCTION refuse_batch() CASCADE")
    replayed = runner.invoke(app, ["deadletters", "replay", "--feed", "zigbee", "--db", store.url])
    assert replayed.exit_code == 0, replayed.output
    for i, meter_id in enumerate(IDS[:2]):
        actual = {e: v for e, (v, q) in _stored(store, meter_id).items() if q == Quality.ACTUAL}
        assert actual == dict(expected(gw, i))  # every interval the meter held, once
    again = runner.invoke(app, [*args, "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["summary"]["accepted"] == 0  # nothing new, no effect


def test_zigbee_collect_reads_a_meter_again_when_an_answer_is_lost(
    store: Store, gateway: tuple[ZigbeeGateway, list[int]]
) -> None:
    """A lossy mesh drops one answer of meter 1: its read times out (E04) and is tried
    again after a jittered backoff (--attempts 2, the default), and this time it is read
    whole; with --attempts 1 the same loss fails it."""
    gw, _ = gateway
    for meter_id in IDS:
        add_meter(store, meter_id, capacity=1_000_000_000)
    args = ["zigbee", "collect", "--port", str(gw.port), "--timeout", "0.5", "--db", store.url]
    args += ["--meter", f"{eui64_of(1).hex()}={IDS[1]}", "--json"]
    gw.drop_next[1] = 1
    once = runner.invoke(app, [*args, "--attempts", "1"])
    assert once.exit_code == 1 and json.loads(once.stdout)["results"][0]["code"] == "E04"
    gw.drop_next[1] = 1
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    (result,) = json.loads(again.stdout)["results"]
    assert result["ok"] and result["accepted"] == 2 * 96  # both channels, whole
    assert gw.drop_next[1] == 0  # the loss really happened
    actual = {e: v for e, (v, q) in _stored(store, IDS[1]).items() if q == Quality.ACTUAL}
    assert actual == dict(expected(gw, 1))
