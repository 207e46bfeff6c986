"""What :meth:`DlmsClient.next_event <meterledger.codec.dlms.client.DlmsClient.next_event>`
returns: the association is ready, a GET, SET or ACTION was answered (:data:`ClientEvent`
also takes in :class:`~meterledger.codec.dlms.association.Released` and
:class:`~meterledger.codec.dlms.association.Disconnected`).
"""

from __future__ import annotations

from dataclasses import dataclass

from meterledger.codec.dlms.association import Disconnected, Released
from meterledger.codec.dlms.codes import ActionResult, Conformance, DataAccessResult
from meterledger.codec.dlms.data import Data

__all__ = [
    "ActionCompleted",
    "Associated",
    "ClientEvent",
    "GetFailed",
    "GetListResult",
    "GetResult",
    "SetResult",
]


@dataclass(frozen=True, slots=True)
class Associated:
    """The association is ready: AARE accepted (and, with HLS, f(CtoS) verified)."""

    server_system_title: bytes | None
    negotiated_conformance: Conformance
    server_max_pdu: int


@dataclass(frozen=True, slots=True)
class GetResult:
    invoke_id: int
    value: Data


@dataclass(frozen=True, slots=True)
class GetFailed:
    invoke_id: int
    result: DataAccessResult


@dataclass(frozen=True, slots=True)
class GetListResult:
    """One entry per attribute of :meth:`DlmsClient.get_with_list`, in order."""

    invoke_id: int
    results: tuple[Data | DataAccessResult, ...]


@dataclass(frozen=True, slots=True)
class SetResult:
    invoke_id: int
    result: DataAccessResult


@dataclass(frozen=True, slots=True)
class ActionCompleted:
    """The ACTION-Response: ``result`` and the method's return parameters, if any."""

    invoke_id: int
    result: ActionResult
    return_data: Data | DataAccessResult | None


ClientEvent = (
    Associated
    | GetResult
    | GetFailed
    | GetListResult
    | SetResult
    | ActionCompleted
    | Released
    | Disconnected
)
