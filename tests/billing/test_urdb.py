"""URDB import: every shared reference rate imports with the right prices or fails for a named
reason, and small hand-made rates cover the quirks and the refusals one by one."""

from __future__ import annotations

import copy
import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import support
from meterledger.billing.tariff import (
    DAY_TYPES,
    CompiledVersion,
    Tariff,
    load_tariff,
    tariff_from_mapping,
)
from meterledger.billing.urdb import tariff_from_urdb, tariff_from_urdb_text
from meterledger.core.errors import InputError

REFERENCE = support.reference_dir("urdb")
needs_reference = support.needs_reference(REFERENCE)
D = Decimal


def reference(name: str) -> Path:
    assert REFERENCE is not None
    return REFERENCE / name


def raw_reference(name: str) -> dict[str, Any]:
    return json.loads(reference(name).read_text())  # type: ignore[no-any-return]


def period(t: Tariff, month: int, day: str, hour: int, *, demand: bool = False) -> str:
    """The period in force at ``hour``:00 of ``day`` (weekday/weekend) in ``month``."""
    c = CompiledVersion.build(t.versions[0])
    lut, names = (c.demand_lut, c.demand_names) if demand else (c.energy_lut, c.energy_names)
    return names[int(lut[month - 1, DAY_TYPES.index(day), hour * 4])]


def flat_demand(t: Tariff, month: int) -> list[tuple[Decimal | None, Decimal]]:
    for season in t.versions[0].seasons.values():
        if month in season.months:
            assert season.flat_demand is not None
            return [(b.upto, b.rate) for b in season.flat_demand.blocks]
    raise AssertionError(f"month {month} in no season")


def blocks(price: Any) -> list[tuple[Decimal | None, Decimal]]:
    return [(b.upto, b.rate) for b in price.blocks]


# -- the shared reference rates ------------------------------------------------------------

OUTCOMES = {
    "entergy_arkansas_lps_tou_5a592c995457a3371c423a7d.json": None,
    "georgia_power_tou_gsd10_5d55886c5457a3221535a087.json": None,
    "nipsco_rate724_5c5afec35457a3130fde39de.json": None,
    "pysam_tests_urdb_rate_539f6a23ec4f024411ec8beb.api_response_string.json": None,
    "pysam_tests_urdbv7.json": None,
    "reoptjl_test_multi_tier_urdb_response.json": None,
    "reoptjl_test_subhourly_with_urdb.json": "dgrules 'Net Billing Hourly' is not supported",
    "reoptjl_test_tiered_tou_demand.json": None,
    "sce_gs2_tou_optionb_55fc81d7682bea28da64f9ae.json": (
        "URDB fields not supported (they change the price, so the rate cannot be billed "
        "exactly): demandattrs, energyattrs"
    ),
    "sce_tou8_optionb_56bbe2205457a34d2a8b456a.json": (
        "URDB fields not supported (they change the price, so the rate cannot be billed "
        "exactly): demandreactivepowercharge"
    ),
    "south_central_ppd_lp1_539f6a23ec4f024411ec8beb.json": None,
}


@needs_reference
def test_every_reference_file_has_an_expected_outcome() -> None:
    assert REFERENCE is not None
    assert {p.name for p in REFERENCE.glob("*.json")} == set(OUTCOMES)


@needs_reference
@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_reference_file_imports_or_fails_for_its_reason(name: str) -> None:
    expected = OUTCOMES[name]
    if expected is None:
        t = load_tariff(reference(name))
        assert t.source == "urdb"
        assert t.timezone == "UTC"
    else:
        with pytest.raises(InputError) as info:
            load_tariff(reference(name))
        assert str(info.value).startswith(f"{reference(name)}: {expected}")


@needs_reference
@pytest.mark.parametrize("name", sorted(n for n, why in OUTCOMES.items() if why is None))
def test_imported_document_round_trips(name: str) -> None:
    """The stored document of an imported rate rebuilds the same tariff (as the store does)."""
    t = load_tariff(reference(name), timezone="America/Chicago")
    assert t.timezone == "America/Chicago"
    again = tariff_from_mapping(json.loads(t.document), source="urdb", origin="stored")
    assert again == t


