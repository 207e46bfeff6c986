"""Rating: determinants → line items, by the conventions in docs/tariffs.md.

The heavy work (sums and maxima over intervals) is vectorised in :mod:`determinants`; this
module turns each cycle's few dozen numbers into Decimal line items. A cycle split into
segments (tariff change, season change, move-in/move-out) rates each segment under its own
version: fixed and demand charges are prorated by days (shown as ``× days/cycle days``) and
tier limits are scaled by the same share.
"""

from __future__ import annotations

import functools
import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from meterledger.billing.bill import Bill, DailyTable, Determinants, Line, PeriodUsage, Segment
from meterledger.billing.calendar import day_of_number, local_day_number
from meterledger.billing.cycles import CycleRequest, parse_period
from meterledger.billing.determinants import Aggregates, Usage, _midnight, compute
from meterledger.billing.money import ZERO, kwh_of_milli, money
from meterledger.billing.tariff import (
    CompiledVersion,
    EnergyPrice,
    MeteringMode,
    Tariff,
    TariffVersion,
)
from meterledger.billing.tiers import kw_of_window as _kw
from meterledger.billing.tiers import share_of_total as _share_of_total
from meterledger.billing.tiers import split_tiers
from meterledger.core.errors import InputError

__all__ = ["Carry", "Rater", "split_tiers"]

CREDIT_CODES = ("export_credit", "nem_credit", "nem_carry", "nsc")
CHUNK = 256  # requests per vectorised pass (see Rater.bill_all)


@dataclass(frozen=True, slots=True)
class Carry:
    """What one cycle hands to the next: the NEM credit ($, positive is the customer's) and
    the year-to-date net kWh and charges since the last true-up."""

    nem_credit: Decimal = ZERO
    ytd_net_kwh: Decimal = ZERO
    ytd_charges: Decimal = ZERO

    def as_dict(self) -> dict[str, str]:
        return {
            "nem_credit": str(self.nem_credit),
            "ytd_net_kwh": str(self.ytd_net_kwh),
            "ytd_charges": str(self.ytd_charges),
        }

    @classmethod
    def from_dict(cls, data: dict[str, str] | None) -> Carry:
        if not data:
            return cls()
        return cls(
            Decimal(data.get("nem_credit", "0")),
            Decimal(data.get("ytd_net_kwh", "0")),
            Decimal(data.get("ytd_charges", "0")),
        )


@functools.lru_cache(maxsize=512)
def _days(start: date, count: int) -> tuple[date, ...]:
    first = local_day_number(start)
    return tuple(day_of_number(first + k) for k in range(count))


