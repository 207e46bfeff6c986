"""``meterledger zcl``: decode a ZCL frame of the Metering cluster, or encode one from JSON.

``zcl decode HEX --json`` prints one JSON object (a contract, see docs/zigbee.md): the
header (``frame_control``, ``manufacturer_code``, ``sequence_number``, ``command_id``), the
``command`` name and the command's fields named as in the standard, in snake_case. ``zcl
encode`` reads that same object (stdin or ``--json-file``) and prints the frame's hex, so
decode then encode gives back the same octets. Bad input exits 2.
"""

from __future__ import annotations

import enum
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from meterledger.cli.common import JsonOption, emit_json, handle_errors, out
from meterledger.codec.zigbee import (
    METERING_CLUSTER,
    ZIGBEE_EPOCH,
    AttributeRecord,
    DataType,
    DefaultResponse,
    Direction,
    FrameType,
    GetProfile,
    GetProfileResponse,
    IntervalChannel,
    MeteringAttribute,
    ProfileIntervalPeriod,
    ProfileStatus,
    ReadAttributes,
    ReadAttributesResponse,
    ReportAttributes,
    ZclCommand,
    ZclFrame,
    ZclHeader,
    ZclStatus,
    decode_frame,
    encode_frame,
    from_utc_time,
    to_utc_time,
)
from meterledger.core.errors import InputError

__all__ = ["app", "decode", "encode", "frame_from_json", "frame_to_json"]

app = typer.Typer(
    help="Decode or encode one ZCL frame of the Zigbee Smart Energy Metering cluster (0x0702).",
    no_args_is_help=True,
)

E = TypeVar("E", bound=enum.IntEnum)
_UTC_TIME_INVALID = 0xFFFFFFFF


class DirectionChoice(enum.StrEnum):
    auto = "auto"
    client = "client"
    server = "server"


# ---------------------------------------------------------------- frame -> JSON


def _coded(enum_type: type[enum.IntEnum], code: int) -> dict[str, Any]:
    """``{"code": 5, "name": "no_intervals_available_for_the_requested_time"}``."""
    try:
        name: str | None = enum_type(code).name.lower()
    except ValueError:
        name = None
    return {"code": int(code), "name": name}


def _iso(utc_time: int) -> str | None:
    if utc_time == _UTC_TIME_INVALID:
        return None
    return datetime.fromtimestamp(from_utc_time(utc_time), UTC).isoformat().replace("+00:00", "Z")


def _record_json(record: AttributeRecord, *, with_status: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "attribute_id": record.attribute_id,
        "attribute_name": _coded(MeteringAttribute, record.attribute_id)["name"],
    }
    if with_status:
        body["status"] = _coded(ZclStatus, record.status)
    if record.data_type is not None:
        body["data_type"] = record.data_type.name.lower()
        body["value"] = record.value
    return body


def _command_json(command: ZclCommand) -> dict[str, Any]:
    if isinstance(command, GetProfile):
        return {
            "interval_channel": command.interval_channel,
            "interval_channel_name": _coded(IntervalChannel, command.interval_channel)["name"],
            "end_time": command.end_time,
            "end_time_utc": None if command.end_time == 0 else _iso(command.end_time),
            "number_of_periods": command.number_of_periods,
        }
    if isinstance(command, GetProfileResponse):
        return {
            "end_time": command.end_time,
            "end_time_utc": _iso(command.end_time),
            "status": _coded(ProfileStatus, command.status),
            "profile_interval_period": int(command.profile_interval_period),
            "profile_interval_seconds": command.profile_interval_period.seconds,
            "number_of_periods_delivered": command.number_of_periods_delivered,
            "intervals": list(command.intervals),
        }
    if isinstance(command, ReadAttributes):
        return {"attribute_ids": list(command.attribute_ids)}
    if isinstance(command, ReadAttributesResponse):
        return {"records": [_record_json(r, with_status=True) for r in command.records]}
    if isinstance(command, ReportAttributes):
        return {"records": [_record_json(r, with_status=False) for r in command.records]}
    return {
        "command_identifier": command.command_id,
        "status_code": _coded(ZclStatus, command.status),
    }


def frame_to_json(frame: ZclFrame) -> dict[str, Any]:
    """The JSON object ``zcl decode --json`` prints for ``frame``."""
    header = frame.header
    return {
        "command": type(frame.command).NAME,
        "frame_control": {
            "frame_type": header.frame_type.name.lower(),
            "manufacturer_specific": header.manufacturer_specific,
            "direction": header.direction.name.lower(),
            "disable_default_response": header.disable_default_response,
        },
        "manufacturer_code": header.manufacturer_code,
        "sequence_number": header.sequence_number,
        "command_id": header.command_id,
        **_command_json(frame.command),
    }


# ---------------------------------------------------------------- JSON -> frame

