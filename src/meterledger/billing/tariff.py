"""The tariff model and its YAML format (documented in docs/tariffs.md).

A tariff file is one mapping. Its top level names the tariff, its zone, holidays and metering
mode, and holds the first *version* of the prices (``effective`` date plus seasons, energy and
demand prices, fixed charges, minimums and taxes). ``changes`` lists later versions: each one
is deep-merged onto the version before it from its own ``effective`` date, so a price change
restates only what changed.

Validation happens here, once: every error names the path of the offending field.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from meterledger.billing.money import plain
from meterledger.core.errors import InputError
from meterledger.core.time import parse_zone

__all__ = [
    "DAY_TYPES",
    "METERING_MODES",
    "SLOTS_PER_DAY",
    "CompiledVersion",
    "DemandPrice",
    "EnergyPrice",
    "Tariff",
    "TariffVersion",
    "load_tariff",
    "tariff_from_mapping",
]

SLOTS_PER_DAY = 96  # TOU periods are set at 15-minute granularity
DAY_TYPES = ("weekday", "weekend", "holiday")
METERING_MODES = ("nem", "net_billing", "buy_all_sell_all")
MeteringMode = Literal["nem", "net_billing", "buy_all_sell_all"]
TierUnit = Literal["kWh", "kWh/day", "kWh/kW"]

_STRICT = ConfigDict(extra="forbid", frozen=True)


class Tier(BaseModel):
    """One block: ``rate`` applies to the quantity above the previous tier's ``upto`` and up to
    this one's (cumulative). The last tier has no ``upto``."""

    model_config = _STRICT
    upto: Decimal | None = None
    rate: Decimal


def _tiers(rate: Decimal | None, tiers: list[Tier] | None, what: str) -> tuple[Tier, ...]:
    if (rate is None) == (tiers is None):
        raise ValueError(f"give either rate or tiers for {what}")
    if tiers is None:
        assert rate is not None
        return (Tier(rate=rate),)
    if not tiers:
        raise ValueError("tiers must not be empty")
    last: Decimal | None = Decimal(0)
    for i, tier in enumerate(tiers):
        final = i == len(tiers) - 1
        if tier.upto is None and not final:
            raise ValueError(f"tier {i + 1} has no upto but is not the last tier")
        if tier.upto is not None:
            if final:
                raise ValueError("the last tier must not have an upto (it is unlimited)")
            if last is not None and tier.upto <= last:
                raise ValueError(f"tier {i + 1} upto {tier.upto} is not above the tier before")
            last = tier.upto
    return tuple(tiers)


class _Priced(BaseModel):
    """A price given as one ``rate`` or as ``tiers`` (never both)."""

    model_config = _STRICT
    rate: Decimal | None = None
    tiers: list[Tier] | None = None

    @functools.cached_property
    def blocks(self) -> tuple[Tier, ...]:
        return _tiers(self.rate, self.tiers, "a price")

    @model_validator(mode="after")
    def _check(self) -> _Priced:
        _tiers(self.rate, self.tiers, "a price")
        return self


class EnergyPrice(_Priced):
    """$/kWh of one energy TOU period, flat or tiered; ``sell`` is the export rate."""

    tier_unit: TierUnit = "kWh"
    sell: Decimal | None = None


class DemandPrice(_Priced):
    """$/kW of maximum demand, flat or tiered (tier ``upto`` in kW)."""


def _parse_months(value: object) -> tuple[int, ...]:
    """``"6-9"``, ``"11-3"`` (wraps), ``7`` or ``[6, 7, 8]`` → month numbers."""
    if isinstance(value, int) and not isinstance(value, bool):
        items: list[int] = [value]
    elif isinstance(value, str):
        text = value.replace(" ", "")
        if "-" in text:
            a, _, b = text.partition("-")
            try:
                first, last = int(a), int(b)
            except ValueError:
                raise ValueError(f"months {value!r}: expected a range like '6-9'") from None
            for bound in (first, last):
                if not 1 <= bound <= 12:
                    raise ValueError(f"months {value!r}: {bound} is not a month number 1-12")
            items = []
            month = first
            while True:
                items.append(month)
                if month == last or len(items) > 12:
                    break
                month = month % 12 + 1
        else:
            try:
                items = [int(p) for p in text.split(",") if p]
            except ValueError:
                raise ValueError(f"months {value!r}: expected numbers 1-12") from None
    elif isinstance(value, list):
        items = []
        for item in value:
            if not isinstance(item, int) or isinstance(item, bool):
                raise ValueError(f"months: {item!r} is not a month number")
            items.append(item)
    else:
        raise ValueError(f"months: expected a range like '6-9' or a list, got {value!r}")
    for month in items:
        if not 1 <= month <= 12:
            raise ValueError(f"months: {month} is not a month number 1-12")
    if len(set(items)) != len(items):
        raise ValueError(f"months {value!r} repeat a month")
    return tuple(items)


