"""``meterledger anomalies``: the findings of the VEE rules, and their review.

An interval with an open ``fail`` finding is kept out of billing until someone acts on it:
``release`` accepts the value as it is, ``edit --value`` replaces it by a manual edit, and
``replay`` runs the rules again after a fix. Each action is an entry on the audit chain; a
cycle already billed is rebilled when the action changes its bill.
"""

from __future__ import annotations

import enum
from decimal import Decimal
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
from meterledger.cli.vee import RulesOption, load_rules
from meterledger.cli.vee_service import (
    Rebill,
    edit_anomaly,
    release_anomaly,
    replay_anomalies,
)
from meterledger.core.errors import NotFoundError
from meterledger.core.reading import Quality
from meterledger.core.time import iso_utc
from meterledger.store.records import AnomalyRecord

app = typer.Typer(help="VEE findings: list, show, release, edit, replay.", no_args_is_help=True)

_AROUND = 8  # intervals shown each side of the flagged one


class Status(enum.StrEnum):
    open = "open"
    released = "released"
    edited = "edited"
    cleared = "cleared"
    all = "all"


def anomaly_dict(a: AnomalyRecord) -> dict[str, Any]:
    """The JSON object of one finding (``anomalies list --json``): a contract."""
    return {
        "anomaly_id": a.anomaly_id,
        "meter_id": a.meter_id,
        "channel": a.channel,
        "interval_end": iso_utc(a.interval_end),
        "rule": a.rule,
        "severity": a.severity,
        "detail": a.detail,
        "status": a.status,
        "value_milli": a.value,
        "created_at": a.created_at,
        "resolved_at": a.resolved_at,
        "note": a.note,
        "audit_seq": a.audit_seq,
    }


def _rebills_text(rebills: list[Rebill]) -> str:
    if not rebills:
        return ""
    return "; rebilled " + ", ".join(
        f"{r.account} {r.period} (cancel {r.cancel}, rebill {r.rebill})" for r in rebills
    )


