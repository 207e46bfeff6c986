"""``meterledger meters``: register and list meters."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer
from rich.table import Table

from meterledger.cli.common import DbOption, JsonOption, emit_json, handle_errors, open_db, out
from meterledger.core.errors import InputError
from meterledger.core.ids import MeterId, MeterStatus, Service
from meterledger.core.time import parse_zone
from meterledger.ingest.pipeline import register_meter
from meterledger.store.base import MeterRecord
from meterledger.store.records import DEFAULT_METER_CLASS, check_meter_class

app = typer.Typer(help="Register and list meters.", no_args_is_help=True)


def capacity_milli(service: Service, capacity: str | None) -> int:
    """``--capacity`` is per hour in kW (electric) or m3/h (water, gas) → milli-units/hour."""
    if capacity is None:
        return service.default_capacity_milli_per_hour
    try:
        value = Decimal(capacity)
    except InvalidOperation as exc:
        raise InputError(f"--capacity must be a number, got {capacity!r}") from exc
    milli = value * 1_000_000 if value.is_finite() else Decimal(0)
    # from 1 W (1 L/h) to 1 GW (1,000,000 m3/h): outside that a typo, not a meter
    if not 1_000 <= milli <= 10**15:
        raise InputError(f"--capacity must be between 0.001 and 1000000, got {capacity}")
    return int(milli)


@app.command("add")
@handle_errors
def add(
    meter_id: Annotated[str, typer.Argument(help="The utility's meter id.")],
    service: Annotated[Service, typer.Option(help="What the meter measures.")] = Service.ELECTRIC,
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of the meter.")] = "UTC",
    account: Annotated[str | None, typer.Option(help="Billing account.")] = None,
    capacity: Annotated[
        str | None,
        typer.Option(
            help="Physical ceiling: kW for electric, m3/h for water and gas. Readings above it "
            "are quarantined as IMPLAUSIBLE_VALUE."
        ),
    ] = None,
    status: Annotated[MeterStatus, typer.Option(help="Meter status.")] = MeterStatus.ACTIVE,
    meter_class: Annotated[
        str,
        typer.Option(
            "--class",
            help="Meter class: picks the VEE rule settings (a lower-case letter, then up to"
            " 31 of a-z, 0-9, _ and -).",
        ),
    ] = DEFAULT_METER_CLASS,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Register a meter with every standard channel of its service."""
    MeterId(meter_id)
    parse_zone(tz)
    check_meter_class(meter_class)
    record = MeterRecord(
        meter_id=meter_id,
        service=service.value,
        unit=service.default_unit.value,
        timezone=tz,
        account=account,
        status=status.value,
        capacity=capacity_milli(service, capacity),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        meter_class=meter_class,
    )
    store = open_db(db)
    with store.write() as tx:
        register_meter(tx, record)
    if json_out:
        emit_json(asdict(record))
    else:
        out.print(f"added meter {meter_id} ({service.value}, {tz}, class {meter_class})")


@app.command("list")
@handle_errors
def list_meters(db: DbOption = None, json_out: JsonOption = False) -> None:
    """List registered meters."""
    meters = open_db(db).list_meters()
    if json_out:
        emit_json([asdict(m) for m in meters])
        return
    table = Table("meter_id", "service", "unit", "timezone", "account", "status", "class")
    for m in meters:
        table.add_row(
            m.meter_id, m.service, m.unit, m.timezone, m.account or "", m.status, m.meter_class
        )
    out.print(table)
    out.print(f"{len(meters)} meters")
