"""Green Button (NAESB REQ.21 ESPI) parser: mapping, DST, reference exports, broken input."""

from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import support
from meterledger.core.errors import FormatError
from meterledger.ingest.parsers import greenbutton
from meterledger.ingest.parsers.greenbutton import parse_greenbutton
from meterledger.ingest.records import RAW_SCHEMA

DATA = Path(__file__).resolve().parents[2] / "data" / "greenbutton"
SAMPLE = DATA / "dst_fallback_sample.xml"
SAMPLE_METER = "5B1E3F0A-6C2D-4E8B-9A71-2D3C4B5A6F70"
FORWARD, REVERSE = "1.0.1.8.0.255", "1.0.2.8.0.255"


REFERENCE = support.reference_dir("greenbutton")
needs_reference = support.needs_reference(REFERENCE)


# -- small documents built in the tests ------------------------------------------------------

BASE = "https://dc.example.com/espi/1_1/resource"
ESPI = 'xmlns="http://naesb.org/espi"'


def _entry(self_href: str, body: str, *, atom_id: str = "", related: Iterable[str] = ()) -> str:
    links = f'<link rel="self" href="{self_href}"/>' if self_href else ""
    if self_href:
        links += f'<link rel="up" href="{self_href.rsplit("/", 1)[0]}"/>'
    links += "".join(f'<link rel="related" href="{href}"/>' for href in related)
    ident = f"<id>{atom_id}</id>" if atom_id else ""
    return f"<entry>{ident}{links}<content>{body}</content></entry>"


def _feed(*entries: str) -> bytes:
    atom = '<feed xmlns="http://www.w3.org/2005/Atom">'
    return f'<?xml version="1.0" encoding="UTF-8"?>{atom}{"".join(entries)}</feed>'.encode()


def _usage_point(n: int, uuid: str, kind: int | None = 0) -> str:
    category = f"<ServiceCategory><kind>{kind}</kind></ServiceCategory>" if kind is not None else ""
    body = f"<UsagePoint {ESPI}>{category}</UsagePoint>"
    return _entry(f"{BASE}/RetailCustomer/1/UsagePoint/{n}", body, atom_id=f"urn:uuid:{uuid}")


def _reading_type(n: int, **codes: int | str | None) -> str:
    fields = {"commodity": 1, "flowDirection": 1, "powerOfTenMultiplier": 0, "uom": 72, **codes}
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items() if v is not None)
    return _entry(f"{BASE}/ReadingType/{n}", f"<ReadingType {ESPI}>{inner}</ReadingType>")


def _meter_reading(up: int, rt: int) -> str:
    href = f"{BASE}/RetailCustomer/1/UsagePoint/{up}/MeterReading/{rt}"
    return _entry(href, f"<MeterReading {ESPI}/>", related=[f"{BASE}/ReadingType/{rt}"])


def _block(up: int, mr: int, readings: str, *, linked: bool = True) -> str:
    href = f"{BASE}/RetailCustomer/1/UsagePoint/{up}/MeterReading/{mr}/IntervalBlock/7"
    return _entry(href if linked else "", f"<IntervalBlock {ESPI}>{readings}</IntervalBlock>")


def _ir(
    start: int | str | None,
    value: int | str | None,
    duration: int | str | None = 3600,
    qualities: Iterable[int | str] = (),
) -> str:
    quality = "".join(f"<ReadingQuality><quality>{q}</quality></ReadingQuality>" for q in qualities)
    period = "".join(
        f"<{name}>{text}</{name}>"
        for name, text in (("duration", duration), ("start", start))
        if text is not None
    )
    value_xml = f"<value>{value}</value>" if value is not None else ""
    body = f"{quality}<timePeriod>{period}</timePeriod>{value_xml}"
    return f"<IntervalReading>{body}</IntervalReading>"


def _simple(readings: str, **codes: int | str | None) -> bytes:
    """One UsagePoint, one MeterReading, one ReadingType (``codes`` override it), one block."""
    return _feed(_usage_point(1, "AAAA-0001"), *_without_usage_point(readings, **codes))


def _without_usage_point(readings: str, **codes: int | str | None) -> list[str]:
    return [_meter_reading(1, 1), _reading_type(1, **codes), _block(1, 1, readings)]


