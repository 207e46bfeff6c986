"""``meterledger zigbee collect``: the simulator gateway on loopback TCP, a real store."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from meterledger.cli.app import app
from meterledger.core.reading import Quality
from meterledger.simulate.zigbee_gateway import GatewayConfig, ZigbeeGateway, eui64_of
from meterledger.store.base import Store
from support import add_meter

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
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(gw.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield gw, clock
    asyncio.run_coroutine_threadsafe(gw.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


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
    args = ["zigbee", "collect", "--port", str(gw.port), "--timeout", "0.2", "--db", store.url]
    args += ["--breaker-threshold", "2", "--breaker-wait", "0", "--json"]
    for i, meter_id in enumerate(IDS):
        args += ["--meter", f"{eui64_of(i).hex()}={meter_id}"]
    args_one_at_a_time = [*args, "--concurrency", "1"]
    dark = runner.invoke(app, args_one_at_a_time)
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
    again = runner.invoke(app, args_one_at_a_time)
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
