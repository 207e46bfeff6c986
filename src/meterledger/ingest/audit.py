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

from meterledger.ingest.apply import rank
from meterledger.ingest.canonical import EMPTY_DIGEST, batch_digest, quarantine_digest, record_key
from meterledger.ingest.ledger_audit import check_ledger
from meterledger.ingest.reasons import Reason
from meterledger.store.base import AuditRow, MeterRecord, QuarantineRecord, Store, WriteTx
from meterledger.store.records import DEFAULT_METER_CLASS

__all__ = [
    "BATCH_KIND",
    "GENESIS",
    "Broken",
    "VerifyReport",
    "append",
    "entry_hash",
    "meter_payload",
    "verify",
]

GENESIS = "0" * 64
BATCH_KIND = "batch.ingested"


def meter_payload(meter: MeterRecord) -> dict[str, Any]:
    """What the chain records of a meter, and what ``verify`` compares the table with.
    ``meter_class`` (schema version 5) is recorded only when it is not ``default``: a
    meter added before it existed is of the default class, and its entry stays valid."""
    payload: dict[str, Any] = {
        "meter_id": meter.meter_id,
        "service": meter.service,
        "unit": meter.unit,
        "timezone": meter.timezone,
        "account": meter.account,
        "status": meter.status,
        "capacity": meter.capacity,
    }
    if meter.meter_class != DEFAULT_METER_CLASS:
        payload["meter_class"] = meter.meter_class
    return payload


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


def verify(store: Store, expect_head: tuple[int, str] | None = None) -> VerifyReport:
    """Recompute the chain, every batch digest, and cross-check the tables against the
    decisions on the chain. Problems are listed first-broken first.

    ``expect_head`` is ``(seq, hash)`` of an entry recorded elsewhere earlier: the chain must
    still hold it, unchanged. That detects its last entries being cut, which nothing inside
    the database can show."""
    report = VerifyReport()
    stored = store.stored_by_batch()
    quarantine = store.list_quarantine()
    facts = _Facts()
    prev_hash, expected_seq = GENESIS, 1
    head_seen = expect_head is None
    chain: list[AuditRow] = []
    for row in store.audit_rows():
        chain.append(row)
        report.entries += 1
        if expect_head is not None and row.seq == expect_head[0]:
            head_seen = row.hash == expect_head[1]
        problem = _check_link(row, prev_hash, expected_seq)
        if problem is None:
            facts.collect(row)
        else:
            report.problems.append(Broken(row.seq, row.kind, row.subject, problem))
        prev_hash, expected_seq = row.hash, row.seq + 1
    if not head_seen and expect_head is not None:
        report.problems.append(
            Broken(
                expect_head[0],
                "head",
                f"entry #{expect_head[0]}",
                f"the recorded head entry #{expect_head[0]} is missing or "
                "different: the chain was cut or rewritten",
            )
        )
    report.batches = len(facts.batches)
    report.rows_checked = stored.height
    report.problems += _check_batches(stored, quarantine, facts)
    report.problems += _check_references(store, quarantine, facts, expected_seq)
    report.problems += _check_billing_view(stored, facts)
    report.problems += check_ledger(store, chain, Broken)
    report.problems.sort(key=lambda b: (b.seq is None, b.seq or 0))
    return report


@dataclass(slots=True)
class _Facts:
    """What the chain says happened, gathered in one pass."""

    batches: dict[int, AuditRow] = field(default_factory=dict)
    meters: dict[str, tuple[AuditRow, dict[str, Any]]] = field(default_factory=dict)
    releases: dict[int, list[dict[str, list[Any]]]] = field(default_factory=dict)
    reopened: dict[int, list[tuple[tuple[str, ...], tuple[str, ...]]]] = field(default_factory=dict)
    replayed: set[int] = field(default_factory=set)

    def collect(self, row: AuditRow) -> None:
        payload = json.loads(row.payload)
        if row.kind == BATCH_KIND:
            self.batches[int(payload["batch_id"])] = row
        elif row.kind == "meter.added":
            self.meters[payload["meter_id"]] = (row, payload)
        elif row.kind == "quarantine.released":
            self.releases.setdefault(payload["q_id"], []).append(payload["changes"])
        elif row.kind in ("quarantine.replayed", "revision.accepted"):
            self.replayed.add(payload["q_id"])
        elif row.kind == "quarantine.reopened":
            self.reopened.setdefault(payload["q_id"], []).append(
                (tuple(payload["from_reasons"]), tuple(payload["to_reasons"]))
            )


def _check_batches(
    stored: pl.DataFrame, quarantine: list[QuarantineRecord], facts: _Facts
) -> list[Broken]:
    problems: list[Broken] = []
    digests = {
        int(str(key[0])): (part.height, batch_digest(part))
        for key, part in stored.partition_by("batch_id", as_dict=True).items()
    }
    held: dict[int, list[QuarantineRecord]] = {}
    for record in quarantine:
        held.setdefault(record.batch_id, []).append(record)
    for batch_id, row in facts.batches.items():
        problem = _check_batch(
            json.loads(row.payload), digests.get(batch_id), held.get(batch_id, []), facts
        )
        if problem is not None:
            problems.append(Broken(row.seq, row.kind, row.subject, problem))
    for batch_id in sorted((set(digests) | set(held)) - set(facts.batches)):
        problems.append(
            Broken(
                None,
                BATCH_KIND,
                f"batch {batch_id}",
                f"batch {batch_id} has stored rows but no audit entry",
            )
        )
    return problems


