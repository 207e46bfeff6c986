"""Clean synthetic meters must not raise findings: fewer than one per meter per month.

Every rule runs through the engine at the bundled settings (``RuleSet.load()``) over 90
days of clean interval data with daily register reads: homes and businesses of several
sizes (:func:`meterledger.simulate.loadshapes.profile`) and rooftop-solar net meters with
an import and an export channel (:func:`meterledger.simulate.solar.net_meter_profile`),
in two seasons, each crossing a DST change (and, in autumn, Thanksgiving, when businesses
close). The counts per rule are printed (``pytest -s``) and part of the failure message.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from meterledger.simulate.loadshapes import LoadKind, profile
from meterledger.simulate.solar import EXPORT_CHANNEL, IMPORT_CHANNEL, net_meter_profile
from meterledger.vee.config import RuleSet
from meterledger.vee.engine import Findings, run_rules
from meterledger.vee.series import (
    Channels,
    ClockReads,
    Registers,
    Series,
    local_epoch,
    offsets_of,
)

Q = 900
DAYS = 90
READ_AT = 2 * 3600 + 7 * 60 + 13  # the daily collection reads the registers at 02:07:13


@dataclass(frozen=True)
class Meter:
    meter_id: str
    meter_class: str
    channels: tuple[tuple[str, list[int]], ...]  # (obis, values)


def _meters(first: date, tz: str, seed: int) -> tuple[int, list[Meter]]:
    """Three homes, three businesses and three solar net meters from local midnight of
    ``first`` for DAYS days; returns the first interval end and the meters."""
    start = int(datetime(first.year, first.month, first.day, tzinfo=ZoneInfo(tz)).timestamp())
    end_first = start + Q
    n = DAYS * 96  # local days of 23 or 25 hours shift the last day by an hour: fine
    meters: list[Meter] = []
    for i, (kind, kwh) in enumerate(
        [(LoadKind.RESIDENTIAL, k) for k in (18.0, 27.0, 36.0)]
        + [(LoadKind.COMMERCIAL, k) for k in (150.0, 400.0, 900.0)]
    ):
        rng = random.Random(seed * 100 + i)
        values = profile(
            kind, start=end_first, intervals=n, interval_seconds=Q, tz=tz, daily_kwh=kwh, rng=rng
        )
        meters.append(
            Meter(f"{kind.value[:3].upper()}-{seed}-{i}", kind.value, ((IMPORT_CHANNEL, values),))
        )
    for i, (kwh, pv_kw) in enumerate(((20.0, 4.0), (28.0, 7.0), (35.0, 10.0))):
        rng = random.Random(seed * 100 + 50 + i)
        imports, exports = net_meter_profile(
            start=end_first, intervals=n, interval_seconds=Q, tz=tz, daily_kwh=kwh,
            pv_kw=pv_kw, latitude=38.0 + 4 * i, rng=rng,
        )  # fmt: skip
        meters.append(
            Meter(f"SOL-{seed}-{i}", "net", ((IMPORT_CHANNEL, imports), (EXPORT_CHANNEL, exports)))
        )
    return end_first, meters


def _series(end_first: int, tz: str, meters: list[Meter]) -> tuple[Series, Registers]:
    chans = [(m, obis, values) for m in meters for obis, values in m.channels]
    n = len(chans)
    count = len(chans[0][2])
    ends = end_first + Q * np.arange(count, dtype=np.int64)
    values = np.concatenate([np.array(v, dtype=np.int64) for _, _, v in chans])
    series = Series(
        Channels(
            channel_id=np.arange(1, n + 1, dtype=np.int64),
            meter_id=tuple(m.meter_id for m, _, _ in chans),
            obis=tuple(obis for _, obis, _ in chans),
            timezone=(tz,) * n,
            meter_class=tuple(m.meter_class for m, _, _ in chans),
            source=("dlms",) * n,
            step=np.full(n, Q, dtype=np.int64),
            net=np.zeros(n, dtype=bool),  # the "net" class marks them
            allows_negative=np.zeros(n, dtype=bool),
        ),
        offsets_of([count] * n),
        np.tile(ends, n),
        np.full(n * count, Q, dtype=np.int64),
        values,
        np.zeros(n * count, dtype=np.int64),
        np.full(n, end_first - Q, dtype=np.int64),  # every row is checked
        np.full(n, int(ends[-1]), dtype=np.int64),
    )
    # daily register reads at the collection time, from a register that started at
    # 12 345.678 kWh: whole intervals plus part of the current one (not pro rata: the power
    # was not even across it), truncated to Wh
    zone = ZoneInfo(tz)
    first_day = datetime.fromtimestamp(end_first - Q, zone).date().toordinal()
    read_at = np.array(
        [
            int(
                datetime.combine(
                    date.fromordinal(first_day + d), datetime.min.time(), zone
                ).timestamp()
            )
            + READ_AT
            for d in range(DAYS - 1)
        ],
        dtype=np.int64,
    )
    done = (read_at - end_first) // Q + 1  # intervals ended by the read
    share = (read_at - (end_first + (done - 1) * Q)) / Q
    per_chan = []
    for _, _, v in chans:
        cum = np.concatenate([[0], np.cumsum(np.array(v, dtype=np.int64))])
        nxt = np.array(v, dtype=np.int64)[done]
        mwh = 12_345_678_000 + cum[done] + np.floor(nxt * share**2 + 0.5).astype(np.int64)
        per_chan.append(mwh // 1000 * 1000)
    registers = Registers(
        offsets_of([len(read_at)] * n), np.tile(read_at, n), np.concatenate(per_chan)
    )
    return series, registers


def _run(series: Series, registers: Registers) -> Findings:
    """The bundled rule set; the meters' clocks read with the registers, a few seconds off."""
    now = int(series.interval_end.max()) + 3600
    drift = (np.arange(len(registers.read_at)) * 7919 % 9001 - 4500).astype(np.int64)
    clocks = ClockReads(registers.offsets, registers.read_at, drift)  # within ±4.5 s
    return run_rules(series, RuleSet.load(), registers=registers, clocks=clocks, now=now)


