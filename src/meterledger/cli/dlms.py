"""``meterledger dlms``: talk to one DLMS/COSEM meter: ``read`` one object, list ``objects``.

``dlms read --json`` prints exactly one JSON object, shaped by the class of the object read
(a stable contract, see docs/collect.md): Register/Extended Register ``{obis, class_id,
value, scaler, unit}``, Clock ``{obis, class_id, time, deviation, status}``, Profile Generic
``{obis, class_id, capture_period, capture_objects, rows}``, Data and any other class
``{obis, class_id, value}``. Errors exit 2 with the code (E04, E09, ...) in the message.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from meterledger.cli.common import (
    DbOption,
    JsonOption,
    emit_json,
    fail,
    handle_errors,
    open_db,
    out,
    settings,
)
from meterledger.codec.dlms.cosem import AccessRight, CaptureObject, ObjectListEntry
from meterledger.codec.dlms.data import BitString, CompactArray, CosemDate, CosemTime, Data
from meterledger.codec.dlms.data import CosemDateTime as _CosemDateTime
from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError
from meterledger.collect.config import MeterEndpoint
from meterledger.collect.counters import reserve_local_counters
from meterledger.collect.errors import MeterDataAccessError
from meterledger.collect.session import DlmsSession, open_session
from meterledger.core.errors import ConfigError, InputError
from meterledger.core.ids import is_valid_meter_id
from meterledger.core.obis import ObisCode
from meterledger.core.time import parse_instant, parse_zone

__all__ = ["app", "objects", "read", "render_value"]

app = typer.Typer(
    help="Talk to one DLMS/COSEM meter over TCP (wrapper or HDLC): read an object, list "
    "the object list.",
    no_args_is_help=True,
)

T = TypeVar("T")
DEFAULT_SYSTEM_TITLE = "4D4C430000000001"  # "MLC" + 5 octets: our client's system title
KNOWN_CLASSES = (3, 4, 8, 7, 1)  # tried in this order when the object list does not tell


class Auth(enum.StrEnum):
    none = "none"
    low = "low"
    hls_gmac = "hls-gmac"


class Security(enum.StrEnum):
    none = "none"
    auth_enc = "auth-enc"


class Ciphering(enum.StrEnum):
    glo = "glo"
    general_glo = "general-glo"


HostOption = Annotated[str, typer.Option("--host", help="Meter or gateway address.")]
PortOption = Annotated[int, typer.Option("--port", help="TCP port (DLMS: 4059).")]
HdlcOption = Annotated[
    bool, typer.Option("--hdlc", help="HDLC over TCP instead of the IEC 62056-47 wrapper.")
]
ClientSapOption = Annotated[
    int, typer.Option("--client-sap", help="Client address (16 public, 1 management).")
]
ServerSapOption = Annotated[
    int, typer.Option("--server-sap", help="Logical device (wrapper wPort, HDLC upper address).")
]
PhysicalOption = Annotated[int, typer.Option("--physical", help="HDLC physical (lower) address.")]
AddressSizeOption = Annotated[
    int, typer.Option("--address-size", help="HDLC server address octets: 1, 2 or 4.")
]
AuthOption = Annotated[Auth, typer.Option("--auth", help="Authentication: none, low, hls-gmac.")]
PasswordOption = Annotated[
    str | None, typer.Option("--password", help="LLS password (--auth low).")
]
SecurityOption = Annotated[
    Security, typer.Option("--security", help="Security suite 0 protection: none or auth-enc.")
]
CipheringOption = Annotated[
    Ciphering, typer.Option("--ciphering", help="Ciphered APDUs: glo or general-glo.")
]
EkOption = Annotated[str | None, typer.Option("--ek", help="Encryption key, 32 hex digits.")]
AkOption = Annotated[str | None, typer.Option("--ak", help="Authentication key, 32 hex digits.")]
TitleOption = Annotated[
    str, typer.Option("--system-title", help="Our system title, 16 hex digits.")
]
CounterOption = Annotated[
    int | None,
    typer.Option(
        "--counter",
        help="First invocation counter to use (default: a block above the last one handed out "
        "from this machine, kept in $METERLEDGER_STATE_DIR; with --meter-id, "
        "a block reserved in the store).",
    ),
]
MeterOption = Annotated[
    str | None,
    typer.Option(
        "--meter-id",
        help="Registered meter: reserve invocation counters in the store (--db) and record "
        "the meter's last counter there.",
    ),
]
TimeoutOption = Annotated[float, typer.Option("--timeout", help="Seconds per request.")]
ZoneOption = Annotated[
    str, typer.Option("--tz", help="Zone for meter times that carry no deviation.")
]


def _hex(value: str | None, name: str, length: int) -> bytes:
    if value is None:
        return b""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise InputError(f"{name} is not hex") from None
    if len(raw) != length:
        raise InputError(f"{name} must be {length} octets ({2 * length} hex digits)")
    return raw


def _endpoint(
    *,
    host: str,
    port: int,
    hdlc: bool,
    client_sap: int,
    server_sap: int,
    physical: int,
    address_size: int,
    auth: Auth,
    password: str | None,
    security: Security,
    ciphering: Ciphering,
    ek: str | None,
    ak: str | None,
    timeout: float,
    tz: str,
    meter_id: str | None,
) -> MeterEndpoint:
    label = f"{host}:{port}/{server_sap}"  # how errors name an unregistered meter
    try:
        return MeterEndpoint(
            meter_id=meter_id or (label if is_valid_meter_id(label) else "cli"),
            host=host,
            port=port,
            framing="hdlc" if hdlc else "wrapper",
            client_sap=client_sap,
            server_sap=server_sap,
            physical=physical,
            address_size=address_size,
            auth=auth.value,
            password=(password or "").encode("utf-8"),
            security=security.value,
            ciphering=ciphering.value,
            ek=_hex(ek, "--ek", 16),
            ak=_hex(ak, "--ak", 16),
            timeout=timeout,
            timezone=tz,
        )
    except ConfigError as exc:
        raise InputError(str(exc).split(": ", 1)[-1]) from exc


def _session_run(
    meter: MeterEndpoint,
    system_title: str,
    counter: int | None,
    meter_id: str | None,
    db: str | None,
    body: Callable[[DlmsSession], Awaitable[T]],
) -> T:
    """Associate, run ``body``, release. Counters: --counter, the store, or a local block
    (:func:`reserve_local_counters`)."""
    title = _hex(system_title, "--system-title", 8)
    secured = meter.security != "none" or meter.auth == "hls-gmac"
    store = open_db(db) if meter_id is not None else None
    counters: range | None = None
    floor: int | None = None
    if secured:
        if store is not None and counter is None:
            assert meter_id is not None
            floor = store.counters(meter_id).server_last
            with store.write() as tx:
                counters = tx.reserve_counters(meter_id, 256)
        elif counter is not None:
            counters = range(counter, min(counter + 256, 2**32))
        else:
            counters = reserve_local_counters(f"{meter.host}:{meter.port}/{meter.server_sap}")
    seen: list[int | None] = [None]

    async def run() -> T:
        async with open_session(
            meter,
            system_title=title,
            counters=counters,
            server_counter_floor=floor,
            zone=parse_zone(meter.timezone),
        ) as session:
            try:
                return await body(session)
            finally:
                seen[0] = session.server_counter

    try:
        return asyncio.run(run())
    finally:
        last = seen[0]
        known = store.counters(meter_id).server_last if store and meter_id else None
        if store is not None and meter_id and known is not None and last and last > known:
            with store.write() as tx:
                tx.accept_server_counter(meter_id, last)


# -- rendering ------------------------------------------------------------------------


def _iso(value: _CosemDateTime, zone: tzinfo | None) -> str:
    return value.to_datetime(zone).isoformat()


def render_value(d: Data, zone: tzinfo | None = None) -> Any:
    """A Data value as JSON: numbers and text as they are, octet-strings as hex (a 12-octet
    date-time given by the caller's column is rendered by :func:`_cell`), date-times ISO."""
    v = d.value
    if isinstance(v, _CosemDateTime):
        try:
            return _iso(v, zone)
        except Exception:
            return v.to_octets().hex()
    if isinstance(v, CosemDate | CosemTime):
        return v.to_octets().hex()
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, BitString):
        return "".join("1" if bit else "0" for bit in v.bits)
    if isinstance(v, CompactArray):
        return [render_value(item, zone) for item in v.contents]
    if isinstance(v, tuple):
        return [render_value(item, zone) for item in v]
    return v


