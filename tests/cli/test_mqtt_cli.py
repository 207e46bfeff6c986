"""``meterledger mqtt listen|publish`` against the real Mosquitto and a real store: every
reading stored exactly once, through a listener that was down, across a shared group, from
register totals; malformed payloads kept as dead letters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from typer.testing import CliRunner

from backends import RawDb
from brokers import MQTT_HOST, MQTT_PORT, require_mqtt, unique_id, unique_root
from meterledger.cli.app import app
from meterledger.cli.mqtt import listen
from meterledger.collect.mqtt import MqttSettings
from meterledger.simulate.mqtt_publisher import PublishPlan, reading_messages
from meterledger.simulate.mqtt_publisher import publish as send
from meterledger.store import Store, open_store
from support import add_meter

runner = CliRunner()
METERS = ["MTR-00001", "MTR-00002", "MTR-00003"]
PER_DAY = 96


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    require_mqtt()
    url = f"sqlite:///{tmp_path / 'mqtt.db'}"
    store = open_store(url)
    for meter_id in METERS:
        add_meter(store, meter_id)
    yield url, store
    store.close()


def run(*args: str) -> dict[str, object]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def publish(root: str, *extra: str) -> dict[str, object]:
    return run(
        "mqtt",
        "publish",
        "--root",
        root,
        "--start",
        "2025-01-10",
        "--host",
        MQTT_HOST,
        "--port",
        str(MQTT_PORT),
        *extra,
    )


def listen_cli(url: str, root: str, client_id: str, *extra: str) -> dict[str, object]:
    return run(
        "mqtt",
        "listen",
        "--root",
        root,
        "--client-id",
        client_id,
        "--until-idle",
        "1.5",
        "--host",
        MQTT_HOST,
        "--port",
        str(MQTT_PORT),
        "--db",
        url,
        *extra,
    )


def stored(url: str) -> tuple[int, int]:
    """(readings, distinct natural keys) in the store, VEE's estimates left out."""
    with RawDb(url) as raw:
        rows = raw.scalar("SELECT count(*) FROM readings WHERE quality & 1 = 0")
        keys = raw.scalar(
            "SELECT count(*) FROM (SELECT DISTINCT channel_id, interval_end FROM readings"
            " WHERE quality & 1 = 0)"
        )
    return int(rows), int(keys)


def test_published_readings_are_stored_once_and_a_rerun_is_all_duplicates(
    db: tuple[str, Store],
) -> None:
    url, _ = db
    root, client = unique_root(), unique_id("once")
    listen_cli(url, root, client)  # the persistent session exists from here on
    assert publish(root, "--meters", "3", "--days", "2")["messages"] == 6
    first = listen_cli(url, root, client)  # published while it was down: all arrive
    assert first["messages"] == 6 and first["acked"] == 6
    assert first["accepted"] == 3 * 2 * PER_DAY and first["quarantined"] == 0
    assert stored(url) == (3 * 2 * PER_DAY, 3 * 2 * PER_DAY)
    publish(root, "--meters", "3", "--days", "2")  # the same data again (a redelivery)
    second = listen_cli(url, root, client)
    assert second["accepted"] == 0 and second["duplicates"] == 3 * 2 * PER_DAY
    assert stored(url) == (3 * 2 * PER_DAY, 3 * 2 * PER_DAY)
    assert listen_cli(url, root, client)["messages"] == 0  # everything was acknowledged


def test_two_listeners_in_one_group_split_the_messages(db: tuple[str, Store]) -> None:
    url, _ = db
    root, group = unique_root(), unique_id("group")
    a, b = unique_id("a"), unique_id("b")

    def settings(client_id: str) -> MqttSettings:
        return MqttSettings(
            host=MQTT_HOST, port=MQTT_PORT, client_id=client_id, group=group, root=root, batch_max=2
        )

    async def together() -> tuple[int, int]:
        stores = [open_store(url), open_store(url)]
        try:
            done = await asyncio.gather(
                *(
                    listen(s, settings(c), until_idle=2.0)
                    for s, c in zip(stores, (a, b), strict=True)
                ),
                _publish_after_subscribed(root),
            )
        finally:
            for s in stores:
                s.close()
        return done[0].messages, done[1].messages

    first, second = asyncio.run(together())
    assert first + second == 3 * 4 and first > 0 and second > 0
    assert stored(url) == (3 * 4 * PER_DAY, 3 * 4 * PER_DAY)


async def _publish_after_subscribed(root: str) -> None:

    await asyncio.sleep(0.5)  # both listeners have subscribed
    plan = PublishPlan(meters=3, days=4, start=1_736_467_200, root=root)  # 2025-01-10
    await send(reading_messages(plan), host=MQTT_HOST, port=MQTT_PORT)


def _totals(meter: str, values: list[str]) -> bytes:
    rows = [
        {
            "channel": "1.0.1.8.0.255",
            "read_at": f"2025-01-10T00:{15 * i:02d}:00Z",
            "value": v,
            "unit": "kWh",
        }
        for i, v in enumerate(values)
    ]
    return json.dumps(rows).encode()


