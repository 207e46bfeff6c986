"""Wire codes of the ZCL and of the Smart Energy Metering cluster (0x0702).

References: ZCL = Zigbee Cluster Library, document 07-5123; SE = Zigbee Smart Energy
Standard, document 07-5356 / 105638r09, Annex D.3 "Metering Cluster". Every enum is an
:class:`~enum.IntEnum` whose value is the one on the wire.
"""

from __future__ import annotations

import enum

__all__ = [
    "METERING_CLUSTER",
    "DataType",
    "Direction",
    "FrameType",
    "GlobalCommand",
    "IntervalChannel",
    "MeteringAttribute",
    "MeteringClientCommand",
    "MeteringServerCommand",
    "ProfileIntervalPeriod",
    "ProfileStatus",
    "UnitOfMeasure",
    "ZclStatus",
]

METERING_CLUSTER = 0x0702
"""The cluster id of Metering (SE Annex D.3; ZCL 07-5123, 10.4 in later revisions)."""


class FrameType(enum.IntEnum):
    """Frame control bits 0-1 (ZCL 2.4.1.1.1 "Frame Type Sub-field"); 2 and 3 are reserved."""

    GLOBAL = 0b00
    CLUSTER_SPECIFIC = 0b01


class Direction(enum.IntEnum):
    """Frame control bit 3 (ZCL 2.4.1.1.3 "Direction Sub-field")."""

    CLIENT_TO_SERVER = 0
    SERVER_TO_CLIENT = 1


class GlobalCommand(enum.IntEnum):
    """The profile-wide commands this codec decodes (ZCL 2.4 / Table 2-3 "ZCL Command Frames")."""

    READ_ATTRIBUTES = 0x00
    READ_ATTRIBUTES_RESPONSE = 0x01
    REPORT_ATTRIBUTES = 0x0A
    DEFAULT_RESPONSE = 0x0B


class MeteringClientCommand(enum.IntEnum):
    """Commands the Metering client sends (SE D.3.3.3.1 "Commands Generated")."""

    GET_PROFILE = 0x00


class MeteringServerCommand(enum.IntEnum):
    """Commands the Metering server sends (SE D.3.2.3.1 "Commands Generated")."""

    GET_PROFILE_RESPONSE = 0x00


class ZclStatus(enum.IntEnum):
    """ZCL status codes (ZCL 2.6.3 "Status Enumerations", Table 2-12)."""

    SUCCESS = 0x00
    FAILURE = 0x01
    NOT_AUTHORIZED = 0x7E
    RESERVED_FIELD_NOT_ZERO = 0x7F
    MALFORMED_COMMAND = 0x80
    UNSUP_CLUSTER_COMMAND = 0x81
    UNSUP_GENERAL_COMMAND = 0x82
    UNSUP_MANUF_CLUSTER_COMMAND = 0x83
    UNSUP_MANUF_GENERAL_COMMAND = 0x84
    INVALID_FIELD = 0x85
    UNSUPPORTED_ATTRIBUTE = 0x86
    INVALID_VALUE = 0x87
    READ_ONLY = 0x88
    INSUFFICIENT_SPACE = 0x89
    DUPLICATE_EXISTS = 0x8A
    NOT_FOUND = 0x8B
    UNREPORTABLE_ATTRIBUTE = 0x8C
    INVALID_DATA_TYPE = 0x8D
    INVALID_SELECTOR = 0x8E
    WRITE_ONLY = 0x8F
    INCONSISTENT_STARTUP_STATE = 0x90
    DEFINED_OUT_OF_BAND = 0x91
    INCONSISTENT = 0x92
    ACTION_DENIED = 0x93
    TIMEOUT = 0x94
    ABORT = 0x95
    INVALID_IMAGE = 0x96
    WAIT_FOR_DATA = 0x97
    NO_IMAGE_AVAILABLE = 0x98
    REQUIRE_MORE_IMAGE = 0x99
    NOTIFICATION_PENDING = 0x9A
    HARDWARE_FAILURE = 0xC0
    SOFTWARE_FAILURE = 0xC1
    CALIBRATION_ERROR = 0xC2
    UNSUPPORTED_CLUSTER = 0xC3


class DataType(enum.IntEnum):
    """The ZCL data type ids this codec reads and writes (ZCL 2.6.2, Table 2-10 "Data Types").

    Only integer-valued types: the metering attributes are all of them. Strings, floats and
    structured types raise :class:`~meterledger.codec.zigbee.errors.ZclUnsupportedError`.
    """

    BOOLEAN = 0x10
    BITMAP8 = 0x18
    BITMAP16 = 0x19
    BITMAP24 = 0x1A
    BITMAP32 = 0x1B
    UINT8 = 0x20
    UINT16 = 0x21
    UINT24 = 0x22
    UINT32 = 0x23
    UINT40 = 0x24
    UINT48 = 0x25
    UINT56 = 0x26
    UINT64 = 0x27
    INT8 = 0x28
    INT16 = 0x29
    INT24 = 0x2A
    INT32 = 0x2B
    INT40 = 0x2C
    INT48 = 0x2D
    INT56 = 0x2E
    INT64 = 0x2F
    ENUM8 = 0x30
    ENUM16 = 0x31
    UTC_TIME = 0xE2

    @property
    def size(self) -> int:
        """Octets on the wire."""
        return _SIZES[self]

    @property
    def signed(self) -> bool:
        return 0x28 <= self.value <= 0x2F


