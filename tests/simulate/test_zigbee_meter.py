"""The simulated Zigbee meter: its FIFO buffer, the GetProfile end-time rule, attributes."""

from __future__ import annotations

import pytest

from meterledger.codec.zigbee import (
    AttributeRecord,
    DataType,
    GetProfile,
    MeteringAttribute,
    ProfileIntervalPeriod,
    ProfileStatus,
    ReadAttributes,
    ZclStatus,
    to_utc_time,
)
from meterledger.simulate.zigbee_meter import (
    MAX_NUMBER_OF_PERIODS_DELIVERED,
    ProfileEntry,
    ShapedLoad,
    ZigbeeMeter,
)

T0 = 1_709_269_200  # 2024-03-01T05:00:00Z, a multiple of 900
Q = 900


def filled(count: int, *, max_periods: int = 8, per_response: int = 24) -> ZigbeeMeter:
    """A meter advanced through ``count`` intervals: interval k (1-based) holds 10 k
    delivered and k received, and ends at T0 + k * Q."""
    meter = ZigbeeMeter(start=T0, max_periods=max_periods, max_periods_per_response=per_response)
    for k in range(1, count + 1):
        meter.advance(T0 + k * Q, 10 * k, k)
    return meter


def ask(
    meter: ZigbeeMeter, end: int, periods: int, channel: int = 0
) -> tuple[int, int, tuple[int | None, ...]]:
    response = meter.get_profile(GetProfile(channel, end, periods))
    return response.status, response.end_time, response.intervals


def utc(k: int) -> int:
    """The ZCL UTCTime of the end of interval k."""
    return to_utc_time(T0 + k * Q)


def test_buffer_is_fifo_and_drops_the_oldest_when_full() -> None:
    meter = filled(5)
    assert [e.interval_end for e in meter.entries] == [T0 + k * Q for k in range(1, 6)]
    meter = filled(11)
    assert len(meter.entries) == 8
    assert meter.entries[0] == ProfileEntry(T0 + 4 * Q, 40, 4)
    assert meter.entries[-1] == ProfileEntry(T0 + 11 * Q, 110, 11)


def test_partial_interval_accumulates_until_its_end() -> None:
    meter = ZigbeeMeter(start=T0)
    meter.advance(T0 + 300, 5, 1)
    meter.advance(T0 + 600, 7, 0)
    assert meter.entries == ()
    assert (meter.partial_delivered, meter.partial_received) == (12, 1)
    meter.advance(T0 + Q, 3, 2)
    assert meter.entries == (ProfileEntry(T0 + Q, 15, 3),)
    assert (meter.partial_delivered, meter.partial_received) == (0, 0)
    with pytest.raises(ValueError, match="cannot go back"):
        meter.advance(T0 + 10)


def test_end_time_zero_is_the_most_recent() -> None:
    assert ask(filled(6), 0, 3) == (ProfileStatus.SUCCESS, utc(6), (60, 50, 40))


def test_exact_interval_end_is_included() -> None:
    assert ask(filled(6), utc(4), 2) == (ProfileStatus.SUCCESS, utc(4), (40, 30))


def test_end_time_between_ends_takes_the_earlier_end() -> None:
    assert ask(filled(6), utc(4) + 450, 2) == (ProfileStatus.SUCCESS, utc(4), (40, 30))
    assert ask(filled(6), utc(5) - 1, 1) == (ProfileStatus.SUCCESS, utc(4), (40,))


def test_fewer_available_than_asked_is_success_with_what_there_is() -> None:
    assert ask(filled(6), utc(2), 10) == (ProfileStatus.SUCCESS, utc(2), (20, 10))


def test_before_the_oldest_has_no_intervals() -> None:
    meter = filled(11)  # oldest ends at interval 4
    status, end, values = ask(meter, utc(4) - 1, 3)
    assert (status, end, values) == (
        ProfileStatus.NO_INTERVALS_AVAILABLE_FOR_THE_REQUESTED_TIME,
        0,
        (),
    )
    assert ask(meter, utc(4), 3) == (ProfileStatus.SUCCESS, utc(4), (40,))
    empty = ZigbeeMeter(start=T0)
    assert ask(empty, 0, 1)[0] == ProfileStatus.NO_INTERVALS_AVAILABLE_FOR_THE_REQUESTED_TIME


