"""Quarantine review: release a record (optionally fixing its fields), then replay it.

* ``release`` marks an open record as fixed. ``changes`` edit its fields (never its raw
  payload, which stays as evidence); for a ``REVISION_CONFLICT`` it means "accept the new
  value". Every release is an audit entry naming the changes and the note.
* ``replay`` runs records through validation again and stores those that now pass, each in
  its own batch. Released conflicts promote the pending version to the billing view. A record
  that still fails goes back to ``open`` with its new reasons.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from meterledger.core.errors import ConflictError, InputError, NotFoundError
from meterledger.core.reading import quality_rank as rank_of
from meterledger.core.time import epoch_of
from meterledger.ingest import audit
from meterledger.ingest.pipeline import write_batch
from meterledger.ingest.reasons import Reason
from meterledger.ingest.records import FIELDS, raw_frame
from meterledger.ingest.staging import load_registry
from meterledger.ingest.validate import check, prepare
from meterledger.store.base import READING_COLUMNS, QuarantineRecord, Store, WriteTx

__all__ = ["ReplayOutcome", "release", "replay"]


def _at(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def release(
    store: Store,
    q_id: int,
    *,
    changes: dict[str, str] | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> QuarantineRecord:
    at = _at(now)
    changes = changes or {}
    with store.write() as tx:
        record = _get(tx, q_id)
        if record.status != "open":
            raise ConflictError(f"quarantine record {q_id} is {record.status}, not open")
        fields = json.loads(record.fields)
        if changes and Reason.REVISION_CONFLICT.value in record.reasons:
            raise InputError(
                "a revision conflict is released as it is: releasing it accepts "
                "the new value; use --set only on records that failed validation"
            )
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise InputError(f"cannot set {unknown}: fields are {', '.join(FIELDS)}")
        diff = {name: [fields.get(name), value] for name, value in sorted(changes.items())}
        fields.update(changes)
        stamp = at.isoformat(timespec="microseconds")
        tx.set_quarantine(
            q_id, status="released", at=stamp, fields=json.dumps(fields, sort_keys=True), note=note
        )
        audit.append(
            tx,
            "quarantine.released",
            f"quarantine {q_id}",
            {"q_id": q_id, "changes": diff, "note": note, "reasons": list(record.reasons)},
            at,
        )
        return _get(tx, q_id)


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    q_id: int
    outcome: str  # replayed | still-failing | held
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"q_id": self.q_id, "outcome": self.outcome, "detail": self.detail}


def replay(
    store: Store,
    ids: list[int] | None = None,
    *,
    reason: str | None = None,
    now: datetime | None = None,
) -> list[ReplayOutcome]:
    """Replay the records named by ``ids``; else the open ones with ``reason``; else every
    released record."""
    if ids:
        targets = [_must(store.get_quarantine(q_id), q_id) for q_id in ids]
    elif reason:
        targets = store.list_quarantine(status="open", reason=reason)
    else:
        targets = store.list_quarantine(status="released")
    outcomes: list[ReplayOutcome] = []
    for record in targets:
        if record.status == "replayed":
            outcomes.append(ReplayOutcome(record.q_id, "replayed", "already replayed"))
            continue
        if Reason.REVISION_CONFLICT.value in record.reasons:
            outcomes.append(_replay_conflict(store, record, _at(now)))
        else:
            outcomes.append(_replay_record(store, record, _at(now)))
    return outcomes


def _replay_record(store: Store, record: QuarantineRecord, at: datetime) -> ReplayOutcome:
    fields = json.loads(record.fields)
    row: dict[str, object] = {name: fields.get(name) for name in FIELDS}
    row.update(record_no=record.record_no, raw=record.raw)
    with store.write() as tx:
        current = _get(tx, record.q_id)  # another replay may have finished it meanwhile
        if current.status == "replayed":
            return ReplayOutcome(record.q_id, "replayed", "already replayed")
        checked = check(
            prepare(raw_frame([row])), load_registry(store), now=epoch_of(at.replace(microsecond=0))
        )
        stamp = at.isoformat(timespec="microseconds")
        if not checked.bad.is_empty():
            reasons = tuple(checked.bad["reasons"][0])
            detail = str(checked.bad["detail"][0])
            _reopen(tx, current, reasons, detail, at)
            return ReplayOutcome(record.q_id, "still-failing", f"{','.join(reasons)}: {detail}")
        counts, _ = write_batch(
            tx, checked, fmt=record.format, source=f"quarantine:{record.q_id}", at=at
        )
        effect = (
            "conflict"
            if counts.conflicts
            else "accepted"
            if counts.accepted
            else "superseded"
            if counts.superseded
            else "ignored"
            if counts.ignored
            else "duplicate"
        )
        tx.set_quarantine(record.q_id, status="replayed", at=stamp)
        audit.append(
            tx,
            "quarantine.replayed",
            f"quarantine {record.q_id}",
            {"q_id": record.q_id, "effect": effect},
            at,
        )
        return ReplayOutcome(record.q_id, "replayed", effect)


def _replay_conflict(store: Store, record: QuarantineRecord, at: datetime) -> ReplayOutcome:
    ref = json.loads(record.fields)
    key = pl.DataFrame(
        {"channel_id": [ref["channel_id"]], "interval_end": [ref["interval_end_epoch"]]}
    )
    with store.write() as tx:
        status = _get(tx, record.q_id).status  # another replay may have finished it meanwhile
        if status == "replayed":
            return ReplayOutcome(record.q_id, "replayed", "already replayed")
        if status != "released":
            return ReplayOutcome(
                record.q_id,
                "held",
                "a revision conflict is applied only after `quarantine release`",
            )
        pending = tx.versions_for(key).filter(pl.col("version") == ref["version"])
        current = tx.current_for(key)
        why = None
        if pending.is_empty():
            why = "the pending version is gone"
        elif current.height and rank_of(int(current["quality"][0])) == 3:
            why = (
                "the stored value was edited after the conflict was raised; an edit is "
                "replaced only by another edit"
            )
        if why is not None:  # back to review, on the chain; other records still replay
            held = _get(tx, record.q_id)
            _reopen(tx, held, held.reasons, why, at)
            return ReplayOutcome(record.q_id, "still-failing", why)
        # the promoted value must be the newest version, so versions stay in billing order
        newest = int(tx.max_versions(key)["max_version"][0])
        version = ref["version"] if ref["version"] == newest else newest + 1
        tx.delete_version(ref["channel_id"], ref["interval_end_epoch"], ref["version"])
        promoted = pending.with_columns(pl.lit(version, dtype=pl.Int64).alias("version"))
        tx.replace_readings(promoted.select(READING_COLUMNS), "REVISION_ACCEPTED")
        stamp = at.isoformat(timespec="microseconds")
        tx.set_quarantine(record.q_id, status="replayed", at=stamp)
        audit.append(
            tx,
            "revision.accepted",
            f"quarantine {record.q_id}",
            {
                "q_id": record.q_id,
                "meter_id": ref["meter_id"],
                "channel": ref["channel"],
                "interval_end": ref["interval_end_epoch"],
                "from_value": current["value"][0] if current.height else None,
                "to_value": ref["value_milli"],
                "pending_version": ref["version"],
                "version": version,
            },
            at,
        )
    return ReplayOutcome(record.q_id, "replayed", f"the revision is current as version {version}")


def _reopen(
    tx: WriteTx, record: QuarantineRecord, reasons: tuple[str, ...], detail: str, at: datetime
) -> None:
    """Back to ``open`` with (maybe new) reasons: a decision, so on the audit chain when the
    status or the reasons change."""
    tx.set_quarantine(
        record.q_id,
        status="open",
        at=at.isoformat(timespec="microseconds"),
        reasons=reasons,
        detail=detail,
    )
    if record.status != "open" or record.reasons != reasons:
        audit.append(
            tx,
            "quarantine.reopened",
            f"quarantine {record.q_id}",
            {
                "q_id": record.q_id,
                "from_status": record.status,
                "from_reasons": list(record.reasons),
                "to_reasons": list(reasons),
                "detail": detail,
            },
            at,
        )


def _get(tx: WriteTx, q_id: int) -> QuarantineRecord:
    return _must(tx.get_quarantine(q_id), q_id)


def _must(record: QuarantineRecord | None, q_id: int) -> QuarantineRecord:
    if record is None:
        raise NotFoundError(f"no quarantine record {q_id}")
    return record