@needs_reference
def test_entergy_tou_energy_and_demand_with_adjustments() -> None:
    t = load_tariff(reference("entergy_arkansas_lps_tou_5a592c995457a3371c423a7d.json"))
    v = t.versions[0]
    assert (t.id, t.utility) == ("5a592c995457a3371c423a7d", "Entergy Arkansas Inc (Arkansas)")
    assert t.name == "Large Power Service - Time-Of-Use (PST)"
    assert t.metering == "nem"  # usenetmetering: true
    assert v.effective == date(2018, 1, 1)
    assert list(v.energy) == ["period_0", "period_1", "period_2", "period_3"]
    assert v.energy["period_0"].rate == D("0.01973") + D("0.01882")
    assert v.demand.tou["demand_0"].rate == D("18.887")
    assert v.demand.window_minutes == 15
    assert [(f.amount, f.per) for f in v.fixed] == [(D("468.6"), "month")]
    assert list(v.seasons) == ["oct-may", "jun-sep"]
    assert period(t, 7, "weekday", 13) == "period_0"  # summer on-peak 13:00-20:00
    assert period(t, 7, "weekday", 20) == "period_1"
    assert period(t, 7, "weekend", 13) == "period_1"
    assert period(t, 1, "weekday", 10) == "period_2"
    assert period(t, 1, "weekday", 6) == "period_3"
    assert period(t, 8, "weekday", 15, demand=True) == "demand_0"
    assert period(t, 12, "weekend", 15, demand=True) == "demand_3"


@needs_reference
def test_georgia_power_summer_peak() -> None:
    t = load_tariff(reference("georgia_power_tou_gsd10_5d55886c5457a3221535a087.json"))
    v = t.versions[0]
    assert len(v.energy) == 3
    assert v.energy["period_0"].rate == D("0.184723")
    assert v.demand.tou["demand_1"].rate == D("19.58")
    assert [(f.amount, f.per) for f in v.fixed] == [(D("261.32"), "month")]
    assert t.metering is None
    assert v.effective == date(2019, 1, 1)
    assert period(t, 7, "weekday", 14) == "period_0"
    assert period(t, 7, "weekday", 12) == "period_1"
    assert period(t, 7, "weekend", 14) == "period_2"
    assert period(t, 7, "weekday", 15, demand=True) == "demand_1"
    assert period(t, 1, "weekday", 15, demand=True) == "demand_0"


@needs_reference
def test_nipsco_tiered_energy_and_tiered_flat_demand() -> None:
    t = load_tariff(reference("nipsco_rate724_5c5afec35457a3130fde39de.json"))
    v = t.versions[0]
    assert list(v.seasons) == ["jan-dec"]
    assert blocks(v.energy["period_0"]) == [
        (D(30000), D("0.084598")),
        (D(100000), D("0.076898")),
        (D(1000000), D("0.073348")),
        (None, D("0.069748")),
    ]
    assert v.energy["period_0"].tier_unit == "kWh"
    assert flat_demand(t, 3) == [(D(50), D(0)), (D(2000), D("12.49")), (None, D("11.99"))]
    assert v.demand.tou == {}


@needs_reference
def test_double_encoded_api_response_equals_the_decoded_rate() -> None:
    text = reference("pysam_tests_urdb_rate_539f6a23ec4f024411ec8beb.api_response_string.json")
    assert isinstance(json.loads(text.read_text()), str)  # the file really is double-encoded
    double = load_tariff(text)
    plain = load_tariff(reference("south_central_ppd_lp1_539f6a23ec4f024411ec8beb.json"))
    assert double.versions == plain.versions
    assert double.id == plain.id == "539f6a23ec4f024411ec8beb"
    v = plain.versions[0]
    assert v.energy["period_0"].tier_unit == "kWh/kW"  # hours-use tiers
    assert blocks(v.energy["period_0"]) == [(D(300), D("0.049")), (None, D("0.033"))]
    assert period(plain, 6, "weekday", 12) == "period_0"
    assert period(plain, 10, "weekend", 12) == "period_1"
    assert flat_demand(plain, 6) == [(D(100), D("16.3")), (None, D("14.9"))]
    assert flat_demand(plain, 1) == [(D(100), D("13.5")), (None, D("12.1"))]
    assert v.effective == date(2012, 5, 1)


