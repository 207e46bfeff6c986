"""A bill: determinants, line items (quantity × rate = amount), subtotal, taxes and total.

``Bill.document()`` is the canonical JSON form that is stored, hashed and rendered. Its
``content_hash`` (SHA-256 of the canonical text) identifies the bill's content: the same data
billed again gives the same hash, which is how bill runs stay idempotent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, overload

from meterledger.billing.money import ZERO, money, plain

__all__ = ["Bill", "DailyTable", "DailyUsage", "Determinants", "Line", "PeriodUsage", "Segment"]


@dataclass(frozen=True, slots=True)
class Line:
    """One line item. ``amount`` is ``quantity × rate`` rounded half-up to the cent."""

    code: str
    description: str
    quantity: Decimal
    unit: str
    rate: Decimal
    amount: Decimal
    period: str | None = None
    segment: int = 0
    prorate: tuple[int, int] | None = None

    @classmethod
    def of(
        cls,
        code: str,
        description: str,
        quantity: Decimal,
        unit: str,
        rate: Decimal,
        *,
        period: str | None = None,
        segment: int = 0,
        prorate: tuple[int, int] | None = None,
    ) -> Line:
        exact = quantity * rate
        if prorate is not None:
            exact = exact * prorate[0] / prorate[1]
        return cls(code, description, quantity, unit, rate, money(exact), period, segment, prorate)

    @property
    def explanation(self) -> str:
        """``512.25 kWh × $0.2543/kWh = $130.26``; a prorated line adds ``× 17/31 days``."""
        if self.unit == "$":
            text = f"${plain(self.quantity)} × {plain(self.rate)}"
        elif self.unit == "":
            text = f"{plain(self.quantity)} × ${plain(self.rate)}"
        else:
            text = f"{plain(self.quantity)} {self.unit} × ${plain(self.rate)}/{self.unit}"
        if self.prorate is not None:
            text += f" × {self.prorate[0]}/{self.prorate[1]} days"
        return f"{text} = ${self.amount}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "description": self.description,
            "quantity": plain(self.quantity),
            "unit": self.unit,
            "rate": plain(self.rate),
            "amount": str(self.amount),
            "period": self.period,
            "segment": self.segment,
            "prorate": list(self.prorate) if self.prorate else None,
            "explanation": self.explanation,
        }


@dataclass(frozen=True, slots=True)
class PeriodUsage:
    """Energy of one TOU period in the cycle (kWh): delivered, received and net."""

    period: str
    kwh_delivered: Decimal
    kwh_received: Decimal

    @property
    def kwh_net(self) -> Decimal:
        return self.kwh_delivered - self.kwh_received

    def as_dict(self) -> dict[str, str]:
        return {
            "period": self.period,
            "kwh_delivered": plain(self.kwh_delivered),
            "kwh_received": plain(self.kwh_received),
            "kwh_net": plain(self.kwh_net),
        }


@dataclass(frozen=True, slots=True)
class DailyUsage:
    """Delivered kWh of one local day, by energy TOU period (for the invoice chart)."""

    day: date
    by_period: tuple[tuple[str, Decimal], ...]

    def as_dict(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), **{p: plain(v) for p, v in self.by_period}}


class DailyTable(Sequence[DailyUsage]):
    """Daily usage kept as integer mWh and turned into :class:`DailyUsage` only when read
    (rating thousands of bills need not pay for the invoice chart)."""

    __slots__ = ("_days", "_items", "_names", "_rows")

    def __init__(
        self, names: tuple[str, ...], days: Sequence[date], rows: Sequence[Sequence[int]]
    ) -> None:
        self._names, self._days, self._rows = names, days, rows
        self._items: tuple[DailyUsage, ...] | None = None

    def _build(self) -> tuple[DailyUsage, ...]:
        if self._items is None:
            million = Decimal(1_000_000)
            self._items = tuple(
                DailyUsage(
                    day, tuple(zip(self._names, [Decimal(v) / million for v in row], strict=True))
                )
                for day, row in zip(self._days, self._rows, strict=True)
            )
        return self._items

    @overload
    def __getitem__(self, index: int) -> DailyUsage: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[DailyUsage, ...]: ...
    def __getitem__(self, index: int | slice) -> DailyUsage | tuple[DailyUsage, ...]:
        return self._build()[index]

    def __len__(self) -> int:
        return len(self._days)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return tuple(self._build()) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._build())


@dataclass(frozen=True, slots=True)
class Segment:
    """A part of the cycle billed under one tariff version (split by effective dates and by
    move-in/move-out). ``end`` is exclusive."""

    start: date
    end: date
    effective: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days


@dataclass(frozen=True, slots=True)
class Determinants:
    """What the bill is computed from. ``start``/``end`` bound the cycle (local dates, end
    exclusive); ``days`` counts its local days and ``service_days`` the days in service."""

    start: date
    end: date
    days: int
    service_days: int
    periods: tuple[PeriodUsage, ...]
    demand_kw: tuple[tuple[str, Decimal], ...]
    peak_kw: Decimal
    intervals: int
    estimated_kwh: Decimal
    daily: Sequence[DailyUsage] = ()
    intervals_expected: int = 0

    @property
    def kwh_delivered(self) -> Decimal:
        return sum((p.kwh_delivered for p in self.periods), ZERO)

    @property
    def kwh_received(self) -> Decimal:
        return sum((p.kwh_received for p in self.periods), ZERO)

    @property
    def kwh_net(self) -> Decimal:
        return self.kwh_delivered - self.kwh_received

    @property
    def estimated_share(self) -> Decimal:
        """Share of delivered energy that was estimated, 0 to 1 (4 decimals, half-up)."""
        total = self.kwh_delivered
        if not total:
            return ZERO
        return (self.estimated_kwh / total).quantize(Decimal("0.0001"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": self.days,
            "service_days": self.service_days,
            "kwh_delivered": plain(self.kwh_delivered),
            "kwh_received": plain(self.kwh_received),
            "kwh_net": plain(self.kwh_net),
            "peak_kw": plain(self.peak_kw),
            "intervals": self.intervals,
            "intervals_expected": self.intervals_expected,
            "estimated_kwh": plain(self.estimated_kwh),
            "estimated_share": plain(self.estimated_share),
            "periods": [p.as_dict() for p in self.periods],
            "demand_kw": {name: plain(kw) for name, kw in self.demand_kw},
            "daily": [d.as_dict() for d in self.daily],
        }


@dataclass(frozen=True, slots=True)
class Bill:
    """The bill of one account for one cycle."""

    account: str
    period: str
    tariff_id: str
    tariff_name: str
    tariff_hash: str
    metering: str | None
    currency: str
    timezone: str
    determinants: Determinants
    segments: tuple[Segment, ...]
    lines: tuple[Line, ...]
    meters: tuple[str, ...] = ()
    carry_in: Decimal = ZERO
    carry_out: Decimal = ZERO
    carry: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = field(default=())

    @property
    def charges(self) -> tuple[Line, ...]:
        return tuple(line for line in self.lines if line.code != "tax")

    @property
    def subtotal(self) -> Decimal:
        return sum((line.amount for line in self.charges), ZERO)

    @property
    def taxes(self) -> tuple[Line, ...]:
        return tuple(line for line in self.lines if line.code == "tax")

    @property
    def total(self) -> Decimal:
        return self.subtotal + sum((line.amount for line in self.taxes), ZERO)

    def amount_of(self, *codes: str) -> Decimal:
        return sum((line.amount for line in self.lines if line.code in codes), ZERO)

    def document(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "period": self.period,
            "meters": list(self.meters),
            "tariff": {"id": self.tariff_id, "name": self.tariff_name, "hash": self.tariff_hash},
            "metering": self.metering,
            "currency": self.currency,
            "timezone": self.timezone,
            "determinants": self.determinants.as_dict(),
            "segments": [
                {
                    "start": s.start.isoformat(),
                    "end": s.end.isoformat(),
                    "days": s.days,
                    "effective": s.effective.isoformat(),
                }
                for s in self.segments
            ],
            "lines": [line.as_dict() for line in self.lines],
            "subtotal": str(self.subtotal),
            "total": str(self.total),
            "carry_in": str(self.carry_in),
            "carry_out": str(self.carry_out),
            "carry": dict(self.carry),
            "notes": list(self.notes),
        }

    def canonical(self) -> str:
        return json.dumps(self.document(), sort_keys=True, separators=(",", ":"))

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()
