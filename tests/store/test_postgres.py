"""What only the PostgreSQL backend has: monthly partitions, the billing index, the writer
lock, the read-only role, error translation, and reads inside a write transaction."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import support
from backends import RawDb, create_pg_store_url, drop_pg_store_url
from meterledger.core.errors import (
    ConfigError,
    StoreError,
    TerminalStoreError,
    TransientStoreError,
)
from meterledger.ingest.audit import verify
from meterledger.ingest.pipeline import IngestResult, register_meter
from meterledger.store import open_store
from meterledger.store.base import AuditRow, MeterRecord
from meterledger.store.pg_partitions import months_for
from meterledger.store.postgres import PostgresStore

Deliver = Callable[..., IngestResult]


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


@pytest.fixture
def pg_deliver(pg: PostgresStore, write_csv: Callable[..., Path]) -> Deliver:
    from meterledger.ingest.pipeline import IngestOptions, Ingestor

    count = 0

    def run(*lines: str) -> IngestResult:
        nonlocal count
        count += 1
        path = write_csv(list(lines), name=f"pg{count}.csv")
        return Ingestor(pg, now=support.NOW).ingest_path(path, IngestOptions())

    return run


# -- partitions ---------------------------------------------------------------------------


def test_months_for_puts_an_interval_ending_at_midnight_on_the_first_in_its_own_month() -> None:
    jan_lo, feb_lo = epoch("2024-01-01T00:00:00+00:00"), epoch("2024-02-01T00:00:00+00:00")
    mar_lo = epoch("2024-03-01T00:00:00+00:00")
    assert months_for(feb_lo, feb_lo) == [(2024, 1, jan_lo + 1, feb_lo + 1)]
    assert months_for(feb_lo + 900, feb_lo + 900) == [(2024, 2, feb_lo + 1, mar_lo + 1)]
    assert [m[:2] for m in months_for(jan_lo + 900, mar_lo + 900)] == [
        (2024, 1),
        (2024, 2),
        (2024, 3),
    ]
    december = months_for(epoch("2024-12-31T12:00:00+00:00"), epoch("2025-01-01T00:15:00+00:00"))
    assert [m[:2] for m in december] == [(2024, 12), (2025, 1)]


def test_migration_makes_this_and_next_months_partitions(pg: PostgresStore) -> None:
    details = pg.details()
    assert details["readings_layout"] == "partitioned by month"
    assert details["timescaledb"] is False
    now = datetime.now(UTC)
    names = details["partitions"]
    assert isinstance(names, list)
    assert f"readings_p{now.year:04d}{now.month:02d}" in names
    assert "readings_before_1990" in names
    assert len(names) == 3


def test_ingest_creates_the_months_it_needs_and_routes_the_boundary(
    pg: PostgresStore, raw: RawDb, pg_deliver: Deliver
) -> None:
    support.add_meter(pg)
    result = pg_deliver(
        support.row("2024-01-31T23:45:00+00:00", "0.100"),
        support.row("2024-02-01T00:00:00+00:00", "0.200"),  # measured in January
        support.row("2024-02-01T00:15:00+00:00", "0.300"),
        support.row("2024-02-01T00:30:00+00:00", "0.400", quality="estimated"),
    )
    assert result.counts.accepted == 4
    where = dict(
        raw.execute("SELECT interval_end, tableoid::regclass::text FROM readings ORDER BY 1")
    )
    assert where == {
        epoch("2024-01-31T23:45:00+00:00"): "readings_p202401",
        epoch("2024-02-01T00:00:00+00:00"): "readings_p202401",
        epoch("2024-02-01T00:15:00+00:00"): "readings_p202402",
        epoch("2024-02-01T00:30:00+00:00"): "readings_p202402",
    }
    # a revision's old version goes to the versions table's month partition
    pg_deliver(support.row("2024-02-01T00:30:00+00:00", "0.450"))
    assert raw.execute("SELECT tableoid::regclass::text, status FROM reading_versions") == [
        ("reading_versions_p202402", "superseded")
    ]
    assert verify(pg).ok


def test_the_billing_query_reads_one_partition_by_the_primary_key(
    pg: PostgresStore, raw: RawDb, pg_deliver: Deliver
) -> None:
    support.add_meter(pg)
    pg_deliver(
        *(support.row(f"2024-0{m}-10T00:00:00+00:00", "0.1") for m in (1, 2, 3)),
    )
    channel = raw.scalar(
        "SELECT channel_id FROM channels WHERE meter_id = 'M1' AND obis = '1.0.1.8.0.255'"
    )
    plan = "\n".join(
        r[0]
        for r in raw.execute(
            "EXPLAIN SELECT interval_end, value, quality FROM readings WHERE channel_id = ?"
            " AND interval_end >= ? AND interval_end <= ?",  # the store's form of a period
            (channel, epoch("2024-02-01T00:00:00+00:00") + 1, epoch("2024-03-01T00:00:00+00:00")),
        )
    )
    assert "readings_p202402" in plan
    assert "readings_p202401" not in plan and "readings_p202403" not in plan
    assert "readings_p202402_pkey" in plan  # an index scan, not a sequential one
    arrays = pg.billing_read(epoch("2024-02-01T00:00:00+00:00"), epoch("2024-03-01T00:00:00+00:00"))
    ends, values, _ = arrays.for_meter("M1")
    assert ends.tolist() == [epoch("2024-02-10T00:00:00+00:00")]
    assert values.tolist() == [100_000]  # 0.1 kWh in mWh


def test_a_new_months_partition_does_not_wait_for_readers(
    pg: PostgresStore, pg_deliver: Deliver
) -> None:
    support.add_meter(pg)
    pg_deliver(support.row("2024-01-10T00:00:00+00:00", "0.1"))
    reader = RawDb(pg.url)
    try:
        reader.execute("BEGIN")
        assert reader.scalar("SELECT count(*) FROM readings") == 1  # holds ACCESS SHARE
        done: list[IngestResult] = []
        worker = threading.Thread(
            target=lambda: done.append(pg_deliver(support.row("2024-05-10T00:00:00+00:00", "1")))
        )
        worker.start()
        worker.join(timeout=20)
        assert not worker.is_alive(), "creating a partition waited for a reader"
        assert done[0].counts.accepted == 1
    finally:
        reader.execute("ROLLBACK")
        reader.close()
    assert "readings_p202405" in pg.details()["partitions"]  # type: ignore[operator]


# -- the writer lock ------------------------------------------------------------------------


def test_writers_queue_on_the_lock_and_the_chain_stays_linear(pg: PostgresStore) -> None:
    other = open_store(pg.url)
    order: list[str] = []

    def second() -> None:
        with other.write() as tx:
            order.append("second in")
            register_meter(tx, _meter("M2"))

    try:
        with pg.write() as tx:
            register_meter(tx, _meter("M1"))
            thread = threading.Thread(target=second)
            thread.start()
            time.sleep(0.5)
            assert order == [], "a second writer got in while the first held the lock"
            order.append("first out")
        thread.join(timeout=20)
        assert order == ["first out", "second in"]
        assert [r.seq for r in pg.audit_rows()] == [1, 2]
        assert verify(pg).ok
    finally:
        other.close()


def test_two_schemas_do_not_share_a_writer_lock(pg: PostgresStore, pg_url: str) -> None:
    second_url = create_pg_store_url()
    other = open_store(second_url)
    try:
        with pg.write() as tx:
            register_meter(tx, _meter("M1"))
            done = threading.Event()

            def write_elsewhere() -> None:
                with other.write() as tx2:
                    register_meter(tx2, _meter("M9"))
                done.set()

            thread = threading.Thread(target=write_elsewhere)
            thread.start()
            assert done.wait(timeout=20), "another schema's writer waited for this one"
            thread.join()
        assert [m.meter_id for m in other.list_meters()] == ["M9"]
        assert [m.meter_id for m in pg.list_meters()] == ["M1"]
    finally:
        other.close()
        drop_pg_store_url(second_url)


def test_reads_inside_a_write_see_its_own_uncommitted_rows(pg: PostgresStore) -> None:
    outside = open_store(pg.url)
    try:
        with pg.write() as tx:
            register_meter(tx, _meter("M1"))
            assert pg.get_meter("M1") is not None  # the transaction's own connection
            assert {c.meter_id for c in pg.list_channels()} == {"M1"}
            assert outside.get_meter("M1") is None  # not committed yet
        assert outside.get_meter("M1") is not None
    finally:
        outside.close()


def test_a_failed_write_leaves_nothing(pg: PostgresStore) -> None:
    with pytest.raises(RuntimeError, match="boom"), pg.write() as tx:
        register_meter(tx, _meter("M1"))
        raise RuntimeError("boom")
    assert pg.list_meters() == []
    assert list(pg.audit_rows()) == []
    with pg.write() as tx:  # the connection went back to the pool clean
        register_meter(tx, _meter("M1"))
    assert verify(pg).ok


# -- protection and roles -----------------------------------------------------------------


def test_the_reader_role_reads_everything_and_writes_nothing(
    pg: PostgresStore, raw: RawDb, pg_deliver: Deliver
) -> None:
    support.add_meter(pg)
    pg_deliver(support.row("2024-07-10T00:00:00+00:00", "0.5"))  # a partition made later
    raw.execute("SET ROLE meterledger_reader")
    try:
        assert raw.scalar("SELECT count(*) FROM readings") == 1
        assert raw.scalar("SELECT count(*) FROM audit_log") == 2
        assert raw.scalar("SELECT count(*) FROM meters") == 1
        for statement in (
            "INSERT INTO batches (source, format, received_at) VALUES ('x', 'csv', 'now')",
            "UPDATE readings SET value = 0",
            "DELETE FROM quarantine",
            "CREATE TABLE intruder (x int)",
        ):
            with raw.refused("permission denied"):
                raw.execute(statement)
    finally:
        raw.execute("RESET ROLE")
    assert raw.scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'meterledger_reader'") is (
        False
    )


def test_the_audit_triggers_hold_for_the_tables_owner(pg: PostgresStore, raw: RawDb) -> None:
    support.add_meter(pg)
    for statement in (
        "UPDATE audit_log SET kind = 'x'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with raw.refused("audit_log is append-only"):
            raw.execute(statement)
    assert verify(pg).ok


# -- errors and URLs ----------------------------------------------------------------------


def test_an_unreachable_server_is_a_transient_error_naming_it() -> None:
    with pytest.raises(
        TransientStoreError, match=r"cannot connect to postgresql://127\.0\.0\.1:1/"
    ):
        open_store("postgresql://127.0.0.1:1/nothing")


def test_a_password_in_the_url_is_not_repeated_in_errors() -> None:
    with pytest.raises(TransientStoreError) as caught:
        open_store("postgresql://user:s3cret@127.0.0.1:1/nothing")
    assert "s3cret" not in str(caught.value)


def test_an_unknown_url_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="postgresql://"):
        open_store("mysql://localhost/x")


def test_postgres_scheme_alias_opens_the_same_store(pg: PostgresStore) -> None:
    support.add_meter(pg)
    alias = open_store("postgres://" + pg.url.split("://", 1)[1])
    try:
        assert [m.meter_id for m in alias.list_meters()] == ["M1"]
    finally:
        alias.close()


def _meter(meter_id: str) -> MeterRecord:
    return MeterRecord(
        meter_id, "electric", "kWh", "UTC", None, "active", 25_000_000, "2024-01-01T00:00:00+00:00"
    )


# -- backup and restore ---------------------------------------------------------------------


def test_a_pg_dump_restore_keeps_the_chain_verifiable(
    pg: PostgresStore, raw: RawDb, pg_deliver: Deliver, tmp_path: Path
) -> None:
    """docs/storage.md's procedure: pg_dump -Fc, pg_restore into a new database, verify,
    and the head recorded before the backup is still there."""
    import shutil
    import subprocess

    import psycopg

    from backends import ADMIN_URL

    for tool in ("pg_dump", "pg_restore"):  # installed with the server's client tools
        assert shutil.which(tool) is not None, f"{tool} is not installed"
    support.add_meter(pg)
    pg_deliver(
        support.row("2024-01-31T23:45:00+00:00", "0.1"),
        support.row("2024-02-01T00:15:00+00:00", "0.2", quality="estimated"),
        support.row("2024-02-01T00:30:00+00:00", "oops"),
    )
    pg_deliver(support.row("2024-02-01T00:15:00+00:00", "0.25"))  # an actual replaces it
    head = list(pg.audit_rows())[-1]
    base, _, options = pg.url.partition("?")
    schema = options.rpartition("%3D")[2]
    dump = tmp_path / "ml.dump"
    subprocess.run(["pg_dump", "-Fc", "-n", schema, "-f", str(dump), base], check=True, timeout=120)
    target = f"ml_test_restore_{schema}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{target}"')
    try:
        restored_base = base.rpartition("/")[0] + "/" + target
        subprocess.run(
            ["pg_restore", "--exit-on-error", "-d", restored_base, str(dump)],
            check=True,
            timeout=120,
        )
        restored = open_store(f"{restored_base}?{options}")
        try:
            assert restored.migrate() == []
            report = verify(restored, expect_head=(head.seq, head.hash))
            assert report.ok, report.as_dict()
            assert report.rows_checked == 3  # two current readings, the estimate replaced
            assert restored.all_readings().equals(pg.all_readings())
            assert restored.count("quarantine") == 1
            # the protection came back with the schema
            with RawDb(restored.url) as check, check.refused("audit_log is append-only"):
                check.execute("DELETE FROM audit_log")
        finally:
            restored.close()
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')


def test_a_batch_spanning_centuries_gets_its_partitions_in_small_transactions(
    pg: PostgresStore, raw: RawDb, pg_deliver: Deliver
) -> None:
    """One reading in each of 150 months from 1991 on (more months than one partition
    transaction makes, 48) and two from long before, in one batch: every reading stored, the
    old ones in the one partition for everything up to 1990."""
    support.add_meter(pg)
    lines = [
        support.row(f"{1991 + n // 12}-{n % 12 + 1:02d}-15T00:00:00+00:00", "0.1")
        for n in range(150)
    ]
    lines += [
        support.row("0001-01-01T00:15:00+00:00", "0.2"),
        support.row("1900-01-01T00:15:00+00:00", "0.3"),
    ]
    result = pg_deliver(*lines)
    assert result.batches == 1
    assert result.counts.accepted == 152
    made = raw.scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = 'readings'::regclass")
    assert made == 150 + 3  # and the floor, this month's and next month's
    old = raw.scalar(
        "SELECT count(*) FROM readings WHERE tableoid = 'readings_before_1990'::regclass"
    )
    assert old == 2
    assert verify(pg).ok


def test_a_detached_month_is_a_clear_error_not_a_crash(
    pg: PostgresStore, raw: RawDb, pg_deliver: Deliver
) -> None:
    """Retention detached 2019-01 and has not dropped it yet: a late reading for that month
    is refused with what to do, and nothing of the batch is stored."""
    support.add_meter(pg)
    pg_deliver(support.row("2019-01-10T00:00:00+00:00", "0.1"))
    for table in ("readings", "reading_versions"):
        raw.execute(f"ALTER TABLE {table} DETACH PARTITION {table}_p201901")
    with pytest.raises(TerminalStoreError, match=r"detached \(reading_versions_p201901"):
        pg_deliver(
            support.row("2019-01-10T00:15:00+00:00", "0.2"),
            support.row("2024-01-10T00:15:00+00:00", "0.2"),
        )
    assert pg.count("batches") == 1
    lo, hi = epoch("2019-01-01T00:00:00+00:00") + 1, epoch("2019-02-01T00:00:00+00:00") + 1
    for table in ("readings", "reading_versions"):  # DDL takes no parameters
        raw.execute(
            f"ALTER TABLE {table} ATTACH PARTITION {table}_p201901 FOR VALUES FROM ({lo}) TO ({hi})"
        )
    retry = pg_deliver(
        support.row("2019-01-10T00:15:00+00:00", "0.2"),
        support.row("2024-01-10T00:15:00+00:00", "0.2"),
    )
    assert retry.counts.accepted == 2
    assert verify(pg).ok


# -- the read-only role at work -------------------------------------------------------------


@pytest.fixture
def reader_url(pg: PostgresStore) -> Iterator[str]:
    """A login in ``meterledger_reader`` and the store URL that uses it."""
    import uuid

    import psycopg

    from backends import ADMIN_URL

    name = f"ml_test_reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{name}" LOGIN IN ROLE meterledger_reader')
    yield pg.url.replace("postgresql://", f"postgresql://{name}@", 1)
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP ROLE IF EXISTS "{name}"')


def test_a_reader_login_runs_the_read_commands_while_a_writer_holds_the_lock(
    pg: PostgresStore, pg_deliver: Deliver, reader_url: str
) -> None:
    from typer.testing import CliRunner

    from meterledger.cli.app import app

    support.add_meter(pg)
    pg_deliver(support.row("2024-01-10T00:00:00+00:00", "0.1"))
    runner = CliRunner()
    outcomes: dict[str, int] = {}
    with pg.write() as tx:  # a writer holds the lock the whole time
        register_meter(tx, _meter("M2"))
        for command in (["audit", "verify"], ["meters", "list"], ["quarantine", "list"]):
            done = threading.Event()

            def run(args: list[str] = command, finished: threading.Event = done) -> None:
                result = runner.invoke(app, [*args, "--db", reader_url, "--json"])
                outcomes[" ".join(args)] = result.exit_code
                finished.set()

            threading.Thread(target=run, daemon=True).start()
            assert done.wait(timeout=30), f"{command} waited for the writer"
    assert outcomes == {"audit verify": 0, "meters list": 0, "quarantine list": 0}
    reader = open_store(reader_url)
    try:
        with pytest.raises(TerminalStoreError, match="permission denied"), reader.write() as tx:
            register_meter(tx, _meter("M3"))
    finally:
        reader.close()


# -- failures inside a write -----------------------------------------------------------------


def test_a_statement_error_swallowed_inside_a_write_is_not_a_silent_commit(
    pg: PostgresStore,
) -> None:
    with pytest.raises(TerminalStoreError, match="nothing stored"), pg.write() as tx:
        register_meter(tx, _meter("M1"))
        with contextlib.suppress(StoreError):  # a careless caller goes on
            tx.insert_audit(_forged_entry())
    assert pg.list_meters() == []


def test_errors_inside_a_write_are_ours(pg: PostgresStore) -> None:
    with pytest.raises(StoreError, match="append-only"), pg.write() as tx:
        tx.insert_audit(_forged_entry())


def test_a_closed_store_says_so(pg_url: str) -> None:
    store = open_store(pg_url)
    store.close()
    with pytest.raises(TerminalStoreError, match="closed"):
        store.list_meters()


def test_a_search_path_naming_no_schema_is_a_config_error(pg_url: str) -> None:
    missing = pg_url.rpartition("%3D")[0] + "%3Dno_such_schema"
    with pytest.raises(ConfigError, match="no schema of search_path exists"):
        open_store(missing)


def _forged_entry() -> AuditRow:
    return AuditRow(99, "t", "forged", "x", "{}", "0" * 64, "f" * 64)


def test_lock_timeout_in_the_url_bounds_the_wait_with_a_transient_error(
    pg: PostgresStore,
) -> None:
    impatient = open_store(pg.url + "%20-c%20lock_timeout%3D300ms")
    try:
        with pg.write() as tx:
            register_meter(tx, _meter("M1"))
            started = time.monotonic()
            with pytest.raises(TransientStoreError, match="lock"), impatient.write() as tx2:
                register_meter(tx2, _meter("M2"))
            assert time.monotonic() - started < 5
        assert [m.meter_id for m in impatient.list_meters()] == ["M1"]
    finally:
        impatient.close()
