"""The simulated meter's COSEM objects, with values a reader can check by hand."""

from __future__ import annotations

import hashlib
import hmac
import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from meterledger.codec.dlms.apdu_selective import (
    CaptureObjectDefinition,
    entry_access,
    range_access,
)
from meterledger.codec.dlms.codes import ActionResult, DataAccessResult
from meterledger.codec.dlms.cosem import (
    ClassId,
    ScalerUnit,
    clock_value,
    obis_bytes,
    parse_buffer,
    parse_capture_objects,
    parse_object_list,
    parse_scaler_unit,
)
from meterledger.codec.dlms.data import CosemDateTime, Data, DataType
from meterledger.codec.dlms.keywrap import KeyId, key_transfer_data, wrap_keys
from meterledger.simulate.dlms_meter import (
    CLOCK,
    EXPORT_REGISTER,
    IMPORT_REGISTER,
    LOAD_PROFILE,
    METER_SERIAL,
    SECURITY_SETUP,
    SimulatedDlmsMeter,
    keys_for,
    system_title_for,
)
from meterledger.simulate.loadshapes import LoadKind

START = datetime(2024, 1, 1, tzinfo=UTC)
INITIAL = 1_000_000  # Wh on the import register at START


class Now:
    """A settable simulator clock."""

    def __init__(self, value: datetime) -> None:
        self.value = value

    def __call__(self) -> datetime:
        return self.value


def meter(now: Now | None = None, **kwargs: object) -> SimulatedDlmsMeter:
    options: dict[str, object] = {
        "seed": 7,
        "start": START,
        "days": 1,
        "initial_wh": INITIAL,
        "daily_kwh": 24.0,
    }
    options.update(kwargs)
    return SimulatedDlmsMeter("MTR-00001", clock=now, **options)  # type: ignore[arg-type]


def value(result: Data | DataAccessResult) -> Data:
    assert isinstance(result, Data), result
    return result


def rows(m: SimulatedDlmsMeter, access: object = None) -> list[tuple[datetime, int]]:
    data = value(m.get(ClassId.PROFILE_GENERIC, LOAD_PROFILE, 2, access))  # type: ignore[arg-type]
    out = []
    for row in parse_buffer(data):
        out.append((clock_value(row[0]).time.astimezone(UTC), row[1].value))
    return out  # type: ignore[return-value]


def at(hour: int, minute: int = 0) -> datetime:
    return START + timedelta(hours=hour, minutes=minute)


# -- clock ---------------------------------------------------------------------------------


def test_clock_is_simulator_now_plus_drift() -> None:
    # Six seconds a day fast, ten days after the meter was set: one minute ahead.
    now = Now(START + timedelta(days=10))
    m = meter(now, clock_drift_s_per_day=6.0)
    data = value(m.get(ClassId.CLOCK, CLOCK, 2))
    assert data.type is DataType.OCTET_STRING
    # 2024-01-11 (a Thursday, 4) 00:01:00.00, deviation 0, status 0
    assert data.value == bytes.fromhex("07e8010b0400010000000000")
    assert clock_value(data).time == datetime(2024, 1, 11, 0, 1, tzinfo=UTC)


def test_clock_in_local_time_with_deviation_and_dst_status() -> None:
    now = Now(datetime(2024, 7, 1, 10, 0, tzinfo=UTC))
    m = SimulatedDlmsMeter(
        "MTR-00002",
        seed=1,
        start=datetime(2024, 6, 30, tzinfo=UTC),
        days=1,
        tz="Europe/Paris",
        clock=now,
    )
    clock = value(m.get(8, CLOCK, 2))
    # 12:00 CEST: deviation -120 (0xFF88), status 0x80 (daylight saving active)
    assert clock.value == bytes.fromhex("07e80701010c000000ff8880")
    assert value(m.get(8, CLOCK, 3)) == Data(DataType.LONG, -60)  # CET, standard time
    assert value(m.get(8, CLOCK, 4)) == Data.uint8(0x80)
    begin, end = value(m.get(8, CLOCK, 5)), value(m.get(8, CLOCK, 6))
    assert begin.value == bytes.fromhex("07e8031f07020000008000ff")  # 31 Mar 02:00
    assert end.value == bytes.fromhex("07e80a1b07030000008000ff")  # 27 Oct 03:00
    assert value(m.get(8, CLOCK, 7)) == Data.int8(60)
    assert value(m.get(8, CLOCK, 8)) == Data(DataType.BOOLEAN, True)


