"""``meterledger quarantine``: list, show, release and replay held records."""

from __future__ import annotations

import enum
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
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
from meterledger.core.errors import InputError, NotFoundError
from meterledger.ingest.reasons import REASONS
from meterledger.ingest.review import release as release_record
from meterledger.ingest.review import replay as replay_records
from meterledger.store.base import QuarantineRecord

app = typer.Typer(
    help="Records held out of billing: list, show, release, replay.", no_args_is_help=True
)


class Status(enum.StrEnum):
    open = "open"
    released = "released"
    replayed = "replayed"
    all = "all"


def record_dict(record: QuarantineRecord) -> dict[str, Any]:
    data = asdict(record)
    data["reasons"] = list(record.reasons)
    return data


@app.command("list")
@handle_errors
def list_records(
    status: Annotated[Status, typer.Option(help="Which records.")] = Status.open,
    reason: Annotated[str | None, typer.Option(help="Only records with this reason code.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """List quarantined records."""
    records = open_db(db).list_quarantine(
        status=None if status is Status.all else status.value, reason=reason, limit=limit
    )
    if json_out:
        emit_json([record_dict(r) for r in records])
        return
    # compact for an 80-column terminal: the channel and full path are in `show` and --json
    table = Table(
        "id",
        "status",
        "reasons",
        "meter_id",
        "interval_end",
        "source",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for r in records:
        table.add_row(
            str(r.q_id),
            r.status,
            ",".join(r.reasons),
            r.meter_id or "",
            r.interval_end or "",
            f"{Path(r.source).name}:{r.record_no or ''}",
        )
    out.print(table)
    out.print(f"{len(records)} records")


@app.command("show")
@handle_errors
def show(
    q_id: Annotated[int, typer.Argument(help="Quarantine record id.")],
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show one record with its raw payload and reasons."""
    record = open_db(db).get_quarantine(q_id)
    if record is None:
        raise NotFoundError(f"no quarantine record {q_id}")
    if json_out:
        emit_json(record_dict(record))
        return
    for name, value in record_dict(record).items():
        out.print(f"[bold]{name:>12}[/]  {value}", highlight=False)


def parse_changes(pairs: list[str]) -> dict[str, str]:
    changes: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--set takes FIELD=VALUE, got {pair!r}")
        changes[name.strip()] = value.strip()
    return changes


@app.command("release")
@handle_errors
def release(
    q_id: Annotated[int, typer.Argument(help="Quarantine record id.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Fix a field before replay: FIELD=VALUE (repeatable)."),
    ] = None,
    note: Annotated[
        str | None, typer.Option(help="Why it is released (kept on the audit chain).")
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Release a record after a fix (for a REVISION_CONFLICT: accept the new value)."""
    record = release_record(open_db(db), q_id, changes=parse_changes(set_ or []), note=note)
    if json_out:
        emit_json(record_dict(record))
    else:
        out.print(
            f"released quarantine record {q_id}; run `meterledger quarantine replay` to apply it"
        )


@app.command("replay")
@handle_errors
def replay(
    ids: Annotated[
        list[int] | None, typer.Argument(help="Record ids (default: every released record).")
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option(
            help="Replay the open records with this reason (e.g. UNKNOWN_METER after adding the "
            "meter)."
        ),
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Run records through validation again and store those that now pass."""
    with console.status("replaying quarantined records…"):
        outcomes = replay_records(open_db(db), ids or None, reason=reason)
    if json_out:
        emit_json([o.as_dict() for o in outcomes])
        return
    table = Table("id", "outcome", "detail")
    for o in outcomes:
        table.add_row(str(o.q_id), o.outcome, o.detail)
    out.print(table)
    done = sum(o.outcome == "replayed" for o in outcomes)
    out.print(f"{done} of {len(outcomes)} replayed")


@app.command("reasons")
@handle_errors
def reasons(json_out: JsonOption = False) -> None:
    """List every reason code and what it means."""
    if json_out:
        emit_json([{"code": r.code.value, "meaning": r.meaning} for r in REASONS])
        return
    table = Table("code", "meaning")
    for r in REASONS:
        table.add_row(r.code.value, r.meaning)
    out.print(table)
