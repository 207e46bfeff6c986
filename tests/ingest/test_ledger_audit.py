"""``audit verify`` covers the bill ledger and the tariffs: a row changed, removed or added
behind the chain's back is found and named (each backend)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backends import RawDb
from meterledger.billing.tariff import load_tariff
from meterledger.cli.billing_service import add_tariff, put_account, run_cycle
from meterledger.ingest.audit import verify
from meterledger.ingest.pipeline import IngestOptions, Ingestor, register_meter
from meterledger.store import Store
from meterledger.store.records import AccountRecord, MeterRecord
from support import HEADER, NOW

TARIFF = (
    Path(__file__).resolve().parents[2]
    / "src/meterledger/billing/tariffs/commercial_tou_demand.yaml"
)


@pytest.fixture
def billed(store: Store, tmp_path: Path) -> Store:
    with store.write() as tx:
        register_meter(
            tx,
            MeterRecord(
                "M1",
                "electric",
                "kWh",
                "UTC",
                "ACC",
                "active",
                25_000_000,
                "2024-01-01T00:00:00+00:00",
            ),
        )
    lines = [HEADER] + [
        f"M1,1.0.1.8.0.255,{day}T{h:02d}:00:00+00:00,900,1.5,kWh,actual"
        for day in ("2024-01-10", "2024-01-11")
        for h in range(1, 24)
    ]
    path = tmp_path / "r.csv"
    path.write_text("\n".join(lines) + "\n")
    Ingestor(store, now=NOW).ingest_path(path, IngestOptions(fmt="csv"))
    add_tariff(store, load_tariff(TARIFF))
    put_account(
        store,
        AccountRecord(
            "ACC", "com-tou-demand-example", "UTC", 1, None, None, "2024-01-01", "2024-01-01"
        ),
    )
    return store


def _drop_guards(raw: RawDb, table: str) -> None:
    if raw.backend == "sqlite":
        for name in (f"{table}_no_update", f"{table}_no_delete"):
            raw.execute(f"DROP TRIGGER {name}")
    else:
        raw.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")


def test_a_clean_ledger_verifies_and_tampering_is_named(billed: Store, raw_db: RawDb) -> None:
    report = run_cycle(billed, "2024-01")
    (bill_id,) = report.issued
    assert verify(billed).ok
    _drop_guards(raw_db, "bills")
    raw_db.execute("UPDATE bills SET total = '0.01' WHERE bill_id = ?", (bill_id,))
    broken = verify(billed)
    assert not broken.ok
    first = broken.first_broken
    assert first is not None and first.kind == "bill.issued"
    assert "total" in first.problem and f"bill {bill_id}" in first.subject


def test_a_changed_document_or_a_deleted_bill_is_found(billed: Store, raw_db: RawDb) -> None:
    (bill_id,) = run_cycle(billed, "2024-01").issued
    _drop_guards(raw_db, "bills")
    (document,) = raw_db.execute("SELECT document FROM bills WHERE bill_id = ?", (bill_id,))[0]
    doc = json.loads(document)
    doc["lines"][0]["amount"] = "0.00"
    raw_db.execute(
        "UPDATE bills SET document = ? WHERE bill_id = ?",
        (json.dumps(doc, sort_keys=True, separators=(",", ":")), bill_id),
    )
    problems = [b.problem for b in verify(billed).problems]
    assert "the stored bill document does not match its content hash" in problems
    raw_db.execute("DELETE FROM bills WHERE bill_id = ?", (bill_id,))
    problems = [b.problem for b in verify(billed).problems]
    assert "the chain names a bill that is not in the ledger" in problems


def test_a_rebill_pair_verifies(billed: Store, raw_db: RawDb, tmp_path: Path) -> None:
    run_cycle(billed, "2024-01")
    path = tmp_path / "late.csv"
    path.write_text(f"{HEADER}\nM1,1.0.1.8.0.255,2024-01-12T05:00:00+00:00,900,3,kWh,actual\n")
    Ingestor(billed, now=NOW).ingest_path(path, IngestOptions(fmt="csv"))
    report = run_cycle(billed, "2024-01", rebill=True)
    assert len(report.rebilled) == 1
    assert verify(billed).ok
    kinds = [b.kind for b in billed.list_bills("ACC")]
    assert kinds == ["bill", "cancel", "rebill"]


def test_a_changed_tariff_is_found(billed: Store, raw_db: RawDb) -> None:
    assert verify(billed).ok
    _drop_guards(raw_db, "tariffs")
    raw_db.execute("UPDATE tariffs SET document = replace(document, '185.4', '1.0')")
    problems = [b.problem for b in verify(billed).problems]
    assert "the stored tariff does not match its content hash" in problems