T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


def _iso(epoch: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=epoch)).isoformat()


def _parse(data: bytes, meter_id: str | None = None) -> pl.DataFrame:
    return parse_greenbutton(data, source="test.xml", meter_id=meter_id)


# -- 1. the hand-made fall-back day ----------------------------------------------------------


def test_public_surface() -> None:
    assert greenbutton.__all__ == ["parse_greenbutton"]


def test_dst_fallback_day_keeps_both_fold_hours_and_the_gaps() -> None:
    frame = _parse(SAMPLE.read_bytes())
    assert dict(frame.schema) == RAW_SCHEMA
    assert frame.height == 27
    assert frame["record_no"].to_list() == list(range(1, 28))
    assert frame["error"].null_count() == 27
    assert set(frame["meter_id"]) == {SAMPLE_METER}
    assert set(frame["unit"]) == {"Wh"}
    assert set(frame["interval_seconds"]) == {"3600"}

    forward = frame.filter(pl.col("channel") == FORWARD)
    assert forward.height == 23
    # 25 local hours from 00:00 EDT = 04:00Z; local 09:00 EST (14:00Z) and 15:00 EST (20:00Z)
    # are missing, so their interval ends 15:00Z and 21:00Z do not appear.
    first_end = datetime(2023, 11, 5, 5, tzinfo=UTC)
    expected_ends = [
        (first_end + timedelta(hours=i)).isoformat() for i in range(25) if i not in (10, 16)
    ]
    assert forward["interval_end"].to_list() == expected_ends
    assert "2023-11-05T15:00:00+00:00" not in expected_ends
    # Both local 01:00 hours: 01:00 EDT starts 05:00Z, 01:00 EST starts 06:00Z.
    fold = forward.filter(
        pl.col("interval_end").is_in(["2023-11-05T06:00:00+00:00", "2023-11-05T07:00:00+00:00"])
    )
    assert fold["value"].to_list() == ["388.120", "371.004"]
    assert forward["value"].to_list()[:3] == ["412.345", "388.120", "371.004"]
    assert forward["value"].to_list()[-1] == "512.345"
    total = sum((Decimal(v) for v in forward["value"]), Decimal(0))
    assert total == Decimal("15066.102")  # the 23 values in the file, in mWh

    reverse = frame.filter(pl.col("channel") == REVERSE)
    assert reverse["interval_end"].to_list() == [
        "2023-11-05T16:00:00+00:00",
        "2023-11-05T17:00:00+00:00",
        "2023-11-05T18:00:00+00:00",
        "2023-11-05T19:00:00+00:00",
    ]
    assert reverse["value"].to_list() == ["120", "340", "410", "95"]


def test_dst_sample_quality_flags() -> None:
    frame = _parse(SAMPLE.read_bytes())
    quality = dict(zip(frame["record_no"], frame["quality"], strict=True))
    assert quality[1] == "actual"  # 0 valid
    assert quality[6] == "estimated:like-day"  # 8 estimated using reference day
    assert quality[12] == "edited"  # 7 manually edited
    assert quality[19] == "suspect"  # 10 questionable
    assert quality[20] == "estimated:like-day|edited"  # 8 and 7 on one reading
    assert [n for n, q in quality.items() if q is not None] == [1, 6, 12, 19, 20]


def test_raw_is_deterministic_and_identifies_each_reading() -> None:
    first, second = _parse(SAMPLE.read_bytes()), _parse(SAMPLE.read_bytes())
    assert first.equals(second)
    assert first["raw"].n_unique() == first.height
    assert first["raw"][1] == (
        f'<IntervalReading meter="{SAMPLE_METER}" commodity="1" uom="72" pow="-3" flow="1" '
        'start="1699160400" duration="3600" value="388120"/>'
    )


def test_gzip_input_parses_like_plain_xml() -> None:
    plain = SAMPLE.read_bytes()
    assert _parse(gzip.compress(plain)).equals(_parse(plain))


# -- 2. a buggy folded-hour export ------------------------------------------------------------


