"""The PySAM baseline of the billing benchmark: one of our tariffs as SAM ``Utilityrate5``
inputs, and one SAM run per account on that account's cycle of data.

SAM bills a fixed 365-day year that starts on a Monday, with no DST and no holidays, from a
load in kW per step (35,040 steps for 15-minute data). Its TOU schedules are 12 months × 24
hours. So a tariff maps exactly only when its periods change on the hour; this module checks
that and raises otherwise. The cycle must be one whole local month with one UTC offset (no
DST change), no holidays and no tier limits, so that SAM and we bill the same thing:

* The cycle's intervals (local time, 96 per day) are placed in a SAM month that starts on the
  same weekday as the cycle and is at least as long (SAM's April starts on a Sunday, so
  April 2024, which starts on a Monday, goes to SAM's January); the days after the cycle and
  every other month have zero load.
* That host month's schedule rows and flat demand price are the cycle month's.
* Fixed charges per month go to ``ur_monthly_fixed_charge`` and the monthly minimum to
  ``ur_monthly_min_charge``. SAM has no taxes: bills are compared before tax.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from meterledger.billing.calendar import local_midnight_utc
from meterledger.billing.tariff import SLOTS_PER_DAY, CompiledVersion, Tariff, TariffVersion

__all__ = ["SAM_YEAR_DAYS", "SamBaseline", "check_cycle", "host_month", "sam_rates"]

SAM_YEAR_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
SAM_UNLIMITED = 1e38
_SLOTS_PER_HOUR = SLOTS_PER_DAY // 24


def host_month(start: date, days: int) -> int:
    """The first SAM month (0-11) that starts on ``start``'s weekday and has ``days`` days or
    more. SAM's day 0 is a Monday."""
    first = 0
    for month, length in enumerate(SAM_YEAR_DAYS):
        if first % 7 == start.weekday() and length >= days:
            return month
        first += length
    raise ValueError(f"no SAM month starts on the weekday of {start} with {days} days")


def _hourly(lut: np.ndarray, what: str) -> np.ndarray:
    """``[month, day type, slot]`` → ``[month, day type, hour]``, if periods change hourly."""
    hours = lut.reshape(12, lut.shape[1], 24, _SLOTS_PER_HOUR)
    if not (hours == hours[..., :1]).all():
        raise ValueError(f"the {what} schedule changes within an hour: SAM cannot express it")
    result: np.ndarray = hours[..., 0]
    return result


def _flat(price: Any) -> float:
    blocks = price.blocks
    if len(blocks) != 1:
        raise ValueError("tiered prices are not mapped to SAM by this benchmark")
    return float(blocks[0].rate)


def sam_rates(tariff: Tariff, cycle_month: int, host: int) -> dict[str, Any]:
    """``ElectricityRates`` inputs of the tariff's only version: ``cycle_month`` (1-12) is
    billed in SAM month ``host`` (0-11); every other month keeps its own rows."""
    if len(tariff.versions) != 1:
        raise ValueError("the benchmark maps a tariff of one version")
    version: TariffVersion = tariff.versions[0]
    compiled = CompiledVersion.build(version)
    months = list(range(12))
    months[host] = cycle_month - 1  # the host month is priced as the cycle month
    energy = _hourly(compiled.energy_lut, "energy")[months]
    demand = _hourly(compiled.demand_lut, "demand")[months]
    tou_mat = [
        [n + 1, 1, SAM_UNLIMITED, 0, _flat(version.energy[name]), 0.0]
        for n, name in enumerate(compiled.energy_names)
    ]
    priced = version.demand.tou
    dc_tou_mat = [
        [n + 1, 1, SAM_UNLIMITED, _flat(priced[name]) if name in priced else 0.0]
        for n, name in enumerate(compiled.demand_names)
    ]
    dc_flat_mat = []
    for sam_month, month0 in enumerate(months):
        season = version.seasons[compiled.season_names[int(compiled.month_season[month0])]]
        rate = 0.0 if season.flat_demand is None else _flat(season.flat_demand)
        dc_flat_mat.append([sam_month, 1, SAM_UNLIMITED, rate])
    if any(c.per != "month" for c in version.fixed):
        raise ValueError("daily fixed charges are not mapped to SAM by this benchmark")
    minimum = version.minimum
    if minimum.daily is not None or minimum.annual is not None:
        raise ValueError("daily and annual minimums are not mapped to SAM by this benchmark")
    return {
        "en_electricity_rates": 1,
        "ur_metering_option": 0,
        "ur_en_ts_sell_rate": 0,
        "ur_en_ts_buy_rate": 0,
        "rate_escalation": [0],
        "ur_ec_tou_mat": tou_mat,
        "ur_ec_sched_weekday": (energy[:, 0] + 1).tolist(),
        "ur_ec_sched_weekend": (energy[:, 1] + 1).tolist(),
        "ur_dc_enable": 1,
        "ur_dc_tou_mat": dc_tou_mat,
        "ur_dc_sched_weekday": (demand[:, 0] + 1).tolist(),
        "ur_dc_sched_weekend": (demand[:, 1] + 1).tolist(),
        "ur_dc_flat_mat": dc_flat_mat,
        "TOU_demand_single_peak": 0,
        "ur_monthly_fixed_charge": float(sum(c.amount for c in version.fixed)),
        "ur_monthly_min_charge": float(minimum.monthly or 0),
        "ur_annual_min_charge": 0.0,
    }


