"""A simulated Zigbee Smart Energy meter: the Simple Metering cluster (0x0702) server side.

The model (pure: "now" is always passed in, randomness comes from the caller's seed):

* **Summations.** CurrentSummationDelivered and CurrentSummationReceived are uint48 counters
  of *units* (a value times Multiplier / Divisor is a quantity of UnitofMeasure; by default
  Wh: multiplier 1, divisor 1000, kWh). They wrap at 2**48 as the attribute does.
* **Partial interval.** What is measured goes into CurrentPartialProfileIntervalValueDelivered
  / Received (uint24) for the profile interval in progress. An interval *ends* on a multiple
  of the ProfileIntervalPeriod (UTC epoch seconds) and covers ``(end - period, end]``.
* **Profile buffer.** When the meter's time reaches an interval's end, the partial values
  are pushed into a FIFO circular buffer of ``max_periods`` entries (interval end, units
  delivered, units received) and the partial restarts at zero; when the buffer is full the
  oldest entry drops out. An interval the meter spent without power, even partly, is stored
  as invalid (``None``; 0xFFFFFF on the air).
* **GetProfile** follows the end-time rule of the Smart Energy specification: end time 0
  asks for the most recent intervals; any other end time for the most recent intervals
  ending at or before it. Intervals come back most recent first, in units (multiplier and
  divisor are the collector's business). The next block back is asked for with the end time
  ``end_time - number_of_periods_delivered * period``. Statuses:

  - a channel the SE does not define (above 3): *undefined interval channel requested*;
    the reactive channels (2, 3), or received on a meter built with
    ``received_channel=False``: *interval channel not supported*;
  - an end time later than the meter's clock: *invalid end time*;
  - no stored interval ends at or before the end time: *no intervals available*;
  - more periods than ``max_periods_per_response`` (MaxNumberOfPeriodsDelivered): that many
    are returned with *more periods requested than can be returned*;
  - otherwise *success*, with fewer intervals than asked when the buffer runs out.

  Failures carry no intervals and end time 0.

:class:`ShapedLoad` drives a meter from the residential or commercial load shape of
:mod:`~meterledger.simulate.loadshapes` (or the solar net meter of
:mod:`~meterledger.simulate.solar` when it has PV), seeded, one profile period after the
other, spreading each interval's energy evenly over it so the partial values grow as time
passes. Energy becomes units by floor of the running total, so the units of any stretch of
time are never more, and at most one unit less, than the energy behind them.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from meterledger.codec.zigbee import (
    AttributeRecord,
    DataType,
    GetProfile,
    GetProfileResponse,
    IntervalChannel,
    MeteringAttribute,
    ProfileIntervalPeriod,
    ProfileStatus,
    ReadAttributes,
    ReadAttributesResponse,
    ZclStatus,
    to_utc_time,
)
from meterledger.simulate.loadshapes import LoadKind, profile
from meterledger.simulate.solar import net_meter_profile

__all__ = [
    "MAX_NUMBER_OF_PERIODS_DELIVERED",
    "ProfileEntry",
    "ShapedLoad",
    "ZigbeeMeter",
]

_UINT24_MAX = 0xFFFFFE  # largest valid interval value
_UINT48 = 1 << 48
_CHANNELS = frozenset(int(channel) for channel in IntervalChannel)
_MILLI_PER_KWH = 1_000_000

#: MaxNumberOfPeriodsDelivered (SE D.3.2.2.6, Load Profile Configuration set), uint8.
MAX_NUMBER_OF_PERIODS_DELIVERED = 0x0500

_ATTRIBUTE_TYPES: dict[int, DataType] = {
    MeteringAttribute.CURRENT_SUMMATION_DELIVERED: DataType.UINT48,
    MeteringAttribute.CURRENT_SUMMATION_RECEIVED: DataType.UINT48,
    MeteringAttribute.PROFILE_INTERVAL_PERIOD: DataType.ENUM8,
    MeteringAttribute.UNIT_OF_MEASURE: DataType.ENUM8,
    MeteringAttribute.MULTIPLIER: DataType.UINT24,
    MeteringAttribute.DIVISOR: DataType.UINT24,
    MeteringAttribute.SUMMATION_FORMATTING: DataType.BITMAP8,
    MeteringAttribute.METERING_DEVICE_TYPE: DataType.BITMAP8,
    MeteringAttribute.CURRENT_PARTIAL_PROFILE_INTERVAL_START_TIME_DELIVERED: DataType.UTC_TIME,
    MeteringAttribute.CURRENT_PARTIAL_PROFILE_INTERVAL_START_TIME_RECEIVED: DataType.UTC_TIME,
    MeteringAttribute.CURRENT_PARTIAL_PROFILE_INTERVAL_VALUE_DELIVERED: DataType.UINT24,
    MeteringAttribute.CURRENT_PARTIAL_PROFILE_INTERVAL_VALUE_RECEIVED: DataType.UINT24,
    MAX_NUMBER_OF_PERIODS_DELIVERED: DataType.UINT8,
}


@dataclass(frozen=True, slots=True)
class ProfileEntry:
    """One closed profile interval: its UTC end (epoch s) and units, ``None`` if invalid."""

    interval_end: int
    delivered: int | None
    received: int | None


class ZigbeeMeter:
    """The Simple Metering server of one meter; its clock starts at ``start`` (epoch s)."""

    def __init__(
        self,
        *,
        start: int,
        period: ProfileIntervalPeriod = ProfileIntervalPeriod.MINUTES_15,
        max_periods: int = 96,
        max_periods_per_response: int = 24,
        multiplier: int = 1,
        divisor: int = 1000,
        unit_of_measure: int = 0,
        summation_formatting: int = 0x33,
        summation_delivered: int = 0,
        summation_received: int = 0,
        received_channel: bool = True,
    ) -> None:
        if max_periods < 1:
            raise ValueError(f"max_periods must be at least 1, got {max_periods}")
        if not 1 <= max_periods_per_response <= 0xFF:
            raise ValueError("max_periods_per_response is a uint8 of at least 1")
        if not (0 < multiplier < 1 << 24 and 0 < divisor < 1 << 24):
            raise ValueError("multiplier and divisor are uint24 values above zero")
        self.period = ProfileIntervalPeriod(period)
        self.max_periods_per_response = max_periods_per_response
        self.multiplier = multiplier
        self.divisor = divisor
        self.unit_of_measure = unit_of_measure
        self.summation_formatting = summation_formatting
        self.received_channel = received_channel
        self._buffer: deque[ProfileEntry] = deque(maxlen=max_periods)
        self._time = start
        self._delivered = summation_delivered % _UINT48
        self._received = summation_received % _UINT48
        self._partial = [0, 0]
        self._partial_valid = True

    # -- state ---------------------------------------------------------------------------

    @property
    def now(self) -> int:
        """The meter's clock (epoch s): the last time it was advanced to."""
        return self._time

    @property
    def max_periods(self) -> int:
        assert self._buffer.maxlen is not None
        return self._buffer.maxlen

    @property
    def entries(self) -> tuple[ProfileEntry, ...]:
        """The buffer, oldest first."""
        return tuple(self._buffer)

    @property
    def summation_delivered(self) -> int:
        return self._delivered

    @property
    def summation_received(self) -> int:
        return self._received

    @property
    def partial_delivered(self) -> int:
        return self._partial[0]

    @property
    def partial_received(self) -> int:
        return self._partial[1]

    @property
    def partial_interval_end(self) -> int:
        """The end of the interval in progress."""
        seconds = self.period.seconds
        return self._time // seconds * seconds + seconds

    # -- time passes -----------------------------------------------------------------------

    def advance(
        self, now: int, delivered: int = 0, received: int = 0, *, powered: bool = True
    ) -> None:
        """Move the clock to ``now``; ``delivered`` and ``received`` units were measured since
        the last call and go into the interval in progress. Every interval ending at or
        before ``now`` is pushed into the buffer; past the first, they hold zero (advance at
        each interval end to spread energy: :class:`ShapedLoad` does). ``powered=False``
        means the meter had no power since the last call: every interval that overlaps that
        time is stored invalid (pass no units then)."""
        if now < self._time:
            raise ValueError(f"the meter's clock cannot go back from {self._time} to {now}")
        if delivered < 0 or received < 0:
            raise ValueError("units measured cannot be negative")
        if max(self._partial[0] + delivered, self._partial[1] + received) > _UINT24_MAX:
            raise ValueError("a profile interval cannot hold more than 0xFFFFFE units")
        seconds = self.period.seconds
        if not powered and now > self._time:
            self._partial_valid = False
        self._delivered = (self._delivered + delivered) % _UINT48
        self._received = (self._received + received) % _UINT48
        self._partial[0] += delivered
        self._partial[1] += received
        end = self.partial_interval_end
        while end <= now:
            if self._partial_valid:
                self._buffer.append(ProfileEntry(end, self._partial[0], self._partial[1]))
            else:
                self._buffer.append(ProfileEntry(end, None, None))
            self._partial = [0, 0]
            self._partial_valid = powered or end == now
            end += seconds
        self._time = now

    # -- Get Profile -----------------------------------------------------------------------

    def get_profile(self, request: GetProfile) -> GetProfileResponse:
        """Answer a GetProfile command (see the module docstring for the rule)."""
        channel = int(request.interval_channel)
        if channel not in _CHANNELS:
            return self._failed(ProfileStatus.UNDEFINED_INTERVAL_CHANNEL_REQUESTED)
        received = channel == IntervalChannel.CONSUMPTION_RECEIVED
        served = channel == IntervalChannel.CONSUMPTION_DELIVERED or (
            received and self.received_channel
        )
        if not served:  # the reactive channels, or received on a delivered-only meter
            return self._failed(ProfileStatus.INTERVAL_CHANNEL_NOT_SUPPORTED)
        now = to_utc_time(self._time)
        if request.end_time > now:
            return self._failed(ProfileStatus.INVALID_END_TIME)
        chosen = self._ending_at_or_before(request.end_time)
        if not chosen:
            return self._failed(ProfileStatus.NO_INTERVALS_AVAILABLE_FOR_THE_REQUESTED_TIME)
        status = ProfileStatus.SUCCESS
        wanted = request.number_of_periods
        if wanted > self.max_periods_per_response:
            status = ProfileStatus.MORE_PERIODS_REQUESTED_THAN_CAN_BE_RETURNED
            wanted = self.max_periods_per_response
        picked = chosen[:wanted]
        values = tuple(entry.received if received else entry.delivered for entry in picked)
        return GetProfileResponse(
            end_time=to_utc_time(chosen[0].interval_end),
            status=status,
            profile_interval_period=self.period,
            intervals=values,
        )

    def _ending_at_or_before(self, end_time: int) -> list[ProfileEntry]:
        """The stored entries ending at or before ``end_time`` (ZCL UTCTime; 0: all),
        most recent first."""
        entries = reversed(self._buffer)
        if end_time == 0:
            return list(entries)
        return [entry for entry in entries if to_utc_time(entry.interval_end) <= end_time]

    def _failed(self, status: ProfileStatus) -> GetProfileResponse:
        return GetProfileResponse(
            end_time=0,
            status=status,
            profile_interval_period=self.period,
            intervals=(),
        )

    # -- attributes ------------------------------------------------------------------------

    def attribute(self, attribute_id: int) -> tuple[DataType, int] | None:
        """The data type and value of a metering attribute, ``None`` if the meter lacks it."""
        data_type = _ATTRIBUTE_TYPES.get(attribute_id)
        if data_type is None:
            return None
        partial_start = to_utc_time(self.partial_interval_end - self.period.seconds)
        values = {
            MeteringAttribute.CURRENT_SUMMATION_DELIVERED: self._delivered,
            MeteringAttribute.CURRENT_SUMMATION_RECEIVED: self._received,
            MeteringAttribute.PROFILE_INTERVAL_PERIOD: int(self.period),
            MeteringAttribute.UNIT_OF_MEASURE: self.unit_of_measure,
            MeteringAttribute.MULTIPLIER: self.multiplier,
            MeteringAttribute.DIVISOR: self.divisor,
            MeteringAttribute.SUMMATION_FORMATTING: self.summation_formatting,
            MeteringAttribute.METERING_DEVICE_TYPE: 0,  # electric
            MeteringAttribute.CURRENT_PARTIAL_PROFILE_INTERVAL_START_TIME_DELIVERED: partial_start,
            MeteringAttribute.CURRENT_PARTIAL_PROFILE_INTERVAL_START_TIME_RECEIVED: partial_start,
            MeteringAttribute.CURRENT_PARTIAL_PROFILE_INTERVAL_VALUE_DELIVERED: self._partial[0],
            MeteringAttribute.CURRENT_PARTIAL_PROFILE_INTERVAL_VALUE_RECEIVED: self._partial[1],
            MAX_NUMBER_OF_PERIODS_DELIVERED: self.max_periods_per_response,
        }
        return data_type, values[attribute_id]

    def read_attributes(self, request: ReadAttributes) -> ReadAttributesResponse:
        """Answer Read Attributes: one record per identifier, in the order asked; an
        attribute the meter lacks gets UNSUPPORTED_ATTRIBUTE."""
        records: list[AttributeRecord] = []
        for attribute_id in request.attribute_ids:
            found = self.attribute(attribute_id)
            if found is None:
                records.append(
                    AttributeRecord(attribute_id, status=ZclStatus.UNSUPPORTED_ATTRIBUTE)
                )
            else:
                records.append(AttributeRecord(attribute_id, found[0], found[1]))
        return ReadAttributesResponse(tuple(records))


