"""``meterledger readings export``: the billing view as canonical CSV or JSON lines."""

from __future__ import annotations

import csv
import enum
import json
import sys
from pathlib import Path
from typing import Annotated, TextIO

import typer

from meterledger.cli.common import DbOption, console, handle_errors, open_db
from meterledger.core.errors import InputError, NotFoundError
from meterledger.core.obis import ObisCode
from meterledger.core.reading import Quality
from meterledger.core.time import epoch_of, iso_utc, parse_instant
from meterledger.core.units import BaseUnit, Unit, text_from_milli

app = typer.Typer(help="Read the billing view.", no_args_is_help=True)

COLUMNS = ("meter_id", "channel", "interval_end", "interval_seconds", "value", "unit", "quality")


class Format(enum.StrEnum):
    csv = "csv"
    jsonl = "jsonl"


def export_unit(meter_unit: str, base: str) -> Unit:
    """The meter's unit where it measures the channel's quantity, else the base unit."""
    unit = Unit(meter_unit)
    return unit if unit.base.value == base else Unit(BaseUnit(base).value)


@app.command("export")
@handle_errors
def export(
    meter: Annotated[str, typer.Option("--meter", help="Meter id.")],
    start: Annotated[
        str,
        typer.Option("--from", help="ISO-8601 start (exclusive end bound of the first interval)."),
    ],
    end: Annotated[str, typer.Option("--to", help="ISO-8601 end (inclusive interval_end).")],
    fmt: Annotated[Format, typer.Option("--format", help="csv or jsonl.")] = Format.csv,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of stdout.")
    ] = None,
    channel: Annotated[str | None, typer.Option(help="Only this OBIS channel.")] = None,
    db: DbOption = None,
) -> None:
    """Export the intervals of one meter that lie within [--from, --to]."""
    lo, hi = epoch_of(parse_instant(start)), epoch_of(parse_instant(end))
    if hi <= lo:
        raise InputError("--to must be after --from")
    store = open_db(db)
    record = store.get_meter(meter)
    if record is None:
        raise NotFoundError(f"no meter {meter}")
    bases = {c.obis: c.base_unit for c in store.list_channels() if c.meter_id == meter}
    obis = str(ObisCode.parse(channel)) if channel is not None else None
    frame = store.readings(meter, lo, hi, obis)
    stream: TextIO = out_path.open("w", newline="", encoding="utf-8") if out_path else sys.stdout
    try:
        writer = csv.writer(stream, lineterminator="\n") if fmt is Format.csv else None
        if writer:
            writer.writerow(COLUMNS)
        for row in frame.iter_rows(named=True):
            unit = export_unit(record.unit, bases[row["channel"]])
            values = (
                meter,
                row["channel"],
                iso_utc(row["interval_end"]),
                row["interval_seconds"],
                text_from_milli(row["value"], unit),
                unit.value,
                Quality(row["quality"]).to_text(),
            )
            if writer:
                writer.writerow(values)
            else:
                stream.write(json.dumps(dict(zip(COLUMNS, values, strict=True))) + "\n")
    finally:
        if out_path:
            stream.close()
    if out_path:
        console.print(f"wrote {frame.height} readings to {out_path}")
