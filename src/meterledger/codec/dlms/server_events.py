"""What :meth:`DlmsServer.next_event <meterledger.codec.dlms.server.DlmsServer.next_event>`
reports (the answers themselves are queued for ``data_to_send``): a link or an association
opened or refused, a request served or refused (:data:`ServerEvent` also takes in
:class:`~meterledger.codec.dlms.association.Released` and
:class:`~meterledger.codec.dlms.association.Disconnected`). Also the internal signal
``_Refusal``, which the server answers with an exception-response and reports as a
:class:`RequestRefused`.
"""

from __future__ import annotations

from dataclasses import dataclass

from meterledger.codec.dlms.association import Authentication, Disconnected, Released
from meterledger.codec.dlms.codes import ExceptionServiceError, ExceptionStateError

__all__ = [
    "AssociationOpened",
    "AssociationRefused",
    "LinkOpened",
    "RequestRefused",
    "RequestServed",
    "ServerEvent",
]

_NOT_ALLOWED = ExceptionStateError.SERVICE_NOT_ALLOWED


@dataclass(frozen=True, slots=True)
class LinkOpened:
    """HDLC: an SNRM was answered with UA."""

    client_address: int


@dataclass(frozen=True, slots=True)
class AssociationOpened:
    client_sap: int
    auth: Authentication
    ciphered: bool
    client_system_title: bytes | None


@dataclass(frozen=True, slots=True)
class AssociationRefused:
    client_sap: int
    reason: str


@dataclass(frozen=True, slots=True)
class RequestServed:
    """An xDLMS request was answered (the answer is in :meth:`DlmsServer.data_to_send`)."""

    service: str
    invoke_id: int


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """An APDU was answered with an exception-response (or, an AARQ, with a plain AARE)."""

    reason: str
    service_error: ExceptionServiceError


ServerEvent = (
    LinkOpened
    | AssociationOpened
    | AssociationRefused
    | RequestServed
    | RequestRefused
    | Released
    | Disconnected
)


class _Refusal(Exception):  # noqa: N818 - internal signal: answer with an exception-response
    def __init__(
        self,
        reason: str,
        service: ExceptionServiceError,
        state: ExceptionStateError = _NOT_ALLOWED,
        counter: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.service = service
        self.state = state
        self.counter = counter