@needs_reference
def test_sam_v7_export_with_float_schedules_and_legacy_charges() -> None:
    t = load_tariff(reference("pysam_tests_urdbv7.json"))
    v = t.versions[0]
    assert t.id == t.name == "pysam_tests_urdbv7"  # no label: the file name
    assert t.metering == "nem"  # dgrules "Net Metering"
    assert v.effective == date(2000, 1, 1)  # no startdate
    assert [(f.amount, f.per) for f in v.fixed] == [(D("35.28"), "month")]
    assert (v.minimum.monthly, v.minimum.annual) == (D("1.0"), D("12.0"))
    # 9.999999680285692e+37 is "no limit"
    assert blocks(v.energy["period_0"]) == [
        (D("100.0"), D("0.07076899707317352")),
        (None, D("0.08294899761676788")),
    ]
    assert v.energy["period_0"].sell == D(0)
    assert blocks(v.demand.tou["demand_0"]) == [
        (D("100.0"), D("19.538999557495117")),
        (None, D("13.093000411987305")),
    ]
    # flat periods 0 and 1 cost the same (6.46, max 1e+38): one winter season
    assert list(v.seasons) == ["nov-apr", "may-oct"]
    assert flat_demand(t, 1) == flat_demand(t, 3) == [(None, D("6.46"))]
    assert flat_demand(t, 7) == [(None, D("13.87"))]
    assert period(t, 7, "weekday", 15) == "period_0"  # float 0.0 in the schedule
    assert period(t, 1, "weekday", 15) == "period_1"
    assert period(t, 1, "weekday", 15, demand=True) == "demand_0"
    assert period(t, 1, "weekend", 15, demand=True) == "demand_1"


@needs_reference
def test_reopt_multi_tier_drops_the_unused_period_and_bills_per_day() -> None:
    t = load_tariff(reference("reoptjl_test_multi_tier_urdb_response.json"))
    v = t.versions[0]
    assert list(v.energy) == ["period_1", "period_2"]  # period 0 is in no schedule
    assert blocks(v.energy["period_1"]) == [(D(20000), D("0.078891")), (None, D("0.06"))]
    assert [(f.amount, f.per) for f in v.fixed] == [(D("3.298"), "day")]
    assert blocks(v.demand.tou["demand_1"]) == [(D("100.0"), D("24.368")), (None, D("17.031"))]
    assert period(t, 1, "weekday", 12, demand=True) == "demand_0"
    assert period(t, 1, "weekend", 12, demand=True) == "demand_1"
    assert period(t, 6, "weekday", 12) == "period_1"
    assert list(v.seasons) == ["jan", "feb-apr+nov-dec", "may-oct"]


@needs_reference
def test_reopt_tiered_tou_demand() -> None:
    t = load_tariff(reference("reoptjl_test_tiered_tou_demand.json"))
    v = t.versions[0]
    assert blocks(v.demand.tou["demand_0"]) == [(D("50.0"), D(0)), (None, D("12.0"))]
    assert blocks(v.energy["period_0"]) == [(D("40000.0"), D("0.1")), (None, D("0.12"))]


@needs_reference
def test_subhourly_rate_fails_only_for_hourly_net_billing() -> None:
    raw = raw_reference("reoptjl_test_subhourly_with_urdb.json")
    raw["dgrules"] = "Net Billing Instantaneous"
    t = tariff_from_urdb(raw, origin="subhourly.json", timezone="America/Denver")
    v = t.versions[0]
    assert (t.metering, t.timezone) == ("net_billing", "America/Denver")
    assert len(v.energy) == 7
    assert v.energy["period_2"].rate == D("0.30134")  # max 10**38 written as a 39-digit int
    assert v.energy["period_4"].sell == D("0.05819")
    assert v.energy["period_2"].sell == D("0.1096")
    assert [(f.amount, f.per) for f in v.fixed] == [(D(435), "month")]
    assert flat_demand(t, 7) == [(None, D("0.47463"))]
    assert period(t, 7, "weekday", 15) == "period_0"
    assert period(t, 1, "weekday", 15) == "period_1"


