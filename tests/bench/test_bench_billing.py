"""The billing benchmark runs in-process on a tiny workload and prints every key of its JSON
contract (speed is not asserted here: the figures are in docs/benchmarks.md)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
KEYS = {
    "intervals",
    "accounts",
    "seconds",
    "determinants_s",
    "rating_s",
    "intervals_per_s",
    "bills_per_s",
    "ms_per_bill",
    "peak_memory_mb",
    "usage_mb",
    "pysam_ms_per_bill",
    "pysam_sample",
    "pysam_max_diff",
    "speedup_vs_pysam",
    "total_billed",
    "targets",
    "meets_targets",
}


def load_bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))  # for its sibling module billing_pysam
    spec = importlib.util.spec_from_file_location("bench_billing", BENCH / "billing.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_billing", module)
    spec.loader.exec_module(module)
    return module


def test_bench_prints_its_json_contract(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_bench(monkeypatch)
    figures = bench.main(["--accounts", "50", "--pysam-sample", "2", "--json"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == figures
    assert set(figures) == KEYS
    assert figures["accounts"] == 50
    assert figures["intervals"] == 50 * 30 * 96
    assert figures["pysam_sample"] == 2
    for key in ("seconds", "intervals_per_s", "bills_per_s", "ms_per_bill", "peak_memory_mb"):
        assert figures[key] > 0, key
    assert figures["pysam_ms_per_bill"] > 0
    assert figures["speedup_vs_pysam"] > 0
    assert float(figures["total_billed"]) > 50 * 250  # every bill above the $250 minimum
    # the same month billed by SAM agrees within cents (lines rounded to the cent)
    assert 0 <= figures["pysam_max_diff"] < 0.05
    assert figures["targets"] == {"intervals_per_s": 2_000_000, "speedup": 10, "memory_mb": 4096}
    assert set(figures["meets_targets"]) == set(figures["targets"])
    assert all(isinstance(v, bool) for v in figures["meets_targets"].values())


def test_bench_bills_a_prorated_cycle(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_bench(monkeypatch)
    figures = bench.main(["--accounts", "20", "--days", "7", "--pysam-sample", "1"])
    assert "intervals_per_s" in capsys.readouterr().out
    assert figures["intervals"] == 20 * 7 * 96
    assert figures["pysam_max_diff"] is None  # SAM cannot bill part of a month
    assert float(figures["total_billed"]) > 0


def test_bench_bills_are_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bills themselves: one per account, each with lines and a positive total."""
    bench = load_bench(monkeypatch)
    tariff = bench.load_tariff(bench.TARIFF)
    requests = bench.make_requests(tariff, 5, 30)
    usage = bench.make_usage(tariff, 5, 30, seed=1)
    bills = [bill for bill, _ in bench.Rater(tariff).bill_all(requests, usage)]
    assert [b.account for b in bills] == [f"ACCT-{n:05d}" for n in range(5)]
    assert all(b.total > 0 and b.determinants.intervals == 30 * 96 for b in bills)
    assert len({b.total for b in bills}) == 5  # each account has its own load