def test_utc_meter_has_no_daylight_saving() -> None:
    m = meter()
    assert value(m.get(8, CLOCK, 8)) == Data(DataType.BOOLEAN, False)
    assert value(m.get(8, CLOCK, 5)).value == bytes.fromhex("ffffffffffffffffff8000ff")


def test_set_clock_then_drift_continues_from_there() -> None:
    now = Now(at(12))
    m = meter(now, clock_drift_s_per_day=-86.4)  # loses 1 s every 1000 s
    target = CosemDateTime.from_datetime(datetime(2024, 1, 1, 12, 30, tzinfo=UTC))
    assert m.set(8, CLOCK, 2, Data.date_time_octets(target)) is DataAccessResult.SUCCESS
    assert clock_value(value(m.get(8, CLOCK, 2))).time == at(12, 30)
    now.value = at(12) + timedelta(seconds=1000)
    assert clock_value(value(m.get(8, CLOCK, 2))).time == at(12, 30) + timedelta(seconds=999)


def test_set_clock_refuses_other_attributes_and_bad_values() -> None:
    m = meter()
    assert m.set(8, CLOCK, 3, Data(DataType.LONG, 0)) is DataAccessResult.READ_WRITE_DENIED
    assert m.set(8, CLOCK, 2, Data.octets(b"short")) is DataAccessResult.TYPE_UNMATCHED
    assert m.set(3, IMPORT_REGISTER, 2, Data.uint32(0)) is DataAccessResult.READ_WRITE_DENIED


def test_shift_time_and_adjust_to_minute() -> None:
    now = Now(at(6))
    m = meter(now)
    shift = Data(DataType.LONG, 45)
    assert m.action(8, CLOCK, 6, shift) == (ActionResult.SUCCESS, None)
    assert m.meter_time() == at(6) + timedelta(seconds=45)
    assert m.action(8, CLOCK, 3, Data.int8(0)) == (ActionResult.SUCCESS, None)
    assert m.meter_time() == at(6, 1)  # 06:00:45 rounds to 06:01
    assert m.action(8, CLOCK, 6, Data(DataType.LONG, 901))[0] is ActionResult.OTHER_REASON
    assert m.action(8, CLOCK, 6, Data.int8(1))[0] is ActionResult.TYPE_UNMATCHED


# -- registers and profile -----------------------------------------------------------------


def test_register_scaler_unit_and_value_at_end_of_profile() -> None:
    m = meter()
    assert parse_scaler_unit(value(m.get(3, IMPORT_REGISTER, 3))) == ScalerUnit(0, 30)
    energy = m.profile.import_wh
    assert len(energy) == 96
    assert value(m.get(3, IMPORT_REGISTER, 2)) == Data.uint32(INITIAL + sum(energy))
    assert value(m.get(3, EXPORT_REGISTER, 2)) == Data.uint32(0)


def test_register_advances_pro_rata_within_an_interval() -> None:
    now = Now(START + timedelta(seconds=900 + 300))  # a third into the second interval
    m = meter(now)
    first, second = m.profile.import_wh[:2]
    assert m.register_wh(IMPORT_REGISTER) == INITIAL + first + second // 3


def test_profile_rows_are_cumulative_and_agree_with_the_register() -> None:
    m = meter()
    buffer = rows(m)
    assert len(buffer) == 96
    assert buffer[0] == (at(0, 15), INITIAL + m.profile.import_wh[0])
    assert buffer[-1] == (at(24), m.register_wh(IMPORT_REGISTER))
    deltas = [b[1] - a[1] for a, b in itertools.pairwise(buffer)]
    assert deltas == list(m.profile.import_wh[1:])
    assert all(b[0] - a[0] == timedelta(minutes=15) for a, b in itertools.pairwise(buffer))


def test_profile_is_deterministic_and_realistic() -> None:
    a, b = meter(), meter()
    assert a.profile.import_total == b.profile.import_total
    other = meter(seed=8)
    assert other.profile.import_wh != a.profile.import_wh
    # 24 kWh on a mild weekday; New Year's Day is a holiday in the heating season.
    assert 24_000 < sum(a.profile.import_wh) < 40_000