def _parse_schedule(value: dict[str, str]) -> tuple[tuple[int, str], ...]:
    """``{"00:00": off_peak, "16:00": on_peak}`` → ``((0, "off_peak"), (64, "on_peak"))``."""
    slots: list[tuple[int, str]] = []
    for key, name in value.items():
        text = str(key)
        hh, sep, mm = text.partition(":")
        try:
            hour, minute = int(hh), int(mm)
        except ValueError:
            raise ValueError(f"schedule time {text!r}: expected HH:MM") from None
        if not sep or not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError(f"schedule time {text!r}: expected HH:MM between 00:00 and 23:45")
        if minute % 15:
            raise ValueError(f"schedule time {text!r}: periods change on 15-minute boundaries")
        if not isinstance(name, str) or not name:
            raise ValueError(f"schedule time {text!r}: the period must be a name")
        slots.append((hour * 4 + minute // 15, name))
    slots.sort()
    if not slots or slots[0][0] != 0:
        raise ValueError("a schedule must start at 00:00")
    if len({s for s, _ in slots}) != len(slots):
        raise ValueError("a schedule names one time twice")
    return tuple(slots)


class Season(BaseModel):
    """Months, and per day type the local time at which each TOU period starts."""

    model_config = _STRICT
    months: tuple[int, ...]
    weekday: tuple[tuple[int, str], ...]
    weekend: tuple[tuple[int, str], ...] | None = None
    holiday: tuple[tuple[int, str], ...] | None = None
    demand_weekday: tuple[tuple[int, str], ...] | None = None
    demand_weekend: tuple[tuple[int, str], ...] | None = None
    demand_holiday: tuple[tuple[int, str], ...] | None = None
    flat_demand: DemandPrice | None = None

    @field_validator("months", mode="before")
    @classmethod
    def _months(cls, value: object) -> tuple[int, ...]:
        return _parse_months(value)

    @field_validator(
        "weekday",
        "weekend",
        "holiday",
        "demand_weekday",
        "demand_weekend",
        "demand_holiday",
        mode="before",
    )
    @classmethod
    def _schedule(cls, value: object) -> object:
        if value is None or isinstance(value, tuple):
            return value
        if not isinstance(value, dict):
            raise ValueError("a schedule is a mapping of 'HH:MM' to a period name")
        return _parse_schedule(value)

    def energy_schedule(self, day_type: str) -> tuple[tuple[int, str], ...]:
        weekend = self.weekend or self.weekday
        return {"weekday": self.weekday, "weekend": weekend}.get(day_type) or (
            self.holiday or weekend
        )

    def demand_schedule(self, day_type: str) -> tuple[tuple[int, str], ...]:
        if self.demand_weekday is None:
            return self.energy_schedule(day_type)
        weekend = self.demand_weekend or self.demand_weekday
        return {"weekday": self.demand_weekday, "weekend": weekend}.get(day_type) or (
            self.demand_holiday or weekend
        )


class FixedCharge(BaseModel):
    model_config = _STRICT
    name: str = "Customer charge"
    amount: Decimal
    per: Literal["month", "day"] = "month"


class Minimum(BaseModel):
    """``monthly``/``daily``: the least a cycle's charges may come to; ``annual``: the least
    for the twelve cycles that end at the true-up."""

    model_config = _STRICT
    monthly: Decimal | None = None
    daily: Decimal | None = None
    annual: Decimal | None = None


class Tax(BaseModel):
    """A tax line: ``percent`` of the subtotal of the lines in ``applies_to`` (default: all)."""

    model_config = _STRICT
    name: str
    percent: Decimal
    applies_to: tuple[str, ...] | None = None


class Holidays(BaseModel):
    model_config = _STRICT
    country: str | None = None
    subdiv: str | None = None
    names: tuple[str, ...] | None = None
    dates: tuple[date, ...] = ()
    exclude: tuple[date, ...] = ()


class NetMetering(BaseModel):
    model_config = _STRICT
    true_up_month: int = Field(default=12, ge=1, le=12)
    surplus_rate: Decimal = Decimal(0)


class Demand(BaseModel):
    model_config = _STRICT
    window_minutes: Literal[15, 30, 60] = 15
    method: Literal["block", "rolling"] = "block"
    tou: dict[str, DemandPrice] = Field(default_factory=dict)


class TariffVersion(BaseModel):
    """The prices in force from ``effective`` (a local date) until the next version."""

    model_config = _STRICT
    effective: date
    seasons: dict[str, Season]
    energy: dict[str, EnergyPrice]
    demand: Demand = Field(default_factory=Demand)
    fixed: tuple[FixedCharge, ...] = ()
    minimum: Minimum = Field(default_factory=Minimum)
    tier_basis: Literal["period", "total"] = "period"
    taxes: tuple[Tax, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> TariffVersion:
        seen: dict[int, str] = {}
        for name, season in self.seasons.items():
            for month in season.months:
                if month in seen:
                    raise ValueError(f"month {month} is in seasons {seen[month]!r} and {name!r}")
                seen[month] = name
        missing = sorted(set(range(1, 13)) - set(seen))
        if missing:
            raise ValueError(f"months {missing} are in no season")
        used: set[str] = set()
        for sname, season in self.seasons.items():
            for day_type in DAY_TYPES:
                for _, period in season.energy_schedule(day_type):
                    if period not in self.energy:
                        raise ValueError(
                            f"season {sname!r} {day_type} uses energy period {period!r}, "
                            f"which has no price in energy: (known: {sorted(self.energy)})"
                        )
                    used.add(period)
        unused = sorted(set(self.energy) - used)
        if unused:
            raise ValueError(f"energy periods {unused} are used by no season's schedule")
        demand_used = {
            period
            for season in self.seasons.values()
            for day_type in DAY_TYPES
            for _, period in season.demand_schedule(day_type)
        }
        unpriced = sorted(set(self.demand.tou) - demand_used)
        if unpriced:
            raise ValueError(f"demand.tou prices {unpriced} are used by no demand schedule")
        return self


class Tariff(BaseModel):
    model_config = _STRICT
    id: str
    name: str
    utility: str = ""
    timezone: str
    currency: Literal["USD", "EUR", "GBP", "CAD", "AUD"] = "USD"
    metering: MeteringMode | None = None
    net_metering: NetMetering = Field(default_factory=NetMetering)
    holidays: Holidays = Field(default_factory=Holidays)
    versions: tuple[TariffVersion, ...]
    source: Literal["yaml", "urdb"] = "yaml"
    document: str = ""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            parse_zone(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Tariff:
        dates = [v.effective for v in self.versions]
        if not dates:
            raise ValueError("a tariff has at least one version")
        if dates != sorted(dates) or len(set(dates)) != len(dates):
            raise ValueError(f"changes must have increasing effective dates, got {dates}")
        return self

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.document.encode()).hexdigest()

    def version_at(self, day: date) -> TariffVersion:
        """The version in force on local ``day`` (the first version before its date)."""
        current = self.versions[0]
        for version in self.versions:
            if version.effective <= day:
                current = version
        return current

    def holiday_dates(self, years: range) -> frozenset[date]:
        spec = self.holidays
        days: set[date] = set()
        if spec.country:
            wanted = None if spec.names is None else set(spec.names)
            for day, names in _calendar(spec.country, spec.subdiv, years).items():
                if wanted is None or names & wanted:
                    days.add(day)
        days.update(spec.dates)
        days.difference_update(spec.exclude)
        return frozenset(d for d in days if d.year in years)

    @model_validator(mode="after")
    def _holidays_exist(self) -> Tariff:
        """An unknown calendar, or a holiday name the calendar never uses (a typo would
        silently drop the holiday), is refused when the tariff is loaded."""
        spec = self.holidays
        if not spec.country:
            if spec.names or spec.subdiv:
                raise ValueError("holidays: names and subdiv need a country")
            return self
        first = self.versions[0].effective.year
        try:
            calendar = _calendar(spec.country, spec.subdiv, range(first, first + 8))
        except InputError as exc:
            raise ValueError(str(exc)) from None
        known = set().union(*calendar.values()) if calendar else set()
        unknown = sorted(set(spec.names or ()) - known)
        if unknown:
            raise ValueError(
                f"holidays.names {unknown} are not holidays of {spec.country}"
                f"{'/' + spec.subdiv if spec.subdiv else ''} (its names: {sorted(known)})"
            )
        return self


def _calendar(country: str, subdiv: str | None, years: range) -> dict[date, set[str]]:
    """The ``holidays`` package's calendar: date → holiday names. A date may carry several
    holidays ("A; B"); an observed day is named "X (observed)". Names match exactly, so
    "Independence Day" is not "Juneteenth National Independence Day"."""
    import holidays as holidays_lib

    try:
        calendar = holidays_lib.country_holidays(country, subdiv=subdiv, years=list(years))
    except (NotImplementedError, KeyError) as exc:
        raise InputError(f"unknown holiday calendar {country!r}/{subdiv!r}: {exc}") from None
    return {
        day: {n.strip().removesuffix(" (observed)") for n in str(label).split(";")}
        for day, label in calendar.items()
    }


@dataclass(frozen=True)
class CompiledVersion:
    """Look-up tables of one version: ``[month-1, day type, 15-min slot]`` → period index."""

    version: TariffVersion
    energy_names: tuple[str, ...]
    demand_names: tuple[str, ...]
    season_names: tuple[str, ...]
    energy_lut: np.ndarray
    demand_lut: np.ndarray
    month_season: np.ndarray

    @classmethod
    def build(cls, version: TariffVersion) -> CompiledVersion:
        energy_names = tuple(version.energy)
        season_names = tuple(version.seasons)
        demand_order: list[str] = list(version.demand.tou)
        energy_lut = np.zeros((12, 3, SLOTS_PER_DAY), dtype=np.int16)
        demand_lut = np.zeros((12, 3, SLOTS_PER_DAY), dtype=np.int16)
        month_season = np.zeros(12, dtype=np.int16)
        for s_index, season in enumerate(version.seasons.values()):
            for month in season.months:
                month_season[month - 1] = s_index
                for d_index, day_type in enumerate(DAY_TYPES):
                    _fill(
                        energy_lut[month - 1, d_index],
                        season.energy_schedule(day_type),
                        energy_names,
                    )
                    schedule = season.demand_schedule(day_type)
                    for _, name in schedule:
                        if name not in demand_order:
                            demand_order.append(name)
                    _fill(demand_lut[month - 1, d_index], schedule, demand_order)
        return cls(
            version,
            energy_names,
            tuple(demand_order),
            season_names,
            energy_lut,
            demand_lut,
            month_season,
        )


def _fill(row: np.ndarray, schedule: tuple[tuple[int, str], ...], names: Any) -> None:
    for i, (slot, name) in enumerate(schedule):
        end = schedule[i + 1][0] if i + 1 < len(schedule) else SLOTS_PER_DAY
        row[slot:end] = list(names).index(name)


# -- loading -----------------------------------------------------------------------------

_TOP = {"id", "name", "utility", "timezone", "currency", "metering", "net_metering", "holidays"}


def _merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _where(error: ValidationError) -> str:
    lines: list[str] = []
    seen: set[tuple[str, str]] = set()
    for item in error.errors():
        loc = list(item["loc"])
        inherited = False
        if len(loc) >= 2 and loc[0] == "versions" and isinstance(loc[1], int):
            # Version 0 is the file's top level; version N is changes[N-1], which inherits
            # what it does not restate: the same fault there is reported once.
            inherited = loc[1] > 0
            rest = ".".join(str(p) for p in loc[2:])
            loc = loc[2:] if loc[1] == 0 else [f"changes[{loc[1] - 1}]", *loc[2:]]
        else:
            rest = ".".join(str(p) for p in loc)
        message = str(item["msg"]).removeprefix("Value error, ")
        if inherited and (rest, message) in seen:
            continue
        seen.add((rest, message))
        lines.append(f"{'.'.join(str(p) for p in loc) or '(top level)'}: {message}")
    shown = lines[:5]
    more = len(lines) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def tariff_from_mapping(
    data: object, *, source: Literal["yaml", "urdb"] = "yaml", origin: str = "tariff"
) -> Tariff:
    """Validate a tariff mapping (the parsed YAML) into a :class:`Tariff`."""
    if not isinstance(data, dict):
        raise InputError(f"{origin}: a tariff is a mapping, got {type(data).__name__}")
    body = {k: v for k, v in data.items() if k not in _TOP and k != "changes"}
    changes = data.get("changes") or []
    if not isinstance(changes, list):
        raise InputError(f"{origin}: changes must be a list of versions")
    versions: list[dict[str, Any]] = [body]
    for i, change in enumerate(changes):
        if not isinstance(change, dict) or "effective" not in change:
            raise InputError(f"{origin}: changes[{i}] must be a mapping with an effective date")
        versions.append(_merge(versions[-1], change))
    top = {k: v for k, v in data.items() if k in _TOP}
    document = json.dumps(data, sort_keys=True, separators=(",", ":"), default=_json_default)
    try:
        return Tariff.model_validate(
            {**top, "versions": versions, "source": source, "document": document}
        )
    except ValidationError as exc:
        raise InputError(f"{origin}: {_where(exc)}") from None


def load_tariff(path: Path, *, timezone: str | None = None) -> Tariff:
    """A tariff from our YAML format (``.yaml``/``.yml``) or an OpenEI URDB JSON (``.json``).

    A URDB rate names no zone: ``timezone`` gives it (default UTC). A YAML tariff names its
    own, and ``timezone`` is ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read tariff {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"tariff {path} is not UTF-8 text") from None
    if path.suffix.lower() == ".json":
        from meterledger.billing.urdb import tariff_from_urdb_text

        return tariff_from_urdb_text(text, origin=str(path), timezone=timezone or "UTC")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"tariff {path} is not valid YAML: {exc}") from None
    if isinstance(data, dict) and "id" not in data:
        data = {"id": path.stem, **data}
    return tariff_from_mapping(data, origin=str(path))
