"""Collection errors: what went wrong reading one meter, with a stable code.

::

    MeterledgerError (core)
    └── CollectError                 code, title, transient, meter_id
        ├── ConnectFailedError     E01  the endpoint cannot be reached (refused, unreachable)
        ├── ConnectionLostError    E02  the link closed or reset in the middle of a session
        ├── CircuitOpenError       E03  the endpoint's circuit breaker refused the attempt
        ├── ResponseTimeoutError   E04  no complete response within the request timeout
        ├── MeterProtocolError     E05  the meter's bytes broke DLMS (or we did)
        ├── MeterDataAccessError   E06  the meter refused an object (data-access result)
        ├── DeadlineExceededError  E07  the meter's whole deadline ran out
        ├── HandoffError           E08  the readings could not be stored (store, ingest)
        └── SecurityLevelError     E09  authentication, association or ciphering refused

``transient`` says whether a new attempt may help: only E01, E02 and E04 are retried; a
security failure never is (a wrong key does not become right, and retrying a wrong
password locks some meters out). Third-party and codec exceptions become these once, at
the edge, with :func:`translate`.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from meterledger.codec.dlms.errors import (
    AssociationRejectedError,
    DataAccessError,
    DlmsLocalError,
    DlmsRemoteError,
    ExceptionResponseError,
    SecurityError,
)
from meterledger.core.errors import MeterledgerError, StoreError

__all__ = [
    "CODES",
    "CircuitOpenError",
    "CollectError",
    "ConnectFailedError",
    "ConnectionLostError",
    "DeadlineExceededError",
    "HandoffError",
    "MeterDataAccessError",
    "MeterProtocolError",
    "ResponseTimeoutError",
    "SecurityLevelError",
    "translate",
]


class CollectError(MeterledgerError):
    """One failure reading one meter; ``str()`` starts with the code and title."""

    code: ClassVar[str] = "E00"
    title: ClassVar[str] = "Collection Error"
    transient: ClassVar[bool] = False

    def __init__(self, detail: str, *, meter_id: str | None = None) -> None:
        self.detail = detail
        self.meter_id = meter_id
        super().__init__(self._text())

    def _text(self) -> str:
        where = f"meter {self.meter_id}: " if self.meter_id else ""
        return f"{self.code} {self.title}: {where}{self.detail}"

    def for_meter(self, meter_id: str) -> CollectError:
        """This error naming ``meter_id`` (set once; the first name wins)."""
        if self.meter_id is None:
            self.meter_id = meter_id
            self.args = (self._text(),)
        return self


class ConnectFailedError(CollectError):
    code = "E01"
    title = "Connection Failed"
    transient = True


class ConnectionLostError(CollectError):
    code = "E02"
    title = "Connection Lost"
    transient = True


class CircuitOpenError(CollectError):
    code = "E03"
    title = "Circuit Open"


class ResponseTimeoutError(CollectError):
    code = "E04"
    title = "Response Timeout"
    transient = True


class MeterProtocolError(CollectError):
    code = "E05"
    title = "Protocol Error"


class MeterDataAccessError(CollectError):
    code = "E06"
    title = "Data Access Error"


class DeadlineExceededError(CollectError):
    code = "E07"
    title = "Deadline Exceeded"


class HandoffError(CollectError):
    code = "E08"
    title = "Store Error"


class SecurityLevelError(CollectError):
    code = "E09"
    title = "Security Level Violation"


CODES: dict[str, str] = {
    cls.code: cls.title
    for cls in (
        ConnectFailedError,
        ConnectionLostError,
        CircuitOpenError,
        ResponseTimeoutError,
        MeterProtocolError,
        MeterDataAccessError,
        DeadlineExceededError,
        HandoffError,
        SecurityLevelError,
    )
}


def translate(exc: BaseException, *, meter_id: str | None = None) -> CollectError:
    """The :class:`CollectError` for ``exc`` (itself if it already is one)."""
    error: CollectError
    if isinstance(exc, CollectError):
        error = exc
    elif isinstance(exc, SecurityError | AssociationRejectedError):
        error = SecurityLevelError(str(exc))
    elif isinstance(exc, DataAccessError | ExceptionResponseError):
        error = MeterDataAccessError(str(exc))
    elif isinstance(exc, DlmsRemoteError | DlmsLocalError):
        error = MeterProtocolError(str(exc) or type(exc).__name__)
    elif isinstance(exc, TimeoutError):
        error = ResponseTimeoutError(str(exc) or "no response")
    elif isinstance(exc, ConnectionRefusedError):
        error = ConnectFailedError(f"connection refused ({exc.strerror or exc})")
    elif isinstance(exc, ConnectionError | asyncio.IncompleteReadError | EOFError):
        error = ConnectionLostError(str(exc) or type(exc).__name__)
    elif isinstance(exc, OSError):
        error = ConnectFailedError(exc.strerror or str(exc) or type(exc).__name__)
    elif isinstance(exc, StoreError):
        error = HandoffError(str(exc))
    else:
        error = CollectError(f"{type(exc).__name__}: {exc}")
    return error if meter_id is None else error.for_meter(meter_id)
