"""TOU calendars: an interval belongs to the period in force at its last second, in the tariff's
zone; day types weekday/weekend/holiday; DST days of 92 and 100 quarter-hours, each billed once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np

from billing.billing_support import (
    HOUR,
    NY,
    D,
    at,
    bill,
    ends_from,
    energy_by_period,
    lines,
    tariff,
)
from meterledger.billing.calendar import local_midnight_utc, localize, utc_offsets

# -- the calendar functions --------------------------------------------------------------------


def test_utc_offsets_change_at_the_exact_second() -> None:
    spring = int(datetime(2024, 3, 10, 7, 0, tzinfo=UTC).timestamp())  # 02:00 EST → 03:00 EDT
    autumn = int(datetime(2024, 11, 3, 6, 0, tzinfo=UTC).timestamp())  # 02:00 EDT → 01:00 EST
    instants = np.asarray([spring - 1, spring, autumn - 1, autumn], dtype=np.int64)
    assert utc_offsets(instants, NY).tolist() == [-5 * HOUR, -4 * HOUR, -4 * HOUR, -5 * HOUR]


def test_utc_offsets_match_zoneinfo_every_hour_of_a_year() -> None:
    first = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
    instants = first + HOUR * np.arange(366 * 24, dtype=np.int64)
    expected = [
        int(datetime.fromtimestamp(int(i), UTC).astimezone(NY).utcoffset().total_seconds())  # type: ignore[union-attr]
        for i in instants
    ]
    assert utc_offsets(instants, NY).tolist() == expected


def test_local_midnight_utc() -> None:
    assert local_midnight_utc(date(2024, 3, 10), NY) == at("2024-03-10T00:00")
    # 23-hour and 25-hour days
    assert (
        local_midnight_utc(date(2024, 3, 11), NY) - local_midnight_utc(date(2024, 3, 10), NY)
        == 23 * HOUR
    )
    assert (
        local_midnight_utc(date(2024, 11, 4), NY) - local_midnight_utc(date(2024, 11, 3), NY)
        == 25 * HOUR
    )
    assert local_midnight_utc(date(2024, 11, 3), NY) == int(
        datetime(2024, 11, 3, 4, 0, tzinfo=UTC).timestamp()
    )


def test_localize_parts() -> None:
    instants = np.asarray(
        [
            at("2024-01-10T16:14:59"),  # Wednesday, slot 64 (16:00)
            at("2024-01-10T16:15:00"),  # slot 65
            at("2024-01-13T23:59:59"),  # Saturday, slot 95
            at("2024-11-03T01:30", fold=0),  # the first 01:30 (EDT)
            at("2024-11-03T01:30", fold=1),  # the second 01:30 (EST), one hour later
            at("2024-03-10T01:59:59"),  # the last second before the spring gap
            at("2024-03-10T03:00"),  # the first second after it
            at("2024-07-04T12:00"),  # holiday
        ],
        dtype=np.int64,
    )
    lt = localize(instants, NY, [date(2024, 7, 4)])
    assert lt.slot.tolist() == [64, 65, 95, 6, 6, 7, 12, 48]
    assert lt.day_type.tolist() == [0, 0, 1, 1, 1, 1, 1, 2]  # 2024-11-03 and 03-10: Sundays
    assert lt.month0.tolist() == [0, 0, 0, 10, 10, 2, 2, 6]
    assert lt.seconds_of_day.tolist()[3:5] == [5400, 5400]
    assert lt.day[3] == lt.day[4] == (date(2024, 11, 3) - date(1970, 1, 1)).days


# -- periods of intervals ----------------------------------------------------------------------


def _peak_at_16_15():
    return tariff(
        seasons={
            "all": {"months": "1-12", "weekday": {"00:00": "off", "16:15": "on", "17:00": "off"}}
        },
        energy={"off": {"rate": "0.10"}, "on": {"rate": "0.30"}},
    )


def test_quarter_hours_around_a_16_15_boundary() -> None:
    # Wednesday 2024-01-10, quarter-hours 16:00-16:15 … 17:00-17:15 with 1, 2, 3, 4, 5 kWh.
    # 16:00-16:15 ends at 16:15 but its last second 16:14:59 is off-peak; 16:45-17:00 is on.
    ends = ends_from("2024-01-10T16:00", 5)
    b, _ = bill(_peak_at_16_15(), "2024-01", ends, [1, 2, 3, 4, 5])
    # off = 1 + 5 = 6 kWh, on = 2 + 3 + 4 = 9 kWh
    assert energy_by_period(b) == {"off": (D(6), D(0)), "on": (D(9), D(0))}
    # 6 × 0.10 = 0.60; 9 × 0.30 = 2.70
    assert lines(b, "energy") == [
        ("energy", D(6), D("0.10"), D("0.60")),
        ("energy", D(9), D("0.30"), D("2.70")),
    ]


def test_an_hourly_interval_takes_the_period_of_its_last_second() -> None:
    # 15:00-16:00 (7 kWh, off), 16:00-17:00 (10 kWh: last second 16:59:59 is on-peak, so the
    # whole hour is on-peak although it starts off-peak), 17:00-18:00 (3 kWh, off)
    ends = ends_from("2024-01-10T15:00", 3, HOUR)
    b, _ = bill(_peak_at_16_15(), "2024-01", ends, [7, 10, 3], interval_seconds=HOUR)
    assert energy_by_period(b) == {"off": (D(10), D(0)), "on": (D(10), D(0))}


def _day_types(holiday_schedule: bool):
    season = {"months": "1-12", "weekday": {"00:00": "wd"}, "weekend": {"00:00": "we"}}
    energy = {"wd": {"rate": "0.20"}, "we": {"rate": "0.10"}}
    if holiday_schedule:
        season["holiday"] = {"00:00": "hol"}
        energy["hol"] = {"rate": "0.05"}
    return tariff(
        seasons={"all": season},
        energy=energy,
        holidays={
            "country": "US",
            "names": ["Thanksgiving Day", "Veterans Day"],
            "dates": ["2024-11-12"],  # an explicit holiday (a Tuesday)
            "exclude": ["2024-11-11"],  # Veterans Day is not one for this tariff
        },
    )


# hourly intervals (local start, kWh): each value a power of two so every sum is unique
DAY_TYPE_SERIES = [
    ("2024-11-11T12:00", 16),  # Monday, Veterans Day but excluded → weekday
    ("2024-11-12T12:00", 8),  # Tuesday, explicit date → holiday
    ("2024-11-27T12:00", 1),  # Wednesday → weekday
    ("2024-11-27T23:00", 64),  # ends at Thanksgiving midnight; last second Wednesday → weekday
    ("2024-11-28T00:00", 128),  # Thanksgiving (from the package) → holiday
    ("2024-11-28T12:00", 2),  # Thanksgiving → holiday
    ("2024-11-29T12:00", 32),  # Friday → weekday
    ("2024-11-30T12:00", 4),  # Saturday → weekend
]


def test_weekday_weekend_and_holiday() -> None:
    ends = [at(start) + HOUR for start, _ in DAY_TYPE_SERIES]
    kwh = [v for _, v in DAY_TYPE_SERIES]
    b, _ = bill(_day_types(True), "2024-11", ends, kwh, interval_seconds=HOUR)
    # wd = 16 + 1 + 64 + 32 = 113; hol = 8 + 128 + 2 = 138; we = 4
    assert energy_by_period(b) == {
        "wd": (D(113), D(0)),
        "we": (D(4), D(0)),
        "hol": (D(138), D(0)),
    }
    # 113 × 0.20 = 22.60; 4 × 0.10 = 0.40; 138 × 0.05 = 6.90
    assert [ln[3] for ln in lines(b, "energy")] == [D("22.60"), D("0.40"), D("6.90")]


def test_holidays_use_the_weekend_schedule_by_default() -> None:
    ends = [at(start) + HOUR for start, _ in DAY_TYPE_SERIES]
    kwh = [v for _, v in DAY_TYPE_SERIES]
    b, _ = bill(_day_types(False), "2024-11", ends, kwh, interval_seconds=HOUR)
    # we = 4 + 138 = 142
    assert energy_by_period(b) == {"wd": (D(113), D(0)), "we": (D(142), D(0))}


def test_season_is_the_month_of_the_last_second() -> None:
    t = tariff(
        seasons={
            "summer": {"months": "6-9", "weekday": {"00:00": "s"}},
            "winter": {"months": "10-5", "weekday": {"00:00": "w"}},
        },
        energy={"s": {"rate": "0.30"}, "w": {"rate": "0.10"}},
    )
    # Friday 2024-05-31 23:00-24:00 (5 kWh) ends at 06-01 00:00: a May interval, winter;
    # Saturday 2024-06-01 00:00-01:00 (7 kWh) is June, summer.
    ends = [at("2024-06-01T00:00"), at("2024-06-01T01:00")]
    may, _ = bill(t, "2024-05", ends, [5, 7], interval_seconds=HOUR)
    june, _ = bill(t, "2024-06", ends, [5, 7], interval_seconds=HOUR)
    assert energy_by_period(may) == {"w": (D(5), D(0))}
    assert energy_by_period(june) == {"s": (D(7), D(0))}


# -- DST days in America/New_York --------------------------------------------------------------


def _dst_tariff():
    # a 01:00-02:00, b 02:00-03:00 (absent on the spring day), c for the rest
    return tariff(
        seasons={
            "all": {
                "months": "1-12",
                "weekday": {"00:00": "c", "01:00": "a", "02:00": "b", "03:00": "c"},
            }
        },
        energy={"a": {"rate": "0.20"}, "b": {"rate": "0.30"}, "c": {"rate": "0.10"}},
    )


def test_spring_day_has_92_quarter_hours_billed_once() -> None:
    ends = ends_from("2024-03-10T00:00", 92)
    assert ends[-1] == at("2024-03-11T00:00")  # 92 quarter-hours make the local day
    b, _ = bill(_dst_tariff(), "2024-03", ends, [1] * 92)
    assert b.determinants.intervals == 92
    # 00:00-01:00 c (4), 01:00-02:00 EST a (4), 02:00-03:00 does not exist,
    # 03:00-24:00 EDT c (84): c = 88, a = 4, b = 0
    assert energy_by_period(b) == {"a": (D(4), D(0)), "c": (D(88), D(0))}
    # 4 × 0.20 = 0.80; 88 × 0.10 = 8.80
    assert [ln[3] for ln in lines(b, "energy")] == [D("0.80"), D("8.80")]
    (day10,) = [d for d in b.determinants.daily if d.day == date(2024, 3, 10)]
    assert dict(day10.by_period) == {"a": D(4), "b": D(0), "c": D(88)}


def test_autumn_day_has_100_quarter_hours_and_the_repeated_hour_is_in_its_slot() -> None:
    ends = ends_from("2024-11-03T00:00", 100)
    assert ends[-1] == at("2024-11-04T00:00")
    # quarter-hours 4..7 are 01:00-02:00 EDT, 8..11 the repeated 01:00-02:00 EST
    kwh = [1] * 100
    for k in range(8, 12):
        kwh[k] = 2
    b, _ = bill(_dst_tariff(), "2024-11", ends, kwh)
    assert b.determinants.intervals == 100
    # a = 4 × 1 (EDT) + 4 × 2 (EST) = 12; b = 4 (02:00-03:00 EST); c = 4 + 84 = 88
    assert energy_by_period(b) == {"a": (D(12), D(0)), "b": (D(4), D(0)), "c": (D(88), D(0))}
    # 12 × 0.20 = 2.40; 4 × 0.30 = 1.20; 88 × 0.10 = 8.80
    assert [ln[3] for ln in lines(b, "energy")] == [D("2.40"), D("1.20"), D("8.80")]
    (day3,) = [d for d in b.determinants.daily if d.day == date(2024, 11, 3)]
    assert dict(day3.by_period) == {"a": D(12), "b": D(4), "c": D(88)}


def test_dst_months_daily_determinants() -> None:
    # every quarter-hour of March and of November 2024 at 1 kWh
    march = ends_from("2024-03-01T00:00", 31 * 96 - 4)
    assert march[-1] == at("2024-04-01T00:00")
    b, _ = bill(_dst_tariff(), "2024-03", march, [1] * len(march))
    assert b.determinants.intervals == 2972  # 31 × 96 − 4
    assert b.determinants.kwh_delivered == D(2972)
    totals = {d.day: sum(v for _, v in d.by_period) for d in b.determinants.daily}
    assert len(totals) == 31
    assert totals[date(2024, 3, 10)] == D(92)  # 23 hours of quarter-hours at 1 kWh
    assert all(v == D(96) for day, v in totals.items() if day != date(2024, 3, 10))

    november = ends_from("2024-11-01T00:00", 30 * 96 + 4)
    assert november[-1] == at("2024-12-01T00:00")
    b, _ = bill(_dst_tariff(), "2024-11", november, [1] * len(november))
    assert b.determinants.intervals == 2884  # 30 × 96 + 4
    totals = {d.day: sum(v for _, v in d.by_period) for d in b.determinants.daily}
    assert len(totals) == 30
    assert totals[date(2024, 11, 3)] == D(100)  # 25 hours
    assert all(v == D(96) for day, v in totals.items() if day != date(2024, 11, 3))
    # the period totals of the month: a = 30 × 4 + 4 = 124, b = 30 × 4 = 120,
    # c = 2884 − 124 − 120 = 2640
    assert energy_by_period(b) == {"a": (D(124), D(0)), "b": (D(120), D(0)), "c": (D(2640), D(0))}


def test_dst_days_with_hourly_data() -> None:
    spring = ends_from("2024-03-10T00:00", 23, HOUR)
    autumn = ends_from("2024-11-03T00:00", 25, HOUR)
    assert spring[-1] == at("2024-03-11T00:00")
    assert autumn[-1] == at("2024-11-04T00:00")
    b, _ = bill(_dst_tariff(), "2024-03", spring, [1] * 23, interval_seconds=HOUR)
    assert energy_by_period(b) == {"a": (D(1), D(0)), "c": (D(22), D(0))}
    b, _ = bill(_dst_tariff(), "2024-11", autumn, [1] * 25, interval_seconds=HOUR)
    assert energy_by_period(b) == {"a": (D(2), D(0)), "b": (D(1), D(0)), "c": (D(22), D(0))}
    assert b.determinants.intervals == 25


def test_the_tariff_zone_decides_the_local_time() -> None:
    # 2024-01-10 21:30 UTC is 16:30 in New York (on-peak) and 13:30 in Los Angeles
    la = tariff(
        timezone="America/Los_Angeles",
        seasons={
            "all": {"months": "1-12", "weekday": {"00:00": "off", "16:15": "on", "17:00": "off"}}
        },
        energy={"off": {"rate": "0.10"}, "on": {"rate": "0.30"}},
    )
    end = int((datetime(2024, 1, 10, 21, 30, tzinfo=UTC) + timedelta(minutes=15)).timestamp())
    ny_bill, _ = bill(_peak_at_16_15(), "2024-01", [end], [1])
    la_bill, _ = bill(la, "2024-01", [end], [1])
    assert energy_by_period(ny_bill) == {"on": (D(1), D(0))}
    assert energy_by_period(la_bill) == {"off": (D(1), D(0))}
