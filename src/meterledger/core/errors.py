"""The one exception tree of meterledger.

::

    MeterledgerError
    ├── ConfigError                 bad settings, unknown store URL
    ├── InputError                  a file or argument we cannot read at all (not a bad record)
    │   └── FormatError             the container is broken: not CSV/JSONL/XML, wrong header
    ├── NotFoundError               a meter, quarantine record, batch ... that does not exist
    ├── ConflictError               an action that the current state forbids
    ├── StoreError                  the database failed
    │   ├── TransientStoreError     retry may help (locked, busy, connection lost)
    │   └── TerminalStoreError      retry will not help (schema, corruption, constraint)
    ├── AuditError                  the audit chain does not verify
    └── ProtocolError               a peer or we broke a wire protocol
        ├── LocalProtocolError      we did something the protocol forbids
        └── RemoteProtocolError     the peer did

Data-quality findings are values (reason codes on quarantine records), never exceptions.
"""

from __future__ import annotations

__all__ = [
    "AuditError",
    "ConfigError",
    "ConflictError",
    "FormatError",
    "InputError",
    "LocalProtocolError",
    "MeterledgerError",
    "NotFoundError",
    "ProtocolError",
    "RemoteProtocolError",
    "StoreError",
    "TerminalStoreError",
    "TransientStoreError",
]


class MeterledgerError(Exception):
    """Root of every error meterledger raises on purpose."""


class ConfigError(MeterledgerError):
    """Settings or a store URL that cannot be used."""


class InputError(MeterledgerError):
    """An input that cannot be read at all (as opposed to one bad record in it)."""


class FormatError(InputError):
    """The container is broken: wrong header, not the declared format."""


class NotFoundError(MeterledgerError):
    """A named object does not exist."""


class ConflictError(MeterledgerError):
    """The requested action is not allowed in the current state."""


class StoreError(MeterledgerError):
    """The database failed."""

    transient: bool = False


class TransientStoreError(StoreError):
    """A store failure that a retry may cure (database locked, connection lost)."""

    transient = True


class TerminalStoreError(StoreError):
    """A store failure that a retry will not cure."""


class AuditError(MeterledgerError):
    """The audit chain does not verify."""


class ProtocolError(MeterledgerError):
    """A wire protocol was violated."""


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol forbids."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids."""
