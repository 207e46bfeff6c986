"""The bill ledger and the tariffs checked against the audit chain (part of ``audit verify``).

Every ledger row must have its entry on the chain (``bill.issued``, ``bill.cancelled``,
``bill.rebilled``) at its ``audit_seq``, naming the same bill, kind, account, period, total
and content hash; every such entry must still have its row; and each row's document must
hash to its content hash (a rebill's without its ``rebill`` section, which is how its
content hash is defined). Tariffs are checked the same way against ``tariff.added``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, Protocol

from meterledger.store.base import Store
from meterledger.store.records import AuditRow, BillRecord

__all__ = ["BILL_KINDS", "check_ledger"]

BILL_KINDS = {"bill.issued": "bill", "bill.cancelled": "cancel", "bill.rebilled": "rebill"}


class _Broken(Protocol):
    def __call__(self, seq: int | None, kind: str, subject: str, problem: str) -> Any: ...


def _content_hash(record: BillRecord) -> str:
    if record.kind == "rebill":
        doc = json.loads(record.document)
        doc.pop("rebill", None)
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    else:
        text = record.document
    return hashlib.sha256(text.encode()).hexdigest()


def check_ledger(store: Store, rows: Iterable[AuditRow], broken: _Broken) -> list[Any]:
    """Problems of the bill ledger and tariffs against the chain's ``rows``."""
    problems: list[Any] = []
    entries: dict[int, tuple[AuditRow, dict[str, Any]]] = {}
    tariff_entries: dict[str, list[str]] = {}
    for row in rows:
        if row.kind in BILL_KINDS:
            payload = json.loads(row.payload)
            entries[int(payload["bill_id"])] = (row, payload)
        elif row.kind == "tariff.added":
            payload = json.loads(row.payload)
            tariff_entries.setdefault(payload["tariff_id"], []).append(payload["hash"])
    bills = {b.bill_id: b for b in store.list_bills()}
    for bill_id, bill in bills.items():
        subject = f"bill {bill_id} ({bill.account_id}/{bill.period})"
        found = entries.get(bill_id)
        if found is None:
            problems.append(broken(None, "bill", subject, "the bill has no entry on the chain"))
            continue
        row, payload = found
        expected = {
            "kind": bill.kind,
            "account": bill.account_id,
            "period": bill.period,
            "content_hash": bill.content_hash,
            "total": bill.total,
            "replaces": bill.replaces,
        }
        differ = sorted(k for k, v in expected.items() if payload.get(k) != v)
        if BILL_KINDS[row.kind] != bill.kind:
            differ.append("entry kind")
        if bill.audit_seq != row.seq:
            differ.append("audit_seq")
        if differ:
            problems.append(
                broken(
                    row.seq,
                    row.kind,
                    subject,
                    f"the ledger row differs from its entry: {', '.join(differ)}",
                )
            )
        if _content_hash(bill) != bill.content_hash:
            problems.append(
                broken(
                    row.seq,
                    row.kind,
                    subject,
                    "the stored bill document does not match its content hash",
                )
            )
    for bill_id, (row, _) in entries.items():
        if bill_id not in bills:
            problems.append(
                broken(
                    row.seq,
                    row.kind,
                    f"bill {bill_id}",
                    "the chain names a bill that is not in the ledger",
                )
            )
    for record in store.list_tariffs():
        actual = hashlib.sha256(record.document.encode()).hexdigest()
        subject = f"tariff {record.tariff_id}"
        if actual != record.content_hash:
            problems.append(
                broken(None, "tariff", subject, "the stored tariff does not match its content hash")
            )
        elif record.content_hash not in tariff_entries.get(record.tariff_id, []):
            problems.append(
                broken(
                    None, "tariff", subject, "the tariff has no tariff.added entry with its hash"
                )
            )
    return problems
