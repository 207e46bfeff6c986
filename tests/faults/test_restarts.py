"""Fault tests against the real pieces (issue 7, point 6): a collector killed with SIGKILL
and restarted, and the MQTT broker restarted mid-stream. Each asserts that the store ends
with exactly the readings published (nothing lost), each once (no second version, the
audited batches accepting exactly the stored count) and that the audit chain verifies.

The collectors run as subprocesses of the ``meterledger`` entry point on a SQLite file; the
MQTT tests use the shared Mosquitto (under a topic root of their own) or a private
Mosquitto on a free port, never restarting the shared one.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import aiomqtt
import pytest

from backends import RawDb
from brokers import MQTT_HOST, MQTT_PORT, Broker, broker, require_mqtt, unique_id, unique_root
from meterledger.core.time import iso_utc
from meterledger.ingest import audit
from meterledger.simulate.vendor_api import VendorApi, VendorConfig
from meterledger.store import open_store
from support import add_meter

__all__ = ["broker"]  # the fixture, imported for this module's tests

CLI = Path(sys.executable).with_name("meterledger")
METERS = [f"FLT-{n:05d}" for n in range(1, 6)]
START = 1_736_467_200  # 2025-01-10T00:00Z
PER_MESSAGE = 10
Row = tuple[str, int, int]  # meter_id, interval_end, value (mWh)


# -- helpers -------------------------------------------------------------------------------
def command(*args: str) -> list[str]:
    if CLI.exists():
        return [str(CLI), *args]
    return [sys.executable, "-c", "from meterledger.cli.app import app; app()", *args]


def new_db(tmp_path: Path, meters: Sequence[str] = METERS) -> str:
    url = f"sqlite:///{tmp_path / 'faults.db'}"
    store = open_store(url)
    try:
        for meter in meters:
            add_meter(store, meter)
    finally:
        store.close()
    return url


def stored_rows(url: str) -> list[Row]:
    """The store's actual readings (VEE's estimates left out), sorted."""
    with RawDb(url) as raw:
        rows = raw.execute(
            "SELECT c.meter_id, r.interval_end, r.value FROM readings r"
            " JOIN channels c ON c.channel_id = r.channel_id WHERE r.quality & 1 = 0"
        )
    return sorted((str(m), int(e), int(v)) for m, e, v in rows)


def stored_count(url: str) -> int:
    try:
        with RawDb(url) as raw:
            return int(raw.scalar("SELECT count(*) FROM readings WHERE quality & 1 = 0"))
    except Exception:  # the killed writer may hold the file a moment; ask again
        return 0


def assert_exactly_once(url: str, expected: Sequence[Row]) -> None:
    assert stored_rows(url) == sorted(expected)  # nothing lost, no value changed
    store = open_store(url)
    try:
        with RawDb(url) as raw:
            assert int(raw.scalar("SELECT count(*) FROM reading_versions")) == 0  # no 2nd copy
        report = audit.verify(store)
        assert report.ok, report.as_dict()
        batches = [json.loads(r.payload) for r in store.audit_rows() if r.kind == audit.BATCH_KIND]
        assert sum(int(p["accepted"]) for p in batches) == len(expected)
    finally:
        store.close()
    done = subprocess.run(
        command("audit", "verify", "--db", url, "--json"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"] is True


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL


def messages(root: str, count: int) -> tuple[list[tuple[str, bytes]], list[Row]]:
    """``count`` JSON messages of PER_MESSAGE readings each, round robin over METERS."""
    out: list[tuple[str, bytes]] = []
    rows: list[Row] = []
    for n in range(count):
        meter = METERS[n % len(METERS)]
        block = n // len(METERS)
        payload = []
        for k in range(PER_MESSAGE):
            i = block * PER_MESSAGE + k
            end = START + 900 * (i + 1)
            milli = (n * 7919 + k * 31) % 5000 + 1
            payload.append(
                {
                    "channel": "1.0.1.8.0.255",
                    "interval_end": iso_utc(end),
                    "interval_seconds": 900,
                    "value": f"{milli // 1000}.{milli % 1000:03d}",
                    "unit": "kWh",
                }
            )
            rows.append((meter, end, milli * 1000))  # mWh
        out.append((f"{root}/readings/{meter}", json.dumps(payload).encode()))
    return out, rows


class Publisher(threading.Thread):
    """Publishes at QoS 1, each message until the broker confirms it (a message whose
    PUBACK was lost with the broker is sent again: at least once), ``pace`` s apart."""

    def __init__(self, port: int, items: Sequence[tuple[str, bytes]], pace: float) -> None:
        super().__init__(daemon=True)
        self.port, self.items, self.pace = port, items, pace
        self.sent = 0
        self.retries = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._publish())
        except BaseException as exc:  # reported by the test thread
            self.error = exc

    async def _publish(self) -> None:
        deadline = time.monotonic() + 45
        while self.sent < len(self.items):
            if time.monotonic() > deadline:
                raise TimeoutError("publisher could not finish")
            try:
                async with aiomqtt.Client(MQTT_HOST, self.port, timeout=3) as client:
                    while self.sent < len(self.items):
                        topic, payload = self.items[self.sent]
                        await client.publish(topic, payload, qos=1, timeout=3)
                        self.sent += 1
                        await asyncio.sleep(self.pace)
            except aiomqtt.MqttError:
                self.retries += 1
                await asyncio.sleep(0.2)


def listen_args(url: str, root: str, client: str, group: str, port: int, idle: float) -> list[str]:
    return command(
        "mqtt", "listen", "--db", url, "--root", root, "--client-id", client, "--group", group,
        "--host", MQTT_HOST, "--port", str(port), "--until-idle", str(idle), "--json",
    )  # fmt: skip


def run_listener(args: list[str], timeout: float = 60) -> dict[str, object]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout))


# -- the collector killed with SIGKILL -----------------------------------------------------
@pytest.mark.slow
def test_mqtt_listener_killed_with_sigkill_then_restarted_stores_everything_once(
    tmp_path: Path,
) -> None:
    require_mqtt()
    url = new_db(tmp_path)
    root, client, group = unique_root(), unique_id("kill"), unique_id("grp")
    items, expected = messages(root, 320)  # 3 200 readings
    run_listener(listen_args(url, root, client, group, MQTT_PORT, 0.5))  # the session exists
    publisher = Publisher(MQTT_PORT, items, pace=0.004)
    publisher.start()
    first = subprocess.Popen(
        listen_args(url, root, client, group, MQTT_PORT, 30),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for(lambda: stored_count(url) >= 300, 40, "the first readings to be stored")
    finally:
        kill(first)
    at_kill = stored_count(url)
    publisher.join(60)
    assert publisher.error is None and publisher.sent == len(items)
    assert 0 < at_kill < len(expected)  # killed part-way
    again = run_listener(listen_args(url, root, client, group, MQTT_PORT, 3))
    assert again["dead_letters"] == 0 and again["quarantined"] == 0
    assert_exactly_once(url, expected)
    # everything was acknowledged: a third run receives nothing
    assert run_listener(listen_args(url, root, client, group, MQTT_PORT, 1))["messages"] == 0


def vendor_poll_args(url: str, api: VendorApi, until: str) -> list[str]:
    return command(
        "vendor", "poll", "--base-url", api.base_url, "--client-id", "meterledger",
        "--client-secret", "secret", "--style", "cursor", "--until", until,
        "--create-meters", "--breaker-cooldown", "0.5", "--db", url, "--json",
    )  # fmt: skip


@pytest.mark.slow
def test_vendor_poll_killed_with_sigkill_resumes_from_the_mark_failing_and_throttled(
    tmp_path: Path,
) -> None:
    url = new_db(tmp_path, meters=())
    config = VendorConfig(
        meters=4,
        intervals=96 * 4,
        page_size=32,
        slow_rate=1.0,
        slow_seconds=0.03,
        fail_rate=0.2,
        rate_limit=15,
    )
    until = iso_utc(config.start + config.intervals * config.interval_seconds)
    with VendorApi(config) as api:
        expected = [(m, end, value) for m, end, value in api.readings]
        assert len(expected) == 4 * 96 * 4
        first = subprocess.Popen(
            vendor_poll_args(url, api, until),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            wait_for(lambda: stored_count(url) >= 200, 40, "the first pages to be stored")
        finally:
            kill(first)
        at_kill = stored_count(url)
        assert 0 < at_kill < len(expected)
        store = open_store(url)
        try:
            mark = store.feed_mark("vendor")
        finally:
            store.close()
        assert mark is not None  # written with the stored pages
        # a poll can still fail after its retries (20% of calls fail); the next one resumes
        reports = []
        for _ in range(6):
            done = subprocess.run(
                vendor_poll_args(url, api, until),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if done.returncode == 0:
                reports.append(json.loads(done.stdout))
                break
        assert reports, "no poll completed in six tries"
        assert reports[-1]["mark"] == "2024-06-05T00:00:00+00:00"
        assert api.stats.failed > 0  # the failures really happened
    assert_exactly_once(url, expected)
    store = open_store(url)
    try:
        assert store.feed_mark("vendor") == "2024-06-05T00:00:00+00:00"
    finally:
        store.close()


# -- the broker restarted mid-stream -------------------------------------------------------
@pytest.mark.slow
def test_broker_restarted_mid_stream_loses_and_duplicates_nothing(
    tmp_path: Path, broker: Broker
) -> None:
    url = new_db(tmp_path)
    root, client, group = unique_root(), unique_id("restart"), ""
    items, expected = messages(root, 300)
    run_listener(listen_args(url, root, client, group, broker.port, 0.5))  # the session
    listener = subprocess.Popen(
        listen_args(url, root, client, group, broker.port, 4),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    publisher = Publisher(broker.port, items, pace=0.02)  # 6 s of messages
    try:
        publisher.start()
        # the restart must fall mid-stream for both: stored some, not yet published all
        wait_for(lambda: stored_count(url) >= 100, 40, "the first readings to be stored")
        assert publisher.sent < len(items), "the publisher finished before the restart"
        broker.stop()
        at_stop = stored_count(url)
        time.sleep(1.0)  # the publisher and the listener both see it gone
        broker.start()
        publisher.join(60)
        assert publisher.error is None and publisher.sent == len(items)
        out, _ = listener.communicate(timeout=60)
    finally:
        if listener.poll() is None:
            kill(listener)
    assert listener.returncode == 0
    report = json.loads(out)
    got = set(stored_rows(url))
    lost = sorted({i // PER_MESSAGE for i, r in enumerate(expected) if r not in got})
    assert lost == []
    assert 0 < at_stop < len(expected)  # the broker went away part-way
    assert int(report["reconnects"]) >= 1 and publisher.retries >= 1
    assert report["dead_letters"] == 0 and report["quarantined"] == 0
    assert_exactly_once(url, expected)
