"""Load files (``timestamp,kwh_delivered[,kwh_received]``, interval starts) and the Green Button
sample year billed by calendar month, checked against an independent csv + datetime count."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import support
from billing.billing_support import HOUR, NY, QUARTER, D, at
from meterledger.billing.loadfile import read_load_csv
from meterledger.billing.runs import bill_load
from meterledger.billing.tariff import load_tariff
from meterledger.core.errors import FormatError, InputError

GREENBUTTON = support.reference_dir("greenbutton")
needs_greenbutton = support.needs_reference(GREENBUTTON)
TARIFFS = Path(__file__).resolve().parents[2] / "src" / "meterledger" / "billing" / "tariffs"


def write(tmp_path: Path, text: str, name: str = "load.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


# -- parsing ----------------------------------------------------------------------------------


def test_offsets_and_exact_kwh(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "timestamp,kwh_delivered,kwh_received\n"
        "2024-01-10T00:00:00-05:00,1.5,0\n"
        "2024-01-10T00:15:00-05:00,0.000001,0.25\n"
        "\n"
        "2024-01-10T05:30:00+00:00,2,0\n",
    )
    series = read_load_csv(path)
    assert series.interval_seconds == QUARTER
    # starts 05:00, 05:15, 05:30 UTC → ends 05:15, 05:30, 05:45 UTC
    assert series.interval_end.tolist() == [
        utc("2024-01-10T05:15"),
        utc("2024-01-10T05:30"),
        utc("2024-01-10T05:45"),
    ]
    assert series.delivered.tolist() == [1_500_000, 1, 2_000_000]
    assert series.received.tolist() == [0, 250_000, 0]
    assert (series.first_start, series.last_end) == (
        utc("2024-01-10T05:00"),
        utc("2024-01-10T05:45"),
    )


def test_received_column_is_optional_and_the_header_is_lenient(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeff Timestamp , KWH_Delivered \n2024-01-10T00:00:00Z,3\n")
    series = read_load_csv(path)
    assert series.received.tolist() == [0]
    assert series.interval_seconds == QUARTER  # one row: 15 minutes
    assert series.interval_end.tolist() == [utc("2024-01-10T00:15")]


def test_naive_times_are_read_in_the_given_zone(tmp_path: Path) -> None:
    path = write(
        tmp_path, "timestamp,kwh_delivered\n2024-07-01T00:00:00,1\n2024-07-01T01:00:00,1\n"
    )
    series = read_load_csv(path, NY)
    # 00:00 EDT = 04:00 UTC; hourly, so the ends are 05:00 and 06:00 UTC
    assert series.interval_seconds == HOUR
    assert series.interval_end.tolist() == [utc("2024-07-01T05:00"), utc("2024-07-01T06:00")]
    with pytest.raises(InputError, match="has no UTC offset"):
        read_load_csv(path)


def test_the_repeated_autumn_hour_in_naive_local_time(tmp_path: Path) -> None:
    hourly = write(
        tmp_path,
        "timestamp,kwh_delivered\n"
        "2024-11-03T00:00:00,1\n"
        "2024-11-03T01:00:00,2\n"  # 01:00 EDT
        "2024-11-03T01:00:00,3\n"  # 01:00 again: EST, one hour later
        "2024-11-03T02:00:00,4\n",
    )
    series = read_load_csv(hourly, NY)
    # starts 04:00, 05:00, 06:00, 07:00 UTC
    assert series.interval_end.tolist() == [
        utc("2024-11-03T05:00"),
        utc("2024-11-03T06:00"),
        utc("2024-11-03T07:00"),
        utc("2024-11-03T08:00"),
    ]
    quarters = "".join(f"2024-11-03T01:{m:02d}:00,1\n" for m in (0, 15, 30, 45)) * 2
    path = write(
        tmp_path, "timestamp,kwh_delivered\n" + quarters + "2024-11-03T02:00:00,1\n", "q.csv"
    )
    series = read_load_csv(path, NY)
    first = at("2024-11-03T01:00") + QUARTER  # the end of 01:00-01:15 EDT
    assert series.interval_end.tolist() == [first + QUARTER * k for k in range(9)]


def test_a_naive_time_in_the_spring_gap_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path, "timestamp,kwh_delivered\n2024-03-10T01:30:00,1\n2024-03-10T02:30:00,1\n"
    )
    with pytest.raises(
        FormatError, match=r"line 3: '2024-03-10T02:30:00' does not exist in America/New_York"
    ):
        read_load_csv(path, NY)


def test_the_spring_change_in_naive_local_time(tmp_path: Path) -> None:
    path = write(
        tmp_path, "timestamp,kwh_delivered\n2024-03-10T01:00:00,1\n2024-03-10T03:00:00,1\n"
    )
    series = read_load_csv(path, NY)
    # 01:00 EST = 06:00 UTC, 03:00 EDT = 07:00 UTC: one hour apart
    assert series.interval_seconds == HOUR
    assert series.interval_end.tolist() == [utc("2024-03-10T07:00"), utc("2024-03-10T08:00")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"header must be timestamp,kwh_delivered\[,kwh_received\]; got \(empty file\)"),
        ("time,kwh\n2024-01-01T00:00:00Z,1\n", r"header must be .*got time,kwh"),
        ("timestamp\n2024-01-01T00:00:00Z\n", "header must be"),
        ("timestamp,kwh_delivered,kwh_exported\n", "header must be"),
        ("timestamp,kwh_delivered,kwh_received,x\n", "header must be"),
        ("timestamp,kwh_delivered\n", "no readings after the header"),
        (
            "timestamp,kwh_delivered\n2024-01-01T00:00:00Z,abc\n",
            r"line 2: kwh_delivered 'abc' is not a number",
        ),
        (
            "timestamp,kwh_delivered\n2024-01-01T00:00:00Z,NaN\n",
            r"line 2: kwh_delivered 'NaN' is not a finite",
        ),
        (
            "timestamp,kwh_delivered,kwh_received\n2024-01-01T00:00:00Z,1,x\n",
            r"line 2: kwh_received 'x' is not a number",
        ),
        (
            "timestamp,kwh_delivered\n2024-01-01T00:00:00Z,-0.5\n",
            r"line 2: kwh_delivered '-0.5' is negative",
        ),
        ("timestamp,kwh_delivered\n2024-01-01T00:00:00Z,0.0000001\n", "more than 6 decimals"),
        ("timestamp,kwh_delivered\n2024-01-01T00:00:00Z,1.1234567\n", "more than 6 decimals"),
        (
            "timestamp,kwh_delivered\nyesterday,1\n",
            r"line 2: timestamp 'yesterday' is not ISO-8601",
        ),
        ("timestamp,kwh_delivered\n2024-01-01T00:00:00Z\n", r"line 2: expected 2 fields, got 1"),
        (
            "timestamp,kwh_delivered\n2024-01-01T00:00:00Z,1\n2024-01-01T00:00:00Z,1\n",
            r"line 3: timestamp '2024-01-01T00:00:00Z' is not after the line before",
        ),
        (
            "timestamp,kwh_delivered\n2024-01-01T00:15:00Z,1\n2024-01-01T00:00:00Z,1\n",
            r"line 3: timestamp '2024-01-01T00:00:00Z' is not after the line before",
        ),
        (
            "timestamp,kwh_delivered\n2024-01-01T00:00:00Z,1\n2024-01-01T00:15:00Z,1\n"
            "2024-01-01T00:40:00Z,1\n",
            "not on a regular 900-second grid",
        ),
    ],
)
def test_bad_load_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        read_load_csv(write(tmp_path, text))


def test_six_decimals_with_trailing_zeros_are_exact(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,kwh_delivered\n2024-01-01T00:00:00Z,1.1234560\n")
    assert read_load_csv(path).delivered.tolist() == [1_123_456]


def test_unreadable_load_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read load file"):
        read_load_csv(tmp_path / "missing.csv")
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"timestamp,kwh_delivered\n2024-01-01T00:00:00Z,1\xe9\n")
    with pytest.raises(FormatError, match="not UTF-8"):
        read_load_csv(path)


# -- the Green Button sample year --------------------------------------------------------------

# The bundled residential tariff's holidays in 2011 (its names filter over the US calendar):
# New Year's Day, Washington's Birthday, Memorial Day, Independence Day, Labor Day, Veterans
# Day, Thanksgiving, Christmas Day and its observed Monday. Written out by hand.
HOLIDAYS_2011 = {
    date(2011, 1, 1),
    date(2011, 2, 21),
    date(2011, 5, 30),
    date(2011, 7, 4),
    date(2011, 9, 5),
    date(2011, 11, 11),
    date(2011, 11, 24),
    date(2011, 12, 25),
    date(2011, 12, 26),
    date(2012, 1, 1),
}


def _period(local: datetime) -> str:
    """The residential_tou.yaml period at local time ``local`` (New York), by hand."""
    hour = local.hour
    if 6 <= local.month <= 9:
        workday = local.weekday() < 5 and local.date() not in HOLIDAYS_2011
        if 16 <= hour < 21:
            return "summer_on_peak" if workday else "summer_mid_peak"
        return "summer_off_peak"
    if hour < 8 or hour >= 21:
        return "winter_off_peak"
    return "winter_super_off_peak" if hour < 16 else "winter_mid_peak"


def _independent_count(path: Path) -> tuple[dict[str, dict[str, Decimal]], int, Decimal]:
    """Month → period → kWh, with the csv module and datetime only."""
    zone = ZoneInfo("America/New_York")
    months: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    rows = 0
    total = Decimal(0)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            start = datetime.fromisoformat(row["timestamp"])
            last_second = (start + timedelta(hours=1) - timedelta(seconds=1)).astimezone(zone)
            kwh = Decimal(row["kwh_delivered"])
            months[f"{last_second:%Y-%m}"][_period(last_second)] += kwh
            rows += 1
            total += kwh
    return {m: dict(p) for m, p in months.items()}, rows, total


@needs_greenbutton
def test_green_button_year_under_the_residential_tariff() -> None:
    assert GREENBUTTON is not None
    path = GREENBUTTON / "gba_sample_coastal_multifamily_2011_hourly.csv"
    series = read_load_csv(path)
    assert (len(series.interval_end), series.interval_seconds) == (8760, HOUR)
    tariff = load_tariff(TARIFFS / "residential_tou.yaml")
    bills = [b for b, _ in bill_load(tariff, series)]

    # The file is calendar 2011 in Los Angeles; billed in the tariff's zone (New York) its
    # last three hours (21:00-24:00 PST on Dec 31 = 00:00-03:00 EST) fall in January 2012.
    assert [b.period for b in bills] == [f"2011-{m:02d}" for m in range(1, 13)] + ["2012-01"]
    assert [b.determinants.intervals for b in bills][-1] == 3
    assert sum(b.determinants.intervals for b in bills) == 8760  # each hour billed once
    assert sum((b.determinants.kwh_delivered for b in bills), D(0)) == D("4425.305")
    assert sum((b.determinants.kwh_delivered for b in bills[:12]), D(0)) == D("4423.618")

    expected, rows, total = _independent_count(path)
    assert (rows, total) == (8760, D("4425.305"))
    for b in bills:
        got = {p.period: p.kwh_delivered for p in b.determinants.periods if p.kwh_delivered}
        assert got == expected[b.period], b.period

    # July 2011 by hand (the independent count agrees): Independence Day (Mon) is priced as a
    # weekend day, so its 16:00-21:00 is mid-peak
    july = bills[6]
    assert expected["2011-07"] == {
        "summer_on_peak": D("53.839"),
        "summer_mid_peak": D("31.772"),
        "summer_off_peak": D("285.273"),
    }
    # on 53.839 × 0.5142 = 27.6840… → 27.68; mid 31.772 × 0.4198 = 13.3378… → 13.34;
    # off: baseline 12.3 kWh/day × 31 = 381.3 kWh > 285.273, all at 0.3361 = 95.8802… → 95.88;
    # base charge 31 days × 0.394 = 12.214 → 12.21; subtotal 149.11;
    # tax 5.5 % = 8.20105 → 8.20; total 157.31
    assert [(ln.code, ln.quantity, ln.amount) for ln in july.lines] == [
        ("energy", D("53.839"), D("27.68")),
        ("energy", D("31.772"), D("13.34")),
        ("energy", D("285.273"), D("95.88")),
        ("fixed", D(31), D("12.21")),
        ("tax", D("149.11"), D("8.20")),
    ]
    assert july.total == D("157.31")
    # the Los Angeles DST days are in the file with 23 and 25 hours
    la = ZoneInfo("America/Los_Angeles")
    starts = [
        datetime.fromtimestamp(int(e) - HOUR, UTC).astimezone(la).date()
        for e in series.interval_end
    ]
    assert starts.count(date(2011, 3, 13)) == 23
    assert starts.count(date(2011, 11, 6)) == 25


def test_a_file_mixing_interval_lengths_is_refused(tmp_path: Path) -> None:
    """15-minute rows with one 5-minute step: the most common step (900 s) is the interval,
    and a 300 s step is not a multiple of it."""
    path = tmp_path / "mixed.csv"
    path.write_text(
        "timestamp,kwh_delivered\n"
        "2024-01-01T00:00:00Z,1\n2024-01-01T00:15:00Z,1\n2024-01-01T00:30:00Z,1\n"
        "2024-01-01T00:35:00Z,1\n2024-01-01T00:50:00Z,1\n"
    )
    with pytest.raises(FormatError, match="a step of 300 s"):
        read_load_csv(path)


def test_a_gap_is_a_multiple_of_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "gap.csv"
    path.write_text(
        "timestamp,kwh_delivered\n"
        "2024-01-01T00:00:00Z,1\n2024-01-01T00:15:00Z,1\n2024-01-01T01:15:00Z,1\n"
        "2024-01-01T01:30:00Z,1\n"
    )
    series = read_load_csv(path)
    assert series.interval_seconds == 900 and len(series.interval_end) == 4


def test_an_absurd_value_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    path.write_text("timestamp,kwh_delivered\n2024-01-01T00:00:00Z,1e30\n")
    with pytest.raises(FormatError, match="implausible"):
        read_load_csv(path)
