"""The audit chain: an append-only list of entries, each hashing the one before it.

An entry is ``seq, recorded_at, kind, subject, payload, prev_hash, hash`` where
``hash = SHA-256("seq\\nrecorded_at\\nkind\\nsubject\\npayload\\nprev_hash")`` and ``payload`` is
canonical JSON (sorted keys, no spaces). The first entry's ``prev_hash`` is 64 zeros.

Entries for ingested batches carry the digest of every row the batch stored and of every
record it quarantined, so :func:`verify` detects a reading changed, added or removed behind
the store's back, not only an edited audit row. Appends happen inside the store's write
transaction, which serialises writers, so the chain can neither fork nor reorder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from meterledger.ingest.canonical import batch_digest, record_key, record_keys_digest
from meterledger.store.base import AuditRow, Store, WriteTx

__all__ = ["BATCH_KIND", "GENESIS", "Broken", "VerifyReport", "append", "entry_hash", "verify"]

GENESIS = "0" * 64
BATCH_KIND = "batch.ingested"


def canonical_json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    seq: int, recorded_at: str, kind: str, subject: str, payload: str, prev_hash: str
) -> str:
    text = f"{seq}\n{recorded_at}\n{kind}\n{subject}\n{payload}\n{prev_hash}"
    return hashlib.sha256(text.encode()).hexdigest()


def append(
    tx: WriteTx, kind: str, subject: str, payload: dict[str, Any], at: datetime | None = None
) -> AuditRow:
    last = tx.last_audit()
    seq = last.seq + 1 if last else 1
    prev = last.hash if last else GENESIS
    recorded_at = (at or datetime.now(UTC)).isoformat(timespec="microseconds")
    body = canonical_json(payload)
    row = AuditRow(
        seq,
        recorded_at,
        kind,
        subject,
        body,
        prev,
        entry_hash(seq, recorded_at, kind, subject, body, prev),
    )
    tx.insert_audit(row)
    return row


@dataclass(frozen=True, slots=True)
class Broken:
    seq: int | None
    kind: str
    subject: str
    problem: str


@dataclass(slots=True)
class VerifyReport:
    entries: int = 0
    batches: int = 0
    rows_checked: int = 0
    problems: list[Broken] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_broken(self) -> Broken | None:
        return self.problems[0] if self.problems else None

    def as_dict(self) -> dict[str, Any]:
        first = self.first_broken
        return {
            "ok": self.ok,
            "entries": self.entries,
            "batches": self.batches,
            "rows_checked": self.rows_checked,
            "first_broken": None
            if first is None
            else {
                "seq": first.seq,
                "kind": first.kind,
                "subject": first.subject,
                "problem": first.problem,
            },
            "problems": len(self.problems),
        }


def verify(store: Store) -> VerifyReport:
    """Recompute the chain and every batch digest; problems are listed first-broken first."""
    report = VerifyReport()
    stored = store.stored_by_batch()
    digests = _digests(stored)
    quarantine = store.quarantine_keys_by_batch()
    covered: set[int] = set()
    prev_hash, expected_seq = GENESIS, 1
    for row in store.audit_rows():
        report.entries += 1
        problem = _check_link(row, prev_hash, expected_seq)
        if problem is None and row.kind == BATCH_KIND:
            payload = json.loads(row.payload)
            batch_id = int(payload["batch_id"])
            covered.add(batch_id)
            report.batches += 1
            problem = _check_batch(payload, digests.get(batch_id), quarantine.get(batch_id, []))
        if problem is not None:
            report.problems.append(Broken(row.seq, row.kind, row.subject, problem))
        prev_hash, expected_seq = row.hash, row.seq + 1
    report.rows_checked = stored.height
    for batch_id in sorted((set(digests) | set(quarantine)) - covered):
        report.problems.append(
            Broken(
                None,
                BATCH_KIND,
                f"batch {batch_id}",
                f"batch {batch_id} has stored rows but no audit entry",
            )
        )
    return report


def _check_link(row: AuditRow, prev_hash: str, expected_seq: int) -> str | None:
    if row.seq != expected_seq:
        return f"sequence jumps from {expected_seq - 1} to {row.seq}: entries are missing"
    if row.prev_hash != prev_hash:
        return "prev_hash does not match the hash of the entry before"
    if (
        entry_hash(row.seq, row.recorded_at, row.kind, row.subject, row.payload, row.prev_hash)
        != row.hash
    ):
        return "hash does not match the entry's content"
    return None


def _digests(stored: pl.DataFrame) -> dict[int, tuple[int, str]]:
    found: dict[int, tuple[int, str]] = {}
    for (batch_id,), part in stored.partition_by("batch_id", as_dict=True).items():
        found[int(str(batch_id))] = (part.height, batch_digest(part))
    return found


def _check_batch(
    payload: dict[str, Any], digest: tuple[int, str] | None, quarantined: list[tuple[str, str, str]]
) -> str | None:
    rows, value = digest or (0, batch_digest(pl.DataFrame()))
    if rows != payload["stored_rows"] or value != payload["stored_digest"]:
        return (
            f"batch {payload['batch_id']}: stored readings do not match the audited digest "
            f"({rows} rows now, {payload['stored_rows']} audited)"
        )
    keys: list[str] = []
    for key, fmt, raw in quarantined:
        if record_key(fmt, raw) != key:
            return f"batch {payload['batch_id']}: a quarantined record's payload was altered"
        keys.append(key)
    if (
        len(keys) != payload["quarantined"]
        or record_keys_digest(keys) != payload["quarantine_digest"]
    ):
        return f"batch {payload['batch_id']}: quarantine records do not match the audited digest"
    return None
