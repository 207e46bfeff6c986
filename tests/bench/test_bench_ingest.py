"""The ingest benchmark runs on each backend and prints every key of its JSON contract (speed
is not asserted here: the figures are in docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from backends import ADMIN_URL, require_pg

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ingest.py"
KEYS = {
    "rows",
    "rows_per_s_empty",
    "rows_per_s_replay",
    "limit_rows_per_s",
    "naive_rows_per_s",
    "ratio_to_limit",
    "ratio_to_naive",
    "billing_read_s",
    "peak_rss_mb",
}


def run_bench(*options: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--rows", "6000", "--naive-rows", "2000", "--json", *options],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures) == KEYS
    assert figures["rows"] == 6000
    assert all(figures[k] > 0 for k in KEYS)
    ratio = figures["rows_per_s_empty"] / figures["limit_rows_per_s"]
    assert abs(figures["ratio_to_limit"] - ratio) < 0.01
    return figures


def test_bench_prints_its_json_contract() -> None:
    run_bench("--backend", "sqlite")


def bench_databases() -> set[str]:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'ml\\_bench\\_%'"
        ).fetchall()
    return {name for (name,) in rows}


def test_bench_on_postgresql_prints_its_contract_and_drops_its_databases() -> None:
    require_pg()
    before = bench_databases()
    run_bench("--backend", "postgresql", "--pg-url", ADMIN_URL)
    assert bench_databases() <= before
