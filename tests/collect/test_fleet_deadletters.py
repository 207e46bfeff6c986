"""The DLMS handoff through dead letters, end to end: the simulator on loopback TCP, a real
store made to refuse every batch by a trigger of its own (SQLite: a constraint error, which
no retry cures; PostgreSQL: a serialization failure, which a retry may cure, so the
delivery is tried per DELIVERY_POLICY), the dead letters replayed once the store is well;
a PostgreSQL store that recovers within the retries; and a collector logged in as a role
that may not insert readings, whose dead letters the owner replays."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from backends import ADMIN_URL, RawDb, create_pg_store_url, drop_pg_store_url, require_pg
from meterledger.cli.collect import StoreLedger
from meterledger.cli.feeds import replay_dead_letters
from meterledger.collect.config import Fleet, parse_fleet
from meterledger.collect.deadletter import DELIVERY_POLICY
from meterledger.collect.fleet import CollectRun, FleetCollector
from meterledger.ingest import audit
from meterledger.simulate.dlms_server import DlmsSimulator, SimulatorConfig
from meterledger.store import open_store
from meterledger.store.base import Store
from support import add_meter

START = datetime(2024, 3, 1, tzinfo=UTC)
NOW = START + timedelta(days=1)
IDS = ["MTR-00001", "MTR-00002"]
INTERVALS = 95  # a day of 96 rows; the first is the baseline

SQLITE_REFUSE = (
    "CREATE TRIGGER refuse_batches BEFORE INSERT ON batches"
    " BEGIN SELECT RAISE(ABORT, 'batches refused'); END"
)
PG_REFUSE = (
    "CREATE FUNCTION refuse_batch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001'; END $$",
    "CREATE TRIGGER refuse_batches BEFORE INSERT ON batches"
    " FOR EACH ROW EXECUTE FUNCTION refuse_batch()",
)


def refuse_batches(raw: RawDb) -> None:
    for statement in (SQLITE_REFUSE,) if raw.backend == "sqlite" else PG_REFUSE:
        raw.execute(statement)


def fleet_for(port: int) -> Fleet:
    return parse_fleet(
        {
            "collector": {"attempts": 1, "backoff_initial": 0, "backoff_max": 0},
            "defaults": {"host": "127.0.0.1", "port": port, "timeout": 2, "timezone": "UTC"},
            "meters": [{"meter_id": m, "server_sap": 1 + i} for i, m in enumerate(IDS)],
        }
    )


def collect(stores: list[Store], sleeps: list[float]) -> list[CollectRun]:
    """One forced collection at NOW into each store, against one simulator."""

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def main() -> list[CollectRun]:
        config = SimulatorConfig(meters=2, port=0, start=START, days=1, tz="UTC", clock=lambda: NOW)
        runs = []
        async with DlmsSimulator(config) as sim:
            for store in stores:
                ledger = StoreLedger(store, now=lambda: NOW)
                collector = FleetCollector(
                    fleet_for(sim.port), ledger, force=True, clock=NOW.timestamp, sleep=sleep
                )
                runs.append(await collector.run())
        return runs

    return asyncio.run(main())


def readings_of(store: Store) -> list[tuple[str, int, int]]:
    rows = []
    for meter_id in IDS:
        frame = store.readings(meter_id, 0, 2**40, "1.0.1.8.0.255")
        for end, value in zip(
            frame["interval_end"].to_list(), frame["value"].to_list(), strict=True
        ):
            rows.append((meter_id, int(end), int(value)))
    return rows


def test_a_refused_handoff_is_dead_lettered_per_meter_and_replayed_exactly_once(
    store: Store, raw_db: RawDb, tmp_path: Path
) -> None:
    for meter_id in IDS:
        add_meter(store, meter_id, tz="UTC", capacity=1_000_000_000)
    clean = open_store(f"sqlite:///{tmp_path / 'clean.db'}")  # what the meters serve
    for meter_id in IDS:
        add_meter(clean, meter_id, tz="UTC", capacity=1_000_000_000)
    refuse_batches(raw_db)
    sleeps: list[float] = []

    run, reference = collect([store, clean], sleeps)
    served = readings_of(clean)
    assert len(served) == len(IDS) * INTERVALS

    transient = raw_db.backend == "postgresql"  # a serialization failure may pass next time
    attempts = DELIVERY_POLICY.attempts if transient else 1
    letters = {d.source: d for d in store.list_dead_letters(feed="dlms")}
    assert sorted(letters) == IDS  # one dead letter per meter, source the meter
    for result in run.results:
        letter = letters[result.meter_id]
        assert (result.ok, result.code, result.intervals) == (False, "E08", 0)
        assert result.dead_letter == letter.dead_letter_id
        assert f"kept as dead letter {letter.dead_letter_id}" in result.message
        assert f"{INTERVALS} reading(s) not stored after {attempts} attempt(s)" in result.message
        assert letter.status == "open" and letter.fmt == "csv" and letter.attempts == attempts
        assert ("could not serialize" if transient else "batches refused") in letter.error
        lines = letter.payload.decode().splitlines()
        assert lines[0].startswith("meter_id,channel,interval_end")
        assert len(lines) == 1 + INTERVALS and all(result.meter_id in x for x in lines[1:])
    # full-jitter backoff before each retry: [0, 0.5), [0, 1), [0, 2) per meter
    assert len(sleeps) == (len(IDS) * (attempts - 1))
    assert all(0 <= s < DELIVERY_POLICY.initial * 2**2 for s in sleeps)
    assert run.handoff.accepted == 0 and store.count("readings") == 0
    # not stored, so not read as far as the schedule goes: both meters stay due
    assert [store.clock_reads(m) for m in IDS] == [[], []]
    assert all(len(clean.clock_reads(m)) == 1 for m in IDS)
    assert reference.handoff.accepted == len(served) and not reference.failed

    raw_db.execute("DROP TRIGGER refuse_batches" + (" ON batches" if transient else ""))
    if transient:
        raw_db.execute("DROP FUNCTION refuse_batch() CASCADE")
    done = replay_dead_letters(store, feed="dlms")
    assert [(r.outcome, r.accepted, r.duplicates) for r in done] == [
        ("replayed", INTERVALS, 0)
    ] * len(IDS)
    assert readings_of(store) == served  # every value the meters served, each once
    ids = [letters[m].dead_letter_id for m in IDS]
    again = replay_dead_letters(store, ids)
    assert [r.outcome for r in again] == ["skipped"] * len(IDS)  # not open: no second effect
    assert store.list_dead_letters(feed="dlms") == []  # none open
    assert readings_of(store) == served

    # the next collection finds everything stored: nothing new, no second version
    (after,) = collect([store], sleeps)
    assert not after.failed and after.handoff.accepted == 0
    assert readings_of(store) == served
    assert int(raw_db.scalar("SELECT count(*) FROM reading_versions")) == 0
    report = audit.verify(store)
    assert report.ok, report.as_dict()
    clean.close()


def test_a_store_that_recovers_within_the_retries_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    """PostgreSQL refuses the first three batch inserts with a serialization failure (a
    sequence counts them: it is not rolled back), whether of a batch or of one meter's
    retry. The retries, after a jittered backoff, go through before the attempts run out."""
    require_pg()
    url = create_pg_store_url()
    try:
        store = open_store(url)
        clean = open_store(f"sqlite:///{tmp_path / 'clean.db'}")
        for target in (store, clean):
            for meter_id in IDS:
                add_meter(target, meter_id, tz="UTC", capacity=1_000_000_000)
        with RawDb(url) as raw:
            raw.execute("CREATE SEQUENCE refusals")
            raw.execute(
                "CREATE FUNCTION refuse_batch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " IF nextval('refusals') <= 3 THEN RAISE EXCEPTION 'could not serialize'"
                " USING ERRCODE = '40001'; END IF; RETURN NEW; END $$"
            )
            raw.execute(PG_REFUSE[1])
            sleeps: list[float] = []
            run, reference = collect([store, clean], sleeps)
            tries = int(raw.scalar("SELECT last_value FROM refusals"))
        assert 3 < tries <= 3 + len(IDS)  # three refused, then each batch once
        assert [(r.ok, r.code, r.intervals, r.dead_letter) for r in run.results] == [
            (True, None, INTERVALS, None)
        ] * len(IDS)
        # a retry only after a backoff in [0, 0.5 * 2**n): three refusals, at most three
        assert 1 <= len(sleeps) <= 3 and all(0 <= s < 2.0 for s in sleeps)
        assert store.list_dead_letters(status=None) == []
        assert run.handoff.accepted == len(IDS) * INTERVALS
        assert readings_of(store) == readings_of(clean)
        assert reference.handoff.accepted == len(IDS) * INTERVALS
        assert all(len(store.clock_reads(m)) == 1 for m in IDS)  # read, stored: not due
        assert audit.verify(store).ok
        store.close()
        clean.close()
    finally:
        drop_pg_store_url(url)


def test_a_role_without_insert_dead_letters_and_the_owner_replays(tmp_path: Path) -> None:
    """The collector logs in as a role that may read the store and keep dead letters, but
    not insert readings (permission denied: terminal, no retry). The owner replays."""
    require_pg()
    import psycopg

    url = create_pg_store_url()
    role = f"ml_test_collector_{uuid.uuid4().hex[:8]}"
    try:
        owner = open_store(url)
        for meter_id in IDS:
            add_meter(owner, meter_id, tz="UTC", capacity=1_000_000_000)
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE ROLE "{role}" LOGIN IN ROLE meterledger_reader')
        with RawDb(url) as raw:
            raw.execute(f'GRANT INSERT ON dead_letters TO "{role}"')
            schema = str(raw.scalar("SELECT current_schema()"))
            raw.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"')
        collector_store = open_store(url.replace("postgresql://", f"postgresql://{role}@", 1))
        run, clean_run = collect([collector_store, open_clean(tmp_path)], [])
        collector_store.close()
        assert [(r.code, r.attempts) for r in run.results] == [("E08", 1)] * len(IDS)
        letters = owner.list_dead_letters(feed="dlms")
        assert sorted(d.source for d in letters) == IDS
        assert all(d.attempts == 1 and "permission denied" in d.error for d in letters)
        assert owner.count("readings") == 0
        done = replay_dead_letters(owner, feed="dlms")
        assert [(r.outcome, r.accepted) for r in done] == [("replayed", INTERVALS)] * len(IDS)
        assert owner.count("readings") == clean_run.handoff.accepted == len(IDS) * INTERVALS
        assert audit.verify(owner).ok
        owner.close()
    finally:
        drop_pg_store_url(url)  # its grants go with the schema: the role holds nothing more
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def open_clean(tmp_path: Path) -> Store:
    clean = open_store(f"sqlite:///{tmp_path / 'clean.db'}")
    for meter_id in IDS:
        add_meter(clean, meter_id, tz="UTC", capacity=1_000_000_000)
    return clean
