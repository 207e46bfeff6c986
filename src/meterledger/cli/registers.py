"""``meterledger registers``: import register reads from a CSV file, list the stored ones.

A register read is a cumulative register's value (e.g. the 1.8.0 import register in kWh) at
an instant. VEE uses them for the sum check (the intervals between two reads against the
register's advance) and for estimation scaled to the register delta. The DLMS collector
stores one at every captured interval end (source ``dlms``, see ``cli/collect.py``); a file
import records ``file:<name>``.

An import is all or nothing: every row is checked first, and one bad row (or one read the
store holds with another value) writes nothing. A read already stored with the same value
is a duplicate and has no effect; an import that adds nothing writes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

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
from meterledger.core.errors import ConflictError, InputError, NotFoundError
from meterledger.core.obis import ObisCode
from meterledger.core.time import epoch_of, iso_utc, parse_instant
from meterledger.core.units import BaseUnit, Unit, milli_from_text, text_from_milli
from meterledger.ingest import audit
from meterledger.store import Store
from meterledger.store.anomaly_sql import AnomalyReads
from meterledger.store.records import ChannelRecord, RegisterRead

__all__ = [
    "AUDIT_KIND",
    "COLUMNS",
    "DISPLAY_UNIT",
    "ImportResult",
    "StoredCheck",
    "against_store",
    "app",
    "import_registers",
    "stored_reads",
]

app = typer.Typer(help="Register reads (cumulative values) for VEE.", no_args_is_help=True)

COLUMNS = ("meter_id", "channel", "read_at", "value", "unit")
AUDIT_KIND = "registers.imported"
#: how stored register values are shown: energy in kWh, reactive energy in kvarh, volume m³
DISPLAY_UNIT = {BaseUnit.WH: Unit.KWH, BaseUnit.VARH: Unit.KVARH, BaseUnit.LITRE: Unit.CUBIC_METRE}
_SHOWN_ERRORS = 50
_UNITS = ", ".join(u.value for u in Unit)


@dataclass(frozen=True, slots=True)
class StoredCheck:
    """Register reads split against the store and against each other: ``fresh`` to store,
    ``duplicates`` (held with the same value), ``conflicts`` (a read and the value held)."""

    fresh: tuple[RegisterRead, ...]
    duplicates: int
    conflicts: tuple[tuple[RegisterRead, int], ...]


def against_store(store: Store, reads: Sequence[RegisterRead]) -> StoredCheck:
    """Split ``reads`` by what the store holds (call it inside the write transaction that
    stores them, so that no other writer comes between). The first of two reads with the
    same ``(channel_id, read_at)`` counts; a later one is a duplicate or a conflict."""
    if not reads:
        return StoredCheck((), 0, ())
    channels = sorted({r.channel_id for r in reads})
    times = [r.read_at for r in reads]
    held = store.register_reads(channels, min(times), max(times))
    known: dict[tuple[int, int], int] = dict(
        zip(
            zip(held.channel_id.tolist(), held.read_at.tolist(), strict=True),
            held.value.tolist(),
            strict=True,
        )
    )
    fresh: list[RegisterRead] = []
    conflicts: list[tuple[RegisterRead, int]] = []
    duplicates = 0
    for read in reads:
        key = (read.channel_id, read.read_at)
        value = known.get(key)
        if value is None:
            known[key] = read.value
            fresh.append(read)
        elif value == read.value:
            duplicates += 1
        else:
            conflicts.append((read, value))
    return StoredCheck(tuple(fresh), duplicates, tuple(conflicts))


@dataclass(frozen=True, slots=True)
class ImportResult:
    rows: int
    new: int
    duplicates: int
    audit_seq: int | None  # the import's entry on the audit chain (None: nothing new)

    def as_dict(self) -> dict[str, int]:
        return {"rows": self.rows, "new": self.new, "duplicates": self.duplicates}


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    read: RegisterRead
    channel: ChannelRecord
    unit: Unit


def _header(fields: list[str]) -> dict[str, int]:
    names = [f.strip() for f in fields]
    if sorted(names) != sorted(COLUMNS):
        raise InputError(
            f"the header must name the columns {','.join(COLUMNS)} (in any order), "
            f"got {','.join(names)}"
        )
    return {name: names.index(name) for name in COLUMNS}


def _parse_row(
    fields: dict[str, str],
    meters: set[str],
    channels: dict[tuple[str, str], ChannelRecord],
    now: int,
    source: str,
) -> tuple[RegisterRead, ChannelRecord, Unit] | list[str]:
    """The read of one row, or what is wrong with it (every problem found)."""
    problems: list[str] = []
    meter_id, channel = fields["meter_id"], None
    if meter_id not in meters:
        problems.append(f"unknown meter {meter_id!r}")
    try:
        obis = str(ObisCode.parse(fields["channel"]))
    except InputError as exc:
        problems.append(f"channel {fields['channel']!r}: {exc}")
    else:
        channel = channels.get((meter_id, obis))
        if channel is None and meter_id in meters:
            problems.append(f"meter {meter_id} has no channel {obis}")
    read_at: int | None = None
    try:
        read_at = epoch_of(parse_instant(fields["read_at"]))
    except InputError as exc:
        problems.append(f"read_at: {exc}")
    else:
        if read_at > now:
            problems.append(f"read_at {fields['read_at']} is in the future")
    unit: Unit | None = None
    try:
        unit = Unit(fields["unit"])
    except ValueError:
        problems.append(f"unknown unit {fields['unit']!r} (one of {_UNITS})")
    if unit is not None and channel is not None and unit.base.value != channel.base_unit:
        problems.append(
            f"unit {unit} is not a unit of {channel.base_unit}, which channel "
            f"{channel.obis} measures"
        )
    value: int | None = None
    if unit is not None:
        try:
            value = milli_from_text(fields["value"], unit)
        except InputError as exc:
            problems.append(f"value: {exc}")
    if value is not None and value < 0 and channel is not None and not channel.allows_negative:
        problems.append(f"value {fields['value']}: a register of {channel.obis} is not negative")
    if problems or channel is None or read_at is None or value is None or unit is None:
        return problems
    return RegisterRead(channel.channel_id, read_at, value, source), channel, unit


def _rows(data: bytes, store: Store, now: int, source: str) -> tuple[list[_Row], list[str]]:
    """Every row of the file checked: the good ones and one message per bad line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {exc}") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next((r for r in reader if any(f.strip() for f in r)), None)
    if header is None:
        raise InputError(f"no header: the first line names the columns {','.join(COLUMNS)}")
    where = _header(header)
    meters = {m.meter_id for m in store.list_meters()}
    channels = {(c.meter_id, c.obis): c for c in store.list_channels()}
    good: list[_Row] = []
    errors: list[str] = []
    first: dict[tuple[int, int], _Row] = {}
    for fields in reader:
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(COLUMNS):
            errors.append(f"line {line}: expected {len(COLUMNS)} fields, got {len(fields)}")
            continue
        named = {name: fields[i].strip() for name, i in where.items()}
        parsed = _parse_row(named, meters, channels, now, source)
        if isinstance(parsed, list):
            errors.append(f"line {line}: " + "; ".join(parsed))
            continue
        row = _Row(line, *parsed)
        held = first.setdefault((row.read.channel_id, row.read.read_at), row)
        if held.read.value != row.read.value:
            errors.append(
                f"line {line}: {named['meter_id']} {row.channel.obis} at {named['read_at']} "
                f"has another value on line {held.line} "
                f"({_shown(held.read.value, held.unit)} against "
                f"{_shown(row.read.value, row.unit)})"
            )
            continue
        good.append(row)
    return good, errors


