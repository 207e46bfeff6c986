"""The billing tables of schema version 3 (tariffs, accounts, bills), once for both backends.

:class:`BillingReads` gives a Store, or a WriteTx, the reads of the three tables;
:class:`BillingWrites` adds what a WriteTx writes to them. A backend supplies one method,
``_billing_rows``: run one statement written with ``?`` placeholders (PostgreSQL's take
them as ``%s``) and return its rows. The statements are plain SQL that SQLite and
PostgreSQL both run unchanged (``ON CONFLICT ... DO UPDATE``, ``RETURNING``).

Lists are sorted here, by code point, so both backends give the same order whatever the
database's collation.

Tariffs are immutable and bills append-only in the database itself (migration 3's
triggers); what can be checked before writing is checked here and refused with
InputError, so that no statement fails inside a PostgreSQL transaction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import astuple, fields
from datetime import date
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterledger.core.errors import ConflictError, InputError
from meterledger.store.records import AccountRecord, BillRecord, NewBill, TariffRecord

__all__ = [
    "ACCOUNT_COLUMNS",
    "BILL_COLUMNS",
    "BILL_KINDS",
    "TARIFF_COLUMNS",
    "TARIFF_SOURCES",
    "BillingReads",
    "BillingWrites",
    "check_account",
]

TARIFF_SOURCES = ("yaml", "urdb")
BILL_KINDS = ("bill", "cancel", "rebill")


def _columns(record: type) -> str:
    return ", ".join(f.name for f in fields(record))


def _marks(record: type) -> str:
    return ", ".join("?" for _ in fields(record))


# the columns in the records' field order, so that ``Record(*row)`` and ``astuple(record)``
# line up with them
TARIFF_COLUMNS = _columns(TariffRecord)
ACCOUNT_COLUMNS = _columns(AccountRecord)
BILL_COLUMNS = _columns(BillRecord)

_INSERT_TARIFF = f"INSERT INTO tariffs ({TARIFF_COLUMNS}) VALUES ({_marks(TariffRecord)})"
_UPSERT_ACCOUNT = (
    f"INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES ({_marks(AccountRecord)})"
    " ON CONFLICT (account_id) DO UPDATE SET tariff_id = excluded.tariff_id,"
    " timezone = excluded.timezone, cycle_day = excluded.cycle_day,"
    " move_in = excluded.move_in, move_out = excluded.move_out,"
    " updated_at = excluded.updated_at"
)
_INSERT_BILL = (
    f"INSERT INTO bills ({_columns(NewBill)}) VALUES ({_marks(NewBill)}) RETURNING bill_id"
)
# The bill in force: the latest bill or rebill of the account and period that no later
# cancel names. ``bills_account_period`` finds the candidates, ``bills_replaces`` the
# cancels.
_CURRENT_BILL = (
    f"SELECT {BILL_COLUMNS} FROM bills b WHERE b.account_id = ? AND b.period = ?"
    " AND b.kind IN ('bill', 'rebill') AND NOT EXISTS (SELECT 1 FROM bills c"
    " WHERE c.replaces = b.bill_id AND c.kind = 'cancel' AND c.bill_id > b.bill_id)"
    " ORDER BY b.bill_id DESC LIMIT 1"
)

Rows = list[tuple[Any, ...]]
R = TypeVar("R", TariffRecord, AccountRecord, BillRecord)
# each record's table and key column
_TABLES: dict[type, tuple[str, str]] = {
    TariffRecord: ("tariffs", "tariff_id"),
    AccountRecord: ("accounts", "account_id"),
    BillRecord: ("bills", "bill_id"),
}


def _local_date(value: str | None, what: str) -> date | None:
    if value is None:
        return None
    try:
        parsed = date.fromisoformat(value)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.isoformat() != value:
        raise InputError(f"{what} must be a local date YYYY-MM-DD, got {value!r}")
    return parsed


def check_account(rec: AccountRecord) -> None:
    """InputError naming the account for a field the table would refuse or billing could
    not use: the cycle day (1..28), the IANA zone, the move-in and move-out dates."""
    where = f"account {rec.account_id}"
    if isinstance(rec.cycle_day, bool) or not isinstance(rec.cycle_day, int):
        raise InputError(f"{where}: cycle_day must be an integer 1..28, got {rec.cycle_day!r}")
    if not 1 <= rec.cycle_day <= 28:
        raise InputError(f"{where}: cycle_day must be between 1 and 28, got {rec.cycle_day}")
    try:
        ZoneInfo(rec.timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InputError(f"{where}: unknown time zone {rec.timezone!r}") from None
    move_in = _local_date(rec.move_in, f"{where}: move_in")
    move_out = _local_date(rec.move_out, f"{where}: move_out")
    if move_in is not None and move_out is not None and move_out < move_in:
        raise InputError(f"{where}: move_out {rec.move_out} is before move_in {rec.move_in}")


class BillingReads(ABC):
    """The reads of the billing tables, over the backend's ``_billing_rows``."""

    @abstractmethod
    def _billing_rows(self, query: str, params: Sequence[object] = ()) -> Rows:
        """Run one statement written with ``?`` placeholders; its rows (``[]`` if none)."""

    def _one(self, record: type[R], key: object) -> R | None:
        table, column = _TABLES[record]
        rows = self._billing_rows(
            f"SELECT {_columns(record)} FROM {table} WHERE {column} = ?", (key,)
        )
        return record(*rows[0]) if rows else None

    def _all(self, record: type[R]) -> list[R]:
        table, column = _TABLES[record]
        rows = self._billing_rows(f"SELECT {_columns(record)} FROM {table}")
        return sorted((record(*row) for row in rows), key=lambda r: getattr(r, column))

    def get_tariff(self, tariff_id: str) -> TariffRecord | None:
        return self._one(TariffRecord, tariff_id)

    def list_tariffs(self) -> list[TariffRecord]:
        return self._all(TariffRecord)

    def get_account(self, account_id: str) -> AccountRecord | None:
        return self._one(AccountRecord, account_id)

    def list_accounts(self) -> list[AccountRecord]:
        return self._all(AccountRecord)

    def account_meters(self, account_id: str) -> list[str]:
        rows = self._billing_rows("SELECT meter_id FROM meters WHERE account = ?", (account_id,))
        return sorted(str(row[0]) for row in rows)

    def get_bill(self, bill_id: int) -> BillRecord | None:
        return self._one(BillRecord, bill_id)

    def list_bills(
        self, account_id: str | None = None, period: str | None = None
    ) -> list[BillRecord]:
        query = f"SELECT {BILL_COLUMNS} FROM bills WHERE 1 = 1"
        params: list[object] = []
        if account_id is not None:
            query += " AND account_id = ?"
            params.append(account_id)
        if period is not None:
            query += " AND period = ?"
            params.append(period)
        rows = self._billing_rows(query + " ORDER BY bill_id", params)
        return [BillRecord(*row) for row in rows]

    def current_bill(self, account_id: str, period: str) -> BillRecord | None:
        rows = self._billing_rows(_CURRENT_BILL, (account_id, period))
        return BillRecord(*rows[0]) if rows else None


