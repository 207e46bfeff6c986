"""Fault tests of the feeds' circuit breakers against a real, private Mosquitto that is
stopped and started again (issue 7): while the broker is down the MQTT listener's breaker
opens and it stops its reconnect attempts until each cool-down ends, then one probe
connect; when the broker is back the breaker closes and every reading published is stored
exactly once. ``meterledger mqtt listen --breaker-*`` rides out a broker that is down when
it starts, and ``meterledger status`` shows the breaker.

The private broker runs on a free port with its persistence in the test's folder (as
tests/faults/test_restarts.py does it), so the shared Mosquitto is never touched.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from backends import RawDb
from brokers import Broker, broker, unique_id, unique_root
from meterledger.cli.feeds import BreakerRecorder, status_report
from meterledger.cli.mqtt import MqttLedger
from meterledger.collect.breaker import BreakerBoard, BreakerEvent, BreakerSettings, BreakerState
from meterledger.collect.mqtt import MqttFeed, MqttSettings
from meterledger.core.time import epoch_of, parse_instant
from meterledger.core.units import Unit, milli_from_text
from meterledger.simulate.mqtt_publisher import MqttMessage, PublishPlan, publish, reading_messages
from meterledger.store import open_store
from support import add_meter

__all__ = ["broker"]  # the fixture, imported for this module's tests

CLI = Path(sys.executable).with_name("meterledger")
METERS = ["MTR-00001", "MTR-00002", "MTR-00003"]
START = 1_736_467_200  # 2025-01-10T00:00Z
DAY = 86_400
COOLDOWN = 0.5
Row = tuple[str, int, int]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def new_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'breakers.db'}"
    store = open_store(url)
    try:
        for meter in METERS:
            add_meter(store, meter)
    finally:
        store.close()
    return url


def plan_messages(root: str, first_day: int, days: int) -> tuple[list[MqttMessage], list[Row]]:
    plan = PublishPlan(meters=len(METERS), days=days, start=START + first_day * DAY, root=root)
    messages = reading_messages(plan)
    rows: list[Row] = []
    for message in messages:
        meter = message.topic.rsplit("/", 1)[1]
        for r in json.loads(message.payload):
            end = epoch_of(parse_instant(r["interval_end"]))
            rows.append((meter, end, milli_from_text(r["value"], Unit.KWH)))
    return messages, rows


def stored_rows(url: str) -> list[Row]:
    with RawDb(url) as raw:
        rows = raw.execute(
            "SELECT c.meter_id, r.interval_end, r.value FROM readings r"
            " JOIN channels c ON c.channel_id = r.channel_id WHERE r.quality & 1 = 0"
        )
    return sorted((str(m), int(e), int(v)) for m, e, v in rows)


def circuit_paused(url: str) -> list[str]:
    store = open_store(url)
    try:
        return list(status_report(store)["circuit_paused"])
    finally:
        store.close()


def stored_count(url: str) -> int:
    with RawDb(url) as raw:
        return int(raw.scalar("SELECT count(*) FROM readings WHERE quality & 1 = 0"))


def assert_exactly_once(url: str, expected: list[Row]) -> None:
    assert stored_rows(url) == sorted(expected)  # nothing lost, no value changed
    with RawDb(url) as raw:
        assert int(raw.scalar("SELECT count(*) FROM reading_versions")) == 0  # no 2nd copy


class Listener(threading.Thread):
    """The listen loop (as ``cli.mqtt.listen``) in a thread of its own, so the test can stop
    and start the broker; each breaker change is saved and noted with the connection
    attempts made by then."""

    def __init__(self, url: str, settings: MqttSettings, board_settings: BreakerSettings) -> None:
        super().__init__(daemon=True)
        self.url, self.settings = url, settings
        self.board_settings = board_settings
        self.events: list[tuple[BreakerEvent, int]] = []
        self.feed: MqttFeed | None = None
        self.error: BaseException | None = None
        self.delivered = 0

    def run(self) -> None:
        store = open_store(self.url)
        try:
            recorder = BreakerRecorder(store)

            def told(event: BreakerEvent) -> None:
                assert self.feed is not None
                self.events.append((event, self.feed.attempts))
                recorder(event)

            board = BreakerBoard.of(self.board_settings, feed="mqtt", listener=told)
            self.feed = MqttFeed(self.settings, breakers=board)
            asyncio.run(self._loop(MqttLedger(store, root=self.settings.root), self.feed))
        except BaseException as exc:  # reported by the test thread
            self.error = exc
        finally:
            store.close()

    async def _loop(self, ledger: MqttLedger, feed: MqttFeed) -> None:
        async for batch in feed.batches(until_idle=2.5):
            await ledger.deliver(batch)
            feed.ack(batch)
            self.delivered += len(batch)

    def states(self) -> list[BreakerState]:
        return [e.state for e, _ in self.events]


@pytest.mark.slow
def test_the_listener_breaker_opens_while_the_broker_is_down_and_nothing_is_lost(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    url = new_db(tmp_path)
    root = unique_root()
    settings = MqttSettings(
        port=broker.port,
        client_id=unique_id("breaker"),
        group=None,
        root=root,
        backoff_initial=0.05,
        backoff_max=0.2,
    )
    before, rows_before = plan_messages(root, 0, 2)
    after, rows_after = plan_messages(root, 2, 2)
    listener = Listener(url, settings, BreakerSettings(threshold=3, cooldown=COOLDOWN))
    with caplog.at_level(logging.WARNING, logger="meterledger"):
        listener.start()
        wait_for(
            lambda: listener.feed is not None and listener.feed.connections == 1, 10, "connect"
        )
        asyncio.run(publish(before, port=broker.port))
        wait_for(lambda: stored_count(url) == len(rows_before), 20, "the first readings")
        broker.stop()
        down_at = time.monotonic()
        wait_for(lambda: BreakerState.OPEN in listener.states(), 10, "the circuit to open")
        # saved as it opened: status lists the feed paused while a cool-down runs (a
        # probe under way shows it half-open)
        wait_for(lambda: circuit_paused(url) == ["mqtt"], 10, "status to show it paused")
        time.sleep(4 * COOLDOWN)  # a few cool-downs, each ending in a failed probe
        broker.start()
        down_for = time.monotonic() - down_at
        asyncio.run(publish(after, port=broker.port))
        listener.join(30)
    assert not listener.is_alive() and listener.error is None
    feed = listener.feed
    assert feed is not None
    states = listener.states()
    assert states[0] is BreakerState.OPEN and states[-1] is BreakerState.CLOSED
    assert states.count(BreakerState.OPEN) >= 3  # failed probes re-opened it
    # while open: no connection attempt; the probe only after the cool-down
    for (opened, seen), (probe, then) in itertools.pairwise(listener.events):
        if opened.state is BreakerState.OPEN:
            assert probe.state is BreakerState.HALF_OPEN and then == seen
            assert probe.at - opened.at >= COOLDOWN - 0.01
    # so the attempts while down are the few that opened it and one probe per cool-down
    assert feed.attempts <= 1 + 3 + int(down_for / COOLDOWN) + 2
    assert feed.pauses == states.count(BreakerState.OPEN) and feed.paused_seconds >= COOLDOWN
    assert feed.connections == 2 and feed.breaker is not None
    assert feed.breaker.state is BreakerState.CLOSED
    opened_lines = [r for r in caplog.records if getattr(r, "code", None) == "circuit-open"]
    assert opened_lines and all(r.levelno == logging.ERROR for r in opened_lines)
    assert_exactly_once(url, rows_before + rows_after)
    store = open_store(url)
    try:
        status = status_report(store)
    finally:
        store.close()
    (shown,) = status["breakers"]
    assert shown["endpoint"] == f"mqtt/127.0.0.1:{broker.port}" and shown["state"] == "closed"
    assert shown["opened"] == states.count(BreakerState.OPEN)
    assert status["circuit_paused"] == []


def command(*args: str) -> list[str]:
    if CLI.exists():
        return [str(CLI), *args]
    return [sys.executable, "-c", "from meterledger.cli.app import app; app()", *args]


@pytest.mark.slow
def test_mqtt_listen_started_while_the_broker_is_down_waits_with_its_breaker_then_stores_all(
    tmp_path: Path, broker: Broker
) -> None:
    url = new_db(tmp_path)
    root, client = unique_root(), unique_id("cli-breaker")
    args = command(
        "mqtt", "listen", "--db", url, "--root", root, "--client-id", client, "--group", "",
        "--port", str(broker.port), "--until-idle", "1.5", "--breaker-cooldown", str(COOLDOWN),
        "--breaker-threshold", "2", "--breaker-min-calls", "4", "--breaker-window", "30",
        "--breaker-failure-rate", "0.2", "--breaker-probes", "1", "--json",
    )  # fmt: skip
    first = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert first.returncode == 0, first.stderr  # the persistent session exists now
    messages, rows = plan_messages(root, 0, 2)
    asyncio.run(publish(messages, port=broker.port))  # queued for the session
    broker.stop()  # it keeps the session and the queue in its persistence file
    listener = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: circuit_paused(url) == ["mqtt"], 20, "status to show the circuit open")
        time.sleep(2 * COOLDOWN)
        broker.start()
        out, err = listener.communicate(timeout=60)
    finally:
        if listener.poll() is None:
            listener.kill()
    assert listener.returncode == 0, err
    report = json.loads(out)
    assert report["accepted"] == len(rows) and report["duplicates"] == 0
    assert report["pauses"] >= 1 and report["paused_seconds"] >= COOLDOWN - 0.05
    breaker = report["breaker"]
    assert breaker["endpoint"] == f"mqtt/127.0.0.1:{broker.port}"
    assert breaker["state"] == "closed" and breaker["opened"] == report["pauses"]
    assert "circuit-open" not in out and "circuit mqtt/" in err  # the ERROR line, on stderr
    assert_exactly_once(url, rows)
    status = subprocess.run(
        command("status", "--db", url, "--json"), capture_output=True, text=True, check=False
    )
    shown = json.loads(status.stdout)
    assert shown["circuit_paused"] == [] and shown["breakers"][0]["state"] == "closed"
    assert shown["breakers"][0]["opened"] == breaker["opened"]