class ShapedLoad:
    """Drives a :class:`ZigbeeMeter` from a seeded load shape, interval by interval.

    Each interval's energy (mWh) comes from :func:`~meterledger.simulate.loadshapes.profile`
    (or :func:`~meterledger.simulate.solar.net_meter_profile` when ``pv_kw`` > 0: import is
    delivered, export received), drawn a day of intervals at a time from one
    ``random.Random(seed)``, so the same seed gives the same meter however often it is
    driven. ``outages`` are ``(start, end)`` epoch spans without power.
    """

    def __init__(
        self,
        meter: ZigbeeMeter,
        *,
        kind: LoadKind = LoadKind.RESIDENTIAL,
        daily_kwh: float = 27.0,
        tz: str = "America/New_York",
        seed: int | str = 1,
        pv_kw: float = 0.0,
        latitude: float = 40.7,
        outages: Iterable[tuple[int, int]] = (),
    ) -> None:
        self.meter = meter
        self.kind = LoadKind(kind)
        self.daily_kwh = daily_kwh
        self.tz = tz
        self.pv_kw = pv_kw
        self.latitude = latitude
        self.outages = tuple(sorted(outages))
        self._rng = random.Random(f"zigbee:{seed}")
        self._chunk_start = 0
        self._chunk: tuple[list[int], list[int]] = ([], [])
        self._energy = [0, 0]  # mWh measured so far, delivered and received
        self._units = [0, 0]  # of which units already handed to the meter

    def _interval_energy(self, end: int) -> tuple[int, int]:
        seconds = self.meter.period.seconds
        count = 86_400 // seconds
        index = (end - self._chunk_start) // seconds
        if not self._chunk[0] or not 0 <= index < count:
            self._chunk_start = end
            index = 0
            if self.pv_kw > 0:
                self._chunk = net_meter_profile(
                    start=end,
                    intervals=count,
                    interval_seconds=seconds,
                    tz=self.tz,
                    daily_kwh=self.daily_kwh,
                    pv_kw=self.pv_kw,
                    latitude=self.latitude,
                    rng=self._rng,
                )
            else:
                load = profile(
                    self.kind,
                    start=end,
                    intervals=count,
                    interval_seconds=seconds,
                    tz=self.tz,
                    daily_kwh=self.daily_kwh,
                    rng=self._rng,
                )
                self._chunk = (load, [0] * count)
        return self._chunk[0][index], self._chunk[1][index]

    def _dark(self, begin: int, end: int) -> bool:
        return any(start < end and begin < stop for start, stop in self.outages)

    def drive(self, until: int) -> None:
        """Advance the meter to ``until``, stopping at every interval end on the way."""
        meter, seconds = self.meter, self.meter.period.seconds
        while meter.now < until:
            end = meter.partial_interval_end
            step = min(end, until)
            begin = meter.now
            if self._dark(begin, step):
                meter.advance(step, powered=False)
                continue
            delivered, received = self._interval_energy(end)
            # The share of this interval's energy from its start to ``begin`` and to ``step``.
            before = begin - (end - seconds)
            after = step - (end - seconds)
            self._energy[0] += delivered * after // seconds - delivered * before // seconds
            self._energy[1] += received * after // seconds - received * before // seconds
            units = [self._to_units(self._energy[0]), self._to_units(self._energy[1])]
            meter.advance(step, units[0] - self._units[0], units[1] - self._units[1])
            self._units = units

    def _to_units(self, milli: int) -> int:
        meter = self.meter
        return milli * meter.divisor // (meter.multiplier * _MILLI_PER_KWH)
