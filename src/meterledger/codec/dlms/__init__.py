"""Sans-IO DLMS/COSEM (IEC 62056): bytes in, events out, no sockets, no clock, no
randomness. :class:`DlmsClient` and :class:`DlmsServer` compose the layers — the wrapper or
HDLC, the association, security suite 0 and the xDLMS services; the layers themselves live
in their own modules (``hdlc``, ``wrapper``, ``axdr``, ``apdu``, ``acse``, ``security``,
``hls``, ``cosem``) for whoever needs one alone.
"""

from __future__ import annotations

from meterledger.codec.dlms.apdu import (
    CLOCK_TIME,
    CaptureObjectDefinition,
    EntryDescriptor,
    RangeDescriptor,
    SelectiveAccess,
    entry_access,
    parse_selective_access,
    range_access,
)
from meterledger.codec.dlms.association import (
    TRANSITIONS,
    AssociationState,
    AuthenticationRejectedError,
    CipheringRejectedError,
    Disconnected,
    Released,
)
from meterledger.codec.dlms.client import (
    DEFAULT_CONFORMANCE,
    ActionCompleted,
    Associated,
    ClientEvent,
    ClientSettings,
    DlmsClient,
    GetFailed,
    GetListResult,
    GetResult,
    SetResult,
)
from meterledger.codec.dlms.codes import ActionResult, Conformance, DataAccessResult
from meterledger.codec.dlms.cosem import ClassId, ObjectListEntry, obis_bytes, obis_text
from meterledger.codec.dlms.cursor import NEED_DATA
from meterledger.codec.dlms.data import CosemDateTime, Data, DataType
from meterledger.codec.dlms.errors import (
    ActionError,
    AssociationRejectedError,
    CorruptFrameError,
    DataAccessError,
    DecodeError,
    DlmsLocalError,
    DlmsRemoteError,
    ExceptionResponseError,
    SecurityError,
)
from meterledger.codec.dlms.hdlc_frame import HdlcParameters
from meterledger.codec.dlms.server import (
    PUBLIC_CLIENT,
    SERVER_CONFORMANCE,
    AssociationOpened,
    AssociationRefused,
    ClientPolicy,
    CosemModel,
    DlmsServer,
    LinkOpened,
    RequestRefused,
    RequestServed,
    ServerEvent,
    ServerSettings,
)

__all__ = [
    "CLOCK_TIME",
    "DEFAULT_CONFORMANCE",
    "NEED_DATA",
    "PUBLIC_CLIENT",
    "SERVER_CONFORMANCE",
    "TRANSITIONS",
    "ActionCompleted",
    "ActionError",
    "ActionResult",
    "Associated",
    "AssociationOpened",
    "AssociationRefused",
    "AssociationRejectedError",
    "AssociationState",
    "AuthenticationRejectedError",
    "CaptureObjectDefinition",
    "CipheringRejectedError",
    "ClassId",
    "ClientEvent",
    "ClientPolicy",
    "ClientSettings",
    "Conformance",
    "CorruptFrameError",
    "CosemDateTime",
    "CosemModel",
    "Data",
    "DataAccessError",
    "DataAccessResult",
    "DataType",
    "DecodeError",
    "Disconnected",
    "DlmsClient",
    "DlmsLocalError",
    "DlmsRemoteError",
    "DlmsServer",
    "EntryDescriptor",
    "ExceptionResponseError",
    "GetFailed",
    "GetListResult",
    "GetResult",
    "HdlcParameters",
    "LinkOpened",
    "ObjectListEntry",
    "RangeDescriptor",
    "Released",
    "RequestRefused",
    "RequestServed",
    "SecurityError",
    "SelectiveAccess",
    "ServerEvent",
    "ServerSettings",
    "SetResult",
    "entry_access",
    "obis_bytes",
    "obis_text",
    "parse_selective_access",
    "range_access",
]
