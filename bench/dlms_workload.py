"""The DLMS benchmark's workload: the client-side GET measurement against our sans-IO server
(part a), and the simulator subprocess, fleet and ledgers of the fleet read (part b).

Run as a script, this module is the simulator process of part b::

    python bench/dlms_workload.py --meters 10000 --latency-ms 50-500 --seed 1

It prints ``PORT <n>`` once it listens on 127.0.0.1, serves until a line (or the end of
stream) arrives on stdin, then prints one JSON object: its CPU seconds while serving, its
peak resident set and the simulator's counters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meterledger.codec.dlms.client import Associated, ClientSettings, DlmsClient, GetResult
from meterledger.codec.dlms.cursor import NEED_DATA
from meterledger.codec.dlms.server import ClientPolicy, DlmsServer, ServerSettings
from meterledger.collect.config import CollectorOptions, Fleet, MeterEndpoint
from meterledger.collect.fleet import ClockSample, HandoffCounts
from meterledger.collect.session import open_transport
from meterledger.collect.transport import Transport
from meterledger.core.reading import Reading
from meterledger.simulate.dlms_meter import SimulatedDlmsMeter

if TYPE_CHECKING:
    from meterledger.store.sqlite import SqliteStore

__all__ = [
    "CLIENT_TITLE",
    "END",
    "REGISTER",
    "START",
    "TZ",
    "CountingConnector",
    "GcTimer",
    "GetFigure",
    "LoopLag",
    "NullLedger",
    "SimulatorProcess",
    "bench_fleet",
    "machine_busy_s",
    "measure_gets",
    "meter_id",
    "others_cpu_s",
    "raise_nofile",
    "sqlite_store",
]

START = datetime(2024, 3, 1, 5, tzinfo=UTC)  # midnight in New York
END = START + timedelta(days=1)  # the simulator's and the collector's fixed "now"
TZ = "America/New_York"
REGISTER = "1.0.1.8.0.255"  # the GET of part a: active energy import, attribute 2
CLIENT_TITLE = b"MLC\x00\x00\x00\x00\x01"
_CTOS = bytes(range(16))  # the HLS challenge of part a: fixed, so that a replay is exact
_STOC = bytes(range(16, 32))


def meter_id(index: int) -> str:
    """The simulator's id for meter ``index`` (0-based)."""
    return f"MTR-{index + 1:05d}"


def raise_nofile() -> tuple[int, int]:
    """Raise the soft limit of open files to the hard limit; the (soft, hard) now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def peak_rss_mb() -> float:
    """This process's peak resident set: ``VmHWM`` where Linux has it (``ru_maxrss`` of a
    child started by ``subprocess`` also counts its parent's peak from before the exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_s() -> float | None:
    """CPU seconds all processes of the machine have used since boot, the hypervisor's
    steal included (``/proc/stat``: every state but idle and iowait), or None where there
    is no such file. The difference over a measurement, less our own processes' CPU, is
    what other processes took."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    jiffies = [int(f) for f in fields[:8]]
    busy = sum(jiffies) - jiffies[3] - jiffies[4]  # less idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def others_cpu_s(busy_before: float | None, own_cpu_s: float) -> float | None:
    """CPU seconds taken by other processes since ``busy_before`` (see machine_busy_s)."""
    now = machine_busy_s()
    if busy_before is None or now is None:
        return None
    return round(max(0.0, now - busy_before - own_cpu_s), 1)


class GcTimer:
    """Time spent in the cyclic garbage collector (``gc.callbacks``), by generation, from
    :meth:`start` on; it only measures, the collector's settings stay as they are."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._since = 0.0
        self._on = False

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._since = time.perf_counter()
        elif self._on:
            generation = info["generation"]
            self.seconds[generation] += time.perf_counter() - self._since
            self.collections[generation] += 1

    def start(self) -> GcTimer:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._on = True
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)
        return self

    def stop(self) -> dict[str, Any]:
        self._on = False
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
        return {
            "gc_s": round(sum(self.seconds), 2),
            "gc_full_s": round(self.seconds[2], 2),
            "gc_full_collections": self.collections[2],
        }


