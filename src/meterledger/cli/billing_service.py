"""Bill runs against the store: the glue between ``store`` (readings, accounts, the bill
ledger) and ``billing`` (rating), shared by the CLI commands and the demo.

A run rates every account in the period, then, under the writer lock, compares each bill's
content hash with the bill in force: the same hash writes nothing (runs are idempotent), no
bill in force issues a ``bill``, and a different hash is reported as *changed* — only
``cycle rebill`` replaces a closed cycle, with a ``cancel`` and a ``rebill`` that shows the
delta. Every row written to the bill ledger is an entry on the audit chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from meterledger.billing.bill import Bill, Line
from meterledger.billing.calendar import local_midnight_utc
from meterledger.billing.cycles import CycleRequest, parse_period
from meterledger.billing.determinants import Usage, infer_interval
from meterledger.billing.rating import Carry, Rater
from meterledger.billing.tariff import Tariff, tariff_from_mapping
from meterledger.core.errors import ConflictError, InputError, NotFoundError
from meterledger.core.reading import Quality
from meterledger.ingest.audit import append
from meterledger.store import Store
from meterledger.store.base import WriteTx
from meterledger.store.records import AccountRecord, BillRecord, NewBill, TariffRecord

__all__ = ["RunReport", "run_cycle", "stored_tariff", "tariff_record"]

IMPORT = "1.0.1.8.0.255"
EXPORT = "1.0.2.8.0.255"
_ESTIMATED = int(
    Quality.ESTIMATED | Quality.EST_LINEAR | Quality.EST_LIKE_DAY | Quality.EST_REGISTER
)


def tariff_record(tariff: Tariff) -> TariffRecord:
    return TariffRecord(
        tariff_id=tariff.id,
        name=tariff.name,
        source=tariff.source,
        document=tariff.document,
        content_hash=tariff.content_hash,
        added_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def stored_tariff(record: TariffRecord) -> Tariff:
    data = json.loads(record.document)
    if record.source == "urdb":
        return tariff_from_mapping(data, source="urdb", origin=f"tariff {record.tariff_id}")
    return tariff_from_mapping(data, origin=f"tariff {record.tariff_id}")


def add_tariff(store: Store, tariff: Tariff) -> bool:
    """Store a tariff (immutable); False when the same content is already there."""
    with store.write() as tx:
        added = tx.add_tariff(tariff_record(tariff))
        if added:
            append(
                tx,
                "tariff.added",
                tariff.id,
                {"tariff_id": tariff.id, "name": tariff.name, "hash": tariff.content_hash},
            )
    return added


def put_account(store: Store, rec: AccountRecord) -> None:
    with store.write() as tx:
        tx.put_account(rec)
        append(
            tx,
            "account.updated",
            rec.account_id,
            {
                "account_id": rec.account_id,
                "tariff_id": rec.tariff_id,
                "timezone": rec.timezone,
                "cycle_day": rec.cycle_day,
                "move_in": rec.move_in,
                "move_out": rec.move_out,
            },
        )


@dataclass
class RunReport:
    period: str
    issued: list[int] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    rebilled: list[tuple[int, int]] = field(default_factory=list)
    not_in_service: list[str] = field(default_factory=list)
    still_open: list[str] = field(default_factory=list)
    no_readings: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    bills: list[Bill] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "issued": self.issued,
            "unchanged": self.unchanged,
            "changed_need_rebill": self.changed,
            "rebilled": [{"cancel": c, "rebill": r} for c, r in self.rebilled],
            "not_in_service": self.not_in_service,
            "open": self.still_open,
            "no_readings": self.no_readings,
            "incomplete": self.incomplete,
            "bills": [
                {"account": b.account, "total": str(b.total), "hash": b.content_hash}
                for b in self.bills
            ],
        }


def _date(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def _series(
    store: Store, meters: Sequence[str], lo: int, hi: int
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per meter: interval ends, delivered, received (mWh) and the estimated flag."""
    imports = store.billing_read(lo, hi, IMPORT, meter_ids=meters)
    exports = store.billing_read(lo, hi, EXPORT, meter_ids=meters)
    series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    for meter in meters:
        try:
            ends, values, quality = imports.for_meter(meter)
        except KeyError:
            ends = values = quality = np.zeros(0, dtype=np.int64)
        try:
            x_ends, x_values, _ = exports.for_meter(meter)
        except KeyError:
            x_ends = x_values = np.zeros(0, dtype=np.int64)
        all_ends = np.union1d(ends, x_ends)
        delivered = np.zeros(len(all_ends), dtype=np.int64)
        received = np.zeros(len(all_ends), dtype=np.int64)
        estimated = np.zeros(len(all_ends), dtype=bool)
        at = np.searchsorted(all_ends, ends)
        delivered[at] = values
        estimated[at] = (quality & _ESTIMATED) != 0
        received[np.searchsorted(all_ends, x_ends)] = x_values
        series[meter] = (all_ends, delivered, received, estimated)
    return series