SEASONS = [
    (date(2026, 2, 15), "America/New_York", 1),  # spring: DST on 2026-03-08
    (date(2026, 9, 15), "America/New_York", 2),  # autumn: DST on 2026-11-01, Thanksgiving
    (date(2026, 5, 1), "America/Los_Angeles", 3),  # summer sun and cooling, Memorial Day
]


@pytest.mark.slow
@pytest.mark.parametrize(("first", "tz", "seed"), SEASONS)
def test_clean_meters_raise_fewer_than_one_finding_per_meter_per_month(
    first: date, tz: str, seed: int
) -> None:
    end_first, meters = _meters(first, tz, seed)
    series, registers = _series(end_first, tz, meters)
    found = _run(series, registers)
    by_rule = found.count_by_rule()
    counts = {info.code: by_rule.get(info.code, 0) for info in RuleSet.load().catalogue}
    by_kind = Counter(m.split("-")[0] for m in found.meter_id)
    print(f"\n{first} {tz}: {len(found)} findings on {len(meters)} meters, {series.rows} rows")
    print("  per rule:", ", ".join(f"{code} {n}" for code, n in counts.items()))
    for record in found.records()[:10]:
        print("   ", record["meter_id"], record["channel"], record["rule"], record["detail"])
    months = DAYS / 30
    assert len(found) < len(meters) * months, (by_rule, found.detail[:5])
    for kind in ("RES", "COM", "SOL"):  # no kind of meter may hide behind the others
        assert by_kind[kind] < 3 * months, (kind, by_rule)


def test_the_same_meters_with_faults_injected_are_caught_by_the_right_rules() -> None:
    """The quiet above is not deafness: faults on the same data are found at the defaults."""
    first, tz, seed = SEASONS[0]
    end_first, meters = _meters(first, tz, seed)
    series, registers = _series(end_first, tz, meters)
    value, reg = series.value.copy(), registers.value.copy()
    local_day = local_epoch(series.interval_end - Q, tz) // 86_400

    def rows(channel: int, day: date) -> np.ndarray:
        lo, hi = series.offsets[channel], series.offsets[channel + 1]
        number = (day - date(1970, 1, 1)).days
        found: np.ndarray = lo + np.flatnonzero(local_day[lo:hi] == number)
        return found

    home, shop, sun = 1, 4, 6  # a 27 kWh home, a 400 kWh business, a solar import
    value[rows(home, date(2026, 4, 16))[54]] = 15 * 1_000_000  # 15 kWh at 13:30: a spike
    value[rows(shop, date(2026, 4, 22))] *= 10  # a Wednesday ×10: a multiplier
    value[rows(sun, date(2026, 3, 27))[30]] -= 10**11  # a 100 000 kWh register rolled over
    value[np.concatenate([rows(home, date(2026, 3, d)) for d in (7, 8)])] = 0  # a weekend off
    reg[int(registers.offsets[2]) + 80] += 9_000_000  # one register read 9 kWh high
    broken = Series(
        series.channels, series.offsets, series.interval_end, series.interval_seconds,
        value, series.quality, series.check_from, series.check_to,
    )  # fmt: skip
    found = _run(broken, Registers(registers.offsets, registers.read_at, reg))
    rules = {(m, r) for m, r in zip(found.meter_id, found.rule, strict=True)}
    ids = [m.meter_id for m in meters]
    assert {
        (ids[1], "SPIKE"),
        (ids[1], "ZERO_CONSUMPTION"),
        (ids[4], "MULTIPLIER_MISMATCH"),
        (ids[6], "ROLLOVER"),
        (ids[2], "SUM_CHECK"),
    } <= rules, found.count_by_rule()
    assert (ids[4], "HIGH_USAGE") not in rules  # the multiplier, reported instead
    assert not {r for _, r in rules} & {"NEGATIVE_USAGE", "FLAT_LINE"}, found.count_by_rule()
    assert {m for m, _ in rules} <= {ids[1], ids[2], ids[4], ids[6]}, found.count_by_rule()
