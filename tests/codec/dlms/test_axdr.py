"""A-XDR of the Data CHOICE: golden vectors for every type, round trips of arbitrary nested
values, limits against hostile input, and fuzzing (only DecodeError / NeedData escape).

Where a vector comes from is said next to it. "Layout" means hand-built from the Blue Book's
definition (DLMS UA 1000-1, 4.1.5 Data CHOICE and 4.1.6.1 date and time formats) and the A-XDR
rules: fixed-size integers big-endian, BER-style lengths, bit-string length in bits."""

from __future__ import annotations

import contextlib
import math
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from meterledger.codec.dlms import axdr
from meterledger.codec.dlms.axdr import (
    DEFAULT_MAX_DEPTH,
    DataDecoder,
    cosem_date_from_octets,
    cosem_date_to_octets,
    cosem_datetime_from_octets,
    cosem_datetime_of,
    cosem_datetime_to_octets,
    cosem_time_from_octets,
    cosem_time_to_octets,
    decode_data,
    decode_data_bytes,
    encode_data,
    encode_value,
)
from meterledger.codec.dlms.cursor import Cursor, NeedData
from meterledger.codec.dlms.data import (
    INTEGER_RANGES,
    LAST_DAY,
    BitString,
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


def h(text: str) -> bytes:
    return bytes.fromhex(text)  # spaces between bytes are allowed


def dt(y: int, mo: int, d: int, wd: int | None, hh: int, mi: int, s: int, hs: int | None,
       dev: int | None, status: int | None) -> CosemDateTime:  # fmt: skip
    return CosemDateTime(CosemDate(y, mo, d, wd), CosemTime(hh, mi, s, hs), dev, status)


# -- golden vectors ------------------------------------------------------------------------

GOLDEN: list[tuple[str, str, Data]] = [
    # (hex, source, value)
    ("00", "layout: null-data, no body", Data.null()),
    ("FF", "layout: dont-care [255], no body", Data(T.DONT_CARE)),
    ("03 00", "layout: boolean FALSE", Data.boolean(False)),
    ("03 01", "layout: boolean TRUE (sent as 0x01)", Data.boolean(True)),
    ("04 0A C040", "layout: bit-string of 10 bits 1100000001",
     Data(T.BIT_STRING, BitString(10, h("C040")))),
    ("04 00", "layout: empty bit-string", Data(T.BIT_STRING, BitString(0, b""))),
    ("05 FFFFFFFE", "layout: double-long -2", Data.int32(-2)),
    ("05 80000000", "layout: double-long minimum", Data.int32(-(2**31))),
    ("06 00000400", "layout: double-long-unsigned 1024 (a register value)", Data.uint32(1024)),
    ("06 FFFFFFFF", "layout: double-long-unsigned maximum", Data.uint32(2**32 - 1)),
    ("09 06 0100010800FF", "layout: logical name 1.0.1.8.0.255 as octet-string",
     Data.octets(h("0100010800FF"))),
    ("09 00", "layout: empty octet-string", Data.octets(b"")),
    ("0A 03 414243", "layout: visible-string 'ABC'", Data.visible_string("ABC")),
    ("0C 02 C3A9", "layout: utf8-string 'é' (2 UTF-8 bytes)", Data(T.UTF8_STRING, "é")),
    ("0D 12", "layout: bcd is Integer8; 0x12 is 18", Data(T.BCD, 0x12)),
    ("0D FF", "layout: bcd -1", Data(T.BCD, -1)),
    ("0F FF", "layout: integer -1 (the scaler of scaler_unit)", Data.int8(-1)),
    ("0F 80", "layout: integer minimum", Data.int8(-128)),
    ("10 FFFE", "layout: long -2", Data.int16(-2)),
    ("11 00", "layout: unsigned 0", Data.uint8(0)),
    ("11 FF", "layout: unsigned 255", Data.uint8(255)),
    ("12 0102", "layout: long-unsigned 258", Data.uint16(258)),
    ("14 FFFFFFFFFFFFFFFF", "layout: long64 -1", Data.int64(-1)),
    ("15 FFFFFFFFFFFFFFFF", "layout: long64-unsigned maximum", Data.uint64(2**64 - 1)),
    ("16 1E", "layout: enum 30 (the unit Wh)", Data.enum(30)),
    ("17 3FC00000", "layout: float32 1.5, IEEE 754 big-endian", Data(T.FLOAT32, 1.5)),
    ("18 400921FB54442D18", "layout: float64 pi", Data(T.FLOAT64, math.pi)),
    # The clock value of the task brief's example, as a date-time tag and as an octet-string:
    # 2020-01-01 Wednesday 00:00:00.00, deviation -60 (CET), status 0.
    ("19 07E4 01 01 03 00 00 00 00 FFC4 00", "layout: date-time tag 25, 12 octets",
     Data.date_time(dt(2020, 1, 1, 3, 0, 0, 0, 0, -60, 0))),
    ("09 0C 07E4 01 01 03 00 00 00 00 FFC4 00", "task brief: the date-time as an octet-string",
     Data.octets(h("07E4 01 01 03 00 00 00 00 FFC4 00"))),
    ("1A 07E8 06 0F 06", "layout: date tag 26, 2024-06-15 Saturday",
     Data(T.DATE, CosemDate(2024, 6, 15, 6))),
    ("1A FFFF FF FE 07", "OSGP SetSpecialDays test: any year, any month, last day, Sunday",
     Data(T.DATE, CosemDate(None, None, LAST_DAY, 7))),
    ("1B 14 17 2D 00", "layout: time tag 27, 20:23:45.00", Data(T.TIME, CosemTime(20, 23, 45, 0))),
    ("1B FF FF FF FF", "layout: time with every field not specified",
     Data(T.TIME, CosemTime(None, None, None, None))),
    # Register scaler_unit (Blue Book register IC, attribute 3): structure {integer -1, enum Wh}.
    ("02 02 0F FF 16 1E", "task brief: register scaler_unit {-1, Wh}",
     Data.structure(Data.int8(-1), Data.enum(30))),
    ("01 00", "layout: empty array", Data.array()),
    ("02 00", "layout: empty structure", Data.structure()),
    ("02 02 09 06 0100010800FF 06 00000400", "layout: structure {logical name, value}",
     Data.structure(Data.octets(h("0100010800FF")), Data.uint32(1024))),
    # compact-array [19]: contents-description [0] TypeDescription, array-contents [1] OCTET
    # STRING; an ARRAY description is {number-of-elements Unsigned16, type-description}, a
    # STRUCTURE description a SEQUENCE OF TypeDescription (Blue Book 4.1.5).
    ("13 02 02 12 11 06 0001 05 0002 07", "layout: compact-array of structure {u16, u8}",
     Data(T.COMPACT_ARRAY, CompactArray(
         TypeDescription.structure(TypeDescription(T.LONG_UNSIGNED), TypeDescription(T.UNSIGNED)),
         (Data.structure(Data.uint16(1), Data.uint8(5)),
          Data.structure(Data.uint16(2), Data.uint8(7))),
     ))),
    ("13 01 0003 11 06 010203 040506", "layout: compact-array of array[3] of unsigned",
     Data(T.COMPACT_ARRAY, CompactArray(
         TypeDescription.array(3, TypeDescription(T.UNSIGNED)),
         (Data.array(Data.uint8(1), Data.uint8(2), Data.uint8(3)),
          Data.array(Data.uint8(4), Data.uint8(5), Data.uint8(6))),
     ))),
    ("13 09 05 02AABB 01CC", "layout: compact-array of octet-strings keeps their lengths",
     Data(T.COMPACT_ARRAY, CompactArray(
         TypeDescription(T.OCTET_STRING), (Data.octets(h("AABB")), Data.octets(h("CC")))
     ))),
    ("13 11 00", "layout: empty compact-array",
     Data(T.COMPACT_ARRAY, CompactArray(TypeDescription(T.UNSIGNED), ()))),
]  # fmt: skip


@pytest.mark.parametrize(("hexstr", "source", "value"), GOLDEN, ids=[g[1][:60] for g in GOLDEN])
def test_golden_vector_decodes_and_encodes(hexstr: str, source: str, value: Data) -> None:
    raw = h(hexstr)
    decoded = decode_data_bytes(raw)
    assert decoded == value
    assert decoded.type is value.type  # a DataType member, not a bare int
    assert encode_data(value) == raw


def test_every_data_type_has_a_golden_vector() -> None:
    assert {v.type for _, _, v in GOLDEN} == set(DataType)


def test_special_days_table_from_a_meter() -> None:
    # A meter's answer to Special days table (IC 11) attribute 2, published at
    # http://stepagrus.ru/category/it-v-pomoshh-chelovechestvu/ : an array of 11 structures
    # {index long-unsigned, date octet-string(5), day_id unsigned}.
    raw = h(
        "010B020312000109 0507E20101FF1102 020312000209 0507E20102FF1102"
        "020312000309 0507E20103FF1102 020312000409 0507E20114FF1101"
        "020312000509 0507E2020AFF1101 020312000609 0507E20217FF1102"
        "020312000709 0507E20308FF1102 020312000809 0507E20309FF1102"
        "020312000909 0507E20501FF1102 020312000A09 0507E20502FF1102"
        "020312000B09 0507E20509FF1102".replace(" ", "")
    )
    table = decode_data_bytes(raw)
    entries = [
        (i.value, cosem_date_from_octets(d.value), day.value)
        for i, d, day in (e.items for e in table.items)
    ]
    assert len(entries) == 11
    assert entries[0] == (1, CosemDate(2018, 1, 1, None), 2)
    assert entries[3] == (4, CosemDate(2018, 1, 20, None), 1)
    assert entries[-1] == (11, CosemDate(2018, 5, 9, None), 2)
    assert encode_data(table) == raw


def test_kaifa_clock_with_dst_from_a_meter() -> None:
    # Kaifa MA309 (Austria), captured at 2024-06-15 20:23:45+02:00: UtilitechAS/amsreader-
    # firmware issue 809 ("07e8 06 0f 06 14 17 2d 00 ff88 80"), deviation -120, DST active.
    d = decode_data_bytes(h("090C07E8060F0614172D00FF8880"))
    clock = cosem_datetime_of(d)
    assert clock == dt(2024, 6, 15, 6, 20, 23, 45, 0, -120, 0x80)
    assert clock.daylight_saving is True
    assert clock.utc() == datetime(2024, 6, 15, 18, 23, 45, tzinfo=UTC)


def test_landis_gyr_clock_without_deviation_from_a_meter() -> None:
    # Landis+Gyr push in Switzerland (scs/smartmeter-datacollector issue 41): the data-
    # notification's date-time "0C 07 E6 0B 16 02 10 25 1E FF 80 00 00" -- 2022-11-22 Tuesday
    # 16:37:30, hundredths and deviation not specified, status 0.
    raw = h("07E60B160210251EFF800000")
    clock = cosem_datetime_from_octets(raw)
    assert clock == dt(2022, 11, 22, 2, 16, 37, 30, None, None, 0)
    assert cosem_datetime_to_octets(clock) == raw
    with pytest.raises(DlmsLocalError, match="zone"):
        clock.to_datetime()  # no silent UTC
    assert clock.utc(ZoneInfo("Europe/Zurich")) == datetime(2022, 11, 22, 15, 37, 30, tzinfo=UTC)


def test_long_form_counts() -> None:
    # Counts above 127 take the long form: 240 = 81 F0, 287 = 82 01 1F (Gurux forum
    # "Encoding array", https://www.gurux.fi/forum/4177).
    for count, prefix in ((240, "0181F0"), (287, "0182011F"), (127, "017F"), (128, "018180")):
        value = Data.array(*([Data.uint8(7)] * count))
        raw = encode_data(value)
        assert raw == h(prefix) + h("1107") * count
        assert decode_data_bytes(raw) == value


def test_long_octet_string_length_forms() -> None:
    for size, prefix in ((200, "0981C8"), (300, "0982012C"), (70000, "0983011170")):
        raw = encode_value(T.OCTET_STRING, b"\x5a" * size)
        assert raw.startswith(h(prefix))
        assert decode_data_bytes(raw) == Data.octets(b"\x5a" * size)


def profile_buffer(rows: int = 96) -> Data:
    """A Profile Generic buffer as meters send it: an array of structures {clock as an
    octet-string of 12, status unsigned, import and export double-long-unsigned}."""
    start = datetime(2024, 3, 31, 0, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    entries = []
    for i in range(rows):
        t = (start.astimezone(UTC) + timedelta(minutes=15 * i)).astimezone(start.tzinfo)
        entries.append(
            Data.structure(
                Data.date_time_octets(CosemDateTime.from_datetime(t)),
                Data.uint8(0),
                Data.uint32(1_000_000 + 250 * i),
                Data.uint32(40 * i),
            )
        )
    return Data.array(*entries)


def test_profile_buffer_of_96_rows() -> None:
    buffer = profile_buffer()
    raw = encode_data(buffer)
    assert raw[:3] == h("016002")  # 96 entries, each a structure
    assert raw[3:6] == h("04090C")  # of 4 elements, the clock an octet-string of 12
    assert len(raw) == 2 + 96 * (2 + 14 + 2 + 5 + 5)
    decoded = decode_data_bytes(raw)
    assert decoded == buffer
    clocks = [cosem_datetime_of(row.items[0]) for row in decoded.items]
    # 2024-03-31 is the spring-forward day in Berlin: 02:00 CET becomes 03:00 CEST.
    assert clocks[7].to_datetime().isoformat() == "2024-03-31T01:45:00+01:00"
    assert (clocks[7].deviation, clocks[7].status) == (-60, 0)
    assert clocks[8].to_datetime().isoformat() == "2024-03-31T03:00:00+02:00"
    assert (clocks[8].deviation, clocks[8].status) == (-120, 0x80)
    assert [c.utc() for c in clocks] == [
        datetime(2024, 3, 30, 23, tzinfo=UTC) + timedelta(minutes=15 * i) for i in range(96)
    ]


def test_profile_buffer_as_compact_array_is_smaller_and_equal() -> None:
    rows = profile_buffer(5).items
    packed = Data(T.COMPACT_ARRAY, CompactArray(TypeDescription.of(rows[0]), rows))
    raw = encode_data(packed)
    # 13, description 02 04 09 11 06 06, contents length, then rows without tags
    assert raw[:7] == h("13020409110606")
    assert raw[7] == 5 * (13 + 1 + 4 + 4)  # the clock keeps its length byte
    assert decode_data_bytes(raw) == packed
    assert len(raw) < len(encode_data(Data.array(*rows)))


def test_compact_array_with_nested_descriptions() -> None:
    desc = TypeDescription.structure(
        TypeDescription(T.DATE_TIME),
        TypeDescription.array(
            2, TypeDescription.structure(TypeDescription(T.LONG), TypeDescription(T.BIT_STRING))
        ),
        TypeDescription(T.NULL_DATA),
    )
    clock = dt(2024, 1, 2, 2, 3, 4, 5, 6, 0, None)
    element = Data.structure(
        Data.date_time(clock),
        Data.array(
            Data.structure(Data.int16(-3), Data(T.BIT_STRING, BitString.from_bits([1, 0, 1]))),
            Data.structure(Data.int16(4), Data(T.BIT_STRING, BitString(0, b""))),
        ),
        Data.null(),
    )
    value = Data(T.COMPACT_ARRAY, CompactArray(desc, (element, element)))
    raw = encode_data(value)
    assert raw[:12] == h("13 02 03 19 01 0002 02 02 10 04 00".replace(" ", ""))
    one = h("07E801020203040506 0000 FF".replace(" ", "")) + h("FFFD 03A0 0004 00".replace(" ", ""))
    assert raw[12] == 2 * len(one)
    assert raw[13:] == one * 2
    assert decode_data_bytes(raw) == value


# -- cursor behaviour ----------------------------------------------------------------------


def test_decode_data_moves_the_cursor_past_each_value() -> None:
    raw = h("1105") + h("0600000400") + h("0A0141")
    cur = Cursor(raw)
    assert decode_data(cur) == Data.uint8(5)
    assert cur.pos == 2
    assert decode_data(cur) == Data.uint32(1024)
    assert decode_data(cur) == Data.visible_string("A")
    assert cur.at_end()


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_decode_data_from_a_cursor_in_the_middle(kind: type) -> None:
    raw = kind(h("AABB020211011102CC"))
    cur = Cursor(raw, 2)
    assert decode_data(cur) == Data.structure(Data.uint8(1), Data.uint8(2))
    assert cur.pos == 8


def test_decode_data_on_a_sliced_view() -> None:
    cur = Cursor(memoryview(h("99110799"))[1:3])
    assert decode_data(cur) == Data.uint8(7)
    assert cur.at_end()


@pytest.mark.parametrize(("hexstr", "source", "value"), GOLDEN, ids=[g[1][:60] for g in GOLDEN])
def test_every_truncation_needs_data_and_leaves_the_cursor(
    hexstr: str, source: str, value: Data
) -> None:
    raw = h(hexstr)
    for cut in range(len(raw)):
        cur = Cursor(raw[:cut])
        with pytest.raises(NeedData):
            decode_data(cur)
        assert cur.pos == 0
        with pytest.raises(DecodeError, match="truncated"):
            decode_data_bytes(raw[:cut])


def test_a_huge_count_with_few_bytes_is_only_incomplete() -> None:
    with pytest.raises(NeedData):
        decode_data(Cursor(h("0182FFFF1101")))


def test_trailing_bytes_are_a_decode_error() -> None:
    assert decode_data_bytes(h("1101")) == Data.uint8(1)
    with pytest.raises(DecodeError, match="1 bytes after"):
        decode_data_bytes(h("110100"))


# -- invalid encodings ---------------------------------------------------------------------

INVALID: list[tuple[str, str]] = [
    ("07", "unknown Data tag 7"),  # floating-point [7] is not in the CHOICE
    ("08", "unknown Data tag 8"),
    ("0B00", "unknown Data tag 11"),
    ("0E00", "unknown Data tag 14"),
    ("1C00", "unknown Data tag 28"),
    ("8000", "unknown Data tag 128"),
    ("FE", "unknown Data tag 254"),
    ("0980", "length form 0x80"),  # indefinite length
    ("098500000000000000", "length form 0x85"),
    ("0A0180", "not ASCII"),
    ("0C01FF", "not UTF-8"),
    ("0C02C328", "not UTF-8"),
    ("19 07E4 0D 01 03 00 00 00 00 FFC4 00", "month 13"),
    ("19 07E4 01 00 03 00 00 00 00 FFC4 00", "day of month 0"),
    ("19 07E4 01 01 08 00 00 00 00 FFC4 00", "day of week 8"),
    ("19 07E4 01 01 03 18 00 00 00 FFC4 00", "hour 24"),
    ("19 07E4 01 01 03 00 3C 00 00 FFC4 00", "minute 60"),
    ("19 07E4 01 01 03 00 00 3C 00 FFC4 00", "second 60"),
    ("19 07E4 01 01 03 00 00 00 64 FFC4 00", "hundredths 100"),
    ("19 07E4 01 01 03 00 00 00 00 04B0 00", "deviation 1200"),
    ("1A07E801E006", "day of month 224"),  # 0xE0..0xFC are reserved
    ("1B18000000", "hour 24"),
    ("1313 00", "cannot describe"),  # a compact-array cannot describe elements
    ("1307 00", "cannot describe"),
    ("1309 03 05AABB", "runs past the contents"),  # an element longer than the contents
    ("1312 03 000102", "runs past the contents"),  # 3 bytes of long-unsigned elements
    ("1300 02 0000", "no size"),  # null-data elements cannot be counted
    ("130100001103 010203", "no size"),  # arrays of 0 elements neither
    ("130200 01 01", "no size"),  # nor empty structures
]


@pytest.mark.parametrize(("hexstr", "message"), INVALID)
def test_invalid_encodings_are_decode_errors(hexstr: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_data_bytes(h(hexstr.replace(" ", "")))
    with pytest.raises(DecodeError, match=message):  # corrupt, not merely incomplete
        decode_data(Cursor(h(hexstr.replace(" ", "")) + b"\x00" * 16))


def test_non_canonical_forms_are_read_and_sent_canonical() -> None:
    # BER heritage: any non-zero byte is TRUE, and a length may use more bytes than needed.
    assert decode_data_bytes(h("03FF")) == Data.boolean(True)
    assert decode_data_bytes(h("0981021234")) == Data.octets(h("1234"))
    assert encode_data(Data.boolean(True)) == h("0301")
    assert encode_data(Data.octets(h("1234"))) == h("09021234")


def test_nan_keeps_its_bytes() -> None:
    for raw in (h("187FF8000000000001"), h("17FFC00001")):
        d = decode_data_bytes(raw)
        assert isinstance(d.value, float) and math.isnan(d.value)
        assert encode_data(d) == raw


# -- limits --------------------------------------------------------------------------------


def nested_arrays(levels: int) -> bytes:
    return b"\x01\x01" * levels + b"\x00"


def test_nesting_up_to_the_limit_decodes() -> None:
    value = decode_data_bytes(nested_arrays(DEFAULT_MAX_DEPTH))
    depth = 0
    while value.type is T.ARRAY:
        value = value.items[0]
        depth += 1
    assert depth == DEFAULT_MAX_DEPTH == 32


def test_nesting_beyond_the_limit_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="nested deeper than 32"):
        decode_data_bytes(nested_arrays(DEFAULT_MAX_DEPTH + 1))


def test_hostile_nesting_never_exhausts_the_stack() -> None:
    for hostile in (
        b"\x02\x01" * 200_000,
        b"\x01\x81\x80" * 100_000,
        b"\x13" + b"\x02\x01" * 100_000,
    ):
        with pytest.raises(DecodeError, match="nested deeper"):
            decode_data_bytes(hostile)


def test_depth_limit_is_a_keyword_and_a_constructor_argument() -> None:
    raw = nested_arrays(3)
    assert decode_data_bytes(raw, max_depth=3).items[0].items[0].items == (Data.null(),)
    with pytest.raises(DecodeError, match="nested deeper than 2"):
        decode_data_bytes(raw, max_depth=2)
    with pytest.raises(DecodeError, match="nested deeper than 2"):
        DataDecoder(max_depth=2).decode(Cursor(raw))
    assert DataDecoder(max_depth=3).decode_bytes(raw) == decode_data_bytes(raw)
    with pytest.raises(ValueError, match="max_depth"):
        DataDecoder(max_depth=1000)  # the codec is recursive: the limit itself is bounded
    with pytest.raises(ValueError, match="max_elements"):
        decode_data_bytes(raw, max_elements=0)


def test_structure_descriptions_count_towards_the_depth() -> None:
    desc = b"\x02\x01" * 40 + b"\x11"
    with pytest.raises(DecodeError, match="nested deeper"):
        decode_data_bytes(b"\x13" + desc + b"\x00")


def test_element_limit() -> None:
    raw = encode_data(Data.array(*([Data.null()] * 11)))
    assert len(decode_data_bytes(raw, max_elements=11).items) == 11
    with pytest.raises(DecodeError, match="11 elements"):
        decode_data_bytes(raw, max_elements=10)
    # a count over the limit fails at once, before any element is read
    with pytest.raises(DecodeError, match="100001 elements"):
        decode_data(Cursor(h("02830186A1")))
    with pytest.raises(DecodeError, match="structure description of 200"):
        decode_data_bytes(h("130281C8"), max_elements=100)


def test_compact_array_values_are_limited_even_when_elements_take_no_bytes() -> None:
    # structure {unsigned, array[65535] of null-data}: one content byte per 65537 values
    hostile = h("1302021101FFFF00 03 010203".replace(" ", ""))
    with pytest.raises(DecodeError, match="more than 100000 values"):
        decode_data_bytes(hostile)
    fine = h("130202110100FF00 02 0102".replace(" ", ""))  # array[255] of null: 258 values each
    packed = decode_data_bytes(fine).value
    assert isinstance(packed, CompactArray) and len(packed.contents) == 2
    with pytest.raises(DecodeError, match="more than 300 values"):
        decode_data_bytes(fine, max_elements=300)


def test_a_wide_description_of_big_arrays_is_refused_before_it_is_expanded() -> None:
    # 3000 x array[65535] of unsigned: 196 million values per element, from 12 kB
    hostile = h("13 02 820BB8") + h("01FFFF11") * 3000 + h("01 00")
    with pytest.raises(DecodeError, match="more than 100000 values"):
        decode_data_bytes(hostile)


# -- encoding checks -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(INTEGER_RANGES))
def test_integers_are_range_checked(kind: DataType) -> None:
    low, high = INTEGER_RANGES[kind]
    assert decode_data_bytes(encode_value(kind, low)) == Data(kind, low)
    assert decode_data_bytes(encode_value(kind, high)) == Data(kind, high)
    for bad in (low - 1, high + 1):
        with pytest.raises(DlmsLocalError, match="does not fit"):
            encode_value(kind, bad)
    for wrong in (True, "1", 1.0, None):
        with pytest.raises(DlmsLocalError, match="needs an int"):
            encode_value(kind, wrong)


BAD_VALUES: list[tuple[DataType, object, str]] = [
    (T.VISIBLE_STRING, "café", "ASCII"),
    (T.VISIBLE_STRING, b"abc", "ASCII"),
    (T.UTF8_STRING, "\ud800", "cannot hold"),
    (T.UTF8_STRING, b"abc", "needs a str"),
    (T.OCTET_STRING, "abc", "needs bytes"),
    (T.BOOLEAN, 1, "needs a bool"),
    (T.BIT_STRING, b"\x01", "BitString"),
    (T.FLOAT32, 1e39, "does not fit FLOAT32"),
    (T.FLOAT64, "1.0", "needs a float"),
    (T.FLOAT64, 10**400, "does not fit"),
    (T.NULL_DATA, 0, "no value"),
    (T.ARRAY, Data.null(), "tuple of Data"),
    (T.STRUCTURE, (1, 2), "expected a Data"),
    (T.DATE_TIME, datetime(2024, 1, 1, tzinfo=UTC), "CosemDateTime"),
    (T.DATE, CosemTime(1, 2, 3, 4), "CosemDate"),
    (T.COMPACT_ARRAY, (Data.null(),), "CompactArray"),
]


@pytest.mark.parametrize(("kind", "value", "message"), BAD_VALUES)
def test_values_that_do_not_fit_their_type(kind: DataType, value: object, message: str) -> None:
    with pytest.raises(DlmsLocalError, match=message):
        encode_value(kind, value)


def test_unknown_type_and_deep_local_values_are_local_errors() -> None:
    with pytest.raises(DlmsLocalError, match="unknown Data type"):
        encode_data(Data(7, None))  # type: ignore[arg-type]
    deep = Data.null()
    for _ in range(axdr.MAX_DEPTH_LIMIT + 5):
        deep = Data.array(deep)
    with pytest.raises(DlmsLocalError, match="nested deeper"):
        encode_data(deep)


def test_lists_are_accepted_as_sequences_on_encode() -> None:
    assert encode_data(Data(T.STRUCTURE, [Data.uint8(1)])) == h("02011101")


def test_compact_array_elements_must_match_the_description() -> None:
    desc = TypeDescription.structure(TypeDescription(T.UNSIGNED), TypeDescription(T.LONG))
    ok = Data.structure(Data.uint8(1), Data.int16(2))
    assert encode_data(Data(T.COMPACT_ARRAY, CompactArray(desc, (ok,)))) == h(
        "1302021110 03 010002".replace(" ", "")
    )
    for bad, message in (
        (Data.structure(Data.uint8(1)), "structure of 1 for 2"),
        (Data.structure(Data.uint8(1), Data.uint16(2)), "not a LONG"),
        (Data.array(Data.uint8(1), Data.int16(2)), "not a STRUCTURE"),
        (Data.structure(Data.uint8(256), Data.int16(2)), "does not fit"),
    ):  # fmt: skip
        with pytest.raises(DlmsLocalError, match=message):
            encode_data(Data(T.COMPACT_ARRAY, CompactArray(desc, (bad,))))
    arrays = TypeDescription.array(2, TypeDescription(T.UNSIGNED))
    with pytest.raises(DlmsLocalError, match="array of 1 elements, described 2"):
        encode_data(Data(T.COMPACT_ARRAY, CompactArray(arrays, (Data.array(Data.uint8(1)),))))
    nulls = CompactArray(TypeDescription(T.NULL_DATA), (Data.null(),))
    with pytest.raises(DlmsLocalError, match="no size"):
        encode_data(Data(T.COMPACT_ARRAY, nulls))


def test_date_and_time_octet_helpers() -> None:
    date = CosemDate(2024, 2, 29, 4)
    assert cosem_date_to_octets(date) == h("07E8021D04")
    assert cosem_date_from_octets(h("07E8021D04")) == date
    tod = CosemTime(23, 59, 59, None)
    assert cosem_time_to_octets(tod) == h("173B3BFF")
    assert cosem_time_from_octets(h("173B3BFF")) == tod
    for bad in (h("07E8021D"), h("07E8021D0400")):
        with pytest.raises(DecodeError, match="5 octets"):
            cosem_date_from_octets(bad)
    with pytest.raises(DecodeError, match="12 octets"):
        cosem_datetime_from_octets(h("07E8021D04"))
    with pytest.raises(DecodeError, match="4 octets"):
        cosem_time_from_octets(b"")


def test_cosem_datetime_of_accepts_both_forms_only() -> None:
    clock = dt(2024, 1, 1, 1, 0, 0, 0, 0, 0, 0)
    assert cosem_datetime_of(Data.date_time(clock)) == clock
    assert cosem_datetime_of(Data.date_time_octets(clock)) == clock
    with pytest.raises(DecodeError, match="12 octets"):
        cosem_datetime_of(Data.octets(b"\x07\xe8"))
    with pytest.raises(DecodeError, match="expected a date-time"):
        cosem_datetime_of(Data.uint32(5))


# -- property tests: arbitrary nested values -----------------------------------------------

SIMPLE_TYPES = [k for k in DataType if k not in (T.ARRAY, T.STRUCTURE, T.COMPACT_ARRAY)]

cosem_dates = st.builds(
    CosemDate,
    st.one_of(st.none(), st.integers(0, 0xFFFE)),
    st.one_of(st.none(), st.integers(1, 12), st.sampled_from([0xFD, 0xFE])),
    st.one_of(st.none(), st.integers(1, 31), st.sampled_from([0xFD, 0xFE])),
    st.one_of(st.none(), st.integers(1, 7)),
)
cosem_times = st.builds(
    CosemTime,
    *(st.one_of(st.none(), st.integers(0, top)) for top in (23, 59, 59, 99)),
)
cosem_datetimes = st.builds(
    CosemDateTime,
    cosem_dates,
    cosem_times,
    st.one_of(st.none(), st.integers(-840, 840)),
    st.one_of(st.none(), st.integers(0, 0xFE)),
)
bit_strings = st.integers(0, 70).flatmap(
    lambda n: st.binary(min_size=(n + 7) // 8, max_size=(n + 7) // 8).map(lambda b: BitString(n, b))
)


def simple_value(kind: DataType) -> st.SearchStrategy[object]:
    if kind in INTEGER_RANGES:
        low, high = INTEGER_RANGES[kind]
        return st.integers(low, high)
    strategies: dict[DataType, st.SearchStrategy[object]] = {
        T.NULL_DATA: st.none(),
        T.DONT_CARE: st.none(),
        T.BOOLEAN: st.booleans(),
        T.BIT_STRING: bit_strings,
        T.OCTET_STRING: st.binary(max_size=300),
        T.VISIBLE_STRING: st.text(st.characters(max_codepoint=127), max_size=140),
        T.UTF8_STRING: st.text(max_size=40),
        T.FLOAT32: st.floats(width=32, allow_nan=False),
        T.FLOAT64: st.floats(allow_nan=False),
        T.DATE_TIME: cosem_datetimes,
        T.DATE: cosem_dates,
        T.TIME: cosem_times,
    }
    return strategies[kind]


simple_data = st.sampled_from(SIMPLE_TYPES).flatmap(
    lambda k: simple_value(k).map(lambda v: Data(k, v))
)

descriptions: st.SearchStrategy[TypeDescription] = st.recursive(
    st.sampled_from(SIMPLE_TYPES).map(TypeDescription),
    lambda inner: st.one_of(
        st.tuples(st.integers(0, 3), inner).map(lambda t: TypeDescription.array(*t)),
        st.lists(inner, max_size=4).map(lambda es: TypeDescription.structure(*es)),
    ),
    max_leaves=6,
)


def takes_no_bytes(desc: TypeDescription) -> bool:
    if desc.type is T.STRUCTURE:
        return all(takes_no_bytes(e) for e in desc.elements)
    if desc.type is T.ARRAY:
        return desc.count == 0 or takes_no_bytes(desc.elements[0])
    return desc.type in (T.NULL_DATA, T.DONT_CARE)


def matching(desc: TypeDescription) -> st.SearchStrategy[Data]:
    if desc.type is T.STRUCTURE:
        return st.tuples(*(matching(e) for e in desc.elements)).map(lambda t: Data(T.STRUCTURE, t))
    if desc.type is T.ARRAY:
        items = st.tuples(*([matching(desc.elements[0])] * desc.count))
        return items.map(lambda t: Data(T.ARRAY, t))
    kind = desc.type
    return simple_value(kind).map(lambda v: Data(kind, v))


def compact_array_of(desc: TypeDescription) -> st.SearchStrategy[Data]:
    contents = (
        st.just(()) if takes_no_bytes(desc) else st.lists(matching(desc), max_size=4).map(tuple)
    )
    return contents.map(lambda c: Data(T.COMPACT_ARRAY, CompactArray(desc, c)))


compact_arrays = descriptions.flatmap(compact_array_of)

leaves = st.one_of(simple_data, compact_arrays)


def values_nested(depth: int) -> st.SearchStrategy[Data]:
    """Values of at most ``depth`` nested arrays/structures (compact arrays add their own
    description depth, at most 6), so they stay within the decoder's default limit."""
    if depth == 0:
        return leaves
    inner = values_nested(depth - 1)
    return st.one_of(
        leaves,
        st.lists(inner, max_size=3).map(lambda xs: Data(T.ARRAY, tuple(xs))),
        st.lists(inner, max_size=3).map(lambda xs: Data(T.STRUCTURE, tuple(xs))),
    )


data_values = values_nested(5)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data_values)
def test_encode_then_decode_is_identity(value: Data) -> None:
    raw = encode_data(value)
    assert decode_data_bytes(raw) == value
    cur = Cursor(raw + b"\xaa")
    assert decode_data(cur) == value
    assert cur.pos == len(raw)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data_values)
def test_decode_then_encode_gives_the_same_bytes(value: Data) -> None:
    raw = encode_data(value)
    assert encode_data(decode_data_bytes(raw)) == raw


@settings(max_examples=200)
@given(st.lists(simple_data, min_size=1, max_size=6))
def test_values_back_to_back_on_one_cursor(values: list[Data]) -> None:
    raw = b"".join(encode_data(v) for v in values)
    cur = Cursor(raw)
    assert [decode_data(cur) for _ in values] == values
    assert cur.at_end()


# -- fuzzing: nothing but DecodeError / NeedData escapes -----------------------------------


def check_decoding_is_total(raw: bytes) -> None:
    try:
        value = decode_data_bytes(raw, max_elements=5_000)
    except DecodeError:
        pass
    else:
        again = encode_data(value)  # what decodes must encode, and read back the same
        assert encode_data(decode_data_bytes(again)) == again
    with contextlib.suppress(DecodeError, NeedData):
        decode_data(Cursor(raw), max_elements=5_000)


@settings(max_examples=1500)
@given(st.binary(max_size=64))
def test_random_bytes_only_raise_decode_errors(raw: bytes) -> None:
    check_decoding_is_total(raw)


TAGS = sorted({int(k) for k in DataType} | {7, 8, 11, 14, 28, 0x80, 0x85, 0xFE})


@settings(max_examples=1500)
@given(st.lists(st.one_of(st.sampled_from(TAGS), st.integers(0, 255)), max_size=48))
def test_tag_heavy_random_bytes_only_raise_decode_errors(raw: list[int]) -> None:
    check_decoding_is_total(bytes(raw))


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(data_values, st.data())
def test_mutated_encodings_only_raise_decode_errors(value: Data, data: st.DataObject) -> None:
    raw = bytearray(encode_data(value))
    assume(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        action = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "cut"]))
        if action == "flip" and raw:
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "set" and raw:
            raw[at] = data.draw(st.sampled_from([0x00, 0x7F, 0x80, 0x81, 0x84, 0xFF]))
        elif action == "insert":
            raw.insert(at, data.draw(st.integers(0, 255)))
        elif action == "delete" and raw:
            del raw[at]
        elif action == "cut":
            del raw[at:]
    check_decoding_is_total(bytes(raw))


def test_decoding_big_inputs_is_bounded() -> None:
    # an array of 100000 nulls decodes; a wider one is refused without reading it
    assert len(decode_data_bytes(h("01830186A0") + b"\x00" * 100_000).items) == 100_000
    with pytest.raises(DecodeError):
        decode_data_bytes(h("01830186A1") + b"\x00" * 100_001)


def test_fixed_offset_clock_survives_the_wire() -> None:
    instant = datetime(2024, 10, 27, 2, 30, tzinfo=timezone(timedelta(hours=2)))
    raw = encode_data(Data.date_time(CosemDateTime.from_datetime(instant)))
    assert raw == h("1907E80A1B07021E0000FF8800")
    assert cosem_datetime_of(decode_data_bytes(raw)).to_datetime() == instant
