"""VEE benchmark: the full rule set over synthetic 15-minute data, against a pandas rolling
z-score baseline (the hour-of-week z-score alone) on the same rows.

    python bench/vee.py [--intervals 2000000] [--days 30] [--seed 11] [--profile] [--json]

The workload (no store: the arrays are built directly): ``--intervals`` rows of 15-minute
data from 2026-03-01 00:00 UTC, ``--days`` days per channel (2,880 rows), so 2,000,000 rows
are about 700 channels. Meters are residential (60 %), commercial (25 %) and net (15 %,
two channels: import 1.8.0 and export 2.8.0 with a midday solar shape), in
America/New_York, Europe/Berlin or UTC (both DST changes of March 2026 fall inside), with
data from csv, dlms or greenbutton feeds: 9 rule profiles. Each channel has a daily
register read (the running sum of its clean intervals) and each meter a daily clock read
(a few seconds off). The first 7 days are history, the rest is checked; "now" is the end
of the data. About 2 % of the channels get each fault, in the checked part: a gap of 8
intervals, a duplicated row, an overlapping 30-minute row, a 10-minute clock-set row, 4
rows a day in the future, a clock read 2 minutes off, 4 days of estimates, a spike, a day
of zeros, a flat line, a negative interval, a day of five times the usage and a register
rollover in an interval.

* ``seconds``: one ``run_rules`` call with the bundled rules file over every installed
  rule module (``rules``: how many rules ran), after an untimed call on one small channel
  (first-use costs). ``intervals_per_s`` follows; ``findings_by_rule`` counts what it
  found; ``seconds_by_rule`` is where the time went (``--profile`` prints it).
* ``baseline_seconds``: pandas doing one of our twenty rules, OUTLIER_ZSCORE's statistic,
  from the same flat arrays: a DataFrame, then per channel and local hour of the week
  (``groupby``) a rolling mean and standard deviation of the previous 4 weeks' values in
  that hour (16, at least 8), ``|z| > 5`` flagged (``baseline_flags``). The hour of the
  week is computed before its clock starts. The same untimed warm-up.
* ``plain_rolling_seconds``: the simplest pandas rolling z-score, per channel over the last
  672 intervals (no hour-of-week profile), for scale; ``plain_rolling_speedup`` likewise.
* ``estimate_seconds``: one ``vee.estimate`` call over the same series (every gap the
  workload made, by linear, like-day or register delta), ``estimated`` the values made.
* ``speedup = baseline_seconds / seconds``; ``met`` when ``intervals_per_s`` reaches
  ``target_intervals_per_s`` and the rule set is faster than both pandas baselines.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from meterledger.core.reading import Quality
from meterledger.vee.config import RuleSet
from meterledger.vee.engine import Findings, run_rules
from meterledger.vee.estimate import estimate
from meterledger.vee.series import (
    Channels,
    ClockReads,
    Registers,
    Series,
    local_epoch,
    offsets_of,
)

STEP = 900
PER_DAY = 96
START = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())
HISTORY_DAYS = 7
TARGET = 1_000_000
WINDOW, MIN_PERIODS, Z = 672, 96, 4.0
HOW_WINDOW, HOW_MIN, HOW_Z = 16, 8, 5.0
ZONES = (("America/New_York", -5), ("Europe/Berlin", 1), ("UTC", 0))
FAULTS = (
    "gap",
    "duplicate",
    "overlap",
    "clock_set",
    "future",
    "clock_drift",
    "estimated",
    "spike",
    "zero_day",
    "flat_line",
    "negative",
    "high_day",
    "rollover",
)
FAULT_SHARE = 0.02


def _meters(channels: int, rng: np.random.Generator) -> list[tuple[str, str, str, str]]:
    """(meter_id, obis, class, source) per channel: a net meter has two channels."""
    out: list[tuple[str, str, str, str]] = []
    n = 0
    while len(out) < channels:
        kind = rng.choice(["residential", "commercial", "net"], p=[0.6, 0.25, 0.15])
        source = str(rng.choice(["csv", "dlms", "greenbutton"], p=[0.4, 0.4, 0.2]))
        meter = f"MTR-{n:06d}"
        out.append((meter, "1-0:1.8.0", str(kind), source))
        if kind == "net" and len(out) < channels:
            out.append((meter, "1-0:2.8.0", str(kind), source))
        n += 1
    return out


def _load(kinds: np.ndarray, obis: np.ndarray, hours: np.ndarray, rng: np.random.Generator) -> Any:
    """mWh per 15 minutes, shape (channels, rows), from each channel's load shape."""
    c, r = len(kinds), hours.shape[1]
    size = rng.lognormal(0, 0.4, (c, 1))
    evening = np.exp(-(((hours - 19) / 2.5) ** 2))
    morning = np.exp(-(((hours - 7.5) / 1.5) ** 2))
    residential = 0.3 + 0.9 * evening + 0.5 * morning
    opened = 1 / (1 + np.exp(-(hours - 8) * 2)) / (1 + np.exp(-(18 - hours) * 2))
    commercial = 4 * (0.35 + 0.65 * opened)
    solar = 3 * np.clip(np.cos((hours - 12.5) / 12 * np.pi * 1.6), 0, None)
    kw = np.where(kinds[:, None] == "commercial", commercial, residential)
    net = kinds[:, None] == "net"
    kw = np.where(
        net & (obis[:, None] == "1-0:1.8.0"), np.clip(residential - solar, 0.05, None), kw
    )
    kw = np.where(net & (obis[:, None] == "1-0:2.8.0"), np.clip(solar - residential, 0, None), kw)
    kw = kw * size * rng.lognormal(0, 0.12, (c, r))
    return np.rint(kw * (STEP / 3600) * 1_000_000).astype(np.int64)


