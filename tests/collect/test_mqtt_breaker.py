"""The MQTT subscriber's circuit breaker against a real socket where no broker listens
(every connect refused): it opens after its threshold, makes no connection attempt while
open, probes once per cool-down, and a listener cancelled while paused leaves no probe slot
taken. (A broker stopped and started under a listener: tests/faults/test_feed_breakers.py.)"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time

import pytest

from meterledger.collect.breaker import BreakerBoard, BreakerEvent, BreakerSettings, BreakerState
from meterledger.collect.mqtt import MqttFeed, MqttSettings

COOLDOWN = 0.3


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_broker_opens_the_circuit_and_the_feed_probes_once_per_cooldown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = closed_port()
    settings = MqttSettings(port=port, client_id="breaker-test", backoff_initial=0.02)
    events: list[tuple[BreakerEvent, int]] = []
    feed: MqttFeed | None = None

    def told(event: BreakerEvent) -> None:
        assert feed is not None
        events.append((event, feed.attempts))

    board = BreakerBoard.of(
        BreakerSettings(threshold=3, cooldown=COOLDOWN), feed="mqtt", listener=told
    )
    feed = MqttFeed(settings, breakers=board)

    async def run() -> None:
        assert feed is not None
        async for _ in feed.batches(until_idle=0.1):
            raise AssertionError("no broker: no message")

    with caplog.at_level(logging.WARNING, logger="meterledger"), pytest.raises(TimeoutError):
        asyncio.run(asyncio.wait_for(run(), timeout=4 * COOLDOWN + 0.15))
    breaker = feed.breaker
    assert breaker is not None and breaker.name == f"mqtt/127.0.0.1:{port}"
    states = [e.state for e, _ in events]
    assert states[0] is BreakerState.OPEN and events[0][1] == 3  # 3 refused in a row
    assert states.count(BreakerState.OPEN) >= 3  # each probe was refused too
    for (opened, seen), (probe, then) in itertools.pairwise(events):
        if opened.state is BreakerState.OPEN:  # nothing tried until the cool-down ended
            assert probe.state is BreakerState.HALF_OPEN and then == seen
            assert probe.at - opened.at >= COOLDOWN - 0.01
    assert feed.attempts == 3 + states.count(BreakerState.HALF_OPEN)
    assert feed.attempts <= 3 + 5 and feed.connections == 0
    assert feed.pauses == states.count(BreakerState.OPEN)
    assert breaker.opened == states.count(BreakerState.OPEN)
    assert breaker.state is not BreakerState.CLOSED
    # cancelled while paused or probing: no probe slot is left taken, a later probe goes
    time.sleep(breaker.retry_after() + 0.02)
    assert breaker.allow()
    lines = [r for r in caplog.records if getattr(r, "code", None) == "circuit-open"]
    assert len(lines) == breaker.opened and all(r.levelno == logging.ERROR for r in lines)
    paused = [r for r in caplog.records if getattr(r, "code", None) == "feed-paused"]
    assert len(paused) == feed.pauses


def test_without_breakers_the_feed_keeps_its_backoff_and_has_no_breaker() -> None:
    settings = MqttSettings(port=closed_port(), client_id="no-breaker", backoff_initial=0.02)
    feed = MqttFeed(settings)

    async def run() -> None:
        async for _ in feed.batches(until_idle=0.1):
            raise AssertionError("no broker: no message")

    with pytest.raises(TimeoutError):
        asyncio.run(asyncio.wait_for(run(), timeout=0.6))
    assert feed.breaker is None and feed.pauses == 0
    assert feed.attempts >= 6  # a retry every short backoff: nothing stops them


def test_a_probe_batch_of_more_than_one_connection_is_refused() -> None:
    """The broker's probe is one connection, held open once it succeeds: a batch of two
    would leave the breaker half-open for the whole session."""
    board = BreakerBoard.of(BreakerSettings(probes=2), feed="mqtt")
    with pytest.raises(ValueError, match="probes must be 1"):
        MqttFeed(MqttSettings(port=1), breakers=board)
