"""The tariff model and YAML format: defaults, versions, holidays, and validation errors that
name the offending path."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from billing.billing_support import BASE, D, mapping, tariff
from meterledger.billing.tariff import (
    DAY_TYPES,
    SLOTS_PER_DAY,
    CompiledVersion,
    Tariff,
    load_tariff,
    tariff_from_mapping,
)
from meterledger.core.errors import InputError

TARIFFS = Path(__file__).resolve().parents[2] / "src" / "meterledger" / "billing" / "tariffs"


def periods_of(t: Tariff, month: int, day_type: str, *, demand: bool = False) -> list[str]:
    """The period of each 15-minute slot of a day (96 names)."""
    c = CompiledVersion.build(t.versions[0])
    lut, names = (c.demand_lut, c.demand_names) if demand else (c.energy_lut, c.energy_names)
    row = lut[month - 1, DAY_TYPES.index(day_type)]
    return [names[int(i)] for i in row]


# -- schedules and their defaults ------------------------------------------------------------


def test_schedule_slots_follow_the_start_times_at_15_minute_resolution() -> None:
    t = tariff(
        seasons={
            "all": {"months": "1-12", "weekday": {"00:00": "off", "16:15": "on", "21:00": "off"}}
        },
        energy={"off": {"rate": "0.1"}, "on": {"rate": "0.3"}},
    )
    day = periods_of(t, 1, "weekday")
    assert len(day) == SLOTS_PER_DAY == 96
    # 16:15 is slot 16*4+1 = 65, 21:00 is slot 84: on-peak is slots 65..83 (19 quarter-hours)
    assert day[64] == "off"
    assert day[65] == "on"
    assert day[83] == "on"
    assert day[84] == "off"
    assert day.count("on") == 19


def test_weekend_defaults_to_weekday_and_holiday_to_weekend() -> None:
    only_weekday = tariff(
        seasons={"all": {"months": "1-12", "weekday": {"00:00": "a", "12:00": "b"}}},
        energy={"a": {"rate": "0.1"}, "b": {"rate": "0.2"}},
    )
    weekday = periods_of(only_weekday, 5, "weekday")
    assert periods_of(only_weekday, 5, "weekend") == weekday
    assert periods_of(only_weekday, 5, "holiday") == weekday

    with_weekend = tariff(
        seasons={
            "all": {
                "months": "1-12",
                "weekday": {"00:00": "a", "12:00": "b"},
                "weekend": {"00:00": "c"},
            }
        },
        energy={"a": {"rate": "0.1"}, "b": {"rate": "0.2"}, "c": {"rate": "0.05"}},
    )
    assert periods_of(with_weekend, 5, "weekend") == ["c"] * 96
    assert periods_of(with_weekend, 5, "holiday") == ["c"] * 96  # holiday → weekend

    with_holiday = tariff(
        seasons={
            "all": {
                "months": "1-12",
                "weekday": {"00:00": "a"},
                "weekend": {"00:00": "c"},
                "holiday": {"00:00": "h"},
            }
        },
        energy={"a": {"rate": "0.1"}, "c": {"rate": "0.05"}, "h": {"rate": "0.01"}},
    )
    assert periods_of(with_holiday, 5, "holiday") == ["h"] * 96
    assert periods_of(with_holiday, 5, "weekend") == ["c"] * 96


def test_demand_schedule_defaults_to_the_energy_schedule() -> None:
    t = tariff(
        seasons={"all": {"months": "1-12", "weekday": {"00:00": "off", "16:00": "on"}}},
        energy={"off": {"rate": "0.1"}, "on": {"rate": "0.3"}},
        demand={"tou": {"on": {"rate": "9"}}},
    )
    assert periods_of(t, 3, "weekday", demand=True) == periods_of(t, 3, "weekday")
    own = tariff(
        seasons={
            "all": {
                "months": "1-12",
                "weekday": {"00:00": "off", "16:00": "on"},
                "demand_weekday": {"00:00": "none", "17:00": "peak", "20:00": "none"},
            }
        },
        energy={"off": {"rate": "0.1"}, "on": {"rate": "0.3"}},
        demand={"tou": {"peak": {"rate": "9"}}},
    )
    demand_day = periods_of(own, 3, "weekday", demand=True)
    assert demand_day[67:69] == ["none", "peak"]  # 17:00 is slot 68
    assert demand_day.count("peak") == 12  # 17:00-20:00
    assert periods_of(own, 3, "weekend", demand=True) == demand_day  # weekend → weekday


@pytest.mark.parametrize(
    ("months", "expected"),
    [
        ("6-9", (6, 7, 8, 9)),
        ("11-3", (11, 12, 1, 2, 3)),  # a range wraps over the new year
        (7, (7,)),
        ([1, 4, 5], (1, 4, 5)),
        ("2,8", (2, 8)),
    ],
)
def test_month_forms(months: object, expected: tuple[int, ...]) -> None:
    rest = [m for m in range(1, 13) if m not in expected]
    t = tariff(
        seasons={
            "a": {"months": months, "weekday": {"00:00": "flat"}},
            "b": {"months": rest, "weekday": {"00:00": "flat"}},
        }
    )
    assert t.versions[0].seasons["a"].months == expected


# -- versions ---------------------------------------------------------------------------------


def test_changes_deep_merge_onto_the_version_before() -> None:
    t = tariff(
        energy={"flat": {"rate": "0.10", "sell": "0.04"}},
        fixed=[{"name": "Customer charge", "amount": "12.40"}],
        taxes=[{"name": "Tax", "percent": "5"}],
        changes=[
            {"effective": "2024-03-01", "energy": {"flat": {"rate": "0.12"}}},
            {"effective": "2024-07-01", "fixed": [{"amount": "15.50", "per": "day"}]},
        ],
    )
    first, second, third = t.versions
    assert [v.effective for v in t.versions] == [
        date(2024, 1, 1),
        date(2024, 3, 1),
        date(2024, 7, 1),
    ]
    assert (second.energy["flat"].rate, second.energy["flat"].sell) == (D("0.12"), D("0.04"))
    assert second.fixed == first.fixed
    assert second.taxes == first.taxes
    assert third.energy["flat"].rate == D("0.12")
    # a list is replaced, not merged
    assert [(f.name, f.amount, f.per) for f in third.fixed] == [
        ("Customer charge", D("15.50"), "day")
    ]
    assert t.version_at(date(2023, 12, 31)) is first  # before the first: the first
    assert t.version_at(date(2024, 2, 29)) is first
    assert t.version_at(date(2024, 3, 1)) is second
    assert t.version_at(date(2025, 1, 1)) is third


def test_document_hash_is_stable_and_changes_with_the_content() -> None:
    assert tariff().content_hash == tariff().content_hash
    assert tariff().content_hash != tariff(energy={"flat": {"rate": "0.11"}}).content_hash


# -- holidays ---------------------------------------------------------------------------------


def test_holidays_from_the_package_filtered_by_name_plus_dates_minus_exclude() -> None:
    t = tariff(
        holidays={
            "country": "US",
            "names": ["Thanksgiving Day", "Christmas Day", "Veterans Day"],
            "dates": ["2024-11-12"],
            "exclude": ["2024-11-11"],
        }
    )
    assert t.holiday_dates(range(2024, 2025)) == {
        date(2024, 11, 28),  # Thanksgiving Day (names match exactly)
        date(2024, 12, 25),
        date(2024, 11, 12),  # explicit
    }  # Veterans Day 2024-11-11 excluded; Independence Day etc. not named


def test_holidays_observed_days_and_subdivisions() -> None:
    t = tariff(holidays={"country": "US", "names": ["Christmas Day"]})
    # 2021-12-25 was a Saturday: the package adds the observed Friday
    assert t.holiday_dates(range(2021, 2022)) == {date(2021, 12, 24), date(2021, 12, 25)}
    ma = tariff(holidays={"country": "US", "subdiv": "MA", "names": ["Patriots' Day"]})
    assert ma.holiday_dates(range(2024, 2025)) == {date(2024, 4, 15)}
    every = tariff(holidays={"country": "US"})  # no names: every holiday of the calendar
    assert len(every.holiday_dates(range(2024, 2025))) == 11
    assert tariff().holiday_dates(range(2024, 2025)) == frozenset()


def test_unknown_holiday_calendar_is_refused_when_the_tariff_loads() -> None:
    with pytest.raises(InputError, match="unknown holiday calendar 'XX'"):
        tariff(holidays={"country": "XX"})


def test_a_holiday_name_the_calendar_never_uses_is_refused() -> None:
    with pytest.raises(InputError, match=r"holidays.names \['Labour Day'\] are not holidays of US"):
        tariff(holidays={"country": "US", "names": ["Labour Day", "Labor Day"]})
    with pytest.raises(InputError, match="need a country"):
        tariff(holidays={"names": ["Labor Day"]})


def test_months_beyond_twelve_are_named() -> None:
    seasons = {"all": {"months": "6-13", "weekday": {"00:00": "flat"}}}
    with pytest.raises(InputError, match="13 is not a month number"):
        tariff(seasons=seasons)


def test_bundled_holiday_names_select_only_the_named_holidays() -> None:
    t = load_tariff(TARIFFS / "residential_tou.yaml")
    assert t.holiday_dates(range(2024, 2025)) == {
        date(2024, 1, 1),
        date(2024, 2, 19),
        date(2024, 5, 27),
        date(2024, 7, 4),
        date(2024, 9, 2),
        date(2024, 11, 11),
        date(2024, 11, 28),
        date(2024, 12, 25),
    }


# -- the bundled tariffs ----------------------------------------------------------------------


def test_bundled_residential_tariff() -> None:
    t = load_tariff(TARIFFS / "residential_tou.yaml")
    assert (t.id, t.timezone, t.metering) == ("res-tou-example", "America/New_York", "nem")
    assert t.net_metering.true_up_month == 12
    assert t.net_metering.surplus_rate == D("0.0385")
    before, after = t.versions
    assert after.effective == date(2024, 10, 1)
    assert before.energy["winter_mid_peak"].rate == D("0.4453")
    assert after.energy["winter_mid_peak"].rate == D("0.4611")
    assert after.energy["winter_super_off_peak"].rate == D("0.3168")
    # untouched prices carry over, with their sell rates
    assert after.energy["winter_mid_peak"].sell == D("0.0650")
    assert after.energy["summer_on_peak"] == before.energy["summer_on_peak"]
    off = after.energy["summer_off_peak"]
    assert off.tier_unit == "kWh/day"
    assert [(b.upto, b.rate) for b in off.blocks] == [(D("12.3"), D("0.3361")), (None, D("0.4197"))]
    summer_weekday = periods_of(t, 7, "weekday")
    assert summer_weekday[63:65] == ["summer_off_peak", "summer_on_peak"]  # 16:00 = slot 64
    assert summer_weekday[83:85] == ["summer_on_peak", "summer_off_peak"]  # 21:00 = slot 84
    assert periods_of(t, 7, "weekend")[64] == "summer_mid_peak"
    assert periods_of(t, 1, "weekend") == periods_of(t, 1, "weekday")  # winter: one schedule


def test_bundled_commercial_tariff() -> None:
    t = load_tariff(TARIFFS / "commercial_tou_demand.yaml")
    (v,) = t.versions
    assert t.metering is None
    assert (v.demand.window_minutes, v.demand.method) == (15, "block")
    assert set(v.demand.tou) == {"on_peak_demand", "mid_peak_demand"}
    assert periods_of(t, 7, "weekday", demand=True)[64] == "on_peak_demand"
    assert periods_of(t, 7, "weekday", demand=True)[63] == "none"
    assert v.seasons["summer"].flat_demand is not None
    assert v.minimum.monthly == D("250.00")
    assert [(x.name, x.percent) for x in v.taxes] == [
        ("State energy surcharge", D("0.3")),
        ("Utility users tax", D("5.5")),
    ]


def test_load_tariff_takes_the_id_from_the_file_name(tmp_path: Path) -> None:
    body = {k: v for k, v in BASE.items() if k != "id"}
    path = tmp_path / "my-rate.yaml"
    path.write_text(yaml.safe_dump(body))
    assert load_tariff(path).id == "my-rate"


def test_load_tariff_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read tariff"):
        load_tariff(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_tariff(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="a tariff is a mapping"):
        load_tariff(listed)


# -- validation: every error is an InputError that names the path ------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _two_seasons(d: dict[str, Any]) -> None:
    d["seasons"] = {
        "summer": {"months": "6-9", "weekday": {"00:00": "flat"}},
        "winter": {"months": "10-5", "weekday": {"00:00": "flat"}},
    }


def _overlap(d: dict[str, Any]) -> None:
    _two_seasons(d)
    d["seasons"]["winter"]["months"] = "9-5"


def _missing(d: dict[str, Any]) -> None:
    _two_seasons(d)
    d["seasons"]["winter"]["months"] = "11-5"


def _unknown_period(d: dict[str, Any]) -> None:
    d["seasons"]["all"]["weekend"] = {"00:00": "flat", "12:00": "nope"}


def _not_midnight(d: dict[str, Any]) -> None:
    d["seasons"]["all"]["weekday"] = {"06:00": "flat"}


def _off_grid(d: dict[str, Any]) -> None:
    d["seasons"]["all"]["weekday"] = {"00:00": "flat", "16:10": "flat"}


def _bad_time(d: dict[str, Any]) -> None:
    d["seasons"]["all"]["weekday"] = {"00:00": "flat", "24:00": "flat"}


def _misordered(d: dict[str, Any]) -> None:
    d["energy"]["flat"] = {"tiers": [{"upto": 10, "rate": 1}, {"upto": 5, "rate": 2}, {"rate": 3}]}


def _last_upto(d: dict[str, Any]) -> None:
    d["energy"]["flat"] = {"tiers": [{"upto": 10, "rate": 1}, {"upto": 20, "rate": 2}]}


def _middle_no_upto(d: dict[str, Any]) -> None:
    d["energy"]["flat"] = {"tiers": [{"rate": 1}, {"rate": 2}]}


def _rate_and_tiers(d: dict[str, Any]) -> None:
    d["energy"]["flat"] = {"rate": 1, "tiers": [{"rate": 1}]}


def _unknown_top(d: dict[str, Any]) -> None:
    d["colour"] = "blue"


def _unknown_nested(d: dict[str, Any]) -> None:
    d["energy"]["flat"]["rte"] = "0.2"


def _unknown_in_change(d: dict[str, Any]) -> None:
    d["changes"] = [{"effective": "2024-06-01", "energy": {"flat": {"sel": "0.1"}}}]


def _bad_unit(d: dict[str, Any]) -> None:
    d["energy"]["flat"]["tier_unit"] = "kWh/week"


def _bad_window(d: dict[str, Any]) -> None:
    d["demand"] = {"window_minutes": 20}


def _unused_period(d: dict[str, Any]) -> None:
    d["energy"]["spare"] = {"rate": "0.5"}


def _unused_demand(d: dict[str, Any]) -> None:
    d["demand"] = {"tou": {"ghost": {"rate": 5}}}


def _unordered_changes(d: dict[str, Any]) -> None:
    d["changes"] = [{"effective": "2023-06-01"}]


def _bad_true_up(d: dict[str, Any]) -> None:
    d["net_metering"] = {"true_up_month": 13}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_overlap, r"\(top level\): month 9 is in seasons 'summer' and 'winter'"),
        (_missing, r"\(top level\): months \[10\] are in no season"),
        (_unknown_period, r"\(top level\): season 'all' weekend uses energy period 'nope'"),
        (_not_midnight, r"seasons\.all\.weekday: a schedule must start at 00:00"),
        (_off_grid, r"seasons\.all\.weekday: schedule time '16:10': .*15-minute"),
        (_bad_time, r"seasons\.all\.weekday: schedule time '24:00'"),
        (_misordered, r"energy\.flat: tier 2 upto 5 is not above the tier before"),
        (_last_upto, r"energy\.flat: the last tier must not have an upto"),
        (_middle_no_upto, r"energy\.flat: tier 1 has no upto"),
        (_rate_and_tiers, r"energy\.flat: give either rate or tiers"),
        (_unknown_top, r"colour: Extra inputs are not permitted"),
        (_unknown_nested, r"energy\.flat\.rte: Extra inputs are not permitted"),
        (_unknown_in_change, r"changes\[0\]\.energy\.flat\.sel: Extra inputs are not permitted"),
        (_bad_unit, r"energy\.flat\.tier_unit"),
        (_bad_window, r"demand\.window_minutes"),
        (_unused_period, r"\(top level\): energy periods \['spare'\] are used by no season"),
        (_unused_demand, r"\(top level\): demand.tou prices \['ghost'\] are used by no demand"),
        (_unordered_changes, r"changes must have increasing effective dates"),
        (_bad_true_up, r"net_metering\.true_up_month"),
    ],
)
def test_validation_errors_name_the_path(mutate: Mutation, message: str) -> None:
    data = mapping()
    mutate(data)
    with pytest.raises(InputError, match=message) as caught:
        tariff_from_mapping(data, origin="rates/x.yaml")
    assert str(caught.value).startswith("rates/x.yaml: ")


def test_structural_errors() -> None:
    with pytest.raises(InputError, match="a tariff is a mapping"):
        tariff_from_mapping([1, 2])
    with pytest.raises(InputError, match="changes must be a list"):
        tariff_from_mapping(mapping(changes={"effective": "2024-02-01"}))
    with pytest.raises(InputError, match=r"changes\[0\] must be a mapping with an effective date"):
        tariff_from_mapping(mapping(changes=[{"energy": {}}]))


def test_unknown_timezone_error_names_the_path() -> None:
    data = mapping(timezone="Mars/Olympus_Mons")
    with pytest.raises(InputError, match=r"^rates/x\.yaml: timezone: "):
        tariff_from_mapping(data, origin="rates/x.yaml")
