"""``meterledger db``: the schema version of a store, and upgrading it."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from meterledger.cli.common import DbOption, JsonOption, console, emit_json, handle_errors, out
from meterledger.cli.common import settings as load
from meterledger.core.errors import InputError
from meterledger.store import Store, open_store
from meterledger.store.urls import redact_url

app = typer.Typer(help="The store's schema: status and upgrades.", no_args_is_help=True)


def _status(store: Store) -> dict[str, Any]:
    return {
        "db": redact_url(store.url),
        "backend": store.dialect,
        "schema_version": store.schema_version(),
        "latest_version": store.latest_version(),
        "pending": [{"version": v, "name": n} for v, n in store.pending_migrations()],
        "details": store.details(),
    }


@app.command("status")
@handle_errors
def status(db: DbOption = None, json_out: JsonOption = False) -> None:
    """Show the schema version, the migrations not yet applied and backend facts (read only:
    applies nothing). Exit 0 whether or not migrations are pending."""
    store = open_store(load(db).db, migrate=False)
    try:
        report = _status(store)
    finally:
        store.close()
    if json_out:
        emit_json(report)
        return
    out.print(f"{'store':<16}{report['db']} ({report['backend']})")
    out.print(f"{'schema':<16}version {report['schema_version']} of {report['latest_version']}")
    pending = report["pending"]
    if pending:
        names = ", ".join(f"{p['version']} {p['name']}" for p in pending)
        out.print(f"{'pending':<16}{names}: run `meterledger db upgrade`")
    else:
        out.print(f"{'pending':<16}none: up to date")
    for name, value in report["details"].items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        out.print(f"{name:<16}{shown}")


@app.command("upgrade")
@handle_errors
def upgrade(
    to: Annotated[
        int | None,
        typer.Option("--to", help="Stop at this schema version (default: the latest)."),
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Apply the pending migrations in order, all in one transaction (on PostgreSQL under the
    writer lock: safe while ingest runs, and when run twice)."""
    store = open_store(load(db).db, migrate=False)
    try:
        before = store.schema_version()
        if to is not None and not 1 <= to <= store.latest_version():
            raise InputError(f"--to must be between 1 and {store.latest_version()}, got {to}")
        if to is not None and to < before:
            raise InputError(f"the store is at version {before}; downgrades are not supported")
        with console.status("applying migrations…"):
            applied = store.migrate(target=to)
        after = store.schema_version()
    finally:
        store.close()
    if json_out:
        emit_json(
            {
                "db": redact_url(store.url),
                "from_version": before,
                "to_version": after,
                "applied": applied,
            }
        )
        return
    if applied:
        out.print(
            f"upgraded {redact_url(store.url)} from version {before} to {after} (applied {applied})"
        )
    else:
        out.print(f"{redact_url(store.url)} is already at version {after}: nothing to do")
