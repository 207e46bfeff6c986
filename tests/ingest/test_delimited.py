"""The canonical CSV and JSON lines parsers: raw frames, line numbers, broken input."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest

from meterledger.core.errors import FormatError
from meterledger.ingest.parsers.delimited import iter_csv, iter_jsonl
from meterledger.ingest.records import FIELDS, RAW_SCHEMA

HEADER = "meter_id,channel,interval_end,interval_seconds,value,unit,quality"
END = "2024-01-01T00:15:00Z"


def csv(data: bytes | str, *, block_bytes: int = 1 << 20) -> pl.DataFrame:
    """Every row iter_csv yields for ``data``, as one frame."""
    raw = data.encode() if isinstance(data, str) else data
    frames = [frame for frame, _ in iter_csv(io.BytesIO(raw), block_bytes=block_bytes)]
    for frame in frames:
        assert frame.schema == pl.Schema(RAW_SCHEMA)
    return pl.concat(frames)


def jsonl(data: bytes | str, *, block_bytes: int = 1 << 20) -> pl.DataFrame:
    raw = data.encode() if isinstance(data, str) else data
    frames = [frame for frame, _ in iter_jsonl(io.BytesIO(raw), block_bytes=block_bytes)]
    for frame in frames:
        assert frame.schema == pl.Schema(RAW_SCHEMA)
    return pl.concat(frames) if frames else pl.DataFrame(schema=RAW_SCHEMA)


def fields(frame: pl.DataFrame, i: int = 0) -> dict[str, object]:
    return {name: frame[name][i] for name in FIELDS}


def line(n: int, value: str = "1.5") -> str:
    return f"M1,1.0.1.8.0.255,2024-01-01T{n // 4:02d}:{n % 4 * 15:02d}:00Z,900,{value},kWh,actual"


# -- CSV: header ----------------------------------------------------------------------------


def test_csv_fields_as_text() -> None:
    frame = csv(f"{HEADER}\nM1,1.0.1.8.0.255,{END},900,1.5,kWh,estimated:linear\n")
    assert frame.height == 1
    assert fields(frame) == {
        "meter_id": "M1",
        "channel": "1.0.1.8.0.255",
        "interval_end": END,
        "interval_seconds": "900",
        "value": "1.5",
        "unit": "kWh",
        "quality": "estimated:linear",
    }
    assert frame["record_no"][0] == 2
    assert frame["raw"][0] == f"M1,1.0.1.8.0.255,{END},900,1.5,kWh,estimated:linear"
    assert frame["error"][0] is None
    assert frame["error_detail"][0] is None


def test_csv_header_in_any_order_and_quality_optional() -> None:
    frame = csv(
        f"unit,value,interval_seconds,interval_end,channel,meter_id\nkWh,2,900,{END},1-0:1.8.0,M7\n"
    )
    assert fields(frame) == {
        "meter_id": "M7",
        "channel": "1-0:1.8.0",
        "interval_end": END,
        "interval_seconds": "900",
        "value": "2",
        "unit": "kWh",
        "quality": None,
    }


def test_csv_header_names_may_be_quoted_and_padded() -> None:
    frame = csv(
        f' "meter_id" ,channel,interval_end,interval_seconds,value,unit\nM1,c,{END},900,1,kWh\n'
    )
    assert frame["meter_id"][0] == "M1"


def test_csv_bom_and_crlf() -> None:
    data = ("\ufeff" + HEADER + "\r\n" + line(1) + "\r\n" + line(2) + "\r\n").encode()
    frame = csv(data)
    assert frame["record_no"].to_list() == [2, 3]
    assert frame["quality"].to_list() == ["actual", "actual"]  # no "\r" left on the last field
    assert frame["raw"].to_list() == [line(1), line(2)]
    assert frame["error"].null_count() == 2


def test_csv_blank_lines_are_skipped_but_counted() -> None:
    data = f"{HEADER}\n\n{line(1)}\n   \n\r\n{line(2)}\n\n"
    frame = csv(data)
    assert frame["record_no"].to_list() == [3, 6]
    assert frame["value"].to_list() == ["1.5", "1.5"]


def test_csv_last_line_without_newline() -> None:
    frame = csv(f"{HEADER}\n{line(1)}\n{line(2, '7')}")
    assert frame["value"].to_list() == ["1.5", "7"]
    assert frame["record_no"].to_list() == [2, 3]


def test_csv_quoted_fields_and_padding_are_removed() -> None:
    frame = csv(f'{HEADER}\n"M1", "1.0.1.8.0.255" ,"{END}",900, "1.5",kWh,""\n')
    assert fields(frame) == {
        "meter_id": "M1",
        "channel": "1.0.1.8.0.255",
        "interval_end": END,
        "interval_seconds": "900",
        "value": "1.5",
        "unit": "kWh",
        "quality": None,  # empty field → missing
    }
    assert frame["error"][0] is None


def test_csv_empty_fields_are_null() -> None:
    frame = csv(f"{HEADER}\nM1,,{END},,,kWh,\n")
    assert frame["channel"][0] is None
    assert frame["interval_seconds"][0] is None
    assert frame["value"][0] is None
    assert frame["quality"][0] is None
    assert frame["error"][0] is None


@pytest.mark.parametrize(
    ("data_line", "found"),
    [
        (f'M1,1.0.1.8.0.255,{END},900,"1,5",kWh,actual', 8),  # embedded comma
        (f"M1,1.0.1.8.0.255,{END},900,1.5,kWh", 6),
        (f"M1,1.0.1.8.0.255,{END},900,1.5,kWh,actual,extra", 8),
        ("just some text", 1),
    ],
)
def test_csv_wrong_field_count_is_malformed_row(data_line: str, found: int) -> None:
    frame = csv(f"{HEADER}\n{line(1)}\n{data_line}\n{line(2)}\n")
    assert frame["record_no"].to_list() == [2, 3, 4]
    assert frame["error"].to_list() == [None, "MALFORMED_ROW", None]
    assert frame["error_detail"][1] == f"expected 7 fields, found {found}"
    assert frame["raw"][1] == data_line
    assert frame["meter_id"][1] is None
    assert frame["value"].to_list()[::2] == ["1.5", "1.5"]


def test_csv_non_utf8_line_is_malformed_and_neighbours_survive() -> None:
    bad = b"M1,1.0.1.8.0.255,2024-01-01T00:45:00Z,900,\xff\xfe,kWh,actual"
    data = (HEADER + "\n" + line(1) + "\n").encode() + bad + ("\n" + line(2) + "\n").encode()
    frame = csv(data)
    assert frame["record_no"].to_list() == [2, 3, 4]
    assert frame["error"].to_list() == [None, "MALFORMED_ROW", None]
    assert "UTF-8" in frame["error_detail"][1]
    assert frame["raw"][1].startswith("M1,1.0.1.8.0.255,2024-01-01T00:45:00Z")  # kept, escaped
    assert frame["value"][0] == "1.5"
    assert frame["value"][2] == "1.5"
    assert frame["interval_end"][2] == "2024-01-01T00:30:00Z"


def test_csv_record_no_is_the_physical_line_across_many_blocks() -> None:
    lines = [line(i, str(i)) for i in range(1, 41)]
    lines[9] = ""  # blank, line 11
    lines[20] = "broken"  # wrong field count, line 22
    body = "".join(f"{text}\n" for text in lines)
    data = (HEADER + "\n" + body).encode()
    blocks = list(iter_csv(io.BytesIO(data), block_bytes=64))
    assert len(blocks) >= 10  # the file spans many blocks
    assert sum(size for _, size in blocks) == len(data)
    frame = pl.concat([frame for frame, _ in blocks])
    expected = [n for n in range(2, 42) if n != 11]
    assert frame["record_no"].to_list() == expected
    for record_no, value, error in frame.select("record_no", "value", "error").iter_rows():
        if record_no == 22:
            assert error == "MALFORMED_ROW"
        else:
            # each line is read whole: its value is the number it was written with
            assert error is None
            assert value == str(record_no - 1)


def test_csv_line_longer_than_a_block_is_read_whole() -> None:
    long_value = "1" + "0" * 200
    frame = csv(f"{HEADER}\n{line(1)}\n{line(2, long_value)}\n{line(3)}\n", block_bytes=16)
    assert frame["value"].to_list() == ["1.5", long_value, "1.5"]
    assert frame["record_no"].to_list() == [2, 3, 4]


def test_csv_multibyte_characters_across_block_boundaries() -> None:
    lines = [f"Mé{i},1.0.1.8.0.255,{END},900,{i},kWh,actual" for i in range(30)]
    data = (HEADER + "\n" + "\n".join(lines) + "\n").encode()
    for block_bytes in (7, 13, 64):
        frame = csv(data, block_bytes=block_bytes)
        assert frame["meter_id"].to_list() == [f"Mé{i}" for i in range(30)]
        assert frame["error"].null_count() == 30


def test_csv_header_only() -> None:
    assert csv(f"{HEADER}\n").height == 0


@pytest.mark.parametrize(
    "header",
    [
        "meter_id,channel,interval_end,interval_seconds,value",  # missing unit
        "meter_id,channel,interval_end,value,unit",  # missing interval_seconds
        "meter_id,channel,interval_end,interval_seconds,value,unit,comment",  # unknown column
        "meter_id,channel,interval_end,interval_seconds,value,unit,",  # empty column name
        "meter_id,channel,interval_end,interval_seconds,value,unit,unit",  # duplicate
        "meter_id,meter_id,channel,interval_end,interval_seconds,value,unit",
        "Meter_ID,channel,interval_end,interval_seconds,value,unit",  # names are exact
        "meter_id;channel;interval_end;interval_seconds;value;unit",
        "",
    ],
)
def test_csv_header_problems(header: str) -> None:
    with pytest.raises(FormatError):
        csv(f"{header}\n{line(1)}\n")


def test_csv_empty_file() -> None:
    with pytest.raises(FormatError):
        csv(b"")


def test_csv_header_not_utf8() -> None:
    with pytest.raises(FormatError):
        csv(b"meter_id,channel,interval_end,interval_seconds,value,unit\xff\n")


@pytest.mark.parametrize("odd", ["\x0b", "\x0c", "\u00a0", "\u2003"])
def test_csv_field_cleaning_does_not_depend_on_other_lines(odd: str) -> None:
    target = f"M1,1.0.1.8.0.255,{END},900,1.5{odd},kWh,actual"
    neighbour = 'M1,1.0.1.8.0.255,2024-01-01T00:30:00Z,900,"2",kWh,actual'
    alone = csv(f"{HEADER}\n{target}\n")
    together = csv(f"{HEADER}\n{target}\n{neighbour}\n")
    assert fields(alone) == fields(together)


# -- JSON lines -----------------------------------------------------------------------------


def record(**changes: object) -> str:
    base: dict[str, object] = {
        "meter_id": "M1",
        "channel": "1.0.1.8.0.255",
        "interval_end": END,
        "interval_seconds": 900,
        "value": "1.5",
        "unit": "kWh",
    }
    base.update(changes)
    return json.dumps(base)


def test_jsonl_fields_as_text() -> None:
    frame = jsonl(record(quality="edited") + "\n")
    assert fields(frame) == {
        "meter_id": "M1",
        "channel": "1.0.1.8.0.255",
        "interval_end": END,
        "interval_seconds": "900",
        "value": "1.5",
        "unit": "kWh",
        "quality": "edited",
    }
    assert frame["record_no"][0] == 1
    assert frame["raw"][0] == record(quality="edited")
    assert frame["error"][0] is None


@pytest.mark.parametrize(
    ("number", "text"),
    [
        ("0.1", "0.1"),
        ("1e-3", "1e-3"),
        ("1E+2", "1E+2"),
        ("0.30000000000000004", "0.30000000000000004"),
        ("1.50", "1.50"),
        ("-0.0", "-0.0"),
        ("123456789012345678901234567890", "123456789012345678901234567890"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
    ],
)
def test_jsonl_numbers_keep_their_exact_text(number: str, text: str) -> None:
    frame = jsonl(f'{{"value": {number}, "interval_seconds": 900}}\n')
    assert frame["value"][0] == text
    assert frame["interval_seconds"][0] == "900"
    assert frame["error"][0] is None


def test_jsonl_null_and_missing_fields_are_null() -> None:
    frame = jsonl('{"meter_id": "M1", "value": null, "quality": "  "}\n')
    assert frame["value"][0] is None
    assert frame["quality"][0] is None  # blank text is missing
    assert frame["unit"][0] is None
    assert frame["error"][0] is None


@pytest.mark.parametrize(
    "text",
    [
        record(value=True),
        record(value=[1]),
        record(meter_id={"id": "M1"}),
        record(quality=False),
        record(comment="hello"),  # unknown key
        "[1, 2, 3]",
        '"M1"',
        "42",
        "null",
        '{"meter_id": "M1",',
        "{bad json}",
        "not json at all",
        "[" * 100_000,  # nesting too deep
    ],
)
def test_jsonl_malformed_rows(text: str) -> None:
    frame = jsonl(f"{record()}\n{text}\n{record(value='2')}\n")
    assert frame["record_no"].to_list() == [1, 2, 3]
    assert frame["error"].to_list() == [None, "MALFORMED_ROW", None]
    assert frame["error_detail"][1]
    assert frame["raw"][1] == text
    assert frame["value"][0] == "1.5"
    assert frame["value"][2] == "2"


def test_jsonl_blank_lines_crlf_and_line_numbers_across_blocks() -> None:
    lines = [record(value=str(i)) for i in range(1, 31)]
    lines[4] = ""
    lines[12] = "  "
    data = "\r\n".join(lines) + "\r\n"
    frame = jsonl(data, block_bytes=50)
    expected = [n for n in range(1, 31) if n not in (5, 13)]
    assert frame["record_no"].to_list() == expected
    assert frame["value"].to_list() == [str(n) for n in expected]
    assert frame["error"].null_count() == len(expected)
    assert all(not raw.endswith("\r") for raw in frame["raw"].to_list())


def test_jsonl_non_utf8_line() -> None:
    data = (
        (record() + "\n").encode() + b'{"meter_id": "\xff"}\n' + (record(value="2") + "\n").encode()
    )
    frame = jsonl(data)
    assert frame["error"].to_list() == [None, "MALFORMED_ROW", None]
    assert "UTF-8" in frame["error_detail"][1]
    assert frame["value"].to_list()[::2] == ["1.5", "2"]


def test_jsonl_empty_input() -> None:
    assert jsonl(b"").height == 0


def test_jsonl_lone_surrogate_is_a_malformed_row() -> None:
    frame = jsonl(record() + "\n" + '{"meter_id": "\\ud800"}\n')
    assert frame["error"].to_list() == [None, "MALFORMED_ROW"]