_KINDS: dict[str, type[ZclCommand]] = {
    k.NAME: k
    for k in (
        GetProfile,
        GetProfileResponse,
        ReadAttributes,
        ReadAttributesResponse,
        ReportAttributes,
        DefaultResponse,
    )
}
_DEFAULT_DIRECTION = {
    "read_attributes": Direction.CLIENT_TO_SERVER,
    "read_attributes_response": Direction.SERVER_TO_CLIENT,
    "report_attributes": Direction.SERVER_TO_CLIENT,
    "default_response": Direction.SERVER_TO_CLIENT,
}


def _need(body: dict[str, Any], key: str) -> Any:
    if key not in body:
        raise InputError(f"missing field {key!r}")
    return body[key]


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{field} must be an integer, not {json.dumps(value)}")
    return value


def _enum(enum_type: type[E], value: Any, field: str) -> E:
    """An enum from its code, its name (any case), or ``{"code": ...}``."""
    if isinstance(value, dict):
        value = value.get("code", value.get("name"))
    try:
        if isinstance(value, str):
            return enum_type[value.upper()]
        return enum_type(_int(value, field))
    except (KeyError, ValueError):
        raise InputError(f"{field}: {json.dumps(value)} is not a {enum_type.__name__}") from None


def _status(value: Any, field: str) -> int:
    """A ZCL status: a known name or any octet (newer revisions add codes)."""
    if isinstance(value, dict):
        value = value.get("code", value.get("name"))
    if isinstance(value, str):
        return _enum(ZclStatus, value, field)
    return _int(value, field)


def _end_time(body: dict[str, Any], *, zero_is_now: bool) -> int:
    text = body.get("end_time_utc")
    from_text: int | None = None
    if text is not None:
        if not isinstance(text, str):
            raise InputError("end_time_utc must be an ISO-8601 string")
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"end_time_utc {text!r} is not ISO-8601") from None
        if moment.tzinfo is None:
            raise InputError("end_time_utc needs a zone (Z or +00:00)")
        from_text = to_utc_time(int(moment.timestamp()))
    if "end_time" in body:
        end_time = _int(body["end_time"], "end_time")
        if from_text is not None and from_text != end_time:
            raise InputError(f"end_time {end_time} and end_time_utc {text} disagree")
        return end_time
    if from_text is None:
        if zero_is_now and "end_time_utc" in body:
            return 0  # null end_time_utc: GetProfile's "the most recent intervals"
        raise InputError("give end_time (ZCL UTCTime) or end_time_utc (ISO-8601)")
    return from_text


def _records(body: dict[str, Any], *, with_status: bool) -> tuple[AttributeRecord, ...]:
    items = _need(body, "records")
    if not isinstance(items, list):
        raise InputError("records must be a list")
    records: list[AttributeRecord] = []
    for item in items:
        if not isinstance(item, dict):
            raise InputError("each record must be an object")
        attribute_id = _int(_need(item, "attribute_id"), "attribute_id")
        status = _status(item.get("status", 0), "status") if with_status else 0
        if status != ZclStatus.SUCCESS:
            records.append(AttributeRecord(attribute_id, status=status))
            continue
        data_type = _enum(DataType, _need(item, "data_type"), "data_type")
        value = _int(_need(item, "value"), "value")
        records.append(AttributeRecord(attribute_id, data_type, value))
    return tuple(records)


def _command(name: str, body: dict[str, Any]) -> ZclCommand:
    if name == "get_profile":
        return GetProfile(
            _int(_need(body, "interval_channel"), "interval_channel"),
            _end_time(body, zero_is_now=True),
            _int(_need(body, "number_of_periods"), "number_of_periods"),
        )
    if name == "get_profile_response":
        raw = _need(body, "intervals")
        if not isinstance(raw, list):
            raise InputError("intervals must be a list of integers and nulls")
        intervals = tuple(None if v is None else _int(v, "interval") for v in raw)
        delivered = body.get("number_of_periods_delivered", len(intervals))
        if delivered != len(intervals):
            raise InputError(f"number_of_periods_delivered {delivered} but {len(intervals)} given")
        return GetProfileResponse(
            _end_time(body, zero_is_now=False),
            _enum(ProfileStatus, _need(body, "status"), "status"),
            _enum(ProfileIntervalPeriod, _need(body, "profile_interval_period"), "period"),
            intervals,
        )
    if name == "read_attributes":
        ids = _need(body, "attribute_ids")
        if not isinstance(ids, list):
            raise InputError("attribute_ids must be a list")
        return ReadAttributes(tuple(_int(i, "attribute_id") for i in ids))
    if name == "read_attributes_response":
        return ReadAttributesResponse(_records(body, with_status=True))
    if name == "report_attributes":
        return ReportAttributes(_records(body, with_status=False))
    return DefaultResponse(
        _int(_need(body, "command_identifier"), "command_identifier"),
        _status(_need(body, "status_code"), "status_code"),
    )


