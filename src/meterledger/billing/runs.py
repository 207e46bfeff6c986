"""Bill runs that need no store: a load file billed by calendar month, and the summary rows
that ``meterledger bill --json`` prints (a contract: keys documented in docs/cli.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from meterledger.billing.bill import Bill
from meterledger.billing.calendar import local_midnight_utc
from meterledger.billing.cycles import CycleRequest, cycle_dates, month_periods
from meterledger.billing.determinants import Usage
from meterledger.billing.loadfile import LoadSeries
from meterledger.billing.money import ZERO, money, plain
from meterledger.billing.rating import CREDIT_CODES, Carry, Rater
from meterledger.billing.tariff import MeteringMode, Tariff

__all__ = ["bill_load", "month_summary", "usage_for"]


def usage_for(
    requests: list[CycleRequest],
    interval_end: np.ndarray,
    delivered: np.ndarray,
    received: np.ndarray,
    estimated: np.ndarray | None,
    interval_seconds: int,
) -> Usage:
    """One series cut into the rows each request bills (``start < end <= stop``)."""
    pieces: list[slice] = []
    for req in requests:
        lo = local_midnight_utc(req.start, req.zone)
        hi = local_midnight_utc(req.end, req.zone)
        a = int(np.searchsorted(interval_end, lo, side="right"))
        b = int(np.searchsorted(interval_end, hi, side="right"))
        pieces.append(slice(a, b))
    counts = [p.stop - p.start for p in pieces]
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    est = np.zeros(len(interval_end), dtype=bool) if estimated is None else estimated

    def take(values: np.ndarray) -> np.ndarray:
        if not pieces:
            return values[:0]
        return np.concatenate([values[p] for p in pieces])

    return Usage(
        offsets,
        take(interval_end),
        take(delivered),
        take(received),
        take(est),
        np.full(len(requests), interval_seconds, dtype=np.int64),
    )


def bill_load(
    tariff: Tariff,
    series: LoadSeries,
    *,
    metering: MeteringMode | None = None,
    account: str = "load",
) -> list[tuple[Bill, Carry]]:
    """Bill a load file by calendar month in the tariff's zone, carrying NEM credit and the
    year-to-date figures from month to month."""
    zone = ZoneInfo(tariff.timezone)
    first = datetime.fromtimestamp(series.first_start, UTC).astimezone(zone).date()
    last = datetime.fromtimestamp(series.last_end - 1, UTC).astimezone(zone).date()
    requests = []
    for period in month_periods(first, last):
        start, end = cycle_dates(period)
        # A month the data covers only in part is billed for the days it covers (the first
        # and last months of a file): fixed and demand charges are prorated by days.
        lo = max(start, first)
        hi = min(end, last + timedelta(days=1))
        requests.append(CycleRequest(account, period, start, end, zone, lo, hi))
    usage = usage_for(
        requests,
        series.interval_end,
        series.delivered,
        series.received,
        None,
        series.interval_seconds,
    )
    return Rater(tariff, metering).bill_all(requests, usage, chain=True)


def month_summary(bill: Bill) -> dict[str, Any]:
    """One ``months`` entry of ``meterledger bill --json``: amounts as decimal strings."""
    det = bill.determinants
    return {
        "month": bill.period,
        "energy": _amount(bill.amount_of("energy")),
        "demand_flat": _amount(bill.amount_of("demand_flat")),
        "demand_tou": _amount(bill.amount_of("demand_tou")),
        "fixed": _amount(bill.amount_of("fixed")),
        "minimum": _amount(bill.amount_of("minimum")),
        "nem_credit": _amount(bill.amount_of(*CREDIT_CODES)),
        "total": _amount(bill.total),
        "kwh_delivered": plain(det.kwh_delivered),
        "kwh_received": plain(det.kwh_received),
        "peak_kw": plain(det.peak_kw),
    }


def _amount(value: Decimal) -> str:
    """Money as a decimal string with its cents (``"0.00"``, ``"-12.30"``)."""
    return str(money(value))


def annual_total(bills: list[Bill]) -> str:
    return _amount(sum((b.total for b in bills), ZERO))