def test_profile_attributes() -> None:
    now = Now(at(10))
    m = meter(now)
    columns = parse_capture_objects(value(m.get(7, LOAD_PROFILE, 3)))
    assert [(c.class_id, c.obis, c.attribute) for c in columns] == [
        (8, "0.0.1.0.0.255", 2),
        (3, "1.0.1.8.0.255", 2),
    ]
    assert value(m.get(7, LOAD_PROFILE, 4)) == Data.uint32(900)
    assert value(m.get(7, LOAD_PROFILE, 7)) == Data.uint32(40)  # captures 00:15 .. 10:00
    assert value(m.get(7, LOAD_PROFILE, 8)) == Data.uint32(96)
    assert len(rows(m)) == 40  # the buffer holds no capture from the future


def test_range_access_is_inclusive_at_both_ends() -> None:
    m = meter()
    got = rows(m, range_access(at(1), at(2)))
    assert [t for t, _ in got] == [at(1), at(1, 15), at(1, 30), at(1, 45), at(2)]
    inside = rows(m, range_access(at(1, 1), at(1, 59)))
    assert [t for t, _ in inside] == [at(1, 15), at(1, 30), at(1, 45)]
    assert rows(m, range_access(at(1, 1), at(1, 14))) == []
    assert rows(m, range_access(START - timedelta(days=3), at(0, 30))) == rows(m)[:2]


def test_range_access_with_local_times_and_columns() -> None:
    m = meter(tz="America/New_York")
    # 19:30 EST (deviation 300) is 00:30 UTC.
    got = rows(m, range_access(at(0, 15), datetime(2023, 12, 31, 19, 30, tzinfo=m.zone)))
    assert [t for t, _ in got] == [at(0, 15), at(0, 30)]
    # Deviation not specified: the meter reads the bound as its own local time.
    local = CosemDateTime.from_datetime(datetime(2023, 12, 31, 19, 45, tzinfo=m.zone))
    unspecified = Data.date_time_octets(replace(local, deviation=None))
    got = rows(m, range_access(at(0, 15), unspecified))
    assert [t for t, _ in got] == [at(0, 15), at(0, 30), at(0, 45)]
    # Buffer capture times are stamped in local time: 19:15 EST for 00:15 UTC.
    first = parse_buffer(value(m.get(7, LOAD_PROFILE, 2)))[0][0]
    assert first.value == bytes.fromhex("07e70c1f07130f0000012c00")
    only_energy = range_access(
        at(0, 15), at(0, 30), selected_values=(CaptureObjectDefinition(3, IMPORT_REGISTER, 2),)
    )
    data = value(m.get(7, LOAD_PROFILE, 2, only_energy))
    assert [len(row) for row in parse_buffer(data)] == [1, 1]


def test_range_by_another_object_is_refused() -> None:
    m = meter()
    access = range_access(
        at(1), at(2), restricting_object=CaptureObjectDefinition(3, IMPORT_REGISTER, 2)
    )
    assert m.get(7, LOAD_PROFILE, 2, access) is DataAccessResult.OBJECT_UNAVAILABLE


def test_entry_access() -> None:
    m = meter()
    everything = rows(m)
    assert rows(m, entry_access(2, 3)) == everything[1:3]
    assert rows(m, entry_access(95)) == everything[94:]
    data = value(m.get(7, LOAD_PROFILE, 2, entry_access(1, 2, 2, 2)))
    assert parse_buffer(data) == (
        (Data.uint32(everything[0][1]),),
        (Data.uint32(everything[1][1]),),
    )


def test_outage_leaves_missing_rows_and_a_flat_register() -> None:
    m = meter(outages=[(at(1), at(2))])
    buffer = rows(m)
    times = [t for t, _ in buffer]
    assert len(buffer) == 92
    for missing in (at(1, 15), at(1, 30), at(1, 45), at(2)):
        assert missing not in times
    before = dict(buffer)[at(1)]
    after = dict(buffer)[at(2, 15)]
    assert after - before == m.profile.import_wh[8]  # only the 02:00-02:15 interval counts
    assert m.profile.import_wh[4:8] == (0, 0, 0, 0)


def test_solar_meter_captures_export() -> None:
    m = meter(pv_kw=6.0, start=datetime(2024, 6, 1, tzinfo=UTC))
    assert len(m.capture_objects()) == 3
    data = value(m.get(7, LOAD_PROFILE, 2))
    noon = [row for row in parse_buffer(data) if clock_value(row[0]).time.hour == 12]
    assert noon[0][2].value > 0  # type: ignore[operator]
    assert value(m.get(3, EXPORT_REGISTER, 2)).value == sum(m.profile.export_wh)


# -- other objects -------------------------------------------------------------------------


