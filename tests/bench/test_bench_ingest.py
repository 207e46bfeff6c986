"""The ingest benchmark runs and prints every key of its JSON contract (speed is not asserted
here: the figures are in docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ingest.py"
KEYS = {
    "rows",
    "rows_per_s_empty",
    "rows_per_s_replay",
    "limit_rows_per_s",
    "naive_rows_per_s",
    "ratio_to_limit",
    "ratio_to_naive",
    "peak_rss_mb",
}


def test_bench_prints_its_json_contract() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--backend",
            "sqlite",
            "--rows",
            "6000",
            "--naive-rows",
            "2000",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures) == KEYS
    assert figures["rows"] == 6000
    assert all(figures[k] > 0 for k in KEYS)
    ratio = figures["rows_per_s_empty"] / figures["limit_rows_per_s"]
    assert abs(figures["ratio_to_limit"] - ratio) < 0.01