def test_duplicated_start_emits_both_readings_unchanged() -> None:
    # The exporter computed starts from local time: the second 01:00 repeats the first start.
    readings = _ir(T0, 500) + _ir(T0, 520) + _ir(T0 + 3600, 480) + _ir(T0 + 3600, 480)
    frame = _parse(_simple(readings))
    assert frame.height == 4
    assert frame["error"].null_count() == 4
    assert frame["interval_end"].to_list() == [_iso(T0 + 3600)] * 2 + [_iso(T0 + 7200)] * 2
    assert frame["value"].to_list() == ["500", "520", "480", "480"]
    # Distinct values keep distinct raw records; an identical repeat is the same record.
    assert frame["raw"][0] != frame["raw"][1]
    assert frame["raw"][2] == frame["raw"][3]


def test_block_whose_reading_count_does_not_match_its_duration() -> None:
    # A 24-hour block holding 25 hourly readings: nothing is dropped, shifted or re-spread.
    interval = f"<interval><duration>86400</duration><start>{T0}</start></interval>"
    readings = interval + "".join(_ir(T0 + 3600 * i, 100 + i) for i in range(25))
    frame = _parse(_simple(readings))
    assert frame.height == 25
    assert frame["interval_end"].to_list() == [_iso(T0 + 3600 * (i + 1)) for i in range(25)]


# -- 3. real exports --------------------------------------------------------------------------


@needs_reference
def test_coastal_multifamily_year_matches_its_csv() -> None:
    assert REFERENCE is not None
    name = "Coastal_Multi_Family_Jan_1_2011_to_Jan_1_2012_RetailCustomer_5.xml.gz"
    frame = _parse((REFERENCE / name).read_bytes())
    assert frame.height == 8760
    assert frame["error"].null_count() == 8760
    assert frame["interval_end"][0] == "2011-01-01T09:00:00+00:00"
    assert frame["interval_end"][-1] == "2012-01-01T08:00:00+00:00"
    assert frame["interval_end"].n_unique() == 8760
    assert set(frame["channel"]) == {FORWARD}
    assert set(frame["meter_id"]) == {"DAE2A527-3662-4066-85A8-C073762A1790"}

    with (REFERENCE / "gba_sample_coastal_multifamily_2011_hourly.csv").open(newline="") as f:
        kwh = [Decimal(row["kwh_delivered"]) for row in csv.DictReader(f)]
    assert len(kwh) == 8760
    total_wh = sum((Decimal(v) for v in frame["value"]), Decimal(0))
    assert total_wh == sum(kwh, Decimal(0)) * 1000


@needs_reference
def test_nine_days_binned_daily() -> None:
    assert REFERENCE is not None
    frame = _parse((REFERENCE / "TestGBDataHourlyNineDaysBinnedDaily.xml").read_bytes())
    assert frame.height == 216  # 9 daily blocks of 24 hourly readings
    assert set(frame["meter_id"]) == {"E2DCF5F0-810B-443F-9A2E-805BFA52D897"}
    assert frame["interval_end"][0] == "2014-01-01T06:00:00+00:00"
    assert frame["interval_end"][-1] == "2014-01-10T05:00:00+00:00"
    assert frame["value"][0] == "273"
    assert frame["error"].null_count() == 216


@needs_reference
def test_containerized_abridged() -> None:
    assert REFERENCE is not None
    frame = _parse((REFERENCE / "electric_containerized_abridged.xml").read_bytes())
    assert frame["value"].to_list() == ["450", "430", "418", "410", "595", "591", "611", "581"]
    assert set(frame["meter_id"]) == {"C4B46B5D-D4AC-4CD3-9E29-13717DD04140"}
    assert frame["interval_end"].to_list()[4] == "2011-01-01T21:00:00+00:00"


# -- 4. which meter ---------------------------------------------------------------------------


def test_meter_id_argument_overrides_the_usage_point() -> None:
    frame = _parse(SAMPLE.read_bytes(), meter_id="MTR-0042")
    assert set(frame["meter_id"]) == {"MTR-0042"}
    assert frame["raw"].str.contains('meter="MTR-0042"').all()


def test_no_usage_point_needs_a_meter_id() -> None:
    data = _feed(*_without_usage_point(_ir(T0, 1)))
    with pytest.raises(FormatError, match="--meter-id"):
        _parse(data)
    assert _parse(data, meter_id="M1")["meter_id"].to_list() == ["M1"]


