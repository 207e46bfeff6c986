"""``meterledger cycle run|rebill``, ``bills list|show`` and ``invoices render``."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from meterledger.billing.cycles import parse_period
from meterledger.billing.invoice import write_invoices
from meterledger.cli.billing_service import RunReport, run_cycle
from meterledger.cli.common import (
    DbOption,
    JsonOption,
    console,
    counter,
    emit_json,
    handle_errors,
    open_db,
    out,
)
from meterledger.core.errors import NotFoundError
from meterledger.ingest.pipeline import Ingestor
from meterledger.store import Store
from meterledger.store.records import BillRecord

cycle_app = typer.Typer(
    help="Billing cycles: run a period, rebill after late data.", no_args_is_help=True
)
bills_app = typer.Typer(help="The bill ledger (append-only).", no_args_is_help=True)
invoices_app = typer.Typer(help="Invoices (HTML and PDF) of stored bills.", no_args_is_help=True)

PeriodOption = Annotated[str, typer.Option("--period", help="Billing period, YYYY-MM.")]
AccountOption = Annotated[str | None, typer.Option("--account", help="Only this account.")]


def _run(store: Store, period: str, account: str | None, rebill: bool, quiet: bool) -> RunReport:
    # nothing is billed unchecked: batches a collector run or a crash left pending first
    with console.status("running the VEE rules on unchecked data…"):
        Ingestor(store).check_pending()
    with counter(show=not quiet) as bar:
        task = bar.add_task("bill" if not rebill else "rebill", total=None)
        return run_cycle(
            store, period, account, rebill=rebill, progress=lambda n: bar.advance(task, n)
        )


def _print_report(report: RunReport) -> None:
    out.print(
        f"period {report.period}: {len(report.issued)} issued, {len(report.unchanged)} "
        f"unchanged, {len(report.rebilled)} rebilled, {len(report.changed)} changed "
        f"(need `cycle rebill`), {len(report.not_in_service)} not in service"
    )
    for account in report.changed:
        out.print(
            f"  [yellow]changed[/] {account}: the bill computed now differs from the bill in "
            "force (late or corrected readings, or a changed account or carried credit)"
        )
    for account in report.still_open:
        out.print(f"  [yellow]open[/] {account}: the cycle has not ended; not billed")
    for account in report.no_readings:
        out.print(f"  [red]no readings[/] {account}: nothing to bill; held")
    for account in report.incomplete:
        out.print(f"  [yellow]incomplete[/] {account}: intervals missing (see the bill's notes)")


@cycle_app.command("run")
@handle_errors
def cycle_run(
    period: PeriodOption,
    account: AccountOption = None,
    db_url: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Bill every account (or one) for PERIOD. Re-running on the same data writes nothing;
    a closed cycle whose readings changed is reported, not changed (see cycle rebill)."""
    report = _run(open_db(db_url), period, account, False, json_out)
    emit_json(report.as_dict()) if json_out else _print_report(report)


@cycle_app.command("rebill")
@handle_errors
def cycle_rebill(
    period: PeriodOption,
    account: AccountOption = None,
    db_url: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Re-rate PERIOD; where a bill in force no longer matches the readings, issue a cancel
    and a rebill that shows the delta, both on the audit chain. Rebill later periods too:
    the NEM credit they carried in may have changed."""
    report = _run(open_db(db_url), period, account, True, json_out)
    emit_json(report.as_dict()) if json_out else _print_report(report)


def _summary(rec: BillRecord) -> dict[str, Any]:
    return {
        "bill_id": rec.bill_id,
        "account": rec.account_id,
        "period": rec.period,
        "kind": rec.kind,
        "replaces": rec.replaces,
        "total": rec.total,
        "content_hash": rec.content_hash,
        "created_at": rec.created_at,
        "audit_seq": rec.audit_seq,
    }


@bills_app.command("list")
@handle_errors
def bills_list(
    account: AccountOption = None,
    period: Annotated[str | None, typer.Option("--period", help="Only this period.")] = None,
    db_url: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """List the bill ledger: bills, cancels and rebills, oldest first."""
    if period is not None:
        parse_period(period)
    records = open_db(db_url).list_bills(account, period)
    if json_out:
        emit_json([_summary(r) for r in records])
        return
    table = Table("bill", "account", "period", "kind", "replaces", "total", "audit")
    for r in records:
        table.add_row(
            str(r.bill_id),
            r.account_id,
            r.period,
            r.kind,
            str(r.replaces or ""),
            r.total,
            str(r.audit_seq or ""),
        )
    out.print(table)


def _get(store: Store, bill_id: int) -> BillRecord:
    rec = store.get_bill(bill_id)
    if rec is None:
        raise NotFoundError(f"bill {bill_id} is not in the store")
    return rec


@bills_app.command("show")
@handle_errors
def bills_show(
    bill_id: Annotated[int, typer.Argument(help="Bill number.")],
    db_url: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show one bill: determinants and every line with its explanation."""
    rec = _get(open_db(db_url), bill_id)
    doc = json.loads(rec.document)
    if json_out:
        emit_json({**_summary(rec), "document": doc})
        return
    out.print(
        f"[bold]bill {rec.bill_id}[/] ({rec.kind}) account {rec.account_id}, "
        f"period {rec.period}, total {rec.total}"
    )
    if rec.kind == "cancel":
        out.print(f"cancels bill {rec.replaces}")
    det = doc.get("determinants") or doc.get("original", {}).get("determinants", {})
    if det:
        out.print(
            f"{det['start']} to {det['end']} ({det['days']} days), "
            f"{det['kwh_delivered']} kWh delivered, {det['kwh_received']} kWh received, "
            f"peak {det['peak_kw']} kW, estimated share {det['estimated_share']}"
        )
    table = Table("line", "explanation", "amount")
    for line in doc.get("lines", []):
        table.add_row(line["description"], line["explanation"], line["amount"])
    out.print(table)
    if "rebill" in doc:
        out.print(f"replaces bill {doc['rebill']['replaces']}; delta {doc['rebill']['delta']}")


@invoices_app.command("render")
@handle_errors
def invoices_render(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the HTML and PDF files.")],
    period: Annotated[str | None, typer.Option("--period", help="Only this period.")] = None,
    account: AccountOption = None,
    db_url: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Render every bill in the ledger (or a period/account's) as HTML and PDF."""
    if period is not None:
        parse_period(period)
    records = open_db(db_url).list_bills(account, period)
    if not records:
        raise NotFoundError(
            "no bills to render"
            + (f" for account {account!r}" if account else "")
            + (f" in period {period}" if period else "")
        )
    written = []
    for rec in records:
        doc = json.loads(rec.document)
        stem = f"{rec.account_id}_{rec.period}_{rec.bill_id}_{rec.kind}"
        if rec.kind == "cancel":
            doc = {
                **doc["original"],
                "lines": doc["lines"],
                "total": doc["total"],
                "subtotal": str(-Decimal(doc["original"]["subtotal"])),
            }
        html, pdf = write_invoices(
            doc, out_dir, stem, kind=rec.kind, bill_id=rec.bill_id, replaces=rec.replaces
        )
        written.append({"bill_id": rec.bill_id, "html": str(html), "pdf": str(pdf)})
    if json_out:
        emit_json(written)
    else:
        out.print(f"{len(written)} invoices written to {out_dir}")
