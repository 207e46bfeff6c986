"""``meterledger tariffs add|list`` and ``meterledger accounts add|list``."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from meterledger.billing.tariff import load_tariff
from meterledger.cli.billing_service import add_tariff, put_account
from meterledger.cli.common import (
    DbOption,
    JsonOption,
    console,
    emit_json,
    handle_errors,
    open_db,
    out,
)
from meterledger.core.errors import InputError
from meterledger.core.time import parse_zone
from meterledger.store.records import AccountRecord

tariffs_app = typer.Typer(help="Tariffs in the store (immutable once added).", no_args_is_help=True)
accounts_app = typer.Typer(
    help="Billed accounts: tariff, zone, cycle day, move-in/out.", no_args_is_help=True
)


@tariffs_app.command("add")
@handle_errors
def tariffs_add(
    path: Annotated[Path, typer.Argument(help="Tariff YAML, or an OpenEI URDB rate JSON.")],
    tz: Annotated[
        str | None, typer.Option("--tz", help="Zone of a URDB rate (URDB names none).")
    ] = None,
    db_url: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Add a tariff. The same content again is a no-op; other content under an id in use is
    refused (tariffs are immutable: use a new id, or effective-dated changes)."""
    if path.suffix.lower() == ".json" and tz is None:
        raise InputError("a URDB rate names no time zone: give --tz ZONE")
    tariff = load_tariff(path, timezone=tz)
    added = add_tariff(open_db(db_url), tariff)
    result = {
        "tariff_id": tariff.id,
        "name": tariff.name,
        "added": added,
        "hash": tariff.content_hash,
        "versions": len(tariff.versions),
    }
    if json_out:
        emit_json(result)
    else:
        verb = "added" if added else "already present (same content)"
        out.print(f"tariff {tariff.id} ({tariff.name}) {verb}")


@tariffs_app.command("list")
@handle_errors
def tariffs_list(db_url: DbOption = None, json_out: JsonOption = False) -> None:
    """List the tariffs."""
    records = open_db(db_url).list_tariffs()
    if json_out:
        emit_json(
            [
                {
                    "tariff_id": r.tariff_id,
                    "name": r.name,
                    "source": r.source,
                    "hash": r.content_hash,
                    "added_at": r.added_at,
                }
                for r in records
            ]
        )
        return
    table = Table("tariff", "name", "source", "added")
    for r in records:
        table.add_row(r.tariff_id, r.name, r.source, r.added_at)
    out.print(table)


def _day(text: str | None, option: str) -> str | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise InputError(f"{option} must be a date like 2024-01-31, got {text!r}") from None


@accounts_app.command("add")
@handle_errors
def accounts_add(
    account: Annotated[str, typer.Argument(help="Account id (meters name it in `account`).")],
    tariff: Annotated[str, typer.Option("--tariff", help="Tariff id (see tariffs list).")],
    cycle_day: Annotated[
        int, typer.Option("--cycle-day", min=1, max=28, help="1 = calendar month.")
    ] = 1,
    tz: Annotated[
        str | None,
        typer.Option("--tz", help="The account's IANA zone (default: the tariff's zone)."),
    ] = None,
    move_in: Annotated[str | None, typer.Option("--move-in", help="First day served.")] = None,
    move_out: Annotated[str | None, typer.Option("--move-out", help="Last day served.")] = None,
    db_url: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Add an account, or change one (tariff, cycle day, zone, move-in/move-out)."""
    store = open_db(db_url)
    record = store.get_tariff(tariff)
    if record is None:
        raise InputError(f"account {account}: unknown tariff {tariff!r}; add the tariff first")
    tariff_zone = str(json.loads(record.document).get("timezone") or "UTC")
    if tz is None:
        tz = tariff_zone
    elif tz != tariff_zone:
        console.print(
            f"[yellow]note:[/] the account's cycles run in {tz}, the tariff's periods in "
            f"{tariff_zone}; the daily usage chart follows the tariff's zone"
        )
    parse_zone(tz)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    rec = AccountRecord(
        account,
        tariff,
        tz,
        cycle_day,
        _day(move_in, "--move-in"),
        _day(move_out, "--move-out"),
        now,
        now,
    )
    put_account(store, rec)
    if json_out:
        emit_json(
            {
                "account_id": account,
                "tariff_id": tariff,
                "cycle_day": cycle_day,
                "timezone": tz,
                "move_in": rec.move_in,
                "move_out": rec.move_out,
            }
        )
    else:
        out.print(f"account {account} on tariff {tariff}, cycle day {cycle_day} ({tz})")


@accounts_app.command("list")
@handle_errors
def accounts_list(db_url: DbOption = None, json_out: JsonOption = False) -> None:
    """List the accounts with their meters."""
    store = open_db(db_url)
    rows = [(a, store.account_meters(a.account_id)) for a in store.list_accounts()]
    if json_out:
        emit_json(
            [
                {
                    "account_id": a.account_id,
                    "tariff_id": a.tariff_id,
                    "timezone": a.timezone,
                    "cycle_day": a.cycle_day,
                    "move_in": a.move_in,
                    "move_out": a.move_out,
                    "meters": m,
                }
                for a, m in rows
            ]
        )
        return
    table = Table("account", "tariff", "cycle day", "zone", "move-in", "move-out", "meters")
    for a, m in rows:
        table.add_row(
            a.account_id,
            a.tariff_id,
            str(a.cycle_day),
            a.timezone,
            a.move_in or "",
            a.move_out or "",
            ", ".join(m),
        )
    out.print(table)