@needs_reference
def test_sce_rates_import_without_their_unsupported_fields() -> None:
    raw = raw_reference("sce_gs2_tou_optionb_55fc81d7682bea28da64f9ae.json")
    del raw["energyattrs"], raw["demandattrs"]
    gs2 = tariff_from_urdb(raw, origin="gs2.json")
    v = gs2.versions[0]
    assert len(v.energy) == 5
    assert flat_demand(gs2, 7) == [(None, D("13.2"))]
    assert v.demand.tou["demand_2"].rate == D("18.11")
    assert period(gs2, 7, "weekday", 12) == "period_4"
    assert period(gs2, 7, "weekday", 12, demand=True) == "demand_2"
    assert v.effective == date(2015, 6, 1)

    raw = raw_reference("sce_tou8_optionb_56bbe2205457a34d2a8b456a.json")
    raw["demandreactivepowercharge"] = 0  # a zero charge changes no price
    tou8 = tariff_from_urdb(raw, origin="tou8.json")
    assert [(f.amount, f.per) for f in tou8.versions[0].fixed] == [(D("609.78"), "month")]


# -- hand-made rates -------------------------------------------------------------------------


def grid() -> list[list[Any]]:
    """A 12 × 24 schedule of period 0."""
    return [[0] * 24 for _ in range(12)]