def test_several_usage_points_are_told_apart_by_their_links() -> None:
    data = _feed(
        _usage_point(1, "UP-ONE"),
        _usage_point(2, "UP-TWO"),
        _meter_reading(1, 1),
        _meter_reading(2, 2),
        _reading_type(1),
        _reading_type(2, flowDirection=19),
        _block(2, 2, _ir(T0, 7)),
        _block(1, 1, _ir(T0, 5)),
    )
    frame = _parse(data)
    assert frame.select("meter_id", "channel", "value").rows() == [
        ("UP-TWO", REVERSE, "7"),
        ("UP-ONE", FORWARD, "5"),
    ]
    with pytest.raises(FormatError, match="merge"):
        _parse(data, meter_id="M1")  # one id for two meters would mix their readings


def test_several_usage_points_and_an_unlinked_block_is_refused() -> None:
    data = _feed(
        _usage_point(1, "UP-ONE"),
        _usage_point(2, "UP-TWO"),
        _reading_type(1),
        _block(1, 1, _ir(T0, 5), linked=False),
    )
    with pytest.raises(FormatError, match="--meter-id"):
        _parse(data)
    with pytest.raises(FormatError, match="merge"):
        _parse(data, meter_id="M1")  # the block may belong to either meter


def test_several_reading_types_and_an_unlinked_block_is_refused() -> None:
    data = _feed(
        _usage_point(1, "UP-ONE"),
        _reading_type(1),
        _reading_type(2, flowDirection=19),
        _block(1, 1, _ir(T0, 5), linked=False),
    )
    with pytest.raises(FormatError, match="which ReadingType"):
        _parse(data)


def test_single_entry_root_and_unqualified_espi_names() -> None:
    # No feed, no links, ESPI names left in the Atom default namespace by a sloppy exporter.
    data = (
        '<entry xmlns="http://www.w3.org/2005/Atom"><content>'
        "<ReadingType><uom>72</uom><flowDirection>1</flowDirection>"
        "<powerOfTenMultiplier>3</powerOfTenMultiplier></ReadingType>"
        f"<IntervalBlock>{_ir(T0, 2)}</IntervalBlock></content></entry>"
    ).encode()
    frame = _parse(data, meter_id="M7")
    assert frame.select("meter_id", "channel", "value", "unit").rows() == [
        ("M7", FORWARD, "2000", "Wh")
    ]


# -- mapping tables ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codes", "channel", "unit"),
    [
        ({"uom": 72, "flowDirection": 1}, "1.0.1.8.0.255", "Wh"),
        ({"uom": 72, "flowDirection": 19}, "1.0.2.8.0.255", "Wh"),
        ({"uom": 72, "flowDirection": 4}, "1.0.16.8.0.255", "Wh"),
        ({"uom": 73, "flowDirection": 1}, "1.0.3.8.0.255", "varh"),
        ({"uom": 73, "flowDirection": 19}, "1.0.4.8.0.255", "varh"),
        ({"uom": 42, "flowDirection": None, "commodity": 9}, "8.0.1.0.0.255", "m3"),
        ({"uom": 42, "flowDirection": 1, "commodity": 7}, "7.0.3.0.0.255", "m3"),
        ({"uom": 134, "flowDirection": 0, "commodity": 9}, "8.0.1.0.0.255", "L"),
    ],
)
def test_reading_type_to_channel(
    codes: dict[str, int | str | None], channel: str, unit: str
) -> None:
    frame = _parse(_simple(_ir(T0, 1), **codes))
    assert frame.select("channel", "unit").rows() == [(channel, unit)]


def test_volume_without_commodity_uses_the_usage_point_service() -> None:
    water = _feed(
        _usage_point(1, "W-1", kind=2),
        _meter_reading(1, 1),
        _reading_type(1, uom=42, commodity=None, flowDirection=None),
        _block(1, 1, _ir(T0, 3)),
    )
    assert _parse(water)["channel"].to_list() == ["8.0.1.0.0.255"]


