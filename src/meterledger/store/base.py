"""The Store interface. Every backend (SQLite, PostgreSQL) implements it unchanged.

Reads and writes of bulk readings pass polars frames with these columns (all Int64):
``channel_id, interval_end, interval_seconds, value, quality, batch_id, received_at,
version``. ``interval_end`` and ``received_at`` are UTC epoch seconds.

Writes happen only inside ``with store.write() as tx:``; the backend makes that one
serialised transaction (SQLite ``BEGIN IMMEDIATE``), so a read inside ``tx`` followed by a
write cannot race another writer, and a crash leaves either all of it or none of it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager

import numpy as np
import polars as pl

from meterledger.store.arrays import BillingArrays
from meterledger.store.collect_sql import ClockRead, Counters
from meterledger.store.feeds_sql import FeedReadAPI, FeedWriteAPI
from meterledger.store.marks_sql import MarkReadAPI, MarkWriteAPI
from meterledger.store.records import (
    AccountRecord,
    AnomalyRecord,
    AuditRow,
    BatchCounts,
    BillRecord,
    ChannelRecord,
    MeterRecord,
    NewAnomaly,
    NewBill,
    NewQuarantine,
    QuarantineRecord,
    ReceivedFile,
    RegisterRead,
    TariffRecord,
)
from meterledger.store.vee_api import VeeReadAPI, VeeWriteAPI

__all__ = [
    "Q_COLUMNS",
    "READING_COLUMNS",
    "STORE_TABLES",
    "VERSION_SCHEMA",
    "AccountRecord",
    "AnomalyRecord",
    "AuditRow",
    "BatchCounts",
    "BillRecord",
    "BillingArrays",
    "ChannelRecord",
    "MeterRecord",
    "NewAnomaly",
    "NewBill",
    "NewQuarantine",
    "QuarantineRecord",
    "ReceivedFile",
    "RegisterRead",
    "Store",
    "TariffRecord",
    "WriteTx",
    "key_spans",
    "quarantine_query",
    "quarantine_record",
]

READING_COLUMNS = (
    "channel_id",
    "interval_end",
    "interval_seconds",
    "value",
    "quality",
    "batch_id",
    "received_at",
    "version",
)


Q_COLUMNS = (
    "q_id, record_key, batch_id, source, format, record_no, meter_id, channel, interval_end,"
    " reasons, detail, raw, fields, status, created_at, updated_at, note"
)


# the tables ``Store.count`` may name
STORE_TABLES = frozenset(
    {
        "meters",
        "channels",
        "batches",
        "readings",
        "reading_versions",
        "quarantine",
        "audit_log",
        "anomalies",
        "tariffs",
        "accounts",
        "bills",
        "dlms_counters",
        "clock_reads",
        "register_reads",
        "batch_spans",
        "dead_letters",
        "feed_state",
        "breaker_state",
        "feed_marks",
        "received_files",
    }
)

# the frame ``Store.versions`` returns
VERSION_SCHEMA: dict[str, type[pl.DataType]] = {
    "version": pl.Int64,
    "value": pl.Int64,
    "quality": pl.Int64,
    "batch_id": pl.Int64,
    "received_at": pl.Int64,
    "status": pl.String,
    "reason": pl.String,
}


def quarantine_query(
    status: str | None, reason: str | None, limit: int | None, placeholder: str
) -> tuple[str, list[object]]:
    """The ``list_quarantine`` query in a backend's ``placeholder`` style, and its params."""
    query = f"SELECT {Q_COLUMNS} FROM quarantine WHERE 1 = 1"
    params: list[object] = []
    if status is not None:
        query += f" AND status = {placeholder}"
        params.append(status)
    if reason is not None:
        query += f" AND (',' || reasons || ',') LIKE {placeholder}"
        params.append(f"%,{reason},%")
    query += " ORDER BY q_id"
    if limit is not None:
        query += f" LIMIT {placeholder}"
        params.append(limit)
    return query, params