def _cell(d: Data, column: CaptureObject | None, zone: tzinfo | None) -> Any:
    if column is not None and column.class_id == 8 and column.attribute == 2:
        try:
            return _iso(d.to_cosem_datetime(), zone)
        except (DlmsLocalError, DecodeError, ValueError):  # not one instant: show it as is
            pass
    return render_value(d, zone)


async def _class_of(session: DlmsSession, obis: str) -> int:
    """The object's class: from the object list, else the first known class the meter
    accepts for it (attribute 1, the logical name, is cheap to read)."""
    try:
        for entry in await session.read_object_list():
            if entry.obis == obis:
                return entry.class_id
    except MeterDataAccessError:
        pass
    for class_id in KNOWN_CLASSES:
        try:
            await session.get(class_id, obis, 1)
            return class_id
        except MeterDataAccessError:
            continue
    raise MeterDataAccessError(f"{obis} is not in the object list and no known class reads it")


async def read_object(
    session: DlmsSession,
    obis: str,
    class_id: int | None,
    start: datetime | None,
    end: datetime | None,
) -> dict[str, Any]:
    """The JSON contract object for ``obis`` (see the module docstring)."""
    zone = session.zone
    cls = class_id if class_id is not None else await _class_of(session, obis)
    if cls in (3, 4):
        value = await session.read_register(obis, cls)
        return {
            "obis": obis,
            "class_id": cls,
            "value": value.raw,
            "scaler": value.scaler,
            "unit": value.unit,
        }
    if cls == 8:
        clock = await session.read_clock(obis)
        return {
            "obis": obis,
            "class_id": 8,
            "time": clock.time.isoformat(),
            "deviation": clock.deviation,
            "status": clock.status,
        }
    if cls == 7:
        objects = await session.read_capture_objects(obis)
        period = await session.read_capture_period(obis)
        if start is None and end is None:
            data = await session.get(7, obis, 2)
            rows = tuple(tuple(r.items) for r in data.items)
        else:
            rows = await session.read_profile(
                obis,
                start or datetime(2000, 1, 1, tzinfo=UTC),
                end or datetime.now(UTC).replace(microsecond=0),
            )
        return {
            "obis": obis,
            "class_id": 7,
            "capture_period": period,
            "capture_objects": [
                {"class_id": o.class_id, "obis": o.obis, "attribute": o.attribute} for o in objects
            ],
            "rows": [
                [_cell(d, objects[i] if i < len(objects) else None, zone) for i, d in enumerate(r)]
                for r in rows
            ],
        }
    return {
        "obis": obis,
        "class_id": cls,
        "value": render_value(await session.get(cls, obis, 2), zone),
    }