class LoopLag:
    """How late the event loop runs a callback: a task that asks to wake every
    ``every`` seconds and notes the overshoot (queueing behind other callbacks and
    collector pauses). ``async with LoopLag() as lag:`` around the work measured."""

    def __init__(self, every: float = 0.05) -> None:
        self.every = every
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(self.every)
            self.lags.append(loop.time() - asked - self.every)

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._watch(), name="bench-loop-lag")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def figures(self) -> dict[str, float]:
        lags = sorted(self.lags) or [0.0]
        return {
            "loop_lag_ms_mean": round(sum(lags) / len(lags) * 1000, 1),
            "loop_lag_ms_p99": round(lags[min(len(lags) - 1, len(lags) * 99 // 100)] * 1000, 1),
            "loop_lag_ms_max": round(lags[-1] * 1000, 1),
        }


# -- part a: client CPU per GET ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetFigure:
    """One framing and security: client and server ms per GET, the bytes of one exchange."""

    client_ms: float
    client_wall_ms: float
    server_ms: float
    request_bytes: int
    response_bytes: int


def _pair(framing: str, secure: bool) -> tuple[DlmsServer, ClientSettings]:
    """The simulator's sans-IO server for meter 0 (its model, keys and policies) and the
    settings of a client of it: the public client, or HLS-GMAC with suite 0 (glo)."""
    meter = SimulatedDlmsMeter(meter_id(0), seed=1, start=START, days=1, tz=TZ, index=0)
    keys = meter.keys
    policy = (
        ClientPolicy(1, "hls-gmac", security="auth-enc") if secure else ClientPolicy(16, "none")
    )
    server = DlmsServer(
        ServerSettings(
            framing=framing,  # type: ignore[arg-type]
            logical_address=1,
            physical_address=17,
            clients=(policy,),
            ek=keys.ek,
            ak=keys.ak,
            system_title=keys.system_title,
            challenge=_STOC,
            invocation_counters=itertools.count(1),
            max_pdu=1024,  # SimulatorConfig's default
        ),
        meter,
    )
    settings = ClientSettings(
        framing=framing,  # type: ignore[arg-type]
        client_sap=1 if secure else 16,
        auth="hls-gmac" if secure else "none",
        security="auth-enc" if secure else "none",
        ek=keys.ek if secure else None,
        ak=keys.ak if secure else None,
        system_title=CLIENT_TITLE if secure else None,
        challenge=_CTOS if secure else None,
        invocation_counters=range(1, 1 << 32),
    )
    return server, settings


def _serve(server: DlmsServer, data: bytes) -> bytes:
    server.receive_data(data)
    while server.next_event() is not NEED_DATA:
        pass
    return server.data_to_send()


def _record(
    framing: str, secure: bool, gets: int
) -> tuple[ClientSettings, list[bytes], list[bytes], int, float]:
    """A live exchange, client and server in memory: the association, then ``gets`` GETs.
    Returns the client's settings, every request and answer, how many of them belong to
    the association, and the server's CPU seconds for the GETs."""
    server, settings = _pair(framing, secure)
    client = DlmsClient(settings)
    requests: list[bytes] = []
    answers: list[bytes] = []
    out = client.start()
    while True:  # SNRM/UA (HDLC), AARQ/AARE, HLS pass 3/4
        requests.append(out)
        answers.append(_serve(server, out))
        client.receive_data(answers[-1])
        last = None
        while (event := client.next_event()) is not NEED_DATA:
            last = event
        out = client.data_to_send()
        if isinstance(last, Associated):
            break
        if not out:
            raise RuntimeError(f"the association stalled after {last!r}")
    opening = len(answers)
    server_cpu = 0.0
    for _ in range(gets):
        request = client.get(3, REGISTER, 2)
        started = time.process_time()
        answer = _serve(server, request)
        server_cpu += time.process_time() - started
        requests.append(request)
        answers.append(answer)
        client.receive_data(answer)
        event = client.next_event()
        if not isinstance(event, GetResult) or client.next_event() is not NEED_DATA:
            raise RuntimeError(f"GET answered with {event!r}")
        if client.data_to_send():
            raise RuntimeError("the client sent something of its own after a GET")
    return settings, requests, answers, opening, server_cpu


def measure_gets(framing: str, secure: bool, gets: int) -> GetFigure:
    """Client CPU per GET, server excluded: the server's answers are recorded from a live
    exchange first, then a second client built from the same settings (same counters,
    same challenge: it sends the same bytes, checked) is fed them. Timed per GET: ``get``
    (encode, seal, frame), ``receive_data`` of the recorded answer, ``next_event`` until
    ``NEED_DATA`` (unframe, open, decode) and ``data_to_send``."""
    warm = min(200, gets)
    settings, requests, answers, opening, server_cpu = _record(framing, secure, warm + gets)
    client = DlmsClient(settings)
    sent = [client.start()]
    for n in range(opening):
        client.receive_data(answers[n])
        while client.next_event() is not NEED_DATA:
            pass
        reply = client.data_to_send()
        if reply:
            sent.append(reply)
    get, receive, next_event, to_send = (
        client.get,
        client.receive_data,
        client.next_event,
        client.data_to_send,
    )
    results = 0
    for answer in answers[opening : opening + warm]:  # untimed: first-use costs
        sent.append(get(3, REGISTER, 2))
        receive(answer)
        results += type(next_event()) is GetResult
        next_event()
        to_send()
    timed = answers[opening + warm :]
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    for answer in timed:
        sent.append(get(3, REGISTER, 2))
        receive(answer)
        results += type(next_event()) is GetResult
        next_event()
        to_send()
    cpu = time.process_time() - started_cpu
    wall = time.perf_counter() - started_wall
    if sent != requests or results != warm + gets:
        raise RuntimeError("the replayed client did not send what the live one sent")
    return GetFigure(
        client_ms=cpu * 1000 / gets,
        client_wall_ms=wall * 1000 / gets,
        server_ms=server_cpu * 1000 / (warm + gets),
        request_bytes=len(requests[-1]),
        response_bytes=len(answers[-1]),
    )


# -- part b: the simulator process -------------------------------------------------------


class SimulatorProcess:
    """The simulator in its own process (this file run as a script), on a free port."""

    def __init__(self, meters: int, latency_ms: tuple[float, float], seed: int) -> None:
        low, high = latency_ms
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--meters",
                str(meters),
                "--latency-ms",
                f"{low:g}-{high:g}",
                "--seed",
                str(seed),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.process.kill()
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop(self) -> dict[str, Any]:
        """End it; its report (CPU while serving, peak RSS, counters)."""
        out, _ = self.process.communicate("stop\n", timeout=60)
        return dict(json.loads(out.strip().splitlines()[-1]))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


async def _serve_simulator(meters: int, latency: tuple[float, float], seed: int) -> None:
    from meterledger.simulate.dlms_server import DlmsSimulator, MeterBehaviour, SimulatorConfig

    config = SimulatorConfig(
        meters=meters,
        seed=seed,
        port=0,
        start=START,
        days=1,
        tz=TZ,
        behaviour=MeterBehaviour(delay=latency),
        clock=lambda: END,
    )
    async with DlmsSimulator(config) as sim:
        # Every meter's day of profile exists before the head-end calls, as on a real
        # meter (the simulator would otherwise build it on the first GET, on the clock).
        built = time.perf_counter()
        for index in range(meters):
            _ = sim.meter(index).profile
        built = time.perf_counter() - built
        timer = GcTimer().start()
        started = cpu_seconds()
        async with LoopLag() as lag:
            print(f"PORT {sim.port}", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
        serving = cpu_seconds() - started
        collected = timer.stop()
        stats = dict(sim.stats)
    report = {
        "cpu_s": round(serving, 3),
        "prebuild_s": round(built, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        **collected,
        **lag.figures(),
        **stats,
    }
    print(json.dumps(report), flush=True)


def _simulator_main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The DLMS benchmark's simulator process.")
    parser.add_argument("--meters", type=int, required=True)
    parser.add_argument("--latency-ms", default="50-500")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    raise_nofile()
    low, _, high = args.latency_ms.partition("-")
    latency = (float(low) / 1000, float(high or low) / 1000)
    asyncio.run(_serve_simulator(args.meters, latency, args.seed))


# -- part b: the collector's side --------------------------------------------------------


def bench_fleet(port: int, meters: int, concurrency: int, timeout: float = 5.0) -> Fleet:
    """Every simulated meter as the public client reads it over the wrapper: logical
    device ``1 + i`` on one port, unciphered; a day of profile (lookback 24 h)."""
    endpoints = tuple(
        MeterEndpoint(
            meter_id=meter_id(i),
            host="127.0.0.1",
            port=port,
            framing="wrapper",
            client_sap=16,
            server_sap=1 + i,
            timeout=timeout,
            deadline=60.0,
            timezone=TZ,
        )
        for i in range(meters)
    )
    options = CollectorOptions(
        concurrency=min(concurrency, 10_000), lookback_hours=24.0, every_seconds=0.0
    )
    return Fleet(endpoints, options)


class _CountingTransport:
    """A TCP transport that counts what goes through it (each send is one request)."""

    def __init__(self, inner: Transport, counts: CountingConnector) -> None:
        self._inner = inner
        self._counts = counts
        self._closed = False

    @property
    def peer(self) -> str:
        return self._inner.peer

    async def send(self, data: bytes) -> None:
        self._counts.requests += 1
        self._counts.sent_bytes += len(data)
        await self._inner.send(data)

    async def receive(self) -> bytes:
        data = await self._inner.receive()
        self._counts.received_bytes += len(data)
        return data

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._counts.open_now -= 1
        self._inner.close()


@dataclass(slots=True)
class CountingConnector:
    """The collector's default connector (real TCP), counting connections, requests and
    the most connections open at once."""

    connections: int = 0
    requests: int = 0
    sent_bytes: int = 0
    received_bytes: int = 0
    open_now: int = 0
    open_peak: int = 0

    async def __call__(self, meter: MeterEndpoint) -> Transport:
        transport = await open_transport(meter)
        self.connections += 1
        self.open_now += 1
        self.open_peak = max(self.open_peak, self.open_now)
        return _CountingTransport(transport, self)


@dataclass(slots=True)
class NullLedger:
    """A ledger with nothing stored: every channel read from the lookback window, the
    readings counted and dropped (the fleet read without the ingest handoff)."""

    counters: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    batches: int = 0

    def last_read_ms(self, meter_id: str) -> int | None:
        return None

    def last_interval_ends(self, meter_id: str, channels: Sequence[str]) -> dict[str, int | None]:
        return dict.fromkeys(channels)

    def server_counter(self, meter_id: str) -> int:
        return 0

    def reserve_counters(self, meter_id: str, block: int) -> range:
        first = self.counters.get(meter_id, 1)
        self.counters[meter_id] = first + block
        return range(first, first + block)

    def record_session(
        self, meter_id: str, clock: ClockSample | None, server_counter: int | None
    ) -> None:
        return None

    def deliver(self, readings: Sequence[Reading]) -> HandoffCounts:
        self.delivered += len(readings)
        self.batches += 1
        return HandoffCounts(records=len(readings), accepted=len(readings), batches=1)


def sqlite_store(path: Path, meters: int) -> SqliteStore:
    """A new SQLite store at ``path`` with the simulated meters registered (one
    transaction, as an operator would add them), for the run with the ingest handoff.
    Imported here: the simulator process (this file as a script) needs none of it."""
    from meterledger.ingest.pipeline import register_meter
    from meterledger.store.base import MeterRecord
    from meterledger.store.sqlite import SqliteStore

    store = SqliteStore(f"sqlite:///{path}")
    store.migrate()
    with store.write() as tx:
        for i in range(meters):
            register_meter(
                tx,
                MeterRecord(
                    meter_id(i),
                    "electric",
                    "kWh",
                    TZ,
                    None,
                    "active",
                    1_000_000_000,
                    "2024-01-01T00:00:00+00:00",
                ),
            )
    return store


if __name__ == "__main__":
    _simulator_main()
