"""UTCTime: seconds since 2000-01-01 00:00:00 UTC (ZCL 07-5123, 2.6.2 data type 0xE2).

Inside meterledger time is UTC epoch seconds; these two functions convert at the codec's
edge. 0xFFFFFFFF is the "invalid" UTCTime, so the largest time on the wire is 0xFFFFFFFE.
"""

from __future__ import annotations

from meterledger.codec.zigbee.errors import ZclValueError

__all__ = ["UTC_TIME_INVALID", "UTC_TIME_MAX", "ZIGBEE_EPOCH", "from_utc_time", "to_utc_time"]

ZIGBEE_EPOCH = 946_684_800  # 2000-01-01T00:00:00Z in Unix epoch seconds
UTC_TIME_INVALID = 0xFFFFFFFF
UTC_TIME_MAX = 0xFFFFFFFE


def to_utc_time(epoch_s: int) -> int:
    """The ZCL UTCTime of ``epoch_s`` (Unix seconds); raises ZclValueError out of range."""
    value = epoch_s - ZIGBEE_EPOCH
    if not 0 <= value <= UTC_TIME_MAX:
        raise ZclValueError(f"epoch {epoch_s} is outside the ZCL UTCTime range (2000..2136)")
    return value


def from_utc_time(zigbee_s: int) -> int:
    """The Unix epoch seconds of a ZCL UTCTime (0xFFFFFFFF, "invalid", is refused)."""
    if not 0 <= zigbee_s <= UTC_TIME_MAX:
        raise ZclValueError(f"0x{zigbee_s:X} is not a valid ZCL UTCTime")
    return zigbee_s + ZIGBEE_EPOCH