def quarantine_record(row: Sequence[object]) -> QuarantineRecord:
    """A quarantine row (``Q_COLUMNS`` in order) as a record; reasons are comma-separated."""
    values = list(row)
    values[9] = tuple(str(values[9]).split(",")) if values[9] else ()
    return QuarantineRecord(*values)  # type: ignore[arg-type]


def key_spans(keys: pl.DataFrame) -> list[tuple[int, int, int]]:
    """``(channel_id, first interval_end, last interval_end)`` per channel of ``keys``."""
    spans = keys.group_by("channel_id").agg(
        pl.col("interval_end").min().alias("lo"), pl.col("interval_end").max().alias("hi")
    )
    return list(spans.sort("channel_id").iter_rows())


class WriteTx(VeeWriteAPI, FeedWriteAPI, MarkWriteAPI):
    """One serialised write transaction (with the VEE writes of :class:`VeeWriteAPI`, the
    resilience writes of :class:`FeedWriteAPI` and the feed marks and received files of
    :class:`MarkWriteAPI`)."""

    @abstractmethod
    def new_batch(self, source: str, fmt: str, received_at: str) -> int: ...

    @abstractmethod
    def finish_batch(self, batch_id: int, counts: BatchCounts, audit_seq: int | None) -> None: ...

    @abstractmethod
    def current_for(
        self, keys: pl.DataFrame, spans: list[tuple[int, int, int]] | None = None
    ) -> pl.DataFrame:
        """Current readings for the ``channel_id, interval_end`` keys given (READING_COLUMNS).
        ``spans``, if given, is :func:`key_spans` of ``keys``, computed ahead."""

    @abstractmethod
    def versions_for(self, keys: pl.DataFrame) -> pl.DataFrame:
        """Every stored non-current version of those keys (READING_COLUMNS)."""

    @abstractmethod
    def insert_new(
        self,
        rows: pl.DataFrame,
        *,
        batch_id: int,
        received_at: int,
        encoded: object | None = None,
    ) -> None:
        """Insert new current readings from the columns ``channel_id, interval_end,
        interval_seconds, value, quality``, all version 1 of ``batch_id``. The keys must not
        exist. This is the hot path of ingest. ``encoded``, if given, is what
        :meth:`Store.encode_new` made of the same ``rows`` ahead of time."""

    @abstractmethod
    def registry_version(self) -> int:
        """A number that changes whenever a meter or channel is added or changed."""

    @abstractmethod
    def replace_readings(self, rows: pl.DataFrame, reason: str) -> None:
        """Move the current rows for these keys to versions as superseded, then make
        ``rows`` (READING_COLUMNS, with their new version numbers) current."""

    @abstractmethod
    def insert_versions(self, rows: pl.DataFrame, status: str, reason: str) -> None: ...

    @abstractmethod
    def delete_version(self, channel_id: int, interval_end: int, version: int) -> None:
        """Remove a pending version that has just been promoted to current."""

    def max_versions(self, keys: pl.DataFrame) -> pl.DataFrame:
        """``channel_id, interval_end, max_version`` over current and stored versions."""
        schema = {"channel_id": pl.Int64, "interval_end": pl.Int64, "max_version": pl.Int64}
        if keys.is_empty():
            return pl.DataFrame(schema=schema)
        current = self.current_for(keys).select("channel_id", "interval_end", "version")
        stored = self.versions_for(keys).select("channel_id", "interval_end", "version")
        both = pl.concat([current, stored])
        return (
            keys.select("channel_id", "interval_end")
            .unique()
            .join(
                both.group_by("channel_id", "interval_end").agg(pl.col("version").max()),
                on=["channel_id", "interval_end"],
                how="left",
            )
            .select(
                "channel_id", "interval_end", pl.col("version").fill_null(0).alias("max_version")
            )
            .cast(schema)  # type: ignore[arg-type]
        )

    @abstractmethod
    def insert_quarantine(
        self, batch_id: int, records: Sequence[NewQuarantine], at: str
    ) -> list[str]:
        """Insert records; one whose ``record_key`` is already held is skipped. Returns the
        record keys inserted."""

    @abstractmethod
    def set_quarantine(
        self,
        q_id: int,
        *,
        status: str,
        at: str,
        fields: str | None = None,
        reasons: tuple[str, ...] | None = None,
        detail: str | None = None,
        note: str | None = None,
    ) -> None: ...

    @abstractmethod
    def last_audit(self) -> AuditRow | None: ...

    @abstractmethod
    def insert_audit(self, row: AuditRow) -> None: ...

    @abstractmethod
    def add_meter(self, meter: MeterRecord) -> None: ...

    @abstractmethod
    def add_channel(
        self, meter_id: str, obis: str, base_unit: str, allows_negative: bool
    ) -> int: ...

    @abstractmethod
    def get_quarantine(self, q_id: int) -> QuarantineRecord | None: ...

    # -- billing: tariffs, accounts, bills (schema version 3) -----------------------------
    @abstractmethod
    def add_tariff(self, rec: TariffRecord) -> bool:
        """Store a tariff; False (no change) if that id is held with the same
        ``content_hash``. ConflictError if it is held with another: tariffs are immutable."""

    @abstractmethod
    def put_account(self, rec: AccountRecord) -> None:
        """Insert or update an account (an existing row keeps its ``created_at``).
        InputError for an unknown tariff or an invalid field, before anything is written."""

    @abstractmethod
    def insert_bill(self, bill: NewBill) -> int:
        """Append a bill to the ledger; its new ``bill_id``."""

    @abstractmethod
    def get_bill(self, bill_id: int) -> BillRecord | None: ...

    @abstractmethod
    def current_bill(self, account_id: str, period: str) -> BillRecord | None:
        """The bill in force, as :meth:`Store.current_bill`, read inside this transaction."""

    # -- head-end (schema version 4) -------------------------------------------------------
    @abstractmethod
    def reserve_counters(self, meter_id: str, block: int) -> range:
        """Reserve ``block`` DLMS invocation counters never handed out before."""

    @abstractmethod
    def accept_server_counter(self, meter_id: str, value: int) -> None:
        """Record the meter's invocation counter; ConflictError if it is not above the last."""

    @abstractmethod
    def add_clock_read(self, read: ClockRead) -> None: ...