def _print_human(result: dict[str, Any]) -> None:
    cls = result["class_id"]
    if cls == 7:
        table = Table(*(f"{o['obis']}/{o['attribute']}" for o in result["capture_objects"]))
        for row in result["rows"]:
            table.add_row(*(str(v) for v in row))
        out.print(
            f"{result['obis']} profile generic, capture period {result['capture_period']} s, "
            f"{len(result['rows'])} row(s)"
        )
        out.print(table)
        return
    for key, value in result.items():
        out.print(f"{key}: {value}")


def _obis(text: str) -> str:
    try:
        return str(ObisCode.parse(text))
    except InputError as exc:
        raise InputError(f"--obis: {exc}") from exc


@app.command("read")
@handle_errors
def read(
    host: HostOption,
    obis: Annotated[str, typer.Option("--obis", help="Logical name, e.g. 1.0.1.8.0.255.")],
    port: PortOption = 4059,
    hdlc: HdlcOption = False,
    client_sap: ClientSapOption = 16,
    server_sap: ServerSapOption = 1,
    physical: PhysicalOption = 17,
    address_size: AddressSizeOption = 4,
    auth: AuthOption = Auth.none,
    password: PasswordOption = None,
    security: SecurityOption = Security.none,
    ciphering: CipheringOption = Ciphering.glo,
    ek: EkOption = None,
    ak: AkOption = None,
    system_title: TitleOption = DEFAULT_SYSTEM_TITLE,
    class_id: Annotated[
        int | None,
        typer.Option("--class-id", help="Interface class (default: from the object list)."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="Profile rows from this ISO-8601 instant (inclusive)."),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Profile rows up to this instant (inclusive).")
    ] = None,
    counter: CounterOption = None,
    meter_id: MeterOption = None,
    timeout: TimeoutOption = 5.0,
    tz: ZoneOption = "UTC",
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Read one object and print it by its class (Register, Clock, Profile Generic, Data).

    With --json: one JSON object, a stable contract (docs/collect.md). Profile Generic rows
    are read by range with --from/--to (selective access), else the whole buffer."""
    settings(db)
    name = _obis(obis)
    frm = parse_instant(start) if start else None
    to = parse_instant(end) if end else None
    if frm is not None and to is not None and frm > to:
        raise fail("--from is after --to")
    meter = _endpoint(
        host=host,
        port=port,
        hdlc=hdlc,
        client_sap=client_sap,
        server_sap=server_sap,
        physical=physical,
        address_size=address_size,
        auth=auth,
        password=password,
        security=security,
        ciphering=ciphering,
        ek=ek,
        ak=ak,
        timeout=timeout,
        tz=tz,
        meter_id=meter_id,
    )
    result = _session_run(
        meter,
        system_title,
        counter,
        meter_id,
        db,
        lambda s: read_object(s, name, class_id, frm, to),
    )
    if json_out:
        emit_json(result)
    else:
        _print_human(result)


_ACCESS = {
    AccessRight.NO_ACCESS: "no-access",
    AccessRight.READ: "read",
    AccessRight.WRITE: "write",
    AccessRight.READ_WRITE: "read-write",
}


def _access(mode: int) -> str:
    try:
        return _ACCESS[AccessRight(mode)]
    except ValueError:
        return str(mode)  # authenticated access modes (4..7) of version 3 objects


def object_dicts(entries: tuple[ObjectListEntry, ...]) -> list[dict[str, Any]]:
    return [
        {
            "class_id": e.class_id,
            "version": e.version,
            "obis": e.obis,
            "attributes": [{"attribute": a, "access": _access(m)} for a, m in e.attribute_access],
        }
        for e in entries
    ]


@app.command("objects")
@handle_errors
def objects(
    host: HostOption,
    port: PortOption = 4059,
    hdlc: HdlcOption = False,
    client_sap: ClientSapOption = 16,
    server_sap: ServerSapOption = 1,
    physical: PhysicalOption = 17,
    address_size: AddressSizeOption = 4,
    auth: AuthOption = Auth.none,
    password: PasswordOption = None,
    security: SecurityOption = Security.none,
    ciphering: CipheringOption = Ciphering.glo,
    ek: EkOption = None,
    ak: AkOption = None,
    system_title: TitleOption = DEFAULT_SYSTEM_TITLE,
    counter: CounterOption = None,
    meter_id: MeterOption = None,
    timeout: TimeoutOption = 5.0,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """List the meter's object list (Association LN 0.0.40.0.0.255, attribute 2).

    With --json: a list of {class_id, version, obis, attributes: [{attribute, access}]}."""
    settings(db)
    meter = _endpoint(
        host=host,
        port=port,
        hdlc=hdlc,
        client_sap=client_sap,
        server_sap=server_sap,
        physical=physical,
        address_size=address_size,
        auth=auth,
        password=password,
        security=security,
        ciphering=ciphering,
        ek=ek,
        ak=ak,
        timeout=timeout,
        tz="UTC",
        meter_id=meter_id,
    )
    entries = _session_run(
        meter, system_title, counter, meter_id, db, lambda s: s.read_object_list()
    )
    listed = object_dicts(entries)
    if json_out:
        emit_json(listed)
        return
    table = Table("class", "version", "obis", "attributes (access)", title="object list")
    for item in listed:
        table.add_row(
            str(item["class_id"]),
            str(item["version"]),
            item["obis"],
            ", ".join(f"{a['attribute']}:{a['access']}" for a in item["attributes"]),
        )
    out.print(table)
