"""The combined fault suite (issue 7, point 6): every kind of feed at once, into one
PostgreSQL store, each failing its own way while the others run.

* DLMS (``meterledger collect``): killed with SIGKILL part-way, then run again.
* The vendor REST API (``meterledger vendor poll``): failing 20 % of calls under a tight
  rate limit, and down for 1.5 s mid-poll (its breaker opens and the poll pauses); the poll
  is then killed with SIGKILL part-way and run again from its mark.
* MQTT (``meterledger mqtt listen``): a private Mosquitto restarted mid-stream.
* Zigbee (``meterledger zigbee collect``): a meter of the gateway stops answering (E04 while
  the others are read); when it answers again, the next run reads it.
* File drops (``meterledger drops watch``): files arrive while it runs, one of them written
  in two halves (it must not be read half-written); the watcher is killed with SIGKILL
  part-way and run once more.

The end state is checked over the whole store at once, as each feed's own fault test does:
the stored values equal everything the sources served (nothing lost, nothing changed), no
reading has a second version, the audited batches accept exactly the stored count, and
``meterledger audit verify`` passes. The collectors are subprocesses of the entry point;
the simulators run in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import Databases, RawDb, require_pg
from brokers import Broker, broker
from faults.test_kill_collect_drops import (
    DLMS_IDS,
    DROP_METERS,
    PER_FILE,
    ROWS,
    dlms,
    drop_files,
    fleet_file,
    reference_rows,
)
from faults.test_restarts import (
    METERS as MQTT_METERS,
)
from faults.test_restarts import (
    Publisher,
    assert_exactly_once,
    command,
    kill,
    listen_args,
    messages,
    run_listener,
    wait_for,
)
from faults.test_zigbee_faults import METERS as ZIGBEE_METERS
from faults.test_zigbee_faults import config as zigbee_config
from faults.test_zigbee_faults import expected as zigbee_expected
from meterledger.core.time import iso_utc
from meterledger.simulate.dlms_server import DlmsSimulator
from meterledger.simulate.vendor_api import VendorApi, VendorConfig
from meterledger.simulate.zigbee_gateway import ZigbeeGateway, eui64_of
from meterledger.store import open_store
from support import add_meter
from zigbee_support import InThread

__all__ = ["broker", "dlms"]  # the fixtures, imported for this module's test

Row = tuple[str, int, int]


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    require_pg()
    made = Databases("postgresql", tmp_path)
    url = made.new_url("all-at-once")
    store = open_store(url)
    try:
        for meter in [*DLMS_IDS, *ZIGBEE_METERS, *MQTT_METERS, *DROP_METERS]:
            add_meter(store, meter, tz="UTC", capacity=1_000_000_000)
    finally:
        store.close()
    yield url
    made.cleanup()


def count_of(url: str, prefix: str) -> int:
    """Actual readings stored for the meters whose ids start with ``prefix``."""
    try:
        with RawDb(url) as raw:
            return int(
                raw.scalar(
                    "SELECT count(*) FROM readings r JOIN channels c"
                    " ON c.channel_id = r.channel_id"
                    " WHERE r.quality & 1 = 0 AND c.meter_id LIKE ?",
                    (f"{prefix}%",),
                )
            )
    except Exception:  # a killed writer's connection is being torn down: ask again
        return 0


def run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)


class Feeder(threading.Thread):
    """Moves the drop files into the inbox one by one, ``pace`` s apart; the fifth is
    written in two halves, ``pause`` s apart, as a slow upload would."""

    def __init__(self, staging: Path, inbox: Path, pace: float, pause: float) -> None:
        super().__init__(daemon=True)
        self.staging, self.inbox, self.pace, self.pause = staging, inbox, pace, pause
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for n, path in enumerate(sorted(self.staging.iterdir())):
                if n == 4:
                    data = path.read_bytes()
                    with (self.inbox / path.name).open("wb") as out:
                        out.write(data[: len(data) // 2])
                        out.flush()
                        os.fsync(out.fileno())
                        time.sleep(self.pause)
                        out.write(data[len(data) // 2 :])
                    path.unlink()
                else:
                    os.replace(path, self.inbox / path.name)
                time.sleep(self.pace)
        except BaseException as exc:  # reported by the test thread
            self.error = exc


@pytest.mark.slow
def test_every_feed_at_once_each_failing_its_own_way_stores_every_reading_once(
    tmp_path: Path, pg_url: str, dlms: DlmsSimulator, broker: Broker
) -> None:
    url = pg_url
    # -- the sources ------------------------------------------------------------------------
    vendor = VendorConfig(meters=3, intervals=96 * 3, page_size=32, fail_rate=0.2, rate_limit=20)
    root = f"meterledger-faults/{os.getpid()}-{time.monotonic_ns()}/v1"
    items, mqtt_rows = messages(root, 200)
    staging, inbox = tmp_path / "staging", tmp_path / "inbox"
    staging.mkdir()
    inbox.mkdir()
    _, drop_rows = drop_files(staging)
    fleet = fleet_file(tmp_path, dlms.port)
    gateway_config = zigbee_config(0.01)
    until = iso_utc(vendor.start + vendor.intervals * vendor.interval_seconds)

    collect = command("collect", "--fleet", str(fleet), "--db", url, "--json")
    poll = command(
        "vendor", "poll", "--base-url", "{base}", "--client-id", "meterledger",
        "--client-secret", "secret", "--until", until, "--create-meters",
        "--breaker-cooldown", "0.5", "--patience", "60", "--db", url, "--json",
    )  # fmt: skip
    watch = ["drops", "watch", str(inbox), "--settle", "0.6", "--db", url, "--json"]
    client = f"all-at-once-{os.getpid()}"
    run_listener(listen_args(url, root, client, "", broker.port, 0.5))  # the session exists

    with VendorApi(vendor) as api, InThread(ZigbeeGateway(gateway_config)) as gateway:
        poll = [a.replace("{base}", api.base_url) for a in poll]
        gateway.dark.add(0)  # the first Zigbee meter stops answering
        zigbee = ["zigbee", "collect", "--host", "127.0.0.1", "--port", str(gateway.port)]
        zigbee += ["--periods", "8", "--timeout", "1", "--db", url, "--json"]
        for index, meter_id in enumerate(ZIGBEE_METERS):
            zigbee += ["--meter", f"{eui64_of(index).hex()}={meter_id}"]
        zigbee = command(*zigbee)

        publisher = Publisher(broker.port, items, pace=0.01)
        feeder = Feeder(staging, inbox, pace=0.1, pause=0.3)  # 8 s of files
        listener = subprocess.Popen(
            listen_args(url, root, client, "", broker.port, 5),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        collector, poller = start(collect), start(poll)
        watcher = start(command(*watch, "--interval", "0.1"))
        publisher.start()
        feeder.start()
        dark_run = subprocess.Popen(  # at the same time as all the others
            zigbee, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        try:
            # DLMS and the vendor poll killed part-way, the broker restarted mid-stream
            wait_for(lambda: count_of(url, "MTR-") >= 3 * (ROWS - 1), 90, "DLMS meters stored")
            kill(collector)
            wait_for(lambda: count_of(url, "DRP-") >= 10 * PER_FILE, 90, "drop files stored")
            kill(watcher)  # while the files still arrive
            wait_for(lambda: count_of(url, "VND-") >= 64, 90, "vendor pages stored")
            api.outage(1.5)  # down mid-poll: its breaker opens, the poll pauses, then goes on
            wait_for(lambda: api.stats.outage > 0, 30, "the poll to meet the outage")
            wait_for(lambda: count_of(url, "VND-") >= 250, 90, "vendor pages after the outage")
            kill(poller)
            wait_for(lambda: count_of(url, "FLT-") >= 300, 90, "MQTT readings stored")
            broker.stop()
            time.sleep(1.0)
            broker.start()
            dark_out, _ = dark_run.communicate(timeout=90)
        finally:
            for proc in (collector, poller, watcher, dark_run):
                if proc.poll() is None:
                    kill(proc)
        killed_at = {p: count_of(url, p) for p in ("MTR-", "VND-", "DRP-")}

        # -- the reruns ---------------------------------------------------------------------
        again = run(collect)
        assert again.returncode == 0, again.stdout + again.stderr
        for _ in range(6):  # at 20 % failures a poll can still end after its retries
            polled = run(poll)
            if polled.returncode == 0:
                break
        assert polled.returncode == 0, polled.stdout + polled.stderr
        assert json.loads(polled.stdout)["mark"] == until.replace("Z", "+00:00")
        assert dark_run.returncode == 1  # one meter did not answer: E04
        dark = json.loads(dark_out)
        codes = {r["meter_id"]: r["code"] for r in dark["results"]}
        assert codes.pop(ZIGBEE_METERS[0]) == "E04" and set(codes.values()) == {None}
        gateway.dark.clear()  # it answers again: the next run reads it
        lit = run(zigbee)
        assert lit.returncode == 0, lit.stdout + lit.stderr
        publisher.join(60)
        feeder.join(60)
        assert publisher.error is None and publisher.sent == len(items)
        assert feeder.error is None
        watched = run(command(*watch, "--once"))
        assert watched.returncode == 0, watched.stdout + watched.stderr
        out, _ = listener.communicate(timeout=90)
        assert listener.returncode == 0
        zigbee_rows = zigbee_expected(gateway)
        vendor_rows = list(api.readings)
        assert api.stats.failed > 0 and api.stats.outage > 0  # the failures happened

    heard = json.loads(out)
    assert int(heard["reconnects"]) >= 1 and heard["dead_letters"] == 0
    for prefix, total in (
        ("MTR-", len(DLMS_IDS) * (ROWS - 1)),
        ("VND-", len(vendor_rows)),
        ("DRP-", len(drop_rows)),
    ):
        assert 0 < killed_at[prefix] < total, (prefix, killed_at[prefix])  # killed part-way
    dlms_rows = reference_rows(tmp_path, fleet)
    every: list[Row] = [*dlms_rows, *vendor_rows, *mqtt_rows, *zigbee_rows, *drop_rows]
    assert_exactly_once(url, every)
