"""The DLMS benchmark runs in-process on a tiny workload (20 meters, a simulator subprocess
over loopback TCP) and prints every key of its JSON contract; speed is not asserted here:
the figures are in docs/benchmarks.md."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
KEYS = {
    "gets",
    "client_ms_per_get",
    "client_ms_per_get_suite0",
    "hdlc_client_ms_per_get",
    "hdlc_client_ms_per_get_suite0",
    "server_ms_per_get",
    "server_ms_per_get_suite0",
    "get_bytes",
    "get_bytes_suite0",
    "anchors_ms_per_get",
    "gets_other_processes_cpu_s",
    "faster_than_dlms_cosem",
    "faster_than_dlms_cosem_suite0",
    "faster_than_gurux_dlms",
    "faster_than_gurux_dlms_suite0",
    "meters",
    "concurrency",
    "latency_ms",
    "nofile_limit",
    "fleet",
    "fleet_ingest",
    "collector_peak_rss_mb",
    "simulator_peak_rss_mb",
    "targets",
    "meets_targets",
}
FLEET_KEYS = {
    "seconds",
    "meters_per_s",
    "failures",
    "first_failure",
    "retries",
    "round_trips_per_meter",
    "connections",
    "peak_connections",
    "intervals",
    "intervals_per_meter",
    "latency_floor_s",
    "meter_s_p50",
    "meter_s_p99",
    "meter_s_max",
    "collector_cpu_s",
    "collector_gc_s",
    "collector_gc_full_s",
    "collector_gc_full_collections",
    "collector_loop_lag_ms_mean",
    "collector_loop_lag_ms_p99",
    "collector_loop_lag_ms_max",
    "simulator_cpu_s",
    "simulator_gc_s",
    "simulator_gc_full_s",
    "simulator_gc_full_collections",
    "simulator_loop_lag_ms_mean",
    "simulator_loop_lag_ms_p99",
    "simulator_loop_lag_ms_max",
    "simulator_prebuild_s",
    "simulator_responses",
    "other_processes_cpu_s",
    "collector_peak_rss_mb",
    "simulator_peak_rss_mb",
}
INGEST_KEYS = FLEET_KEYS | {"accepted", "quarantined", "stored_readings"}
METERS = 20
ROWS = 96  # a day of quarter-hours; the first row is the baseline of the first delta


def load_bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))  # for its sibling module dlms_workload
    spec = importlib.util.spec_from_file_location("bench_dlms", BENCH / "dlms.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_dlms", module)
    spec.loader.exec_module(module)
    return module


def check_fleet(fleet: dict[str, object], keys: set[str]) -> None:
    assert set(fleet) == keys
    assert fleet["failures"] == 0, fleet["first_failure"]
    assert fleet["first_failure"] is None
    assert fleet["retries"] == 0
    assert fleet["connections"] == METERS
    assert fleet["peak_connections"] == 10
    assert fleet["intervals"] == METERS * (ROWS - 1)
    assert fleet["intervals_per_meter"] == ROWS - 1
    # association, clock, capture objects, capture period, scaler_unit, profile (2 blocks),
    # release
    assert fleet["round_trips_per_meter"] == 8
    assert fleet["simulator_responses"] == 8 * METERS
    for key in (
        "seconds",
        "meters_per_s",
        "latency_floor_s",
        "collector_cpu_s",
        "simulator_cpu_s",
        "meter_s_p50",
        "meter_s_max",
        "collector_peak_rss_mb",
        "simulator_peak_rss_mb",
    ):
        value = fleet[key]
        assert isinstance(value, int | float) and value > 0, key
    others = fleet["other_processes_cpu_s"]
    assert others is None or (isinstance(others, int | float) and others >= 0)
    for key in FLEET_KEYS:
        if "_gc_" in key or "loop_lag" in key or key == "simulator_prebuild_s":
            measured = fleet[key]
            assert isinstance(measured, int | float) and measured >= 0, key


def test_bench_prints_its_json_contract(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_bench(monkeypatch)
    figures = bench.main(
        [
            "--meters",
            str(METERS),
            "--concurrency",
            "10",
            "--latency-ms",
            "1-5",
            "--gets",
            "200",
            "--json",
        ]
    )
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == figures
    assert set(figures) == KEYS
    assert figures["gets"] == 200
    assert (figures["meters"], figures["concurrency"]) == (METERS, 10)
    assert figures["latency_ms"] == [1, 5]
    assert figures["nofile_limit"] >= 2 * 10
    for key in (
        "client_ms_per_get",
        "client_ms_per_get_suite0",
        "hdlc_client_ms_per_get",
        "hdlc_client_ms_per_get_suite0",
        "server_ms_per_get",
        "server_ms_per_get_suite0",
        "faster_than_dlms_cosem",
        "faster_than_dlms_cosem_suite0",
        "faster_than_gurux_dlms",
        "faster_than_gurux_dlms_suite0",
        "collector_peak_rss_mb",
        "simulator_peak_rss_mb",
    ):
        assert figures[key] > 0, key
    # ciphering costs something, and the ratio is anchor / ours
    assert figures["client_ms_per_get_suite0"] > figures["client_ms_per_get"]
    ratio = 0.055 / figures["client_ms_per_get"]
    assert figures["faster_than_dlms_cosem"] == pytest.approx(ratio, rel=0.02)
    assert figures["get_bytes"][0] < figures["get_bytes_suite0"][0]
    check_fleet(figures["fleet"], FLEET_KEYS)
    ingest = figures["fleet_ingest"]
    check_fleet(ingest, INGEST_KEYS)
    assert ingest["accepted"] == ingest["stored_readings"] == METERS * (ROWS - 1)
    assert ingest["quarantined"] == 0
    assert figures["targets"] == {
        "client_ms_per_get": 0.03,
        "client_ms_per_get_suite0": 0.06,
        "fleet_seconds": 60,
        "memory_mb": 1024,
    }
    assert set(figures["meets_targets"]) == set(figures["targets"]) | {
        "fleet_failures",
        "fleet_ingest_seconds",
        "fleet_ingest_failures",
    }
    assert all(isinstance(v, bool) for v in figures["meets_targets"].values())
    assert figures["meets_targets"]["fleet_failures"] is True


def test_each_framing_is_timed_on_recorded_server_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Part a replays the simulator server's real answers, recorded live: with suite 0 each
    one carries a new server counter, so no single canned answer could stand in."""
    load_bench(monkeypatch)
    import dlms_workload

    for framing in ("wrapper", "hdlc"):
        for secure in (False, True):
            figure = dlms_workload.measure_gets(framing, secure, 20)
            assert figure.client_ms > 0 and figure.server_ms > 0
    _, requests, answers, opening, _ = dlms_workload._record("wrapper", True, 3)
    assert len(requests) == len(answers) == opening + 3
    assert len(set(answers[opening:])) == 3  # a new server counter in every answer
