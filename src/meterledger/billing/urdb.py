"""OpenEI Utility Rate Database (URDB) rates as tariffs.

Input: one URDB v3/v7/v8 rate; an API response ``{"items": [rate]}`` with exactly one rate; or
either of them encoded once more as a JSON string. The result has one version. Energy period
``i`` is ``period_i``, TOU demand period ``j`` is ``demand_j``, a tier costs ``rate + adj``, and
periods that no schedule uses are left out. Months that share their energy and demand rows and
flat demand price form one season named by its months (``"jun-sep"``, ``"oct-may"``,
``"feb-apr+nov-dec"``). Energy tier limits apply to the cycle's total use across the periods
(``tier_basis: total``), as SAM reads them. A tier ``max`` of none or 1e37 and more (URDB writes
"no limit" as 1e38) is unlimited; so is the last tier whatever its ``max`` (usage beyond it pays
the last rate, as in SAM). ``startdate`` gives the effective date in UTC (2000-01-01 if
missing), a missing ``demandwindow`` means 15 minutes, ``dgrules``/``usenetmetering`` give the
metering.

URDB rates carry no time zone: the caller must give the meter's zone (``--tz`` on the command
line); without it the schedules are read as UTC.

Fields that change the price but that the tariff model cannot express (reactive power
charges, ratchets, coincident demand, ``*attrs``, fuel adjustments, "Net Billing Hourly", ...)
are refused with an :class:`InputError` naming them: a rate is imported exactly or not at all.
Empty values and zeros of such fields cannot change the price and are accepted.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from meterledger.billing.money import dec
from meterledger.billing.tariff import Tariff, tariff_from_mapping
from meterledger.core.errors import InputError
from meterledger.core.time import parse_zone

__all__ = ["tariff_from_urdb", "tariff_from_urdb_text"]

_UNLIMITED = Decimal("1e37")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("weekday", "weekend")
_SCHEDULES = ("weekday", "weekend", "demand_weekday", "demand_weekend")  # as ``grids`` below

# Fields that do not change the price: identification, eligibility, comments; and the unit
# and schedule of coincident demand, which price nothing without coincidentratestructure.
_INFORMATIONAL = frozenset({
    "label", "uri", "name", "utility", "eiaid", "sector", "servicetype", "description", "source",
    "sourceparent", "startdate", "enddate", "supersedes", "supercedes", "country", "approved",
    "is_default", "revisions", "latest_update", "type", "voltagecategory", "phasewiring",
    "voltageminimum", "voltagemaximum", "peakkwcapacitymin", "peakkwcapacitymax",
    "peakkwcapacityhistory", "peakkwhusagemin", "peakkwhusagemax", "peakkwhusagehistory",
    "energycomments", "demandcomments", "basicinformationcomments", "coincidentrateunit",
    "coincidentrateschedule",
})  # fmt: skip
_MAPPED = frozenset({
    "energyratestructure", "energyweekdayschedule", "energyweekendschedule", "demandratestructure",
    "demandweekdayschedule", "demandweekendschedule", "demandrateunit", "demandunits",
    "demandwindow", "flatdemandstructure", "flatdemandmonths", "flatdemandunit",
    "fixedchargefirstmeter", "fixedchargeunits", "fixedmonthlycharge", "mincharge",
    "minchargeunits", "minmonthlycharge", "annualmincharge", "dgrules", "usenetmetering",
})  # fmt: skip
# Fields that change the price and have no counterpart in the tariff model.
_UNSUPPORTED = frozenset({
    "demandratchetpercentage", "demandreactivepowercharge", "coincidentratestructure",
    "demandattrs", "energyattrs", "fixedattrs", "fueladjustmentsmonthly", "fixedchargeeaaddl",
    "lookbackmonths", "lookbackpercent", "lookbackrange",
})  # fmt: skip
_ENERGY_UNITS = {"kWh": "kWh", "kWh daily": "kWh/day", "kWh/day": "kWh/day", "kWh/kW": "kWh/kW"}
_DGRULES = {"Net Metering": "nem", "Net Billing Instantaneous": "net_billing",
            "Buy All Sell All": "buy_all_sell_all"}  # fmt: skip
# (amount field, its units field, URDB units → ours, legacy field → ours)
_Charge = tuple[str, str, dict[str, str], dict[str, str]]
_FIXED: _Charge = (
    "fixedchargefirstmeter", "fixedchargeunits", {"$/month": "month", "$/day": "day"},
    {"fixedmonthlycharge": "month"},
)  # fmt: skip
_MINIMUM: _Charge = (
    "mincharge", "minchargeunits", {"$/month": "monthly", "$/day": "daily", "$/year": "annual"},
    {"minmonthlycharge": "monthly", "annualmincharge": "annual"},
)  # fmt: skip


def tariff_from_urdb_text(text: str, *, origin: str, timezone: str | None = None) -> Tariff:
    """A tariff from the text of a URDB JSON file (see the module docstring)."""
    return tariff_from_urdb(text, origin=origin, timezone=timezone)


def tariff_from_urdb(obj: object, *, origin: str, timezone: str | None = None) -> Tariff:
    """A tariff from a parsed URDB rate, an API response ``{"items": [rate]}`` or either as a
    JSON string. ``timezone`` is the IANA zone the hour schedules are read in (default UTC)."""
    try:
        parse_zone(timezone or "UTC")
    except InputError as exc:
        raise InputError(f"{origin}: {exc}") from None
    raw = _unwrap(obj, origin)
    _refuse_unsupported(raw, origin)
    for field in ("demandrateunit", "flatdemandunit", "demandunits"):
        if not _empty(raw.get(field)) and raw[field] != "kW":
            why = "only kW demand; daily, hp and kVA demand cannot be billed"
            raise InputError(f"{origin}: {field} {raw[field]!r} is not supported ({why})")
    energy, demand, flat = (_structure(raw, f"{kind}structure", origin)
                            for kind in ("energyrate", "demandrate", "flatdemand"))  # fmt: skip
    if not energy:
        raise InputError(f"{origin}: the URDB rate has no energyratestructure")
    grids = [_grid(raw, f"energy{day}schedule", len(energy), origin) for day in _DAYS]
    if demand:
        grids += [_grid(raw, f"demand{day}schedule", len(demand), origin) for day in _DAYS]
    flat_months = _flat_months(raw, len(flat), origin) if flat else []
    flat_prices = _prices(flat, set(flat_months), "", "flatdemandstructure", origin)

    groups: dict[tuple[Any, ...], list[int]] = {}
    for m in range(12):  # flat demand periods of equal prices fall in one season
        flat_price = flat_prices[str(flat_months[m])] if flat_months else None
        key = (*(grid[m] for grid in grids), json.dumps(flat_price, default=str, sort_keys=True))
        groups.setdefault(key, []).append(m)
    seasons: dict[str, dict[str, Any]] = {}
    for months in groups.values():
        first = months[0]
        season: dict[str, Any] = {"months": [m + 1 for m in months]}
        for name, grid in zip(_SCHEDULES, grids, strict=False):
            season[name] = _runs(grid[first], "demand_" if name[0] == "d" else "period_")
        if flat_months:
            season["flat_demand"] = flat_prices[str(flat_months[first])]
        seasons[_season_name(season["months"])] = season

    used_energy = {p for grid in grids[:2] for row in grid for p in row}
    used_demand = {p for grid in grids[2:] for row in grid for p in row}
    fixed = _charges(raw, origin, _FIXED)
    ident = _text(raw.get("label")) or Path(origin).stem or "urdb"
    mapping: dict[str, Any] = {
        "id": ident,
        "name": _text(raw.get("name")) or ident,
        "utility": _text(raw.get("utility")),
        "timezone": timezone or "UTC",
        "effective": _effective(raw, origin),
        "seasons": seasons,
        "energy": _prices(energy, used_energy, "period_", "energyratestructure", origin),
        # URDB tier limits count the month's total use across the TOU periods (as SAM reads
        # them); each period pays its share of every tier at its own tier rate.
        "tier_basis": "total",
        "demand": {
            "window_minutes": _window(raw, origin),
            "tou": _prices(demand, used_demand, "demand_", "demandratestructure", origin),
        },
        "fixed": [{"name": "Fixed charge", "amount": a, "per": p} for p, a in fixed.items()],
        "minimum": _charges(raw, origin, _MINIMUM),
        "metering": _metering(raw, origin),
    }
    return tariff_from_mapping(mapping, source="urdb", origin=origin)


def _unwrap(obj: object, origin: str) -> dict[str, Any]:
    for _ in range(2):  # the JSON text, and a response saved as a string holds it once more
        try:
            obj = json.loads(obj) if isinstance(obj, str) else obj
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno} column {exc.colno}"
            raise InputError(f"{origin}: not valid JSON: {exc.msg} at {where}") from None
    if isinstance(obj, dict) and "error" in obj and "energyratestructure" not in obj:
        error = obj["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise InputError(f"{origin}: the URDB API answered with an error: {message}")
    if isinstance(obj, dict) and "items" in obj:
        obj = obj["items"]
    if isinstance(obj, list):
        if len(obj) != 1:
            labels = [str(r.get("label") or r.get("name")) for r in obj if isinstance(r, dict)]
            shown = f" ({', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''})"
            raise InputError(
                f"{origin}: the URDB response holds {len(obj)} rates{shown if labels else ''}; "
                "a tariff file must hold exactly one (keep the rate to bill)"
            )
        obj = obj[0]
    if not isinstance(obj, dict):
        raise InputError(f"{origin}: not a URDB rate: expected a JSON object, got {_kind(obj)}")
    return obj


def _refuse_unsupported(raw: dict[str, Any], origin: str) -> None:
    known = _INFORMATIONAL | _MAPPED
    present = sorted(k for k, v in raw.items() if k not in known and not _empty(v))
    unsupported = [k for k in present if k.lower() in _UNSUPPORTED]
    unknown = [k for k in present if k.lower() not in _UNSUPPORTED]
    why = "change the price, so the rate cannot be billed exactly"
    parts = []
    if unsupported:
        parts.append(f"URDB fields not supported (they {why}): {', '.join(unsupported)}")
    if unknown:
        parts.append(f"URDB fields unknown to the import (they may {why}): {', '.join(unknown)}")
    if parts:
        raise InputError(f"{origin}: " + "; ".join(parts))


def _empty(value: object) -> bool:
    """True where a value cannot change a price: null, false, zero, blank, all-empty lists."""
    if value is None or isinstance(value, bool):
        return value is not True
    if isinstance(value, int | float | Decimal):
        return value == 0
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | dict):
        return all(_empty(v) for v in (value.values() if isinstance(value, dict) else value))
    return False


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _index(value: object, count: int, where: str) -> int:
    """A period index below ``count``: an integer, also as an integral float (``3.0``)."""
    number = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if number is None or not number.is_finite() or number != number.to_integral_value():
        raise InputError(f"{where}: expected a period index (0, 1, ...), got {value!r}")
    if not 0 <= number < count:
        raise InputError(f"{where}: period {value} does not exist (periods: 0-{count - 1})")
    return int(number)


def _structure(raw: dict[str, Any], field: str, origin: str) -> list[Any]:
    value = raw.get(field)
    if value is not None and not isinstance(value, list):
        raise InputError(f"{origin}: {field} must be a list of periods, got {_kind(value)}")
    return value or []


def _grid(raw: dict[str, Any], field: str, count: int, origin: str) -> list[tuple[int, ...]]:
    """A 12 × 24 (month × hour) schedule of period indices below ``count``."""
    value = raw.get(field)
    if not isinstance(value, list) or len(value) != 12:
        got = f"{len(value)} rows" if isinstance(value, list) else _kind(value)
        raise InputError(f"{origin}: {field} must be 12 months × 24 hours, got {got}")
    rows = []
    for m, row in enumerate(value, start=1):
        if not isinstance(row, list) or len(row) != 24:
            got = f"{len(row)} hours" if isinstance(row, list) else _kind(row)
            raise InputError(f"{origin}: {field} month {m} must have 24 hours, got {got}")
        where = f"{origin}: {field} month {m} hour"
        rows.append(tuple(_index(v, count, f"{where} {h}") for h, v in enumerate(row)))
    return rows


def _flat_months(raw: dict[str, Any], count: int, origin: str) -> list[int]:
    value = raw.get("flatdemandmonths")
    if value is None and count == 1:
        return [0] * 12
    if not isinstance(value, list) or len(value) != 12:
        got = f"{len(value)} entries" if isinstance(value, list) else _kind(value)
        raise InputError(f"{origin}: flatdemandmonths must list 12 months, got {got}")
    where = f"{origin}: flatdemandmonths month"
    return [_index(v, count, f"{where} {m}") for m, v in enumerate(value, start=1)]


def _prices(periods: list[Any], used: set[int], prefix: str, field: str, origin: str) -> Any:
    """The used periods of a rate structure, named ``prefix + index``."""
    energy = field.startswith("energy")
    return {f"{prefix}{i}": _price(periods[i], f"{origin}: {field}[{i}]", energy=energy)
            for i in sorted(used)}  # fmt: skip


def _price(tiers: object, where: str, *, energy: bool) -> dict[str, Any]:
    """URDB tiers of one period → our ``{rate}`` or ``{tiers}`` (+ ``tier_unit``, ``sell``)."""
    if not isinstance(tiers, list) or not tiers:
        raise InputError(f"{where}: expected a non-empty list of tiers, got {_kind(tiers)}")
    blocks: list[dict[str, Any]] = []
    units: set[str] = set()
    sells: set[Decimal | None] = set()
    for i, tier in enumerate(tiers):
        at = f"{where} tier {i}"
        if not isinstance(tier, dict):
            raise InputError(f"{at}: expected an object, got {_kind(tier)}")
        extra = sorted(set(tier) - {"rate", "adj", "max", "unit", "sell"})
        if extra:
            raise InputError(f"{at}: tier fields not supported: {', '.join(extra)}")
        if tier.get("rate") is None and tier.get("adj") is None:
            raise InputError(f"{at}: has no rate")
        rate = dec(tier.get("rate") or 0, f"{at} rate") + dec(tier.get("adj") or 0, f"{at} adj")
        limit = None if tier.get("max") is None else dec(tier["max"], f"{at} max")
        if i == len(tiers) - 1:
            blocks.append({"rate": rate})
        elif limit is None or limit >= _UNLIMITED:
            raise InputError(f"{at}: has no max (it is unlimited) but tier {i + 1} follows it")
        else:
            blocks.append({"upto": limit, "rate": rate})
        unit = tier.get("unit")
        if energy:
            units.add(_ENERGY_UNITS.get(str(unit or "kWh"), str(unit)))
            sells.add(None if tier.get("sell") is None else dec(tier["sell"], f"{at} sell"))
        elif unit not in (None, "kW"):
            raise InputError(f"{at}: unit {unit!r} is not supported (only kW)")
        elif not _empty(tier.get("sell")):
            raise InputError(f"{at}: sell is not supported on a demand tier")
    price: dict[str, Any] = {"rate": blocks[0]["rate"]} if len(blocks) == 1 else {"tiers": blocks}
    if not energy:
        return price
    if unknown := sorted(units - set(_ENERGY_UNITS.values())):
        shown = ", ".join(map(repr, unknown))
        raise InputError(f"{where}: unit {shown} is not supported (kWh, kWh daily, kWh/kW)")
    if len(units) > 1:
        raise InputError(f"{where}: tiers mix units {sorted(units)}; a period has one unit")
    if len(sells) > 1:
        shown = ", ".join(sorted("none" if s is None else str(s) for s in sells))
        raise InputError(f"{where}: URDB field sell differs between tiers ({shown}); tiered "
                         "sell rates are not supported")  # fmt: skip
    price["tier_unit"] = units.pop()
    sell = sells.pop()
    return price if sell is None else {**price, "sell": sell}


def _runs(row: tuple[int, ...], prefix: str) -> dict[str, str]:
    """24 hourly period indices → ``{"HH:00": name}`` at each change."""
    return {f"{h:02d}:00": f"{prefix}{p}" for h, p in enumerate(row) if h == 0 or p != row[h - 1]}


def _season_name(months: list[int]) -> str:
    runs: list[list[int]] = []
    for month in months:
        if runs and runs[-1][-1] == month - 1:
            runs[-1].append(month)
        else:
            runs.append([month])
    if len(runs) > 1 and runs[0][0] == 1 and runs[-1][-1] == 12:
        runs[0] = runs.pop() + runs[0]  # wraps over the new year: "oct-may"
    names = [_MONTHS[r[0] - 1] + ("" if len(r) == 1 else f"-{_MONTHS[r[-1] - 1]}") for r in runs]
    return "+".join(names)


def _effective(raw: dict[str, Any], origin: str) -> date:
    start = raw.get("startdate")
    if start is None:
        return date(2000, 1, 1)
    if isinstance(start, int | float) and not isinstance(start, bool):
        try:
            return datetime.fromtimestamp(start, tz=UTC).date()
        except (ValueError, OverflowError, OSError):
            pass
    raise InputError(f"{origin}: startdate {start!r} is not a time in epoch seconds")


def _window(raw: dict[str, Any], origin: str) -> int:
    value = raw.get("demandwindow")
    if value is None:
        return 15
    if value in (15, 30, 60) and not isinstance(value, bool):
        return int(value)
    raise InputError(f"{origin}: demandwindow {value!r} is not supported (15, 30 or 60 minutes)")


def _charges(raw: dict[str, Any], origin: str, spec: _Charge) -> dict[str, Decimal]:
    """An amount in its units (``$/month``, ...) and the legacy fields, which must agree."""
    field, units_field, units_of, legacy = spec
    found: dict[str, Decimal] = {}
    units = raw.get(units_field) or "$/month"
    if not _empty(raw.get(field)):
        if units not in units_of:
            supported = ", ".join(units_of)
            raise InputError(f"{origin}: {units_field} {units!r} is not supported ({supported})")
        found[units_of[units]] = dec(raw[field], f"{origin}: {field}")
    primary = dict(found)
    for old, key in legacy.items():
        if not _empty(raw.get(old)):
            value = dec(raw[old], f"{origin}: {old}")
            if primary and primary.get(key) != value:
                why = f"disagrees with {field} {raw[field]} {units}; keep one of them"
                raise InputError(f"{origin}: {old} {value} {why}")
            found[key] = value
    return found


def _metering(raw: dict[str, Any], origin: str) -> str | None:
    rule, net = raw.get("dgrules"), raw.get("usenetmetering")
    mode = None if _empty(rule) else _DGRULES.get(str(rule), "")
    if mode == "":
        why = " (exports netted with imports hour by hour)" if rule == "Net Billing Hourly" else ""
        why += f"; supported: {', '.join(map(repr, _DGRULES))}"
        raise InputError(f"{origin}: dgrules {rule!r} is not supported{why}")
    if net is not None and not isinstance(net, bool):
        raise InputError(f"{origin}: usenetmetering must be true or false, got {net!r}")
    if net is not None and mode is not None and net != (mode == "nem"):
        raise InputError(f"{origin}: usenetmetering {net} contradicts dgrules {rule!r}")
    return "nem" if net else mode
