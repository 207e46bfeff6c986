"""``meterledger demo``: one billing cycle on the embedded default, meter to invoice.

A simulated fleet (50 meters, 30 days of 15-minute data) drops daily CSV files with known
faults; everything goes through the real pipeline into a fresh SQLite store; the VEE rules
run over it, estimating the gaps; the summary compares what ingest and VEE found with what
was injected. The cycle's last day is read from the meters by every kind of collector at
once (DLMS, Zigbee behind a gateway, the vendor REST API, MQTT; :mod:`.demo_feeds`), the
vendor API failing on purpose so that its circuit breaker opens and recovers. Then every
account is billed under the bundled tariffs and its invoice (HTML and PDF) is written; late
actuals and a manual edit of a held spike then rebill two accounts; the audit chain is
verified.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from meterledger.billing.invoice import write_invoices
from meterledger.billing.money import plain
from meterledger.billing.tariff import load_tariff
from meterledger.cli.billing_service import add_tariff, put_account, run_cycle
from meterledger.cli.common import JsonOption, console, counter, emit_json, handle_errors, out
from meterledger.cli.demo_feeds import FeedsOptions, read_final_day, render_feeds
from meterledger.cli.demo_vee import (
    after_billing,
    faults_matched,
    match_faults,
    render_after,
    render_vee,
    vee_pass,
)
from meterledger.core.errors import ConflictError, InputError
from meterledger.ingest.audit import verify
from meterledger.ingest.pipeline import IngestOptions, Ingestor, register_meter
from meterledger.simulate.fleet import Delivery, SimMeter, make_fleet, write_delivery
from meterledger.simulate.loadshapes import LoadKind
from meterledger.store import Store, open_store
from meterledger.store.base import BatchCounts, MeterRecord
from meterledger.store.records import AccountRecord
from meterledger.store.urls import redact_url

TZ = "America/New_York"
TARIFF_DIR = Path(__file__).resolve().parent.parent / "billing" / "tariffs"
BUNDLED = {
    LoadKind.RESIDENTIAL: "residential_tou.yaml",
    LoadKind.COMMERCIAL: "commercial_tou_demand.yaml",
}


def _fresh_store(db: str | None, out_dir: Path) -> Store:
    if db is None:
        path = out_dir / "demo.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        db = f"sqlite:///{path}"
    store = open_store(db)
    if store.count("meters") or store.count("readings"):
        raise ConflictError(f"the demo needs an empty store; {db} already has data")
    return store


def run_demo(
    *,
    out_dir: Path,
    db: str | None,
    meters: int,
    days: int,
    seed: int,
    start: date,
    show_progress: bool,
    dlms: bool = True,
    feeds: FeedsOptions | None = None,
) -> dict[str, Any]:
    """Ingest ``days`` of file drops, read day ``days + 1`` from the meters (unless ``dlms``
    is false: over DLMS, Zigbee, the vendor API and MQTT at once, or over DLMS alone when
    ``feeds`` is disabled), verify the audit chain, bill the cycle and write the invoices."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    store = _fresh_store(db, out_dir)
    fleet = make_fleet(meters, seed=seed, tz=TZ)
    first = datetime(start.year, start.month, start.day, tzinfo=ZoneInfo(TZ)).astimezone(UTC)
    delivery = write_delivery(fleet, start=first, days=days, out_dir=out_dir / "drop", seed=seed)
    with store.write() as tx:
        for m in fleet:
            register_meter(
                tx,
                MeterRecord(
                    meter_id=m.meter_id,
                    service=m.service.value,
                    unit="kWh",
                    timezone=m.timezone,
                    account=m.account,
                    status="active",
                    capacity=m.capacity_milli_per_hour,
                    created_at=first.isoformat(),
                ),
            )
    totals = BatchCounts()
    ingestor = Ingestor(store)  # VEE runs once after the whole drop (vee_pass)
    with counter(show=show_progress) as progress:
        task = progress.add_task("ingest", total=len(delivery.files))
        for path in delivery.files:
            progress.update(task, description=f"ingest {path.name}")
            totals.add(ingestor.ingest_path(path, IngestOptions(fmt="csv")).counts)
            progress.advance(task)
    readings = store.count("readings")
    with console.status("VEE: the rules over the file drops, estimating gaps…"):
        vee = vee_pass(store)
    faults = match_faults(store, delivery)
    head_end: dict[str, Any] | None = None
    feeds_read: dict[str, Any] | None = None
    if dlms and fleet:
        with counter(show=show_progress) as progress:
            task = progress.add_task("read meters (DLMS; the other feeds at once)")
            head_end, feeds_read = read_final_day(
                store,
                fleet,
                first,
                days,
                seed,
                lambda _: progress.advance(task),
                feeds or FeedsOptions(),
            )
        head_end["vee"] = vee_pass(store)
    summary = {
        "meters": meters,
        "days": days,
        "files": len(delivery.files),
        "records": totals.records,
        "accepted": readings,
        "duplicates": totals.duplicates,
        "superseded": totals.superseded,
        "conflicts_held_for_review": totals.conflicts,
        "quarantined": dict(
            sorted((k, v) for k, v in totals.reasons.items() if k != "REVISION_CONFLICT")
        ),
        "missing_from_billing_view": delivery.fleet_keys - readings,
        "expected": delivery.expected(),
        "vee": vee,
        "vee_faults": faults,
        "seconds": round(time.perf_counter() - started, 2),
        "db": redact_url(store.url),
    }
    summary["matches_injected_faults"] = _matches(summary, delivery) and faults_matched(faults)
    summary["head_end"] = head_end
    summary["feeds"] = feeds_read
    summary["billing"] = bill_demo(store, fleet, start, out_dir, show_progress)
    summary["after_billing"] = after_billing(store, delivery)
    summary["audit"] = verify(store).as_dict()
    summary["seconds"] = round(time.perf_counter() - started, 2)
    store.close()
    return summary


