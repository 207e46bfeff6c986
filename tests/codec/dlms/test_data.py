"""The Python side of the Data CHOICE: dates and times (the deviation's sign, daylight
saving, unspecified fields), bit-strings, type descriptions and the short constructors."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterledger.codec.dlms.data import (
    DAYLIGHT_SAVING_ACTIVE,
    DST_BEGIN,
    DST_END,
    LAST_DAY,
    SECOND_LAST_DAY,
    BitString,
    ClockStatus,
    CompactArray,
    CosemDate,
    CosemDateTime,
    CosemTime,
    Data,
    DataType,
    TypeDescription,
)
from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError

T = DataType
BERLIN = ZoneInfo("Europe/Berlin")
H = timedelta(hours=1)


def local(y: int, mo: int, d: int, hh: int, mi: int = 0, *, deviation: int | None,
          status: int | None) -> CosemDateTime:  # fmt: skip
    weekday = date(y, mo, d).isoweekday()
    return CosemDateTime(CosemDate(y, mo, d, weekday), CosemTime(hh, mi, 0, 0), deviation, status)


# -- the sign of the deviation -------------------------------------------------------------
# Blue Book 4.1.6.1: "deviation ... in minutes of local time to UTC": UTC = local + deviation.
# CET (UTC+01:00) is -60 = 0xFFC4, CEST -120 = 0xFF88 (a Kaifa meter's clock, amsreader-
# firmware issue 809; OSGP SynchronizeTime documentation); a zone west of Greenwich is positive.


def test_cet_is_minus_sixty() -> None:
    winter = datetime(2024, 1, 15, 12, 0, tzinfo=timezone(H))
    clock = CosemDateTime.from_datetime(winter)
    assert clock.deviation == -60
    assert clock.to_octets()[9:11] == b"\xff\xc4"
    assert clock.utc() == datetime(2024, 1, 15, 11, 0, tzinfo=UTC)


def test_a_zone_west_of_greenwich_is_positive() -> None:
    new_york = datetime(2024, 1, 15, 7, 0, tzinfo=ZoneInfo("America/New_York"))
    clock = CosemDateTime.from_datetime(new_york)
    assert (clock.deviation, clock.status) == (300, 0)
    assert clock.to_octets()[9:11] == b"\x01\x2c"
    assert clock.utc() == datetime(2024, 1, 15, 12, 0, tzinfo=UTC)


def test_local_time_plus_deviation_is_utc() -> None:
    clock = local(2024, 6, 15, 20, 23, deviation=-120, status=0x80)
    assert clock.to_datetime().utcoffset() == 2 * H
    assert clock.utc() == datetime(2024, 6, 15, 18, 23, tzinfo=UTC)
    assert local(2024, 6, 15, 20, 23, deviation=0, status=0).utc().hour == 20


# -- daylight saving -----------------------------------------------------------------------


def test_summer_time_sets_the_status_bit_and_the_deviation() -> None:
    summer = CosemDateTime.from_datetime(datetime(2024, 7, 1, 12, tzinfo=BERLIN))
    winter = CosemDateTime.from_datetime(datetime(2024, 12, 1, 12, tzinfo=BERLIN))
    assert (summer.deviation, summer.status, summer.daylight_saving) == (-120, 0x80, True)
    assert (winter.deviation, winter.status, winter.daylight_saving) == (-60, 0, False)
    assert summer.to_octets().hex() == "07e80701010c000000ff8880"


def test_dst_bit_can_be_forced_and_other_status_bits_are_kept() -> None:
    summer = datetime(2024, 7, 1, 12, tzinfo=BERLIN)
    assert CosemDateTime.from_datetime(summer, 0x02).status == 0x82
    assert CosemDateTime.from_datetime(summer, 0x82, dst=False).status == 0x02
    fixed = datetime(2024, 7, 1, 12, tzinfo=timezone(2 * H))  # a fixed offset knows no DST
    assert CosemDateTime.from_datetime(fixed).status == 0
    assert CosemDateTime.from_datetime(fixed, dst=True).status == 0x80
    assert CosemDateTime.from_datetime(summer, None).status is None


def test_negative_dst_zones_do_not_set_the_bit_in_winter() -> None:
    # tzdata models Irish winter time as a negative DST; the meter's bit means "advanced".
    dublin = ZoneInfo("Europe/Dublin")
    assert CosemDateTime.from_datetime(datetime(2024, 1, 1, tzinfo=dublin)).status == 0
    assert CosemDateTime.from_datetime(datetime(2024, 7, 1, tzinfo=dublin), dst=True).status == 0x80


@pytest.mark.parametrize(
    ("status", "deviation", "expected"),
    [
        (0x80, None, datetime(2024, 10, 27, 0, 30, tzinfo=UTC)),  # the first 02:30 (CEST)
        (0x00, None, datetime(2024, 10, 27, 1, 30, tzinfo=UTC)),  # the second 02:30 (CET)
        (None, None, datetime(2024, 10, 27, 0, 30, tzinfo=UTC)),  # status unknown: the first
        (0x00, -120, datetime(2024, 10, 27, 0, 30, tzinfo=UTC)),  # a deviation decides alone
        (0x80, -60, datetime(2024, 10, 27, 1, 30, tzinfo=UTC)),
    ],
)
def test_the_repeated_hour_of_autumn(
    status: int | None, deviation: int | None, expected: datetime
) -> None:
    clock = local(2024, 10, 27, 2, 30, deviation=deviation, status=status)
    assert clock.utc(BERLIN) == expected


def test_every_quarter_hour_across_both_dst_changes_survives_the_octets() -> None:
    for day in (datetime(2024, 3, 30, 22, tzinfo=UTC), datetime(2024, 10, 26, 22, tzinfo=UTC)):
        for i in range(4 * 6):
            instant = day + timedelta(minutes=15 * i)
            wall = instant.astimezone(BERLIN)
            clock = CosemDateTime.from_octets(CosemDateTime.from_datetime(wall).to_octets())
            assert clock.utc() == instant
            assert clock.daylight_saving is (wall.utcoffset() == 2 * H)
            # without the deviation, the zone and the DST bit still find the instant
            anonymous = CosemDateTime(clock.date, clock.time, None, clock.status)
            assert anonymous.utc(BERLIN) == instant


# -- what is not one instant ---------------------------------------------------------------


@pytest.mark.parametrize(
    "clock",
    [
        CosemDateTime(CosemDate(None, 1, 1, None), CosemTime(0, 0, 0, 0), 0, 0),
        CosemDateTime(CosemDate(2024, 1, 1, None), CosemTime(None, 0, 0, 0), 0, 0),
        CosemDateTime(CosemDate(2024, DST_BEGIN, 1, None), CosemTime(2, 0, 0, 0), 0, 0),
        CosemDateTime(CosemDate(2024, 3, LAST_DAY, 7), CosemTime(2, 0, 0, 0), 0, 0),
        CosemDateTime(CosemDate(2024, 2, 30, None), CosemTime(0, 0, 0, 0), 0, 0),
    ],
)
def test_patterns_and_impossible_days_are_not_instants(clock: CosemDateTime) -> None:
    with pytest.raises(DlmsLocalError, match="not"):
        clock.to_datetime(UTC)


def test_unspecified_deviation_needs_a_zone() -> None:
    clock = local(2024, 1, 1, 0, deviation=None, status=0)
    with pytest.raises(DlmsLocalError, match="zone"):
        clock.utc()
    assert clock.utc(BERLIN) == datetime(2023, 12, 31, 23, tzinfo=UTC)


def test_unspecified_hundredths_count_as_zero() -> None:
    clock = CosemDateTime(CosemDate(2024, 1, 1, 1), CosemTime(1, 2, 3, None), 0, None)
    assert clock.to_datetime() == datetime(2024, 1, 1, 1, 2, 3, tzinfo=UTC)


def test_from_datetime_needs_an_aware_datetime_in_whole_minutes() -> None:
    with pytest.raises(DlmsLocalError, match="aware"):
        CosemDateTime.from_datetime(datetime(2024, 1, 1))
    with pytest.raises(DlmsLocalError, match="whole minutes"):
        CosemDateTime.from_datetime(datetime(2024, 1, 1, tzinfo=timezone(timedelta(seconds=90))))
    with pytest.raises(DlmsLocalError, match="deviation -900"):
        CosemDateTime.from_datetime(datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=15))))


def test_hundredths_are_truncated_microseconds() -> None:
    value = datetime(2024, 1, 1, 0, 0, 0, 129_999, tzinfo=UTC)
    assert CosemDateTime.from_datetime(value).time.hundredths == 12


# -- the fields check themselves -----------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: CosemDate(0xFFFF, 1, 1, 1), "year 65535"),  # use None for "not specified"
        (lambda: CosemDate(2024, 0, 1, 1), "month 0"),
        (lambda: CosemDate(2024, 13, 1, 1), "month 13"),
        (lambda: CosemDate(2024, 0xFF, 1, 1), "month 255"),
        (lambda: CosemDate(2024, 1, 32, 1), "day of month 32"),
        (lambda: CosemDate(2024, 1, 0xE0, 1), "day of month 224"),
        (lambda: CosemDate(2024, 1, 1, 0), "day of week 0"),
        (lambda: CosemTime(24, 0, 0, 0), "hour 24"),
        (lambda: CosemTime(0, 60, 0, 0), "minute 60"),
        (lambda: CosemTime(0, 0, 60, 0), "second 60"),
        (lambda: CosemTime(0, 0, 0, 100), "hundredths 100"),
        (lambda: CosemTime(-1, 0, 0, 0), "hour -1"),
        (lambda: CosemDateTime(CosemDate(2024, 1, 1, 1), CosemTime(0, 0, 0, 0), 841, 0), "841"),
        (lambda: CosemDateTime(CosemDate(2024, 1, 1, 1), CosemTime(0, 0, 0, 0), 0, 0xFF), "255"),
        (lambda: CosemDateTime(CosemDate(2024, 1, 1, 1), None, 0, 0), "CosemTime"),  # type: ignore[arg-type]
    ],
)  # fmt: skip
def test_invalid_fields_are_refused_when_built(build: object, message: str) -> None:
    assert callable(build)
    with pytest.raises(DlmsLocalError, match=message):
        build()


def test_special_values_are_allowed() -> None:
    assert CosemDate(None, DST_END, SECOND_LAST_DAY, 7).to_octets().hex() == "fffffdfd07"
    assert CosemDate(None, DST_BEGIN, LAST_DAY, None).to_octets().hex() == "fffffefeff"
    extreme = CosemDateTime(CosemDate(0, 1, 1, None), CosemTime(0, 0, 0, 0), -840, 0xFE)
    assert CosemDateTime.from_octets(extreme.to_octets()) == extreme


def test_from_octets_refuses_bad_fields_as_decode_errors() -> None:
    with pytest.raises(DecodeError, match="month 0"):
        CosemDate.from_octets(bytes.fromhex("07e8000101"))
    with pytest.raises(DecodeError, match="hundredths 200"):
        CosemTime.from_octets(bytes.fromhex("000000c8"))
    with pytest.raises(DecodeError, match="deviation 900"):
        CosemDateTime.from_octets(bytes.fromhex("07e801010100000000038400"))


def test_not_specified_octets_are_none() -> None:
    clock = CosemDateTime.from_octets(bytes.fromhex("ffff ff ff ff ff ff ff ff 8000 ff"))
    assert clock == CosemDateTime(
        CosemDate(None, None, None, None), CosemTime(None, None, None, None), None, None
    )
    assert clock.daylight_saving is None


def test_clock_status_bits() -> None:
    assert ClockStatus.DAYLIGHT_SAVING_ACTIVE == DAYLIGHT_SAVING_ACTIVE == 0x80
    flags = ClockStatus(0x83)
    assert ClockStatus.INVALID_VALUE in flags and ClockStatus.DOUBTFUL_VALUE in flags
    assert ClockStatus.DIFFERENT_CLOCK_BASE not in flags
    assert [ClockStatus.DIFFERENT_CLOCK_BASE, ClockStatus.INVALID_CLOCK_STATUS] == [4, 8]


def test_dates_and_times_of_the_day() -> None:
    assert CosemDate.from_date(date(2024, 2, 29)) == CosemDate(2024, 2, 29, 4)
    assert CosemDate(2024, 2, 29, None).to_date() == date(2024, 2, 29)
    assert CosemTime.from_time(time(23, 59, 58, 990_000)) == CosemTime(23, 59, 58, 99)
    assert CosemTime(1, 2, 3, None).to_time() == time(1, 2, 3)
    with pytest.raises(DlmsLocalError, match="pattern"):
        CosemDate(None, 1, 1, None).to_date()
    with pytest.raises(DlmsLocalError, match="not a day"):
        CosemDate(2023, 2, 29, None).to_date()
    with pytest.raises(DlmsLocalError, match="pattern"):
        CosemTime(None, 0, 0, 0).to_time()


# -- properties ----------------------------------------------------------------------------

fixed_offsets = st.integers(-840, 840).map(lambda m: timezone(timedelta(minutes=m)))
instants = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9998, 12, 30), timezones=fixed_offsets
)
zoned = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2037, 12, 31),
    timezones=st.timezones(),
    allow_imaginary=False,
)


@given(instants)
def test_from_and_to_datetime_round_trip_to_the_hundredth(value: datetime) -> None:
    clock = CosemDateTime.from_datetime(value)
    back = clock.to_datetime()
    assert back.utcoffset() == value.utcoffset()
    assert back == value.replace(microsecond=value.microsecond // 10_000 * 10_000)
    assert CosemDateTime.from_octets(clock.to_octets()) == clock


@given(zoned)
def test_zoned_datetimes_keep_their_instant_and_dst(value: datetime) -> None:
    offset = value.utcoffset()
    assert offset is not None
    if offset % timedelta(minutes=1) or abs(offset) > timedelta(hours=14):
        return  # not representable; refused (tested above)
    clock = CosemDateTime.from_datetime(value)
    assert clock.utc() == value.astimezone(UTC).replace(
        microsecond=value.microsecond // 10_000 * 10_000
    )
    advanced = value.dst()
    assert clock.daylight_saving is bool(advanced and advanced > timedelta(0))


@given(st.binary(min_size=12, max_size=12))
def test_any_12_octets_decode_to_the_same_octets_or_fail(raw: bytes) -> None:
    try:
        clock = CosemDateTime.from_octets(raw)
    except DecodeError:
        return
    assert clock.to_octets() == raw


@given(st.binary(min_size=5, max_size=5), st.binary(min_size=4, max_size=4))
def test_any_date_and_time_octets_decode_to_the_same_octets_or_fail(d: bytes, t: bytes) -> None:
    for cls, raw in ((CosemDate, d), (CosemTime, t)):
        try:
            value = cls.from_octets(raw)  # type: ignore[attr-defined]
        except DecodeError:
            continue
        assert value.to_octets() == raw


# -- bit-strings, descriptions, constructors -----------------------------------------------


@given(st.lists(st.booleans(), max_size=40))
def test_bit_strings_from_bits_and_back(bits: list[bool]) -> None:
    value = BitString.from_bits(bits)
    assert value.bits == tuple(bits)
    assert value.length == len(bits) and len(value.data) == (len(bits) + 7) // 8
    if bits:
        last = len(bits) % 8
        assert last == 0 or value.data[-1] & ((1 << (8 - last)) - 1) == 0  # padding is zero


def test_bit_string_layout_and_length_check() -> None:
    assert BitString.from_bits([1, 0, 1, 1, 0, 0, 0, 0, 1]) == BitString(9, b"\xb0\x80")
    with pytest.raises(DlmsLocalError, match="9 bits needs 2 bytes"):
        BitString(9, b"\xb0")
    with pytest.raises(DlmsLocalError):
        BitString(-1, b"")


def test_type_descriptions_check_themselves() -> None:
    u8 = TypeDescription(T.UNSIGNED)
    assert TypeDescription.array(3, u8) == TypeDescription(T.ARRAY, 3, (u8,))
    assert TypeDescription.structure(u8, u8).elements == (u8, u8)
    for bad in (
        lambda: TypeDescription(T.ARRAY, 70_000, (u8,)),
        lambda: TypeDescription(T.ARRAY, 2, ()),
        lambda: TypeDescription(T.ARRAY, 2, (u8, u8)),
        lambda: TypeDescription(T.STRUCTURE, 1, (u8,)),
        lambda: TypeDescription(T.COMPACT_ARRAY),
        lambda: TypeDescription(T.UNSIGNED, 1),
        lambda: TypeDescription(T.UNSIGNED, 0, (u8,)),
        lambda: TypeDescription(T.STRUCTURE, 0, (T.UNSIGNED,)),  # type: ignore[arg-type]
        lambda: TypeDescription(7),  # type: ignore[arg-type]
    ):
        with pytest.raises(DlmsLocalError):
            bad()


def test_description_of_a_value() -> None:
    row = Data.structure(Data.octets(b"\x00" * 12), Data.uint8(0), Data.array(Data.int16(1)))
    assert TypeDescription.of(row) == TypeDescription.structure(
        TypeDescription(T.OCTET_STRING),
        TypeDescription(T.UNSIGNED),
        TypeDescription.array(1, TypeDescription(T.LONG)),
    )
    with pytest.raises(DlmsLocalError, match="empty array"):
        TypeDescription.of(Data.array())
    with pytest.raises(DlmsLocalError, match="different types"):
        TypeDescription.of(Data.array(Data.uint8(1), Data.uint16(1)))
    packed = CompactArray(TypeDescription.of(row), (row,))
    assert packed.contents[0] is row


def test_short_constructors() -> None:
    clock = CosemDateTime.from_datetime(datetime(2024, 1, 1, tzinfo=UTC))
    cases = [
        (Data.null(), T.NULL_DATA, None),
        (Data.uint8(1), T.UNSIGNED, 1),
        (Data.uint16(1), T.LONG_UNSIGNED, 1),
        (Data.uint32(1), T.DOUBLE_LONG_UNSIGNED, 1),
        (Data.uint64(1), T.LONG64_UNSIGNED, 1),
        (Data.int8(-1), T.INTEGER, -1),
        (Data.int16(-1), T.LONG, -1),
        (Data.int32(-1), T.DOUBLE_LONG, -1),
        (Data.int64(-1), T.LONG64, -1),
        (Data.enum(3), T.ENUM, 3),
        (Data.boolean(1), T.BOOLEAN, True),  # type: ignore[arg-type]
        (Data.visible_string("x"), T.VISIBLE_STRING, "x"),
        (Data.octets(bytearray(b"ab")), T.OCTET_STRING, b"ab"),
        (Data.date_time(clock), T.DATE_TIME, clock),
        (Data.date_time_octets(clock), T.OCTET_STRING, clock.to_octets()),
    ]
    for d, kind, value in cases:
        assert (d.type, d.value) == (kind, value)
        assert type(d.value) is type(value)


def test_items_only_for_arrays_and_structures() -> None:
    assert Data.structure(Data.null()).items == (Data.null(),)
    with pytest.raises(DlmsLocalError, match="UNSIGNED has no elements"):
        _ = Data.uint8(1).items


def test_data_values_are_immutable_and_hashable() -> None:
    d = Data.structure(Data.uint8(1), Data.octets(b"a"))
    assert hash(d) == hash(Data.structure(Data.uint8(1), Data.octets(b"a")))
    with pytest.raises(AttributeError):
        d.value = ()  # type: ignore[misc]