def _account_usage(
    requests: list[CycleRequest],
    series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
) -> Usage:
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    seconds = []
    for req in requests:
        pieces = [series[m] for m in req.meters if m in series]
        if pieces:
            ends = np.concatenate([p[0] for p in pieces])
            unique, inverse = np.unique(ends, return_inverse=True)
            n = len(unique)
            d = np.bincount(inverse, weights=np.concatenate([p[1] for p in pieces]), minlength=n)
            r = np.bincount(inverse, weights=np.concatenate([p[2] for p in pieces]), minlength=n)
            e = np.bincount(inverse, weights=np.concatenate([p[3] for p in pieces]), minlength=n)
            parts.append((unique, np.rint(d).astype(np.int64), np.rint(r).astype(np.int64), e > 0))
            seconds.append(min(infer_interval(p[0]) for p in pieces))
        else:
            empty = np.zeros(0, dtype=np.int64)
            parts.append((empty, empty, empty, np.zeros(0, dtype=bool)))
            seconds.append(900)
    counts = [len(p[0]) for p in parts]
    return Usage(
        np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
        np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int64),
        np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=np.int64),
        np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, dtype=np.int64),
        np.concatenate([p[3] for p in parts]) if parts else np.zeros(0, dtype=bool),
        np.asarray(seconds, dtype=np.int64),
    )


def previous_period(period: str) -> str:
    year, month = parse_period(period)
    return f"{year - 1:04d}-12" if month == 1 else f"{year:04d}-{month - 1:02d}"


def rate_period(
    store: Store, period: str, accounts: Sequence[AccountRecord], now: datetime | None = None
) -> tuple[list[Bill], list[str], list[str]]:
    """Rate ``accounts`` for ``period`` from the readings now stored (nothing is written).

    Returns the bills, the accounts not in service in the period, and the accounts whose
    cycle has not ended yet at ``now`` (an open cycle is not billed)."""
    parse_period(period)
    instant = int((now or datetime.now(UTC)).timestamp())
    bills: list[Bill] = []
    idle: list[str] = []
    still_open: list[str] = []
    by_tariff: dict[str, list[AccountRecord]] = {}
    for acc in accounts:
        by_tariff.setdefault(acc.tariff_id, []).append(acc)
    for tariff_id, group in sorted(by_tariff.items()):
        record = store.get_tariff(tariff_id)
        if record is None:
            raise NotFoundError(f"tariff {tariff_id!r} is not in the store")
        tariff = stored_tariff(record)
        requests: list[CycleRequest] = []
        carries: list[Carry] = []
        for acc in group:
            req = CycleRequest.for_period(
                acc.account_id,
                period,
                ZoneInfo(acc.timezone),
                cycle_day=acc.cycle_day,
                move_in=_date(acc.move_in),
                move_out=_date(acc.move_out),
                meters=tuple(store.account_meters(acc.account_id)),
            )
            if req is None:
                idle.append(acc.account_id)
                continue
            if local_midnight_utc(req.end, req.zone) > instant:
                still_open.append(acc.account_id)
                continue
            requests.append(req)
            before = store.current_bill(acc.account_id, previous_period(period))
            carries.append(
                Carry.from_dict(json.loads(before.document).get("carry")) if before else Carry()
            )
        if not requests:
            continue
        lo = min(local_midnight_utc(r.start, r.zone) for r in requests)
        hi = max(local_midnight_utc(r.end, r.zone) for r in requests)
        meters = sorted({m for r in requests for m in r.meters})
        usage = _account_usage(requests, _series(store, meters, lo, hi))
        bills.extend(b for b, _ in Rater(tariff).bill_all(requests, usage, carries))
    return bills, idle, still_open


def _issue(tx: WriteTx, bill: NewBill, kind: str) -> int:
    last = tx.last_audit()
    seq = (last.seq if last else 0) + 1
    bill_id = tx.insert_bill(
        NewBill(
            bill.account_id,
            bill.period,
            bill.kind,
            bill.replaces,
            bill.content_hash,
            bill.total,
            bill.document,
            bill.created_at,
            seq,
        )
    )
    row = append(
        tx,
        kind,
        f"{bill.account_id}/{bill.period}",
        {
            "bill_id": bill_id,
            "account": bill.account_id,
            "period": bill.period,
            "kind": bill.kind,
            "replaces": bill.replaces,
            "content_hash": bill.content_hash,
            "total": bill.total,
        },
    )
    if row.seq != seq:
        raise ConflictError("the audit chain moved while a bill was written; run again")
    return bill_id


