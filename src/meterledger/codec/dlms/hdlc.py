"""HDLC for DLMS/COSEM (IEC 62056-46) in one import: frames and the streaming parser
(:mod:`~meterledger.codec.dlms.hdlc_frame`), the link state machine
(:mod:`~meterledger.codec.dlms.hdlc_link`) and its transition table
(:mod:`~meterledger.codec.dlms.hdlc_state`)."""

from __future__ import annotations

from meterledger.codec.dlms.hdlc_frame import (
    FLAG,
    MAX_FRAME_LENGTH,
    MAX_INFO_LENGTH,
    FrameKind,
    FrameParser,
    HdlcAddress,
    HdlcFrame,
    HdlcParameters,
    encode_frame,
    negotiate,
)
from meterledger.codec.dlms.hdlc_link import (
    LLC_REQUEST,
    LLC_RESPONSE,
    Connected,
    Data,
    Disconnected,
    Event,
    FrameRejected,
    HdlcLink,
    RejectReason,
)
from meterledger.codec.dlms.hdlc_state import TRANSITIONS, LinkAction, LinkState, Role

__all__ = [
    "FLAG",
    "LLC_REQUEST",
    "LLC_RESPONSE",
    "MAX_FRAME_LENGTH",
    "MAX_INFO_LENGTH",
    "TRANSITIONS",
    "Connected",
    "Data",
    "Disconnected",
    "Event",
    "FrameKind",
    "FrameParser",
    "FrameRejected",
    "HdlcAddress",
    "HdlcFrame",
    "HdlcLink",
    "HdlcParameters",
    "LinkAction",
    "LinkState",
    "RejectReason",
    "Role",
    "encode_frame",
    "negotiate",
]
