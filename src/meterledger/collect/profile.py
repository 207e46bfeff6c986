"""Load profiles → interval readings, by the OBIS → channel map of ``profile.yaml``.

A Profile Generic buffer row holds one value per capture object. The map names the column
with the interval end (the Clock), an optional status column, and for each channel the
capture object that feeds it and how (a channel whose capture object the meter's profile
does not hold is skipped; columns the map does not name are ignored):

* ``cumulative``: a register's running total. The interval ending at row *i* is
  ``total(i) − total(i−1)``, emitted only when the two rows are one capture period apart;
  across a gap (an outage with missing rows) nothing is emitted for the row after the gap,
  so the gap stays a gap for VEE to estimate instead of one interval holding several.
* ``interval``: the column already holds the interval's value.

Register reads. The running total of a ``cumulative`` channel at each capture time is a
register read as well: :attr:`Conversion.registers` holds one per row after ``after``
(the first row of a first read too: it opens the period), in the same milli-units as the
deltas, so the intervals between two reads sum exactly to their difference. A row whose
status marks it ``suspect`` (data or clock not valid) gives no register read: VEE takes a
register read as fact (the sum check, estimation scaled to the register delta).

Scaling. A register value is ``raw × 10^scaler`` in its unit (Blue Book unit enumeration:
30 Wh, 32 varh, 13 m³, 19 l). Each total is turned into integer milli-units of the base unit
first (``floor`` when the scaler is below −3, i.e. finer than a milli-unit), and the deltas
are taken between those integers, so the sum of the deltas is exactly the difference of the
totals and nothing is lost or invented by rounding.

Times. The clock column is a COSEM date-time; its deviation gives the offset; when the
meter leaves the deviation unspecified, the local time is read in the meter's zone.
"""

from __future__ import annotations

import enum
import functools
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from meterledger.codec.dlms.cosem import CaptureObject, ScalerUnit
from meterledger.codec.dlms.data import CosemDateTime, Data, DataType
from meterledger.codec.dlms.errors import DlmsLocalError, DlmsRemoteError
from meterledger.core.errors import ConfigError
from meterledger.core.ids import CHANNEL_CATALOG
from meterledger.core.obis import ObisCode
from meterledger.core.reading import Quality, Reading
from meterledger.core.time import epoch_of
from meterledger.core.units import BaseUnit

__all__ = [
    "DEFAULT_PROFILE_PATH",
    "DLMS_UNITS",
    "ChannelKind",
    "ChannelMap",
    "Conversion",
    "ProfileMap",
    "ProfileSpec",
    "RegisterSample",
    "load_profile_map",
    "parse_profile_map",
    "profile_readings",
    "to_milli",
]

DEFAULT_PROFILE_PATH = Path(__file__).with_name("profile.yaml")

#: Blue Book unit enumeration → (base unit, decimal exponent from the unit to the base).
DLMS_UNITS: dict[int, tuple[BaseUnit, int]] = {
    30: (BaseUnit.WH, 0),  # Wh
    32: (BaseUnit.VARH, 0),  # varh
    13: (BaseUnit.LITRE, 3),  # m³ = 10³ l
    19: (BaseUnit.LITRE, 0),  # l
}


class ChannelKind(enum.StrEnum):
    CUMULATIVE = "cumulative"
    INTERVAL = "interval"


@dataclass(frozen=True, slots=True)
class ChannelMap:
    capture: str  # OBIS of the capture object (dotted)
    channel: str  # our channel (dotted OBIS)
    kind: ChannelKind = ChannelKind.CUMULATIVE
    attribute: int = 2


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    obis: str
    name: str
    clock: str
    channels: tuple[ChannelMap, ...]
    status: str | None = None

    def present(self, capture_objects: Sequence[CaptureObject]) -> tuple[ChannelMap, ...]:
        """The channels whose capture object this meter's profile captures (a map lists
        what a profile may hold; a meter that captures only import still maps)."""
        held = {(o.obis, o.attribute) for o in capture_objects}
        return tuple(c for c in self.channels if (c.capture, c.attribute) in held)


@dataclass(frozen=True, slots=True)
class ProfileMap:
    profiles: tuple[ProfileSpec, ...]
    status_bits: tuple[tuple[int, Quality], ...] = ()

    def get(self, obis: str) -> ProfileSpec:
        for spec in self.profiles:
            if spec.obis == obis:
                return spec
        known = ", ".join(p.obis for p in self.profiles) or "none"
        raise ConfigError(f"profile {obis} is not in the profile map (known: {known})")

    def quality(self, status: int | None) -> Quality:
        flags = Quality.ACTUAL
        if status:
            for bit, flag in self.status_bits:
                if status & (1 << bit):
                    flags |= flag
        return flags