def test_unmetered_service_kind_without_commodity_is_a_format_error() -> None:
    heat = _feed(
        _usage_point(1, "H-1", kind=4),  # ServiceCategory kind 4: heat
        _meter_reading(1, 1),
        _reading_type(1, commodity=None),
        _block(1, 1, _ir(T0, 3)),
    )
    with pytest.raises(FormatError, match="ServiceCategory kind"):
        _parse(heat)


@pytest.mark.parametrize(
    ("codes", "message"),
    [
        ({"uom": 38}, "uom 38"),  # W: demand, not energy
        ({"uom": 119, "commodity": 7}, "uom 119"),  # ft3: we would have to convert
        ({"uom": None}, "uom None"),
        ({"flowDirection": 2}, "flowDirection 2"),
        ({"flowDirection": None}, "flowDirection None"),
        ({"uom": 73, "flowDirection": 4}, "flowDirection 4"),
        ({"commodity": 8}, "commodity 8"),
        ({"uom": 42, "commodity": 1}, "water or gas"),
        ({"uom": 72, "commodity": 7}, "uom 72 (energy) on a gas service"),
        ({"uom": 42, "commodity": 9, "flowDirection": 19}, "flowDirection 19"),
        ({"uom": "Wh"}, "uom 'Wh'"),
        ({"powerOfTenMultiplier": 40}, "powerOfTenMultiplier 40"),
    ],
)
def test_unsupported_reading_type_is_a_format_error(
    codes: dict[str, int | str | None], message: str
) -> None:
    with pytest.raises(FormatError, match=re.escape(message)):
        _parse(_simple(_ir(T0, 1), **codes))


@pytest.mark.parametrize(
    ("value", "power", "text"),
    [
        (450, 0, "450"),
        (450, -3, "0.450"),
        (5, 3, "5000"),
        (-12, -1, "-1.2"),
        (0, -3, "0.000"),
        (140737488355327, -12, "140.737488355327"),  # Int48 max, smallest multiplier
    ],
)
def test_value_times_power_of_ten_is_exact(value: int, power: int, text: str) -> None:
    frame = _parse(_simple(_ir(T0, value), powerOfTenMultiplier=power))
    assert frame["value"].to_list() == [text]


def test_missing_multiplier_means_zero() -> None:
    assert _parse(_simple(_ir(T0, 42), powerOfTenMultiplier=None))["value"].to_list() == ["42"]


@pytest.mark.parametrize(
    ("codes", "text"),
    [
        ((), None),
        ((0,), "actual"),
        ((14,), "actual"),
        ((17,), "actual"),
        ((18,), "actual"),
        ((19,), "actual"),
        ((7,), "edited"),
        ((8,), "estimated:like-day"),
        ((9,), "estimated:linear"),
        ((12,), "estimated"),
        ((10,), "suspect"),
        ((9, 10), "estimated:linear|suspect"),
    ],
)
def test_reading_quality_codes(codes: tuple[int, ...], text: str | None) -> None:
    frame = _parse(_simple(_ir(T0, 1, qualities=codes)))
    assert frame["quality"].to_list() == [text]
    assert frame["error"].to_list() == [None]


# -- 5. broken input --------------------------------------------------------------------------


