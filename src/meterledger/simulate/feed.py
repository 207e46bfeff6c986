"""The data of one simulated delivery: each meter's clean series, and the edits faults make.

:class:`Feed` generates every meter's interval energy for the delivery's local days (the
load shapes of :mod:`meterledger.simulate.loadshapes`, capped below the service rating),
holds what the fault plans of :mod:`meterledger.simulate.fleet` change, reserves the keys
each fault takes so that faults never overlap, and renders a day as canonical CSV.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from meterledger.core.ids import Service
from meterledger.core.time import iso_utc
from meterledger.core.units import Unit, text_from_milli
from meterledger.simulate.loadshapes import LoadKind, local_day_bounds, profile

__all__ = ["CHANNEL", "CSV_HEADER", "Feed", "SimMeter", "csv_bytes", "kwh_text"]

CHANNEL = "1.0.1.8.0.255"
CSV_HEADER = "meter_id,channel,interval_end,interval_seconds,value,unit,quality"
# Normal readings stay under this share of capacity, so no reading the manifest does not
# list can be quarantined as implausible (a real service cannot exceed its rating either).
_HEADROOM = 0.8
_ATTEMPTS = 300  # random placements tried per pool of meters before giving up


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


def kwh_text(milli: int) -> str:
    """mWh as the CSV's kWh text, with exactly the decimals needed."""
    return text_from_milli(milli, Unit.KWH)


class Feed:
    """The generated data of one delivery and the edits the fault plan makes to it.

    ``series`` holds each meter's clean values for every interval of its local days;
    ``overrides`` replaces the line of a key (``None``: the key is never delivered),
    ``extra`` adds rows to a day's file, ``corrections`` are the rows of the corrections
    file, and ``taken`` the keys a fault has reserved, so that faults never overlap."""

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

    def find_run(
        self,
        rng: random.Random,
        days: Sequence[int],
        length: int,
        pools: Sequence[Sequence[SimMeter]],
        *,
        margin: int = 0,
        accept: Callable[[SimMeter, int, tuple[int, ...]], bool] | None = None,
    ) -> tuple[SimMeter, int, tuple[int, ...]] | None:
        """Reserve ``length`` consecutive free keys (0: a whole local day) of a meter of the
        first pool that has room, with ``margin`` free, delivered keys either side (reserved
        too, so that no other fault touches the run); ``None`` if none is found."""
        first_end, last_end = self.bounds_of_series()
        for meters in pools:
            for _ in range(_ATTEMPTS if meters and days else 0):
                meter, day = rng.choice(meters), rng.choice(days)
                ends = self.ends(meter.timezone, day)
                size = length or len(ends)
                if size > len(ends):
                    continue
                first = rng.randrange(len(ends) - size + 1)
                run = tuple(ends[first : first + size])
                guard = range(
                    run[0] - margin * self.seconds,
                    run[-1] + (margin + 1) * self.seconds,
                    self.seconds,
                )
                if guard[0] < first_end[meter.timezone] or guard[-1] > last_end[meter.timezone]:
                    continue
                if any((meter.meter_id, end) in self.taken for end in guard):
                    continue
                if accept is None or accept(meter, day, run):
                    self.taken.update((meter.meter_id, end) for end in guard)
                    return meter, day, run
        return None

    def bounds_of_series(self) -> tuple[dict[str, int], dict[str, int]]:
        """Per time zone, the first and the last ``interval_end`` of the delivery."""
        first = {tz: edges[0] + self.seconds for tz, edges in self.bounds.items()}
        return first, {tz: edges[-1] for tz, edges in self.bounds.items()}

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
                rows.append(
                    (meter.meter_id, end, self.line(*key, kwh_text(self.value(meter, end))))
                )
        return csv_bytes(rows)


def csv_bytes(rows: list[tuple[str, int, str]]) -> bytes:
    """A CSV file of ``(meter_id, interval_end, line)`` rows, sorted by meter then time."""
    rows.sort(key=lambda row: (row[0], row[1]))
    return "".join([CSV_HEADER + "\n", *(row[2] + "\n" for row in rows)]).encode("utf-8")
