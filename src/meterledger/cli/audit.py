"""``meterledger audit``: verify and read the audit chain."""

from __future__ import annotations

import json
from dataclasses import asdict
from itertools import islice
from typing import Annotated

import typer
from rich.table import Table

from meterledger.cli.common import (
    DbOption,
    JsonOption,
    console,
    emit_json,
    handle_errors,
    open_db,
    out,
)
from meterledger.core.errors import AuditError, InputError
from meterledger.ingest.audit import verify as verify_chain

app = typer.Typer(help="The append-only audit chain.", no_args_is_help=True)


def parse_head(text: str) -> tuple[int, str]:
    seq, sep, digest = text.partition(":")
    if not sep or not seq.isdigit() or len(digest) != 64:
        raise InputError(f"--expect-head takes SEQ:HASH as printed by `audit head`, got {text!r}")
    return int(seq), digest.lower()


@app.command("verify")
@handle_errors
def verify(
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            help="SEQ:HASH from an earlier `audit head`, kept outside the "
            "database: the chain must still hold that entry unchanged.",
        ),
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Recompute the chain and every batch digest; exit 1 naming the first broken entry."""
    head = parse_head(expect_head) if expect_head is not None else None
    with console.status("verifying the audit chain against every stored row…"):
        report = verify_chain(open_db(db), head)
    if json_out:
        emit_json(report.as_dict())
        if not report.ok:
            raise typer.Exit(1)
        return
    first = report.first_broken
    if first is None:
        out.print(
            f"audit chain OK: {report.entries} entries, {report.batches} batches, "
            f"{report.rows_checked} stored rows checked"
        )
        return
    where = f"entry #{first.seq}" if first.seq is not None else "no entry"
    raise AuditError(
        f"audit chain BROKEN at {where} ({first.kind}, {first.subject}): "
        f"{first.problem} [{len(report.problems)} problem(s) in all]"
    )


@app.command("head")
@handle_errors
def head(db: DbOption = None, json_out: JsonOption = False) -> None:
    """Print the last entry as SEQ:HASH: keep it elsewhere, check it with verify --expect-head."""
    store = open_db(db)
    total = store.count("audit_log")
    last = next(islice(store.audit_rows(), max(total - 1, 0), None), None)
    if json_out:
        emit_json({"seq": last.seq, "hash": last.hash} if last else None)
    elif last is None:
        out.print("the audit chain is empty")
    else:
        out.print(f"{last.seq}:{last.hash}")


@app.command("log")
@handle_errors
def log(
    limit: Annotated[int, typer.Option(help="Show the last N entries.")] = 20,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show the most recent audit entries."""
    store = open_db(db)
    total = store.count("audit_log")
    rows = list(islice(store.audit_rows(), max(total - limit, 0), None))
    if json_out:
        emit_json([{**asdict(r), "payload": json.loads(r.payload)} for r in rows])
        return
    table = Table("seq", "recorded_at", "kind", "subject", "hash")
    for r in rows:
        table.add_row(str(r.seq), r.recorded_at, r.kind, r.subject, r.hash[:16])
    out.print(table)