def _bomb() -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    return (
        f'<?xml version="1.0"?><!DOCTYPE feed [{"".join(entities)}]>'
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>&lol9;</title></feed>'
    ).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not well-formed"),
        (b"timestamp,kwh\n2024-01-01T00:00:00Z,1.5\n", "not well-formed"),
        (SAMPLE.read_bytes()[:5000], "not well-formed"),  # truncated
        (_bomb(), "forbidden XML"),
        (
            b'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<feed xmlns="http://www.w3.org/2005/Atom">&x;</feed>',
            "forbidden XML",
        ),
        (b"<html><body>Green Button</body></html>", "not a Green Button document"),
        (b'<feed xmlns="http://www.w3.org/2005/Atom"><entry/></feed>', "without any ESPI"),
        (b"\x1f\x8b\x08\x00garbage", "broken gzip"),
        (gzip.compress(SAMPLE.read_bytes())[:-20], "broken gzip"),
    ],
)
def test_unreadable_documents_raise_format_error(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        _parse(data)


def test_gzip_bomb_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(greenbutton, "MAX_DOCUMENT_BYTES", 1000)
    with pytest.raises(FormatError, match="larger than"):
        _parse(gzip.compress(b" " * 10_000))


@pytest.mark.parametrize(
    ("reading", "detail", "known"),
    [
        (_ir(T0, None), "value is missing", {"interval_end": _iso(T0 + 3600), "value": None}),
        (_ir(T0, "12.5"), "value '12.5' is not an integer", {"interval_seconds": "3600"}),
        (_ir(None, 5), "start is missing", {"value": "5", "interval_end": None}),
        (_ir("2024-01-01", 5), "start '2024-01-01' is not an integer", {"value": "5"}),
        (_ir(T0, 5, duration=None), "duration is missing", {"interval_seconds": None}),
        (_ir(T0, 5, duration=0), "duration 0 is not positive", {"interval_end": None}),
        (_ir(10**17, 5), "out of range", {"interval_end": None}),
        (_ir(T0, 5, qualities=[99]), "'99' is not a QualityOfReading", {"value": "5"}),
        (
            "<IntervalReading><value>5</value></IntervalReading>",
            "start is missing; duration is missing",
            {"value": "5"},
        ),
    ],
)
def test_broken_interval_reading_becomes_a_malformed_row(
    reading: str, detail: str, known: dict[str, str | None]
) -> None:
    frame = _parse(_simple(_ir(T0 - 3600, 1) + reading + _ir(T0 + 3600, 3)))
    assert frame.height == 3  # neither dropped nor fatal
    assert frame["error"].to_list() == [None, "MALFORMED_ROW", None]
    bad = frame.row(1, named=True)
    assert bad["record_no"] == 2
    assert detail in bad["error_detail"]
    assert bad["meter_id"] == "AAAA-0001"
    assert bad["channel"] == FORWARD
    for column, expected in known.items():
        assert bad[column] == expected
    assert frame["value"][2] == "3"


# -- 6. nothing but a frame or a FormatError --------------------------------------------------


def _contract(data: bytes) -> None:
    try:
        frame = parse_greenbutton(data, source="fuzz")
    except FormatError:
        return
    assert dict(frame.schema) == RAW_SCHEMA
    good = frame.filter(pl.col("error").is_null())
    assert good.select("interval_end", "value", "meter_id").null_count().sum_horizontal()[0] == 0
    assert set(frame["error"].drop_nulls()) <= {"MALFORMED_ROW"}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_give_a_frame_or_format_error(data: bytes) -> None:
    _contract(data)
    _contract(b"\x1f\x8b" + data)
    _contract(gzip.compress(data))


_SAMPLE_BYTES = SAMPLE.read_bytes()
_NUMBER = re.compile(rb">([-0-9]+)<")
_FIELD = re.compile(rb"<espi:(start|duration|value|quality|uom|flowDirection|commodity|"
                    rb"powerOfTenMultiplier|kind)>[^<]*</espi:\1>|<link [^>]*/>")  # fmt: skip
_XML_TEXT = st.text(st.characters(exclude_characters="<&", exclude_categories=("Cc", "Cs")))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_sample_gives_a_frame_or_format_error(data: st.DataObject) -> None:
    mutated = bytearray(_SAMPLE_BYTES)
    kinds = ["number", "number", "field", "field", "delete", "insert", "flip"]
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        kind = data.draw(st.sampled_from(kinds), label="kind")
        if kind in ("number", "field"):  # keeps the XML well-formed: reaches the row checks
            pattern = _NUMBER if kind == "number" else _FIELD
            spans = [m.span(1 if kind == "number" else 0) for m in pattern.finditer(mutated)]
            start, end = data.draw(st.sampled_from(spans), label="span")
            text = data.draw(_XML_TEXT, label="text") if kind == "number" else ""
            mutated[start:end] = text.encode()
            continue
        at = data.draw(st.integers(0, len(mutated) - 1), label="at")
        if kind == "delete":
            del mutated[at : at + data.draw(st.integers(1, 200), label="length")]
        elif kind == "insert":
            mutated[at:at] = data.draw(st.binary(min_size=1, max_size=20), label="bytes")
        else:
            mutated[at] = data.draw(st.integers(0, 255), label="byte")
    _contract(bytes(mutated))
