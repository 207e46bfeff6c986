"""A simulated meter fleet and the CSV files its head-end drops, with faults we know exactly.

``meterledger demo`` needs a billing cycle's worth of interval data that goes through the
real ingest path and exercises every way a feed goes wrong in the field: a gap, a file
delivered twice, an estimate later replaced by the actual, a conflicting re-read, a spike,
broken rows and readings of a meter nobody registered. Each fault is injected on purpose
and listed in the returned :class:`Delivery`, so a test (or the demo's cycle report) can
state the exact totals the ingest must arrive at.

Replacements. The spike and the two malformed rows *replace* the normal reading of their
key: that key is quarantined and ends up missing from the billing view, as does each key of
the gap. :meth:`Delivery.expected` accounts for this.

Determinism. Each meter's data comes from ``random.Random(f"{seed}:{meter_id}")`` and the
fault plan from ``random.Random(f"{seed}:faults")`` (string seeds hash with SHA-512, so
they do not depend on ``PYTHONHASHSEED``): the same arguments give byte-identical files.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from meterledger.core.ids import Service
from meterledger.core.time import iso_utc, parse_zone
from meterledger.core.units import Unit, text_from_milli
from meterledger.simulate.loadshapes import TYPICAL_DAILY_KWH, LoadKind, local_day_bounds, profile

__all__ = [
    "CAPACITY_KW",
    "CHANNEL",
    "CSV_HEADER",
    "EFFECTS",
    "INTERVAL_SECONDS",
    "UNKNOWN_METER_ID",
    "Delivery",
    "FaultKind",
    "InjectedFault",
    "SimMeter",
    "make_fleet",
    "write_delivery",
]

CHANNEL = "1.0.1.8.0.255"
CSV_HEADER = "meter_id,channel,interval_end,interval_seconds,value,unit,quality"
INTERVAL_SECONDS = 900
UNKNOWN_METER_ID = "MTR-99999"
#: Service ratings: a 200 A home is about 48 kW, so 25 kW still leaves normal load far below;
#: a 250 kW small-commercial service.
CAPACITY_KW: dict[LoadKind, int] = {LoadKind.RESIDENTIAL: 25, LoadKind.COMMERCIAL: 250}
_COMMERCIAL_SHARE = 0.3
# Normal readings stay under this share of capacity, so no reading the manifest does not
# list can be quarantined as implausible (a real service cannot exceed its rating either).
_HEADROOM = 0.8
_SPIKE_MILLI = 500 * 1_000_000  # 500 kWh in one interval


@dataclass(frozen=True, slots=True, kw_only=True)
class SimMeter:
    """One simulated meter with one account, on the active energy import channel."""

    meter_id: str
    kind: LoadKind
    account: str
    daily_kwh: float
    capacity_milli_per_hour: int
    timezone: str = "America/New_York"
    service: Service = Service.ELECTRIC

    def capacity_per_interval(self, interval_seconds: int) -> int:
        """Most mWh the service can deliver in one interval (the plausibility ceiling)."""
        return self.capacity_milli_per_hour * interval_seconds // 3600


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


class FaultKind(enum.StrEnum):
    """What was injected; :data:`EFFECTS` says what the ingest must make of it."""

    GAP = "gap"
    REDELIVERY = "redelivery"
    ESTIMATE_THEN_ACTUAL = "estimate-then-actual"
    REVISION_CONFLICT = "revision-conflict"
    SPIKE = "spike"
    MALFORMED_ROW = "malformed-row"
    MALFORMED_VALUE = "malformed-value"
    UNKNOWN_METER = "unknown-meter"


#: What the ingest must do with each fault: a quarantine reason code (the text of
#: ``meterledger.ingest.reasons.Reason``) or one of the effects missing, duplicate, superseded.
EFFECTS: dict[FaultKind, str] = {
    FaultKind.GAP: "missing",
    FaultKind.REDELIVERY: "duplicate",
    FaultKind.ESTIMATE_THEN_ACTUAL: "superseded",
    FaultKind.REVISION_CONFLICT: "REVISION_CONFLICT",
    FaultKind.SPIKE: "IMPLAUSIBLE_VALUE",
    FaultKind.MALFORMED_ROW: "MALFORMED_ROW",
    FaultKind.MALFORMED_VALUE: "MALFORMED_VALUE",
    FaultKind.UNKNOWN_METER: "UNKNOWN_METER",
}
_QUARANTINED = (
    FaultKind.SPIKE,
    FaultKind.MALFORMED_ROW,
    FaultKind.MALFORMED_VALUE,
    FaultKind.UNKNOWN_METER,
)
_REMOVES_KEYS = (FaultKind.GAP, FaultKind.SPIKE, FaultKind.MALFORMED_ROW, FaultKind.MALFORMED_VALUE)


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """One injected fault.

    ``meter_id`` is empty for a whole-file redelivery. ``file`` names the file that carries
    the fault (for the redelivery: the copy); ``interval_ends`` are the UTC epochs of the
    affected keys of ``meter_id`` on :data:`CHANNEL`; ``count`` is how many records the
    effect applies to.
    """

    kind: FaultKind
    meter_id: str
    detail: str
    expected_reason_or_effect: str
    count: int
    file: str
    interval_ends: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Delivery:
    """The files in delivery order and the faults injected into them.

    ``fleet_keys`` is how many natural keys a perfect feed would have delivered for the fleet
    (every meter, every interval of its local days).
    """

    files: tuple[Path, ...]
    faults: tuple[InjectedFault, ...]
    fleet_keys: int
    first_day: date
    days: int

    def of_kind(self, kind: FaultKind) -> list[InjectedFault]:
        return [fault for fault in self.faults if fault.kind is kind]

    def expected(self) -> dict[str, int | dict[str, int]]:
        """Totals a correct ingest of :attr:`files`, in order, arrives at.

        accepted: distinct natural keys in the billing view (the fleet's keys minus the gap,
        the spike and the malformed rows); duplicates: delivered records without effect (the
        redelivered file's rows); superseded: estimates replaced by actuals; conflicts:
        differing second actuals held for review; quarantined: records per reason code.
        """
        removed = sum(fault.count for fault in self.faults if fault.kind in _REMOVES_KEYS)
        quarantined: dict[str, int] = {}
        for fault in self.faults:
            if fault.kind in _QUARANTINED:
                reason = fault.expected_reason_or_effect
                quarantined[reason] = quarantined.get(reason, 0) + fault.count
        return {
            "accepted": self.fleet_keys - removed,
            "duplicates": sum(f.count for f in self.of_kind(FaultKind.REDELIVERY)),
            "superseded": sum(f.count for f in self.of_kind(FaultKind.ESTIMATE_THEN_ACTUAL)),
            "conflicts": sum(f.count for f in self.of_kind(FaultKind.REVISION_CONFLICT)),
            "quarantined": dict(sorted(quarantined.items())),
        }


def _kwh(milli: int) -> str:
    return text_from_milli(milli, Unit.KWH)


class _Feed:
    """The generated data of one delivery and the edits the fault plan makes to it."""

    def __init__(
        self, fleet: Sequence[SimMeter], first_day: date, days: int, seed: int, seconds: int
    ) -> None:
        self.fleet = sorted(fleet, key=lambda meter: meter.meter_id)
        self.seconds = seconds
        self.bounds: dict[str, list[int]] = {}
        for tz in sorted({meter.timezone for meter in fleet}):
            spans = [local_day_bounds(first_day + timedelta(days=d), tz) for d in range(days)]
            self.bounds[tz] = [begin for begin, _ in spans] + [spans[-1][1]]
        self.series = {meter.meter_id: self._series(meter, seed) for meter in self.fleet}
        # (meter_id, interval_end) -> replacement line, or None for a reading never delivered.
        self.overrides: dict[tuple[str, int], str | None] = {}
        self.extra: dict[int, list[tuple[str, int, str]]] = {}
        self.corrections: list[tuple[str, int, str]] = []
        self.taken: set[tuple[str, int]] = set()
        self._iso: dict[int, str] = {}

    def _series(self, meter: SimMeter, seed: int) -> list[int]:
        edges = self.bounds[meter.timezone]
        values = profile(
            meter.kind,
            start=edges[0] + self.seconds,
            intervals=(edges[-1] - edges[0]) // self.seconds,
            interval_seconds=self.seconds,
            tz=meter.timezone,
            daily_kwh=meter.daily_kwh,
            rng=random.Random(f"{seed}:{meter.meter_id}"),
        )
        ceiling = int(meter.capacity_per_interval(self.seconds) * _HEADROOM)
        return [min(value, ceiling) for value in values]

    @property
    def keys(self) -> int:
        return sum(len(self.series[meter.meter_id]) for meter in self.fleet)

    def ends(self, tz: str, day: int) -> range:
        edges = self.bounds[tz]
        return range(edges[day] + self.seconds, edges[day + 1] + self.seconds, self.seconds)

    def value(self, meter: SimMeter, end: int) -> int:
        index = (end - self.bounds[meter.timezone][0]) // self.seconds - 1
        return self.series[meter.meter_id][index]

    def line(self, meter_id: str, end: int, value: str, quality: str = "actual") -> str:
        iso = self._iso.get(end)
        if iso is None:
            iso = self._iso[end] = iso_utc(end)
        return f"{meter_id},{CHANNEL},{iso},{self.seconds},{value},{Unit.KWH},{quality}"

    def pick_run(
        self, rng: random.Random, day: int, length: int, meters: Sequence[SimMeter]
    ) -> tuple[SimMeter, tuple[int, ...]]:
        """Reserve ``length`` consecutive free keys of one of ``meters`` on ``day``."""
        for _ in range(1000):
            meter = rng.choice(meters)
            ends = self.ends(meter.timezone, day)
            if len(ends) < length:
                continue
            first = rng.randrange(len(ends) - length + 1)
            run = tuple(ends[first : first + length])
            if all((meter.meter_id, end) not in self.taken for end in run):
                self.taken.update((meter.meter_id, end) for end in run)
                return meter, run
        raise ValueError("the fleet is too small to place every fault on its own keys")

    def render_day(self, day: int) -> bytes:
        rows = list(self.extra.get(day, ()))
        for meter in self.fleet:
            for end in self.ends(meter.timezone, day):
                key = (meter.meter_id, end)
                if key in self.overrides:
                    replaced = self.overrides[key]
                    if replaced is not None:
                        rows.append((meter.meter_id, end, replaced))
                    continue
                rows.append((meter.meter_id, end, self.line(*key, _kwh(self.value(meter, end)))))
        return _csv(rows)


def _csv(rows: list[tuple[str, int, str]]) -> bytes:
    rows.sort(key=lambda row: (row[0], row[1]))
    return "".join([CSV_HEADER + "\n", *(row[2] + "\n" for row in rows)]).encode("utf-8")


def _fault(
    kind: FaultKind, meter_id: str, file: str, ends: tuple[int, ...], detail: str
) -> InjectedFault:
    return InjectedFault(kind, meter_id, detail, EFFECTS[kind], len(ends), file, ends)


def _plan_faults(
    feed: _Feed, rng: random.Random, days: list[date], seed: int
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
        estimate = _kwh(flat if flat != actual else flat + 1000)
        feed.overrides[meter.meter_id, end] = feed.line(meter.meter_id, end, estimate, "estimated")
        feed.corrections.append((meter.meter_id, end, feed.line(meter.meter_id, end, _kwh(actual))))
    detail = f"estimates in {name[estimate_day]}, actuals in {corrections}"
    faults.append(_fault(FaultKind.ESTIMATE_THEN_ACTUAL, meter.meter_id, corrections, run, detail))

    meter, run = feed.pick_run(rng, conflict_day, 3, feed.fleet)
    ceiling = meter.capacity_per_interval(feed.seconds)
    for end in run:
        actual = feed.value(meter, end)
        revised = actual + 1000 + actual // 10
        revised = revised if revised <= ceiling else actual // 2
        feed.corrections.append(
            (meter.meter_id, end, feed.line(meter.meter_id, end, _kwh(revised)))
        )
    detail = f"actuals of {name[conflict_day]} re-read with other values in {corrections}"
    faults.append(_fault(FaultKind.REVISION_CONFLICT, meter.meter_id, corrections, run, detail))

    meter, run = feed.pick_run(rng, spike_day, 1, homes)
    spike = _kwh(max(_SPIKE_MILLI, 20 * meter.capacity_per_interval(feed.seconds)))
    feed.overrides[meter.meter_id, run[0]] = feed.line(meter.meter_id, run[0], spike)
    faults.append(_fault(FaultKind.SPIKE, meter.meter_id, name[spike_day], run, f"{spike} kWh"))

    meter, run = feed.pick_run(rng, broken_day, 1, feed.fleet)
    full = feed.line(meter.meter_id, run[0], _kwh(feed.value(meter, run[0])))
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
        (UNKNOWN_METER_ID, end, feed.line(UNKNOWN_METER_ID, end, _kwh(value)))
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


def write_delivery(
    fleet: Sequence[SimMeter],
    *,
    start: datetime,
    days: int,
    out_dir: Path,
    seed: int,
    faults: bool = True,
    interval_seconds: int = INTERVAL_SECONDS,
) -> Delivery:
    """Write ``days`` daily files (plus, with faults, a redelivery and ``corrections_1.csv``).

    Day 1 is the local date of ``start`` (aware) in the first meter's zone; each meter's
    file rows are the intervals of its own local day, sorted by meter then time. Faults
    need at least two days, because the redelivered day carries no other fault (so every
    one of its rows is a pure duplicate). Existing files of the same names are overwritten.
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
    first_day = start.astimezone(parse_zone(fleet[0].timezone)).date()
    dates = [first_day + timedelta(days=d) for d in range(days)]
    feed = _Feed(fleet, first_day, days, seed, interval_seconds)
    injected: list[InjectedFault] = []
    clean = copy_after = -1
    if faults:
        injected, clean = _plan_faults(feed, random.Random(f"{seed}:faults"), dates, seed)
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
        files[-1].write_bytes(_csv(feed.corrections))
    return Delivery(tuple(files), tuple(injected), feed.keys, first_day, days)