def _as_held(record: QuarantineRecord, facts: _Facts) -> tuple[str, tuple[str, ...]] | None:
    """The record's fields and reasons as first held, undoing the audited releases and
    reopenings; None where the table disagrees with the chain."""
    try:
        fields = json.loads(record.fields)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    for changes in reversed(facts.releases.get(record.q_id, [])):
        for name, (old, new) in changes.items():
            if fields.get(name) != new:
                return None
            fields[name] = old
    reasons = record.reasons
    for before, after in reversed(facts.reopened.get(record.q_id, [])):
        if reasons != after:
            return None
        reasons = before
    return json.dumps(fields, sort_keys=True), reasons


def _check_batch(
    payload: dict[str, Any],
    digest: tuple[int, str] | None,
    quarantined: list[QuarantineRecord],
    facts: _Facts,
) -> str | None:
    rows, value = digest or (0, EMPTY_DIGEST)
    if rows != payload["stored_rows"] or value != payload["stored_digest"]:
        return (
            f"batch {payload['batch_id']}: stored readings do not match the audited digest "
            f"({rows} rows now, {payload['stored_rows']} audited)"
        )
    entries: list[tuple[str, str, tuple[str, ...]]] = []
    for record in quarantined:
        held = _as_held(record, facts)
        kind = (
            Reason.REVISION_CONFLICT.value
            if held is not None and Reason.REVISION_CONFLICT.value in held[1]
            else ""
        )
        if held is None or record_key(record.format, record.raw, kind) != record.record_key:
            return (
                f"batch {payload['batch_id']}: quarantine record {record.q_id} was altered "
                "(payload, reasons or fields)"
            )
        entries.append((record.record_key, *held))
    if len(entries) != payload["quarantined"] or (
        quarantine_digest(entries) != payload["quarantine_digest"]
    ):
        return f"batch {payload['batch_id']}: quarantine records do not match the audited digest"
    return None


def _check_references(
    store: Store, quarantine: list[QuarantineRecord], facts: _Facts, next_seq: int
) -> list[Broken]:
    """Rows that point at decisions the chain must hold. A decision whose entry is gone
    means the chain was cut: that is reported at the first missing position."""
    problems: list[Broken] = []
    by_seq = {row.seq: row for row in facts.batches.values()}
    for batch_id, seq in sorted(store.batch_audit_refs().items()):
        if seq is not None and (
            seq not in by_seq or json.loads(by_seq[seq].payload)["batch_id"] != batch_id
        ):
            problems.append(
                Broken(
                    seq,
                    BATCH_KIND,
                    f"batch {batch_id}",
                    f"entry #{seq} recording batch {batch_id} is missing",
                )
            )
    for meter in store.list_meters():
        found = facts.meters.get(meter.meter_id)
        audited = meter_payload(meter)
        if found is None:
            problems.append(
                Broken(
                    next_seq,
                    "meter.added",
                    meter.meter_id,
                    f"meter {meter.meter_id} has no audit entry",
                )
            )
        elif found[1] != audited:
            problems.append(
                Broken(
                    found[0].seq,
                    "meter.added",
                    meter.meter_id,
                    f"meter {meter.meter_id} differs from its audited record",
                )
            )
    for record in quarantine:
        cut = (record.status == "released" and record.q_id not in facts.releases) or (
            record.status == "replayed" and record.q_id not in facts.replayed
        )
        if cut:
            problems.append(
                Broken(
                    next_seq,
                    "quarantine",
                    f"quarantine {record.q_id}",
                    f"quarantine record {record.q_id} is {record.status} but the "
                    "chain has no entry for that decision: entries were cut",
                )
            )
    return problems


def _check_billing_view(stored: pl.DataFrame, facts: _Facts) -> list[Broken]:
    """Which version is billed must follow the revision rules: superseded versions are older
    and of no higher rank than the billed one, ignored ones of lower rank."""
    if stored.is_empty():
        return []
    key = ["meter_id", "channel", "interval_end"]
    current = stored.filter(pl.col("status") == "current").select(
        *key,
        pl.col("version").alias("cur_version"),
        pl.col("quality").alias("cur_quality"),
        pl.col("batch_id").alias("cur_batch"),
    )
    others = stored.filter(pl.col("status") != "current").join(current, on=key, how="left")
    wrong = others.filter(
        pl.col("cur_version").is_null()
        | (
            (pl.col("status") == "superseded")
            & (
                (pl.col("version") >= pl.col("cur_version"))
                | (rank("quality") > rank("cur_quality"))
            )
        )
        | ((pl.col("status") == "ignored") & (rank("quality") >= rank("cur_quality")))
        | ((pl.col("status") == "pending_review") & (rank("cur_quality") < 2))
    )
    problems: list[Broken] = []
    for row in wrong.sort("cur_batch", *key, nulls_last=True).head(20).iter_rows(named=True):
        batch = row["cur_batch"] if row["cur_batch"] is not None else row["batch_id"]
        entry = facts.batches.get(batch)
        problems.append(
            Broken(
                entry.seq if entry else None,
                BATCH_KIND,
                f"batch {batch}",
                f"meter {row['meter_id']} {row['channel']} at {row['interval_end']}: the billed "
                f"version breaks the revision rules against its {row['status']} version",
            )
        )
    return problems


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
