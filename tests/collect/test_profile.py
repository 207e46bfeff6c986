"""profile.yaml and the mapping of load profile rows to interval readings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from meterledger.codec.dlms.cosem import CaptureObject, ScalerUnit, obis_bytes
from meterledger.codec.dlms.data import CosemDateTime, Data, DataType
from meterledger.codec.dlms.errors import DlmsRemoteError
from meterledger.collect.profile import (
    ChannelKind,
    RegisterSample,
    load_profile_map,
    parse_profile_map,
    profile_readings,
    to_milli,
)
from meterledger.core.errors import ConfigError
from meterledger.core.reading import Quality
from meterledger.core.time import epoch_of
from meterledger.core.units import BaseUnit

CLOCK = CaptureObject(8, obis_bytes("0.0.1.0.0.255"), 2)
STATUS = CaptureObject(1, obis_bytes("0.0.96.10.1.255"), 2)
IMPORT = CaptureObject(3, obis_bytes("1.0.1.8.0.255"), 2)
EXPORT = CaptureObject(3, obis_bytes("1.0.2.8.0.255"), 2)
T0 = datetime(2024, 1, 1, tzinfo=UTC)
WH = ScalerUnit(0, 30)


def stamp(at: datetime) -> Data:
    return Data(DataType.OCTET_STRING, CosemDateTime.from_datetime(at).to_octets())


def rows(totals: Sequence[tuple[int, int]], step: int = 900) -> list[tuple[Data, ...]]:
    """Rows of (clock, import, export) every ``step`` s from T0."""
    return [
        (stamp(T0 + timedelta(seconds=i * step)), Data.uint32(imp), Data.uint32(exp))
        for i, (imp, exp) in enumerate(totals)
    ]


def test_shipped_profile_map_loads() -> None:
    profiles = load_profile_map()
    spec = profiles.get("1.0.99.1.0.255")
    assert spec.clock == "0.0.1.0.0.255"
    assert [c.channel for c in spec.channels][:2] == ["1.0.1.8.0.255", "1.0.2.8.0.255"]
    assert all(c.kind is ChannelKind.CUMULATIVE for c in spec.channels)
    assert profiles.quality(0x80) == Quality.POWER_OUTAGE
    assert profiles.quality(0x20 | 0x04) == Quality.CLOCK_ADJUSTED | Quality.SUSPECT
    with pytest.raises(ConfigError, match="not in the profile map"):
        profiles.get("1.0.99.2.0.255")


def test_cumulative_totals_become_interval_deltas_in_milli_units() -> None:
    spec = load_profile_map().get("1.0.99.1.0.255")
    result = profile_readings(
        "M1",
        spec,
        (CLOCK, IMPORT, EXPORT),
        {"1.0.1.8.0.255": WH, "1.0.2.8.0.255": WH},
        rows([(100_000, 50), (100_005, 50), (100_012, 53)]),
        capture_period=900,
        source="dlms:M1",
    )
    imports = [r for r in result.readings if str(r.channel) == "1.0.1.8.0.255"]
    exports = [r for r in result.readings if str(r.channel) == "1.0.2.8.0.255"]
    assert [(r.interval_end, r.value) for r in imports] == [
        (T0 + timedelta(minutes=15), 5_000),
        (T0 + timedelta(minutes=30), 7_000),
    ]
    assert [r.value for r in exports] == [0, 3_000]
    assert all(r.interval_seconds == 900 and r.source == "dlms:M1" for r in result.readings)
    assert result.rows == 3 and result.gaps == 0


@pytest.mark.parametrize(
    ("raw", "scaler_unit", "milli", "base"),
    [
        (12_345, ScalerUnit(0, 30), 12_345_000, BaseUnit.WH),
        (12_345, ScalerUnit(-1, 30), 1_234_500, BaseUnit.WH),  # 1234.5 Wh
        (7, ScalerUnit(3, 30), 7_000_000, BaseUnit.WH),  # 7 kWh
        (99, ScalerUnit(-3, 30), 99, BaseUnit.WH),
        (12_345, ScalerUnit(-4, 30), 1_234, BaseUnit.WH),  # finer than mWh: floored
        (5, ScalerUnit(0, 32), 5_000, BaseUnit.VARH),
        (1_234, ScalerUnit(-3, 13), 1_234_000, BaseUnit.LITRE),  # 1.234 m3 = 1234 L
        (3, ScalerUnit(0, 19), 3_000, BaseUnit.LITRE),
    ],
)
def test_scaler_and_unit(raw: int, scaler_unit: ScalerUnit, milli: int, base: BaseUnit) -> None:
    assert to_milli(raw, scaler_unit) == (milli, base)


def test_power_units_are_refused() -> None:
    with pytest.raises(DlmsRemoteError, match="unit 27"):
        to_milli(5, ScalerUnit(0, 27))  # W: a demand, not an energy


def test_sub_milli_scalers_lose_nothing_over_the_period() -> None:
    """Floored totals differ exactly: the deltas add up to the difference of the totals."""
    spec = load_profile_map().get("1.0.99.1.0.255")
    totals = [(10_000_001 + i * 3_333, 0) for i in range(9)]
    result = profile_readings(
        "M1",
        spec,
        (CLOCK, IMPORT, EXPORT),
        {"1.0.1.8.0.255": ScalerUnit(-4, 30), "1.0.2.8.0.255": WH},
        rows(totals),
        capture_period=900,
    )
    imports = [r.value for r in result.readings if str(r.channel) == "1.0.1.8.0.255"]
    assert (
        sum(imports)
        == to_milli(totals[-1][0], ScalerUnit(-4, 30))[0]
        - to_milli(totals[0][0], ScalerUnit(-4, 30))[0]
    )
    assert set(imports) <= {333, 334}


def test_a_missing_row_leaves_a_gap_not_a_double_interval() -> None:
    spec = load_profile_map().get("1.0.99.1.0.255")
    full = rows([(100, 0), (110, 0), (125, 0), (130, 0), (150, 0)])
    del full[2]  # the 00:30 capture was lost in an outage
    result = profile_readings(
        "M1",
        spec,
        (CLOCK, IMPORT, EXPORT),
        {"1.0.1.8.0.255": WH, "1.0.2.8.0.255": WH},
        full,
        capture_period=900,
    )
    imports = [(r.interval_end, r.value) for r in result.readings if r.channel.c == 1]
    assert imports == [
        (T0 + timedelta(minutes=15), 10_000),
        (T0 + timedelta(minutes=60), 20_000),
    ]
    assert result.gaps == 1


def test_only_intervals_after_the_last_stored_are_returned() -> None:
    spec = load_profile_map().get("1.0.99.1.0.255")
    last = epoch_of(T0 + timedelta(minutes=15))
    result = profile_readings(
        "M1",
        spec,
        (CLOCK, IMPORT, EXPORT),
        {"1.0.1.8.0.255": WH, "1.0.2.8.0.255": WH},
        rows([(100, 0), (110, 0), (125, 0)]),
        capture_period=900,
        after={"1.0.1.8.0.255": last},
    )
    imports = [r.interval_end for r in result.readings if r.channel.c == 1]
    exports = [r.interval_end for r in result.readings if r.channel.c == 2]
    assert imports == [T0 + timedelta(minutes=30)]  # 00:15 is stored; its row is the baseline
    assert exports == [T0 + timedelta(minutes=15), T0 + timedelta(minutes=30)]


def test_status_column_sets_quality_flags() -> None:
    profiles = load_profile_map()
    spec = profiles.get("1.0.99.1.0.255")
    data = [
        (stamp(T0), Data.uint8(0), Data.uint32(100)),
        (stamp(T0 + timedelta(minutes=15)), Data.uint8(0x80), Data.uint32(100)),
        (stamp(T0 + timedelta(minutes=30)), Data.uint8(0), Data.uint32(104)),
    ]
    result = profile_readings(
        "M1",
        spec,
        (CLOCK, STATUS, IMPORT),
        {"1.0.1.8.0.255": WH},
        data,
        capture_period=900,
        status_quality=profiles,
    )
    assert [(r.value, r.quality) for r in result.readings] == [
        (0, Quality.POWER_OUTAGE),
        (4_000, Quality.ACTUAL),
    ]


def test_unspecified_deviation_is_read_in_the_meters_zone() -> None:
    spec = parse_profile_map(
        {"profiles": [{"obis": "1.0.99.1.0.255", "channels": [{"capture": "1.0.1.8.0.255"}]}]}
    ).profiles[0]
    vienna = ZoneInfo("Europe/Vienna")

    def local(hour: int, minute: int) -> Data:
        value = CosemDateTime.from_datetime(datetime(2024, 1, 1, hour, minute, tzinfo=vienna))
        unspecified = CosemDateTime(value.date, value.time, None, value.status)
        return Data(DataType.OCTET_STRING, unspecified.to_octets())

    result = profile_readings(
        "M1",
        spec,
        (CLOCK, IMPORT),
        {"1.0.1.8.0.255": WH},
        [(local(1, 0), Data.uint32(1)), (local(1, 15), Data.uint32(3))],
        capture_period=900,
        zone=vienna,
    )
    assert [r.interval_end for r in result.readings] == [datetime(2024, 1, 1, 0, 15, tzinfo=UTC)]


def test_a_register_in_the_wrong_unit_is_refused() -> None:
    spec = load_profile_map().get("1.0.99.1.0.255")
    with pytest.raises(DlmsRemoteError, match="varh"):
        profile_readings(
            "M1",
            spec,
            (CLOCK, IMPORT),
            {"1.0.1.8.0.255": ScalerUnit(0, 32)},
            [(stamp(T0), Data.uint32(1)), (stamp(T0 + timedelta(minutes=15)), Data.uint32(2))],
            capture_period=900,
        )


def test_interval_kind_columns_are_taken_as_they_are() -> None:
    spec = parse_profile_map(
        {
            "profiles": [
                {
                    "obis": "1.0.99.2.0.255",
                    "channels": [
                        {
                            "capture": "1.0.1.29.0.255",
                            "channel": "1.0.1.8.0.255",
                            "kind": "interval",
                        }
                    ],
                }
            ]
        }
    ).profiles[0]
    delta = CaptureObject(3, obis_bytes("1.0.1.29.0.255"), 2)
    result = profile_readings(
        "M1",
        spec,
        (CLOCK, delta),
        {"1.0.1.29.0.255": ScalerUnit(-1, 30)},
        [(stamp(T0 + timedelta(minutes=15)), Data.uint32(25))],
        capture_period=900,
    )
    assert [r.value for r in result.readings] == [2_500]
    assert result.registers == ()  # an interval column is no register


def at(minutes: int) -> int:
    return epoch_of(T0 + timedelta(minutes=minutes))


def test_each_row_of_a_cumulative_channel_is_a_register_read() -> None:
    """The totals themselves, in the deltas' milli-units (so consecutive reads differ by
    exactly the interval between them); the row after a gap is a read though it gives no
    interval, and the first row of a read opens the period."""
    spec = load_profile_map().get("1.0.99.1.0.255")
    full = rows([(100, 7), (110, 7), (125, 9), (130, 9), (150, 12)])
    del full[2]  # the 00:30 capture was lost in an outage
    result = profile_readings(
        "M1",
        spec,
        (CLOCK, IMPORT, EXPORT),
        {"1.0.1.8.0.255": ScalerUnit(-1, 30), "1.0.2.8.0.255": WH},
        full,
        capture_period=900,
    )
    assert result.registers == (
        RegisterSample("M1", "1.0.1.8.0.255", at(0), 10_000),
        RegisterSample("M1", "1.0.1.8.0.255", at(15), 11_000),
        RegisterSample("M1", "1.0.1.8.0.255", at(45), 13_000),
        RegisterSample("M1", "1.0.1.8.0.255", at(60), 15_000),
        RegisterSample("M1", "1.0.2.8.0.255", at(0), 7_000),
        RegisterSample("M1", "1.0.2.8.0.255", at(15), 7_000),
        RegisterSample("M1", "1.0.2.8.0.255", at(45), 9_000),
        RegisterSample("M1", "1.0.2.8.0.255", at(60), 12_000),
    )
    imports = [r.value for r in result.readings if r.channel.c == 1]
    assert imports == [1_000, 2_000]  # 00:15 and 01:00; 00:45 follows the gap


def test_register_reads_follow_the_last_stored_interval() -> None:
    spec = load_profile_map().get("1.0.99.1.0.255")
    result = profile_readings(
        "M1",
        spec,
        (CLOCK, IMPORT, EXPORT),
        {"1.0.1.8.0.255": WH, "1.0.2.8.0.255": WH},
        rows([(100, 0), (110, 0), (125, 0)]),
        capture_period=900,
        after={"1.0.1.8.0.255": at(15), "1.0.2.8.0.255": None},
    )
    imports = [(r.read_at, r.value) for r in result.registers if r.channel == "1.0.1.8.0.255"]
    exports = [r.read_at for r in result.registers if r.channel == "1.0.2.8.0.255"]
    assert imports == [(at(30), 125_000)]  # the baseline row at 00:15 was handed on before
    assert exports == [at(0), at(15), at(30)]


def test_a_row_marked_not_valid_gives_no_register_read() -> None:
    profiles = load_profile_map()
    spec = profiles.get("1.0.99.1.0.255")
    data = [
        (stamp(T0), Data.uint8(0), Data.uint32(100)),
        (stamp(T0 + timedelta(minutes=15)), Data.uint8(0x04), Data.uint32(999)),  # not valid
        (stamp(T0 + timedelta(minutes=30)), Data.uint8(0x80), Data.uint32(104)),  # power down
        (stamp(T0 + timedelta(minutes=45)), Data.uint8(0x02), Data.uint32(105)),  # bad clock
    ]
    result = profile_readings(
        "M1",
        spec,
        (CLOCK, STATUS, IMPORT),
        {"1.0.1.8.0.255": WH},
        data,
        capture_period=900,
        status_quality=profiles,
    )
    assert [(r.read_at, r.value) for r in result.registers] == [(at(0), 100_000), (at(30), 104_000)]
    flags = [Quality.SUSPECT, Quality.POWER_OUTAGE, Quality.SUSPECT]
    assert [r.quality for r in result.readings] == flags  # the intervals are still handed on


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "missing"),
        ({"profiles": []}, "non-empty"),
        ({"profiles": [{"obis": "x", "channels": [{"capture": "1.0.1.8.0.255"}]}]}, "OBIS"),
        (
            {"profiles": [{"obis": "1.0.99.1.0.255", "channels": [{"capture": "1.0.9.9.9.255"}]}]},
            "catalogue",
        ),
        (
            {
                "profiles": [
                    {
                        "obis": "1.0.99.1.0.255",
                        "channels": [{"capture": "1.0.1.8.0.255", "kind": "x"}],
                    }
                ]
            },
            "kind",
        ),
        ({"profiles": [{"obis": "1.0.99.1.0.255", "channels": []}]}, "non-empty"),
        ({"profiles": [{"obis": "1.0.99.1.0.255", "chanels": []}]}, "unknown"),
    ],
)
def test_bad_profile_maps_are_config_errors(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_profile_map(data)


def test_unreadable_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_profile_map(tmp_path / "absent.yaml")