class Rater:
    """Bills cycles under one tariff. ``metering`` overrides the tariff's mode."""

    def __init__(self, tariff: Tariff, metering: MeteringMode | None = None) -> None:
        self.tariff = tariff
        self.metering: MeteringMode | None = metering or tariff.metering
        self.compiled = [CompiledVersion.build(v) for v in tariff.versions]
        self._holidays: dict[tuple[int, int], frozenset[date]] = {}

    def aggregate(self, requests: list[CycleRequest], usage: Usage) -> Aggregates:
        years = [r.start.year for r in requests] + [r.end.year for r in requests]
        holidays: frozenset[date] = frozenset()
        if years:
            span = (min(years) - 1, max(years) + 2)
            if span not in self._holidays:
                self._holidays[span] = self.tariff.holiday_dates(range(*span))
            holidays = self._holidays[span]
        return compute(self.tariff, self.compiled, requests, usage, holidays=holidays)

    def bill_all(
        self,
        requests: list[CycleRequest],
        usage: Usage,
        carries: Sequence[Carry] | None = None,
        *,
        chain: bool = False,
        chunk: int = CHUNK,
        timings: dict[str, float] | None = None,
    ) -> list[tuple[Bill, Carry]]:
        """Bill every request. ``chain`` passes each bill's carry to the next request (months
        of one account, in order); otherwise ``carries[i]`` (default: none) is used.

        Requests are taken ``chunk`` at a time, so the working set stays small (memory is
        bounded by the chunk, not the run) and in cache. ``timings`` (if given) accumulates
        the seconds spent in ``determinants`` and ``rating``."""
        if len(usage.offsets) != len(requests) + 1:
            raise InputError("usage must have one row group per request")
        results: list[tuple[Bill, Carry]] = []
        carry = Carry()
        spent = {"determinants": 0.0, "rating": 0.0}
        for lo in range(0, len(requests), max(chunk, 1)):
            hi = min(lo + max(chunk, 1), len(requests))
            started = time.perf_counter()
            agg = self.aggregate(requests[lo:hi], usage.slice(lo, hi))
            middle = time.perf_counter()
            by_request: list[list[int]] = [[] for _ in range(hi - lo)]
            for g, plan in enumerate(agg.segments):
                by_request[plan.request].append(g)
            collecting = gc.isenabled()
            gc.disable()  # the loop makes many small objects and no cycles
            try:
                for j in range(hi - lo):
                    i = lo + j
                    if not chain:
                        carry = carries[i] if carries is not None else Carry()
                    bill, carry = self.rate(agg, j, requests[i], by_request[j], carry)
                    results.append((bill, carry))
            finally:
                if collecting:
                    gc.enable()
            spent["determinants"] += middle - started
            spent["rating"] += time.perf_counter() - middle
        if timings is not None:
            for name, seconds in spent.items():
                timings[name] = timings.get(name, 0.0) + seconds
        return results

    # -- one cycle ---------------------------------------------------------------------
    def rate(
        self, agg: Aggregates, i: int, req: CycleRequest, segs: list[int], carry: Carry
    ) -> tuple[Bill, Carry]:
        lines: list[Line] = []
        notes: list[str] = []
        segments: list[Segment] = []
        cycle_days = req.days
        for number, g in enumerate(segs, start=1):
            plan = agg.segments[g]
            version = self.tariff.versions[plan.version]
            segments.append(Segment(plan.start, plan.end, version.effective))
            days = (plan.end - plan.start).days
            share = None if days == cycle_days else (days, cycle_days)
            tag = number if len(segs) > 1 else 0
            window = int(agg.window_seconds[g])
            flat_kw = _kw(int(agg.flat_max[g]), window)
            lines += self._energy(agg, g, plan.version, days, share, flat_kw, tag, notes)
            lines += self._demand(agg, g, plan.version, plan.season, flat_kw, window, share, tag)
            for charge in version.fixed:
                if charge.per == "day":
                    lines.append(
                        Line.of(
                            "fixed", charge.name, Decimal(days), "day", charge.amount, segment=tag
                        )
                    )
                else:
                    lines.append(
                        Line.of(
                            "fixed",
                            charge.name,
                            Decimal(1),
                            "month",
                            charge.amount,
                            segment=tag,
                            prorate=share,
                        )
                    )
        if req.service_days < req.days:
            last_day = date.fromordinal(req.service_end.toordinal() - 1)
            notes.append(
                f"billed for {req.service_days} of {req.days} days ({req.service_start} to "
                f"{last_day}): fixed and demand charges prorated"
            )
        first = self.tariff.versions[0].effective
        if req.service_start < first:
            notes.append(
                f"the tariff takes effect on {first}; the days before it are billed under "
                "its first version"
            )
        _, month = parse_period(req.period)
        true_up = month == self.tariff.net_metering.true_up_month
        lines, carry_out = self._settle(lines, agg, segs, carry, true_up, notes)
        det = self._determinants(agg, i, req, segs)
        last = (
            self.tariff.versions[agg.segments[segs[-1]].version]
            if segs
            else (self.tariff.version_at(req.start))
        )
        lines += self._minimums(lines, req, last, carry, true_up)
        subtotal = sum((ln.amount for ln in lines), ZERO)
        charges = list(lines)
        for tax in last.taxes:
            base = sum(
                (
                    ln.amount
                    for ln in charges
                    if tax.applies_to is None or ln.code in tax.applies_to
                ),
                ZERO,
            )
            lines.append(Line.of("tax", tax.name, base, "$", tax.percent / 100))
        net_kwh = det.kwh_net
        if true_up:
            carry_out = Carry(carry_out.nem_credit, ZERO, ZERO)
        else:
            carry_out = Carry(
                carry_out.nem_credit, carry.ytd_net_kwh + net_kwh, carry.ytd_charges + subtotal
            )
        if det.intervals < det.intervals_expected:
            notes.append(
                f"{det.intervals} of {det.intervals_expected} intervals have readings: "
                "energy of the missing intervals is not billed"
            )
        if det.kwh_received and self.metering is None:
            notes.append("energy received from the customer is not credited: no net metering")
        bill = Bill(
            account=req.account,
            period=req.period,
            tariff_id=self.tariff.id,
            tariff_name=self.tariff.name,
            tariff_hash=self.tariff.content_hash,
            metering=self.metering,
            currency=self.tariff.currency,
            timezone=self.tariff.timezone,
            determinants=det,
            segments=tuple(segments),
            lines=tuple(lines),
            meters=req.meters,
            carry_in=carry.nem_credit,
            carry_out=carry_out.nem_credit,
            carry=carry_out.as_dict(),
            notes=tuple(notes),
        )
        return bill, carry_out

    def _energy(
        self,
        agg: Aggregates,
        g: int,
        v: int,
        days: int,
        share: tuple[int, int] | None,
        flat_kw: Decimal,
        tag: int,
        notes: list[str],
    ) -> list[Line]:
        version = self.tariff.versions[v]
        lines: list[Line] = []
        mode = self.metering
        charges: list[tuple[str, EnergyPrice, Decimal]] = []
        for name, price in version.energy.items():
            n = agg.energy_names.index(name)
            delivered = kwh_of_milli(int(agg.delivered[g, n]))
            received = kwh_of_milli(int(agg.received[g, n]))
            exported = ZERO
            if mode == "nem":
                charged = delivered - received
                if charged < 0:
                    rate = price.blocks[0].rate
                    lines.append(
                        Line.of(
                            "nem_credit",
                            f"NEM excess credit {name}",
                            charged,
                            "kWh",
                            rate,
                            period=name,
                            segment=tag,
                        )
                    )
            elif mode == "net_billing":
                charged = kwh_of_milli(int(agg.net_import[g, n]))
                exported = kwh_of_milli(int(agg.net_export[g, n]))
            elif mode == "buy_all_sell_all":
                charged, exported = delivered, received
            else:
                charged = delivered
            charges.append((name, price, charged))
            if exported > 0:
                sell = price.sell if price.sell is not None else ZERO
                if price.sell is None:
                    notes.append(f"no sell rate for {name}: exports credited at 0")
                lines.append(
                    Line.of(
                        "export_credit",
                        f"Export credit {name}",
                        -exported,
                        "kWh",
                        sell,
                        period=name,
                        segment=tag,
                    )
                )
        total = sum((max(c, ZERO) for _, _, c in charges), ZERO)
        for name, price, charged in charges:
            if price.tier_unit == "kWh/day":
                scale: Decimal | None = Decimal(days)
            elif price.tier_unit == "kWh/kW":
                scale = flat_kw
            else:
                scale = None if share is None else Decimal(share[0]) / share[1]
            if version.tier_basis == "total" and len(price.blocks) > 1:
                blocks = _share_of_total(charged, total, price.blocks, scale)
            else:
                blocks = split_tiers(charged, price.blocks, scale)
            for tier, qty, rate, lo, hi in blocks:
                label = f"Energy {name}"
                if len(price.blocks) > 1:
                    bound = f"{lo}–{hi} kWh" if hi is not None else f"over {lo} kWh"
                    basis = " of the cycle's total" if version.tier_basis == "total" else ""
                    label += f" tier {tier} ({bound}{basis})"
                lines.append(Line.of("energy", label, qty, "kWh", rate, period=name, segment=tag))
        return lines

    def _demand(
        self,
        agg: Aggregates,
        g: int,
        v: int,
        season: str,
        flat_kw: Decimal,
        window: int,
        share: tuple[int, int] | None,
        tag: int,
    ) -> list[Line]:
        version = self.tariff.versions[v]
        lines: list[Line] = []
        flat = version.seasons[season].flat_demand
        if flat is not None:
            for tier, qty, rate, _lo, _hi in split_tiers(flat_kw, flat.blocks):
                label = "Demand (maximum)" + (f" tier {tier}" if len(flat.blocks) > 1 else "")
                lines.append(
                    Line.of("demand_flat", label, qty, "kW", rate, segment=tag, prorate=share)
                )
        for name, price in version.demand.tou.items():
            kw = _kw(int(agg.tou_max[g, agg.demand_names.index(name)]), window)
            for tier, qty, rate, _lo, _hi in split_tiers(kw, price.blocks):
                label = f"Demand {name}" + (f" tier {tier}" if len(price.blocks) > 1 else "")
                lines.append(
                    Line.of(
                        "demand_tou",
                        label,
                        qty,
                        "kW",
                        rate,
                        period=name,
                        segment=tag,
                        prorate=share,
                    )
                )
        return lines

    def _settle(
        self,
        lines: list[Line],
        agg: Aggregates,
        segs: list[int],
        carry: Carry,
        true_up: bool,
        notes: list[str],
    ) -> tuple[list[Line], Carry]:
        """NEM: excess credits and the carried credit offset energy charges only; what is
        left is carried forward, or at the true-up expires (surplus kWh are paid at the net
        surplus compensation rate)."""
        if self.metering != "nem":
            return lines, Carry(ZERO, carry.ytd_net_kwh, carry.ytd_charges)
        out = list(lines)
        if carry.nem_credit > 0:
            out.append(
                Line.of(
                    "nem_carry", "NEM credit from earlier cycles", Decimal(1), "", -carry.nem_credit
                )
            )
        energy = sum(
            (ln.amount for ln in out if ln.code in ("energy", "nem_credit", "nem_carry")), ZERO
        )
        left = ZERO
        if energy < 0:
            left = -energy
            label = "NEM credit expiring at true-up" if true_up else "NEM credit carried forward"
            out.append(Line.of("nem_carry", label, Decimal(1), "", left))
        if true_up:
            net = carry.ytd_net_kwh + sum(
                (kwh_of_milli(int(agg.delivered[g].sum() - agg.received[g].sum())) for g in segs),
                ZERO,
            )
            rate = self.tariff.net_metering.surplus_rate
            if net < 0 and rate > 0:
                out.append(Line.of("nsc", "Net surplus compensation", net, "kWh", rate))
            if left:
                notes.append(f"NEM credit of ${left} expired at the annual true-up")
            left = ZERO
        return out, Carry(left, carry.ytd_net_kwh, carry.ytd_charges)

    def _minimums(
        self,
        lines: list[Line],
        req: CycleRequest,
        version: TariffVersion,
        carry: Carry,
        true_up: bool,
    ) -> list[Line]:
        # Net surplus compensation is paid at the true-up whatever the minimum: it is not a
        # charge the minimum tops up.
        base = sum((ln.amount for ln in lines if ln.code != "nsc"), ZERO)
        out: list[Line] = []
        minimum = version.minimum
        floor = ZERO
        if minimum.monthly is not None:
            floor = money(minimum.monthly * req.service_days / req.days)
        if minimum.daily is not None:
            floor = max(floor, money(minimum.daily * req.service_days))
        if floor and base < floor:
            out.append(
                Line.of("minimum", "Minimum charge adjustment", Decimal(1), "", floor - base)
            )
            base = floor
        if true_up and minimum.annual is not None:
            year = carry.ytd_charges + base
            if year < minimum.annual:
                out.append(
                    Line.of(
                        "minimum",
                        "Annual minimum charge adjustment",
                        Decimal(1),
                        "",
                        minimum.annual - year,
                    )
                )
        return out

    def _determinants(
        self, agg: Aggregates, i: int, req: CycleRequest, segs: list[int]
    ) -> Determinants:
        pe = len(agg.energy_names)
        delivered = agg.delivered[segs].sum(axis=0) if segs else [0] * pe
        received = agg.received[segs].sum(axis=0) if segs else [0] * pe
        periods = tuple(
            PeriodUsage(name, kwh_of_milli(int(delivered[n])), kwh_of_milli(int(received[n])))
            for n, name in enumerate(agg.energy_names)
        )
        demand = tuple(
            (
                name,
                max(
                    (_kw(int(agg.tou_max[g, n]), int(agg.window_seconds[g])) for g in segs),
                    default=ZERO,
                ),
            )
            for n, name in enumerate(agg.demand_names)
        )
        peak = max(
            (_kw(int(agg.flat_max[g]), int(agg.window_seconds[g])) for g in segs), default=ZERO
        )
        days = _days(req.start, req.days)
        keep = [k for k, day in enumerate(days) if req.service_start <= day < req.service_end]
        rows = agg.daily[i]
        if len(keep) != len(days):
            days, rows = tuple(days[k] for k in keep), rows[keep]
        daily = DailyTable(agg.energy_names, days, rows.tolist())
        return Determinants(
            start=req.start,
            end=req.end,
            days=req.days,
            service_days=req.service_days,
            periods=periods,
            demand_kw=demand,
            peak_kw=peak,
            intervals=int(agg.intervals[segs].sum()) if segs else 0,
            estimated_kwh=kwh_of_milli(int(agg.estimated[segs].sum())) if segs else ZERO,
            daily=daily,
            intervals_expected=(
                _midnight(req.service_end, req.zone) - _midnight(req.service_start, req.zone)
            )
            // max(int(agg.interval_seconds[i]), 1),
        )