def _shown(milli: int, unit: Unit) -> str:
    return f"{text_from_milli(milli, unit)} {unit}"


def _conflict_message(conflicts: Sequence[tuple[_Row, int]], name: str) -> str:
    lines = [
        f"line {row.line}: {row.channel.meter_id} {row.channel.obis} at "
        f"{iso_utc(row.read.read_at)} is stored as {_shown(held, row.unit)}; the file says "
        f"{_shown(row.read.value, row.unit)}"
        for row, held in conflicts[:_SHOWN_ERRORS]
    ]
    more = len(conflicts) - len(lines)
    return (
        f"{name}: {len(conflicts)} register read(s) differ from the stored ones (a stored "
        "read is never replaced); nothing was imported:\n  "
        + "\n  ".join(lines + ([f"... and {more} more"] if more > 0 else []))
    )


def import_registers(store: Store, path: Path, now: datetime | None = None) -> ImportResult:
    """Import the register reads of the CSV file ``path`` (header ``meter_id, channel,
    read_at, value, unit``): all of them in one write transaction with their audit entry,
    or none (InputError listing the bad lines; ConflictError for reads stored with another
    value). ``now`` bounds ``read_at`` (default: the wall clock)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    source = f"file:{path.name}"
    limit = epoch_of((now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0))
    rows, errors = _rows(data, store, limit, source)
    if errors:
        shown = errors[:_SHOWN_ERRORS]
        more = len(errors) - len(shown)
        raise InputError(
            f"{path.name}: {len(errors)} bad row(s), nothing was imported:\n  "
            + "\n  ".join(shown + ([f"... and {more} more"] if more > 0 else []))
        )
    by_key = {(r.read.channel_id, r.read.read_at): r for r in rows}
    with store.write() as tx:
        checked = against_store(store, [r.read for r in rows])
        if checked.conflicts:
            raise ConflictError(
                _conflict_message(
                    [(by_key[(c.channel_id, c.read_at)], held) for c, held in checked.conflicts],
                    path.name,
                )
            )
        new = tx.add_register_reads(checked.fresh) if checked.fresh else 0
        seq = None
        if new:
            times = [r.read_at for r in checked.fresh]
            entry = audit.append(
                tx,
                AUDIT_KIND,
                source,
                {
                    "file": path.name,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "rows": len(rows),
                    "new": new,
                    "duplicates": len(rows) - new,
                    "channels": len({r.channel_id for r in checked.fresh}),
                    "first_read_at": iso_utc(min(times)),
                    "last_read_at": iso_utc(max(times)),
                },
            )
            seq = entry.seq
    return ImportResult(len(rows), new, len(rows) - new, seq)


def stored_reads(
    store: Store, channel_ids: Sequence[int], start: int, end: int
) -> list[tuple[int, int, int, str]]:
    """``(channel_id, read_at, value, source)`` of these channels with ``start <= read_at
    <= end``, by channel and time. ``Store.register_reads`` gives no source: until the
    store has a record read, this asks the backend's VEE SQL directly."""
    if not channel_ids:
        return []
    if not isinstance(store, AnomalyReads):
        raise TypeError(f"{type(store).__name__} has no SQL to read register sources")
    ids = sorted({int(c) for c in channel_ids})
    marks = ", ".join("?" for _ in ids)
    rows = store._billing_rows(
        "SELECT channel_id, read_at, value, source FROM register_reads"
        f" WHERE channel_id IN ({marks}) AND read_at >= ? AND read_at <= ?"
        " ORDER BY channel_id, read_at",
        [*ids, int(start), int(end)],
    )
    return [(int(c), int(t), int(v), str(s)) for c, t, v, s in rows]


