"""UTC instants, epoch seconds and the local interval grid (DST, half-hour zones)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterledger.core.errors import InputError
from meterledger.core.time import (
    Interval,
    epoch_of,
    from_epoch,
    is_aligned,
    iso_utc,
    parse_instant,
    parse_zone,
)

UTC_ZONE = ZoneInfo("UTC")
KOLKATA = ZoneInfo("Asia/Kolkata")
NEW_YORK = ZoneInfo("America/New_York")


def at(text: str) -> int:
    """Epoch seconds of an ISO text with offset (computed without the code under test)."""
    return int(datetime.fromisoformat(text).timestamp())


# -- parse_instant ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01T00:15:00Z", datetime(2024, 1, 1, 0, 15, tzinfo=UTC)),
        ("2024-01-01T00:15:00+00:00", datetime(2024, 1, 1, 0, 15, tzinfo=UTC)),
        ("2024-01-01T05:45:00+05:30", datetime(2024, 1, 1, 0, 15, tzinfo=UTC)),
        ("2023-12-31T19:15:00-05:00", datetime(2024, 1, 1, 0, 15, tzinfo=UTC)),
        ("  2024-07-01T12:00:00Z ", datetime(2024, 7, 1, 12, 0, tzinfo=UTC)),
    ],
)
def test_parse_instant_gives_aware_utc(text: str, expected: datetime) -> None:
    value = parse_instant(text)
    assert value == expected
    assert value.utcoffset() == timedelta(0)
    assert value.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    ["2024-01-01T00:15:00", "2024-01-01", "2024-01-01 00:15", "yesterday", "", "2024-13-01T00:00Z"],
)
def test_parse_instant_refuses_naive_and_garbage(text: str) -> None:
    with pytest.raises(InputError):
        parse_instant(text)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00"])
def test_parse_instant_out_of_range_is_an_input_error(text: str) -> None:
    with pytest.raises(InputError):
        parse_instant(text)


# -- epoch seconds ------------------------------------------------------------------------


def test_epoch_of_known_instants() -> None:
    assert epoch_of(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert epoch_of(datetime(2024, 1, 1, tzinfo=UTC)) == 1_704_067_200
    assert epoch_of(datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)) == -1
    five_thirty = timezone(timedelta(hours=5, minutes=30))
    assert epoch_of(datetime(2024, 1, 1, 5, 30, tzinfo=five_thirty)) == 1_704_067_200


def test_epoch_of_refuses_sub_second_and_naive() -> None:
    with pytest.raises(InputError):
        epoch_of(datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC))
    with pytest.raises(InputError):
        epoch_of(datetime(2024, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC))
    with pytest.raises(InputError):
        epoch_of(datetime(2024, 1, 1))


@given(st.integers(min_value=-(10**10), max_value=10**10))
def test_epoch_round_trip(seconds: int) -> None:
    instant = from_epoch(seconds)
    assert instant.tzinfo is not None
    assert epoch_of(instant) == seconds
    assert parse_instant(iso_utc(seconds)) == instant
    assert int(instant.timestamp()) == seconds


def test_iso_utc() -> None:
    assert iso_utc(1_704_068_100) == "2024-01-01T00:15:00+00:00"


def test_parse_zone() -> None:
    assert parse_zone("Asia/Kolkata") == KOLKATA
    for bad in ("Mars/Olympus_Mons", "", "../etc/passwd"):
        with pytest.raises(InputError):
            parse_zone(bad)


# -- the local grid -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("end", "seconds", "aligned"),
    [
        ("2024-01-01T00:15:00Z", 900, True),
        ("2024-01-01T00:20:00Z", 900, False),
        ("2024-01-01T00:15:01Z", 900, False),
        ("2024-01-01T01:00:00Z", 3600, True),
        ("2024-01-01T00:30:00Z", 3600, False),
        ("2024-01-02T00:00:00Z", 86400, True),
        ("2024-01-01T23:00:00Z", 86400, False),
        ("2024-01-01T00:05:00Z", 300, True),
        ("2024-01-01T00:30:00Z", 1800, True),
    ],
)
def test_is_aligned_utc(end: str, seconds: int, aligned: bool) -> None:
    assert is_aligned(at(end), seconds, UTC_ZONE) is aligned


@pytest.mark.parametrize(
    ("end", "seconds", "aligned"),
    [
        ("2024-01-01T00:30:00Z", 3600, True),  # 06:00 IST
        ("2024-01-01T01:00:00Z", 3600, False),  # 06:30 IST
        ("2024-01-01T00:15:00Z", 900, True),  # +5:30 is a whole number of quarter hours
        ("2024-01-01T00:30:00Z", 1800, True),
        ("2024-01-01T00:00:00Z", 1800, True),
        ("2024-01-01T18:30:00Z", 86400, True),  # local midnight
        ("2024-01-02T00:00:00Z", 86400, False),  # UTC midnight is 05:30 IST
    ],
)
def test_is_aligned_kolkata(end: str, seconds: int, aligned: bool) -> None:
    assert is_aligned(at(end), seconds, KOLKATA) is aligned


@pytest.mark.parametrize(
    ("end", "seconds", "aligned"),
    [
        # fall back, 2024-11-03: 01:00-02:00 local happens twice (EDT, then EST)
        ("2024-11-03T05:00:00Z", 3600, True),  # 01:00 EDT
        ("2024-11-03T05:15:00Z", 900, True),  # 01:15 EDT
        ("2024-11-03T06:00:00Z", 3600, True),  # 01:00 EST (second time)
        ("2024-11-03T06:15:00Z", 900, True),  # 01:15 EST
        ("2024-11-03T07:00:00Z", 3600, True),  # 02:00 EST
        ("2024-11-03T05:30:00Z", 3600, False),
        ("2024-11-03T04:00:00Z", 86400, True),  # midnight EDT starting the 25-hour day
        ("2024-11-04T05:00:00Z", 86400, True),  # midnight EST ending it
        ("2024-11-04T04:00:00Z", 86400, False),  # 23:00 EST
        ("2024-11-03T05:00:00Z", 86400, False),
        # spring forward, 2024-03-10: 02:00-03:00 local does not exist
        ("2024-03-10T06:45:00Z", 900, True),  # 01:45 EST
        ("2024-03-10T07:00:00Z", 900, True),  # 03:00 EDT
        ("2024-03-10T07:00:00Z", 3600, True),
        ("2024-03-10T07:30:00Z", 3600, False),
        ("2024-03-10T05:00:00Z", 86400, True),  # midnight EST starting the 23-hour day
        ("2024-03-11T04:00:00Z", 86400, True),  # midnight EDT ending it
        ("2024-03-11T05:00:00Z", 86400, False),  # 01:00 EDT
        ("2024-03-10T00:00:00Z", 86400, False),  # UTC midnight is 19:00 EST
    ],
)
def test_is_aligned_new_york_across_dst(end: str, seconds: int, aligned: bool) -> None:
    assert is_aligned(at(end), seconds, NEW_YORK) is aligned


@pytest.mark.parametrize(
    ("day", "count"), [("2024-11-03", 100), ("2024-03-10", 92), ("2024-07-01", 96)]
)
def test_every_quarter_hour_of_a_local_day_is_aligned(day: str, count: int) -> None:
    start = datetime.fromisoformat(day).replace(tzinfo=NEW_YORK)
    stop = (start + timedelta(days=1)).replace(tzinfo=NEW_YORK)
    first, last = at(start.isoformat()), at(stop.isoformat())
    ends = list(range(first + 900, last + 1, 900))
    assert len(ends) == count
    assert all(is_aligned(end, 900, NEW_YORK) for end in ends)
    assert not any(is_aligned(end + 300, 900, NEW_YORK) for end in ends)


@given(st.integers(min_value=0, max_value=4_000_000_000), st.sampled_from([900, 1800, 3600]))
def test_utc_grid_is_epoch_modulo(end: int, seconds: int) -> None:
    assert is_aligned(end, seconds, UTC_ZONE) is (end % seconds == 0)


def test_is_aligned_refuses_non_positive_lengths() -> None:
    assert is_aligned(at("2024-01-01T00:00:00Z"), 0, UTC_ZONE) is False
    assert is_aligned(at("2024-01-01T00:00:00Z"), -900, UTC_ZONE) is False


# -- Interval -----------------------------------------------------------------------------


def test_interval_start_and_end() -> None:
    end = datetime(2024, 1, 1, 0, 15, tzinfo=UTC)
    interval = Interval(end, 900)
    assert interval.start == datetime(2024, 1, 1, 0, 0, tzinfo=UTC)
    assert interval.end == end
    assert interval.end_epoch == 1_704_068_100
    day = Interval(datetime(2024, 3, 11, 4, 0, tzinfo=UTC), 86400)
    assert day.start == datetime(2024, 3, 10, 4, 0, tzinfo=UTC)


def test_interval_checks_itself() -> None:
    with pytest.raises(InputError):
        Interval(datetime(2024, 1, 1), 900)
    with pytest.raises(InputError):
        Interval(datetime(2024, 1, 1, tzinfo=UTC), 0)
    with pytest.raises(InputError):
        Interval(datetime(2024, 1, 1, tzinfo=UTC), -900)
    with pytest.raises(InputError):
        _ = Interval(datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC), 900).end_epoch


@pytest.mark.parametrize(
    ("end", "zone"),
    [("0001-01-01T00:15:00+00:00", NEW_YORK), ("9999-12-31T23:45:00+00:00", KOLKATA)],
)
def test_is_aligned_answers_for_every_representable_instant(end: str, zone: ZoneInfo) -> None:
    assert isinstance(is_aligned(epoch_of(parse_instant(end)), 900, zone), bool)
