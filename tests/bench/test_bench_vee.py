"""The VEE benchmark runs in-process on a small workload and prints every key of its JSON
contract (speed is not asserted here: the figures are in docs/benchmarks.md)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
KEYS = {
    "intervals",
    "channels",
    "rules",
    "seconds",
    "intervals_per_s",
    "findings",
    "held",
    "findings_by_rule",
    "seconds_by_rule",
    "baseline_seconds",
    "baseline_intervals_per_s",
    "baseline_flags",
    "speedup",
    "plain_rolling_seconds",
    "plain_rolling_flags",
    "plain_rolling_speedup",
    "estimate_seconds",
    "estimated",
    "peak_memory_mb",
    "target_intervals_per_s",
    "met",
}
# the faults the workload injects and the rules of rules_time that must find them
TIME_RULES = {
    "COMPLETENESS",
    "GAP",
    "DUPLICATE",
    "CLOCK_DRIFT",
    "CLOCK_SET",
    "FUTURE_TIMESTAMP",
    "ESTIMATION_TOO_LONG",
}


def load_bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_vee", BENCH / "vee.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_vee", module)
    spec.loader.exec_module(module)
    return module


def test_bench_prints_its_json_contract(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_bench(monkeypatch)
    figures = bench.main(["--intervals", "60000", "--json"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == figures
    assert set(figures) == KEYS
    # 21 channels of 2,880 rows less the removed and plus the added ones
    assert figures["channels"] == 21
    assert abs(figures["intervals"] - 60_000) < 200
    assert figures["rules"] >= len(TIME_RULES) + 1
    for key in ("seconds", "intervals_per_s", "baseline_seconds", "baseline_intervals_per_s"):
        assert figures[key] > 0, key
    assert figures["speedup"] == pytest.approx(
        figures["baseline_seconds"] / figures["seconds"], rel=0.1
    )
    assert set(figures["findings_by_rule"]) >= TIME_RULES
    assert sum(figures["findings_by_rule"].values()) == figures["findings"]
    assert 0 < figures["held"] <= figures["findings"]
    assert figures["baseline_flags"] > 0
    assert figures["plain_rolling_seconds"] > 0 and figures["plain_rolling_flags"] >= 0
    assert figures["estimate_seconds"] > 0 and figures["estimated"] > 0  # the gap faults
    assert figures["plain_rolling_speedup"] == pytest.approx(
        figures["plain_rolling_seconds"] / figures["seconds"], rel=0.1
    )
    assert set(figures["seconds_by_rule"]) >= TIME_RULES | {"partition", "findings"}
    assert figures["target_intervals_per_s"] == 1_000_000
    assert isinstance(figures["met"], bool)


def test_bench_profile_prints_seconds_per_rule(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_bench(monkeypatch)
    bench.main(["--intervals", "6000", "--days", "14", "--profile"])
    out = capsys.readouterr().out
    assert "intervals_per_s" in out and "seconds per rule and phase:" in out
    assert "COMPLETENESS:" in out.split("seconds per rule and phase:")[1]


def test_workload_is_deterministic_and_shaped(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_bench(monkeypatch)
    a, regs, clocks = bench.make_workload(3 * 2880, 30, seed=3)
    b, _, _ = bench.make_workload(3 * 2880, 30, seed=3)
    assert np.array_equal(a.value, b.value) and np.array_equal(a.interval_end, b.interval_end)
    assert len(a.channels) == 3
    for c in range(3):  # each channel in time order, checked after a week of history
        ends = a.interval_end[a.offsets[c] : a.offsets[c + 1]]
        assert np.all(np.diff(ends) >= 0)
        assert a.check_from[c] == bench.START + 7 * 86_400
        assert a.check_to[c] == ends[-1]
    assert len(regs.read_at) > 0 and len(clocks.read_at) == 3 * 30
    assert set(a.channels.timezone) <= {z for z, _ in bench.ZONES}
