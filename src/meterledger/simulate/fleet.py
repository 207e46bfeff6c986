"""A simulated meter fleet and the CSV files its head-end drops, with faults we know exactly.

``meterledger demo`` needs a billing cycle's worth of interval data that goes through the
real ingest path and exercises every way a feed goes wrong in the field: a gap, a file
delivered twice, an estimate later replaced by the actual, a conflicting re-read, a spike,
broken rows and readings of a meter nobody registered. Each fault is injected on purpose
and listed in the returned :class:`Delivery`, so a test (or the demo's cycle report) can
state the exact totals the ingest must arrive at.

VEE faults. Some faults are valid, plausible records that the ingest accepts but the VEE
rules must catch: a spike below the meter's capacity, a flat line, a day of zeros without
an outage flag, and short gaps that linear interpolation fills (the long gap above needs a
like-day estimate). :attr:`Delivery.vee` lists, per finding VEE must make, the meter, the
first and last ``interval_end``, the rule code (:data:`VEE_RULES`) and the estimation method
expected to fill it. A register rollover is not among them: the CSV carries interval deltas
on 1.0.1.8.0, which cannot go negative, so ingest quarantines a rolled-over delta as
``NEGATIVE_VALUE`` before VEE could see it.

Replacements. The spike and the two malformed rows *replace* the normal reading of their
key: that key is quarantined and ends up missing from the billing view, as does each key of
the gap. :meth:`Delivery.expected` accounts for this.

Determinism. Each meter's data comes from ``random.Random(f"{seed}:{meter_id}")``, the
fault plan from ``random.Random(f"{seed}:faults")`` and the VEE faults, placed after the
others on keys they left free, from ``random.Random(f"{seed}:vee")`` (string seeds hash with
SHA-512, so they do not depend on ``PYTHONHASHSEED``): the same arguments give
byte-identical files.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from meterledger.core.time import iso_utc, parse_zone
from meterledger.core.units import Unit
from meterledger.simulate.faults import (
    EFFECTS,
    VEE_RULES,
    Delivery,
    FaultKind,
    InjectedFault,
    VeeExpectation,
)
from meterledger.simulate.feed import CHANNEL, CSV_HEADER, Feed, SimMeter, csv_bytes, kwh_text
from meterledger.simulate.loadshapes import TYPICAL_DAILY_KWH, LoadKind, profile

__all__ = [
    "CAPACITY_KW",
    "CHANNEL",
    "CSV_HEADER",
    "EFFECTS",
    "INTERVAL_SECONDS",
    "UNKNOWN_METER_ID",
    "VEE_RULES",
    "Delivery",
    "FaultKind",
    "InjectedFault",
    "SimMeter",
    "VeeExpectation",
    "make_fleet",
    "write_delivery",
]

INTERVAL_SECONDS = 900
UNKNOWN_METER_ID = "MTR-99999"
#: Service ratings: a 200 A home is about 48 kW, so 25 kW still leaves normal load far below;
#: a 250 kW small-commercial service.
CAPACITY_KW: dict[LoadKind, int] = {LoadKind.RESIDENTIAL: 25, LoadKind.COMMERCIAL: 250}
_COMMERCIAL_SHARE = 0.3
_SPIKE_MILLI = 500 * 1_000_000  # 500 kWh in one interval
_FLAT_LINE_INTERVALS = 32  # 8 hours of one value: well over a flat-line rule's 24
_SHORT_GAP_INTERVALS = 3
_LINEAR_MAX = 4  # gaps up to this many intervals are interpolated, longer ones like-day
# A plausible spike: 10 times the day's third-highest interval and at least 2 kWh above
# it, but at most 90 % of capacity (ingest quarantines only above capacity); a day whose
# third-highest leaves no room for 5 times that is not given one.
_SPIKE_FACTOR = (5, 10)
_SPIKE_ABOVE_MILLI = 2 * 1_000_000
_SPIKE_CAPACITY_SHARE = (9, 10)


def make_fleet(n: int, *, seed: int, tz: str = "America/New_York") -> list[SimMeter]:
    """``n`` meters ``MTR-00001``... with accounts ``ACC-00001``...; 30 % commercial.

    The commercial count is ``round(0.3 * n)`` exactly, placed at seeded positions, so the
    fleet's make-up is predictable while its order is not.
    """
    if not 0 <= n < 99_999:
        raise ValueError(f"fleet size must be 0..99998, got {n}")
    parse_zone(tz)
    rng = random.Random(f"{seed}:fleet")
    commercial = set(rng.sample(range(n), round(_COMMERCIAL_SHARE * n)))
    fleet: list[SimMeter] = []
    for index in range(n):
        kind = LoadKind.COMMERCIAL if index in commercial else LoadKind.RESIDENTIAL
        low, high = TYPICAL_DAILY_KWH[kind]
        fleet.append(
            SimMeter(
                meter_id=f"MTR-{index + 1:05d}",
                kind=kind,
                account=f"ACC-{index + 1:05d}",
                daily_kwh=round(rng.uniform(low, high), 1),
                capacity_milli_per_hour=CAPACITY_KW[kind] * 1_000_000,
                timezone=tz,
            )
        )
    return fleet


def _fault(
    kind: FaultKind, meter_id: str, file: str, ends: tuple[int, ...], detail: str
) -> InjectedFault:
    return InjectedFault(kind, meter_id, detail, EFFECTS[kind], len(ends), file, ends)


def _plan_faults(
    feed: Feed, rng: random.Random, days: list[date], seed: int
) -> tuple[list[InjectedFault], int]:
    """Choose the faults' meters, days and intervals, record them and edit ``feed``.

    Returns the faults and the index of the day to redeliver, which carries no other fault.
    """
    name = [f"readings_{day.isoformat()}.csv" for day in days]
    corrections = "corrections_1.csv"
    clean = rng.randrange(len(days))
    others = [d for d in range(len(days)) if d != clean]
    picks = rng.sample(others, min(6, len(others)))
    picks += [others[i % len(others)] for i in range(len(picks), 6)]
    gap_day, estimate_day, spike_day, broken_day, unknown_day, conflict_day = picks
    homes = [m for m in feed.fleet if m.kind is LoadKind.RESIDENTIAL] or feed.fleet
    faults: list[InjectedFault] = []

    meter, run = feed.pick_run(rng, gap_day, 8, feed.fleet)
    feed.overrides.update(((meter.meter_id, end), None) for end in run)
    span = f"{iso_utc(run[0] - feed.seconds)}..{iso_utc(run[-1])}"
    faults.append(_fault(FaultKind.GAP, meter.meter_id, name[gap_day], run, f"{span} missing"))

    meter, run = feed.pick_run(rng, estimate_day, 4, feed.fleet)
    actuals = [feed.value(meter, end) for end in run]
    flat = 1000 * round(sum(actuals) / len(actuals) / 1000)  # a head-end's flat fill, whole Wh
    for end, actual in zip(run, actuals, strict=True):
        estimate = kwh_text(flat if flat != actual else flat + 1000)
        feed.overrides[meter.meter_id, end] = feed.line(meter.meter_id, end, estimate, "estimated")
        feed.corrections.append(
            (meter.meter_id, end, feed.line(meter.meter_id, end, kwh_text(actual)))
        )
    detail = f"estimates in {name[estimate_day]}, actuals in {corrections}"
    faults.append(_fault(FaultKind.ESTIMATE_THEN_ACTUAL, meter.meter_id, corrections, run, detail))

    meter, run = feed.pick_run(rng, conflict_day, 3, feed.fleet)
    ceiling = meter.capacity_per_interval(feed.seconds)
    for end in run:
        actual = feed.value(meter, end)
        revised = actual + 1000 + actual // 10
        revised = revised if revised <= ceiling else actual // 2
        feed.corrections.append(
            (meter.meter_id, end, feed.line(meter.meter_id, end, kwh_text(revised)))
        )
    detail = f"actuals of {name[conflict_day]} re-read with other values in {corrections}"
    faults.append(_fault(FaultKind.REVISION_CONFLICT, meter.meter_id, corrections, run, detail))

    meter, run = feed.pick_run(rng, spike_day, 1, homes)
    spike = kwh_text(max(_SPIKE_MILLI, 20 * meter.capacity_per_interval(feed.seconds)))
    feed.overrides[meter.meter_id, run[0]] = feed.line(meter.meter_id, run[0], spike)
    faults.append(_fault(FaultKind.SPIKE, meter.meter_id, name[spike_day], run, f"{spike} kWh"))

    meter, run = feed.pick_run(rng, broken_day, 1, feed.fleet)
    full = feed.line(meter.meter_id, run[0], kwh_text(feed.value(meter, run[0])))
    feed.overrides[meter.meter_id, run[0]] = full.replace(f",{Unit.KWH},", ",", 1)
    detail = "unit field left out: 6 fields"
    faults.append(_fault(FaultKind.MALFORMED_ROW, meter.meter_id, name[broken_day], run, detail))

    meter, run = feed.pick_run(rng, broken_day, 1, feed.fleet)
    feed.overrides[meter.meter_id, run[0]] = feed.line(meter.meter_id, run[0], "abc")
    detail = "value 'abc'"
    faults.append(_fault(FaultKind.MALFORMED_VALUE, meter.meter_id, name[broken_day], run, detail))

    tz = feed.fleet[0].timezone
    ends = tuple(feed.ends(tz, unknown_day))
    values = profile(
        LoadKind.RESIDENTIAL,
        start=ends[0],
        intervals=len(ends),
        interval_seconds=feed.seconds,
        tz=tz,
        daily_kwh=25.0,
        rng=random.Random(f"{seed}:{UNKNOWN_METER_ID}"),
    )
    feed.extra[unknown_day] = [
        (UNKNOWN_METER_ID, end, feed.line(UNKNOWN_METER_ID, end, kwh_text(value)))
        for end, value in zip(ends, values, strict=True)
    ]
    detail = "a whole local day of a meter that is not in the fleet"
    faults.append(
        _fault(FaultKind.UNKNOWN_METER, UNKNOWN_METER_ID, name[unknown_day], ends, detail)
    )

    copy = name[clean].replace(".csv", ".redelivery.csv")
    rows = sum(len(feed.ends(meter.timezone, clean)) for meter in feed.fleet)
    detail = f"{name[clean]} delivered again, byte-identical; it carries no other fault"
    faults.append(InjectedFault(FaultKind.REDELIVERY, "", detail, "duplicate", rows, copy))
    return faults, clean


def _spike_milli(feed: Feed, meter: SimMeter, day: int, end: int) -> int | None:
    """A spike for ``end`` that the ingest accepts and VEE must flag, or ``None`` if the
    day's other intervals leave no room for one (see ``_SPIKE_FACTOR``)."""
    others = sorted(
        (feed.value(meter, e) for e in feed.ends(meter.timezone, day) if e != end), reverse=True
    )
    low, high = _SPIKE_FACTOR
    share, whole = _SPIKE_CAPACITY_SHARE
    third = others[1]  # the spike itself is the day's highest
    spike = max(high * third, third + _SPIKE_ABOVE_MILLI)
    spike = min(spike, meter.capacity_per_interval(feed.seconds) * share // whole)
    spike -= spike % 1000  # whole Wh, as a meter's display would show it
    room = spike >= low * third and spike - third >= _SPIKE_ABOVE_MILLI
    return spike if third > 0 and room and spike > 2 * others[0] else None


def _plan_vee(
    feed: Feed, rng: random.Random, names: list[str], clean: int, per_kind: int
) -> list[InjectedFault]:
    """Place ``per_kind`` faults of each VEE kind on the keys the other faults left free,
    each on its own meter while the fleet has meters without a fault. Best effort: a fault
    for which no room is found (a tiny fleet or delivery) is left out of the manifest."""
    days = [d for d in range(len(names)) if d != clean]
    busy = {key[0] for key in feed.taken}
    homes = [m for m in feed.fleet if m.kind is LoadKind.RESIDENTIAL]
    faults: list[InjectedFault] = []

    def pools(preferred: Sequence[SimMeter]) -> list[list[SimMeter]]:
        vee = {fault.meter_id for fault in faults}
        free = [m for m in feed.fleet if m.meter_id not in busy | vee]
        return [
            [m for m in free if m in preferred],
            free,
            [m for m in feed.fleet if m.meter_id not in vee],
            list(feed.fleet),
        ]

    def full_day(meter: SimMeter, day: int, run: tuple[int, ...]) -> bool:
        # not the 23-hour day: its 92 zeros would be a shorter run than any other day's
        return len(run) * feed.seconds >= 86_400

    def add(kind: FaultKind, meter: SimMeter, day: int, run: tuple[int, ...], text: str) -> None:
        faults.append(_fault(kind, meter.meter_id, names[day], run, text))

    for _ in range(per_kind):
        found = feed.find_run(rng, days, 0, pools(feed.fleet), accept=full_day)
        if found is not None:
            meter, day, run = found
            for end in run:
                feed.overrides[meter.meter_id, end] = feed.line(meter.meter_id, end, kwh_text(0))
            add(FaultKind.ZERO_DAY, meter, day, run, "a whole local day of 0, no outage flag")
    for _ in range(per_kind):
        found = feed.find_run(rng, days, _FLAT_LINE_INTERVALS, pools(feed.fleet), margin=1)
        if found is not None:
            meter, day, run = found
            mean = sum(feed.value(meter, end) for end in run) / len(run)
            flat = kwh_text(max(1000, 1000 * int(mean / 1000 + 0.5)))  # whole Wh, half up
            for end in run:
                feed.overrides[meter.meter_id, end] = feed.line(meter.meter_id, end, flat)
            add(FaultKind.FLAT_LINE, meter, day, run, f"{len(run)} intervals of {flat} kWh")
    for _ in range(per_kind):
        found = feed.find_run(
            rng,
            days,
            1,
            pools(homes),
            accept=lambda m, d, r: _spike_milli(feed, m, d, r[0]) is not None,
        )
        if found is not None:
            meter, day, run = found
            spike = kwh_text(_spike_milli(feed, meter, day, run[0]) or 0)
            feed.overrides[meter.meter_id, run[0]] = feed.line(meter.meter_id, run[0], spike)
            cap = kwh_text(meter.capacity_per_interval(feed.seconds))
            add(FaultKind.PLAUSIBLE_SPIKE, meter, day, run, f"{spike} kWh (capacity {cap})")
    for _ in range(per_kind):
        found = feed.find_run(rng, days, _SHORT_GAP_INTERVALS, pools(feed.fleet), margin=1)
        if found is not None:
            meter, day, run = found
            feed.overrides.update(((meter.meter_id, end), None) for end in run)
            span = f"{iso_utc(run[0] - feed.seconds)}..{iso_utc(run[-1])}"
            add(FaultKind.SHORT_GAP, meter, day, run, f"{span} missing")
    return faults


def _vee_expectations(feed: Feed, faults: Sequence[InjectedFault]) -> list[VeeExpectation]:
    """What VEE must find. Missing keys are merged per meter into runs, since adjacent
    missing keys of two faults make one gap; every other VEE fault is one finding."""
    step = feed.seconds
    first_end, last_end = feed.bounds_of_series()
    zones = {meter.meter_id: meter.timezone for meter in feed.fleet}
    missing: dict[tuple[str, int], FaultKind] = {}
    out: list[VeeExpectation] = []
    for fault in faults:
        rule = VEE_RULES.get(fault.kind)
        if rule == "GAP":
            missing.update(
                dict.fromkeys(((fault.meter_id, e) for e in fault.interval_ends), fault.kind)
            )
        elif rule is not None:
            ends = fault.interval_ends
            out.append(
                VeeExpectation(
                    fault.kind, fault.meter_id, CHANNEL, ends[0], ends[-1], len(ends), rule, ""
                )
            )
    runs: list[list[tuple[str, int]]] = []
    for key in sorted(missing):
        if runs and runs[-1][-1][0] == key[0] and runs[-1][-1][1] + step == key[1]:
            runs[-1].append(key)
        else:
            runs.append([key])

    def local_day(meter_id: str, end: int) -> date:
        return datetime.fromtimestamp(end - step, parse_zone(zones[meter_id])).date()

    # the local days each meter misses readings on: an incomplete day is no like day
    faulted: dict[str, set[date]] = {}
    for meter_id, end in missing:
        faulted.setdefault(meter_id, set()).add(local_day(meter_id, end))
    for run in runs:
        (meter_id, first), (_, last) = run[0], run[-1]
        tz = zones[meter_id]
        inside = first - step >= first_end[tz] and last + step <= last_end[tz]
        method = "linear" if len(run) <= _LINEAR_MAX and inside else "like-day"
        if method == "like-day":
            day = local_day(meter_id, first)
            span = (local_day(meter_id, first_end[tz]), local_day(meter_id, last_end[tz]))
            like = [
                span[0] + timedelta(days=i)
                for i in range((span[1] - span[0]).days + 1)
                if ((span[0] + timedelta(days=i)).weekday() >= 5) == (day.weekday() >= 5)
            ]
            if not [d for d in like if d != day and d not in faulted.get(meter_id, set())]:
                method = ""  # no clean day of its type in the drop: the gap stays a gap
        kind = missing[run[0]]
        out.append(VeeExpectation(kind, meter_id, CHANNEL, first, last, len(run), "GAP", method))
    return sorted(out, key=lambda e: (e.meter_id, e.first_end, e.rule))


def write_delivery(
    fleet: Sequence[SimMeter],
    *,
    start: datetime,
    days: int,
    out_dir: Path,
    seed: int,
    faults: bool = True,
    interval_seconds: int = INTERVAL_SECONDS,
    vee_faults: int = 3,
) -> Delivery:
    """Write ``days`` daily files (plus, with faults, a redelivery and ``corrections_1.csv``).

    Day 1 is the local date of ``start`` (aware) in the first meter's zone; each meter's
    file rows are the intervals of its own local day, sorted by meter then time. Faults
    need at least two days, because the redelivered day carries no other fault (so every
    one of its rows is a pure duplicate). With faults, ``vee_faults`` meters get each VEE
    fault kind (as many as find room). Existing files of the same names are overwritten.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    if not fleet:
        raise ValueError("the fleet is empty")
    if days < (2 if faults else 1):
        raise ValueError(f"need at least {2 if faults else 1} days, got {days}")
    ids = [meter.meter_id for meter in fleet]
    if len(set(ids)) != len(ids) or UNKNOWN_METER_ID in ids:
        raise ValueError(f"meter ids must be unique and not {UNKNOWN_METER_ID}")
    if vee_faults < 0:
        raise ValueError(f"vee_faults must not be negative, got {vee_faults}")
    first_day = start.astimezone(parse_zone(fleet[0].timezone)).date()
    dates = [first_day + timedelta(days=d) for d in range(days)]
    feed = Feed(fleet, first_day, days, seed, interval_seconds)
    injected: list[InjectedFault] = []
    clean = copy_after = -1
    if faults:
        injected, clean = _plan_faults(feed, random.Random(f"{seed}:faults"), dates, seed)
        names = [f"readings_{day.isoformat()}.csv" for day in dates]
        injected += _plan_vee(feed, random.Random(f"{seed}:vee"), names, clean, vee_faults)
        copy_after = min(clean + 3, days - 1)  # a few days late, as a head-end retry would be

    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    copied = b""
    for d, day in enumerate(dates):
        data = feed.render_day(d)
        files.append(out_dir / f"readings_{day.isoformat()}.csv")
        files[-1].write_bytes(data)
        copied = data if d == clean else copied
        if d == copy_after:
            files.append(out_dir / f"readings_{dates[clean].isoformat()}.redelivery.csv")
            files[-1].write_bytes(copied)
    if faults:
        files.append(out_dir / "corrections_1.csv")
        files[-1].write_bytes(csv_bytes(feed.corrections))
    expectations = tuple(_vee_expectations(feed, injected))
    return Delivery(tuple(files), tuple(injected), feed.keys, first_day, days, expectations)
