"""Zigbee Cluster Library codec errors.

::

    ProtocolError (core)
    ├── LocalProtocolError
    │   └── ZclValueError (also ValueError)  a message we tried to build breaks the ZCL
    └── RemoteProtocolError
        └── ZclRemoteError                   bytes from the peer that we cannot accept
            ├── ZclTruncatedError            the frame ended before a field did
            ├── ZclMalformedError            a field holds what the standard forbids
            │                                (reserved bits set, trailing octets, bad code)
            └── ZclUnsupportedError          well formed, but not something this codec knows
                                             (another cluster's command, a data type we lack)

Every one of them is a :class:`ZclError`, the root to catch. A ZCL frame travels whole in one
APS data unit, so a short frame is *truncated* (it will not grow), and truncated is kept apart
from *malformed*: the first is lost octets, the second is a peer that broke the rules.
"""

from __future__ import annotations

from meterledger.core.errors import LocalProtocolError, ProtocolError, RemoteProtocolError

__all__ = [
    "ZclError",
    "ZclMalformedError",
    "ZclRemoteError",
    "ZclTruncatedError",
    "ZclUnsupportedError",
    "ZclValueError",
]


class ZclError(ProtocolError):
    """Root of every error the ZCL codec raises."""


class ZclValueError(ZclError, LocalProtocolError, ValueError):
    """A message built with a value the ZCL does not allow (out of range, wrong type)."""


class ZclRemoteError(ZclError, RemoteProtocolError):
    """The peer sent bytes the ZCL does not allow, or that we cannot decode."""


class ZclTruncatedError(ZclRemoteError):
    """The frame ended before the field being read did."""


class ZclMalformedError(ZclRemoteError):
    """A field holds a value the standard forbids, or octets follow the last field."""


class ZclUnsupportedError(ZclRemoteError):
    """A well-formed frame this codec does not decode (cluster, command or data type)."""
