"""Billing benchmark: one month of 15-minute data for many accounts, rated in one call, against
NREL SAM (PySAM ``Utilityrate5``) on a sample of the same accounts.

    python bench/billing.py [--accounts 10000] [--days 30] [--pysam-sample 20] [--seed 7]
                            [--json]

The workload: ``--accounts`` commercial accounts on the bundled tariff
``commercial_tou_demand.yaml`` (TOU energy, flat and TOU demand, a customer charge, a monthly
minimum and two taxes, in America/New_York), billed for April 2024: 30 days × 96 = 2,880
intervals each, 28.8 M for 10,000 accounts. Each account's load comes from a seeded generator
(its own size, base load, opening hours, weekend use and noise). ``--days N`` below 30 gives
each account only the first N days (it moves out on day N: a prorated cycle).

All the accounts' rows are one :class:`Usage` (offsets per request) and one
``Rater(tariff).bill_all(requests, usage)``:

* ``seconds``: that call (after an untimed call for one account, which pays the first-use
  costs such as loading the holiday calendar); ``intervals_per_s``, ``bills_per_s`` and
  ``ms_per_bill`` follow from it. ``bill_all`` reports the same call in its two parts:
  ``determinants_s`` (``Rater.aggregate``, vectorised, 256 requests at a time) and
  ``rating_s`` (``Rater.rate`` per request, Decimal line items).
* ``peak_memory_mb``: the process's maximum resident set (``ru_maxrss``), workload included;
  ``usage_mb`` is the size of the input arrays.
* ``pysam_ms_per_bill``: SAM, for ``--pysam-sample`` accounts spread over the workload, on
  the same tariff as SAM inputs (``billing_pysam.sam_rates``) and the same intervals padded
  to a 35,040-step year: per account, building the kW load, handing it to SAM and
  ``execute`` (the rates are assigned once; one untimed warm-up run). SAM computes a year
  for each account, which is its cost of one month's bill. ``pysam_max_diff`` is the largest
  difference between SAM's bill and our total before tax on that sample (SAM has no taxes);
  ``null`` for a prorated cycle, which SAM cannot bill.
* ``speedup_vs_pysam = pysam_ms_per_bill / ms_per_bill``; ``targets`` and ``meets_targets``.
"""

from __future__ import annotations

import argparse
import calendar
import gc
import json
import resource
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from billing_pysam import SamBaseline
from meterledger.billing.bill import Bill
from meterledger.billing.calendar import local_midnight_utc
from meterledger.billing.cycles import CycleRequest
from meterledger.billing.determinants import Usage
from meterledger.billing.rating import Rater
from meterledger.billing.tariff import SLOTS_PER_DAY, Tariff, load_tariff

TARIFF = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "meterledger"
    / "billing"
    / "tariffs"
    / "commercial_tou_demand.yaml"
)
PERIOD = "2024-04"
START = date(2024, 4, 1)
MONTH_DAYS = calendar.monthrange(START.year, START.month)[1]
INTERVAL = 900
TARGETS: dict[str, float] = {"intervals_per_s": 2_000_000, "speedup": 10, "memory_mb": 4096}
_CHUNK = 500  # accounts generated at a time


def make_requests(tariff: Tariff, accounts: int, days: int) -> list[CycleRequest]:
    zone = ZoneInfo(tariff.timezone)
    move_out = None if days == MONTH_DAYS else date(START.year, START.month, days)
    requests = []
    for n in range(accounts):
        req = CycleRequest.for_period(f"ACCT-{n:05d}", PERIOD, zone, move_out=move_out)
        assert req is not None
        requests.append(req)
    return requests


def make_usage(tariff: Tariff, accounts: int, days: int, seed: int) -> Usage:
    """``days`` × 96 intervals per account from April 1st, local midnight, delivered mWh.

    Per account: a peak of 5–800 kW (log-normal, median 40 kW), a base load of 20–55 % of
    it, opening and closing hours, a weekend level; per day a shared weather factor and the
    account's own day-to-day change; per interval 8 % log-normal noise."""
    rng = np.random.default_rng(seed)
    zone = ZoneInfo(tariff.timezone)
    per = days * SLOTS_PER_DAY
    first = local_midnight_utc(START, zone)
    ends = first + INTERVAL * np.arange(1, per + 1, dtype=np.int64)
    if int(ends[-1] - ends[0]) != (per - 1) * INTERVAL:
        raise ValueError("the benchmark month must not have a DST change")
    slot = np.arange(per) % SLOTS_PER_DAY
    day = np.arange(per) // SLOTS_PER_DAY
    hour = (slot + 0.5) / 4  # middle of the interval, local hours
    weekend = np.asarray([(START.weekday() + d) % 7 >= 5 for d in range(days)])[day]
    weather = 1 + 0.12 * np.sin(np.arange(days) / 4.0) + rng.normal(0, 0.03, days)

    delivered = np.empty(accounts * per, dtype=np.int64)
    for lo in range(0, accounts, _CHUNK):
        n = min(_CHUNK, accounts - lo)
        peak = np.clip(rng.lognormal(np.log(40), 0.8, n), 5, 800)[:, None]
        base = rng.uniform(0.2, 0.55, n)[:, None]
        opens = rng.uniform(6, 9, n)[:, None]
        closes = rng.uniform(17, 21, n)[:, None]
        weekend_level = rng.uniform(0.15, 0.7, n)[:, None]
        own_day = rng.normal(1, 0.05, (n, days))[:, day]
        occupied = 1 / (1 + np.exp(-(hour - opens) * 2)) / (1 + np.exp(-(closes - hour) * 2))
        occupied = np.where(weekend, occupied * weekend_level, occupied)
        kw = peak * (base + (1 - base) * occupied) * weather[day] * own_day
        kw *= rng.lognormal(0, 0.08, (n, per))
        mwh = np.rint(np.maximum(kw, 0) * (INTERVAL / 3600 * 1_000_000)).astype(np.int64)
        delivered[lo * per : (lo + n) * per] = mwh.ravel()
    rows = accounts * per
    return Usage(
        offsets=np.arange(accounts + 1, dtype=np.int64) * per,
        interval_end=np.tile(ends, accounts),
        delivered=delivered,
        received=np.zeros(rows, dtype=np.int64),
        estimated=np.zeros(rows, dtype=bool),
        interval_seconds=np.full(accounts, INTERVAL, dtype=np.int64),
    )


