"""The COSEM object model of one simulated electricity meter (the server side of DLMS).

A :class:`SimulatedDlmsMeter` answers GET, SET and ACTION on the objects a head-end reads:

=================  =====  ===============================================================
OBIS               class  what
=================  =====  ===============================================================
0.0.1.0.0.255      8      Clock: simulator "now" plus the accumulated drift
1.0.1.8.0.255      3      active energy import, Wh, scaler 0, unit 30 (cumulative)
1.0.2.8.0.255      3      active energy export, Wh, scaler 0, unit 30 (cumulative)
1.0.99.1.0.255     7      load profile: [clock, import register (, export register)]
0.0.96.1.0.255     1      meter serial (the meter id, as an octet-string)
0.0.42.0.0.255     1      COSEM logical device name (``MLS`` + 13 digits)
0.0.40.0.0.255     15     current association: the object list with access rights
0.0.43.0.0.255     64     security setup: policy, suite 0, system titles, key transfer
=================  =====  ===============================================================

The load profile stores the *cumulative* register value at each capture, as real meters do:
a missed reading then loses nothing (the next row still says how much energy went through)
and the interval energy is the difference of two rows. The energy of an interval is the
load shape's (:mod:`meterledger.simulate.loadshapes`) rounded to whole Wh, so row deltas are
exact integers; during an outage no interval is captured and no energy flows, so the
register stands still. Capture times are the true 15-minute grid (stamped in the meter's
zone); the drift shows only in the Clock, which is what a collector reads and records.

Time. The model never reads the system clock: ``clock`` returns the simulator's true "now"
(aware). The meter's clock runs at ``1 + drift / 86400`` of that from an anchor, initially
``(start, start)``: a SET of attribute 2 or a ``shift_time`` moves the anchor. Rows become
visible once their capture time has passed, and the registers advance pro rata within the
current interval. Everything else follows from ``seed`` (see :func:`keys_for`).
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import itertools
import math
import random
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from meterledger.codec.dlms.apdu_common import SelectiveAccess
from meterledger.codec.dlms.apdu_selective import (
    CaptureObjectDefinition,
    RangeDescriptor,
    parse_selective_access,
)
from meterledger.codec.dlms.codes import ActionResult, DataAccessResult
from meterledger.codec.dlms.cosem import (
    AccessRight,
    CaptureObject,
    ClassId,
    ObjectListEntry,
    ScalerUnit,
    capture_objects_data,
    obis_bytes,
    obis_text,
    object_list_data,
    scaler_unit_data,
)
from meterledger.codec.dlms.data import (
    DAYLIGHT_SAVING_ACTIVE,
    CosemDate,
    CosemDateTime,
    CosemTime,
    Data,
    DataType,
)
from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError, SecurityError
from meterledger.codec.dlms.keywrap import KeyId, unwrap_key_transfer
from meterledger.core.time import epoch_of, parse_zone
from meterledger.simulate.loadshapes import TYPICAL_DAILY_KWH, LoadKind, profile

__all__ = [
    "ASSOCIATION_LN",
    "CLOCK",
    "DEVICE_NAME",
    "EXPORT_REGISTER",
    "IMPORT_REGISTER",
    "LOAD_PROFILE",
    "METER_SERIAL",
    "SECURITY_SETUP",
    "EnergyProfile",
    "MeterKeys",
    "SimulatedDlmsMeter",
    "build_profile",
    "keys_for",
    "system_title_for",
]

CLOCK = obis_bytes("0.0.1.0.0.255")
IMPORT_REGISTER = obis_bytes("1.0.1.8.0.255")
EXPORT_REGISTER = obis_bytes("1.0.2.8.0.255")
LOAD_PROFILE = obis_bytes("1.0.99.1.0.255")
METER_SERIAL = obis_bytes("0.0.96.1.0.255")
DEVICE_NAME = obis_bytes("0.0.42.0.0.255")
ASSOCIATION_LN = obis_bytes("0.0.40.0.0.255")
SECURITY_SETUP = obis_bytes("0.0.43.0.0.255")

WH = 30  # Blue Book unit enumeration: Wh
_KEY_SECRET = b"meterledger-simulator"
_MANUFACTURER = b"MLS"  # three letters, as a FLAG manufacturer id would be
_CLOCK_BASE_CRYSTAL = 1
_SORT_FIFO = 1


@dataclass(frozen=True, slots=True)
class MeterKeys:
    """The secrets of one meter: suite 0 keys (16 octets each), LLS password, system title.

    ``ek`` is the global unicast encryption key, ``ak`` the authentication key, ``kek`` the
    master key that wraps new keys in a key transfer."""

    ek: bytes
    ak: bytes
    kek: bytes
    broadcast_ek: bytes
    password: bytes
    system_title: bytes


def system_title_for(meter_index: int) -> bytes:
    """``b"MLS"`` followed by the meter index in 5 octets, big-endian (not a secret)."""
    return _MANUFACTURER + meter_index.to_bytes(5, "big")


def _derive(seed: int, meter_index: int, generation: int, label: str) -> bytes:
    message = f"{seed}/{meter_index}/{generation}/{label}".encode("ascii")
    return hmac.new(_KEY_SECRET, message, hashlib.sha256).digest()


def keys_for(meter_index: int, seed: int, *, generation: int = 0) -> MeterKeys:
    """The keys the simulator gives meter ``meter_index`` (0-based) of a fleet of ``seed``.

    Each key is the first 16 octets of ``HMAC-SHA256(b"meterledger-simulator",
    f"{seed}/{meter_index}/{generation}/{label}")`` for the labels ``ek``, ``ak``, ``kek``
    and ``bek``; the LLS password is the first 16 hex digits (ASCII) of the one for ``lls``.
    A meter configured with wrong keys uses ``generation=1``: keys the head-end never got.
    """
    if meter_index < 0 or meter_index >= 2**40:
        raise ValueError(f"meter index must be 0..2**40-1, got {meter_index}")

    def key(label: str) -> bytes:
        return _derive(seed, meter_index, generation, label)[:16]

    password = _derive(seed, meter_index, generation, "lls").hex()[:16].encode("ascii")
    return MeterKeys(
        ek=key("ek"),
        ak=key("ak"),
        kek=key("kek"),
        broadcast_ek=key("bek"),
        password=password,
        system_title=system_title_for(meter_index),
    )


# -- the energy behind the registers and the profile ------------------------------------

_INITIAL_WH = {
    LoadKind.RESIDENTIAL: (1_000_000, 40_000_000),
    LoadKind.COMMERCIAL: (50_000_000, 1_000_000_000),
}


@dataclass(frozen=True, slots=True, eq=False)
class EnergyProfile:
    """The cumulative registers on the interval grid, in whole Wh (compact arrays: a
    simulator holds thousands of these).

    Interval ``k`` runs ``(start + k·interval, start + (k+1)·interval]``; ``import_total[k]``
    is the import register at the *start* of interval ``k`` (``intervals + 1`` values, the
    first the register at ``start``). ``captured`` lists the intervals not lost to an
    outage, in order; ``captured_ends`` their capture times (epoch seconds)."""

    start: int
    interval: int
    import_total: array[int]
    export_total: array[int]
    captured: array[int]
    captured_ends: array[int]

    @property
    def intervals(self) -> int:
        return len(self.import_total) - 1

    @property
    def import_wh(self) -> tuple[int, ...]:
        """Energy imported in each interval."""
        return tuple(b - a for a, b in itertools.pairwise(self.import_total))

    @property
    def export_wh(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in itertools.pairwise(self.export_total))

    def register_at(self, instant: int, *, export: bool = False) -> int:
        """The register at ``instant``: the last boundary's total plus the elapsed share of
        the running interval's energy (constant before ``start`` and after the end)."""
        totals = self.export_total if export else self.import_total
        elapsed = instant - self.start
        k = min(max(elapsed // self.interval, 0), self.intervals)
        if k == self.intervals or elapsed <= 0:
            return totals[k]
        energy = totals[k + 1] - totals[k]
        return totals[k] + energy * (elapsed - k * self.interval) // self.interval

    def captured_until(self, instant: int) -> int:
        """How many captures happened at or before ``instant``."""
        return bisect.bisect_right(self.captured_ends, instant)

    def captured_between(self, low: int, high: int) -> tuple[int, int]:
        """The slice of captured rows with ``low <= capture time <= high``."""
        return (
            bisect.bisect_left(self.captured_ends, low),
            bisect.bisect_right(self.captured_ends, high),
        )


def _pv_wh(
    rng: random.Random, start: int, intervals: int, interval: int, zone_name: str, kw: float
) -> list[int]:
    """Rooftop generation: a half-sine from 06:00 to 18:00 local, a cloudiness per day."""
    zone = parse_zone(zone_name)
    cloud: dict[object, float] = {}
    values = []
    for k in range(intervals):
        local = datetime.fromtimestamp(start + k * interval + interval // 2, zone)
        day = local.date()
        if day not in cloud:
            cloud[day] = rng.uniform(0.3, 1.0)
        hour = local.hour + local.minute / 60 + local.second / 3600
        sun = math.sin(math.pi * (hour - 6) / 12) if 6 < hour < 18 else 0.0
        values.append(round(kw * sun * cloud[day] * interval / 3.6))
    return values


def build_profile(
    meter_id: str,
    *,
    seed: int,
    kind: LoadKind,
    start: int,
    intervals: int,
    interval: int,
    tz: str,
    outages: Sequence[tuple[int, int]] = (),
    daily_kwh: float | None = None,
    pv_kw: float = 0.0,
    initial_wh: int | None = None,
) -> EnergyProfile:
    """The meter's energy from the load shape, seeded by ``f"{seed}:{meter_id}"`` (the
    stream :mod:`meterledger.simulate.fleet` uses too); with ``pv_kw`` the net of load and
    generation splits into import and export. An interval that overlaps an outage is not
    captured and carries no energy."""
    sizing = random.Random(f"{seed}:{meter_id}:size")
    low, high = TYPICAL_DAILY_KWH[kind]
    kwh = daily_kwh if daily_kwh is not None else round(sizing.uniform(low, high), 1)
    first = initial_wh if initial_wh is not None else sizing.randrange(*_INITIAL_WH[kind])
    load = profile(
        kind,
        start=start + interval,
        intervals=intervals,
        interval_seconds=interval,
        tz=tz,
        daily_kwh=kwh,
        rng=random.Random(f"{seed}:{meter_id}"),
    )
    pv = (
        _pv_wh(random.Random(f"{seed}:{meter_id}:pv"), start, intervals, interval, tz, pv_kw)
        if pv_kw > 0
        else [0] * intervals
    )
    imports, exports, captured = [], [], []
    lost = {
        k
        for b, e in outages
        for k in range(max((b - start) // interval, 0), min(-(-(e - start) // interval), intervals))
    }
    for k in range(intervals):
        if k in lost:
            imports.append(0)
            exports.append(0)
            continue
        net = round(load[k] / 1000) - pv[k]
        imports.append(max(net, 0))
        exports.append(max(-net, 0))
        captured.append(k)
    import_total = array("q", itertools.accumulate(imports, initial=first))
    if import_total[-1] > 0xFFFFFFFF:
        raise ValueError(f"{meter_id}: the import register would pass 2**32 Wh")
    return EnergyProfile(
        start=start,
        interval=interval,
        import_total=import_total,
        export_total=array("q", itertools.accumulate(exports, initial=0)),
        captured=array("q", captured),
        captured_ends=array("q", (start + (k + 1) * interval for k in captured)),
    )


@lru_cache(maxsize=64)
def _dst_rules(tz: str, year: int) -> tuple[datetime, datetime, int] | None:
    """Local wall times (in the offset in force before each change) at which daylight
    saving begins and ends in ``year``, and its deviation in minutes; ``None`` without DST."""
    zone = parse_zone(tz)
    changes: list[tuple[datetime, timedelta]] = []
    instant = datetime(year, 1, 1, tzinfo=UTC)
    before = instant.astimezone(zone).utcoffset() or timedelta(0)
    while instant.year == year:
        step = instant + timedelta(hours=1)
        after = step.astimezone(zone).utcoffset() or timedelta(0)
        if after != before:
            low, high = instant, step  # bisect to the first minute of the new offset
            while high - low > timedelta(minutes=1):
                mid = low + (high - low) / 2
                same = mid.astimezone(zone).utcoffset() == before
                low, high = (mid, high) if same else (low, mid)
            changes.append(((high + before).replace(tzinfo=None), after - before))
        instant, before = step, after
    begins = [(when, delta) for when, delta in changes if delta > timedelta(0)]
    ends = [when for when, delta in changes if delta < timedelta(0)]
    if not begins or not ends:
        return None
    return begins[0][0], ends[0], int(begins[0][1].total_seconds() // 60)


@lru_cache(maxsize=1 << 16)
def _capture_time(tz: str, epoch: int) -> Data:
    """A capture time as the buffer holds it, in local time (shared by every meter of the
    zone: a fleet's rows carry the same few stamps)."""
    local = datetime.fromtimestamp(epoch, parse_zone(tz))
    return Data.date_time_octets(CosemDateTime.from_datetime(local))


_R, _RW = int(AccessRight.READ), int(AccessRight.READ_WRITE)


def _entry(
    class_id: int,
    version: int,
    name: bytes,
    count: int,
    methods: Sequence[tuple[int, bool]] = (),
    writable: Sequence[int] = (),
) -> ObjectListEntry:
    rights = tuple((a, _RW if a in writable else _R) for a in range(1, count + 1))
    return ObjectListEntry(class_id, version, name, rights, tuple(methods))


# Every simulated meter has the same objects (version, attributes, methods).
_OBJECTS = (
    _entry(ClassId.ASSOCIATION_LN, 1, ASSOCIATION_LN, 8, ((1, True),)),
    _entry(ClassId.CLOCK, 0, CLOCK, 9, ((1, True), (3, True), (6, True)), (2,)),
    _entry(ClassId.DATA, 0, DEVICE_NAME, 2),
    _entry(ClassId.DATA, 0, METER_SERIAL, 2),
    _entry(ClassId.REGISTER, 0, IMPORT_REGISTER, 3),
    _entry(ClassId.REGISTER, 0, EXPORT_REGISTER, 3),
    _entry(ClassId.PROFILE_GENERIC, 1, LOAD_PROFILE, 8),
    _entry(ClassId.SECURITY_SETUP, 0, SECURITY_SETUP, 5, ((1, False), (2, True))),
)
_BY_NAME = {entry.logical_name: entry for entry in _OBJECTS}
_UNSPECIFIED_DATETIME = bytes.fromhex("ffffffffffffffffff8000ff")


class SimulatedDlmsMeter:
    """One simulated meter: a COSEM model answering ``get``/``set``/``action``.

    ``start`` (aware, on the interval grid) is where the profile begins; it holds ``days``
    days of ``interval``-second captures. ``outages`` are ``(begin, end)`` spans with no
    capture and no energy; ``clock_drift_s_per_day`` makes the meter clock gain (positive)
    or lose time. ``clock`` gives the simulator's true now (default: frozen at the end of
    the profile). ``pv_kw`` > 0 adds rooftop generation, so export is captured too.
    ``index`` is the meter's place in the fleet: it names the keys (:func:`keys_for`)
    unless ``keys`` are given, and the system title.
    """

    def __init__(
        self,
        meter_id: str,
        *,
        seed: int,
        kind: LoadKind = LoadKind.RESIDENTIAL,
        start: datetime,
        days: int,
        interval: int = 900,
        clock_drift_s_per_day: float = 0.0,
        outages: Sequence[tuple[datetime, datetime]] = (),
        tz: str = "UTC",
        index: int = 0,
        keys: MeterKeys | None = None,
        clock: Callable[[], datetime] | None = None,
        daily_kwh: float | None = None,
        pv_kw: float = 0.0,
        initial_wh: int | None = None,
        security_policy: int = 0,
    ) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        if days < 1:
            raise ValueError(f"days must be at least 1, got {days}")
        if interval <= 0 or 86_400 % interval or epoch_of(start) % interval:
            raise ValueError(f"start must lie on a grid of {interval} s that divides a day")
        self.meter_id = meter_id
        self.seed = seed
        self.kind = LoadKind(kind)
        self.start = start.astimezone(UTC)
        self.end = self.start + timedelta(days=days)
        self.days = days
        self.interval = interval
        self.drift_s_per_day = clock_drift_s_per_day
        self.outages = tuple((b.astimezone(UTC), e.astimezone(UTC)) for b, e in outages)
        self.tz = tz
        self.zone = parse_zone(tz)
        self.index = index
        self.keys = keys if keys is not None else keys_for(index, seed)
        self.daily_kwh = daily_kwh
        self.pv_kw = pv_kw
        self.initial_wh = initial_wh
        self.security_policy = security_policy
        self.client_system_title = b""
        self._clock = clock if clock is not None else (lambda: self.end)
        self._anchor = (self.start, self.start)  # (true instant, meter-clock instant)
        self._profile: EnergyProfile | None = None

    # -- time ---------------------------------------------------------------------------

    def now(self) -> datetime:
        """The simulator's true instant (UTC)."""
        return self._clock().astimezone(UTC)

    def _now_epoch(self) -> int:
        return math.floor(self.now().timestamp())

    def meter_time(self) -> datetime:
        """What the meter's clock says now (UTC): the anchor plus elapsed time with drift."""
        true_anchor, meter_anchor = self._anchor
        elapsed = (self.now() - true_anchor).total_seconds()
        drifted = elapsed * (1.0 + self.drift_s_per_day / 86_400.0)
        return meter_anchor + timedelta(microseconds=round(drifted * 1_000_000))

    def set_meter_time(self, value: datetime) -> None:
        """The meter clock reads ``value`` now and drifts on from there."""
        self._anchor = (self.now(), value.astimezone(UTC))

    def _datetime_data(self, instant: datetime) -> Data:
        return Data.date_time_octets(CosemDateTime.from_datetime(instant.astimezone(self.zone)))

    def _instant(self, value: Data) -> datetime:
        """A date-time parameter (octet-string of 12 or date-time) as an aware instant; an
        unspecified deviation means the meter's local time."""
        try:
            return value.to_cosem_datetime().to_datetime(self.zone).astimezone(UTC)
        except DlmsLocalError as exc:
            raise DecodeError(str(exc)) from exc

    # -- profile ------------------------------------------------------------------------

    @property
    def profile(self) -> EnergyProfile:
        """The generated energy (built on first use and kept)."""
        if self._profile is None:
            self._profile = build_profile(
                self.meter_id,
                seed=self.seed,
                kind=self.kind,
                start=epoch_of(self.start),
                intervals=self.days * 86_400 // self.interval,
                interval=self.interval,
                tz=self.tz,
                outages=tuple(
                    (math.floor(b.timestamp()), math.ceil(e.timestamp())) for b, e in self.outages
                ),
                daily_kwh=self.daily_kwh,
                pv_kw=self.pv_kw,
                initial_wh=self.initial_wh,
            )
        return self._profile

    @property
    def exports(self) -> bool:
        """Whether the profile captures the export register (only with generation)."""
        return self.pv_kw > 0

    def capture_objects(self) -> tuple[CaptureObject, ...]:
        columns = [
            CaptureObject(ClassId.CLOCK, CLOCK, 2),
            CaptureObject(ClassId.REGISTER, IMPORT_REGISTER, 2),
        ]
        if self.exports:
            columns.append(CaptureObject(ClassId.REGISTER, EXPORT_REGISTER, 2))
        return tuple(columns)

    def _rows(self, first: int, last: int) -> tuple[Data, ...]:
        """Buffer rows ``first..last-1`` (built when read: only the stamps are shared)."""
        p, tz, u32 = self.profile, self.tz, DataType.DOUBLE_LONG_UNSIGNED
        imports, exports, row = p.import_total, p.export_total, DataType.STRUCTURE
        picked = zip(p.captured[first:last], p.captured_ends[first:last], strict=True)
        if not self.exports:
            return tuple(
                Data(row, (_capture_time(tz, t), Data(u32, imports[k + 1]))) for k, t in picked
            )
        return tuple(
            Data(row, (_capture_time(tz, t), Data(u32, imports[k + 1]), Data(u32, exports[k + 1])))
            for k, t in picked
        )

    def entries_in_use(self) -> int:
        """Rows captured by now (the buffer never holds a capture from the future)."""
        return self.profile.captured_until(self._now_epoch())

    def register_wh(self, obis: bytes) -> int:
        """The import or export register now, in Wh."""
        return self.profile.register_at(self._now_epoch(), export=obis == EXPORT_REGISTER)

    def buffer(self, selective: SelectiveAccess | None = None) -> Data:
        """Attribute 2, whole or by selective access (1: range of capture time, 2: entries).

        Raises :class:`DecodeError` for parameters of the wrong shape and
        :class:`LookupError` for a restricting object or column the profile lacks."""
        in_use = self.entries_in_use()
        width = len(self.capture_objects())
        first, last, columns = 0, in_use, tuple(range(width))
        if selective is not None:
            descriptor = parse_selective_access(selective)
            if isinstance(descriptor, RangeDescriptor):
                first, last, columns = self._by_range(descriptor)
                last = min(last, in_use)
            else:
                first = max(descriptor.from_entry, 1) - 1
                last = min(descriptor.to_entry or in_use, in_use)
                low, high = descriptor.from_selected_value, descriptor.to_selected_value
                columns = tuple(range(max(low, 1) - 1, min(high or width, width)))
        rows = self._rows(first, max(first, last))
        if len(columns) != width:
            rows = tuple(Data.structure(*(row.items[c] for c in columns)) for row in rows)
        return Data.array(*rows)

    def _by_range(self, descriptor: RangeDescriptor) -> tuple[int, int, tuple[int, ...]]:
        def key(o: CaptureObjectDefinition | CaptureObject) -> tuple[int, bytes, int]:
            if isinstance(o, CaptureObject):
                return (o.class_id, o.logical_name, o.attribute)
            return (o.class_id, o.logical_name, o.attribute_index)

        if key(descriptor.restricting_object) != (ClassId.CLOCK, CLOCK, 2):
            raise LookupError("range selection is by the clock (8, 0.0.1.0.0.255, 2) only")
        # Captures fall on whole seconds, so bounds with hundredths round inwards.
        low = math.ceil(self._instant(descriptor.from_value).timestamp())
        high = math.floor(self._instant(descriptor.to_value).timestamp())
        first, last = self.profile.captured_between(low, high)
        keys = [key(o) for o in self.capture_objects()]
        wanted = set()
        for column in descriptor.selected_values:
            if key(column) not in keys:
                raise LookupError(f"{obis_text(column.logical_name)} is not captured")
            wanted.add(keys.index(key(column)))
        return first, last, tuple(sorted(wanted)) or tuple(range(len(keys)))

    # -- the CosemModel protocol --------------------------------------------------------

    def object_list(self) -> tuple[ObjectListEntry, ...]:
        return _OBJECTS

    def _find(self, class_id: int, obis: bytes) -> ObjectListEntry | DataAccessResult:
        entry = _BY_NAME.get(obis)
        if entry is None:
            return DataAccessResult.OBJECT_UNDEFINED
        if entry.class_id != class_id:
            return DataAccessResult.OBJECT_CLASS_INCONSISTENT
        return entry

    def get(
        self, class_id: int, obis: bytes, attribute: int, selective: SelectiveAccess | None = None
    ) -> Data | DataAccessResult:
        """One attribute's value, or why not (a Data-Access-Result): an unknown object is
        object-undefined, an unknown attribute or selective access anywhere but the profile
        buffer object-unavailable, parameters of the wrong shape type-unmatched."""
        entry = self._find(class_id, obis)
        if isinstance(entry, DataAccessResult):
            return entry
        if attribute not in dict(entry.attribute_access):
            return DataAccessResult.OBJECT_UNAVAILABLE
        if selective is not None and (obis, attribute) != (LOAD_PROFILE, 2):
            return DataAccessResult.OBJECT_UNAVAILABLE
        if attribute == 1:
            return Data.octets(obis)
        try:
            return self._value(obis, attribute, selective)
        except DecodeError:
            return DataAccessResult.TYPE_UNMATCHED
        except LookupError:
            return DataAccessResult.OBJECT_UNAVAILABLE

    def _value(self, obis: bytes, attribute: int, selective: SelectiveAccess | None) -> Data:
        if obis == CLOCK:
            return self._clock_attribute(attribute)
        if obis in (IMPORT_REGISTER, EXPORT_REGISTER):
            if attribute == 2:
                return Data.uint32(self.register_wh(obis))
            return scaler_unit_data(ScalerUnit(0, WH))
        if obis == LOAD_PROFILE:
            return self._profile_attribute(attribute, selective)
        if obis == METER_SERIAL:
            return Data.octets(self.meter_id.encode("ascii"))
        if obis == DEVICE_NAME:
            return Data.octets(_MANUFACTURER + f"{self.index:013d}".encode("ascii"))
        if obis == ASSOCIATION_LN:
            if attribute == 2:
                return object_list_data(_OBJECTS)
            # Partners, contexts and mechanism belong to the protocol engine; 2 = associated.
            return Data.enum(2) if attribute == 8 else Data.null()
        return (
            Data.enum(self.security_policy),
            Data.enum(0),  # security suite 0
            Data.octets(self.client_system_title),
            Data.octets(self.keys.system_title),
        )[attribute - 2]

    def _clock_attribute(self, attribute: int) -> Data:
        if attribute == 2:
            return self._datetime_data(self.meter_time())
        local = self.meter_time().astimezone(self.zone)
        if attribute == 3:
            standard = (local.utcoffset() or timedelta(0)) - (local.dst() or timedelta(0))
            return Data.int16(-int(standard.total_seconds() // 60))
        if attribute == 4:
            return Data.uint8(DAYLIGHT_SAVING_ACTIVE if local.dst() else 0)
        rules = _dst_rules(self.tz, local.year)
        if attribute in (5, 6):
            if rules is None:
                return Data.octets(_UNSPECIFIED_DATETIME)
            wall = rules[0] if attribute == 5 else rules[1]
            day, tod = CosemDate.from_date(wall.date()), CosemTime.from_time(wall.time())
            return Data.date_time_octets(CosemDateTime(day, tod, None, None))
        if attribute == 7:
            return Data.int8(rules[2] if rules else 0)
        if attribute == 8:
            return Data.boolean(rules is not None)
        return Data.enum(_CLOCK_BASE_CRYSTAL)

    def _profile_attribute(self, attribute: int, selective: SelectiveAccess | None) -> Data:
        if attribute == 2:
            return self.buffer(selective)
        if attribute == 3:
            return capture_objects_data(self.capture_objects())
        if attribute == 4:
            return Data.uint32(self.interval)
        if attribute == 5:
            return Data.enum(_SORT_FIFO)
        if attribute == 6:
            return capture_objects_data((CaptureObject(0, bytes(6), 0),)).items[0]
        if attribute == 7:
            return Data.uint32(self.entries_in_use())
        return Data.uint32(self.profile.intervals)

    def set(
        self,
        class_id: int,
        obis: bytes,
        attribute: int,
        value: Data,
        selective: SelectiveAccess | None = None,
    ) -> DataAccessResult:
        """Only the clock's time (attribute 2) is writable, without selective access."""
        entry = self._find(class_id, obis)
        if isinstance(entry, DataAccessResult):
            return entry
        if selective is not None:
            return DataAccessResult.OBJECT_UNAVAILABLE
        rights = dict(entry.attribute_access)
        if attribute not in rights:
            return DataAccessResult.OBJECT_UNAVAILABLE
        if rights[attribute] != _RW:
            return DataAccessResult.READ_WRITE_DENIED
        try:
            self.set_meter_time(self._instant(value))
        except DecodeError:
            return DataAccessResult.TYPE_UNMATCHED
        return DataAccessResult.SUCCESS

    def action(
        self, class_id: int, obis: bytes, method: int, parameters: Data | None
    ) -> tuple[ActionResult, Data | None]:
        """Clock methods 1 (adjust_to_quarter), 3 (adjust_to_minute), 6 (shift_time) and
        Security Setup method 2 (key transfer); HLS (Association LN method 1) is the
        protocol engine's."""
        entry = self._find(class_id, obis)
        if isinstance(entry, DataAccessResult):
            return ActionResult(int(entry)), None
        if not dict(entry.method_access).get(method, False) or obis == ASSOCIATION_LN:
            return ActionResult.READ_WRITE_DENIED, None
        if obis == SECURITY_SETUP:
            return self._key_transfer(parameters), None
        current = self.meter_time()
        if method == 6:
            shift = None if parameters is None else parameters.value
            if parameters is None or parameters.type is not DataType.LONG:
                return ActionResult.TYPE_UNMATCHED, None
            if not isinstance(shift, int) or not -900 <= shift <= 900:
                return ActionResult.OTHER_REASON, None
            self.set_meter_time(current + timedelta(seconds=shift))
        else:
            step = 900 if method == 1 else 60
            rounded = round(current.timestamp() / step) * step
            self.set_meter_time(datetime.fromtimestamp(rounded, UTC))
        return ActionResult.SUCCESS, None

    def _key_transfer(self, parameter: Data | None) -> ActionResult:
        """Unwrap the new keys with the master key and replace them, all or nothing; they
        are used from the next association on."""
        if parameter is None:
            return ActionResult.TYPE_UNMATCHED
        try:
            new = unwrap_key_transfer(self.keys.kek, parameter)
        except DecodeError:
            return ActionResult.TYPE_UNMATCHED
        except SecurityError:
            return ActionResult.OTHER_REASON
        if any(len(key) != 16 for key in new.values()):
            return ActionResult.TYPE_UNMATCHED
        k = self.keys
        self.keys = replace(
            k,
            ek=new.get(KeyId.GLOBAL_UNICAST_ENCRYPTION, k.ek),
            broadcast_ek=new.get(KeyId.GLOBAL_BROADCAST_ENCRYPTION, k.broadcast_ek),
            ak=new.get(KeyId.AUTHENTICATION, k.ak),
            kek=new.get(KeyId.MASTER, k.kek),
        )
        return ActionResult.SUCCESS