class BillingWrites(BillingReads):
    """The writes of the billing tables, for a WriteTx (under the store's writer lock)."""

    def add_tariff(self, rec: TariffRecord) -> bool:
        if rec.source not in TARIFF_SOURCES:
            raise InputError(
                f"tariff {rec.tariff_id}: source must be one of {', '.join(TARIFF_SOURCES)},"
                f" got {rec.source!r}"
            )
        held = self._billing_rows(
            "SELECT content_hash FROM tariffs WHERE tariff_id = ?", (rec.tariff_id,)
        )
        if held:
            if held[0][0] == rec.content_hash:
                return False
            raise ConflictError(
                f"tariff {rec.tariff_id} is already stored with different content, and"
                " tariffs are immutable: add the changed tariff under a new id, or use"
                " effective-dated versions inside the tariff"
            )
        self._billing_rows(_INSERT_TARIFF, astuple(rec))
        return True

    def put_account(self, rec: AccountRecord) -> None:
        check_account(rec)
        if not self._billing_rows("SELECT 1 FROM tariffs WHERE tariff_id = ?", (rec.tariff_id,)):
            raise InputError(
                f"account {rec.account_id}: unknown tariff {rec.tariff_id!r}; add the tariff first"
            )
        self._billing_rows(_UPSERT_ACCOUNT, astuple(rec))

    def insert_bill(self, bill: NewBill) -> int:
        where = f"bill for account {bill.account_id}, period {bill.period}"
        if bill.kind not in BILL_KINDS:
            raise InputError(
                f"{where}: kind must be one of {', '.join(BILL_KINDS)}, got {bill.kind!r}"
            )
        if not self._billing_rows(
            "SELECT 1 FROM accounts WHERE account_id = ?", (bill.account_id,)
        ):
            raise InputError(f"{where}: unknown account {bill.account_id!r}")
        if bill.kind == "cancel" and bill.replaces is None:
            raise InputError(f"{where}: a cancel must name the bill it cancels (replaces)")
        if bill.replaces is not None:
            named = self.get_bill(bill.replaces)
            if named is None or (named.account_id, named.period) != (bill.account_id, bill.period):
                raise InputError(
                    f"{where}: replaces names bill {bill.replaces}, which is not a bill of"
                    " that account and period"
                )
            if bill.kind == "cancel" and named.kind == "cancel":
                raise InputError(f"{where}: bill {bill.replaces} is itself a cancel")
        rows = self._billing_rows(_INSERT_BILL, astuple(bill))
        return int(rows[0][0])