def bill_demo(
    store: Store, fleet: list[SimMeter], start: date, out_dir: Path, show_progress: bool
) -> dict[str, Any]:
    """Bill every simulated account for the cycle that starts on ``start`` under the bundled
    tariffs (residential TOU with NEM, commercial TOU with demand) and write the invoices."""
    tariffs = {}
    for kind, name in BUNDLED.items():
        tariff = load_tariff(TARIFF_DIR / name)
        add_tariff(store, tariff)
        tariffs[kind] = tariff
    cycle_day = start.day if start.day <= 28 else 1
    period = f"{start.year:04d}-{start.month:02d}"
    now = datetime.now(UTC).isoformat(timespec="seconds")
    kinds = {m.account: m.kind for m in fleet}
    for m in fleet:
        put_account(
            store,
            AccountRecord(
                m.account, tariffs[m.kind].id, m.timezone, cycle_day, None, None, now, now
            ),
        )
    report = run_cycle(store, period)
    invoices = out_dir / "invoices"
    with counter(show=show_progress) as progress:
        task = progress.add_task("invoices", total=len(report.issued))
        for bill_id in report.issued:
            rec = store.get_bill(bill_id)
            assert rec is not None
            write_invoices(
                json.loads(rec.document),
                invoices,
                f"{rec.account_id}_{rec.period}_{rec.bill_id}",
                bill_id=rec.bill_id,
            )
            progress.advance(task)
    bills = [
        {
            "account": b.account,
            "kind": kinds[b.account].value,
            "tariff": b.tariff_id,
            "kwh": plain(b.determinants.kwh_delivered.quantize(Decimal("0.001"))),
            "peak_kw": plain(b.determinants.peak_kw.quantize(Decimal("0.01"))),
            "estimated_share": plain(b.determinants.estimated_share),
            "total": str(b.total),
        }
        for b in sorted(report.bills, key=lambda b: b.account)
    ]
    return {
        "period": period,
        "cycle_day": cycle_day,
        "bills_issued": len(report.issued),
        "invoices": str(invoices),
        "total": str(sum((b.total for b in report.bills), Decimal(0))),
        "bills": bills,
    }


def _matches(summary: dict[str, Any], delivery: Delivery) -> bool:
    expected = delivery.expected()
    return bool(
        summary["accepted"] == expected["accepted"]
        and summary["duplicates"] == expected["duplicates"]
        and summary["superseded"] == expected["superseded"]
        and summary["conflicts_held_for_review"] == expected["conflicts"]
        and summary["quarantined"] == expected["quarantined"]
    )