_SIZES: dict[DataType, int] = {
    DataType.BOOLEAN: 1,
    DataType.BITMAP8: 1,
    DataType.BITMAP16: 2,
    DataType.BITMAP24: 3,
    DataType.BITMAP32: 4,
    **{DataType(0x20 + n): n + 1 for n in range(8)},
    **{DataType(0x28 + n): n + 1 for n in range(8)},
    DataType.ENUM8: 1,
    DataType.ENUM16: 2,
    DataType.UTC_TIME: 4,
}


class MeteringAttribute(enum.IntEnum):
    """Metering server attributes read by meterledger (SE D.3.2.2, attribute sets 0x00-0x04).

    The set is the high octet: 0x00 Reading Information, 0x03 Formatting, 0x04 Historical
    Consumption. The data type each is sent with (SE tables D-23 ff.) is in the comment.
    """

    CURRENT_SUMMATION_DELIVERED = 0x0000  # uint48
    CURRENT_SUMMATION_RECEIVED = 0x0001  # uint48
    PROFILE_INTERVAL_PERIOD = 0x000F  # enum8, a ProfileIntervalPeriod
    UNIT_OF_MEASURE = 0x0300  # enum8, a UnitOfMeasure
    MULTIPLIER = 0x0301  # uint24
    DIVISOR = 0x0302  # uint24
    SUMMATION_FORMATTING = 0x0303  # bitmap8
    METERING_DEVICE_TYPE = 0x0306  # bitmap8
    INSTANTANEOUS_DEMAND = 0x0400  # int24
    CURRENT_PARTIAL_PROFILE_INTERVAL_START_TIME_DELIVERED = 0x0405  # UTCTime
    CURRENT_PARTIAL_PROFILE_INTERVAL_START_TIME_RECEIVED = 0x0406  # UTCTime
    CURRENT_PARTIAL_PROFILE_INTERVAL_VALUE_DELIVERED = 0x0407  # unsigned integer
    CURRENT_PARTIAL_PROFILE_INTERVAL_VALUE_RECEIVED = 0x0408  # unsigned integer


class UnitOfMeasure(enum.IntEnum):
    """UnitofMeasure values (SE D.3.2.2.4.1); 0x80-0x89 are the same units in BCD."""

    KWH = 0x00  # kW (demand) and kWh (summation)
    M3 = 0x01  # cubic metres (m3/h)
    FT3 = 0x02  # cubic feet
    CCF = 0x03  # hundred cubic feet
    US_GL = 0x04  # US gallons
    IMP_GL = 0x05  # imperial gallons
    BTU = 0x06  # BTU (BTU/h)
    LITERS = 0x07  # litres (l/h)
    KPA_GAUGE = 0x08
    KPA_ABSOLUTE = 0x09


class ProfileIntervalPeriod(enum.IntEnum):
    """The profile interval, in the GetProfileResponse and the ProfileIntervalPeriod attribute
    (SE D.3.2.3.1.1.1, Table "ProfileIntervalPeriod Timeframes"); 9-255 are reserved."""

    DAILY = 0
    MINUTES_60 = 1
    MINUTES_30 = 2
    MINUTES_15 = 3
    MINUTES_10 = 4
    MINUTES_7_5 = 5
    MINUTES_5 = 6
    MINUTES_2_5 = 7
    MINUTES_1 = 8

    @property
    def seconds(self) -> int:
        """The length of one interval in seconds (a day is 86 400: UTCTime has no DST)."""
        return _PERIOD_SECONDS[self]


_PERIOD_SECONDS: dict[ProfileIntervalPeriod, int] = {
    ProfileIntervalPeriod.DAILY: 86_400,
    ProfileIntervalPeriod.MINUTES_60: 3_600,
    ProfileIntervalPeriod.MINUTES_30: 1_800,
    ProfileIntervalPeriod.MINUTES_15: 900,
    ProfileIntervalPeriod.MINUTES_10: 600,
    ProfileIntervalPeriod.MINUTES_7_5: 450,
    ProfileIntervalPeriod.MINUTES_5: 300,
    ProfileIntervalPeriod.MINUTES_2_5: 150,
    ProfileIntervalPeriod.MINUTES_1: 60,
}


class ProfileStatus(enum.IntEnum):
    """The Status field of GetProfileResponse (SE D.3.2.3.1.1.1, Table "Status Field
    Values"); 0x06-0xFF are reserved."""

    SUCCESS = 0x00
    UNDEFINED_INTERVAL_CHANNEL_REQUESTED = 0x01
    INTERVAL_CHANNEL_NOT_SUPPORTED = 0x02
    INVALID_END_TIME = 0x03
    MORE_PERIODS_REQUESTED_THAN_CAN_BE_RETURNED = 0x04
    NO_INTERVALS_AVAILABLE_FOR_THE_REQUESTED_TIME = 0x05


class IntervalChannel(enum.IntEnum):
    """The Interval Channel of GetProfile (SE D.3.3.3.1.1.1, "Interval Channel Values").

    SE 1.0 defines 0 and 1; later revisions add the reactive channels 2 and 3. A request may
    still carry any octet (the server answers UNDEFINED_INTERVAL_CHANNEL_REQUESTED)."""

    CONSUMPTION_DELIVERED = 0
    CONSUMPTION_RECEIVED = 1
    REACTIVE_CONSUMPTION_DELIVERED = 2
    REACTIVE_CONSUMPTION_RECEIVED = 3