def make_workload(intervals: int, days: int, seed: int) -> tuple[Series, Registers, ClockReads]:
    rng = np.random.default_rng(seed)
    per = days * PER_DAY
    count = -(-intervals // per)
    rows = np.full(count, per, dtype=np.int64)
    rows[-1] = intervals - per * (count - 1)
    info = _meters(count, rng)
    meter_id = np.array([m for m, _, _, _ in info], dtype=object)
    obis = np.array([o for _, o, _, _ in info])
    kinds = np.array([k for _, _, k, _ in info])
    _, meter_index = np.unique(meter_id, return_inverse=True)
    zone_of = meter_index % len(ZONES)
    offset_h = np.array([h for _, h in ZONES])[zone_of]
    ends = START + STEP * np.arange(1, per + 1, dtype=np.int64)
    hours = ((ends[None, :] - STEP / 2 - START) / 3600 + offset_h[:, None]) % 24
    value = _load(kinds, obis, hours, rng)
    end = np.broadcast_to(ends, (count, per)).copy()
    secs = np.full((count, per), STEP, dtype=np.int64)
    quality = np.zeros((count, per), dtype=np.int64)
    copies = np.ones((count, per), dtype=np.int64)
    for c in range(count):  # keep the unused tail of the last channel out
        copies[c, rows[c] :] = 0
    clean = value.copy()
    checked_from = HISTORY_DAYS * PER_DAY
    full = count if rows[-1] == per else count - 1  # faults only on whole channels
    picks = {f: rng.choice(full, max(1, round(FAULT_SHARE * full)), replace=False) for f in FAULTS}
    span = per - checked_from - 4 * PER_DAY - 8
    where = {f: checked_from + rng.integers(0, max(span, 1), len(p)) for f, p in picks.items()}

    def cells(fault: str, width: int) -> tuple[np.ndarray, np.ndarray]:
        c, at = picks[fault], where[fault]
        return np.repeat(c, width), (at[:, None] + np.arange(width)).ravel()

    copies[cells("gap", 8)] = 0
    copies[cells("duplicate", 1)] = 2
    copies[cells("overlap", 1)] = 2
    secs[cells("clock_set", 1)] = 600
    quality[cells("clock_set", 1)] |= int(Quality.CLOCK_ADJUSTED)
    last = rows[picks["future"]] - 1
    for k in range(4):
        end[picks["future"], last - k] += 86_400
    quality[cells("estimated", 4 * PER_DAY)] |= int(Quality.ESTIMATED | Quality.EST_LIKE_DAY)
    value[cells("spike", 1)] *= 25
    value[cells("zero_day", PER_DAY)] = 0
    flat_c, flat_at = cells("flat_line", 24)
    value[flat_c, flat_at] = value[picks["flat_line"], where["flat_line"]].repeat(24)
    value[cells("negative", 1)] = -np.abs(value[cells("negative", 1)]) - 1000
    value[cells("high_day", PER_DAY)] *= 5
    value[cells("rollover", 1)] -= 10**9

    flat_copies = copies.ravel()
    pick_rows = np.repeat(np.arange(flat_copies.size), flat_copies)
    second = np.flatnonzero(np.diff(pick_rows, prepend=-1) == 0)  # the added copies
    overlap_rows = np.ravel_multi_index(cells("overlap", 1), copies.shape)
    flat_secs = secs.ravel()[pick_rows]
    flat_secs[second[np.isin(pick_rows[second], overlap_rows)]] = 2 * STEP
    counts = copies.sum(axis=1)
    offsets = offsets_of(counts)
    flat_end = end.ravel()[pick_rows]
    channels = Channels(
        channel_id=np.arange(1, count + 1, dtype=np.int64),
        meter_id=tuple(meter_id.tolist()),
        obis=tuple(obis.tolist()),
        timezone=tuple(ZONES[z][0] for z in zone_of.tolist()),
        meter_class=tuple(kinds.tolist()),
        source=tuple(s for _, _, _, s in info),
        step=np.full(count, STEP, dtype=np.int64),
        net=kinds == "net",
        allows_negative=np.zeros(count, dtype=bool),
    )
    series = Series(
        channels,
        offsets,
        flat_end,
        flat_secs,
        value.ravel()[pick_rows],
        quality.ravel()[pick_rows],
        np.full(count, START + HISTORY_DAYS * 86_400, dtype=np.int64),
        flat_end[offsets[1:] - 1],  # up to each channel's last row, as after an ingest
    )
    # a register read at every midnight UTC: the running sum of the clean intervals
    day_rows = np.arange(0, per + 1, PER_DAY)
    running = np.concatenate([np.zeros((count, 1), np.int64), np.cumsum(clean, axis=1)], axis=1)
    base = rng.integers(10**6, 10**8, (count, 1)) * 1000
    reads = running[:, day_rows] + base
    read_at = np.broadcast_to(START + day_rows * STEP, reads.shape)
    kept = read_at <= series.check_to[:, None]
    registers = Registers(offsets_of(kept.sum(axis=1)), read_at[kept], reads[kept])
    drift = np.rint(rng.normal(0, 3000, (len(np.unique(meter_index)), days))).astype(np.int64)
    late = rng.integers(HISTORY_DAYS + 1, days, len(picks["clock_drift"]))
    drift[meter_index[picks["clock_drift"]], late] = 120_000
    clock_at = np.broadcast_to(START + 300 + 86_400 * np.arange(days), (count, days))
    clocks = ClockReads(
        offsets_of(np.full(count, days)), clock_at.ravel().copy(), drift[meter_index].ravel()
    )
    return series, registers, clocks


def hour_of_week(series: Series) -> np.ndarray:
    """Each row's local hour of the week (Monday 00:00 = 0) from its interval start: the
    slot OUTLIER_ZSCORE compares against. Computed before the baseline's clock starts."""
    starts = series.interval_end - series.interval_seconds
    local = np.empty(series.rows, dtype=np.int64)
    chans = series.row_channel()
    zones = np.asarray(series.channels.timezone, dtype=object)
    for tz in sorted(set(series.channels.timezone)):
        rows = np.flatnonzero(zones[chans] == tz)
        local[rows] = local_epoch(starts[rows], tz)
    return ((local // 86_400 + 3) % 7) * 24 + (local % 86_400) // 3_600


def baseline(series: Series, how: np.ndarray) -> tuple[float, int]:
    """Seconds and flags of pandas doing the statistic of OUTLIER_ZSCORE alone: per channel
    and local hour of the week, the mean and standard deviation of the previous 4 weeks'
    values in that hour (16 at 15 minutes, at least 8), ``|z| > 5`` flagged."""
    started = time.perf_counter()
    frame = pd.DataFrame(
        {
            "channel": series.row_channel(),
            "how": how,
            "value": series.value.astype(np.float64),
        }
    )
    grouped = frame.groupby(["channel", "how"], sort=False)["value"]
    rolling = grouped.rolling(HOW_WINDOW, min_periods=HOW_MIN, closed="left")
    mean = rolling.mean().reset_index(level=[0, 1], drop=True).sort_index().to_numpy()
    std = rolling.std().reset_index(level=[0, 1], drop=True).sort_index().to_numpy()
    z = np.abs(frame["value"].to_numpy() - mean) / np.where(std > 0, std, np.nan)
    flags = int(np.count_nonzero(z > HOW_Z))
    return time.perf_counter() - started, flags


def plain_baseline(series: Series) -> tuple[float, int]:
    """Seconds and flags of the simplest pandas rolling z-score: per channel over the last
    672 intervals (one week, at least 96), ``|z| > 4`` flagged. No hour-of-week profile, so
    it flags every evening peak of a flat-nighted home; reported for scale."""
    started = time.perf_counter()
    frame = pd.DataFrame(
        {"channel": series.row_channel(), "value": series.value.astype(np.float64)}
    )
    rolling = frame.groupby("channel", sort=False)["value"].rolling(WINDOW, min_periods=MIN_PERIODS)
    mean = rolling.mean().to_numpy()
    std = rolling.std().to_numpy()
    z = np.abs(frame["value"].to_numpy() - mean) / np.where(std > 0, std, np.nan)
    flags = int(np.count_nonzero(z > Z))
    return time.perf_counter() - started, flags


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--intervals", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=30, help="days per channel, 14-60")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--profile", action="store_true", help="print seconds per rule")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not 14 <= args.days <= 60:
        parser.error("--days must be 14 to 60")
    if args.intervals < args.days * PER_DAY:
        parser.error("--intervals must fill at least one channel")

    ruleset = RuleSet.load()
    series, registers, clocks = make_workload(args.intervals, args.days, args.seed)
    warm, warm_regs, warm_clocks = make_workload(args.days * PER_DAY, args.days, args.seed + 1)
    now = START + args.days * 86_400  # the end of the data
    run_rules(warm, ruleset, registers=warm_regs, clocks=warm_clocks, now=now)  # untimed
    baseline(warm, hour_of_week(warm))
    plain_baseline(warm)
    how = hour_of_week(series)

    gc.collect()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    found: Findings = run_rules(
        series, ruleset, registers=registers, clocks=clocks, now=now, timings=timings
    )
    seconds = time.perf_counter() - started
    gc.collect()
    base_seconds, base_flags = baseline(series, how)
    gc.collect()
    plain_seconds, plain_flags = plain_baseline(series)
    gc.collect()
    began = time.perf_counter()
    estimates = estimate(series, registers)
    estimate_seconds = time.perf_counter() - began
    intervals = series.rows
    rate = intervals / seconds
    speedup = base_seconds / seconds
    ran = [code for code in ruleset.enabled_codes() if code in timings]
    figures: dict[str, Any] = {
        "intervals": intervals,
        "channels": len(series.channels),
        "rules": len(ran),
        "seconds": round(seconds, 4),
        "intervals_per_s": round(rate),
        "findings": len(found),
        "held": int(found.held().sum()),
        "findings_by_rule": found.count_by_rule(),
        "seconds_by_rule": {k: round(v, 4) for k, v in sorted(timings.items())},
        "baseline_seconds": round(base_seconds, 4),
        "baseline_intervals_per_s": round(intervals / base_seconds),
        "baseline_flags": base_flags,
        "speedup": round(speedup, 2),
        "plain_rolling_seconds": round(plain_seconds, 4),
        "plain_rolling_flags": plain_flags,
        "plain_rolling_speedup": round(plain_seconds / seconds, 2),
        "estimate_seconds": round(estimate_seconds, 4),
        "estimated": len(estimates),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "target_intervals_per_s": TARGET,
        "met": bool(rate >= TARGET and speedup > 1 and plain_seconds > seconds),
    }
    if args.json:
        print(json.dumps(figures))
        return figures
    for name, value in figures.items():
        if name in ("findings_by_rule", "seconds_by_rule"):
            continue
        shown = f"{value:,}" if isinstance(value, int | float) else str(value)
        print(f"{name:>24}: {shown}")
    print(f"{'findings_by_rule':>24}: {json.dumps(figures['findings_by_rule'])}")
    if args.profile:
        print("seconds per rule and phase:")
        for name, spent in sorted(timings.items(), key=lambda kv: -kv[1]):
            print(f"{name:>24}: {spent:.4f}")
    return figures


if __name__ == "__main__":
    sys.exit(0 if main()["met"] else 1)