def frame_from_json(body: Any) -> ZclFrame:
    """The frame described by ``body`` (the shape :func:`frame_to_json` makes)."""
    if not isinstance(body, dict):
        raise InputError("the frame must be a JSON object")
    name = _need(body, "command")
    if name not in _KINDS:
        raise InputError(f"command must be one of {', '.join(sorted(_KINDS))}, not {name!r}")
    kind = _KINDS[name]
    control = body.get("frame_control", {})
    if not isinstance(control, dict):
        raise InputError("frame_control must be an object")
    direction = kind.DIRECTION if kind.DIRECTION is not None else _DEFAULT_DIRECTION[name]
    if "direction" in control:
        direction = _enum(Direction, control["direction"], "direction")
    if "frame_type" in control and _enum(FrameType, control["frame_type"], "frame_type") is not (
        kind.FRAME_TYPE
    ):
        raise InputError(f"{name} is a {kind.FRAME_TYPE.name.lower()} command")
    manufacturer = body.get("manufacturer_code")
    if control.get("manufacturer_specific", manufacturer is not None) != (manufacturer is not None):
        raise InputError("manufacturer_specific needs a manufacturer_code, and only then")
    if "command_id" in body and body["command_id"] != kind.COMMAND_ID:
        raise InputError(f"{name} has command_id {kind.COMMAND_ID}, not {body['command_id']}")
    disable = control.get("disable_default_response", False)
    if not isinstance(disable, bool):
        raise InputError("disable_default_response must be true or false")
    header = ZclHeader(
        frame_type=kind.FRAME_TYPE,
        direction=direction,
        sequence_number=_int(_need(body, "sequence_number"), "sequence_number"),
        command_id=kind.COMMAND_ID,
        manufacturer_code=None if manufacturer is None else _int(manufacturer, "manufacturer_code"),
        disable_default_response=disable,
    )
    return ZclFrame(header, _command(name, body))


# ---------------------------------------------------------------- commands


def _octets(text: str) -> bytes:
    cleaned = "".join(text.split()).replace(":", "")
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    try:
        data = bytes.fromhex(cleaned)
    except ValueError:
        raise InputError(f"not hex: {text!r}") from None
    if not data:
        raise InputError("no octets given")
    return data


def _cluster(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise InputError(f"--cluster {text!r} is not a number (0x0702 or 1794)") from None
    if not 0 <= value <= 0xFFFF:
        raise InputError(f"--cluster {text} is not a 16-bit cluster id")
    return value


def _table(payload: dict[str, Any]) -> Table:
    table = Table("field", "value", title=f"ZCL {payload['command']}")
    for key, value in payload.items():
        if key == "intervals":
            continue
        if isinstance(value, dict):
            shown = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            shown = "\n".join(json.dumps(v) for v in value)
        else:
            shown = "-" if value is None else str(value)
        table.add_row(key, shown)
    for index, value in enumerate(payload.get("intervals", [])):
        ends = payload["end_time"] - index * payload["profile_interval_seconds"]
        when = datetime.fromtimestamp(ends + ZIGBEE_EPOCH, UTC).isoformat().replace("+00:00", "Z")
        table.add_row(f"interval ending {when}", "invalid (gap)" if value is None else str(value))
    return table


@app.command("decode")
@handle_errors
def decode(
    frame_hex: Annotated[str, typer.Argument(metavar="HEX", help="The ZCL frame, in hex.")],
    direction: Annotated[
        DirectionChoice,
        typer.Option(
            "--direction",
            help="Who sent it: client, server, or auto (trust the frame's direction bit); "
            "a frame sent the other way exits 2.",
        ),
    ] = DirectionChoice.auto,
    cluster: Annotated[
        str, typer.Option("--cluster", help="The cluster the frame arrived on.")
    ] = f"0x{METERING_CLUSTER:04X}",
    json_out: JsonOption = False,
) -> None:
    """Decode one ZCL frame (header and command) of the Metering cluster."""
    frame = decode_frame(_octets(frame_hex), cluster=_cluster(cluster))
    expected = {
        DirectionChoice.client: Direction.CLIENT_TO_SERVER,
        DirectionChoice.server: Direction.SERVER_TO_CLIENT,
    }.get(direction)
    if expected is not None and frame.header.direction is not expected:
        raise InputError(
            f"the frame is sent {frame.header.direction.name.lower()}, not by the {direction}"
        )
    payload = frame_to_json(frame)
    if json_out:
        emit_json(payload)
    else:
        out.print(_table(payload))


@app.command("encode")
@handle_errors
def encode(
    json_file: Annotated[
        Path | None,
        typer.Option("--json-file", help="Read the frame from this file (default: stdin)."),
    ] = None,
) -> None:
    """Encode one ZCL frame from JSON (the shape ``zcl decode --json`` prints) and print hex."""
    try:
        text = json_file.read_text(encoding="utf-8") if json_file else sys.stdin.read()
    except OSError as exc:
        raise InputError(f"cannot read {json_file}: {exc.strerror}") from exc
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc.msg} at line {exc.lineno}") from exc
    out.print(encode_frame(frame_from_json(body)).hex())
