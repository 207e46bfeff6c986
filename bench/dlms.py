"""DLMS benchmark: client CPU per GET against our simulator's sans-IO server, and a fleet
read of many simulated meters over real loopback TCP, with the memory both took.

    python bench/dlms.py [--meters 10000] [--concurrency 1000] [--latency-ms 50-500]
                         [--gets 20000] [--seed 1] [--timeout 5] [--no-ingest] [--json]

All figures come from one run:

* **a. Client CPU per GET** (``client_ms_per_get*``). A ``DlmsClient`` and the simulator's
  ``DlmsServer`` over a ``SimulatedDlmsMeter`` are wired together in memory; after the
  association, ``--gets`` GETs of the import register (3, 1.0.1.8.0.255, 2) are exchanged
  and the server's answers recorded. A second client built from the same settings (same
  invocation counters and challenge, so it sends the same bytes: checked) is then fed
  those answers, and ``time.process_time`` covers only it: per GET ``client.get`` (encode,
  seal, frame), ``receive_data``, ``next_event`` until ``NEED_DATA`` (unframe, open,
  decode) and ``data_to_send``. Unciphered is the public client (SAP 16); ``suite0`` is
  HLS-GMAC with every APDU authenticated and encrypted (AES-GCM-128, glo ciphering). The
  wrapper figures are the ones against the targets; HDLC is an extra figure.
  ``server_ms_per_get*`` is the server's share of the live exchange, for scale. The
  anchors (``ANCHORS``) are the issue author's measurements of other stacks, not re-run
  here; ``faster_than_*`` is anchor / ours.
* **b. The fleet read** (``fleet``). The simulator runs in a subprocess
  (``bench/dlms_workload.py``: ``DlmsSimulator`` on 127.0.0.1, every meter a logical
  device of one port, a fixed "now" one day after the profile's start, so each meter holds
  exactly 96 quarter-hour rows) and delays every response by a uniform, seeded
  ``--latency-ms``. This process runs ``FleetCollector`` over real TCP with
  ``--concurrency`` workers: per meter connect, associate (public client, wrapper,
  unciphered), read the clock, the profile's capture objects, capture period and the
  register's scaler_unit, the buffer by range over the last 24 h (96 rows, two data
  blocks at the simulator's 1,024-octet PDU), release. ``fleet`` hands the readings to a
  ledger that counts them (no store); ``fleet_ingest`` (skipped with ``--no-ingest``) is
  the same read with the collector's ``StoreLedger`` into a temporary SQLite store, the
  whole ingest pipeline included. Each run has a fresh simulator process.
  ``round_trips_per_meter`` counts requests sent (each answered by one response);
  ``latency_floor_s`` is the time the simulated latency alone would take at that
  concurrency (round trips × mean latency / concurrency); ``meter_s_*`` is one meter's
  time from the first attempt to its handoff. Where the time goes, per process: CPU
  seconds, the share of it in the cyclic garbage collector (``*_gc_s``, ``gc.callbacks``;
  its settings are left as they are) and how late each event loop ran a 50 ms timer
  (``*_loop_lag_ms_*``). Each simulated meter's profile is built before the port opens
  (``simulator_prebuild_s``, outside the figures), as a real meter's data exists before
  it is read. ``other_processes_cpu_s`` is what the rest of the machine used meanwhile
  (``/proc/stat``): more than a second or so means the figures are not of a quiet machine.
* **c. Memory**: the peak resident set (``VmHWM``, else ``ru_maxrss``) of this process
  (the collector; part a and the runs before are in it too, so it is a high-water mark)
  and of each simulator process. The target is on their sum.

``RLIMIT_NOFILE`` is raised to its hard limit first (``nofile_limit``); the simulator
process inherits it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dlms_workload import (
    END,
    CountingConnector,
    GcTimer,
    GetFigure,
    LoopLag,
    NullLedger,
    SimulatorProcess,
    bench_fleet,
    cpu_seconds,
    machine_busy_s,
    measure_gets,
    others_cpu_s,
    peak_rss_mb,
    raise_nofile,
    sqlite_store,
)
from meterledger.cli.collect import StoreLedger
from meterledger.collect.fleet import CollectRun, FleetCollector, Ledger

# ms of client CPU per GET (unciphered, suite 0), measured by the issue author (issue 5)
ANCHORS: dict[str, tuple[float, float]] = {
    "dlms_cosem": (0.055, 0.13),
    "gurux_dlms": (0.075, 1.4),
}
TARGETS: dict[str, float] = {
    "client_ms_per_get": 0.03,
    "client_ms_per_get_suite0": 0.06,
    "fleet_seconds": 60,
    "memory_mb": 1024,
}


def _latency(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    try:
        values = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"A-B or A in milliseconds, not {text!r}") from None
    if not 0 <= values[0] <= values[1]:
        raise argparse.ArgumentTypeError(f"0 <= low <= high, not {text!r}")
    return values


async def _run(collector: FleetCollector) -> tuple[CollectRun, dict[str, float]]:
    async with LoopLag() as lag:
        run = await collector.run()
    return run, lag.figures()


def read_fleet(
    args: argparse.Namespace, ledger: Ledger, latency: tuple[float, float]
) -> tuple[dict[str, Any], CollectRun]:
    """One fleet read against a fresh simulator process; its figures and the run."""
    sim = SimulatorProcess(args.meters, latency, args.seed)
    try:
        fleet = bench_fleet(sim.port, args.meters, args.concurrency, args.timeout)
        connector = CountingConnector()
        collector = FleetCollector(fleet, ledger, connect=connector, clock=END.timestamp)
        gc.collect()
        timer = GcTimer().start()
        busy = machine_busy_s()
        cpu, started = cpu_seconds(), time.perf_counter()
        run, lag = asyncio.run(_run(collector))
        seconds = time.perf_counter() - started
        cpu = cpu_seconds() - cpu
        collected = timer.stop()
        simulator = sim.stop()
        others = others_cpu_s(busy, cpu + simulator["cpu_s"])
    finally:
        sim.kill()
    meters = len(run.results)
    failed = run.failed
    intervals = sum(r.intervals for r in run.results)
    mean_latency = (latency[0] + latency[1]) / 2000
    durations = sorted(r.seconds for r in run.results)
    figures: dict[str, Any] = {
        "seconds": round(seconds, 2),
        "meters_per_s": round(meters / seconds, 1),
        "failures": len(failed),
        "first_failure": failed[0].message if failed else None,
        "retries": sum(r.attempts for r in run.results) - meters,
        "round_trips_per_meter": round(connector.requests / meters, 2),
        "connections": connector.connections,
        "peak_connections": connector.open_peak,
        "intervals": intervals,
        "intervals_per_meter": round(intervals / max(1, meters - len(failed)), 2),
        "latency_floor_s": round(
            connector.requests * mean_latency / min(args.concurrency, meters), 2
        ),
        "meter_s_p50": round(durations[len(durations) // 2], 2),
        "meter_s_p99": round(durations[min(len(durations) - 1, len(durations) * 99 // 100)], 2),
        "meter_s_max": round(durations[-1], 2),
        "collector_cpu_s": round(cpu, 2),
        "collector_gc_s": collected["gc_s"],
        "collector_gc_full_s": collected["gc_full_s"],
        "collector_gc_full_collections": collected["gc_full_collections"],
        "collector_loop_lag_ms_mean": lag["loop_lag_ms_mean"],
        "collector_loop_lag_ms_p99": lag["loop_lag_ms_p99"],
        "collector_loop_lag_ms_max": lag["loop_lag_ms_max"],
        "simulator_cpu_s": simulator["cpu_s"],
        "simulator_gc_s": simulator["gc_s"],
        "simulator_gc_full_s": simulator["gc_full_s"],
        "simulator_gc_full_collections": simulator["gc_full_collections"],
        "simulator_loop_lag_ms_mean": simulator["loop_lag_ms_mean"],
        "simulator_loop_lag_ms_p99": simulator["loop_lag_ms_p99"],
        "simulator_loop_lag_ms_max": simulator["loop_lag_ms_max"],
        "simulator_prebuild_s": simulator["prebuild_s"],
        "simulator_responses": simulator["responses"],
        "other_processes_cpu_s": others,
        "collector_peak_rss_mb": round(peak_rss_mb(), 1),
        "simulator_peak_rss_mb": simulator["peak_rss_mb"],
    }
    return figures, run


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--latency-ms", type=_latency, default=(50.0, 500.0))
    parser.add_argument("--gets", type=int, default=20_000, help="GETs timed per figure (a)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=5.0, help="s per request (b)")
    parser.add_argument("--no-ingest", action="store_true", help="skip the run into SQLite")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.meters < 1 or args.concurrency < 1 or args.gets < 1:
        parser.error("--meters, --concurrency and --gets must be at least 1")
    soft, _ = raise_nofile()
    if soft < 2 * min(args.concurrency, args.meters) + 64:
        parser.error(f"open files limited to {soft}: too few for {args.concurrency} sockets")

    # a. client CPU per GET
    busy, own = machine_busy_s(), cpu_seconds()
    gets: dict[tuple[str, bool], GetFigure] = {
        (framing, secure): measure_gets(framing, secure, args.gets)
        for framing in ("wrapper", "hdlc")
        for secure in (False, True)
    }
    plain, ciphered = gets["wrapper", False], gets["wrapper", True]
    figures: dict[str, Any] = {
        "gets": args.gets,
        "client_ms_per_get": round(plain.client_ms, 4),
        "client_ms_per_get_suite0": round(ciphered.client_ms, 4),
        "hdlc_client_ms_per_get": round(gets["hdlc", False].client_ms, 4),
        "hdlc_client_ms_per_get_suite0": round(gets["hdlc", True].client_ms, 4),
        "server_ms_per_get": round(plain.server_ms, 4),
        "server_ms_per_get_suite0": round(ciphered.server_ms, 4),
        "get_bytes": [plain.request_bytes, plain.response_bytes],
        "get_bytes_suite0": [ciphered.request_bytes, ciphered.response_bytes],
        "anchors_ms_per_get": {name: list(pair) for name, pair in ANCHORS.items()},
        "gets_other_processes_cpu_s": others_cpu_s(busy, cpu_seconds() - own),
    }
    for name, (anchor, anchor_ciphered) in ANCHORS.items():
        figures[f"faster_than_{name}"] = round(anchor / plain.client_ms, 2)
        figures[f"faster_than_{name}_suite0"] = round(anchor_ciphered / ciphered.client_ms, 2)

    # b. and c. the fleet read, without and with the store
    figures.update(
        meters=args.meters,
        concurrency=args.concurrency,
        latency_ms=list(args.latency_ms),
        nofile_limit=soft,
    )
    figures["fleet"], _ = read_fleet(args, NullLedger(), args.latency_ms)
    figures["fleet_ingest"] = None
    if not args.no_ingest:
        with tempfile.TemporaryDirectory(prefix="ml-bench-dlms-") as tmp:
            store = sqlite_store(Path(tmp) / "dlms.db", args.meters)
            try:
                ledger = StoreLedger(store, now=lambda: datetime.now(UTC))
                ingest, run = read_fleet(args, ledger, args.latency_ms)
                ingest["accepted"] = run.handoff.accepted
                ingest["quarantined"] = run.handoff.quarantined
                ingest["stored_readings"] = store.count("readings")
            finally:
                store.close()
        figures["fleet_ingest"] = ingest

    fleet = figures["fleet"]
    collector_mb = peak_rss_mb()
    simulator_mb = max(
        fleet["simulator_peak_rss_mb"],
        figures["fleet_ingest"]["simulator_peak_rss_mb"] if figures["fleet_ingest"] else 0,
    )
    figures["collector_peak_rss_mb"] = round(collector_mb, 1)
    figures["simulator_peak_rss_mb"] = simulator_mb
    figures["targets"] = dict(TARGETS)
    meets = {
        "client_ms_per_get": plain.client_ms <= TARGETS["client_ms_per_get"],
        "client_ms_per_get_suite0": ciphered.client_ms <= TARGETS["client_ms_per_get_suite0"],
        "fleet_seconds": fleet["seconds"] < TARGETS["fleet_seconds"],
        "fleet_failures": fleet["failures"] == 0,
        "memory_mb": collector_mb + simulator_mb < TARGETS["memory_mb"],
    }
    if figures["fleet_ingest"] is not None:
        meets["fleet_ingest_seconds"] = (
            figures["fleet_ingest"]["seconds"] < TARGETS["fleet_seconds"]
        )
        meets["fleet_ingest_failures"] = figures["fleet_ingest"]["failures"] == 0
    figures["meets_targets"] = meets
    if args.json:
        print(json.dumps(figures))
    else:
        _print(figures)
    return figures


def _print(figures: dict[str, Any]) -> None:
    def show(name: str, value: object, indent: int = 0) -> None:
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        shown = f"{value:,}" if numeric else str(value)
        print(f"{' ' * indent}{name:>30}: {shown}")

    for name, value in figures.items():
        if isinstance(value, dict) and name != "anchors_ms_per_get":
            print(f"{name}:")
            for key, inner in value.items():
                show(key, inner, 2)
        else:
            show(name, value)
    for suffix, label in (("", "unciphered"), ("_suite0", "suite 0")):
        ours = figures[f"client_ms_per_get{suffix}"]
        for name in ANCHORS:
            print(
                f"{label}: {ours} ms per GET, {figures[f'faster_than_{name}{suffix}']}× faster "
                f"than the {name.replace('_', '-')} anchor"
            )


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
