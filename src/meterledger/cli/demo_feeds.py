"""The demo's head-end phase: every kind of source at once, one of them failing on purpose.

The file drops carry the cycle's history; its last day is read from the meters while the
head-end runs every collector concurrently, each on its own connection to the store:

* **DLMS/COSEM** over loopback TCP (:mod:`meterledger.cli.demo_dlms`): the meters that
  fail on purpose (E04, E09) and the fifth of the fleet behind HLS-GMAC and suite 0, plus a
  share of the others;
* **Zigbee Smart Energy** behind a gateway on loopback TCP (GetProfile paged back to the
  stored data);
* **the vendor REST API** (OAuth2, pages, rate limits), which is **down on purpose** for the
  first seconds: every call answers 503, so its circuit breaker opens (one ERROR line), the
  poller pauses, probes after each cool-down, re-opens while the outage lasts, closes when a
  probe succeeds, and the poll completes from its high-water mark;
* **MQTT** on the broker at ``--mqtt-host``/``--mqtt-port`` (QoS 1, a persistent session
  made before the readings are published, so none is missed). When nothing listens there
  the demo starts a private Mosquitto if one is installed; with neither, the MQTT share is
  read over DLMS and the summary says why.

The remaining meters are dealt in turn to DLMS, Zigbee, the vendor API and MQTT. The
summary (``feeds``) gives each source's meters and intervals, and the breaker's events
with their time since the phase began.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt

from meterledger.cli.collect import StoreLedger
from meterledger.cli.common import out
from meterledger.cli.demo_dlms import demo_failures, final_day, read_dlms, secured
from meterledger.cli.feeds import BreakerRecorder
from meterledger.cli.mqtt import listen
from meterledger.cli.vendor import poll_into
from meterledger.collect.breaker import BreakerBoard, BreakerEvent, BreakerSettings
from meterledger.collect.fleet import MeterResult
from meterledger.collect.mqtt import MqttSettings
from meterledger.collect.vendor import VendorSettings
from meterledger.collect.zigbee import SOURCE as ZIGBEE_SOURCE
from meterledger.collect.zigbee import ZigbeeMeterRef, collect_meters
from meterledger.simulate.fleet import SimMeter
from meterledger.simulate.loadshapes import profile
from meterledger.simulate.mqtt_publisher import MqttMessage, publish, reading_message
from meterledger.simulate.vendor_api import VendorApi, VendorConfig
from meterledger.simulate.zigbee_gateway import GatewayConfig, ZigbeeGateway, eui64_of
from meterledger.store import Store, open_store

__all__ = ["SOURCES", "FeedsOptions", "read_final_day", "share_fleet"]

SOURCES = ("dlms", "zigbee", "vendor", "mqtt")
INTERVAL = 900
CHANNEL = "1.0.1.8.0.255"
VENDOR_FEED = "vendor"  # its mark, its pause and its breaker (vendor/host:port)


@dataclass(frozen=True, slots=True)
class FeedsOptions:
    """``enabled`` false reads the whole last day over DLMS (the head-end of issue 5)."""

    enabled: bool = True
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    outage_seconds: float = 2.5  # the vendor API's outage, from the start of the phase
    cooldown: float = 1.0  # the vendor breaker's cool-down


def share_fleet(count: int, *, mqtt: bool = True) -> dict[str, list[int]]:
    """Which meter indexes each source reads: the meters failing on purpose and the
    secured ones over DLMS, the others dealt in turn to DLMS, Zigbee, vendor, MQTT."""
    silent, wrong = demo_failures(count) if count else (-1, -1)
    turn = [s for s in SOURCES if mqtt or s != "mqtt"]
    shares: dict[str, list[int]] = {source: [] for source in SOURCES}
    dealt = 0
    for index in range(count):
        if index in (silent, wrong) or secured(index, count):
            shares["dlms"].append(index)
            continue
        shares[turn[dealt % len(turn)]].append(index)
        dealt += 1
    return shares


# -- the MQTT broker ------------------------------------------------------------------------


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _broker(options: FeedsOptions) -> Iterator[tuple[str, int] | str]:
    """The broker to use, ``(host, port)``, or why there is none."""
    if _listening(options.mqtt_host, options.mqtt_port):
        yield options.mqtt_host, options.mqtt_port
        return
    binary = shutil.which("mosquitto")
    if binary is None:
        yield (
            f"no MQTT broker at {options.mqtt_host}:{options.mqtt_port} and no mosquitto "
            "installed to start one"
        )
        return
    with tempfile.TemporaryDirectory(prefix="meterledger-demo-mqtt-") as where:
        port = _free_port()
        conf = Path(where) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 10
            while not _listening("127.0.0.1", port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    yield f"a private mosquitto did not start on port {port}"
                    return
                time.sleep(0.05)
            yield "127.0.0.1", port
        finally:
            proc.terminate()
            proc.wait(10)


# -- the sources ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Day:
    begin: int  # epoch s: the local midnight starting the day read
    end: int  # and the one ending it (the meters' clock)
    now: datetime

    @property
    def intervals(self) -> int:
        return (self.end - self.begin) // INTERVAL


async def _zigbee(
    store: Store, fleet: list[SimMeter], indexes: list[int], seed: int, day: _Day
) -> dict[str, Any]:
    config = GatewayConfig(
        meters=len(fleet),
        seed=seed,
        port=0,
        tz=fleet[0].timezone,
        clock=lambda: day.end,
        days=2,
        buffer=2 * 100,  # two days of 15-minute intervals, a 25-hour day included
    )
    async with ZigbeeGateway(config) as gateway:
        # billed on import: the delivered channel only (the drops carry no other)
        refs = [ZigbeeMeterRef(eui64_of(i), fleet[i].meter_id, received=False) for i in indexes]
        ledger = StoreLedger(store, now=lambda: day.now, source=ZIGBEE_SOURCE, feed="zigbee")
        results = await collect_meters("127.0.0.1", gateway.port, refs, ledger, timeout=2.0)
    failed = [r for r in results if not r.ok]
    return {
        "meters": len(refs),
        "meters_read": len(results) - len(failed),
        "failed": [{"meter_id": r.meter_id, "code": r.code, "message": r.message} for r in failed],
        "requests": sum(r.requests for r in results),
        "intervals_accepted": sum(r.handoff.accepted for r in results),
        "gaps": sum(r.gaps for r in results),
    }


async def _vendor(
    store: Store,
    fleet: list[SimMeter],
    indexes: list[int],
    day: _Day,
    options: FeedsOptions,
    listener: Callable[[BreakerEvent], None],
) -> dict[str, Any]:
    ids = tuple(fleet[i].meter_id for i in indexes)
    config = VendorConfig(
        meters=len(ids),
        meter_ids=ids,
        start=day.begin,
        intervals=day.intervals,
        page_size=96,
        seed=len(fleet),
    )
    api = VendorApi(config)
    base_url = api.start()
    try:
        api.outage(options.outage_seconds)  # down on purpose: every call answers 503
        board = BreakerBoard.of(
            BreakerSettings(threshold=3, cooldown=options.cooldown, min_calls=5),
            feed=VENDOR_FEED,
            listener=listener,
        )
        settings = VendorSettings(
            base_url, config.client_id, config.client_secret, initial=0.05, maximum=0.2
        )
        report = await poll_into(
            store,
            settings,
            feed=VENDOR_FEED,
            until=day.end,
            since=day.begin,
            breakers=board,
            patience=60.0,
        )
    finally:
        api.stop()
    return {
        "meters": len(ids),
        "pages": report.pages,
        "calls": report.calls,
        "failed_calls": api.stats.failed,
        "intervals_accepted": report.accepted,
        "duplicates": report.duplicates,
        "mark": report.mark,
        "outage_seconds": options.outage_seconds,
    }


def _mqtt_messages(
    fleet: list[SimMeter], indexes: list[int], seed: int, day: _Day, root: str
) -> list[MqttMessage]:
    """One JSON array per meter: its whole last day, in the documented reading form."""
    messages = []
    for index in indexes:
        meter = fleet[index]
        values = profile(
            meter.kind,
            start=day.begin + INTERVAL,
            intervals=day.intervals,
            interval_seconds=INTERVAL,
            tz=meter.timezone,
            daily_kwh=meter.daily_kwh,
            rng=random.Random(f"{seed}:mqtt:{meter.meter_id}"),
        )
        messages.append(
            reading_message(root, meter.meter_id, day.begin + INTERVAL, INTERVAL, values)
        )
    return messages


@contextlib.asynccontextmanager
async def _session(host: str, port: int, client_id: str, topics: str) -> AsyncIterator[None]:
    """A persistent session subscribed before anything is published, dropped afterwards
    (a clean connection under the same id), so the broker keeps nothing of the demo."""
    async with aiomqtt.Client(host, port, identifier=client_id, clean_session=False) as client:
        await client.subscribe(topics, qos=1)
    try:
        yield
    finally:
        async with aiomqtt.Client(host, port, identifier=client_id, clean_session=True):
            pass  # connecting clean under the id is what drops the session


async def _mqtt(
    store: Store,
    fleet: list[SimMeter],
    indexes: list[int],
    seed: int,
    day: _Day,
    broker: tuple[str, int],
) -> dict[str, Any]:
    host, port = broker
    token = secrets.token_hex(4)
    root = f"meterledger-demo/{token}/v1"
    settings = MqttSettings(
        host=host, port=port, client_id=f"meterledger-demo-{token}", group=None, root=root
    )
    messages = _mqtt_messages(fleet, indexes, seed, day, root)
    async with _session(host, port, settings.client_id, settings.subscription):
        published = await publish(messages, host=host, port=port)
        counts = await listen(store, settings, until_idle=1.0)
    return {
        "meters": len(indexes),
        "broker": f"{host}:{port}",
        "messages_published": published,
        "messages_acked": counts.acked,
        "intervals_accepted": counts.accepted,
        "dead_letters": counts.dead_letters,
    }


# -- all at once ----------------------------------------------------------------------------


async def _read_all(
    stores: dict[str, Store],
    fleet: list[SimMeter],
    first: datetime,
    days: int,
    seed: int,
    progress: Callable[[MeterResult], None],
    shares: dict[str, list[int]],
    options: FeedsOptions,
    broker: tuple[str, int] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    begin, end = final_day(fleet, first, days)
    day = _Day(int(begin.timestamp()), int(end.timestamp()), end)
    started = time.monotonic()
    events: list[dict[str, Any]] = []
    recorder = BreakerRecorder(stores["vendor"])

    def heard(event: BreakerEvent) -> None:
        recorder(event)
        events.append(
            {
                "seconds": round(time.monotonic() - started, 2),
                "endpoint": event.name,
                "state": event.state.value,
                "why": event.why,
            }
        )

    jobs: dict[str, Any] = {
        "dlms": read_dlms(stores["dlms"], fleet, first, days, seed, progress, shares["dlms"])
    }
    if shares["zigbee"]:
        jobs["zigbee"] = _zigbee(stores["zigbee"], fleet, shares["zigbee"], seed, day)
    if shares["vendor"]:
        jobs["vendor"] = _vendor(stores["vendor"], fleet, shares["vendor"], day, options, heard)
    if shares["mqtt"] and broker is not None:
        jobs["mqtt"] = _mqtt(stores["mqtt"], fleet, shares["mqtt"], seed, day, broker)
    done = dict(zip(jobs, await asyncio.gather(*jobs.values()), strict=True))
    feeds = {name: done[name] for name in SOURCES[1:] if name in done}
    feeds["breaker_events"] = events
    feeds["seconds"] = round(time.monotonic() - started, 2)
    return done["dlms"], feeds


def read_final_day(
    store: Store,
    fleet: list[SimMeter],
    first: datetime,
    days: int,
    seed: int,
    progress: Callable[[MeterResult], None],
    options: FeedsOptions,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Read day ``days + 1`` from every kind of source at once: the DLMS head-end's summary
    and the other feeds' (None when ``options.enabled`` is false: all over DLMS)."""
    if not options.enabled:
        return asyncio.run(read_dlms(store, fleet, first, days, seed, progress)), None
    with _broker(options) as broker:
        found = broker if isinstance(broker, tuple) else None
        shares = share_fleet(len(fleet), mqtt=found is not None)
        stores = {source: open_store(store.url) for source in SOURCES[1:]}
        stores["dlms"] = store
        try:
            head_end, feeds = asyncio.run(
                _read_all(stores, fleet, first, days, seed, progress, shares, options, found)
            )
        finally:
            for source in SOURCES[1:]:
                stores[source].close()
    feeds["sources"] = {source: len(shares[source]) for source in SOURCES}
    if found is None:
        feeds["mqtt"] = {"meters": 0, "skipped": str(broker)}
    return head_end, feeds


