"""The Metering cluster's (0x0702) profile commands, GetProfile and GetProfileResponse.

SE 07-5356 / 105638r09 Annex D.3. GetProfile (D.3.3.3.1.1, client to server, command 0x00)::

    octets:  1                 4                    1
             interval channel  end time (UTCTime)   number of periods

GetProfileResponse (D.3.2.3.1.1, server to client, command 0x00)::

    octets:  4          1        1                         1                    3 x n
             end time   status   profile interval period   number of periods    intervals
                                                           delivered (n)

The intervals run from the most recent (ending at ``end_time``) backwards, one profile
interval period apart; each is the uint24 change over its interval, and 0xFFFFFF marks an
interval the meter does not have, which decodes to None (a gap, never a reading of 16.7 M).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from meterledger.codec.zigbee.codes import (
    Direction,
    FrameType,
    IntervalChannel,
    MeteringClientCommand,
    MeteringServerCommand,
    ProfileIntervalPeriod,
    ProfileStatus,
)
from meterledger.codec.zigbee.cursor import Cursor
from meterledger.codec.zigbee.errors import ZclMalformedError, ZclValueError
from meterledger.codec.zigbee.header import check_uint

__all__ = ["INVALID_INTERVAL", "GetProfile", "GetProfileResponse"]

INVALID_INTERVAL = 0xFFFFFF
"""The uint24 a meter sends for an interval it has no value for."""


def _channel(code: int) -> int:
    try:
        return IntervalChannel(code)
    except ValueError:
        return code  # a request may name any channel; the server answers with a status


@dataclass(frozen=True, slots=True)
class GetProfile:
    """Ask for ``number_of_periods`` intervals ending at or before ``end_time``.

    ``end_time`` is a ZCL UTCTime; 0 asks for the most recent intervals (SE D.3.3.3.1.1.1).
    ``interval_channel`` is an :class:`IntervalChannel` or, for an undefined one, the octet.
    """

    NAME: ClassVar[str] = "get_profile"
    FRAME_TYPE: ClassVar[FrameType] = FrameType.CLUSTER_SPECIFIC
    COMMAND_ID: ClassVar[int] = MeteringClientCommand.GET_PROFILE
    DIRECTION: ClassVar[Direction | None] = Direction.CLIENT_TO_SERVER

    interval_channel: int
    end_time: int
    number_of_periods: int

    def __post_init__(self) -> None:
        check_uint(self.interval_channel, 8, "interval_channel")
        check_uint(self.end_time, 32, "end_time")
        check_uint(self.number_of_periods, 8, "number_of_periods")

    def encode_payload(self) -> bytes:
        return (
            bytes((self.interval_channel,))
            + self.end_time.to_bytes(4, "little")
            + bytes((self.number_of_periods,))
        )

    @classmethod
    def decode_payload(cls, cursor: Cursor) -> GetProfile:
        channel = cursor.u8("the interval channel")
        end_time = cursor.u32("the end time")
        periods = cursor.u8("the number of periods")
        cursor.expect_end("a GetProfile")
        return cls(_channel(channel), end_time, periods)


@dataclass(frozen=True, slots=True)
class GetProfileResponse:
    """The intervals a meter returns, most recent first; None is an invalid interval."""

    NAME: ClassVar[str] = "get_profile_response"
    FRAME_TYPE: ClassVar[FrameType] = FrameType.CLUSTER_SPECIFIC
    COMMAND_ID: ClassVar[int] = MeteringServerCommand.GET_PROFILE_RESPONSE
    DIRECTION: ClassVar[Direction | None] = Direction.SERVER_TO_CLIENT

    end_time: int
    status: ProfileStatus
    profile_interval_period: ProfileIntervalPeriod
    intervals: tuple[int | None, ...]

    def __post_init__(self) -> None:
        check_uint(self.end_time, 32, "end_time")
        if not isinstance(self.status, ProfileStatus):
            raise ZclValueError(f"status must be a ProfileStatus, not {self.status!r}")
        if not isinstance(self.profile_interval_period, ProfileIntervalPeriod):
            raise ZclValueError(
                f"profile_interval_period must be a ProfileIntervalPeriod, "
                f"not {self.profile_interval_period!r}"
            )
        if not isinstance(self.intervals, tuple):
            raise ZclValueError("intervals must be a tuple")
        if len(self.intervals) > 0xFF:
            raise ZclValueError(f"{len(self.intervals)} intervals: at most 255 fit one response")
        for value in self.intervals:
            if value is None:
                continue
            check_uint(value, 24, "interval")
            if value == INVALID_INTERVAL:
                raise ZclValueError("give an invalid interval as None, not 0xFFFFFF")

    @property
    def number_of_periods_delivered(self) -> int:
        return len(self.intervals)

    def interval_ends(self) -> tuple[int, ...]:
        """The UTCTime at which each interval ends, in the order of ``intervals``."""
        step = self.profile_interval_period.seconds
        return tuple(self.end_time - i * step for i in range(len(self.intervals)))

    def encode_payload(self) -> bytes:
        out = bytearray(self.end_time.to_bytes(4, "little"))
        out += bytes((self.status, self.profile_interval_period, len(self.intervals)))
        for value in self.intervals:
            out += (INVALID_INTERVAL if value is None else value).to_bytes(3, "little")
        return bytes(out)

    @classmethod
    def decode_payload(cls, cursor: Cursor) -> GetProfileResponse:
        end_time = cursor.u32("the end time")
        status_code = cursor.u8("the status")
        period_code = cursor.u8("the profile interval period")
        count = cursor.u8("the number of periods delivered")
        try:
            status = ProfileStatus(status_code)
        except ValueError:
            raise ZclMalformedError(
                f"reserved GetProfileResponse status 0x{status_code:02X}"
            ) from None
        try:
            period = ProfileIntervalPeriod(period_code)
        except ValueError:
            raise ZclMalformedError(f"reserved profile interval period {period_code}") from None
        intervals: list[int | None] = []
        for index in range(count):
            value = cursor.u24(f"interval {index + 1} of {count}")
            intervals.append(None if value == INVALID_INTERVAL else value)
        cursor.expect_end("a GetProfileResponse")
        return cls(end_time, status, period, tuple(intervals))
