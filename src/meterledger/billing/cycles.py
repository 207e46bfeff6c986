"""Billing cycles: a period label (``2024-01``) and an account's cycle day → local dates.

Cycle day 1 is the calendar month. Cycle day *d* (2–28) runs from day *d* of the labelled month
to day *d* of the next, end exclusive, in the account's zone. The period is named by the month
in which the cycle starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from meterledger.core.errors import InputError

__all__ = ["CycleRequest", "cycle_dates", "month_periods", "parse_period", "service_window"]

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


def parse_period(text: str) -> tuple[int, int]:
    """``"2024-01"`` → ``(2024, 1)``."""
    match = _PERIOD.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise InputError(f"a billing period is YYYY-MM, like 2024-01; got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def cycle_dates(period: str, cycle_day: int = 1) -> tuple[date, date]:
    """Local ``(start, end)`` of the cycle, end exclusive."""
    if not 1 <= cycle_day <= 28:
        raise InputError(f"a cycle day is 1 to 28, got {cycle_day}")
    year, month = parse_period(period)
    ny, nm = _next_month(year, month)
    return date(year, month, cycle_day), date(ny, nm, cycle_day)


def month_periods(first: date, last: date) -> list[str]:
    """Every ``YYYY-MM`` from the month of ``first`` to the month of ``last``."""
    periods = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        periods.append(f"{year:04d}-{month:02d}")
        year, month = _next_month(year, month)
    return periods


def service_window(
    start: date, end: date, move_in: date | None, move_out: date | None
) -> tuple[date, date] | None:
    """The days of the cycle the account was served: ``move_in`` is the first day served,
    ``move_out`` the last (inclusive). ``None`` when no day of the cycle was served."""
    lo = max(start, move_in) if move_in else start
    hi = end
    if move_out is not None:
        hi = min(end, date.fromordinal(move_out.toordinal() + 1))
    return (lo, hi) if lo < hi else None


@dataclass(frozen=True, slots=True)
class CycleRequest:
    """One account's cycle to bill: ``start``/``end`` local dates (end exclusive) in ``zone``,
    and the service window inside it (move-in/move-out)."""

    account: str
    period: str
    start: date
    end: date
    zone: ZoneInfo
    service_start: date
    service_end: date
    meters: tuple[str, ...] = ()

    @classmethod
    def for_period(
        cls,
        account: str,
        period: str,
        zone: ZoneInfo,
        *,
        cycle_day: int = 1,
        move_in: date | None = None,
        move_out: date | None = None,
        meters: tuple[str, ...] = (),
    ) -> CycleRequest | None:
        """The request, or None when the account was not in service in that cycle."""
        start, end = cycle_dates(period, cycle_day)
        window = service_window(start, end, move_in, move_out)
        if window is None:
            return None
        return cls(account, period, start, end, zone, window[0], window[1], meters)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def service_days(self) -> int:
        return (self.service_end - self.service_start).days
