"""The records the Store passes in and out: registry, quarantine, audit, batch counts, the
billing tables (tariffs, accounts, bills) and VEE's (anomalies, register reads). Import
them from ``meterledger.store.base`` or this module."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from meterledger.core.errors import InputError

__all__ = [
    "ANOMALY_STATUSES",
    "DEFAULT_METER_CLASS",
    "SEVERITIES",
    "AccountRecord",
    "AnomalyRecord",
    "AuditRow",
    "BatchCounts",
    "BillRecord",
    "ChannelRecord",
    "MeterRecord",
    "NewAnomaly",
    "NewBill",
    "NewQuarantine",
    "QuarantineRecord",
    "ReceivedFile",
    "RegisterRead",
    "TariffRecord",
    "check_meter_class",
]

DEFAULT_METER_CLASS = "default"
_METER_CLASS = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def check_meter_class(name: str) -> str:
    """``name`` if it is a meter class name (``^[a-z][a-z0-9_-]{0,31}$``), else InputError."""
    if not isinstance(name, str) or _METER_CLASS.fullmatch(name) is None:
        raise InputError(
            f"meter class must be a lower-case letter followed by up to 31 of a-z, 0-9, _"
            f" and -, got {name!r}"
        )
    return name


@dataclass(frozen=True, slots=True)
class MeterRecord:
    meter_id: str
    service: str
    unit: str
    timezone: str
    account: str | None
    status: str
    capacity: int
    created_at: str
    meter_class: str = DEFAULT_METER_CLASS  # picks the VEE rule settings (schema version 5)


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    channel_id: int
    meter_id: str
    obis: str
    base_unit: str
    allows_negative: bool


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    """One record held out of the billing view, with its raw payload and reasons."""

    q_id: int
    record_key: str
    batch_id: int
    source: str
    format: str
    record_no: int | None
    meter_id: str | None
    channel: str | None
    interval_end: str | None
    reasons: tuple[str, ...]
    detail: str
    raw: str
    fields: str
    status: str
    created_at: str
    updated_at: str
    note: str | None


@dataclass(frozen=True, slots=True)
class NewQuarantine:
    record_key: str
    source: str
    format: str
    record_no: int | None
    meter_id: str | None
    channel: str | None
    interval_end: str | None
    reasons: tuple[str, ...]
    detail: str
    raw: str
    fields: str


@dataclass(frozen=True, slots=True)
class AuditRow:
    seq: int
    recorded_at: str
    kind: str
    subject: str
    payload: str
    prev_hash: str
    hash: str


@dataclass(slots=True)
class BatchCounts:
    records: int = 0
    accepted: int = 0
    duplicates: int = 0
    superseded: int = 0
    ignored: int = 0
    conflicts: int = 0
    quarantined: int = 0
    quarantine_duplicates: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def effective(self) -> bool:
        """Whether the batch changed anything (a no-op delivery leaves no audit entry)."""
        return bool(
            self.accepted or self.superseded or self.ignored or self.conflicts or self.quarantined
        )

    def add(self, other: BatchCounts) -> None:
        for name in (
            "records",
            "accepted",
            "duplicates",
            "superseded",
            "ignored",
            "conflicts",
            "quarantined",
            "quarantine_duplicates",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for code, count in other.reasons.items():
            self.reasons[code] = self.reasons.get(code, 0) + count


# -- billing (schema version 3) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TariffRecord:
    """A tariff as loaded: immutable once stored (a changed tariff is a new ``tariff_id``,
    or an effective-dated version inside ``document``). ``source`` is ``yaml`` or ``urdb``."""

    tariff_id: str
    name: str
    source: str
    document: str
    content_hash: str
    added_at: str


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """A billed account: its tariff, IANA zone, cycle day (1..28), and the local dates
    (``YYYY-MM-DD``) service began and ended, if known."""

    account_id: str
    tariff_id: str
    timezone: str
    cycle_day: int
    move_in: str | None
    move_out: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class BillRecord:
    """One row of the append-only bill ledger. ``kind`` is ``bill``, ``cancel`` or
    ``rebill``; ``replaces`` names the bill a cancel (or rebill) refers to; ``total`` is a
    Decimal as text."""

    bill_id: int
    account_id: str
    period: str
    kind: str
    replaces: int | None
    content_hash: str
    total: str
    document: str
    created_at: str
    audit_seq: int | None


@dataclass(frozen=True, slots=True)
class NewBill:
    """A bill to append (:meth:`WriteTx.insert_bill` gives it its ``bill_id``)."""

    account_id: str
    period: str
    kind: str
    replaces: int | None
    content_hash: str
    total: str
    document: str
    created_at: str
    audit_seq: int | None


# -- VEE (schema version 5) -----------------------------------------------------------------

SEVERITIES = ("warn", "fail")
# open: raised and not acted on (a ``fail`` keeps the interval out of billing); released,
# edited: a person acted on it (final); cleared: a later run no longer raises it
ANOMALY_STATUSES = ("open", "released", "edited", "cleared")


@dataclass(frozen=True, slots=True)
class AnomalyRecord:
    """One finding of the anomaly ledger, with the meter and channel (OBIS) it is on.
    ``value`` is the reading's value when found (None for a gap); ``audit_seq`` the chain
    entry of the decision that released or edited it."""

    anomaly_id: int
    channel_id: int
    meter_id: str
    channel: str
    interval_end: int
    rule: str
    severity: str
    detail: str
    status: str
    value: int | None
    created_at: str
    resolved_at: str | None
    note: str | None
    audit_seq: int | None


@dataclass(frozen=True, slots=True)
class NewAnomaly:
    """A finding of one VEE run (:meth:`WriteTx.record_findings`)."""

    channel_id: int
    interval_end: int
    rule: str
    severity: str
    detail: str
    value: int | None


@dataclass(frozen=True, slots=True)
class RegisterRead:
    """A cumulative register value of a channel (milli-units) read at ``read_at`` (UTC
    epoch seconds), as delivered by ``source`` (in ``batch_id``, if it came in one)."""

    channel_id: int
    read_at: int
    value: int
    source: str
    batch_id: int | None = None


_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    """A file a feed took in (schema version 7), known by the SHA-256 of its bytes (64
    lower-case hex digits): its ``name`` as received, ``size`` in bytes, the number of
    batches it made, when it was received (ISO-8601 UTC) and where it was moved (None: not
    moved)."""

    sha256: str
    feed: str
    name: str
    size: int
    batch_count: int
    received_at: str
    moved_to: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.sha256, str) or _SHA256.fullmatch(self.sha256) is None:
            raise InputError(f"sha256 must be 64 lower-case hex digits, got {self.sha256!r}")
        if self.size < 0 or self.batch_count < 0:
            raise InputError("a received file's size and batch count are not negative")
        if not self.feed or not self.name:
            raise InputError("a received file names its feed and its file name")