def _delta(old: dict[str, Any], new: Bill) -> dict[str, Any]:
    def by_code(lines: list[dict[str, Any]]) -> dict[str, Decimal]:
        sums: dict[str, Decimal] = {}
        for line in lines:
            sums[line["code"]] = sums.get(line["code"], Decimal(0)) + Decimal(line["amount"])
        return sums

    before, after = by_code(old["lines"]), by_code([ln.as_dict() for ln in new.lines])
    det_old = old["determinants"]
    return {
        "total": str(new.total - Decimal(old["total"])),
        "by_code": {
            c: str(after.get(c, Decimal(0)) - before.get(c, Decimal(0)))
            for c in sorted(set(before) | set(after))
        },
        "kwh_delivered": str(new.determinants.kwh_delivered - Decimal(det_old["kwh_delivered"])),
        "kwh_received": str(new.determinants.kwh_received - Decimal(det_old["kwh_received"])),
        "peak_kw": str(new.determinants.peak_kw - Decimal(det_old["peak_kw"])),
    }


def run_cycle(
    store: Store,
    period: str,
    account: str | None = None,
    *,
    rebill: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RunReport:
    """``cycle run`` (``rebill=False``) or ``cycle rebill`` for one period.

    A cycle that has not ended is not billed (``open``); a cycle with no readings at all is
    held, not billed (``no_readings``); one with some intervals missing is billed on what is
    there and listed as ``incomplete`` (its bill notes how many intervals had readings)."""
    parse_period(period)
    accounts = store.list_accounts()
    if account is not None:
        accounts = [a for a in accounts if a.account_id == account]
        if not accounts:
            raise NotFoundError(f"account {account!r} is not in the store (see accounts add)")
    if not accounts:
        raise InputError("no accounts to bill: add them with `meterledger accounts add`")
    rated, idle, still_open = rate_period(store, period, accounts)
    bills = [b for b in rated if b.determinants.intervals > 0]
    report = RunReport(
        period,
        not_in_service=idle,
        still_open=still_open,
        no_readings=[b.account for b in rated if b.determinants.intervals == 0],
        incomplete=[
            b.account for b in bills if b.determinants.intervals < b.determinants.intervals_expected
        ],
        bills=bills,
    )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with store.write() as tx:
        for bill in bills:
            current = tx.current_bill(bill.account, period)
            fresh = NewBill(
                bill.account,
                period,
                "bill",
                None,
                bill.content_hash,
                str(bill.total),
                bill.canonical(),
                now,
                None,
            )
            if current is None:
                report.issued.append(_issue(tx, fresh, "bill.issued"))
            elif current.content_hash == bill.content_hash:
                report.unchanged.append(bill.account)
            elif not rebill:
                report.changed.append(bill.account)
            else:
                report.rebilled.append(_rebill(tx, current, bill, now))
            if progress:
                progress(1)
    return report


def _negated(line: dict[str, Any]) -> dict[str, Any]:
    """A bill line reversed for a cancel: the quantity and amount negated, the rate kept, so
    that quantity × rate = amount still reads true."""
    prorate = line.get("prorate")
    reversed_line = Line(
        line["code"],
        f"Cancel: {line['description']}",
        -Decimal(line["quantity"]),
        line["unit"],
        Decimal(line["rate"]),
        -Decimal(line["amount"]),
        line.get("period"),
        int(line.get("segment", 0)),
        (int(prorate[0]), int(prorate[1])) if prorate else None,
    )
    return reversed_line.as_dict()


def _rebill(tx: WriteTx, current: BillRecord, bill: Bill, now: str) -> tuple[int, int]:
    old = json.loads(current.document)
    cancel_doc = {
        "cancels": current.bill_id,
        "account": current.account_id,
        "period": current.period,
        "total": str(-Decimal(current.total)),
        "lines": [_negated(line) for line in old.get("lines", [])],
        "original": old,
    }
    cancel_text = json.dumps(cancel_doc, sort_keys=True, separators=(",", ":"))
    cancel = NewBill(
        current.account_id,
        current.period,
        "cancel",
        current.bill_id,
        hashlib.sha256(cancel_text.encode()).hexdigest(),
        str(-Decimal(current.total)),
        cancel_text,
        now,
        None,
    )
    cancel_id = _issue(tx, cancel, "bill.cancelled")
    doc = bill.document()
    doc["rebill"] = {"replaces": current.bill_id, "cancel": cancel_id, "delta": _delta(old, bill)}
    rebill = NewBill(
        bill.account,
        bill.period,
        "rebill",
        current.bill_id,
        bill.content_hash,
        str(bill.total),
        json.dumps(doc, sort_keys=True, separators=(",", ":")),
        now,
        None,
    )
    return cancel_id, _issue(tx, rebill, "bill.rebilled")