def rate(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "label": "abc123",
        "name": "Test rate",
        "utility": "Test Utility",
        "energyratestructure": [[{"rate": 0.1, "unit": "kWh"}]],
        "energyweekdayschedule": grid(),
        "energyweekendschedule": grid(),
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def fails(obj: object, *parts: str) -> str:
    with pytest.raises(InputError) as info:
        tariff_from_urdb(obj, origin="rate.json")
    message = str(info.value)
    assert message.startswith("rate.json: ")
    for part in parts:
        assert part in message, message
    return message


def load(obj: object, **kwargs: Any) -> Tariff:
    return tariff_from_urdb(obj, origin="rate.json", **kwargs)


def test_minimal_rate() -> None:
    t = load(rate())
    assert (t.id, t.name, t.utility, t.timezone) == ("abc123", "Test rate", "Test Utility", "UTC")
    assert t.versions[0].energy["period_0"].rate == D("0.1")
    assert t.versions[0].effective == date(2000, 1, 1)
    assert t.metering is None


def test_items_wrapper_with_one_rate() -> None:
    assert load({"items": [rate()]}).versions == load(rate()).versions


def test_items_wrapper_with_two_rates_names_them() -> None:
    fails(
        {"items": [rate(label="first"), rate(label="second")]},
        "holds 2 rates (first, second)",
        "exactly one",
    )
    fails({"items": []}, "holds 0 rates")


def test_double_encoded_text_and_string_objects() -> None:
    once = json.dumps(rate())
    assert (
        tariff_from_urdb_text(json.dumps(once), origin="x.json").versions == load(rate()).versions
    )
    assert load(json.dumps({"items": [rate()]})).id == "abc123"


def test_container_errors() -> None:
    with pytest.raises(InputError, match=r"x\.json: not valid JSON"):
        tariff_from_urdb_text("{", origin="x.json")
    fails("not json", "not valid JSON")
    fails(json.dumps(json.dumps("a string")), "not a URDB rate: expected a JSON object, got str")
    fails([1, 2, 3], "holds 3 rates")
    fails(7, "not a URDB rate")
    fails({"error": {"code": "API_KEY_INVALID", "message": "bad key"}}, "URDB API", "bad key")
    fails(rate(energyratestructure=None), "no energyratestructure")


@pytest.mark.parametrize("huge", [10**38, 9.999999680285692e37, 1e38, "1e+38"])
def test_no_limit_written_as_1e38(huge: object) -> None:
    tiers = [{"rate": 0.1, "max": 500}, {"rate": 0.2, "max": huge}]
    t = load(rate(energyratestructure=[tiers]))
    assert blocks(t.versions[0].energy["period_0"]) == [(D(500), D("0.1")), (None, D("0.2"))]
    middle = [{"rate": 0.1, "max": huge}, {"rate": 0.2}]
    fails(rate(energyratestructure=[middle]), "tier 0: has no max (it is unlimited)")


def test_last_tier_is_unlimited_whatever_its_max() -> None:
    tiers = [{"rate": 0.1, "max": 500}, {"rate": 0.2, "max": 1000}]
    t = load(rate(energyratestructure=[tiers]))
    assert blocks(t.versions[0].energy["period_0"])[-1] == (None, D("0.2"))


def test_rate_plus_adjustment_is_exact() -> None:
    t = load(rate(energyratestructure=[[{"rate": 0.1, "adj": 0.2}]]))
    assert t.versions[0].energy["period_0"].rate == D("0.3")  # not 0.30000000000000004


def test_float_schedules_and_bad_entries() -> None:
    rows = [[0.0] * 24 for _ in range(12)]
    rows[6][15:20] = [1.0] * 5
    structure = [[{"rate": 0.1}], [{"rate": 0.3}]]
    t = load(rate(energyratestructure=structure, energyweekdayschedule=rows))
    assert period(t, 7, "weekday", 16) == "period_1"
    assert period(t, 7, "weekend", 16) == "period_0"
    assert t.versions[0].seasons["jul"].weekday == (
        (0, "period_0"),
        (60, "period_1"),
        (80, "period_0"),
    )
    rows[2][5] = 2.5
    fails(rate(energyweekdayschedule=rows), "energyweekdayschedule month 3 hour 5", "2.5")
    rows[2][5] = True
    fails(rate(energyweekdayschedule=rows), "month 3 hour 5: expected a period index")
    rows[2][5] = 2
    fails(
        rate(energyratestructure=structure, energyweekdayschedule=rows), "period 2 does not exist"
    )


def test_bad_schedule_shapes() -> None:
    fails(rate(energyweekdayschedule=grid()[:11]), "12 months × 24 hours, got 11 rows")
    short = grid()
    short[2] = [0] * 23
    fails(rate(energyweekendschedule=short), "energyweekendschedule month 3 must have 24 hours")
    fails(rate(energyweekendschedule=None), "energyweekendschedule must be 12 months", "null")
    demand = [[{"rate": 5}]]
    fails(rate(demandratestructure=demand), "demandweekdayschedule must be 12 months")
    fails(rate(flatdemandstructure=[[{"rate": 1}], [{"rate": 2}]]), "flatdemandmonths must list")
    fails(
        rate(flatdemandstructure=[[{"rate": 1}]], flatdemandmonths=[0] * 11 + [1]),
        "flatdemandmonths month 12: period 1 does not exist",
    )


def test_single_flat_demand_period_needs_no_months() -> None:
    t = load(rate(flatdemandstructure=[[{"rate": 7, "adj": 0.5}]], flatdemandunit="kW"))
    assert flat_demand(t, 4) == [(None, D("7.5"))]


@pytest.mark.parametrize(
    ("unit", "ours"), [("kWh", "kWh"), ("kWh daily", "kWh/day"), ("kWh/kW", "kWh/kW")]
)
def test_energy_tier_units(unit: str, ours: str) -> None:
    tiers = [{"rate": 0.1, "max": 10, "unit": unit}, {"rate": 0.2, "unit": unit}]
    t = load(rate(energyratestructure=[tiers]))
    assert t.versions[0].energy["period_0"].tier_unit == ours


def test_unknown_units_are_named() -> None:
    fails(rate(energyratestructure=[[{"rate": 0.1, "unit": "kWh/kW daily"}]]), "'kWh/kW daily'")
    mixed = [[{"rate": 0.1, "max": 5, "unit": "kWh"}, {"rate": 0.2, "unit": "kWh daily"}]]
    fails(rate(energyratestructure=mixed), "tiers mix units ['kWh', 'kWh/day']")
    demand = {"demandweekdayschedule": grid(), "demandweekendschedule": grid()}
    fails(rate(demandratestructure=[[{"rate": 5, "unit": "kVA"}]], **demand), "unit 'kVA'")
    fails(rate(flatdemandunit="kW daily"), "flatdemandunit 'kW daily' is not supported")
    fails(rate(demandunits="hp"), "demandunits 'hp'")
    fails(
        rate(energyratestructure=[[{"rate": 0.1, "note": "x"}]]), "tier fields not supported: note"
    )


def test_unsupported_fields_are_named_and_their_zeros_accepted() -> None:
    fails(
        rate(demandratchetpercentage=[0.8] * 12, fueladjustmentsmonthly=[0.01] * 12),
        "URDB fields not supported (they change the price",
        "demandratchetpercentage, fueladjustmentsmonthly",
    )
    fails(rate(coincidentratestructure=[[{"rate": 3}]]), "coincidentratestructure")
    fails(rate(energyattrs=[{"Voltage discount": "$-0.001/kWh"}]), "energyattrs")
    fails(rate(surprise=1), "unknown to the import", "surprise")
    load(
        rate(
            demandratchetpercentage=[0] * 12,
            demandreactivepowercharge=0,
            energyattrs=[],
            fixedattrs=[{}],
            coincidentrateunit="kW",
            surprise="",
            sector="Commercial",
            description="text",
            enddate=1700000000,
        )
    )


@pytest.mark.parametrize(
    ("rule", "mode"),
    [
        ("Net Metering", "nem"),
        ("Net Billing Instantaneous", "net_billing"),
        ("Buy All Sell All", "buy_all_sell_all"),
    ],
)
def test_dgrules(rule: str, mode: str) -> None:
    assert load(rate(dgrules=rule)).metering == mode


def test_dgrules_refused_and_usenetmetering() -> None:
    fails(rate(dgrules="Net Billing Hourly"), "'Net Billing Hourly' is not supported", "hour")
    fails(rate(dgrules="Feed-in"), "dgrules 'Feed-in' is not supported")
    assert load(rate(usenetmetering=True)).metering == "nem"
    assert load(rate(usenetmetering=False)).metering is None
    assert load(rate(usenetmetering=True, dgrules="Net Metering")).metering == "nem"
    fails(rate(usenetmetering=True, dgrules="Buy All Sell All"), "contradicts dgrules")
    fails(rate(usenetmetering="yes"), "usenetmetering must be true or false")


def test_sell_rates() -> None:
    same = [[{"rate": 0.1, "max": 5, "sell": 0.05}, {"rate": 0.2, "sell": 0.05}]]
    assert load(rate(energyratestructure=same)).versions[0].energy["period_0"].sell == D("0.05")
    differ = [[{"rate": 0.1, "max": 5, "sell": 0.05}, {"rate": 0.2, "sell": 0.04}]]
    fails(rate(energyratestructure=differ), "energyratestructure[0]", "sell differs")
    demand = {"demandweekdayschedule": grid(), "demandweekendschedule": grid()}
    fails(rate(demandratestructure=[[{"rate": 5, "sell": 1}]], **demand), "sell is not supported")


def test_fixed_charges() -> None:
    per_day = load(rate(fixedchargefirstmeter=0.5, fixedchargeunits="$/day"))
    assert [(f.amount, f.per) for f in per_day.versions[0].fixed] == [(D("0.5"), "day")]
    monthly = load(
        rate(fixedchargefirstmeter=10, fixedchargeunits="$/month", fixedmonthlycharge=10)
    )
    assert [(f.amount, f.per) for f in monthly.versions[0].fixed] == [(D(10), "month")]
    assert load(rate(fixedchargefirstmeter=0, fixedmonthlycharge=0)).versions[0].fixed == ()
    fails(rate(fixedchargefirstmeter=120, fixedchargeunits="$/year"), "fixedchargeunits '$/year'")
    fails(
        rate(fixedchargefirstmeter=1, fixedchargeunits="$/day", fixedmonthlycharge=30),
        "fixedmonthlycharge 30 disagrees with fixedchargefirstmeter 1 $/day",
    )


@pytest.mark.parametrize(
    ("units", "field"), [("$/month", "monthly"), ("$/day", "daily"), ("$/year", "annual")]
)
def test_minimum_charge_units(units: str, field: str) -> None:
    minimum = load(rate(mincharge=25, minchargeunits=units)).versions[0].minimum
    assert getattr(minimum, field) == D(25)


def test_minimum_charges_legacy_and_errors() -> None:
    legacy = load(rate(minmonthlycharge=5, annualmincharge=100)).versions[0].minimum
    assert (legacy.monthly, legacy.daily, legacy.annual) == (D(5), None, D(100))
    assert load(rate(mincharge=5, minmonthlycharge=5)).versions[0].minimum.monthly == D(5)
    fails(rate(mincharge=5, minchargeunits="$/week"), "minchargeunits '$/week'")
    fails(rate(mincharge=5, minmonthlycharge=6), "minmonthlycharge 6 disagrees with mincharge")


@pytest.mark.parametrize("minutes", [15, 30, 60, 30.0])
def test_demand_window(minutes: float) -> None:
    assert load(rate(demandwindow=minutes)).versions[0].demand.window_minutes == int(minutes)


@pytest.mark.parametrize("minutes", [5, 45, "15", True])
def test_demand_window_refused(minutes: object) -> None:
    fails(rate(demandwindow=minutes), "demandwindow", "is not supported")


def test_effective_date_and_zone() -> None:
    t = load(rate(startdate=1514764800), timezone="America/Chicago")
    assert (t.versions[0].effective, t.timezone) == (date(2018, 1, 1), "America/Chicago")
    fails(rate(startdate="soon"), "startdate 'soon'")
    with pytest.raises(InputError, match=r"^rate\.json: unknown IANA time zone: 'Mars/Olympus'$"):
        load(rate(), timezone="Mars/Olympus")


def test_unused_periods_are_dropped_unread() -> None:
    structure = [[{"rate": 0.1}], [{"rate": "garbage", "unit": "parsec"}], [{"rate": 0.3}]]
    rows = grid()
    rows[5] = [2] * 24
    t = load(rate(energyratestructure=structure, energyweekendschedule=rows))
    assert list(t.versions[0].energy) == ["period_0", "period_2"]
    assert period(t, 6, "weekend", 3) == "period_2"


def test_season_names_wrap_over_the_new_year() -> None:
    structure = [[{"rate": 0.1}], [{"rate": 0.2}]]
    rows = [[1 if m in (0, 1, 5, 11) else 0] * 24 for m in range(12)]
    t = load(rate(energyratestructure=structure, energyweekdayschedule=rows))
    assert list(t.versions[0].seasons) == ["dec-feb+jun", "mar-may+jul-nov"]
    assert t.versions[0].seasons["dec-feb+jun"].months == (1, 2, 6, 12)


def test_input_is_not_modified() -> None:
    demand = {"demandweekdayschedule": grid(), "demandweekendschedule": grid()}
    raw = rate(demandratestructure=[[{"rate": 5}]], **demand)
    before = copy.deepcopy(raw)
    load(raw)
    assert raw == before


def test_load_tariff_reads_json_files(tmp_path: Path) -> None:
    path = tmp_path / "my_rate.json"
    path.write_text(json.dumps({"items": [rate(label=None)]}))
    t = load_tariff(path)
    assert (t.id, t.source) == ("my_rate", "urdb")
    path.write_text(json.dumps(rate(dgrules="Net Billing Hourly")))
    with pytest.raises(InputError, match=re.escape(f"{path}: dgrules")):
        load_tariff(path)
