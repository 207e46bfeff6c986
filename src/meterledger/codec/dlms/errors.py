"""DLMS/COSEM codec errors.

::

    ProtocolError (core)
    ├── LocalProtocolError              we tried to do what the protocol forbids
    │   └── DlmsLocalError
    └── RemoteProtocolError             the peer sent what the protocol forbids
        └── DlmsRemoteError
            ├── CorruptFrameError       a frame whose length, flags or check sequence is wrong
            ├── DecodeError             bytes that are not a valid encoding (A-XDR, BER, APDU)
            ├── DataAccessError         a GET/SET/ACTION answered with a Data-Access-Result
            ├── ActionError             an ACTION answered with an Action-Result
            ├── ExceptionResponseError  the server's exception-response APDU
            ├── AssociationRejectedError an AARE with result rejected (and its diagnostic)
            └── SecurityError           authentication tag, HLS reply or invocation counter wrong

*Incomplete* input is never an error: decoders return ``NEED_DATA`` (see
:mod:`meterledger.codec.dlms.cursor`) and wait for more bytes.
"""

from __future__ import annotations

from meterledger.core.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "ActionError",
    "AssociationRejectedError",
    "CorruptFrameError",
    "DataAccessError",
    "DecodeError",
    "DlmsLocalError",
    "DlmsRemoteError",
    "ExceptionResponseError",
    "SecurityError",
]


class DlmsLocalError(LocalProtocolError):
    """We tried to send or do something the DLMS protocol does not allow."""


class DlmsRemoteError(RemoteProtocolError):
    """The peer sent something the DLMS protocol does not allow."""


class CorruptFrameError(DlmsRemoteError):
    """A frame is damaged (bad flag, length or check sequence), not merely incomplete."""


class DecodeError(DlmsRemoteError):
    """Bytes that are not a valid encoding of what was expected."""


class DataAccessError(DlmsRemoteError):
    """The server answered with a Data-Access-Result other than success."""

    def __init__(self, result: int, name: str, what: str = "") -> None:
        self.result = result
        self.name = name
        super().__init__(f"data access failed: {name} ({result}){': ' + what if what else ''}")


class ActionError(DlmsRemoteError):
    """The server answered an ACTION with an Action-Result other than success."""

    def __init__(self, result: int, name: str) -> None:
        self.result = result
        self.name = name
        super().__init__(f"action failed: {name} ({result})")


class ExceptionResponseError(DlmsRemoteError):
    """The server's exception-response: state error and service error codes."""

    def __init__(self, state_error: int, service_error: int, text: str) -> None:
        self.state_error = state_error
        self.service_error = service_error
        super().__init__(text)


class AssociationRejectedError(DlmsRemoteError):
    """The AARE rejected the association; ``diagnostic`` is the acse-service-user code."""

    def __init__(self, result: int, diagnostic: int, text: str) -> None:
        self.result = result
        self.diagnostic = diagnostic
        super().__init__(text)


class SecurityError(DlmsRemoteError):
    """Authentication failed: a GCM tag, an HLS reply, a password or an invocation counter.

    Collectors report it as ``E09 Security Level Violation``."""
