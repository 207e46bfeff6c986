"""``meterledger bill``: bill a load file directly by calendar month, no store needed."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, cast

import typer
from rich.table import Table

from meterledger.billing.loadfile import read_load_csv
from meterledger.billing.runs import annual_total, bill_load, month_summary
from meterledger.billing.tariff import METERING_MODES, MeteringMode, load_tariff
from meterledger.cli.common import JsonOption, console, emit_json, handle_errors, out
from meterledger.core.errors import InputError
from meterledger.core.time import parse_zone

TariffOption = Annotated[
    Path,
    typer.Option(
        "--tariff",
        help="Tariff: our YAML format (.yaml/.yml) or an OpenEI URDB rate JSON (.json).",
    ),
]


def command(
    tariff_path: TariffOption,
    load: Annotated[
        Path,
        typer.Option(
            "--load", help="Load CSV: timestamp,kwh_delivered[,kwh_received] (interval starts)."
        ),
    ],
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz",
            help="IANA zone for naive timestamps, and the zone of a URDB tariff.",
        ),
    ] = None,
    metering: Annotated[
        str | None,
        typer.Option("--metering", help="Net metering mode: nem, net_billing, buy_all_sell_all."),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Bill a load file by calendar month under a tariff and print each month's bill."""
    if metering is not None and metering not in METERING_MODES:
        raise InputError(f"--metering must be one of {', '.join(METERING_MODES)}; got {metering!r}")
    zone = parse_zone(tz) if tz else None
    if tariff_path.suffix.lower() == ".json" and tz is None:
        console.print(
            "[yellow]warning:[/] URDB rates carry no time zone; billing in UTC (give --tz ZONE)"
        )
    tariff = load_tariff(tariff_path, timezone=tz)
    if tz is not None and tariff.source == "yaml" and tz != tariff.timezone:
        console.print(
            f"[yellow]note:[/] --tz {tz} reads naive timestamps only; the tariff bills in its "
            f"own zone, {tariff.timezone}"
        )
    series = read_load_csv(load, zone)
    results = bill_load(tariff, series, metering=cast("MeteringMode | None", metering))
    bills = [bill for bill, _ in results]
    months = [month_summary(b) for b in bills]
    if json_out:
        emit_json({"months": months, "annual_total": annual_total(bills)})
        return
    table = Table(title=f"{tariff.name} ({tariff.id}): {load.name}")
    for name in (
        "month",
        "kWh in",
        "kWh out",
        "peak kW",
        "energy",
        "demand",
        "fixed+min",
        "credits",
        "taxes",
        "total",
    ):
        table.add_column(name, justify="left" if name == "month" else "right", no_wrap=True)
    for m, bill in zip(months, bills, strict=True):
        demand = Decimal(m["demand_flat"]) + Decimal(m["demand_tou"])
        other = Decimal(m["fixed"]) + Decimal(m["minimum"])
        table.add_row(
            m["month"],
            f"{Decimal(m['kwh_delivered']):,.1f}",
            f"{Decimal(m['kwh_received']):,.1f}",
            f"{Decimal(m['peak_kw']):,.2f}",
            m["energy"],
            str(demand),
            str(other),
            m["nem_credit"],
            str(bill.amount_of("tax")),
            m["total"],
        )
    out.print(table)
    out.print(f"annual total: {annual_total(bills)} {tariff.currency}")
    for bill in bills:
        for note in bill.notes:
            console.print(f"[yellow]note[/] {bill.period}: {note}")


command = handle_errors(command)
