"""Exact quantities: decimal text to integer milli-units and back, never rounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterledger.core.errors import InputError
from meterledger.core.units import BaseUnit, Quantity, Unit, milli_from_text, text_from_milli

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def test_every_unit_has_a_base_and_a_power_of_ten() -> None:
    expected = {
        Unit.WH: (BaseUnit.WH, 1_000, 3),
        Unit.KWH: (BaseUnit.WH, 1_000_000, 6),
        Unit.MWH: (BaseUnit.WH, 1_000_000_000, 9),
        Unit.VARH: (BaseUnit.VARH, 1_000, 3),
        Unit.KVARH: (BaseUnit.VARH, 1_000_000, 6),
        Unit.LITRE: (BaseUnit.LITRE, 1_000, 3),
        Unit.CUBIC_METRE: (BaseUnit.LITRE, 1_000_000, 6),
    }
    assert set(expected) == set(Unit)
    for unit, (base, milli, decimals) in expected.items():
        assert (unit.base, unit.milli_per_unit, unit.decimals) == (base, milli, decimals)


@pytest.mark.parametrize(
    ("text", "unit", "milli"),
    [
        ("1", Unit.WH, 1_000),
        ("0.001", Unit.WH, 1),
        ("2.5", Unit.WH, 2_500),
        ("0.000001", Unit.KWH, 1),
        ("1.5", Unit.KWH, 1_500_000),
        ("0.1", Unit.KWH, 100_000),
        ("1.5", Unit.MWH, 1_500_000_000),
        ("0.000000001", Unit.MWH, 1),
        ("3", Unit.VARH, 3_000),
        ("0.25", Unit.KVARH, 250_000),
        ("0.001", Unit.LITRE, 1),
        ("12.345", Unit.LITRE, 12_345),
        ("2", Unit.CUBIC_METRE, 2_000_000),
        ("0.000001", Unit.CUBIC_METRE, 1),
        ("-1.25", Unit.KWH, -1_250_000),
        ("+1.25", Unit.KWH, 1_250_000),
        ("-0", Unit.KWH, 0),
        ("0", Unit.MWH, 0),
        (" 7 ", Unit.WH, 7_000),
        ("1.000000000", Unit.KWH, 1_000_000),  # trailing zeros past the limit are exact
        ("9223372036854775.807", Unit.WH, 2**63 - 1),
    ],
)
def test_milli_from_text_is_exact(text: str, unit: Unit, milli: int) -> None:
    result = milli_from_text(text, unit)
    assert result == milli
    assert type(result) is int


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("0.0001", Unit.WH),
        ("0.0000001", Unit.KWH),
        ("1.0000005", Unit.KWH),
        ("0.0000000001", Unit.MWH),
        ("0.0005", Unit.VARH),
        ("0.0000001", Unit.KVARH),
        ("0.0001", Unit.LITRE),
        ("0.0000001", Unit.CUBIC_METRE),
        ("1e-7", Unit.KWH),
    ],
)
def test_milli_from_text_refuses_finer_than_one_milli_unit(text: str, unit: Unit) -> None:
    with pytest.raises(InputError):
        milli_from_text(text, unit)


@pytest.mark.parametrize(
    "text",
    [
        "NaN",
        "nan",
        "sNaN",
        "inf",
        "-Infinity",
        "abc",
        "",
        " ",
        "1.2.3",
        "1,5",
        "0x10",
        "1e3",
        "1_000",
        "\u0661",
    ],
)
def test_milli_from_text_refuses_non_numbers(text: str) -> None:
    with pytest.raises(InputError):
        milli_from_text(text, Unit.KWH)


def test_milli_from_text_never_rounds_long_values() -> None:
    with pytest.raises(InputError):
        milli_from_text("1000000000000000000000000.0001", Unit.WH)


@pytest.mark.parametrize(
    ("milli", "unit", "text"),
    [
        (0, Unit.KWH, "0"),
        (1, Unit.KWH, "0.000001"),
        (1_500_000, Unit.KWH, "1.5"),
        (1_000_000, Unit.KWH, "1"),
        (-250, Unit.WH, "-0.25"),
        (2_000_000, Unit.CUBIC_METRE, "2"),
        (1_500_000_000, Unit.MWH, "1.5"),
        (10, Unit.LITRE, "0.01"),
        (12_000, Unit.WH, "12"),
    ],
)
def test_text_from_milli(milli: int, unit: Unit, text: str) -> None:
    assert text_from_milli(milli, unit) == text


@given(INT64, st.sampled_from(list(Unit)))
def test_text_from_milli_round_trips(milli: int, unit: Unit) -> None:
    text = text_from_milli(milli, unit)
    assert "e" not in text.lower()
    assert milli_from_text(text, unit) == milli


@given(st.integers(min_value=-(10**12), max_value=10**12), st.integers(0, 9))
def test_decimal_text_with_any_scale_is_exact_or_refused(digits: int, scale: int) -> None:
    sign = "-" if digits < 0 else ""
    body = str(abs(digits)).rjust(scale + 1, "0")
    text = sign + (body[: len(body) - scale] + "." + body[len(body) - scale :] if scale else body)
    for unit in Unit:
        fits = digits % 10 ** max(scale - unit.decimals, 0) == 0
        if fits:
            assert milli_from_text(text, unit) * 10**scale == digits * unit.milli_per_unit
        else:
            with pytest.raises(InputError):
                milli_from_text(text, unit)


def test_text_from_milli_is_exact_for_long_integers() -> None:
    milli = 10**30 + 1
    assert text_from_milli(milli, Unit.KWH) == "1000000000000000000000000.000001"


def test_quantity_parse_and_text() -> None:
    q = Quantity.parse("1.5", Unit.KWH)
    assert q == Quantity(1_500_000, BaseUnit.WH)
    assert q.to_text(Unit.WH) == "1500"
    assert q.to_text(Unit.MWH) == "0.0015"
    assert Quantity.parse("2", Unit.CUBIC_METRE).to_text(Unit.LITRE) == "2000"


def test_quantity_add_same_base() -> None:
    total = Quantity.parse("1.5", Unit.KWH) + Quantity.parse("500", Unit.WH)
    assert total == Quantity(2_000_000, BaseUnit.WH)


def test_quantity_refuses_mixed_bases() -> None:
    energy = Quantity(1_000, BaseUnit.WH)
    with pytest.raises(InputError):
        _ = energy + Quantity(1_000, BaseUnit.VARH)
    with pytest.raises(InputError):
        _ = energy + Quantity(1_000, BaseUnit.LITRE)
    with pytest.raises(InputError):
        energy.to_text(Unit.CUBIC_METRE)
    with pytest.raises(InputError):
        Quantity(1_000, BaseUnit.VARH).to_text(Unit.KWH)


@pytest.mark.parametrize("milli", [1.5, True, "1000", None])
def test_quantity_is_an_integer_of_milli_units(milli: object) -> None:
    with pytest.raises(InputError):
        Quantity(milli, BaseUnit.WH)  # type: ignore[arg-type]
