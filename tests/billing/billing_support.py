"""Helpers for the billing tests: tiny tariffs, local instants, hand-made series, one-call bills.

Import as ``from billing.billing_support import ...``. Nothing here computes an expected
amount: the tests write those out by hand.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from meterledger.billing.bill import Bill
from meterledger.billing.cycles import CycleRequest
from meterledger.billing.determinants import Usage
from meterledger.billing.rating import Carry, Rater
from meterledger.billing.tariff import MeteringMode, Tariff, tariff_from_mapping

D = Decimal
NY = ZoneInfo("America/New_York")
MWH_PER_KWH = 1_000_000
HOUR = 3600
QUARTER = 900

BASE: dict[str, Any] = {
    "id": "t",
    "name": "Test tariff",
    "timezone": "America/New_York",
    "effective": "2024-01-01",
    "seasons": {"all": {"months": "1-12", "weekday": {"00:00": "flat"}}},
    "energy": {"flat": {"rate": "0.10"}},
}


def mapping(**fields: Any) -> dict[str, Any]:
    """The base tariff mapping with top-level ``fields`` replaced (a fresh deep copy)."""
    data = copy.deepcopy(BASE)
    data.update(copy.deepcopy(fields))
    return data


def tariff(**fields: Any) -> Tariff:
    return tariff_from_mapping(mapping(**fields))


def at(text: str, zone: ZoneInfo = NY, *, fold: int = 0) -> int:
    """Epoch seconds of the naive local time ``text`` in ``zone``."""
    return int(datetime.fromisoformat(text).replace(tzinfo=zone, fold=fold).timestamp())


def ends_from(start: str, count: int, step: int = QUARTER, zone: ZoneInfo = NY) -> np.ndarray:
    """Interval ends of ``count`` consecutive intervals of ``step`` s from local ``start``
    (stepping in UTC, so a DST day has its real number of intervals)."""
    first = at(start, zone)
    return first + step * np.arange(1, count + 1, dtype=np.int64)


def mwh(values: Sequence[object]) -> np.ndarray:
    """kWh given as decimal strings or ints → integer mWh."""
    return np.asarray([int(D(str(v)) * MWH_PER_KWH) for v in values], dtype=np.int64)


def request(
    period: str,
    *,
    cycle_day: int = 1,
    move_in: date | None = None,
    move_out: date | None = None,
    zone: ZoneInfo = NY,
) -> CycleRequest:
    req = CycleRequest.for_period(
        "ACC-1", period, zone, cycle_day=cycle_day, move_in=move_in, move_out=move_out
    )
    assert req is not None
    return req


def bill(
    t: Tariff,
    period: str,
    ends: Sequence[int] | np.ndarray,
    delivered: Sequence[object],
    received: Sequence[object] | None = None,
    *,
    interval_seconds: int = QUARTER,
    cycle_day: int = 1,
    move_in: date | None = None,
    move_out: date | None = None,
    metering: MeteringMode | None = None,
    carry: Carry | None = None,
    estimated: Sequence[bool] | None = None,
) -> tuple[Bill, Carry]:
    """Bill one cycle of ``t`` from a hand-made series (kWh values)."""
    req = request(period, cycle_day=cycle_day, move_in=move_in, move_out=move_out)
    usage = Usage.single(
        np.asarray(ends, dtype=np.int64),
        mwh(delivered),
        None if received is None else mwh(received),
        None if estimated is None else np.asarray(estimated, dtype=bool),
        interval_seconds=interval_seconds,
    )
    carries = None if carry is None else [carry]
    ((result, out),) = Rater(t, metering).bill_all([req], usage, carries)
    return result, out


def chain(
    t: Tariff,
    periods: Sequence[str],
    ends: Sequence[int] | np.ndarray,
    delivered: Sequence[object],
    received: Sequence[object] | None = None,
    *,
    interval_seconds: int = HOUR,
    metering: MeteringMode | None = None,
) -> list[tuple[Bill, Carry]]:
    """Bill consecutive months of one series, each bill's carry passed to the next."""
    requests = [request(p) for p in periods]
    usage = Usage.single(
        np.asarray(ends, dtype=np.int64),
        mwh(delivered),
        None if received is None else mwh(received),
        requests=len(requests),
        interval_seconds=interval_seconds,
    )
    return Rater(t, metering).bill_all(requests, usage, chain=True)


def lines(b: Bill, *codes: str) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """``(code, quantity, rate, amount)`` of the bill's lines (of ``codes`` if given)."""
    return [
        (ln.code, ln.quantity, ln.rate, ln.amount)
        for ln in b.lines
        if not codes or ln.code in codes
    ]


def amounts(b: Bill, *codes: str) -> list[Decimal]:
    return [ln.amount for ln in b.lines if not codes or ln.code in codes]


def energy_by_period(b: Bill) -> dict[str, tuple[Decimal, Decimal]]:
    """``period → (kWh delivered, kWh received)`` of the non-zero periods."""
    return {
        p.period: (p.kwh_delivered, p.kwh_received)
        for p in b.determinants.periods
        if p.kwh_delivered or p.kwh_received
    }