def _obis(value: object, where: str) -> str:
    try:
        return str(ObisCode.parse(str(value)))
    except Exception as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _mapping(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping")
    return {str(k): v for k, v in value.items()}


def _check_keys(item: dict[str, Any], allowed: set[str], required: set[str], where: str) -> None:
    unknown = sorted(set(item) - allowed)
    missing = sorted(required - set(item))
    if unknown or missing:
        raise ConfigError(
            f"{where}: "
            + "; ".join(
                ([f"unknown keys {unknown}"] if unknown else [])
                + ([f"missing {missing}"] if missing else [])
            )
        )


def parse_profile_map(data: object, where: str = "profile map") -> ProfileMap:
    root = _mapping(data, where)
    _check_keys(root, {"profiles", "status_bits"}, {"profiles"}, where)
    raw_profiles = root["profiles"]
    if not isinstance(raw_profiles, list) or not raw_profiles:
        raise ConfigError(f"{where}: 'profiles' is a non-empty list")
    profiles: list[ProfileSpec] = []
    for n, raw in enumerate(raw_profiles):
        at = f"{where}: profiles[{n}]"
        item = _mapping(raw, at)
        _check_keys(item, {"obis", "name", "clock", "status", "channels"}, {"obis", "channels"}, at)
        channels: list[ChannelMap] = []
        raw_channels = item["channels"]
        if not isinstance(raw_channels, list) or not raw_channels:
            raise ConfigError(f"{at}: 'channels' is a non-empty list")
        for m, raw_channel in enumerate(raw_channels):
            cat = f"{at}.channels[{m}]"
            ch = _mapping(raw_channel, cat)
            _check_keys(ch, {"capture", "channel", "kind", "attribute"}, {"capture"}, cat)
            try:
                kind = ChannelKind(str(ch.get("kind", "cumulative")))
            except ValueError:
                raise ConfigError(f"{cat}: kind is 'cumulative' or 'interval'") from None
            channel = _obis(ch.get("channel", ch["capture"]), cat)
            if channel not in CHANNEL_CATALOG:
                raise ConfigError(f"{cat}: {channel} is not a channel of the catalogue")
            channels.append(
                ChannelMap(_obis(ch["capture"], cat), channel, kind, int(ch.get("attribute", 2)))
            )
        if len({c.channel for c in channels}) != len(channels):
            raise ConfigError(f"{at}: a channel is fed by one capture object only")
        profiles.append(
            ProfileSpec(
                obis=_obis(item["obis"], at),
                name=str(item.get("name", item["obis"])),
                clock=_obis(item.get("clock", "0.0.1.0.0.255"), at),
                channels=tuple(channels),
                status=_obis(item["status"], at) if item.get("status") else None,
            )
        )
    bits: list[tuple[int, Quality]] = []
    for bit, flag in _mapping(root.get("status_bits") or {}, f"{where}: status_bits").items():
        try:
            number = int(bit)
            quality = Quality.parse(str(flag))
        except Exception as exc:
            raise ConfigError(f"{where}: status_bits {bit}: {exc}") from exc
        if not 0 <= number <= 31:
            raise ConfigError(f"{where}: status bit {bit} is not 0..31")
        bits.append((number, quality))
    return ProfileMap(tuple(profiles), tuple(sorted(bits)))


def load_profile_map(path: Path | None = None) -> ProfileMap:
    """The map in ``path`` (default: the ``profile.yaml`` shipped beside this module)."""
    path = path or DEFAULT_PROFILE_PATH
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return parse_profile_map(data, str(path))


def to_milli(raw: int, scaler_unit: ScalerUnit) -> tuple[int, BaseUnit]:
    """``raw × 10^scaler`` of the unit, in whole milli-units of its base (floored)."""
    known = DLMS_UNITS.get(scaler_unit.unit)
    if known is None:
        raise DlmsRemoteError(f"unit {scaler_unit.unit} is not an energy or volume unit")
    base, exponent = known
    shift = scaler_unit.scaler + exponent + 3
    milli = raw * 10**shift if shift >= 0 else raw // 10 ** (-shift)
    return milli, base


class RegisterSample(NamedTuple):
    """A cumulative register's value (milli-units of the channel's base unit) at a capture
    time (UTC epoch seconds). A plain tuple: a fleet read makes a million of them."""

    meter_id: str
    channel: str  # dotted OBIS
    read_at: int
    value: int


@dataclass(frozen=True, slots=True)
class Conversion:
    readings: tuple[Reading, ...]
    rows: int  # buffer rows read
    gaps: int  # rows whose predecessor was missing (no delta emitted)
    registers: tuple[RegisterSample, ...] = ()  # sorted by channel, then read_at


def _column(objects: Sequence[CaptureObject], obis: str, attribute: int, what: str) -> int:
    for index, obj in enumerate(objects):
        if obj.obis == obis and obj.attribute == attribute:
            return index
    raise DlmsRemoteError(f"the profile captures no {what} {obis} attribute {attribute}")


@functools.lru_cache(maxsize=1 << 16)
def _instant_of(value: object, zone: tzinfo | None) -> tuple[int, datetime]:
    instant = Data(DataType.OCTET_STRING, value) if isinstance(value, bytes) else None
    stamp = instant.to_cosem_datetime() if instant is not None else value
    if not isinstance(stamp, CosemDateTime):
        raise DlmsRemoteError(f"not a date-time: {value!r}")
    utc = stamp.utc(zone).replace(microsecond=0)
    return epoch_of(utc), utc


def _instant(d: Data, zone: tzinfo | None) -> tuple[int, datetime]:
    """A capture time in UTC. Cached: every meter of a fleet stamps the same grid, and
    decoding a date-time costs more than the rest of a row."""
    if d.type not in (DataType.OCTET_STRING, DataType.DATE_TIME):
        raise DlmsRemoteError(f"a capture time is a date-time, not {d.type.name}")
    return _instant_of(d.value, zone)


def _int_value(d: Data, what: str) -> int:
    if not isinstance(d.value, int) or isinstance(d.value, bool):
        raise DlmsRemoteError(f"{what}: expected an integer, got {d.type.name}")
    return d.value


def profile_readings(
    meter_id: str,
    spec: ProfileSpec,
    capture_objects: Sequence[CaptureObject],
    scalers: Mapping[str, ScalerUnit],
    rows: Sequence[Sequence[Data]],
    *,
    capture_period: int,
    status_quality: ProfileMap | None = None,
    after: Mapping[str, int | None] | None = None,
    zone: tzinfo | None = None,
    source: str = "",
) -> Conversion:
    """The readings of ``rows`` for ``spec``'s channels, ending after ``after[channel]``
    (epoch seconds; nothing at or before it is returned). ``scalers`` holds the
    scaler_unit of each captured register by OBIS. Sorted by channel, then interval end;
    the register reads of cumulative channels likewise (see the module docstring)."""
    if capture_period <= 0:
        raise DlmsRemoteError(f"capture period {capture_period} s: not an interval profile")
    after = after or {}
    clock_col = _column(capture_objects, spec.clock, 2, "clock")
    status_col = None
    if spec.status is not None:
        try:
            status_col = _column(capture_objects, spec.status, 2, "status")
        except DlmsRemoteError:
            status_col = None  # a meter without the status column: every value actual
    stamped: list[tuple[int, datetime, Quality, Sequence[Data]]] = []
    for row in rows:
        try:
            epoch, instant = _instant(row[clock_col], zone)
        except (DlmsLocalError, DlmsRemoteError, IndexError) as exc:
            raise DlmsRemoteError(f"profile row clock: {exc}") from exc
        status = _int_value(row[status_col], "status") if status_col is not None else None
        quality = status_quality.quality(status) if status_quality else Quality.ACTUAL
        stamped.append((epoch, instant, quality, row))
    stamped.sort(key=lambda item: item[0])
    gaps = sum(1 for a, b in itertools.pairwise(stamped) if b[0] - a[0] != capture_period)
    out: list[Reading] = []
    registers: list[RegisterSample] = []
    for channel in spec.present(capture_objects):
        col = _column(capture_objects, channel.capture, channel.attribute, "register")
        scaler_unit = scalers.get(channel.capture)
        if scaler_unit is None:
            raise DlmsRemoteError(f"no scaler_unit for {channel.capture}")
        obis = ObisCode.parse(channel.channel)
        expected = CHANNEL_CATALOG[channel.channel].base
        floor_end = after.get(channel.channel)
        previous: tuple[int, int] | None = None  # (end, milli total)
        for end, instant, quality, row in stamped:
            milli, base = to_milli(_int_value(row[col], channel.capture), scaler_unit)
            if base is not expected:
                raise DlmsRemoteError(
                    f"{channel.capture} is in {base.value}; channel {channel.channel} "
                    f"needs {expected.value}"
                )
            value: int | None = milli
            after_floor = floor_end is None or end > floor_end
            if channel.kind is ChannelKind.CUMULATIVE:
                fits = previous is not None and end - previous[0] == capture_period
                value = milli - previous[1] if fits and previous is not None else None
                previous = (end, milli)
                if after_floor and not quality & Quality.SUSPECT:
                    registers.append(RegisterSample(meter_id, channel.channel, end, milli))
            if value is None or not after_floor:
                continue
            out.append(
                Reading(
                    meter_id=meter_id,
                    channel=obis,
                    interval_end=instant,
                    interval_seconds=capture_period,
                    value=value,
                    quality=quality,
                    source=source,
                )
            )
    out.sort(key=lambda r: (str(r.channel), r.interval_end))
    registers.sort(key=lambda r: (r.channel, r.read_at))
    return Conversion(tuple(out), len(rows), gaps, tuple(registers))
