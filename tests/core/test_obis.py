"""OBIS codes: the dotted and reduced text forms, the 6-octet wire form, and what is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterledger.core.errors import InputError
from meterledger.core.obis import ObisCode

group = st.integers(min_value=0, max_value=255)
codes = st.builds(ObisCode, group, group, group, group, group, group)


@pytest.mark.parametrize(
    "text",
    ["1.0.1.8.0.255", "1-0:1.8.0*255", "1-0:1.8.0", "1-0:1.8.0&255", "  1.0.1.8.0.255\n"],
)
def test_parse_active_energy_import_in_every_form(text: str) -> None:
    code = ObisCode.parse(text)
    assert (code.a, code.b, code.c, code.d, code.e, code.f) == (1, 0, 1, 8, 0, 255)
    assert str(code) == "1.0.1.8.0.255"
    assert code.reduced() == "1-0:1.8.0*255"


def test_short_reduced_form_defaults_f_to_255_but_keeps_an_explicit_f() -> None:
    assert ObisCode.parse("8-0:1.0.0").f == 255
    assert ObisCode.parse("8-0:1.0.0*0").f == 0
    assert ObisCode.parse("0.0.96.1.0.0") == ObisCode(0, 0, 96, 1, 0, 0)


def test_leading_zeros_are_read_as_decimal() -> None:
    assert ObisCode.parse("001.000.001.008.000.255") == ObisCode(1, 0, 1, 8, 0)


def test_default_f_is_255() -> None:
    assert ObisCode(1, 0, 2, 8, 0) == ObisCode(1, 0, 2, 8, 0, 255)


def test_format_both_forms() -> None:
    code = ObisCode(7, 0, 3, 0, 0, 12)
    assert str(code) == "7.0.3.0.0.12"
    assert code.reduced() == "7-0:3.0.0*12"


def test_to_and_from_bytes() -> None:
    code = ObisCode(1, 0, 1, 8, 0, 255)
    assert code.to_bytes() == b"\x01\x00\x01\x08\x00\xff"
    assert ObisCode.from_bytes(b"\x01\x00\x01\x08\x00\xff") == code
    assert ObisCode.from_bytes(bytearray(b"\x00\x00\x60\x01\x00\xff")) == ObisCode(0, 0, 96, 1, 0)


@pytest.mark.parametrize("data", [b"", b"\x01\x00\x01\x08\x00", b"\x01\x00\x01\x08\x00\xff\x00"])
def test_from_bytes_needs_six_octets(data: bytes) -> None:
    with pytest.raises(InputError):
        ObisCode.from_bytes(data)


@given(codes)
def test_round_trips(code: ObisCode) -> None:
    assert ObisCode.parse(str(code)) == code
    assert ObisCode.parse(code.reduced()) == code
    assert ObisCode.from_bytes(code.to_bytes()) == code
    assert len(code.to_bytes()) == 6


@given(codes, codes)
def test_order_and_equality_follow_the_groups(x: ObisCode, y: ObisCode) -> None:
    assert (x == y) == (x.to_bytes() == y.to_bytes())
    assert (x < y) == (x.to_bytes() < y.to_bytes())


@pytest.mark.parametrize(
    "text",
    [
        "1.0.1.8.0.256",  # group out of range
        "256.0.1.8.0.255",
        "1-0:1.8.0*256",
        "-1.0.1.8.0.255",  # negative
        "1.0.-1.8.0.255",
        "1.0.1.8.0",  # five groups
        "1.0.1.8.0.255.1",  # seven groups
        "1-0:1.8",
        "1:0-1.8.0",  # separators swapped
        "1-0:1.8.0*",
        "1.0.1.8.0.2555",
        "A.0.1.8.0.255",
        "garbage",
        "1,0,1,8,0,255",
        "",
        "   ",
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InputError):
        ObisCode.parse(text)


@pytest.mark.parametrize(
    "groups",
    [(256, 0, 1, 8, 0, 255), (1, 0, 1, 8, 0, 256), (1, -1, 1, 8, 0, 255), (1, 0, 1, 8, 0, -1)],
)
def test_constructor_rejects_out_of_range(groups: tuple[int, ...]) -> None:
    with pytest.raises(InputError):
        ObisCode(*groups)


def test_constructor_rejects_non_integers() -> None:
    with pytest.raises(InputError):
        ObisCode(1, 0, 1, 8, 0, "255")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        ObisCode(1.0, 0, 1, 8, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["\u0661.0.1.8.0.255", "\uff11-0:1.8.0"])
def test_parse_rejects_non_ascii_digits(text: str) -> None:
    with pytest.raises(InputError):
        ObisCode.parse(text)
