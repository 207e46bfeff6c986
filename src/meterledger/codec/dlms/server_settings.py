"""What a :class:`~meterledger.codec.dlms.server.DlmsServer` serves, and to whom: the
:class:`CosemModel` the caller implements, the :class:`ClientPolicy` of each client SAP
(authentication and security) and the :class:`ServerSettings` of the logical device,
checked when built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from meterledger.codec.dlms.apdu import SelectiveAccess
from meterledger.codec.dlms.association import (
    Authentication,
    Framing,
    SecurityPolicy,
    check_system_title,
)
from meterledger.codec.dlms.codes import ActionResult, Conformance, DataAccessResult
from meterledger.codec.dlms.cosem import ObjectListEntry
from meterledger.codec.dlms.data import Data
from meterledger.codec.dlms.errors import DlmsLocalError
from meterledger.codec.dlms.hdlc_frame import HdlcParameters

__all__ = [
    "PUBLIC_CLIENT",
    "SERVER_CONFORMANCE",
    "ClientPolicy",
    "CosemModel",
    "ServerSettings",
]

_C = Conformance
SERVER_CONFORMANCE = (
    _C.GET
    | _C.SET
    | _C.ACTION
    | _C.SELECTIVE_ACCESS
    | _C.BLOCK_TRANSFER_WITH_GET_OR_READ
    | _C.MULTIPLE_REFERENCES
    | _C.PRIORITY_MGMT_SUPPORTED
)
_DEFAULT_HDLC = HdlcParameters()
_MIN_CLIENT_PDU = 64  # room for a ciphered block header and a useful block


class CosemModel(Protocol):
    """The meter's objects, as the server asks for them. ``obis`` is the 6-octet logical
    name; ``selective`` the raw selective access (see
    :func:`~meterledger.codec.dlms.apdu.parse_selective_access`)."""

    def get(
        self, class_id: int, obis: bytes, attribute: int, selective: SelectiveAccess | None
    ) -> Data | DataAccessResult: ...

    def set(
        self,
        class_id: int,
        obis: bytes,
        attribute: int,
        value: Data,
        selective: SelectiveAccess | None,
    ) -> DataAccessResult: ...

    def action(
        self, class_id: int, obis: bytes, method: int, parameters: Data | None
    ) -> tuple[ActionResult, Data | None]: ...

    def object_list(self) -> tuple[ObjectListEntry, ...]: ...


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    """What the client at ``client_sap`` must present (and how it is protected)."""

    client_sap: int
    auth: Authentication = "none"
    password: bytes | None = None
    security: SecurityPolicy = "none"

    def __post_init__(self) -> None:
        if self.auth not in ("none", "low", "hls-gmac"):
            raise DlmsLocalError(f"auth is 'none', 'low' or 'hls-gmac', not {self.auth!r}")
        if self.security not in ("none", "auth-enc"):
            raise DlmsLocalError(f"security is 'none' or 'auth-enc', not {self.security!r}")
        if self.auth == "low" and not self.password:
            raise DlmsLocalError("an LLS client policy needs the password")


PUBLIC_CLIENT = ClientPolicy(16)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """One logical device. ``ek``/``ak``/``system_title`` (ours) are needed by any policy
    with HLS-GMAC or ciphering; ``invocation_counters`` are our own counters (an iterator
    or range the caller reserves, strictly increasing); ``challenge`` (fixed) or
    ``next_challenge`` (called once per HLS association) supplies StoC. ``max_pdu`` is our
    server-max-receive-pdu-size and the cap on the APDUs we send."""

    framing: Framing = "wrapper"
    logical_address: int = 1
    physical_address: int = 17
    address_size: int = 4
    clients: tuple[ClientPolicy, ...] = (PUBLIC_CLIENT,)
    ek: bytes | None = None
    ak: bytes | None = None
    system_title: bytes | None = None
    challenge: bytes | None = None
    next_challenge: Callable[[], bytes] | None = None
    invocation_counters: Iterable[int] = ()
    last_client_counter: int | None = None
    conformance: Conformance = SERVER_CONFORMANCE
    max_pdu: int = 0xFFFF
    hdlc: HdlcParameters = _DEFAULT_HDLC
    max_apdu: int = 0xFFFF
    max_buffer: int = 1 << 18

    def __post_init__(self) -> None:
        if self.framing not in ("wrapper", "hdlc"):
            raise DlmsLocalError(f"framing is 'wrapper' or 'hdlc', not {self.framing!r}")
        if self.address_size not in (1, 2, 4):
            raise DlmsLocalError("address_size is 1, 2 or 4")
        if not _MIN_CLIENT_PDU <= self.max_pdu <= 0xFFFF:
            raise DlmsLocalError(f"max_pdu must be {_MIN_CLIENT_PDU}..65535")
        if any(p.auth == "hls-gmac" or p.security == "auth-enc" for p in self.clients):
            check_system_title(self.system_title, "system_title")
            for name in ("ek", "ak"):
                key = getattr(self, name)
                if key is None or len(key) != 16:
                    raise DlmsLocalError(f"{name} must be 16 octets for suite 0")
        if any(p.auth == "hls-gmac" for p in self.clients) and (
            self.challenge is None and self.next_challenge is None
        ):
            raise DlmsLocalError("HLS-GMAC needs a challenge or next_challenge")