def check_cycle(tariff: Tariff, start: date, days: int) -> None:
    """Raise unless SAM can bill the cycle as we do: one UTC offset and no holiday."""
    zone = ZoneInfo(tariff.timezone)
    end = start + timedelta(days=days)
    if local_midnight_utc(end, zone) - local_midnight_utc(start, zone) != days * 86_400:
        raise ValueError(f"the cycle from {start} has a DST change: SAM has no DST")
    holidays = tariff.holiday_dates(range(start.year, end.year + 1))
    inside = sorted(d for d in holidays if start <= d < end)
    if inside:
        raise ValueError(f"the cycle has holidays {inside}: SAM has no holidays")


@dataclass
class SamBaseline:
    """One SAM model with the tariff's rates assigned once; :meth:`bill` runs it on one
    account's 15-minute delivered energy (mWh, local-time order from the first local midnight
    of the month that starts at ``start``; fewer days than the month leave zeros)."""

    tariff: Tariff
    start: date
    interval_seconds: int = 900

    def __post_init__(self) -> None:
        from PySAM import Utilityrate5

        steps_per_day = 86_400 // self.interval_seconds
        if steps_per_day != SLOTS_PER_DAY:
            raise ValueError("the baseline takes 15-minute data")
        if self.start.day != 1:
            raise ValueError("SAM bills calendar months: the cycle must start on the 1st")
        self.days = calendar.monthrange(self.start.year, self.start.month)[1]
        check_cycle(self.tariff, self.start, self.days)
        self.host = host_month(self.start, self.days)
        self.first_step = sum(SAM_YEAR_DAYS[: self.host]) * steps_per_day
        self.steps = sum(SAM_YEAR_DAYS) * steps_per_day
        self.model = Utilityrate5.new()
        self.model.ElectricityRates.assign(sam_rates(self.tariff, self.start.month, self.host))
        self.model.Lifetime.analysis_period = 1
        self.model.Lifetime.system_use_lifetime_output = 0
        self.model.Lifetime.inflation_rate = 0
        self.model.SystemOutput.degradation = [0]
        self.model.SystemOutput.gen = [0.0] * self.steps
        self.model.Load.load_escalation = [0]

    def bill(self, delivered_mwh: np.ndarray) -> tuple[Decimal, float]:
        """SAM's bill of the host month (before tax, as SAM has none) and the seconds the run
        took: building the 35,040-step kW load, handing it to SAM and ``execute``."""
        started = time.perf_counter()
        if len(delivered_mwh) > self.days * SLOTS_PER_DAY:
            raise ValueError("more intervals than the month has")
        kw = np.zeros(self.steps)
        at = self.first_step
        kw[at : at + len(delivered_mwh)] = delivered_mwh * (3600 / self.interval_seconds / 1e6)
        self.model.Load.load = kw.tolist()
        self.model.execute(0)
        total = self.model.Outputs.utility_bill_w_sys_ym[1][self.host]
        elapsed = time.perf_counter() - started
        return Decimal(repr(total)), elapsed