def test_serial_and_unknown_objects() -> None:
    m = meter()
    assert value(m.get(1, METER_SERIAL, 2)) == Data.octets(b"MTR-00001")
    assert value(m.get(1, METER_SERIAL, 1)) == Data.octets(METER_SERIAL)
    assert m.get(1, obis_bytes("1.0.32.7.0.255"), 2) is DataAccessResult.OBJECT_UNDEFINED
    assert m.get(3, METER_SERIAL, 2) is DataAccessResult.OBJECT_CLASS_INCONSISTENT
    assert m.get(1, METER_SERIAL, 9) is DataAccessResult.OBJECT_UNAVAILABLE
    assert m.get(3, IMPORT_REGISTER, 2, entry_access(1)) is DataAccessResult.OBJECT_UNAVAILABLE


def test_object_list_names_every_object_with_rights() -> None:
    m = meter()
    entries = parse_object_list(value(m.get(15, obis_bytes("0.0.40.0.0.255"), 2)))
    assert {(e.class_id, e.obis) for e in entries} == {
        (15, "0.0.40.0.0.255"),
        (8, "0.0.1.0.0.255"),
        (1, "0.0.42.0.0.255"),
        (1, "0.0.96.1.0.255"),
        (3, "1.0.1.8.0.255"),
        (3, "1.0.2.8.0.255"),
        (7, "1.0.99.1.0.255"),
        (64, "0.0.43.0.0.255"),
    }
    clock = next(e for e in entries if e.class_id == 8)
    assert dict(clock.attribute_access)[2] == 3  # read-write
    assert dict(clock.method_access)[6] is True
    assert entries == m.object_list()


# -- keys ----------------------------------------------------------------------------------


def test_keys_follow_the_documented_derivation() -> None:
    keys = keys_for(3, 42)
    expected = hmac.new(b"meterledger-simulator", b"42/3/0/ek", hashlib.sha256).digest()[:16]
    assert keys.ek == expected
    lls = hmac.new(b"meterledger-simulator", b"42/3/0/lls", hashlib.sha256).hexdigest()
    assert keys.password == lls[:16].encode()
    assert keys.system_title == b"MLS\x00\x00\x00\x00\x03" == system_title_for(3)
    assert len({keys.ek, keys.ak, keys.kek, keys.broadcast_ek}) == 4
    assert keys_for(3, 42) == keys
    assert keys_for(4, 42).ek != keys.ek
    assert keys_for(3, 42, generation=1).ek != keys.ek
    assert keys_for(3, 42, generation=1).system_title == keys.system_title


def test_security_setup_attributes() -> None:
    m = meter(index=5, security_policy=3)
    assert value(m.get(64, SECURITY_SETUP, 2)) == Data.enum(3)
    assert value(m.get(64, SECURITY_SETUP, 3)) == Data.enum(0)
    assert value(m.get(64, SECURITY_SETUP, 5)) == Data.octets(system_title_for(5))


def test_key_transfer_replaces_keys_wrapped_with_the_master_key() -> None:
    m = meter(index=2)
    old = m.keys
    new_ek, new_ak = bytes(range(16)), bytes(range(16, 32))
    wrapped = wrap_keys(
        old.kek, [(KeyId.GLOBAL_UNICAST_ENCRYPTION, new_ek), (KeyId.AUTHENTICATION, new_ak)]
    )
    result = m.action(64, SECURITY_SETUP, 2, key_transfer_data(wrapped))
    assert result == (ActionResult.SUCCESS, None)
    assert (m.keys.ek, m.keys.ak, m.keys.kek) == (new_ek, new_ak, old.kek)


def test_key_transfer_with_a_wrong_master_key_changes_nothing() -> None:
    m = meter()
    old = m.keys
    wrapped = wrap_keys(bytes(16), [(KeyId.GLOBAL_UNICAST_ENCRYPTION, bytes(range(16)))])
    result = m.action(64, SECURITY_SETUP, 2, key_transfer_data(wrapped))
    assert result == (ActionResult.OTHER_REASON, None)
    assert m.keys == old
    assert m.action(64, SECURITY_SETUP, 2, Data.uint8(1))[0] is ActionResult.TYPE_UNMATCHED
    assert m.action(64, SECURITY_SETUP, 1, Data.enum(3))[0] is ActionResult.READ_WRITE_DENIED


@pytest.mark.parametrize("kind", list(LoadKind))
def test_kinds_build(kind: LoadKind) -> None:
    m = SimulatedDlmsMeter("MTR-00009", seed=1, kind=kind, start=START, days=2)
    assert len(rows(m)) == 192