def usage_bytes(usage: Usage) -> int:
    return sum(
        getattr(usage, name).nbytes
        for name in ("offsets", "interval_end", "delivered", "received", "estimated")
    )


def measure_pysam(
    tariff: Tariff, usage: Usage, bills: list[Bill], sample: int, prorated: bool
) -> tuple[float, int, Decimal | None]:
    """SAM's ms per bill on ``sample`` accounts, and its largest difference from our total
    before tax (None for a prorated cycle)."""
    accounts = len(bills)
    picks = sorted({int(i) for i in np.linspace(0, accounts - 1, min(sample, accounts))})
    sam = SamBaseline(tariff, START, INTERVAL)
    offsets = usage.offsets

    def rows(i: int) -> np.ndarray:
        return usage.delivered[int(offsets[i]) : int(offsets[i + 1])]

    sam.bill(rows(picks[0]))  # warm-up, untimed
    spent = 0.0
    worst: Decimal = Decimal(0)
    for i in picks:
        total, seconds = sam.bill(rows(i))
        spent += seconds
        worst = max(worst, abs(total - bills[i].subtotal))
    return spent / len(picks) * 1000, len(picks), None if prorated else worst


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=MONTH_DAYS, help="days of data, 1-30")
    parser.add_argument("--pysam-sample", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.days <= MONTH_DAYS:
        parser.error(f"--days must be 1 to {MONTH_DAYS}")
    if args.accounts < 1 or args.pysam_sample < 1:
        parser.error("--accounts and --pysam-sample must be at least 1")

    tariff = load_tariff(TARIFF)
    requests = make_requests(tariff, args.accounts, args.days)
    usage = make_usage(tariff, args.accounts, args.days, args.seed)
    intervals = len(usage.interval_end)
    rater = Rater(tariff)
    warm = make_usage(tariff, 1, args.days, args.seed)
    rater.bill_all(requests[:1], warm)  # untimed: first-use costs (holiday calendar import)

    gc.collect()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    results = rater.bill_all(requests, usage, timings=timings)
    seconds = time.perf_counter() - started
    bills = [bill for bill, _ in results]
    del results
    determinants_s, rating_s = timings["determinants"], timings["rating"]
    if any(b.total <= 0 or not b.lines for b in bills):
        raise SystemExit("a bill came out empty or not positive")

    pysam_ms, pysam_n, pysam_diff = measure_pysam(
        tariff, usage, bills, args.pysam_sample, args.days != MONTH_DAYS
    )
    ms_per_bill = seconds * 1000 / len(bills)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    speedup = pysam_ms / ms_per_bill
    figures: dict[str, Any] = {
        "intervals": intervals,
        "accounts": len(bills),
        "seconds": round(seconds, 3),
        "determinants_s": round(determinants_s, 3),
        "rating_s": round(rating_s, 3),
        "intervals_per_s": round(intervals / seconds),
        "bills_per_s": round(len(bills) / seconds, 1),
        "ms_per_bill": round(ms_per_bill, 4),
        "peak_memory_mb": round(peak_mb, 1),
        "usage_mb": round(usage_bytes(usage) / 2**20, 1),
        "pysam_ms_per_bill": round(pysam_ms, 3),
        "pysam_sample": pysam_n,
        "pysam_max_diff": None if pysam_diff is None else float(pysam_diff),
        "speedup_vs_pysam": round(speedup, 2),
        "total_billed": str(sum((b.total for b in bills), Decimal(0))),
        "targets": dict(TARGETS),
        "meets_targets": {
            "intervals_per_s": intervals / seconds >= TARGETS["intervals_per_s"],
            "speedup": speedup >= TARGETS["speedup"],
            "memory_mb": peak_mb <= TARGETS["memory_mb"],
        },
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            shown = f"{value:,}" if isinstance(value, int | float) else str(value)
            print(f"{name:>18}: {shown}")
    return figures


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