class Store(VeeReadAPI, FeedReadAPI, MarkReadAPI):
    """A meterledger database (with the VEE reads of :class:`VeeReadAPI`, the resilience
    reads of :class:`FeedReadAPI` and the feed marks and received files of
    :class:`MarkReadAPI`)."""

    url: str
    dialect: str  # the migrations folder: "sqlite" or "postgresql"

    def pending_migrations(self) -> list[tuple[int, str]]:
        """``(version, name)`` of each migration not yet applied, in order."""
        from meterledger.store.migrations import load_migrations

        done = self.schema_version()
        return [(m.version, m.name) for m in load_migrations(self.dialect) if m.version > done]

    def latest_version(self) -> int:
        from meterledger.store.migrations import load_migrations

        return max((m.version for m in load_migrations(self.dialect)), default=0)

    def details(self) -> dict[str, object]:
        """Backend facts for ``db status`` (server, layout, ...)."""
        return {}

    def encode_new(self, rows: pl.DataFrame) -> object | None:
        """Backend work for :meth:`WriteTx.insert_new` that can be done ahead, on any
        thread, off the write transaction (PostgreSQL: the binary COPY rows). ``None``: the
        backend has none."""
        del rows
        return None

    def prepare_months(self, interval_ends: np.ndarray) -> None:
        """Get storage ready, in transactions of its own, for readings with these interval
        ends (PostgreSQL: their months' partitions). Called before a write so that the
        write transaction itself has little or nothing to create; a no-op by default."""
        del interval_ends

    @abstractmethod
    def migrate(self, target: int | None = None) -> list[int]:
        """Apply pending migrations up to ``target`` (default: all); return those applied."""

    @abstractmethod
    def schema_version(self) -> int: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def write(self) -> AbstractContextManager[WriteTx]: ...

    # -- meters and channels ------------------------------------------------------------
    @abstractmethod
    def get_meter(self, meter_id: str) -> MeterRecord | None: ...

    @abstractmethod
    def list_meters(self) -> list[MeterRecord]: ...

    @abstractmethod
    def list_channels(self) -> list[ChannelRecord]: ...

    @abstractmethod
    def registry_version(self) -> int:
        """A number that changes whenever a meter or channel is added or changed."""

    # -- readings -----------------------------------------------------------------------
    @abstractmethod
    def readings(
        self, meter_id: str, start: int, end: int, channel: str | None = None
    ) -> pl.DataFrame:
        """Current readings with ``start < interval_end <= end`` as ``meter_id, channel,``
        then READING_COLUMNS less ``channel_id``; sorted by channel then interval_end."""

    @abstractmethod
    def billing_read(
        self,
        start: int,
        end: int,
        channel: str = "1.0.1.8.0.255",
        meter_ids: Sequence[str] | None = None,
    ) -> BillingArrays:
        """Current readings of ``channel`` with ``start < interval_end <= end`` for the
        meters named (default: every meter with that channel), grouped by meter. An
        interval held by an open finding of severity ``fail`` is left out until someone
        acts on it (:meth:`VeeReadAPI.held`)."""

    @abstractmethod
    def all_readings(self) -> pl.DataFrame:
        """Every current reading with ``meter_id, channel`` (for export and verification)."""

    @abstractmethod
    def stored_by_batch(self) -> pl.DataFrame:
        """Every stored row, current or not: ``batch_id, meter_id, channel, interval_end,
        interval_seconds, value, quality, status, version`` (status ``current`` for the
        billing view). The audit digests are recomputed from this."""

    @abstractmethod
    def versions(self, channel_id: int, interval_end: int) -> pl.DataFrame: ...

    # -- quarantine, batches, audit -----------------------------------------------------
    @abstractmethod
    def list_quarantine(
        self, status: str | None = None, reason: str | None = None, limit: int | None = None
    ) -> list[QuarantineRecord]: ...

    @abstractmethod
    def get_quarantine(self, q_id: int) -> QuarantineRecord | None: ...

    @abstractmethod
    def batch_audit_refs(self) -> dict[int, int | None]:
        """``batch_id → audit_seq`` (None for a batch that changed nothing)."""

    @abstractmethod
    def audit_rows(self) -> Iterator[AuditRow]: ...

    @abstractmethod
    def count(self, table: str) -> int: ...

    # -- billing: tariffs, accounts, bills (schema version 3) -----------------------------
    @abstractmethod
    def get_tariff(self, tariff_id: str) -> TariffRecord | None: ...

    @abstractmethod
    def list_tariffs(self) -> list[TariffRecord]:
        """Every tariff, by ``tariff_id``."""

    @abstractmethod
    def get_account(self, account_id: str) -> AccountRecord | None: ...

    @abstractmethod
    def list_accounts(self) -> list[AccountRecord]:
        """Every account, by ``account_id``."""

    @abstractmethod
    def account_meters(self, account_id: str) -> list[str]:
        """The ``meter_id`` of every meter whose ``account`` is ``account_id``, sorted."""

    @abstractmethod
    def get_bill(self, bill_id: int) -> BillRecord | None: ...

    @abstractmethod
    def list_bills(
        self, account_id: str | None = None, period: str | None = None
    ) -> list[BillRecord]:
        """The ledger's rows (of one account, one period, if given), by ``bill_id``."""

    @abstractmethod
    def current_bill(self, account_id: str, period: str) -> BillRecord | None:
        """The bill in force for the account and period: of its ``bill`` and ``rebill``
        rows that no later ``cancel`` row names in ``replaces``, the one with the greatest
        ``bill_id``. None if there is none (never billed, or cancelled without a rebill)."""

    # -- head-end (schema version 4) -------------------------------------------------------
    @abstractmethod
    def counters(self, meter_id: str) -> Counters: ...

    @abstractmethod
    def clock_reads(
        self, meter_id: str | None = None, *, since_ms: int | None = None
    ) -> list[ClockRead]: ...

    @abstractmethod
    def last_interval_end(self, meter_id: str, obis: str) -> int | None:
        """The latest stored interval end (epoch seconds) of a meter's channel."""