FileArgument = Annotated[Path, typer.Argument(help="CSV: meter_id,channel,read_at,value,unit.")]


@app.command("import")
@handle_errors
def import_command(file: FileArgument, db: DbOption = None, json_out: JsonOption = False) -> None:
    """Import register reads from a CSV file: all rows or none (exit 2 naming the bad lines,
    or a read stored with another value)."""
    result = import_registers(open_db(db), file)
    if json_out:
        emit_json(result.as_dict())
    elif result.new:
        out.print(
            f"imported {result.new} register read(s) from {file.name}"
            + (f" ({result.duplicates} already stored)" if result.duplicates else "")
            + f", audit entry #{result.audit_seq}"
        )
    else:
        out.print(f"nothing new in {file.name}: all {result.rows} read(s) already stored")


@app.command("list")
@handle_errors
def list_command(
    meter: Annotated[str, typer.Option("--meter", help="Meter id.")],
    channel: Annotated[
        str | None, typer.Option("--channel", help="Only this channel (dotted OBIS).")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="ISO-8601: reads at or after this.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="ISO-8601: reads at or before this.")
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """List a meter's stored register reads (energy in kWh), by channel and time."""
    lo = epoch_of(parse_instant(start)) if start else -(2**62)
    hi = epoch_of(parse_instant(end)) if end else 2**62
    if hi < lo:
        raise InputError("--to must not be before --from")
    store = open_db(db)
    if store.get_meter(meter) is None:
        raise NotFoundError(f"no meter {meter}")
    channels = {c.channel_id: c for c in store.list_channels() if c.meter_id == meter}
    if channel is not None:
        obis = str(ObisCode.parse(channel))
        channels = {i: c for i, c in channels.items() if c.obis == obis}
        if not channels:
            raise NotFoundError(f"meter {meter} has no channel {obis}")
    reads = stored_reads(store, list(channels), lo, hi)
    reads.sort(key=lambda r: (channels[r[0]].obis, r[1]))
    listing: list[dict[str, Any]] = []
    for channel_id, read_at, value, source in reads:
        record = channels[channel_id]
        unit = DISPLAY_UNIT[BaseUnit(record.base_unit)]
        listing.append(
            {
                "meter_id": meter,
                "channel": record.obis,
                "read_at": iso_utc(read_at),
                "value": text_from_milli(value, unit),
                "unit": unit.value,
                "source": source,
            }
        )
    if json_out:
        emit_json(listing)
        return
    table = Table("channel", "read_at", "value", "unit", "source")
    for item in listing:
        table.add_row(item["channel"], item["read_at"], item["value"], item["unit"], item["source"])
    out.print(table)
    console.print(f"{len(listing)} register read(s) of {meter}")