# -- the report -----------------------------------------------------------------------------


def render_feeds(feeds: dict[str, Any]) -> None:
    """The other feeds' lines of the demo's report, and the breaker's story."""
    sources = feeds["sources"]
    out.print(
        f"the last day, read at once in {feeds['seconds']} s: DLMS {sources['dlms']} meters, "
        f"Zigbee {sources['zigbee']}, vendor API {sources['vendor']}, MQTT {sources['mqtt']}"
    )
    zigbee = feeds.get("zigbee")
    if zigbee:
        out.print(
            f"  Zigbee (gateway on loopback TCP, GetProfile): {zigbee['meters_read']} of "
            f"{zigbee['meters']} meters, {zigbee['intervals_accepted']:,} intervals accepted "
            f"in {zigbee['requests']} requests"
        )
    vendor = feeds.get("vendor")
    if vendor:
        out.print(
            f"  vendor REST API (OAuth2, {vendor['pages']} pages): "
            f"{vendor['intervals_accepted']:,} intervals accepted; down on purpose for "
            f"{vendor['outage_seconds']:g} s, {vendor['failed_calls']} calls answered 503"
        )
    mqtt = feeds.get("mqtt")
    if mqtt and "skipped" in mqtt:
        out.print(f"  MQTT: [yellow]not used[/]: {mqtt['skipped']} (its meters read over DLMS)")
    elif mqtt:
        out.print(
            f"  MQTT (broker {mqtt['broker']}, QoS 1, persistent session): "
            f"{mqtt['messages_acked']} of {mqtt['messages_published']} messages acknowledged, "
            f"{mqtt['intervals_accepted']:,} intervals accepted"
        )
    events = feeds["breaker_events"]
    if events:
        out.print(f"  circuit breaker {events[0]['endpoint']}:")
        colours = {"open": "red", "half-open": "yellow", "closed": "green"}
        for e in events:
            colour = colours.get(e["state"], "white")
            out.print(f"    +{e['seconds']:5.2f} s  [{colour}]{e['state']:9}[/] {e['why']}")
