"""Rating by hand: tiny tariffs and hand-made series, every expected amount worked out in the
comments. Tiers, demand charges, fixed charges and their proration, minimums, taxes, the four
metering modes with NEM carry and true-up, and the bill's content hash."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from billing.billing_support import (
    HOUR,
    D,
    amounts,
    at,
    bill,
    chain,
    ends_from,
    energy_by_period,
    lines,
    mwh,
    request,
    tariff,
)
from meterledger.billing.bill import Line
from meterledger.billing.determinants import Usage
from meterledger.billing.money import money
from meterledger.billing.rating import Carry, Rater, split_tiers
from meterledger.billing.runs import month_summary, usage_for
from meterledger.billing.tariff import Tier, load_tariff

TARIFFS = Path(__file__).resolve().parents[2] / "src" / "meterledger" / "billing" / "tariffs"

# -- rounding ----------------------------------------------------------------------------------


def test_line_amounts_round_half_up_once() -> None:
    # 1 × 0.125 = 0.125 → 0.13 (half-up; half-even would give 0.12)
    assert Line.of("energy", "x", D(1), "kWh", D("0.125")).amount == D("0.13")
    # 3 × 0.0125 = 0.0375 → 0.04
    assert Line.of("energy", "x", D(3), "kWh", D("0.0125")).amount == D("0.04")
    # −1 × 0.125 = −0.125 → −0.13 (half away from zero)
    assert Line.of("nem_credit", "x", D(-1), "kWh", D("0.125")).amount == D("-0.13")
    # prorated lines are rounded once: 1.26 × 0.1 × 1/2 = 0.063 → 0.06
    # (rounding 1.26 × 0.1 = 0.126 → 0.13 first would give 0.065 → 0.07)
    line = Line.of("demand_flat", "x", D("1.26"), "kW", D("0.1"), prorate=(1, 2))
    assert line.amount == D("0.06")
    assert line.explanation == "1.26 kW × $0.1/kW × 1/2 days = $0.06"
    assert money(D("2.675")) == D("2.68")


def test_split_tiers() -> None:
    tiers = [Tier(upto=D(100), rate=D("0.1")), Tier(upto=D(250), rate=D("0.15")), Tier(rate=D(1))]
    assert split_tiers(D(300), tiers) == [
        (1, D(100), D("0.1"), D(0), D(100)),
        (2, D(150), D("0.15"), D(100), D(250)),
        (3, D(50), D(1), D(250), None),
    ]
    assert split_tiers(D(250), tiers) == [
        (1, D(100), D("0.1"), D(0), D(100)),
        (2, D(150), D("0.15"), D(100), D(250)),
    ]
    assert split_tiers(D(0), tiers) == []
    assert split_tiers(D(-5), tiers) == []
    # limits scaled by 17/31: 100 × 0.548387… = 54.839; 250 × 0.548387… = 137.097
    scaled = split_tiers(D(200), tiers, D(17) / D(31))
    assert [(q, lo, hi) for _, q, _, lo, hi in scaled] == [
        (D("54.839"), D(0), D("54.839")),
        (D("82.258"), D("54.839"), D("137.097")),
        (D("62.903"), D("137.097"), None),
    ]


# -- energy tiers ------------------------------------------------------------------------------

THREE_TIERS = [{"upto": 100, "rate": "0.10"}, {"upto": 250, "rate": "0.15"}, {"rate": "0.25"}]


def test_flat_kwh_tiers() -> None:
    t = tariff(energy={"flat": {"tiers": THREE_TIERS}})
    b, _ = bill(t, "2024-01", [at("2024-01-10T13:00")], [300], interval_seconds=HOUR)
    # 100 × 0.10 = 10.00; 150 × 0.15 = 22.50; 50 × 0.25 = 12.50
    assert lines(b, "energy") == [
        ("energy", D(100), D("0.10"), D("10.00")),
        ("energy", D(150), D("0.15"), D("22.50")),
        ("energy", D(50), D("0.25"), D("12.50")),
    ]
    assert [ln.description for ln in b.lines] == [
        "Energy flat tier 1 (0–100 kWh)",
        "Energy flat tier 2 (100–250 kWh)",
        "Energy flat tier 3 (over 250 kWh)",
    ]
    assert b.total == D("45.00")


def test_tiers_are_cumulative_over_the_cycle() -> None:
    # 60 kWh on Jan 5 and 60 on Jan 20: the second day's energy continues up the tiers
    t = tariff(energy={"flat": {"tiers": THREE_TIERS}})
    ends = [at("2024-01-05T13:00"), at("2024-01-20T13:00")]
    b, _ = bill(t, "2024-01", ends, [60, 60], interval_seconds=HOUR)
    # 100 × 0.10 = 10.00; 20 × 0.15 = 3.00
    assert amounts(b, "energy") == [D("10.00"), D("3.00")]


def test_kwh_per_day_tiers() -> None:
    t = tariff(
        energy={
            "flat": {
                "tier_unit": "kWh/day",
                "tiers": [{"upto": 10, "rate": "0.20"}, {"rate": "0.30"}],
            }
        }
    )
    b, _ = bill(t, "2024-04", [at("2024-04-10T13:00")], [350], interval_seconds=HOUR)
    # April: 30 days × 10 = 300 kWh at 0.20 = 60.00; 50 × 0.30 = 15.00
    assert lines(b, "energy") == [
        ("energy", D(300), D("0.20"), D("60.00")),
        ("energy", D(50), D("0.30"), D("15.00")),
    ]
    # served Apr 16 - Apr 30: 15 days × 10 = 150 kWh at 0.20 = 30.00; 200 × 0.30 = 60.00
    b, _ = bill(
        t,
        "2024-04",
        [at("2024-04-20T13:00")],
        [350],
        interval_seconds=HOUR,
        move_in=date(2024, 4, 16),
    )
    assert lines(b, "energy") == [
        ("energy", D(150), D("0.20"), D("30.00")),
        ("energy", D(200), D("0.30"), D("60.00")),
    ]


def test_kwh_per_day_tiers_use_segment_days() -> None:
    t = tariff(
        energy={
            "flat": {
                "tier_unit": "kWh/day",
                "tiers": [{"upto": 10, "rate": "0.20"}, {"rate": "0.30"}],
            }
        },
        changes=[
            {
                "effective": "2024-01-11",
                "energy": {"flat": {"tiers": [{"upto": 10, "rate": "0.22"}, {"rate": "0.33"}]}},
            }
        ],
    )
    ends = [at("2024-01-05T13:00"), at("2024-01-20T13:00")]
    b, _ = bill(t, "2024-01", ends, [120, 220], interval_seconds=HOUR)
    # Jan 1-11: 10 days → 100 kWh; 100 × 0.20 = 20.00, 20 × 0.30 = 6.00
    # Jan 11-Feb 1: 21 days → 210 kWh; 210 × 0.22 = 46.20, 10 × 0.33 = 3.30
    assert lines(b, "energy") == [
        ("energy", D(100), D("0.20"), D("20.00")),
        ("energy", D(20), D("0.30"), D("6.00")),
        ("energy", D(210), D("0.22"), D("46.20")),
        ("energy", D(10), D("0.33"), D("3.30")),
    ]


def test_kwh_per_kw_tiers() -> None:
    t = tariff(
        energy={
            "flat": {
                "tier_unit": "kWh/kW",
                "tiers": [{"upto": 100, "rate": "0.10"}, {"rate": "0.20"}],
            }
        }
    )
    # 125 hours of 2 kWh = 250 kWh; maximum demand 2 kWh / 1 h = 2 kW → limit 100 × 2 = 200 kWh
    ends = ends_from("2024-01-01T00:00", 125, HOUR)
    b, _ = bill(t, "2024-01", ends, [2] * 125, interval_seconds=HOUR)
    assert b.determinants.peak_kw == D(2)
    # 200 × 0.10 = 20.00; 50 × 0.20 = 10.00
    assert lines(b, "energy") == [
        ("energy", D(200), D("0.10"), D("20.00")),
        ("energy", D(50), D("0.20"), D("10.00")),
    ]


# -- demand charges ----------------------------------------------------------------------------


def test_flat_demand_with_tiers() -> None:
    t = tariff(
        seasons={
            "all": {
                "months": "1-12",
                "weekday": {"00:00": "flat"},
                "flat_demand": {"tiers": [{"upto": 10, "rate": "4.00"}, {"rate": "6.00"}]},
            }
        }
    )
    # one quarter-hour of 3.125 kWh: 3.125 / 0.25 h = 12.5 kW
    b, _ = bill(t, "2024-01", [at("2024-01-10T12:15")], ["3.125"])
    # 10 × 4.00 = 40.00; 2.5 × 6.00 = 15.00; energy 3.125 × 0.10 = 0.3125 → 0.31
    assert lines(b, "demand_flat") == [
        ("demand_flat", D(10), D("4.00"), D("40.00")),
        ("demand_flat", D("2.5"), D("6.00"), D("15.00")),
    ]
    assert b.total == D("55.31")


def _tou_demand(**extra: Any):
    return tariff(
        seasons={
            "all": {
                "months": "1-12",
                "weekday": {"00:00": "flat"},
                "demand_weekday": {"00:00": "base", "16:00": "peak", "21:00": "base"},
            }
        },
        energy={"flat": {"rate": "0"}},
        demand={"tou": {"peak": {"tiers": [{"upto": 5, "rate": "10"}, {"rate": "15"}]}}},
        **extra,
    )


def test_tou_demand_with_tiers() -> None:
    # peak quarter-hour 17:00-17:15 of 2 kWh → 8 kW; base 03:00-03:15 of 5 kWh → 20 kW (free)
    ends = [at("2024-01-10T03:15"), at("2024-01-10T17:15")]
    b, _ = bill(_tou_demand(), "2024-01", ends, [5, 2])
    # 5 × 10 = 50.00; 3 × 15 = 45.00
    assert lines(b, "demand_tou", "demand_flat") == [
        ("demand_tou", D(5), D(10), D("50.00")),
        ("demand_tou", D(3), D(15), D("45.00")),
    ]
    assert b.total == D("95.00")


def test_tou_demand_prorated_by_days_in_a_split_cycle() -> None:
    t = _tou_demand(changes=[{"effective": "2024-01-11", "fixed": []}])
    # Jan 1-11 (10 days): 8 kW on Jan 10; Jan 11-Feb 1 (21 days): 4 kW (1 kWh) on Jan 17
    ends = [at("2024-01-10T17:15"), at("2024-01-17T17:15")]
    b, _ = bill(t, "2024-01", ends, [2, 1])
    # 5 × 10 × 10/31 = 16.129… → 16.13; 3 × 15 × 10/31 = 14.516… → 14.52
    # 4 × 10 × 21/31 = 27.096… → 27.10
    demand = [(ln.quantity, ln.prorate, ln.amount) for ln in b.lines if ln.code == "demand_tou"]
    assert demand == [
        (D(5), (10, 31), D("16.13")),
        (D(3), (10, 31), D("14.52")),
        (D(4), (21, 31), D("27.10")),
    ]
    assert dict(b.determinants.demand_kw)["peak"] == D(8)


# -- fixed charges and a tariff change in the cycle ---------------------------------------------


def test_fixed_charges_prorated_by_an_effective_date_change() -> None:
    t = tariff(
        fixed=[
            {"name": "Customer charge", "amount": "12.40", "per": "month"},
            {"name": "Daily charge", "amount": "0.30", "per": "day"},
        ],
        changes=[
            {
                "effective": "2024-01-11",
                "energy": {"flat": {"rate": "0.12"}},
                "fixed": [
                    {"name": "Customer charge", "amount": "15.50", "per": "month"},
                    {"name": "Daily charge", "amount": "0.40", "per": "day"},
                ],
            }
        ],
    )
    # 23:00-24:00 Jan 10 (5 kWh) ends at the change's midnight: the old version;
    # 00:00-01:00 Jan 11 (10 kWh): the new one
    ends = [at("2024-01-11T00:00"), at("2024-01-11T01:00")]
    b, _ = bill(t, "2024-01", ends, [5, 10], interval_seconds=HOUR)
    assert [(s.start, s.end, s.effective) for s in b.segments] == [
        (date(2024, 1, 1), date(2024, 1, 11), date(2024, 1, 1)),
        (date(2024, 1, 11), date(2024, 2, 1), date(2024, 1, 11)),
    ]
    got = [(ln.code, ln.segment, ln.quantity, ln.prorate, ln.amount) for ln in b.lines]
    assert got == [
        ("energy", 1, D(5), None, D("0.50")),  # 5 × 0.10
        ("fixed", 1, D(1), (10, 31), D("4.00")),  # 12.40 × 10/31 = 4.00
        ("fixed", 1, D(10), None, D("3.00")),  # 10 days × 0.30
        ("energy", 2, D(10), None, D("1.20")),  # 10 × 0.12
        ("fixed", 2, D(1), (21, 31), D("10.50")),  # 15.50 × 21/31 = 10.50
        ("fixed", 2, D(21), None, D("8.40")),  # 21 days × 0.40
    ]
    # 0.50 + 4.00 + 3.00 + 1.20 + 10.50 + 8.40 = 27.60
    assert b.total == D("27.60")
    fixed = [ln for ln in b.lines if ln.code == "fixed"]
    assert fixed[0].explanation == "1 month × $12.4/month × 10/31 days = $4.00"
    assert fixed[1].explanation == "10 day × $0.3/day = $3.00"


def test_fixed_charge_unsplit_month_is_not_prorated() -> None:
    t = tariff(fixed=[{"amount": "12.40"}])
    b, _ = bill(t, "2024-02", [], [])
    assert [(ln.description, ln.prorate, ln.amount) for ln in b.lines] == [
        ("Customer charge", None, D("12.40"))
    ]


# -- taxes -------------------------------------------------------------------------------------


def test_taxes_on_the_subtotal_or_on_named_codes_without_compounding() -> None:
    t = tariff(
        energy={"flat": {"rate": "0.333"}},
        fixed=[{"amount": "5.00"}],
        taxes=[
            {"name": "Sales tax", "percent": "5"},
            {"name": "Energy tax", "percent": "10", "applies_to": ["energy"]},
            {"name": "Service tax", "percent": "2", "applies_to": ["fixed", "minimum"]},
        ],
    )
    b, _ = bill(t, "2024-01", [at("2024-01-10T13:00")], [10], interval_seconds=HOUR)
    # energy 10 × 0.333 = 3.33; fixed 5.00; subtotal 8.33
    # sales 8.33 × 5 % = 0.4165 → 0.42; energy 3.33 × 10 % = 0.333 → 0.33;
    # service 5.00 × 2 % = 0.10; none of them taxes another tax
    assert b.subtotal == D("8.33")
    assert lines(b, "tax") == [
        ("tax", D("8.33"), D("0.05"), D("0.42")),
        ("tax", D("3.33"), D("0.1"), D("0.33")),
        ("tax", D("5.00"), D("0.02"), D("0.10")),
    ]
    # 8.33 + 0.42 + 0.33 + 0.10 = 9.18
    assert b.total == D("9.18")
    doc = b.document()
    assert (doc["subtotal"], doc["total"]) == ("8.33", "9.18")
    assert "taxes" not in month_summary(b)  # the bill --json contract has no taxes key
    assert b.amount_of("tax") == D("0.85")


# -- minimums ----------------------------------------------------------------------------------


def test_monthly_minimum() -> None:
    t = tariff(minimum={"monthly": "5.00"}, taxes=[{"name": "Tax", "percent": "10"}])
    b, _ = bill(t, "2024-04", [at("2024-04-10T13:00")], [1], interval_seconds=HOUR)
    # energy 1 × 0.10 = 0.10 < 5.00: minimum line 4.90; tax 5.00 × 10 % = 0.50
    assert lines(b, "minimum") == [("minimum", D(1), D("4.90"), D("4.90"))]
    assert (b.subtotal, b.total) == (D("5.00"), D("5.50"))
    # served Apr 16-30: 15 of 30 days, 5.00 × 15/30 = 2.50; 2.50 − 0.10 = 2.40
    b, _ = bill(
        t,
        "2024-04",
        [at("2024-04-20T13:00")],
        [1],
        interval_seconds=HOUR,
        move_in=date(2024, 4, 16),
    )
    assert amounts(b, "minimum") == [D("2.40")]
    # charges above the minimum: no line (60 × 0.10 = 6.00)
    b, _ = bill(t, "2024-04", [at("2024-04-10T13:00")], [60], interval_seconds=HOUR)
    assert amounts(b, "minimum") == []


def test_daily_minimum() -> None:
    t = tariff(minimum={"daily": "0.20"})
    b, _ = bill(t, "2024-04", [at("2024-04-05T13:00")], [1], interval_seconds=HOUR)
    # 0.20 × 30 days = 6.00; 6.00 − 0.10 = 5.90
    assert amounts(b, "minimum") == [D("5.90")]
    b, _ = bill(
        t,
        "2024-04",
        [at("2024-04-05T13:00")],
        [1],
        interval_seconds=HOUR,
        move_out=date(2024, 4, 10),
    )
    # served Apr 1-10: 0.20 × 10 = 2.00; 2.00 − 0.10 = 1.90
    assert amounts(b, "minimum") == [D("1.90")]
    both = tariff(minimum={"daily": "0.20", "monthly": "5.00"})
    b, _ = bill(both, "2024-04", [at("2024-04-05T13:00")], [1], interval_seconds=HOUR)
    # the higher floor: max(5.00, 6.00) = 6.00
    assert amounts(b, "minimum") == [D("5.90")]


def _annual(true_up_month: int = 3):
    return tariff(
        fixed=[{"amount": "20.00"}],
        minimum={"annual": "100.00"},
        net_metering={"true_up_month": true_up_month},
        taxes=[{"name": "Tax", "percent": "10"}],
    )


def test_annual_minimum_at_the_true_up() -> None:
    ends = [at("2024-01-10T13:00"), at("2024-02-10T13:00"), at("2024-03-10T13:00")]
    (jan, c1), (feb, c2), (mar, c3) = chain(
        _annual(), ["2024-01", "2024-02", "2024-03"], ends, [1, 1, 1]
    )
    # each month 20.00 + 1 × 0.10 = 20.10 before tax; no minimum before the true-up
    assert (jan.subtotal, feb.subtotal) == (D("20.10"), D("20.10"))
    assert amounts(jan, "minimum") == amounts(feb, "minimum") == []
    assert (c1.ytd_charges, c2.ytd_charges) == (D("20.10"), D("40.20"))
    # March: 40.20 + 20.10 = 60.30 < 100.00 → 39.70; subtotal 59.80, tax 5.98
    assert amounts(mar, "minimum") == [D("39.70")]
    assert (mar.subtotal, mar.total) == (D("59.80"), D("65.78"))
    assert c3 == Carry()  # the year starts again


def test_annual_minimum_from_a_given_carry() -> None:
    dec = _annual(true_up_month=12)
    end = [at("2024-12-10T13:00")]
    b, out = bill(dec, "2024-12", end, [1], interval_seconds=HOUR, carry=Carry(ytd_charges=D("70")))
    # 70 + 20.10 = 90.10 < 100 → 9.90
    assert amounts(b, "minimum") == [D("9.90")]
    assert out == Carry()
    b, _ = bill(dec, "2024-12", end, [1], interval_seconds=HOUR, carry=Carry(ytd_charges=D("85")))
    assert amounts(b, "minimum") == []  # 85 + 20.10 = 105.10
    b, out = bill(dec, "2024-11", [at("2024-11-10T13:00")], [1], interval_seconds=HOUR)
    assert amounts(b, "minimum") == []  # not the true-up month
    assert out == Carry(D(0), D(1), D("20.10"))


# -- metering ----------------------------------------------------------------------------------


def _two_periods(flat_demand: str | None = None, **extra: Any):
    season: dict[str, Any] = {
        "months": "1-12",
        "weekday": {"00:00": "off", "16:00": "peak", "21:00": "off"},
    }
    if flat_demand is not None:
        season["flat_demand"] = {"rate": flat_demand}
    return tariff(
        seasons={"all": season},
        energy={
            "peak": {"rate": "0.30", "sell": "0.08"},
            "off": {"tiers": [{"upto": 100, "rate": "0.10"}, {"rate": "0.20"}], "sell": "0.04"},
        },
        fixed=[{"amount": "10.00"}],
        net_metering={"true_up_month": 3, "surplus_rate": "0.04"},
        **extra,
    )


# hourly (interval end, delivered, received) of Wednesday 2024-01-10
METERED = [
    ("2024-01-10T11:00", 3, 1),  # off: imports 2
    ("2024-01-10T12:00", 1, 4),  # off: exports 3
    ("2024-01-10T13:00", 2, 2),  # off: neither
    ("2024-01-10T18:00", 0, 5),  # peak: exports 5
]


def _metered(mode: Any) -> Any:
    ends = [at(e) for e, _, _ in METERED]
    return bill(
        _two_periods(),
        "2024-01",
        ends,
        [d for _, d, _ in METERED],
        [r for _, _, r in METERED],
        interval_seconds=HOUR,
        metering=mode,
    )


def test_no_net_metering_bills_delivered_only() -> None:
    b, out = _metered(None)
    assert b.metering is None
    # off delivered 6 × 0.10 = 0.60; received is not credited
    assert lines(b, "energy", "export_credit", "nem_credit") == [
        ("energy", D(6), D("0.10"), D("0.60"))
    ]
    assert energy_by_period(b) == {"peak": (D(0), D(5)), "off": (D(6), D(7))}
    assert "energy received from the customer is not credited: no net metering" in b.notes
    assert b.total == D("10.60")
    assert out.nem_credit == D(0)
    quiet, _ = bill(_two_periods(), "2024-01", [at("2024-01-10T11:00")], [3], interval_seconds=HOUR)
    assert not [n for n in quiet.notes if "received" in n]


def test_net_billing_nets_each_interval() -> None:
    b, _ = _metered("net_billing")
    # off: Σ max(d − r, 0) = 2 → 2 × 0.10 = 0.20; Σ max(r − d, 0) = 3 → −3 × 0.04 = −0.12
    # peak: exports 5 → −5 × 0.08 = −0.40
    assert sorted(lines(b, "energy", "export_credit")) == sorted(
        [
            ("export_credit", D(-5), D("0.08"), D("-0.40")),
            ("energy", D(2), D("0.10"), D("0.20")),
            ("export_credit", D(-3), D("0.04"), D("-0.12")),
        ]
    )
    # 0.20 − 0.12 − 0.40 + 10.00 = 9.68
    assert b.total == D("9.68")
    assert not [n for n in b.notes if "received" in n or "sell" in n]


def test_net_billing_without_a_sell_rate_credits_nothing_and_says_so() -> None:
    t = tariff(metering="net_billing")
    b, _ = bill(t, "2024-01", [at("2024-01-10T12:00")], [1], [4], interval_seconds=HOUR)
    assert lines(b, "export_credit") == [("export_credit", D(-3), D(0), D("0.00"))]
    assert "no sell rate for flat: exports credited at 0" in b.notes


def test_buy_all_sell_all() -> None:
    b, _ = _metered("buy_all_sell_all")
    # off: all 6 delivered × 0.10 = 0.60; all 7 received × 0.04 = −0.28; peak 5 × 0.08 = −0.40
    assert sorted(lines(b, "energy", "export_credit")) == sorted(
        [
            ("export_credit", D(-5), D("0.08"), D("-0.40")),
            ("energy", D(6), D("0.10"), D("0.60")),
            ("export_credit", D(-7), D("0.04"), D("-0.28")),
        ]
    )
    # 0.60 − 0.28 − 0.40 + 10.00 = 9.92
    assert b.total == D("9.92")


def test_nem_nets_per_period_over_the_cycle() -> None:
    b, out = _metered("nem")
    # off: 6 − 7 = −1 kWh → credit −1 × 0.10 (first tier) = −0.10
    # peak: 0 − 5 = −5 → −5 × 0.30 = −1.50; energy −1.60 is carried forward
    assert sorted(lines(b, "energy", "nem_credit", "nem_carry")) == sorted(
        [
            ("nem_credit", D(-5), D("0.30"), D("-1.50")),
            ("nem_credit", D(-1), D("0.10"), D("-0.10")),
            ("nem_carry", D(1), D("1.60"), D("1.60")),
        ]
    )
    assert b.total == D("10.00")  # credits never offset the fixed charge
    assert (out.nem_credit, b.carry_out) == (D("1.60"), D("1.60"))
    assert out.ytd_net_kwh == D(-6)  # 6 − 12


def test_nem_credit_uses_the_first_tier_rate() -> None:
    t = _two_periods(metering="nem")
    b, out = bill(t, "2024-01", [at("2024-01-10T11:00")], [0], [150], interval_seconds=HOUR)
    # −150 kWh off-peak × 0.10 (first tier, not split over tiers) = −15.00
    assert lines(b, "nem_credit") == [("nem_credit", D(-150), D("0.10"), D("-15.00"))]
    assert out.nem_credit == D("15.00")


def test_nem_nets_per_segment() -> None:
    t = tariff(
        metering="nem", changes=[{"effective": "2024-01-16", "energy": {"flat": {"rate": "0.20"}}}]
    )
    # Jan 10: delivered 10 (segment 1); Jan 20: received 10 (segment 2). The cycle nets to 0
    # kWh, but each segment nets on its own: 10 × 0.10 = 1.00 and −10 × 0.20 = −2.00
    ends = [at("2024-01-10T13:00"), at("2024-01-20T13:00")]
    b, out = bill(t, "2024-01", ends, [10, 0], [0, 10], interval_seconds=HOUR)
    assert lines(b, "energy", "nem_credit", "nem_carry") == [
        ("energy", D(10), D("0.10"), D("1.00")),
        ("nem_credit", D(-10), D("0.20"), D("-2.00")),
        ("nem_carry", D(1), D("1.00"), D("1.00")),  # 1.00 − 2.00 = −1.00 carried
    ]
    assert out.nem_credit == D("1.00")


# three months of one hourly series: January, February and March (the true-up month)
NEM_SERIES = [
    ("2024-01-10T18:00", 10, 30),  # peak
    ("2024-01-10T11:00", 50, 0),  # off
    ("2024-02-12T11:00", 20, 0),  # off
    ("2024-03-11T18:00", 0, 100),  # peak
    ("2024-03-11T11:00", 10, 0),  # off
]


def _nem_months(via_usage_for: bool) -> list[Any]:
    rows = sorted((at(e), d, r) for e, d, r in NEM_SERIES)
    ends = np.asarray([e for e, _, _ in rows], dtype=np.int64)
    delivered = mwh([d for _, d, _ in rows])
    received = mwh([r for _, _, r in rows])
    t = _two_periods(metering="nem")
    periods = ["2024-01", "2024-02", "2024-03"]
    if not via_usage_for:
        return chain(t, periods, ends, [d for _, d, _ in rows], [r for _, _, r in rows])
    requests = [request(p) for p in periods]
    usage = usage_for(requests, ends, delivered, received, None, HOUR)
    assert usage.offsets.tolist() == [0, 2, 3, 5]
    return Rater(t).bill_all(requests, usage, chain=True)


def test_nem_carry_across_months_and_the_true_up() -> None:
    for via_usage_for in (False, True):
        (jan, c1), (feb, c2), (mar, c3) = _nem_months(via_usage_for)
        # January: peak 10 − 30 = −20 → −20 × 0.30 = −6.00; off 50 × 0.10 = 5.00;
        # energy −1.00 → carried forward (+1.00 line); fixed 10.00 stands
        assert sorted(lines(jan, "energy", "nem_credit", "nem_carry")) == sorted(
            [
                ("nem_credit", D(-20), D("0.30"), D("-6.00")),
                ("energy", D(50), D("0.10"), D("5.00")),
                ("nem_carry", D(1), D("1.00"), D("1.00")),
            ]
        )
        assert jan.total == D("10.00")
        assert jan.amount_of("energy", "nem_credit", "nem_carry") == D(0)  # energy nets to 0
        assert c1 == Carry(D("1.00"), D(30), D("10.00"))  # net 60 − 30 = 30 kWh
        # February: off 20 × 0.10 = 2.00, less the 1.00 carried in: 1.00; nothing left over
        assert lines(feb, "energy", "nem_carry") == [
            ("energy", D(20), D("0.10"), D("2.00")),
            ("nem_carry", D(1), D("-1.00"), D("-1.00")),
        ]
        assert (feb.carry_in, feb.carry_out, feb.total) == (D("1.00"), D(0), D("11.00"))
        assert c2 == Carry(D(0), D(50), D("21.00"))
        # March (true-up): peak −100 × 0.30 = −30.00; off 10 × 0.10 = 1.00; energy −29.00:
        # the 29.00 left expires (+29.00 line); year net 50 + 10 − 100 = −40 kWh → surplus
        # compensation −40 × 0.04 = −1.60
        assert sorted(lines(mar, "energy", "nem_credit", "nem_carry", "nsc")) == sorted(
            [
                ("nem_credit", D(-100), D("0.30"), D("-30.00")),
                ("energy", D(10), D("0.10"), D("1.00")),
                ("nem_carry", D(1), D("29.00"), D("29.00")),
                ("nsc", D(-40), D("0.04"), D("-1.60")),
            ]
        )
        assert [ln.description for ln in mar.lines if ln.code == "nem_carry"] == [
            "NEM credit expiring at true-up"
        ]
        assert "NEM credit of $29.00 expired at the annual true-up" in mar.notes
        assert not [n for n in jan.notes + feb.notes if "expired" in n]
        # 1.00 − 30.00 + 29.00 + 10.00 − 1.60 = 8.40
        assert mar.total == D("8.40")
        assert c3 == Carry()
        assert month_summary(mar)["nem_credit"] == "-2.60"  # −30.00 + 29.00 − 1.60


def test_no_surplus_compensation_when_the_year_is_a_net_import() -> None:
    t = _two_periods(metering="nem")
    end = [at("2024-03-11T18:00")]
    # year so far +50 kWh, March −40 kWh → +10: no nsc line; the credit still expires
    b, out = bill(t, "2024-03", end, [0], [40], interval_seconds=HOUR, carry=Carry(D(2), D(50)))
    # −40 × 0.30 = −12.00, carried in −2.00: energy −14.00 expires
    assert lines(b, "nem_credit", "nem_carry", "nsc") == [
        ("nem_credit", D(-40), D("0.30"), D("-12.00")),
        ("nem_carry", D(1), D(-2), D("-2.00")),
        ("nem_carry", D(1), D("14.00"), D("14.00")),
    ]
    assert out == Carry()


def test_metering_can_be_overridden() -> None:
    t = _two_periods(metering="nem")
    b, _ = bill(
        t,
        "2024-01",
        [at("2024-01-10T12:00")],
        [1],
        [4],
        interval_seconds=HOUR,
        metering="net_billing",
    )
    assert b.metering == "net_billing"
    assert lines(b, "export_credit") == [("export_credit", D(-3), D("0.04"), D("-0.12"))]


def test_carry_round_trip() -> None:
    carry = Carry(D("1.25"), D("-40.5"), D("321.09"))
    assert Carry.from_dict(carry.as_dict()) == carry
    assert Carry.from_dict(None) == Carry()


# -- the bill's content hash -------------------------------------------------------------------


def _hash_input() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ends = ends_from("2024-01-10T14:00", 8)
    delivered = mwh(["1.5", "2", "0.25", "3", "1", "0", "2.125", "4"])
    received = mwh(["0", "0.5", "0", "0", "1", "1", "0", "0"])
    return ends, delivered, received


def _hash_of(ends: np.ndarray, delivered: np.ndarray, received: np.ndarray) -> str:
    t = _two_periods("3", metering="nem")
    usage = Usage.single(ends, delivered, received)
    ((b, _),) = Rater(t).bill_all([request("2024-01")], usage)
    return b.content_hash


def test_content_hash_is_stable_for_the_same_input() -> None:
    ends, delivered, received = _hash_input()
    first = _hash_of(ends, delivered, received)
    assert first == _hash_of(ends.copy(), delivered.copy(), received.copy())
    assert len(first) == 64


def test_content_hash_changes_when_any_reading_changes() -> None:
    ends, delivered, received = _hash_input()
    base = _hash_of(ends, delivered, received)
    for i in range(len(ends)):
        for series in (delivered, received):
            changed = series.copy()
            changed[i] += 1  # one mWh
            args = (delivered, changed) if series is received else (changed, received)
            digest = _hash_of(ends, *args)
            assert digest != base, (i, series is received)


def test_carried_credit_larger_than_the_energy_charges_is_carried_on() -> None:
    t = _two_periods(metering="nem")
    b, out = bill(
        t, "2024-01", [at("2024-01-10T11:00")], [20], interval_seconds=HOUR, carry=Carry(D(5))
    )
    # 20 × 0.10 = 2.00 of energy against 5.00 carried in: 3.00 carried on
    assert lines(b, "energy", "nem_carry") == [
        ("energy", D(20), D("0.10"), D("2.00")),
        ("nem_carry", D(1), D(-5), D("-5.00")),
        ("nem_carry", D(1), D("3.00"), D("3.00")),
    ]
    assert [ln.description for ln in b.lines if ln.code == "nem_carry"] == [
        "NEM credit from earlier cycles",
        "NEM credit carried forward",
    ]
    assert (b.carry_in, b.carry_out, out.nem_credit) == (D(5), D("3.00"), D("3.00"))
    assert b.total == D("10.00")


# -- the bundled commercial tariff, one summer month by hand ----------------------------------


def test_bundled_commercial_tariff_july() -> None:
    t = load_tariff(TARIFFS / "commercial_tou_demand.yaml")
    ends = [
        at("2024-07-04T17:15"),  # Independence Day (Thursday): weekend schedule, 50 kWh
        at("2024-07-10T17:15"),  # Wednesday 17:00-17:15: on-peak, 10 kWh
        at("2024-07-13T12:15"),  # Saturday: off-peak, 20 kWh
    ]
    b, _ = bill(t, "2024-07", ends, [50, 10, 20])
    # energy: on-peak 10 × 0.3412 = 3.412 → 3.41; off-peak 70 × 0.1402 = 9.814 → 9.81
    # flat demand 50 kWh / 0.25 h = 200 kW × 21.35 = 4270.00
    # on-peak demand (weekday 16-21 only; not on the holiday) 10 / 0.25 = 40 kW × 24.71 = 988.40
    # customer charge 185.40; subtotal 5457.02 (above the 250.00 minimum)
    # taxes 0.3 % = 16.37106 → 16.37; 5.5 % = 300.1361 → 300.14; total 5773.53
    got = [(ln.code, ln.quantity, ln.amount) for ln in b.lines]
    assert got == [
        ("energy", D(10), D("3.41")),
        ("energy", D(70), D("9.81")),
        ("demand_flat", D(200), D("4270.00")),
        ("demand_tou", D(40), D("988.40")),
        ("fixed", D(1), D("185.40")),
        ("tax", D("5457.02"), D("16.37")),
        ("tax", D("5457.02"), D("300.14")),
    ]
    assert (b.subtotal, b.total) == (D("5457.02"), D("5773.53"))
    assert dict(b.determinants.demand_kw) == {
        "on_peak_demand": D(40),
        "mid_peak_demand": D(0),
        "none": D(200),
    }


def test_true_up_without_a_surplus_rate_pays_nothing() -> None:
    t = tariff(metering="nem", net_metering={"true_up_month": 1})
    b, out = bill(t, "2024-01", [at("2024-01-10T12:00")], [0], [10], interval_seconds=HOUR)
    # −10 × 0.10 = −1.00 expires; the year is −10 kWh, but surplus_rate is 0: no nsc line
    assert lines(b, "nem_credit", "nem_carry", "nsc") == [
        ("nem_credit", D(-10), D("0.10"), D("-1.00")),
        ("nem_carry", D(1), D("1.00"), D("1.00")),
    ]
    assert "NEM credit of $1.00 expired at the annual true-up" in b.notes
    assert out == Carry()


def test_tiers_on_the_cycle_total_share_each_block_by_period() -> None:
    """``tier_basis: total``: on-peak 16:00-21:00 and off-peak, each with tiers of 100 kWh
    (on 0.30 then 0.40; off 0.10 then 0.20). On 2024-01-02 (a Tuesday) 60 kWh on-peak
    (12 kWh in each of the 5 hours) and 90 kWh off-peak (10 kWh in 9 other hours): the total
    150 kWh is 100 kWh of tier 1 and 50 of tier 2.
    on-peak share 60/150 = 0.4: tier 1 40 kWh × 0.30 = 12.00, tier 2 20 kWh × 0.40 = 8.00;
    off-peak share 0.6: tier 1 60 kWh × 0.10 = 6.00, tier 2 30 kWh × 0.20 = 6.00.
    Per period (the default) neither period passes its 100 kWh: 60 × 0.30 + 90 × 0.10 = 27."""
    seasons = {"all": {"months": "1-12",
                       "weekday": {"00:00": "off", "16:00": "on", "21:00": "off"}}}  # fmt: skip
    energy = {
        "on": {"tiers": [{"upto": 100, "rate": "0.30"}, {"rate": "0.40"}]},
        "off": {"tiers": [{"upto": 100, "rate": "0.10"}, {"rate": "0.20"}]},
    }
    hours = [f"2024-01-02T{h:02d}:00" for h in range(24)]
    ends = [at(h) + 3600 for h in hours]
    kwh = [12 if 16 <= h < 21 else (10 if h < 9 else 0) for h in range(24)]
    total_basis, _ = bill(tariff(seasons=seasons, energy=energy, tier_basis="total"),
                          "2024-01", ends, kwh, interval_seconds=3600)  # fmt: skip
    energy_lines = [(ln.period, ln.quantity, ln.amount) for ln in total_basis.lines
                    if ln.code == "energy"]  # fmt: skip
    assert energy_lines == [
        ("on", D(40), D("12.00")),
        ("on", D(20), D("8.00")),
        ("off", D(60), D("6.00")),
        ("off", D(30), D("6.00")),
    ]
    assert "of the cycle's total" in total_basis.lines[0].description
    per_period, _ = bill(tariff(seasons=seasons, energy=energy), "2024-01", ends, kwh,
                         interval_seconds=3600)  # fmt: skip
    assert per_period.amount_of("energy") == D("27.00")


def test_total_basis_shares_add_up_to_each_periods_energy() -> None:
    """Shares that do not divide evenly: 1 kWh on-peak, 2 off-peak, tiers of 1.5 kWh. Total 3:
    tier 1 1.5, tier 2 1.5. On-peak: 1.5 × 1/3 = 0.5 (tier 1), the rest 0.5 (tier 2);
    off-peak: 1.5 × 2/3 = 1 (tier 1), the rest 1 (tier 2). Each period's blocks add up."""
    seasons = {"all": {"months": "1-12",
                       "weekday": {"00:00": "off", "16:00": "on", "17:00": "off"}}}  # fmt: skip
    energy = {
        "on": {"tiers": [{"upto": "1.5", "rate": "1"}, {"rate": "2"}]},
        "off": {"tiers": [{"upto": "1.5", "rate": "1"}, {"rate": "2"}]},
    }
    ends = [at("2024-01-02T17:00"), at("2024-01-02T18:00")]
    b, _ = bill(tariff(seasons=seasons, energy=energy, tier_basis="total"), "2024-01", ends,
                ["1", "2"], interval_seconds=3600)  # fmt: skip
    quantities: dict[str | None, D] = {}
    for ln in b.lines:
        if ln.code == "energy":
            quantities[ln.period] = quantities.get(ln.period, D(0)) + ln.quantity
    assert quantities == {"on": D(1), "off": D(2)}
    assert b.amount_of("energy") == D("4.50")  # 0.5 + 1.0 + 1 + 2
