"""The faults a simulated delivery carries, and what ingest and VEE must make of them.

:class:`FaultKind` names each kind of fault; :data:`EFFECTS` says what the ingest must do
with it (a quarantine reason, or missing, duplicate, superseded, accepted) and
:data:`VEE_RULES` which VEE rule must then flag what it leaves in the stored data. A
:class:`Delivery` is the manifest of one simulated file drop (see
:mod:`meterledger.simulate.fleet`): :meth:`Delivery.expected` gives the totals a correct
ingest arrives at, :attr:`Delivery.vee` the findings VEE must make.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from meterledger.core.time import iso_utc

__all__ = [
    "EFFECTS",
    "VEE_RULES",
    "Delivery",
    "FaultKind",
    "InjectedFault",
    "VeeExpectation",
]


class FaultKind(enum.StrEnum):
    """What was injected; :data:`EFFECTS` says what the ingest must make of it and
    :data:`VEE_RULES` which VEE rule must flag what it leaves in the stored data."""

    GAP = "gap"
    REDELIVERY = "redelivery"
    ESTIMATE_THEN_ACTUAL = "estimate-then-actual"
    REVISION_CONFLICT = "revision-conflict"
    SPIKE = "spike"
    MALFORMED_ROW = "malformed-row"
    MALFORMED_VALUE = "malformed-value"
    UNKNOWN_METER = "unknown-meter"
    SHORT_GAP = "short-gap"
    PLAUSIBLE_SPIKE = "plausible-spike"
    FLAT_LINE = "flat-line"
    ZERO_DAY = "zero-day"


#: What the ingest must do with each fault: a quarantine reason code (the text of
#: ``meterledger.ingest.reasons.Reason``) or one of the effects missing, duplicate, superseded
#: and accepted (a valid record, stored as delivered: for VEE to catch).
EFFECTS: dict[FaultKind, str] = {
    FaultKind.GAP: "missing",
    FaultKind.REDELIVERY: "duplicate",
    FaultKind.ESTIMATE_THEN_ACTUAL: "superseded",
    FaultKind.REVISION_CONFLICT: "REVISION_CONFLICT",
    FaultKind.SPIKE: "IMPLAUSIBLE_VALUE",
    FaultKind.MALFORMED_ROW: "MALFORMED_ROW",
    FaultKind.MALFORMED_VALUE: "MALFORMED_VALUE",
    FaultKind.UNKNOWN_METER: "UNKNOWN_METER",
    FaultKind.SHORT_GAP: "missing",
    FaultKind.PLAUSIBLE_SPIKE: "accepted",
    FaultKind.FLAT_LINE: "accepted",
    FaultKind.ZERO_DAY: "accepted",
}
#: The VEE rule code that must flag what a fault leaves in the stored data: a key missing
#: from the billing view (a gap, or a record quarantined at ingest) is a gap to VEE.
#: Redeliveries, superseded estimates, revision conflicts (the view keeps the first actual)
#: and readings of unknown meters leave nothing for VEE.
VEE_RULES: dict[FaultKind, str] = {
    FaultKind.GAP: "GAP",
    FaultKind.SHORT_GAP: "GAP",
    FaultKind.SPIKE: "GAP",
    FaultKind.MALFORMED_ROW: "GAP",
    FaultKind.MALFORMED_VALUE: "GAP",
    FaultKind.PLAUSIBLE_SPIKE: "SPIKE",
    FaultKind.FLAT_LINE: "FLAT_LINE",
    FaultKind.ZERO_DAY: "ZERO_CONSUMPTION",
}
_QUARANTINED = (
    FaultKind.SPIKE,
    FaultKind.MALFORMED_ROW,
    FaultKind.MALFORMED_VALUE,
    FaultKind.UNKNOWN_METER,
)
_REMOVES_KEYS = (
    FaultKind.GAP,
    FaultKind.SHORT_GAP,
    FaultKind.SPIKE,
    FaultKind.MALFORMED_ROW,
    FaultKind.MALFORMED_VALUE,
)


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """One injected fault.

    ``meter_id`` is empty for a whole-file redelivery. ``file`` names the file that carries
    the fault (for the redelivery: the copy); ``interval_ends`` are the UTC epochs of the
    affected keys of ``meter_id`` on :data:`CHANNEL`; ``count`` is how many records the
    effect applies to.
    """

    kind: FaultKind
    meter_id: str
    detail: str
    expected_reason_or_effect: str
    count: int
    file: str
    interval_ends: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class VeeExpectation:
    """A finding the VEE rules must make on the stored data: ``rule`` flags the intervals
    ``first_end..last_end`` (UTC epochs of ``interval_end``, ``intervals`` of them) of
    ``meter_id`` on ``channel``, because of a fault of ``kind``. ``estimate`` is the method
    that must fill a gap (``linear`` up to 4 intervals with both neighbours delivered,
    ``like-day`` otherwise), empty for a value that is held for review rather than filled.
    """

    kind: FaultKind
    meter_id: str
    channel: str
    first_end: int
    last_end: int
    intervals: int
    rule: str
    estimate: str

    def as_dict(self) -> dict[str, str | int]:
        """JSON-ready, interval ends as ISO-8601 UTC text."""
        return {
            "fault": self.kind.value,
            "meter_id": self.meter_id,
            "channel": self.channel,
            "first_interval_end": iso_utc(self.first_end),
            "last_interval_end": iso_utc(self.last_end),
            "intervals": self.intervals,
            "rule": self.rule,
            "estimate": self.estimate,
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """The files in delivery order and the faults injected into them.

    ``fleet_keys`` is how many natural keys a perfect feed would have delivered for the fleet
    (every meter, every interval of its local days). ``vee`` lists the findings the VEE
    rules must make on the ingested data, sorted by meter and time.
    """

    files: tuple[Path, ...]
    faults: tuple[InjectedFault, ...]
    fleet_keys: int
    first_day: date
    days: int
    vee: tuple[VeeExpectation, ...] = ()

    def of_kind(self, kind: FaultKind) -> list[InjectedFault]:
        return [fault for fault in self.faults if fault.kind is kind]

    def expected(self) -> dict[str, int | dict[str, int]]:
        """Totals a correct ingest of :attr:`files`, in order, arrives at.

        accepted: distinct natural keys in the billing view (the fleet's keys minus the
        gaps, the spike and the malformed rows); duplicates: delivered records without effect (the
        redelivered file's rows); superseded: estimates replaced by actuals; conflicts:
        differing second actuals held for review; quarantined: records per reason code.
        """
        removed = sum(fault.count for fault in self.faults if fault.kind in _REMOVES_KEYS)
        quarantined: dict[str, int] = {}
        for fault in self.faults:
            if fault.kind in _QUARANTINED:
                reason = fault.expected_reason_or_effect
                quarantined[reason] = quarantined.get(reason, 0) + fault.count
        return {
            "accepted": self.fleet_keys - removed,
            "duplicates": sum(f.count for f in self.of_kind(FaultKind.REDELIVERY)),
            "superseded": sum(f.count for f in self.of_kind(FaultKind.ESTIMATE_THEN_ACTUAL)),
            "conflicts": sum(f.count for f in self.of_kind(FaultKind.REVISION_CONFLICT)),
            "quarantined": dict(sorted(quarantined.items())),
        }

    def vee_expected(self) -> list[dict[str, str | int]]:
        """:attr:`vee` as JSON-ready objects (:meth:`VeeExpectation.as_dict`)."""
        return [item.as_dict() for item in self.vee]