async def _raw(root: str, messages: list[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client(MQTT_HOST, MQTT_PORT) as client:
        for topic, payload in messages:
            await client.publish(f"{root}/{topic}", payload, qos=1)


def test_register_totals_become_intervals_across_rollover_and_reset(
    db: tuple[str, Store],
) -> None:
    url, store = db
    root, client = unique_root(), unique_id("reg")
    listen_cli(url, root, client)
    asyncio.run(
        _raw(
            root,
            [
                ("registers/MTR-00001", _totals("MTR-00001", ["99999.8", "99999.9", "0.3"])),
                ("registers/MTR-00002", _totals("MTR-00002", ["5000", "5000.5", "0.1", "0.6"])),
            ],
        )
    )
    got = listen_cli(url, root, client)
    assert got["register_totals"] == 7 and got["register_new"] == 7
    assert got["findings"] == {"register-reset": 1, "register-rollover": 1}
    assert got["accepted"] == 4 and got["register_intervals"] == 4
    with RawDb(url) as raw:
        values = raw.execute(
            "SELECT m.meter_id, r.interval_end, r.value FROM readings r"
            " JOIN channels c ON c.channel_id = r.channel_id"
            " JOIN meters m ON m.meter_id = c.meter_id"
            " WHERE r.quality & 1 = 0 ORDER BY m.meter_id, r.interval_end"  # not VEE's estimates
        )
    assert [(m, int(v)) for m, _, v in values] == [
        ("MTR-00001", 100_000),
        ("MTR-00001", 400_000),  # 99 999.9 -> 0.3 wraps: 0.4 kWh
        ("MTR-00002", 500_000),
        ("MTR-00002", 500_000),  # the reset gives no interval
    ]
    # the next total, in a message of its own, continues from the stored one
    asyncio.run(
        _raw(
            root,
            [
                (
                    "registers/MTR-00001",
                    json.dumps(
                        {
                            "channel": "1.0.1.8.0.255",
                            "read_at": "2025-01-10T00:45:00Z",
                            "value": "1.3",
                            "unit": "kWh",
                        }
                    ).encode(),
                )
            ],
        )
    )
    more = listen_cli(url, root, client)
    assert more["accepted"] == 1 and more["duplicates"] == 0
    assert store.last_interval_end("MTR-00001", "1.0.1.8.0.255") is not None


def test_malformed_payloads_become_dead_letters_not_lost(db: tuple[str, Store]) -> None:
    url, store = db
    root, client = unique_root(), unique_id("bad")
    listen_cli(url, root, client)
    good = json.dumps(
        {
            "channel": "1.0.1.8.0.255",
            "interval_end": "2025-01-10T00:15:00Z",
            "interval_seconds": 900,
            "value": "0.2",
            "unit": "kWh",
        }
    ).encode()
    asyncio.run(
        _raw(
            root,
            [
                ("readings/MTR-00001", b"{broken"),
                ("readings/MTR-00001", good),
                ("nonsense/MTR-00001", good),
            ],
        )
    )
    got = listen_cli(url, root, client)
    assert got["messages"] == 3 and got["acked"] == 3
    assert got["accepted"] == 1 and got["dead_letters"] == 2
    letters = store.list_dead_letters(feed="mqtt")
    assert sorted(d.payload for d in letters) == sorted([b"{broken", good])
    assert {d.source for d in letters} == {
        f"{root}/readings/MTR-00001",
        f"{root}/nonsense/MTR-00001",
    }


def test_listen_reports_the_broker_breaker_and_status_shows_it(db: tuple[str, Store]) -> None:
    url, store = db
    root, client = unique_root(), unique_id("breaker")
    report = listen_cli(url, root, client, "--breaker-cooldown", "5", "--breaker-threshold", "3")
    assert report["connect_attempts"] == 1 and report["reconnects"] == 0
    assert report["pauses"] == 0 and report["paused_seconds"] == 0
    assert report["breaker"] == {
        "endpoint": f"mqtt/{MQTT_HOST}:{MQTT_PORT}",
        "state": "closed",
        "opened": 0,
        "failure_rate": 0.0,
        "calls_in_window": 1,  # the one connect, a success
    }
    (shown,) = [b for b in store.breaker_states() if b.endpoint == f"mqtt/{MQTT_HOST}:{MQTT_PORT}"]
    assert (shown.state, shown.opened, shown.calls_in_window) == ("closed", 0, 1)


def test_mqtt_listen_refuses_a_probe_batch_of_more_than_one(store: Store) -> None:
    result = CliRunner().invoke(
        app, ["mqtt", "listen", "--breaker-probes", "2", "--until-idle", "0.1", "--db", store.url]
    )
    assert result.exit_code == 2 and "--breaker-probes must be 1" in result.output