def _render(summary: dict[str, Any]) -> None:
    expected = summary["expected"]
    table = Table(
        "",
        "found",
        "injected",
        title=f"cycle summary: {summary['meters']} meters, "
        f"{summary['days']} days, {summary['files']} files, {summary['records']:,} "
        "records",
    )
    table.add_row(
        "accepted (readings in the billing view)",
        f"{summary['accepted']:,}",
        f"{expected['accepted']:,}",
    )
    table.add_row(
        "duplicates (no effect)", f"{summary['duplicates']:,}", f"{expected['duplicates']:,}"
    )
    table.add_row(
        "estimates superseded by actuals", str(summary["superseded"]), str(expected["superseded"])
    )
    table.add_row(
        "revision conflicts held for review",
        str(summary["conflicts_held_for_review"]),
        str(expected["conflicts"]),
    )
    for code in sorted(set(summary["quarantined"]) | set(expected["quarantined"])):
        table.add_row(
            f"quarantined: {code}",
            str(summary["quarantined"].get(code, 0)),
            str(expected["quarantined"].get(code, 0)),
        )
    table.add_row(
        "missing from the billing view (gaps, bad rows)",
        str(summary["missing_from_billing_view"]),
        "",
    )
    out.print(table)
    render_vee(summary["vee"], summary["vee_faults"])
    audit = summary["audit"]
    status = "[green]OK[/]" if audit["ok"] else f"[red]BROKEN[/] {audit['first_broken']}"
    out.print(
        f"audit chain {status}: {audit['entries']} entries, {audit['rows_checked']:,} rows checked"
    )
    head_end = summary.get("head_end")
    if head_end:
        out.print(
            f"head-end (DLMS over loopback TCP, {head_end['secured']} meters with HLS-GMAC and "
            f"suite 0): {head_end['meters_read']} meters read, "
            f"{head_end['intervals_accepted']:,} intervals accepted"
        )
        for failure in head_end["failed"]:
            out.print(
                f"  [red]{failure['code']}[/] {failure['meter_id']}: {failure['message']} "
                "(the cycle went on without it)"
            )
    if summary.get("feeds"):
        render_feeds(summary["feeds"])
    billing = summary["billing"]
    bills = Table(
        "account",
        "kind",
        "tariff",
        "kWh",
        "peak kW",
        "estimated",
        "total",
        title=f"bills for cycle {billing['period']} (cycle day {billing['cycle_day']})",
    )
    for b in billing["bills"]:
        share = Decimal(b["estimated_share"])
        bills.add_row(
            b["account"],
            b["kind"],
            b["tariff"],
            b["kwh"],
            b["peak_kw"],
            f"{share:.2%}" if share else "",
            b["total"],
        )
    out.print(bills)
    out.print(
        f"{billing['bills_issued']} bills, total {billing['total']}; invoices (HTML, PDF) "
        f"in {billing['invoices']}"
    )
    render_after(summary["after_billing"])
    verdict = "[green]yes[/]" if summary["matches_injected_faults"] else "[red]no[/]"
    out.print(
        f"found exactly what was injected: {verdict}   ({summary['seconds']} s, {summary['db']})"
    )


def command(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Work folder for files and the store.")
    ] = Path("out/demo"),
    db: Annotated[
        str | None,
        typer.Option("--db", help="An empty store to use instead of a fresh OUT/demo.db."),
    ] = None,
    meters: Annotated[int, typer.Option(min=1, help="Fleet size.")] = 50,
    days: Annotated[
        int, typer.Option(min=2, max=366, help="Days of 15-minute data in the file drops.")
    ] = 30,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same run.")] = 7,
    start: Annotated[
        str, typer.Option(help="First local day of the cycle (America/New_York).")
    ] = "2024-10-15",
    dlms: Annotated[
        bool,
        typer.Option(
            "--dlms/--no-dlms",
            help="Read the day after the file drops from the simulated meters over DLMS.",
        ),
    ] = True,
    feeds: Annotated[
        bool,
        typer.Option(
            "--feeds/--no-feeds",
            help="Read the last day over DLMS, Zigbee, the vendor API and MQTT at once (the "
            "vendor API down on purpose), or over DLMS alone.",
        ),
    ] = True,
    mqtt_host: Annotated[
        str, typer.Option("--mqtt-host", help="The MQTT broker for the MQTT feed.")
    ] = "127.0.0.1",
    mqtt_port: Annotated[int, typer.Option("--mqtt-port", help="Its port.")] = 1883,
    json_out: JsonOption = False,
) -> None:
    """Run one simulated billing cycle end to end: ingest with injected faults, the audit
    check, bills for every account under the bundled tariffs, and their invoices."""
    try:
        first_day = date.fromisoformat(start)
    except ValueError as exc:
        raise InputError(f"--start must be a date like 2024-10-15, got {start!r}") from exc
    summary = run_demo(
        out_dir=out_dir,
        db=db,
        meters=meters,
        days=days,
        seed=seed,
        start=first_day,
        show_progress=not json_out,
        dlms=dlms,
        feeds=FeedsOptions(enabled=feeds, mqtt_host=mqtt_host, mqtt_port=mqtt_port),
    )
    if json_out:
        emit_json(summary)
    else:
        _render(summary)
    if not summary["audit"]["ok"]:
        raise typer.Exit(1)


command = handle_errors(command)
