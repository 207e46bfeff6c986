"""Schema version 3, the billing tables, on SQLite and PostgreSQL: tariffs (immutable),
accounts (mutable), the append-only bill ledger and the bill in force, the database's own
guards, the upgrade of a version 2 store that holds data, and the read-only role."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import astuple, replace
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from backends import Databases, RawDb
from meterledger.cli.app import app
from meterledger.core.errors import ConflictError, InputError
from meterledger.ingest.audit import (
    BATCH_KIND,
    GENESIS,
    canonical_json,
    entry_hash,
    meter_payload,
    verify,
)
from meterledger.ingest.canonical import batch_digest, quarantine_digest
from meterledger.store import AccountRecord, BillRecord, NewBill, TariffRecord, open_store
from meterledger.store.base import MeterRecord, Store
from meterledger.store.postgres import PostgresStore

PERIOD = "2024-06"
NEXT = "2024-07"
BILL_INSERT = (
    "INSERT INTO bills ({id}account_id, period, kind, content_hash, total, document,"
    " created_at) VALUES ({value}'A1', '2024-06', 'bill', 'h', '0', '{{}}', 't')"
)


def tariff(tariff_id: str = "T1", content_hash: str = "sha256:aaa", **changes: str) -> TariffRecord:
    fields = {
        "tariff_id": tariff_id,
        "name": f"Residential {tariff_id}",
        "source": "yaml",
        "document": f"id: {tariff_id}\nenergy: 0.21\n",
        "content_hash": content_hash,
        "added_at": "2024-05-01T00:00:00+00:00",
    }
    fields.update(changes)
    return TariffRecord(**fields)


def account(account_id: str = "A1", tariff_id: str = "T1", **changes: object) -> AccountRecord:
    fields: dict[str, object] = {
        "account_id": account_id,
        "tariff_id": tariff_id,
        "timezone": "America/New_York",
        "cycle_day": 1,
        "move_in": "2024-01-15",
        "move_out": None,
        "created_at": "2024-05-01T00:00:00+00:00",
        "updated_at": "2024-05-01T00:00:00+00:00",
    }
    fields.update(changes)
    return AccountRecord(**fields)  # type: ignore[arg-type]


def new_bill(
    kind: str = "bill",
    replaces: int | None = None,
    *,
    account_id: str = "A1",
    period: str = PERIOD,
    total: str = "123.45",
    audit_seq: int | None = None,
) -> NewBill:
    return NewBill(
        account_id=account_id,
        period=period,
        kind=kind,
        replaces=replaces,
        content_hash=f"sha256:{kind}-{replaces}-{total}",
        total=total,
        document=f'{{"kind": "{kind}", "total": "{total}"}}',
        created_at="2024-07-02T00:00:00+00:00",
        audit_seq=audit_seq,
    )


def bill(store: Store, *bills: NewBill) -> list[int]:
    """Append bills in one write; their new ids."""
    with store.write() as tx:
        return [tx.insert_bill(b) for b in bills]


def in_force(store: Store, account_id: str = "A1", period: str = PERIOD) -> int | None:
    """The ``bill_id`` of the bill in force, or None."""
    current = store.current_bill(account_id, period)
    return None if current is None else current.bill_id


@pytest.fixture
def billed(store: Store) -> Store:
    """Tariff T1, accounts A1 and A2 on it."""
    with store.write() as tx:
        assert tx.add_tariff(tariff())
        tx.put_account(account("A1"))
        tx.put_account(account("A2", cycle_day=15))
    return store


# -- tariffs ----------------------------------------------------------------------------------


def test_add_tariff_is_idempotent_and_a_changed_tariff_is_a_conflict(store: Store) -> None:
    first = tariff()
    with store.write() as tx:
        assert tx.add_tariff(first) is True
        assert tx.add_tariff(first) is False  # the same content again: a no-op
    with store.write() as tx:
        assert tx.add_tariff(tariff(name="renamed", added_at="later")) is False
    assert store.get_tariff("T1") == first  # the no-op changed nothing
    assert store.count("tariffs") == 1
    immutable = r"tariff T1 .*tariffs are immutable"
    with pytest.raises(ConflictError, match=immutable) as caught, store.write() as tx:
        assert tx.add_tariff(tariff("T2", "sha256:bbb"))
        tx.add_tariff(tariff(content_hash="sha256:changed", document="energy: 0.30\n"))
    assert "new id" in str(caught.value) and "effective-dated" in str(caught.value)
    assert store.get_tariff("T1") == first
    assert store.get_tariff("T2") is None  # the failed write was rolled back whole
    with pytest.raises(InputError, match="source must be one of yaml, urdb"), store.write() as tx:
        tx.add_tariff(tariff("T3", source="xlsx"))
    assert store.get_tariff("T3") is None


def test_tariffs_are_listed_by_id_in_code_point_order(store: Store) -> None:
    with store.write() as tx:
        for tariff_id in ("res-b", "RES-A", "res-a", "T10", "T9"):
            assert tx.add_tariff(tariff(tariff_id, source="urdb"))
    listed = store.list_tariffs()
    assert [t.tariff_id for t in listed] == ["RES-A", "T10", "T9", "res-a", "res-b"]
    assert listed[0] == tariff("RES-A", source="urdb")
    assert store.get_tariff("missing") is None


# -- accounts ---------------------------------------------------------------------------------


def test_put_account_inserts_then_updates_keeping_created_at(store: Store) -> None:
    with store.write() as tx:
        tx.add_tariff(tariff("T1"))
        tx.add_tariff(tariff("T2", "sha256:bbb"))
        tx.put_account(account("B7"))
        tx.put_account(account("A1"))
    assert store.get_account("A1") == account("A1")
    moved = account(
        "A1",
        tariff_id="T2",
        timezone="Europe/Paris",
        cycle_day=28,
        move_out="2024-12-31",
        created_at="2024-09-09T00:00:00+00:00",  # ignored: the row keeps its first one
        updated_at="2024-09-09T00:00:00+00:00",
    )
    with store.write() as tx:
        tx.put_account(moved)
    stored = store.get_account("A1")
    assert stored == replace(moved, created_at="2024-05-01T00:00:00+00:00")
    assert [a.account_id for a in store.list_accounts()] == ["A1", "B7"]
    assert store.count("accounts") == 2
    assert store.get_account("A9") is None


def test_put_account_with_an_unknown_tariff_is_an_input_error(billed: Store) -> None:
    for changed in (account("A1", tariff_id="T9", cycle_day=20), account("N1", tariff_id="T9")):
        unknown = rf"account {changed.account_id}: unknown tariff 'T9'"
        with pytest.raises(InputError, match=unknown), billed.write() as tx:
            tx.put_account(changed)
    assert billed.get_account("A1") == account("A1")  # unchanged
    assert billed.get_account("N1") is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cycle_day": 29}, "cycle_day must be between 1 and 28, got 29"),
        ({"cycle_day": 0}, "cycle_day must be between 1 and 28, got 0"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"move_in": "2024-6-1"}, "move_in must be a local date YYYY-MM-DD, got '2024-6-1'"),
        ({"move_out": "20240601"}, "move_out must be a local date YYYY-MM-DD"),
        ({"move_out": "2024-01-14"}, "move_out 2024-01-14 is before move_in 2024-01-15"),
    ],
)
def test_an_account_the_billing_could_not_use_is_refused(
    billed: Store, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(InputError, match=message), billed.write() as tx:
        tx.put_account(account("A1", **changes))
    assert billed.get_account("A1") == account("A1")


def test_account_meters_are_the_meters_naming_the_account(billed: Store) -> None:
    assert billed.account_meters("A1") == []
    with billed.write() as tx:
        for meter_id, owner in (("M2", "A1"), ("M10", "A1"), ("M1", "A2"), ("M3", None)):
            tx.add_meter(
                MeterRecord(meter_id, "electric", "kWh", "UTC", owner, "active", 1, "2024-01-01")
            )
    assert billed.account_meters("A1") == ["M10", "M2"]
    assert billed.account_meters("A2") == ["M1"]
    assert billed.account_meters("A9") == []


# -- bills ------------------------------------------------------------------------------------


def test_bills_are_appended_read_back_and_listed_by_id(billed: Store) -> None:
    first, other, later = bill(
        billed,
        new_bill(audit_seq=7),
        new_bill(account_id="A2", total="-0.10"),
        new_bill(period=NEXT, total="99.999"),
    )
    assert first < other < later
    stored = billed.get_bill(first)
    assert stored == BillRecord(
        bill_id=first,
        account_id="A1",
        period=PERIOD,
        kind="bill",
        replaces=None,
        content_hash="sha256:bill-None-123.45",
        total="123.45",
        document='{"kind": "bill", "total": "123.45"}',
        created_at="2024-07-02T00:00:00+00:00",
        audit_seq=7,
    )
    assert billed.get_bill(later) == BillRecord(
        later, *astuple(new_bill(period=NEXT, total="99.999"))
    )
    assert billed.get_bill(later + 100) is None
    assert [b.bill_id for b in billed.list_bills()] == [first, other, later]
    assert [b.bill_id for b in billed.list_bills(account_id="A1")] == [first, later]
    assert [b.bill_id for b in billed.list_bills(period=PERIOD)] == [first, other]
    assert [b.bill_id for b in billed.list_bills("A1", NEXT)] == [later]
    assert billed.list_bills("A2", NEXT) == []
    assert billed.count("bills") == 3


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda ids: new_bill(account_id="A9"), "unknown account 'A9'"),
        (lambda ids: new_bill("refund"), "kind must be one of bill, cancel, rebill"),
        (lambda ids: new_bill("cancel"), "a cancel must name the bill it cancels"),
        (lambda ids: new_bill("cancel", ids[0] + 50), r"replaces names bill \d+"),
        (lambda ids: new_bill("cancel", ids[0], period=NEXT), "not a bill of that account"),
        (lambda ids: new_bill("rebill", ids[0], account_id="A2"), "not a bill of that account"),
        (lambda ids: new_bill("cancel", ids[1]), r"bill \d+ is itself a cancel"),
    ],
)
def test_a_bill_that_names_what_does_not_fit_is_refused(
    billed: Store, make: Callable[[list[int]], NewBill], message: str
) -> None:
    ids = bill(billed, new_bill())
    ids += bill(billed, new_bill("cancel", ids[0]))
    with pytest.raises(InputError, match=message), billed.write() as tx:
        tx.insert_bill(make(ids))
    assert [b.bill_id for b in billed.list_bills()] == ids


def test_the_bill_in_force_through_cancels_and_rebills(billed: Store) -> None:
    assert billed.current_bill("A1", PERIOD) is None  # never billed
    (original,) = bill(billed, new_bill())
    assert billed.current_bill("A1", PERIOD) == billed.get_bill(original)
    (cancel,) = bill(billed, new_bill("cancel", original, total="-123.45"))
    assert billed.current_bill("A1", PERIOD) is None  # cancelled, no rebill yet
    (rebill,) = bill(billed, new_bill("rebill", original, total="120.00"))
    current = billed.current_bill("A1", PERIOD)
    assert current is not None and (current.bill_id, current.kind) == (rebill, "rebill")
    assert current.total == "120.00"
    # a second correction: the rebill cancelled, then billed again
    (cancel2,) = bill(billed, new_bill("cancel", rebill, total="-120.00"))
    assert billed.current_bill("A1", PERIOD) is None
    (rebill2,) = bill(billed, new_bill("rebill", rebill, total="118.00"))
    assert in_force(billed) == rebill2
    assert [b.kind for b in billed.list_bills("A1", PERIOD)] == [
        "bill",
        "cancel",
        "rebill",
        "cancel",
        "rebill",
    ]
    assert [b.replaces for b in billed.list_bills("A1", PERIOD)] == [
        None,
        original,
        original,
        rebill,
        rebill,
    ]
    assert cancel < rebill < cancel2 < rebill2
    # other accounts and periods are their own
    assert billed.current_bill("A2", PERIOD) is None
    assert billed.current_bill("A1", NEXT) is None
    (next_bill,) = bill(billed, new_bill(period=NEXT))
    assert in_force(billed, "A1", NEXT) == next_bill
    assert in_force(billed) == rebill2


def test_the_latest_bill_no_cancel_names_is_in_force(billed: Store) -> None:
    first, second = bill(billed, new_bill(), new_bill(total="1.00"))
    assert in_force(billed) == second
    bill(billed, new_bill("cancel", second))
    assert in_force(billed) == first  # the earlier bill was never cancelled
    bill(billed, new_bill("cancel", first))
    assert in_force(billed) is None


def test_reads_inside_the_write_see_its_bills_and_a_failed_write_keeps_none(
    billed: Store,
) -> None:
    with billed.write() as tx:
        assert tx.current_bill("A1", PERIOD) is None
        first = tx.insert_bill(new_bill())
        assert tx.get_bill(first) == BillRecord(first, *astuple(new_bill()))
        assert tx.current_bill("A1", PERIOD) == tx.get_bill(first)
        cancel = tx.insert_bill(new_bill("cancel", first))
        assert tx.current_bill("A1", PERIOD) is None
        assert tx.get_bill(cancel) == BillRecord(cancel, *astuple(new_bill("cancel", first)))
    with pytest.raises(RuntimeError, match="crash"), billed.write() as tx:
        tx.insert_bill(new_bill("rebill", first))
        raise RuntimeError("crash")
    assert [b.bill_id for b in billed.list_bills()] == [first, cancel]
    assert billed.current_bill("A1", PERIOD) is None


# -- the database's own guards --------------------------------------------------------------


def test_the_database_refuses_changes_to_bills_and_tariffs(billed: Store, raw_db: RawDb) -> None:
    (first,) = bill(billed, new_bill())
    before_bill, before_tariff = billed.get_bill(first), billed.get_tariff("T1")
    over_first = BILL_INSERT.format(id="bill_id, ", value=f"{first}, ")
    over_t1 = "INSERT INTO tariffs VALUES ('T1', 'n', 'yaml', 'd', 'other', 't')"
    bills, tariffs = "bills is append-only", "tariffs are immutable"
    refused = [
        (bills, "UPDATE bills SET total = '0'"),
        (bills, "DELETE FROM bills"),
        (bills, over_first + " ON CONFLICT (bill_id) DO UPDATE SET total = excluded.total"),
        (tariffs, "UPDATE tariffs SET document = 'energy: 0'"),
        (tariffs, "DELETE FROM tariffs"),
        (tariffs, over_t1 + " ON CONFLICT (tariff_id) DO UPDATE SET name = excluded.name"),
    ]
    if raw_db.backend == "sqlite":  # REPLACE deletes without firing DELETE triggers
        refused += [
            (bills, over_first.replace("INSERT", "INSERT OR REPLACE")),
            (tariffs, over_t1.replace("INSERT", "INSERT OR REPLACE")),
        ]
    else:
        refused += [
            (f"{bills}: TRUNCATE", "TRUNCATE bills"),
            (f"{tariffs}: TRUNCATE", "TRUNCATE tariffs, accounts, bills"),
        ]
    for match, statement in refused:
        with raw_db.refused(match):
            raw_db.execute(statement)
    assert billed.get_bill(first) == before_bill
    assert billed.get_tariff("T1") == before_tariff
    # accounts are mutable, and a new bill is still an append
    raw_db.execute("UPDATE accounts SET cycle_day = 9 WHERE account_id = 'A1'")
    assert billed.get_account("A1") == account("A1", cycle_day=9)
    raw_db.execute(BILL_INSERT.format(id="", value=""))
    assert billed.count("bills") == 2


def test_the_tables_check_what_they_hold(billed: Store, raw_db: RawDb) -> None:
    if raw_db.backend == "sqlite":
        raw_db.execute("PRAGMA foreign_keys = ON")  # as the store's own connections have it
    for statement, match in (
        (BILL_INSERT.replace("'bill'", "'refund'").format(id="", value=""), "(?i)check"),
        ("UPDATE accounts SET cycle_day = 29", "(?i)check"),
        ("INSERT INTO tariffs VALUES ('T5', 'n', 'csv', 'd', 'h', 't')", "(?i)check"),
        ("UPDATE accounts SET tariff_id = 'T9'", "(?i)foreign key"),
        (BILL_INSERT.replace("'A1'", "'A9'").format(id="", value=""), "(?i)foreign key"),
    ):
        with raw_db.refused(match):
            raw_db.execute(statement)
    assert billed.get_account("A1") == account("A1")
    assert billed.count("bills") == 0


# -- upgrade and roles ------------------------------------------------------------------------


def make_version_2_store(url: str) -> None:
    """A store at schema version 2 with a meter of account A1, readings and a valid chain,
    written with SQL as a version 2 release wrote them (today's code writes the columns
    and tables of later versions)."""
    ends = [1_717_200_000 + 3600 * h for h in range(1, 5)]  # 2024-06-01T01:00Z ..
    old = open_store(url, migrate=False)
    try:
        assert old.migrate(target=2) == [1, 2]
        if isinstance(old, PostgresStore):
            old.ensure_partitions(ends[0], ends[-1])
    finally:
        old.close()
    meter = MeterRecord("M1", "electric", "kWh", "UTC", "A1", "active", 25_000_000, "t")
    rows = pl.DataFrame(
        {
            "meter_id": ["M1"] * 4,
            "channel": ["1.0.1.8.0.255"] * 4,
            "interval_end": ends,
            "interval_seconds": [900] * 4,
            "value": [1_500_000] * 4,
            "quality": [0] * 4,
        }
    )
    batch = {
        "batch_id": 1,
        "stored_rows": 4,
        "stored_digest": batch_digest(rows),
        "quarantined": 0,
        "quarantine_digest": quarantine_digest([]),
    }
    with RawDb(url) as raw:
        raw.execute(
            "INSERT INTO meters (meter_id, service, unit, timezone, account, status, capacity,"
            " created_at) VALUES ('M1', 'electric', 'kWh', 'UTC', 'A1', 'active', 25000000, 't')"
        )
        raw.execute(
            "INSERT INTO channels (meter_id, obis, base_unit) VALUES ('M1', '1.0.1.8.0.255', 'Wh')"
        )
        raw.execute(
            "INSERT INTO batches (source, format, received_at, records, accepted, audit_seq)"
            " VALUES ('v2.csv', 'csv', 't', 4, 4, 2)"
        )
        for end in ends:
            raw.execute(
                "INSERT INTO readings (channel_id, interval_end, interval_seconds, value, quality,"
                " batch_id, received_at, version) VALUES (1, ?, 900, 1500000, 0, 1, 0, 1)",
                (end,),
            )
        prev = GENESIS
        entries = [("meter.added", "M1", meter_payload(meter)), (BATCH_KIND, "batch 1", batch)]
        for seq, (kind, subject, payload) in enumerate(entries, start=1):
            text = canonical_json(payload)
            digest = entry_hash(seq, "t", kind, subject, text, prev)
            raw.execute(
                "INSERT INTO audit_log (seq, recorded_at, kind, subject, payload, prev_hash,"
                " hash) VALUES (?, 't', ?, ?, ?, ?, ?)",
                (seq, kind, subject, text, prev, digest),
            )
            prev = digest


def test_db_upgrade_takes_a_version_2_store_with_data_to_version_3(
    databases: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = databases.new_url("v2")
    make_version_2_store(url)
    with RawDb(url) as raw:
        assert raw.scalar("SELECT max(version) FROM schema_migrations") == 2
        audit_before = raw.scalar("SELECT count(*) FROM audit_log")
    monkeypatch.chdir(tmp_path)
    for name in ("METERLEDGER_DB", "METERLEDGER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, ["db", "upgrade", "--db", url, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["from_version"], report["to_version"], report["applied"]) == (
        2,
        8,
        [3, 4, 5, 6, 7, 8],
    )
    store = open_store(url, migrate=False)
    try:
        assert store.schema_version() == 8 and store.pending_migrations() == []
        assert store.count("readings") == 4
        assert [m.meter_id for m in store.list_meters()] == ["M1"]
        assert verify(store).ok, verify(store).as_dict()
        assert sum(1 for _ in store.audit_rows()) == audit_before
        with store.write() as tx:
            assert tx.add_tariff(tariff())
            tx.put_account(account("A1"))
            first = tx.insert_bill(new_bill())
        assert store.account_meters("A1") == ["M1"]
        assert in_force(store) == first
        with RawDb(url) as raw, raw.refused("bills is append-only"):
            raw.execute("DELETE FROM bills")
        # Rows written straight to the store, not through a bill run, have no audit entry
        # (and this tariff's made-up hash is not its document's): verify names exactly that.
        assert {b.problem for b in verify(store).problems} == {
            "the bill has no entry on the chain",
            "the stored tariff does not match its content hash",
        }
    finally:
        store.close()


def test_the_reader_role_selects_the_billing_tables_of_an_upgraded_store(
    pg_url: str,
) -> None:
    make_version_2_store(pg_url)
    store = open_store(pg_url)  # migrates 2 -> 7
    assert isinstance(store, PostgresStore)
    try:
        assert store.schema_version() == 8
        with store.write() as tx:
            tx.add_tariff(tariff())
            tx.put_account(account("A1"))
            tx.insert_bill(new_bill())
        with RawDb(pg_url) as raw:
            raw.execute("SET ROLE meterledger_reader")
            assert raw.scalar("SELECT count(*) FROM bills") == 1
            assert raw.scalar("SELECT total FROM bills") == "123.45"
            assert raw.scalar("SELECT tariff_id FROM accounts") == "T1"
            assert raw.scalar("SELECT count(*) FROM tariffs") == 1
            for statement in (
                BILL_INSERT.format(id="", value=""),
                "UPDATE accounts SET cycle_day = 2",
                "INSERT INTO tariffs VALUES ('T2', 'n', 'yaml', 'd', 'h', 't')",
            ):
                with raw.refused("permission denied"):
                    raw.execute(statement)
            raw.execute("RESET ROLE")
    finally:
        store.close()


def test_a_fresh_stores_billing_tables_are_readable_by_the_reader_role(
    pg: PostgresStore, raw: RawDb
) -> None:
    granted = raw.execute(
        "SELECT t, has_table_privilege('meterledger_reader', t, 'SELECT'),"
        " has_table_privilege('meterledger_reader', t, 'INSERT')"
        " FROM unnest(ARRAY['tariffs', 'accounts', 'bills']) AS t"
    )
    assert granted == [("tariffs", True, False), ("accounts", True, False), ("bills", True, False)]
    # migration 2's default privileges cover tables its role makes later, as these are
    raw.execute("CREATE TABLE later_table (x int)")
    assert raw.scalar("SELECT has_table_privilege('meterledger_reader', 'later_table', 'SELECT')")
    assert pg.schema_version() == 8