@app.command("list")
@handle_errors
def list_anomalies(
    meter: Annotated[str | None, typer.Option("--meter", help="Only this meter.")] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Only this rule code.")] = None,
    status: Annotated[Status, typer.Option(help="Which findings.")] = Status.open,
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """List findings (default: the open ones)."""
    found = open_db(db).list_anomalies(
        meter_id=meter,
        rule=rule,
        status=None if status is Status.all else status.value,
        limit=limit,
    )
    if json_out:
        emit_json([anomaly_dict(a) for a in found])
        return
    table = Table(
        "id", "meter_id", "interval_end", "rule", "sev", "status", "detail", box=box.SIMPLE_HEAD
    )
    for a in found:
        table.add_row(
            str(a.anomaly_id),
            a.meter_id,
            iso_utc(a.interval_end),
            a.rule,
            a.severity,
            a.status,
            a.detail,
        )
    out.print(table)
    out.print(f"{len(found)} findings")


@app.command("show")
@handle_errors
def show(
    anomaly_id: Annotated[int, typer.Argument(help="Anomaly id.")],
    around: Annotated[int, typer.Option(help="Intervals shown each side.")] = _AROUND,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show one finding with the data around it (the other findings on the same interval
    and the readings before and after)."""
    store = open_db(db)
    a = store.get_anomaly(anomaly_id)
    if a is None:
        raise NotFoundError(f"no anomaly {anomaly_id}")
    span = 86_400
    rows = store.readings(a.meter_id, a.interval_end - span, a.interval_end + span, a.channel)
    ends = rows["interval_end"].to_list()
    at = min(range(len(ends)), key=lambda i: abs(ends[i] - a.interval_end)) if ends else 0
    window = rows.slice(max(0, at - around), 2 * around + 1)
    others = [
        o
        for o in store.list_anomalies(
            meter_id=a.meter_id, status=None, start=a.interval_end - 1, end=a.interval_end
        )
        if o.anomaly_id != a.anomaly_id and o.channel == a.channel
    ]
    data = [
        {
            "interval_end": iso_utc(int(r["interval_end"])),
            "interval_seconds": int(r["interval_seconds"]),
            "value": _kwh(int(r["value"])) if _energy(a.channel) else str(r["value"]),
            "quality": Quality(int(r["quality"])).to_text(),
            "flagged": int(r["interval_end"]) == a.interval_end,
        }
        for r in window.iter_rows(named=True)
    ]
    if json_out:
        emit_json(
            {**anomaly_dict(a), "same_interval": [anomaly_dict(o) for o in others], "data": data}
        )
        return
    for name, value in anomaly_dict(a).items():
        out.print(f"[bold]{name:>12}[/]  {value}", highlight=False)
    for o in others:
        out.print(f"[bold]{'also':>12}[/]  {o.anomaly_id} {o.rule} {o.severity}: {o.detail}")
    unit = "kWh" if _energy(a.channel) else "milli"
    table = Table("", "interval_end", f"value ({unit})", "quality", box=box.SIMPLE_HEAD)
    for d in data:
        table.add_row(
            "▶" if d["flagged"] else "", str(d["interval_end"]), str(d["value"]), str(d["quality"])
        )
    out.print(table)


def _kwh(milli: int) -> str:
    """mWh as kWh with the three decimals a reviewer reads (exact: 1 mWh is 0.000001 kWh)."""
    text = f"{Decimal(milli) / 1_000_000:f}"
    whole, _, frac = text.partition(".")
    return f"{whole}.{(frac + '000')[: max(3, len(frac.rstrip('0')))]}"


def _energy(channel: str) -> bool:
    return channel.startswith("1.0.") and ".8." in channel


@app.command("release")
@handle_errors
def release(
    anomaly_id: Annotated[int, typer.Argument(help="Anomaly id.")],
    note: Annotated[str | None, typer.Option(help="Why (kept on the audit chain).")] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Accept the flagged value: the interval goes back into billing."""
    record, rebills = release_anomaly(open_db(db), anomaly_id, note=note)
    if json_out:
        emit_json({**anomaly_dict(record), "rebills": [r.as_dict() for r in rebills]})
    else:
        out.print(f"released anomaly {anomaly_id}" + _rebills_text(rebills))


@app.command("edit")
@handle_errors
def edit(
    anomaly_id: Annotated[int, typer.Argument(help="Anomaly id.")],
    value: Annotated[str, typer.Option("--value", help="The corrected value.")],
    unit: Annotated[str, typer.Option(help="Unit of --value.")] = "kWh",
    note: Annotated[str | None, typer.Option(help="Why (kept on the audit chain).")] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Replace the flagged value by a manual edit (on the audit chain)."""
    record, rebills = edit_anomaly(open_db(db), anomaly_id, value=value, unit=unit, note=note)
    if json_out:
        emit_json({**anomaly_dict(record), "rebills": [r.as_dict() for r in rebills]})
    else:
        out.print(f"edited anomaly {anomaly_id}: {value} {unit}" + _rebills_text(rebills))


@app.command("replay")
@handle_errors
def replay(
    ids: Annotated[
        list[int] | None, typer.Argument(help="Anomaly ids (default: every open one).")
    ] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Only this rule code.")] = None,
    meter: Annotated[str | None, typer.Option("--meter", help="Only this meter.")] = None,
    rules: RulesOption = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Run the rules again over the findings' days after a fix; those no longer raised are
    cleared."""
    with console.status("running the rules again…"):
        outcome, after = replay_anomalies(
            open_db(db), ids or None, rule=rule, meter_id=meter, ruleset=load_rules(rules)
        )
    if json_out:
        emit_json(
            {
                "vee": outcome.as_dict(),
                "anomalies": [{"anomaly_id": i, "status": s} for i, s in after],
            }
        )
        return
    cleared = sum(s == "cleared" for _, s in after)
    out.print(f"{cleared} of {len(after)} findings cleared; {len(after) - cleared} still stand")
