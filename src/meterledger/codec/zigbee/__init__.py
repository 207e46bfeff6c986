"""A pure ZCL codec for the Smart Energy Metering cluster (0x0702): bytes in, frames out.

No I/O, no clock: :func:`decode_frame` turns one ZCL frame (the APS payload a gateway
forwards) into a :class:`ZclFrame`, :func:`encode_frame` does the reverse, and every error is
a :class:`ZclError`. See docs/zigbee.md.
"""

from __future__ import annotations

from meterledger.codec.zigbee.codes import (
    METERING_CLUSTER,
    DataType,
    Direction,
    FrameType,
    GlobalCommand,
    IntervalChannel,
    MeteringAttribute,
    ProfileIntervalPeriod,
    ProfileStatus,
    UnitOfMeasure,
    ZclStatus,
)
from meterledger.codec.zigbee.errors import (
    ZclError,
    ZclMalformedError,
    ZclRemoteError,
    ZclTruncatedError,
    ZclUnsupportedError,
    ZclValueError,
)
from meterledger.codec.zigbee.frame import ZclCommand, ZclFrame, decode_frame, encode_frame
from meterledger.codec.zigbee.general import (
    AttributeRecord,
    DefaultResponse,
    ReadAttributes,
    ReadAttributesResponse,
    ReportAttributes,
)
from meterledger.codec.zigbee.header import ZclHeader
from meterledger.codec.zigbee.metering import INVALID_INTERVAL, GetProfile, GetProfileResponse
from meterledger.codec.zigbee.zigbee_time import ZIGBEE_EPOCH, from_utc_time, to_utc_time

__all__ = [
    "INVALID_INTERVAL",
    "METERING_CLUSTER",
    "ZIGBEE_EPOCH",
    "AttributeRecord",
    "DataType",
    "DefaultResponse",
    "Direction",
    "FrameType",
    "GetProfile",
    "GetProfileResponse",
    "GlobalCommand",
    "IntervalChannel",
    "MeteringAttribute",
    "ProfileIntervalPeriod",
    "ProfileStatus",
    "ReadAttributes",
    "ReadAttributesResponse",
    "ReportAttributes",
    "UnitOfMeasure",
    "ZclCommand",
    "ZclError",
    "ZclFrame",
    "ZclHeader",
    "ZclMalformedError",
    "ZclRemoteError",
    "ZclStatus",
    "ZclTruncatedError",
    "ZclUnsupportedError",
    "ZclValueError",
    "decode_frame",
    "encode_frame",
    "from_utc_time",
    "to_utc_time",
]
