"""``meterledger ingest``: load files exactly once, with a progress bar."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from meterledger.cli.common import (
    DbOption,
    JsonOption,
    console,
    emit_json,
    handle_errors,
    open_db,
    out,
    settings,
)
from meterledger.cli.feeds import refuse_if_paused
from meterledger.cli.vee import RulesOption, load_rules, print_outcome
from meterledger.cli.vee_service import Rebill, rebill_touched, touched_since
from meterledger.core.time import parse_zone
from meterledger.ingest.pipeline import IngestOptions, Ingestor, IngestResult, detect_format
from meterledger.ingest.vee_check import VeeOutcome
from meterledger.store import Store
from meterledger.store.base import BatchCounts

INGEST_FEED = "files"  # the feed `meterledger pause files` stops


class Format(enum.StrEnum):
    csv = "csv"
    jsonl = "jsonl"
    greenbutton = "greenbutton"


def counts_dict(counts: BatchCounts) -> dict[str, Any]:
    return {
        "records": counts.records,
        "accepted": counts.accepted,
        "duplicates": counts.duplicates,
        "superseded": counts.superseded,
        "ignored": counts.ignored,
        "conflicts": counts.conflicts,
        "quarantined": counts.quarantined,
        "quarantine_duplicates": counts.quarantine_duplicates,
        "reasons": dict(sorted(counts.reasons.items())),
    }


_ROWS = ("records", "accepted", "duplicates", "superseded", "ignored", "conflicts", "quarantined")


def counts_table(rows: list[tuple[str, BatchCounts]]) -> Table:
    """One row per count, one column per source: fits a narrow terminal."""
    shown = rows if len(rows) <= 4 else rows[-1:]
    table = Table("", *(name for name, _ in shown), title="ingest")
    for field in _ROWS:
        table.add_row(field, *(f"{getattr(c, field):,}" for _, c in shown))
    return table


def ingest_files(
    store: Store, files: list[Path], options: IngestOptions, show_progress: bool
) -> list[tuple[Path, str, IngestResult]]:
    ingestor = Ingestor(store)
    done: list[tuple[Path, str, IngestResult]] = []
    total = sum(p.stat().st_size for p in files if p.exists())
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not show_progress,
    ) as progress:
        task = progress.add_task("ingest", total=total or None)
        for path in files:
            fmt = options.fmt or detect_format(path)
            progress.update(task, description=path.name)
            before = progress.tasks[0].completed
            size = path.stat().st_size if path.exists() else 0
            compressed = path.name.endswith(".gz")

            def advance(consumed: int, *, _compressed: bool = compressed) -> None:
                if not _compressed:
                    progress.advance(task, consumed)

            result = ingestor.ingest_path(
                path,
                IngestOptions(
                    fmt=fmt,
                    create_meters=options.create_meters,
                    meter_id=options.meter_id,
                    default_tz=options.default_tz,
                ),
                advance,
            )
            progress.update(task, completed=before + size)
            done.append((path, fmt, result))
    return done


def command(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Files to ingest (.csv, .jsonl, .xml, optionally .gz).",
            exists=True,
            dir_okay=False,
        ),
    ],
    fmt: Annotated[
        Format | None,
        typer.Option("--format", help="Override the format found from the file name."),
    ] = None,
    create_meters: Annotated[
        bool,
        typer.Option(
            "--create-meters",
            help="Register unknown (well-formed) meters instead of quarantining their readings.",
        ),
    ] = False,
    meter_id: Annotated[
        str | None,
        typer.Option("--meter-id", help="Assign a Green Button file's readings to this meter."),
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz",
            help="Time zone for meters made by --create-meters (default: settings default_tz).",
        ),
    ] = None,
    vee: Annotated[
        bool,
        typer.Option(
            "--vee/--no-vee",
            help="Run the VEE rules and estimate gaps after the files (default: on; with "
            "--no-vee the batches stay pending until `vee run` or the next bill run).",
        ),
    ] = True,
    rules: RulesOption = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Ingest meter reading files exactly once; bad records go to quarantine with a reason."""
    conf = settings(db)
    zone = tz or conf.default_tz
    parse_zone(zone)
    store = open_db(db)
    refuse_if_paused(store, INGEST_FEED)
    options = IngestOptions(
        fmt=fmt.value if fmt else None,
        create_meters=create_meters,
        meter_id=meter_id,
        default_tz=zone,
    )
    before = set(store.batch_audit_refs())
    results = ingest_files(store, files, options, show_progress=not json_out)
    total = BatchCounts()
    for _, _, result in results:
        total.add(result.counts)
    checked: VeeOutcome | None = None
    rebills: list[Rebill] = []
    if vee:
        with console.status("running the VEE rules…"):
            checked = Ingestor(store, ruleset=load_rules(rules)).check_pending()
        fresh = set(store.batch_audit_refs()) - before
        rebills = rebill_touched(store, touched_since(store, fresh))
    if json_out:
        emit_json(
            {
                "files": [
                    {
                        "path": str(p),
                        "format": f,
                        "batches": r.batches,
                        "meters_created": r.meters_created,
                        **counts_dict(r.counts),
                    }
                    for p, f, r in results
                ],
                "totals": counts_dict(total),
                "vee": checked.as_dict() if checked is not None else None,
                "rebills": [r.as_dict() for r in rebills],
            }
        )
        return
    out.print(
        counts_table(
            [(p.name, r.counts) for p, _, r in results]
            + ([(f"total ({len(results)} files)", total)] if len(results) > 1 else [])
        )
    )
    if total.reasons:
        out.print(
            "quarantined by reason: "
            + ", ".join(f"{code} {n}" for code, n in sorted(total.reasons.items()))
        )
    if checked is not None:
        print_outcome(checked)
    for r in rebills:
        out.print(f"rebilled {r.account} {r.period}: cancel {r.cancel}, rebill {r.rebill}")


command = handle_errors(command)