def test_future_end_time_is_invalid_but_up_to_now_is_the_latest() -> None:
    meter = filled(6)
    meter.advance(T0 + 6 * Q + 100, 1, 0)  # now: 100 s into interval 7
    assert ask(meter, utc(6) + 100, 1) == (ProfileStatus.SUCCESS, utc(6), (60,))
    assert ask(meter, utc(6) + 101, 1) == (ProfileStatus.INVALID_END_TIME, 0, ())


def test_more_periods_than_one_response_holds() -> None:
    meter = filled(8, per_response=3)
    assert ask(meter, 0, 5) == (
        ProfileStatus.MORE_PERIODS_REQUESTED_THAN_CAN_BE_RETURNED,
        utc(8),
        (80, 70, 60),
    )
    assert ask(meter, 0, 3)[0] == ProfileStatus.SUCCESS


def test_channels() -> None:
    meter = filled(3)
    assert ask(meter, 0, 2, channel=1) == (ProfileStatus.SUCCESS, utc(3), (3, 2))
    assert ask(meter, 0, 2, channel=2)[0] == ProfileStatus.INTERVAL_CHANNEL_NOT_SUPPORTED
    assert ask(meter, 0, 2, channel=9)[0] == ProfileStatus.UNDEFINED_INTERVAL_CHANNEL_REQUESTED
    export_less = ZigbeeMeter(start=T0, received_channel=False)
    export_less.advance(T0 + Q, 1, 0)
    assert ask(export_less, 0, 1, channel=1)[0] == ProfileStatus.INTERVAL_CHANNEL_NOT_SUPPORTED
    assert ask(export_less, 0, 1, channel=0) == (ProfileStatus.SUCCESS, utc(1), (1,))


def test_outage_stores_invalid_intervals() -> None:
    meter = filled(2)
    meter.advance(T0 + 2 * Q + 100, 4, 0)  # power fails 100 s into interval 3
    meter.advance(T0 + 4 * Q + 300, powered=False)  # back 300 s into interval 5
    meter.advance(T0 + 5 * Q, 9, 0)
    meter.advance(T0 + 6 * Q, 11, 0)
    # 3 (partly dark), 4 (dark) and 5 (partly dark) are invalid; 6 is whole again.
    assert ask(meter, 0, 5) == (ProfileStatus.SUCCESS, utc(6), (11, None, None, None, 20))
    assert meter.summation_delivered == 10 + 20 + 4 + 9 + 11


def test_outage_ending_on_an_interval_end_spares_the_next() -> None:
    meter = filled(1)
    meter.advance(T0 + 3 * Q, powered=False)
    meter.advance(T0 + 4 * Q, 7, 0)
    assert ask(meter, 0, 4)[2] == (7, None, None, 10)


def test_advance_over_several_ends_puts_the_units_in_the_first() -> None:
    meter = ZigbeeMeter(start=T0)
    meter.advance(T0 + 3 * Q, 30, 0)
    assert [e.delivered for e in meter.entries] == [30, 0, 0]


def test_uint24_interval_overflow_is_refused() -> None:
    meter = ZigbeeMeter(start=T0)
    with pytest.raises(ValueError, match="0xFFFFFE"):
        meter.advance(T0 + 1, 0xFFFFFF)
    meter.advance(T0 + 1, 0xFFFFFE)
    assert meter.partial_delivered == 0xFFFFFE


def test_summation_wraps_at_48_bits() -> None:
    meter = ZigbeeMeter(start=T0, summation_delivered=(1 << 48) - 2)
    meter.advance(T0 + 10, 5)
    assert meter.summation_delivered == 3


