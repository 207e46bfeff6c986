"""``meterledger vee``: run the validation rules over stored data, list the rules."""

from __future__ import annotations

from pathlib import Path
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
from meterledger.core.errors import InputError
from meterledger.core.time import epoch_of, parse_instant
from meterledger.ingest.pipeline import Ingestor
from meterledger.ingest.vee_check import VeeOutcome, check_range
from meterledger.vee.config import RuleSet

app = typer.Typer(help="Validation, estimation and editing (VEE).", no_args_is_help=True)

RulesOption = Annotated[
    Path | None,
    typer.Option(
        "--rules",
        help="Rule configuration YAML (default: the bundled vee/rules.yaml).",
        exists=False,
    ),
]


def load_rules(path: Path | None) -> RuleSet:
    if path is not None and not path.is_file():
        raise InputError(f"no rule file {path}")
    return RuleSet.load(path)


def print_outcome(outcome: VeeOutcome) -> None:
    out.print(
        f"checked {outcome.intervals} intervals on {outcome.channels} channels: "
        f"{outcome.findings} findings ({outcome.opened} new, {outcome.cleared} cleared), "
        f"{outcome.held} intervals held out of billing, {outcome.estimated} estimated"
        + (f", {outcome.unfilled} gaps left unestimated" if outcome.unfilled else "")
        + f" in {outcome.seconds:.2f} s"
    )
    if outcome.by_rule:
        table = Table("rule", "findings")
        for code, count in sorted(outcome.by_rule.items()):
            table.add_row(code, str(count))
        out.print(table)


@app.command("run")
@handle_errors
def run(
    meter: Annotated[str | None, typer.Option("--meter", help="Only this meter.")] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="ISO-8601: intervals ending after this.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="ISO-8601: intervals ending at or before this.")
    ] = None,
    rules: RulesOption = None,
    estimate: Annotated[
        bool, typer.Option("--estimate/--no-estimate", help="Estimate the gaps found.")
    ] = True,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Run the rules again over stored data (e.g. after a rule change)."""
    lo = epoch_of(parse_instant(start)) if start else None
    hi = epoch_of(parse_instant(end)) if end else None
    if lo is not None and hi is not None and hi <= lo:
        raise InputError("--to must be after --from")
    store = open_db(db)
    ruleset = load_rules(rules)
    ingestor = Ingestor(store, vee=False, ruleset=ruleset)
    with console.status("running the VEE rules…"):
        pending = ingestor.check_pending()
        outcome = check_range(
            store,
            meter_id=meter,
            start=lo,
            end=hi,
            ruleset=ruleset,
            write_estimates=ingestor.write_estimates if estimate else None,
        )
    # the range pass saw what the pending pass found and estimated; count the estimates once
    outcome.batches += pending.batches
    outcome.estimated += pending.estimated
    if json_out:
        emit_json(outcome.as_dict())
    else:
        print_outcome(outcome)


@app.command("rules")
@handle_errors
def rules_list(rules: RulesOption = None, json_out: JsonOption = False) -> None:
    """List every rule with its default severity and parameters."""
    ruleset = load_rules(rules)
    listing = ruleset.codes()
    if json_out:
        emit_json(listing)
        return
    table = Table("rule", "severity", "parameters")
    for item in listing:
        params = ", ".join(
            f"{k}={v}" for k, v in sorted(item.items()) if k not in ("code", "severity")
        )
        table.add_row(str(item["code"]), str(item["severity"]), params)
    out.print(table)
