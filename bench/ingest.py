"""Ingest benchmark: our end-to-end rate against the backend's raw limit and a naive baseline.

    python bench/ingest.py [--backend sqlite|postgresql] [--pg-url URL] [--rows 2000000]
                           [--naive-rows 500000] [--json]

All figures come from one run on one machine, from the same canonical CSV:

* ``rows_per_s_empty`` / ``rows_per_s_replay``: ``Ingestor.ingest_path`` on an empty store,
  then the same file again (every row a duplicate).
* ``billing_read_s``: the best of 3 ``store.billing_read`` of the month for every meter,
  on that store once both ingests are done; each read must return every stored row.
* ``limit_rows_per_s``: the raw limit, with pre-parsed rows, into the same keyed ``readings``
  table, in the same 100,000-row transactions, no validation. SQLite: executemany
  ``INSERT OR IGNORE`` on a connection with the store's settings. PostgreSQL: binary
  ``COPY`` into the partitioned table.
* ``naive_rows_per_s``: a pydantic model validated per row (on the first ``--naive-rows``
  rows: it is slow), then SQLite: one ``INSERT OR IGNORE`` per row; PostgreSQL: one
  ``executemany`` of ``INSERT ... ON CONFLICT DO NOTHING`` per 100,000 rows.

PostgreSQL runs take an admin URL (``--pg-url``, default ``$METERLEDGER_BENCH_PG`` or
``postgresql://127.0.0.1:5432/postgres``) and create a database per measured store, dropped
afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
from pathlib import Path

from workload import make_csv

DEFAULT_PG_URL = "postgresql://127.0.0.1:5432/postgres"


def main(argv: list[str] | None = None) -> dict[str, float | int]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("METERLEDGER_BENCH_PG", DEFAULT_PG_URL),
        help="admin URL of the PostgreSQL server: the bench creates and drops its databases",
    )
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--naive-rows", type=int, default=500_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    naive_rows = min(args.naive_rows, args.rows)
    with tempfile.TemporaryDirectory(prefix="ml-bench-") as tmp:
        work = Path(tmp)
        csv_path = work / "readings.csv"
        meters = make_csv(csv_path, args.rows)
        if args.backend == "postgresql":
            from ingest_pg import run_postgresql

            measured = run_postgresql(args.pg_url, csv_path, args.rows, naive_rows, meters)
        else:
            from ingest_sqlite import run_sqlite

            measured = run_sqlite(work, csv_path, args.rows, naive_rows, meters)
    empty, limit, naive = measured["empty"], measured["limit"], measured["naive"]
    figures: dict[str, float | int] = {
        "rows": args.rows,
        "rows_per_s_empty": round(empty),
        "rows_per_s_replay": round(measured["replay"]),
        "limit_rows_per_s": round(limit),
        "naive_rows_per_s": round(naive),
        "ratio_to_limit": round(empty / limit, 3),
        "ratio_to_naive": round(empty / naive, 2),
        "billing_read_s": round(measured["billing_read_s"], 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:>18}: {value:,}")
    return figures


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