def test_read_attributes_formatting_and_unknown() -> None:
    meter = ZigbeeMeter(start=T0, multiplier=2, divisor=1000, summation_delivered=123_456)
    meter.advance(T0 + 60, 17, 3)
    ids = (
        MeteringAttribute.MULTIPLIER,
        MeteringAttribute.DIVISOR,
        MeteringAttribute.UNIT_OF_MEASURE,
        MeteringAttribute.SUMMATION_FORMATTING,
        MeteringAttribute.CURRENT_SUMMATION_DELIVERED,
        MeteringAttribute.CURRENT_SUMMATION_RECEIVED,
        MeteringAttribute.PROFILE_INTERVAL_PERIOD,
        MeteringAttribute.CURRENT_PARTIAL_PROFILE_INTERVAL_VALUE_DELIVERED,
        MeteringAttribute.CURRENT_PARTIAL_PROFILE_INTERVAL_START_TIME_DELIVERED,
        MAX_NUMBER_OF_PERIODS_DELIVERED,
        0x0999,
    )
    records = meter.read_attributes(ReadAttributes(tuple(int(i) for i in ids))).records
    assert records == (
        AttributeRecord(0x0301, DataType.UINT24, 2),
        AttributeRecord(0x0302, DataType.UINT24, 1000),
        AttributeRecord(0x0300, DataType.ENUM8, 0),
        AttributeRecord(0x0303, DataType.BITMAP8, 0x33),
        AttributeRecord(0x0000, DataType.UINT48, 123_473),
        AttributeRecord(0x0001, DataType.UINT48, 3),
        AttributeRecord(0x000F, DataType.ENUM8, ProfileIntervalPeriod.MINUTES_15),
        AttributeRecord(0x0407, DataType.UINT24, 17),
        AttributeRecord(0x0405, DataType.UTC_TIME, to_utc_time(T0)),
        AttributeRecord(0x0500, DataType.UINT8, 24),
        AttributeRecord(0x0999, status=ZclStatus.UNSUPPORTED_ATTRIBUTE),
    )


def test_profile_period_other_than_15_minutes() -> None:
    meter = ZigbeeMeter(start=T0, period=ProfileIntervalPeriod.MINUTES_60)
    meter.advance(T0 + 3600, 50)
    meter.advance(T0 + 7200, 60)
    response = meter.get_profile(GetProfile(0, 0, 2))
    assert response.profile_interval_period is ProfileIntervalPeriod.MINUTES_60
    assert response.end_time == to_utc_time(T0 + 7200)
    assert response.interval_ends() == (to_utc_time(T0 + 7200), to_utc_time(T0 + 3600))


def shaped(
    seed: int, *, steps: tuple[int, ...], buffer: int = 2880, pv_kw: float = 0.0
) -> ShapedLoad:
    load = ShapedLoad(ZigbeeMeter(start=T0, max_periods=buffer), seed=seed, pv_kw=pv_kw)
    for until in steps:
        load.drive(until)
    return load


def test_shaped_load_summation_is_the_sum_of_intervals_and_partial() -> None:
    load = shaped(4, steps=(T0 + 2 * 86_400 + 400,))
    meter = load.meter
    delivered = [e.delivered for e in meter.entries]
    assert len(delivered) == 192 and all(v is not None and v > 0 for v in delivered)
    assert meter.summation_delivered == sum(v or 0 for v in delivered) + meter.partial_delivered
    assert meter.partial_delivered > 0  # 400 s into the interval: a share of its energy
    # About 27 kWh a day in Wh (the season and the noise move it a little).
    assert 40_000 < sum(v or 0 for v in delivered) < 75_000


def test_shaped_load_is_deterministic_however_it_is_driven() -> None:
    end = T0 + 86_400
    one = shaped(9, steps=(end,))
    many = shaped(9, steps=(*range(T0 + 137, end, 1_000), end))
    assert one.meter.entries == many.meter.entries
    assert one.meter.summation_delivered == many.meter.summation_delivered
    assert shaped(10, steps=(end,)).meter.entries != one.meter.entries


def test_shaped_load_with_pv_fills_the_received_channel() -> None:
    meter = shaped(2, steps=(T0 + 86_400,), pv_kw=6.0).meter
    received = [e.received or 0 for e in meter.entries]
    assert sum(received) > 0
    assert meter.summation_received == sum(received)
    assert all(
        (e.delivered or 0) == 0 or (e.received or 0) == 0 for e in meter.entries
    )  # a net meter imports or exports in an interval, never both


def test_shaped_load_outage_is_invalid_intervals() -> None:
    meter = ZigbeeMeter(start=T0)
    load = ShapedLoad(meter, seed=1, outages=((T0 + 3 * Q + 10, T0 + 5 * Q),))
    load.drive(T0 + 8 * Q)
    assert [e.delivered is None for e in meter.entries] == [
        False,
        False,
        False,
        True,
        True,
        False,
        False,
        False,
    ]
