"""Properties of the whole ingest: whatever arrives, nothing crashes and nothing is dropped.

Every data line ends up stored, counted as a duplicate, or in quarantine. With a valid header
nothing may raise at all (a MeterledgerError would lose the batch); anything else is a crash.

Accounting: a ``REVISION_CONFLICT`` row is both a held version (``conflicts``) and a quarantine
record (``quarantined``), so ``conflicts`` is a part of the quarantine counts, not an outcome of
its own: ``records == accepted + duplicates + superseded + ignored + quarantined +
quarantine_duplicates``.

Each property runs on both backends, every example on a fresh store: SQLite in memory, 100
examples; PostgreSQL 15 examples, on one store per test that is put back between examples to
the state it was made in (see :class:`PgExamples`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import backends
from backends import RawDb
from meterledger.core.errors import MeterledgerError
from meterledger.ingest.pipeline import IngestOptions, Ingestor, IngestResult
from meterledger.ingest.records import FIELDS
from meterledger.store import open_store
from meterledger.store.base import BatchCounts, Store
from support import HEADER, NOW, add_meter

PROPERTY = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PG_PROPERTY = settings(PROPERTY, max_examples=15)

# A line of only spaces and tabs (after a trailing CR) is blank; the parsers skip it.


def add_meters(store: Store) -> None:
    add_meter(store)  # M1: electric, UTC, 25 kW
    add_meter(store, "K1", tz="Asia/Kolkata")
    add_meter(store, "NY1", tz="America/New_York")
    add_meter(store, "R1", status="retired")


@contextmanager
def sqlite_store() -> Iterator[Store]:
    store = open_store("sqlite:///:memory:")
    add_meters(store)
    try:
        yield store
    finally:
        store.close()


# The tables ingest writes to; meters, channels and registry_version are set up once.
_WRITTEN = ("reading_versions", "readings", "quarantine", "anomalies", "batches")
_RELATIONS = (
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
)
_SEQUENCES = "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = current_schema()"


class PgExamples:
    """One PostgreSQL store for every example of a test, put back between examples.

    Made once (migrated, the four meters registered), it is noted down: its tables, audit
    entries and sequence positions. After each example every table made since (the monthly
    partitions ingest adds) is dropped, the rows ingest wrote are deleted, the audit entries
    past the noted ones too (with the audit guards off for that moment) and the sequences
    restarted, so the next example opens a store on the same state a new one has. Measured:
    about 0.02 s an example (plus dropping the partitions it made), where a new schema,
    migrated and given the meters, costs 0.15-0.5 s and a new database most of a second."""

    def __init__(self) -> None:
        self.url = backends.create_pg_store_url()
        store = open_store(self.url)
        add_meters(store)
        store.close()
        self.raw = RawDb(self.url)
        self.tables = {row[0] for row in self.raw.execute(_RELATIONS)}
        self.audit_seq = int(self.raw.scalar("SELECT max(seq) FROM audit_log"))
        self.sequences = self.raw.execute(_SEQUENCES)

    @contextmanager
    def store(self) -> Iterator[Store]:
        store = open_store(self.url)
        try:
            yield store
        finally:
            store.close()
            self.reset()

    def reset(self) -> None:
        raw = self.raw
        raw.execute("BEGIN")
        for (name,) in raw.execute(_RELATIONS):
            if name not in self.tables:
                # IF EXISTS: a partition of a new partitioned table went with its parent
                raw.execute(f'DROP TABLE IF EXISTS "{name}"')
        for table in _WRITTEN:
            raw.execute(f"DELETE FROM {table}")
        raw.drop_audit_guards()
        raw.execute("DELETE FROM audit_log WHERE seq > ?", (self.audit_seq,))
        raw.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")
        for name, last in self.sequences:
            if last is None:
                raw.execute(f'ALTER SEQUENCE "{name}" RESTART')
            else:
                raw.execute("SELECT setval(?, ?)", (name, last))
        raw.execute("COMMIT")

    def drop(self) -> None:
        self.raw.close()
        backends.drop_pg_store_url(self.url)


@dataclass(frozen=True)
class Examples:
    """How a property runs on one backend: its settings, and a fresh store per example."""

    settings: settings
    store: Callable[[], AbstractContextManager[Store]]


@pytest.fixture
def examples(backend: str) -> Iterator[Examples]:
    if backend == "sqlite":
        yield Examples(PROPERTY, sqlite_store)
        return
    database = PgExamples()
    try:
        yield Examples(PG_PROPERTY, database.store)
    finally:
        database.drop()


def run(store: Store, data: bytes, fmt: str, block_bytes: int = 256) -> IngestResult:
    try:
        return Ingestor(store, now=NOW).ingest_stream(
            io.BytesIO(data), fmt=fmt, source="prop", options=IngestOptions(block_bytes=block_bytes)
        )
    except MeterledgerError:
        raise
    except Exception as exc:  # pragma: no cover - this is the failure being tested for
        pytest.fail(f"ingest raised {type(exc).__name__}, not a MeterledgerError: {exc}")


def assert_accounted(store: Store, counts: BatchCounts, data_lines: int) -> None:
    """Every data line is accounted for, and the store holds exactly what the counts say."""
    assert counts.records == data_lines
    assert counts.records == (
        counts.accepted
        + counts.duplicates
        + counts.superseded
        + counts.ignored
        + counts.quarantined
        + counts.quarantine_duplicates
    )
    held = store.list_quarantine()
    assert store.count("readings") == counts.accepted
    assert len(held) == counts.quarantined
    assert all(q.reasons for q in held)
    assert sum(counts.reasons.values()) >= counts.quarantined
    conflicts = [q for q in held if q.reasons == ("REVISION_CONFLICT",)]
    assert len(conflicts) <= counts.conflicts <= counts.quarantined + counts.quarantine_duplicates


def csv_is_blank(line: bytes) -> bool:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return False  # kept (escaped) and quarantined as MALFORMED_ROW
    return text.removesuffix("\r").strip(" \t") == ""  # only spaces and tabs make a line blank


def csv_data_lines(body: bytes) -> int:
    lines = body.split(b"\n")
    if body.endswith(b"\n"):
        lines.pop()
    return sum(not csv_is_blank(line) for line in lines)


def jsonl_data_lines(body: bytes) -> int:
    lines = body.split(b"\n")
    if body.endswith(b"\n"):
        lines.pop()
    count = 0
    for line in lines:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            count += 1
            continue
        count += bool(text.rstrip("\r").strip(" \t"))
    return count


def test_revision_conflict_is_counted_as_conflict_and_quarantined(examples: Examples) -> None:
    """Pins the accounting above: two actuals for one key in two batches of one file."""
    first = "M1,1.0.1.8.0.255,2024-01-01T00:15:00Z,900,1,kWh,actual"
    second = "M1,1.0.1.8.0.255,2024-01-01T00:15:00Z,900,2,kWh,actual"
    with examples.store() as store:
        result = run(store, f"{HEADER}\n{first}\n{second}\n".encode(), "csv", block_bytes=16)
        assert result.batches == 2
        counts = result.counts
        assert (counts.records, counts.accepted, counts.conflicts, counts.quarantined) == (
            2,
            1,
            1,
            1,
        )
        assert [(q.reasons, q.raw) for q in store.list_quarantine()] == [
            (("REVISION_CONFLICT",), second)
        ]
        assert_accounted(store, counts, 2)


# -- arbitrary text and bytes after a valid header ------------------------------------------

line_text = st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=80)
csv_ish = st.lists(
    st.one_of(
        st.sampled_from(["", ",", "M1", "1.0.1.8.0.255", "900", "1.5", "kWh", '"', " "]), line_text
    ),
    min_size=1,
    max_size=9,
).map(",".join)


def test_arbitrary_text_lines_are_all_accounted_for(examples: Examples) -> None:
    @examples.settings
    @given(
        st.lists(st.one_of(line_text, csv_ish), max_size=25), st.sampled_from([32, 256, 1 << 20])
    )
    def check(lines: list[str], block_bytes: int) -> None:
        body = "".join(f"{line}\n" for line in lines).encode()
        with examples.store() as store:
            result = run(store, f"{HEADER}\n".encode() + body, "csv", block_bytes)
            assert_accounted(store, result.counts, csv_data_lines(body))

    check()


def test_arbitrary_bytes_are_all_accounted_for(examples: Examples) -> None:
    @examples.settings
    @given(st.binary(max_size=600), st.sampled_from([16, 256, 1 << 20]))
    @example(b"\x00\n", 16)  # a NUL, which PostgreSQL text cannot hold, kept in the raw
    def check(body: bytes, block_bytes: int) -> None:
        with examples.store() as store:
            result = run(store, f"{HEADER}\n".encode() + body, "csv", block_bytes)
            assert_accounted(store, result.counts, csv_data_lines(body))

    check()


def test_arbitrary_bytes_as_json_lines_are_all_accounted_for(examples: Examples) -> None:
    @examples.settings
    @given(st.binary(max_size=400))
    @example(b'{"meter_id": "M1"}\x00\n')
    def check(body: bytes) -> None:
        with examples.store() as store:
            result = run(store, body, "jsonl", 64)
            assert_accounted(store, result.counts, jsonl_data_lines(body))

    check()


# -- JSON lines with arbitrary JSON values in the fields ---------------------------------------

# st.text() leaves out lone surrogates; a JSON "\\ud800" escape is an xfail in test_delimited.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
plausible = {
    "meter_id": st.sampled_from(["M1", "K1", "R1", "M2", "M 1", ""]),
    "channel": st.sampled_from(["1.0.1.8.0.255", "1-0:2.8.0", "1.0.16.8.0.255", "x"]),
    "interval_end": st.sampled_from(
        ["2024-01-01T00:15:00Z", "2024-01-01T00:30:00+05:30", "2030-01-01T00:00:00Z", "no"]
    ),
    "interval_seconds": st.sampled_from([900, 3600, "900", 7, 0]),
    "value": st.sampled_from(["1.5", 0.25, 1, -1, "NaN", "1e3", 10**30]),
    "unit": st.sampled_from(["kWh", "Wh", "L", "kwh"]),
    "quality": st.sampled_from(["actual", "estimated:linear|power-outage", "bad"]),
}
json_records = st.fixed_dictionaries(
    {},
    optional={
        **{name: st.one_of(plausible[name], json_values) for name in FIELDS},
        "extra": json_values,
    },
)


def test_arbitrary_json_values_are_all_accounted_for(examples: Examples) -> None:
    @examples.settings
    @given(st.lists(st.one_of(json_records, json_values), min_size=1, max_size=15))
    def check(records: list[object]) -> None:
        body = "".join(json.dumps(record) + "\n" for record in records).encode()
        with examples.store() as store:
            result = run(store, body, "jsonl", 128)
            assert_accounted(store, result.counts, len(records))

    check()


# -- valid-looking rows ---------------------------------------------------------------------------


def mostly(good: list[str], other: list[str]) -> st.SearchStrategy[str]:
    """Usually a good choice, often enough a bad one."""
    return st.one_of(st.sampled_from(good), st.sampled_from(good), st.sampled_from(good + other))


meter_ids = mostly(["M1", "K1", "NY1"], ["R1", "M2", "UNKNOWN-7", "M 1", "-M1", "", "M,1"])
channels = mostly(
    ["1.0.1.8.0.255", "1-0:2.8.0", "1.0.16.8.0.255"], ["1-0:3.8.0", "8.0.1.0.0.255", "1.0.99"]
)
units = mostly(["Wh", "kWh", "MWh"], ["varh", "kvarh", "L", "m3", "kwh", "J", ""])
seconds = mostly(["900"], ["1800", "3600", "86400", "300", "7", "0", "-900", "abc", ""])
qualities = mostly(["actual", "", "estimated", "edited|suspect"], ["weird"])
offsets = st.integers(-14 * 4, 14 * 4).map(lambda q: timezone(timedelta(minutes=15 * q)))


def decimal_text(digits: int, scale: int, sign: str = "", zeros: int = 0) -> str:
    """``sign`` + ``digits`` / 10**scale written out in full, with ``zeros`` leading zeros."""
    body = str(digits).rjust(scale + 1, "0")
    whole, frac = body[: len(body) - scale], body[len(body) - scale :]
    return sign + "0" * zeros + whole + ("." + frac if scale else "")


values = st.one_of(
    st.builds(decimal_text, st.integers(0, 6_000), st.just(3)),
    st.builds(decimal_text, st.integers(0, 6_000), st.just(3)),
    st.builds(
        decimal_text, st.integers(0, 10**20), st.integers(0, 12), st.sampled_from(["", "-", "+"])
    ),
    st.sampled_from(["", "NaN", "null", "abc", "1e3", "1.2.3", "."]),
)


def instants(first_year: int, last_year: int) -> st.SearchStrategy[str]:
    """Quarter-hour instants (sometimes a few minutes off), written with a random offset."""
    return st.builds(
        lambda moment, minutes, tz: (
            (
                moment.replace(minute=moment.minute // 15 * 15, second=0, microsecond=0)
                + timedelta(minutes=minutes)
            )
            .astimezone(tz)
            .isoformat()
        ),
        st.datetimes(
            datetime(first_year, 1, 2), datetime(last_year, 12, 30), timezones=st.just(UTC)
        ),
        st.sampled_from([0, 0, 0, 0, 5, 30]),
        offsets,
    )


def rows_strategy(
    timestamps: st.SearchStrategy[str], value_texts: st.SearchStrategy[str] = values
) -> st.SearchStrategy[list[str]]:
    row = st.tuples(meter_ids, channels, timestamps, seconds, value_texts, units, qualities)
    return st.lists(row.map(",".join), min_size=1, max_size=20)


def check_rows(examples: Examples, rows: list[str]) -> None:
    body = "".join(f"{line}\n" for line in rows).encode()
    with examples.store() as store:
        result = run(store, f"{HEADER}\n".encode() + body, "csv", 512)
        assert_accounted(store, result.counts, len(rows))
        held = store.list_quarantine()
        assert {q.raw for q in held} <= set(rows)
        assert all(q.record_no is not None and 2 <= q.record_no <= len(rows) + 1 for q in held)


def test_valid_looking_rows_are_stored_or_quarantined(examples: Examples) -> None:
    @examples.settings
    @given(rows_strategy(instants(2000, 2026)))
    def check(rows: list[str]) -> None:
        check_rows(examples, rows)

    check()


def test_valid_looking_rows_over_all_years_and_digits(examples: Examples) -> None:
    @examples.settings
    @given(
        rows_strategy(
            instants(1, 9999),
            st.one_of(values, st.text(st.characters(categories=["Nd"]), min_size=1, max_size=4)),
        )
    )
    @example(["M1,1.0.1.8.0.255,0001-01-01T00:15:00+01:00,900,1,kWh,actual"])
    @example(["NY1,1.0.1.8.0.255,0001-01-01T00:15:00+00:00,900,1,kWh,actual"])
    @example(["M1,1.0.1.8.0.255,2024-01-01T00:15:00Z,900,\u0661,kWh,actual"])
    @example(  # one batch spanning 124 years: PostgreSQL partitions only the months it holds
        [
            "M1,1.0.1.8.0.255,1900-01-01T00:15:00Z,900,1,kWh,actual",
            "M1,1.0.1.8.0.255,2024-06-01T00:15:00Z,900,2,kWh,actual",
        ]
    )
    def check(rows: list[str]) -> None:
        check_rows(examples, rows)

    check()


# -- valid rows: every one stored, with exactly its value -----------------------------------------

CAPACITY_900 = 6_250_000  # 25 kW for 900 s, in mWh
ENERGY_UNITS = {"Wh": 3, "kWh": 6, "MWh": 9}


@st.composite
def valid_row(draw: st.DrawFn) -> tuple[tuple[str, str, int], str, int]:
    meter = draw(st.sampled_from(["M1", "K1", "NY1"]))
    channel, lowest = draw(
        st.sampled_from([("1.0.1.8.0.255", 0), ("1.0.2.8.0.255", 0), ("1.0.16.8.0.255", -1)])
    )
    milli = draw(st.integers(lowest * CAPACITY_900, CAPACITY_900))
    unit = draw(st.sampled_from(sorted(ENERGY_UNITS)))
    sign = "-" if milli < 0 else draw(st.sampled_from(["", "+"]))
    extra = draw(st.integers(0, 3))
    text = decimal_text(
        abs(milli) * 10**extra, ENERGY_UNITS[unit] + extra, sign, draw(st.integers(0, 2))
    )
    quarter = draw(st.integers(0, 4 * 24 * 366 * 10))  # 2014..2024, on the quarter hour
    end = datetime(2014, 1, 1, 0, 15, tzinfo=UTC) + timedelta(minutes=15 * quarter)
    epoch = int(end.timestamp())
    shown = end.astimezone(draw(offsets)).isoformat()
    line = ",".join(
        [
            meter,
            channel,
            shown,
            "900",
            text,
            unit,
            draw(st.sampled_from(["actual", "", "estimated:like-day", "edited"])),
        ]
    )
    return (meter, channel, epoch), line, milli


def test_valid_rows_are_all_stored_with_their_exact_value(examples: Examples) -> None:
    @examples.settings
    @given(st.lists(valid_row(), min_size=1, max_size=25, unique_by=lambda r: r[0]))
    def check(rows: list[tuple[tuple[str, str, int], str, int]]) -> None:
        body = "".join(f"{line}\n" for _, line, _ in rows).encode()
        with examples.store() as store:
            result = run(store, f"{HEADER}\n".encode() + body, "csv", 300)
            assert store.list_quarantine() == []
            assert result.counts.accepted == len(rows)
            stored = {
                (m, c, e): v
                for m, c, e, v in store.all_readings()
                .select("meter_id", "channel", "interval_end", "value")
                .iter_rows()
            }
            assert stored == {key: milli for key, _, milli in rows}

    check()
