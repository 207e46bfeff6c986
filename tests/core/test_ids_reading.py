"""Meter ids, the channel catalogue, quality flags and the reading record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterledger.core.errors import InputError
from meterledger.core.ids import (
    CHANNEL_CATALOG,
    MeterId,
    MeterStatus,
    Service,
    channels_for_service,
    is_valid_meter_id,
)
from meterledger.core.obis import ObisCode
from meterledger.core.reading import Quality, Reading, quality_rank
from meterledger.core.units import BaseUnit, Unit

END = datetime(2024, 1, 1, 0, 15, tzinfo=UTC)

# -- meter ids ------------------------------------------------------------------------------

GOOD_IDS = [
    "M1",
    "a",
    "7",
    "SN-0042",
    "meter.01",
    "feeder:7/M_2",
    "X" + "y" * 63,  # 64 characters
    "5B1E3F0A-6C2D-4E8B-9A71-2D3C4B5A6F70",
]
BAD_IDS = [
    "",
    "M 1",
    " M1",
    "M1 ",
    "M,1",
    "M;1",
    "-M1",
    ".M1",
    "_M1",
    "X" + "y" * 64,  # 65 characters
    "M\t1",
    "M\x001",
    "Mé1",
    "M\u00a01",
]


@pytest.mark.parametrize("text", GOOD_IDS)
def test_good_meter_ids(text: str) -> None:
    assert is_valid_meter_id(text)
    assert str(MeterId(text)) == text


@pytest.mark.parametrize("text", BAD_IDS)
def test_bad_meter_ids(text: str) -> None:
    assert not is_valid_meter_id(text)
    with pytest.raises(InputError):
        MeterId(text)


@pytest.mark.parametrize("text", ["M1\n", "X" + "y" * 63 + "\n"])
def test_meter_id_with_trailing_newline_is_malformed(text: str) -> None:
    assert not is_valid_meter_id(text)


def test_meter_id_refuses_non_text() -> None:
    with pytest.raises(InputError):
        MeterId(42)  # type: ignore[arg-type]


def test_meter_ids_order_by_text() -> None:
    assert sorted([MeterId("M2"), MeterId("M10"), MeterId("A1")]) == [
        MeterId("A1"),
        MeterId("M10"),
        MeterId("M2"),
    ]


@given(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:/\-]{0,63}\Z"))
def test_generated_valid_ids_are_accepted(text: str) -> None:
    assert MeterId(text).value == text


# -- channel catalogue ----------------------------------------------------------------------


def test_catalogue_is_keyed_by_dotted_obis() -> None:
    for key, spec in CHANNEL_CATALOG.items():
        assert key == str(spec.obis)
        assert ObisCode.parse(key) == spec.obis


@pytest.mark.parametrize(
    ("obis", "base", "service", "negative"),
    [
        ("1.0.1.8.0.255", BaseUnit.WH, Service.ELECTRIC, False),
        ("1.0.2.8.0.255", BaseUnit.WH, Service.ELECTRIC, False),
        ("1.0.16.8.0.255", BaseUnit.WH, Service.ELECTRIC, True),
        ("1.0.3.8.0.255", BaseUnit.VARH, Service.ELECTRIC, False),
        ("1.0.4.8.0.255", BaseUnit.VARH, Service.ELECTRIC, False),
        ("8.0.1.0.0.255", BaseUnit.LITRE, Service.WATER, False),
        ("7.0.3.0.0.255", BaseUnit.LITRE, Service.GAS, False),
    ],
)
def test_catalogue_entries(obis: str, base: BaseUnit, service: Service, negative: bool) -> None:
    spec = CHANNEL_CATALOG[obis]
    assert (spec.base, spec.service, spec.allows_negative) == (base, service, negative)


def test_only_the_net_channel_may_go_negative() -> None:
    assert [k for k, s in CHANNEL_CATALOG.items() if s.allows_negative] == ["1.0.16.8.0.255"]


def test_unknown_obis_is_not_in_the_catalogue() -> None:
    assert "1.0.32.7.0.255" not in CHANNEL_CATALOG


def test_channels_for_service() -> None:
    electric = {str(s.obis) for s in channels_for_service(Service.ELECTRIC)}
    assert electric == {
        "1.0.1.8.0.255",
        "1.0.2.8.0.255",
        "1.0.16.8.0.255",
        "1.0.3.8.0.255",
        "1.0.4.8.0.255",
    }
    assert [str(s.obis) for s in channels_for_service(Service.WATER)] == ["8.0.1.0.0.255"]
    assert [str(s.obis) for s in channels_for_service(Service.GAS)] == ["7.0.3.0.0.255"]


def test_service_defaults() -> None:
    assert Service.ELECTRIC.default_unit is Unit.KWH
    assert Service.WATER.default_unit is Unit.LITRE
    assert Service.GAS.default_unit is Unit.CUBIC_METRE
    for service in Service:
        assert service.default_unit.base is channels_for_service(service)[0].base
    assert Service.ELECTRIC.default_capacity_milli_per_hour == 1_000_000_000  # 1 MW in mWh/h
    assert Service.WATER.default_capacity_milli_per_hour == 100_000_000  # 100 m3/h in mL/h
    assert Service.GAS.default_capacity_milli_per_hour == 1_000_000_000  # 1000 m3/h in mL/h
    assert {s.value for s in MeterStatus} == {"active", "inactive", "retired"}


# -- quality flags ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "flags"),
    [
        (None, Quality.ACTUAL),
        ("", Quality.ACTUAL),
        ("  ", Quality.ACTUAL),
        ("actual", Quality.ACTUAL),
        ("ACTUAL", Quality.ACTUAL),
        ("estimated", Quality.ESTIMATED),
        ("estimated:linear", Quality.ESTIMATED | Quality.EST_LINEAR),
        ("estimated:like-day", Quality.ESTIMATED | Quality.EST_LIKE_DAY),
        ("estimated:register", Quality.ESTIMATED | Quality.EST_REGISTER),
        ("edited", Quality.EDITED),
        ("power-outage", Quality.POWER_OUTAGE),
        ("clock-adjusted", Quality.CLOCK_ADJUSTED),
        ("suspect", Quality.SUSPECT),
        (
            "estimated:linear|power-outage",
            Quality.ESTIMATED | Quality.EST_LINEAR | Quality.POWER_OUTAGE,
        ),
        (" Edited | Suspect ", Quality.EDITED | Quality.SUSPECT),
    ],
)
def test_quality_parse(text: str | None, flags: Quality) -> None:
    assert Quality.parse(text) == flags


@pytest.mark.parametrize(
    "text",
    [
        "estimated:linear|power-outage",
        "actual",
        "estimated",
        "estimated:like-day|edited|clock-adjusted|suspect",
        "edited|power-outage",
        "estimated:register|suspect",
    ],
)
def test_quality_text_round_trip(text: str) -> None:
    assert Quality.parse(text).to_text() == text


PARSEABLE = st.sampled_from(
    [None, "estimated", "estimated:linear", "estimated:like-day", "estimated:register"]
)


@given(PARSEABLE, st.sets(st.sampled_from(["edited", "power-outage", "clock-adjusted", "suspect"])))
def test_quality_round_trip_property(method: str | None, plain: set[str]) -> None:
    parts = ([method] if method else []) + sorted(plain)
    flags = Quality.parse("|".join(parts))
    assert Quality.parse(flags.to_text()) == flags


@pytest.mark.parametrize(
    "text", ["good", "estimated:cubic", "actual|", "|edited", "estimated linear", "edited,suspect"]
)
def test_quality_unknown_flag(text: str) -> None:
    with pytest.raises(InputError):
        Quality.parse(text)


def test_quality_rank_orders_edited_actual_estimated() -> None:
    assert quality_rank(Quality.EDITED) == 3
    assert quality_rank(Quality.ACTUAL) == 2
    assert quality_rank(Quality.ESTIMATED | Quality.EST_LINEAR) == 1
    assert quality_rank(Quality.EDITED | Quality.ESTIMATED) == 3  # an edited estimate is final
    assert quality_rank(Quality.POWER_OUTAGE | Quality.SUSPECT) == 2
    assert (
        quality_rank(Quality.EDITED)
        > quality_rank(Quality.ACTUAL)
        > quality_rank(Quality.ESTIMATED)
    )
    assert quality_rank(int(Quality.ESTIMATED | Quality.POWER_OUTAGE)) == 1


# -- the reading record ---------------------------------------------------------------------


def make(**changes: object) -> Reading:
    fields: dict[str, object] = {
        "meter_id": "M1",
        "channel": ObisCode(1, 0, 1, 8, 0),
        "interval_end": END,
        "interval_seconds": 900,
        "value": 1_500_000,
    }
    fields.update(changes)
    return Reading(**fields)  # type: ignore[arg-type]


def test_reading_defaults_and_natural_key() -> None:
    reading = make()
    assert reading.quality is Quality.ACTUAL
    assert reading.natural_key == ("M1", "1.0.1.8.0.255", END)
    other_zone = END.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert make(interval_end=other_zone).natural_key == reading.natural_key


@pytest.mark.parametrize(
    "changes",
    [
        {"interval_end": datetime(2024, 1, 1, 0, 15)},  # naive
        {"value": 1.5},
        {"value": "1500000"},
        {"value": True},
        {"value": None},
        {"interval_seconds": 0},
        {"interval_seconds": -900},
        {"meter_id": "M 1"},
        {"meter_id": ""},
    ],
)
def test_reading_checks_itself(changes: dict[str, object]) -> None:
    with pytest.raises(InputError):
        make(**changes)


def test_reading_is_frozen() -> None:
    reading = make()
    with pytest.raises(AttributeError):
        reading.value = 2  # type: ignore[misc]


def test_quality_with_two_estimation_methods_is_refused() -> None:
    with pytest.raises(InputError):
        Quality.parse("estimated:linear|estimated:like-day")
