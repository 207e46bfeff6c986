"""Green Button XML (NAESB REQ.21 ESPI): one raw record per ``IntervalReading``.

A Green Button file is an Atom ``feed`` (or a single ``entry``) whose entries carry ESPI
resources under ``<content>``: ``UsagePoint`` (the meter), ``MeterReading``, ``ReadingType``
(what is measured), ``IntervalBlock`` (the readings), ``LocalTimeParameters``. Entries are tied
together by their Atom links: an IntervalBlock's ``self``/``up`` href contains
``.../UsagePoint/{id}/MeterReading/{id}/IntervalBlock``, and a MeterReading names its ReadingType
in a ``related`` link. ESPI may be the default namespace or the ``espi:`` prefix.

Mapping (code values from the REQ.21 ``espi.xsd`` enumerations):

=====================================  ==================================================
ReadingType ``uom`` (UnitSymbolKind)   72 Wh → ``Wh``; 73 VArh → ``varh``; 42 m3 → ``m3``;
                                       134 litre → ``L``; anything else is a FormatError
``flowDirection`` with uom 72 / 73     1 forward → ``1.0.1.8.0.255`` / ``1.0.3.8.0.255``;
                                       19 reverse → ``1.0.2.8.0.255`` / ``1.0.4.8.0.255``;
                                       4 net (uom 72 only) → ``1.0.16.8.0.255``
``commodity`` (CommodityKind)          1, 2, 25 electricity; 9, 14 water → ``8.0.1.0.0.255``;
                                       7 natural gas → ``7.0.3.0.0.255``. Absent or 0: the
                                       UsagePoint's ServiceCategory kind (0, 1 gas, 2 water);
                                       with neither, Wh and VArh mean electricity
``ReadingQuality/quality``             7 → edited; 8, 9, 12, 13 → estimated; 10, 15, 16 →
                                       suspect; 0, 11, 14, 17, 18, 19 → actual; absent → null
=====================================  ==================================================

``value`` is the exact decimal text of ``value × 10**powerOfTenMultiplier`` in that unit.
``meter_id`` is the caller's, or else the UsagePoint entry's Atom ``<id>`` without
``urn:uuid:``. A broken IntervalReading (missing or non-integer start, duration, value or
quality) becomes a ``MALFORMED_ROW`` record; a broken container (not XML, an entity bomb, not
ESPI, an unsupported ReadingType, no meter identity) raises :class:`FormatError`.

Time and daylight saving: ESPI ``start`` is UTC epoch seconds, so ``interval_end`` is
``start + duration`` in UTC and ``LocalTimeParameters`` are deliberately not used. The two
01:00 hours of a fall-back day are distinct UTC instants and stay distinct; a missing hour is
simply absent (gaps stay gaps). Exporters that compute starts from local time produce two
readings with the same start, or a block whose reading count does not match its duration:
every reading is emitted as it is, never dropped, shifted or re-spread, so the pipeline sees the
repeated key and dedupes it (same value) or quarantines it (DUPLICATE_KEY_CONFLICT).
"""

from __future__ import annotations

import gzip
import html
import io
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Generic, TypeVar
from xml.etree.ElementTree import Element, ParseError

import polars as pl
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from meterledger.core.errors import FormatError
from meterledger.core.reading import Quality
from meterledger.core.time import iso_utc
from meterledger.ingest.reasons import Reason
from meterledger.ingest.records import raw_frame
from meterledger.vee.quality import ESPI_NAMES, from_espi

__all__ = ["parse_greenbutton"]

ATOM_NS = "http://www.w3.org/2005/Atom"
ESPI_NS = "http://naesb.org/espi"
#: Largest document accepted, after gunzip (a year of 5-minute data is ~50 MB of XML).
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024

_ATOM = frozenset({ATOM_NS, ""})
_ESPI = frozenset({ESPI_NS, ATOM_NS, ""})  # sloppy exports leave ESPI names unqualified
_RESOURCES = frozenset(
    {"UsagePoint", "MeterReading", "ReadingType", "IntervalBlock", "LocalTimeParameters",
     "UsageSummary", "ElectricPowerUsageSummary", "ElectricPowerQualitySummary"}
)  # fmt: skip
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}", re.ASCII)
_UP_PATH = re.compile(r"^(.*?/UsagePoint/[^/]+)")
_MR_PATH = re.compile(r"^(.*?/MeterReading/[^/]+)")
_EPOCH_RANGE = range(-62_135_596_800, 253_402_300_800)  # years 0001 to 9999

#: UnitSymbolKind → (our unit, what it measures).
_UOM = {72: ("Wh", "energy"), 73: ("varh", "energy"), 42: ("m3", "volume"), 134: ("L", "volume")}
#: (uom, FlowDirectionKind) → OBIS channel, for electricity.
_ELECTRIC: dict[tuple[int, int | None], str] = {
    (72, 1): "1.0.1.8.0.255",  # forward: delivered to the customer
    (72, 19): "1.0.2.8.0.255",  # reverse: received from the customer
    (72, 4): "1.0.16.8.0.255",  # net: |forward| - |reverse|
    (73, 1): "1.0.3.8.0.255",
    (73, 19): "1.0.4.8.0.255",
}
_VOLUME = {"water": "8.0.1.0.0.255", "gas": "7.0.3.0.0.255"}
_COMMODITY = {1: "electric", 2: "electric", 25: "electric", 7: "gas", 9: "water", 14: "water"}
_SERVICE_KIND = {0: "electric", 1: "gas", 2: "water"}  # UsagePoint ServiceCategory kind

T = TypeVar("T")


def parse_greenbutton(data: bytes, *, source: str, meter_id: str | None = None) -> pl.DataFrame:
    """Parse a Green Button document (plain or gzip) into the raw record frame.

    Raises :class:`FormatError` for a document that cannot be read as a whole; a single broken
    IntervalReading becomes a ``MALFORMED_ROW`` record instead.
    """
    root = _parse_xml(_decompress(bytes(data), source), source)
    return raw_frame(list(_rows(_Document(root, source), meter_id, source)))


def _decompress(data: bytes, source: str) -> bytes:
    if data.startswith(b"\x1f\x8b"):
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
                data = stream.read(MAX_DOCUMENT_BYTES + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise FormatError(f"{source}: broken gzip data: {exc}") from exc
    if len(data) > MAX_DOCUMENT_BYTES:
        raise FormatError(f"{source}: document larger than {MAX_DOCUMENT_BYTES} bytes")
    return data


def _parse_xml(data: bytes, source: str) -> Element:
    try:
        root: Element = fromstring(data)
    except DefusedXmlException as exc:
        raise FormatError(f"{source}: forbidden XML (entity, DTD or external): {exc}") from exc
    except (ParseError, ValueError, LookupError) as exc:
        raise FormatError(f"{source}: not well-formed XML: {exc}") from exc
    return root


def _split(tag: object) -> tuple[str, str]:
    if not isinstance(tag, str):
        return "\x00", ""  # a comment or processing instruction
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _children(parent: Element | None, name: str, spaces: frozenset[str] = _ESPI) -> list[Element]:
    if parent is None:
        return []
    return [c for c in parent if _split(c.tag)[1] == name and _split(c.tag)[0] in spaces]


def _child(parent: Element | None, name: str, spaces: frozenset[str] = _ESPI) -> Element | None:
    return next(iter(_children(parent, name, spaces)), None)


def _text(element: Element | None) -> str | None:
    return None if element is None else (element.text or "").strip()


def _integer(text: str | None) -> int | None:
    return int(text) if text is not None and _INTEGER.fullmatch(text) else None


class _Links(Generic[T]):
    """Resources found by href: exactly, then by the last ``parts`` path segments, then as the
    only one of their kind. Ambiguity gives ``None``: never a guess between two candidates."""

    def __init__(self, parts: int) -> None:
        self.parts = parts
        self.items: list[T] = []
        self._tables: tuple[dict[str, list[T]], dict[str, list[T]]] = ({}, {})

    def _keys(self, href: str) -> tuple[str, str]:
        return href, "/".join(href.split("/")[-self.parts :])

    def add(self, href: str, item: T) -> None:
        self.items.append(item)
        if href:
            for table, key in zip(self._tables, self._keys(href), strict=True):
                table.setdefault(key, []).append(item)

    def find(self, hrefs: Iterable[str]) -> T | None:
        keys = [self._keys(h) for h in hrefs if h]
        for index, table in enumerate(self._tables):
            found = {id(item): item for key in keys for item in table.get(key[index], ())}
            if found:
                return next(iter(found.values())) if len(found) == 1 else None
        return self.items[0] if len(self.items) == 1 else None


@dataclass(frozen=True, slots=True)
class _Entry:
    atom_id: str | None
    self_href: str
    up_href: str
    related: tuple[str, ...]
    resources: tuple[Element, ...]

    @classmethod
    def read(cls, element: Element) -> _Entry:
        links: dict[str, list[str]] = {}
        for link in _children(element, "link", _ATOM):
            href = (link.get("href") or "").strip().rstrip("/")
            links.setdefault((link.get("rel") or "").strip(), []).append(href)
        content = _child(element, "content", _ATOM)
        inside = [c for c in content if _split(c.tag)[0] in _ESPI] if content is not None else []
        direct = [c for c in element if _split(c.tag)[0] == ESPI_NS]  # no <content> wrapper
        resources = tuple(c for c in (*inside, *direct) if _split(c.tag)[1] in _RESOURCES)
        self_href, up_href = (links.get(rel, [""])[0] for rel in ("self", "up"))
        related = tuple(h for h in links.get("related", []) if h)
        return cls(_text(_child(element, "id", _ATOM)), self_href, up_href, related, resources)

    def paths(self, pattern: re.Pattern[str]) -> list[str]:
        found = (pattern.match(href) for href in (self.self_href, self.up_href))
        return [match.group(1) for match in found if match]


@dataclass(frozen=True, slots=True)
class _UsagePoint:
    identity: str | None  # the Atom id without urn:uuid:
    service: str | None  # from ServiceCategory kind; "?" for a kind we do not meter

    @classmethod
    def read(cls, entry: _Entry, resource: Element) -> _UsagePoint:
        identity = (entry.atom_id or "").strip()
        if identity.lower().startswith("urn:uuid:"):
            identity = identity[len("urn:uuid:") :].strip()
        kind = _integer(_text(_child(_child(resource, "ServiceCategory"), "kind")))
        return cls(identity or None, None if kind is None else _SERVICE_KIND.get(kind, "?"))


@dataclass(frozen=True, slots=True)
class _Channel:
    channel: str
    unit: str
    power: int
    attrs: tuple[tuple[str, str], ...]  # the ReadingType codes quoted in ``raw``


class _Document:
    """The entries of one feed, indexed so that each IntervalBlock finds its ReadingType and
    its UsagePoint through the Atom links, as real exports tie them."""

    def __init__(self, root: Element, source: str) -> None:
        ns, local = _split(root.tag)
        if ns not in _ATOM or local not in ("feed", "entry"):
            raise FormatError(
                f"{source}: not a Green Button document: the root element is <{local}>, "
                "not an Atom feed or entry"
            )
        elements = [root] if local == "entry" else _children(root, "entry", _ATOM)
        entries = [_Entry.read(element) for element in elements]
        if not any(entry.resources for entry in entries):
            raise FormatError(f"{source}: an Atom document without any ESPI resource")
        self.usage_points: _Links[_UsagePoint] = _Links(2)  # .../UsagePoint/{id}
        self.meter_readings: _Links[_Entry] = _Links(4)  # UsagePoint/{id}/MeterReading/{id}
        self.reading_types: _Links[Element] = _Links(2)  # .../ReadingType/{id}
        self.blocks: list[tuple[_Entry, Element]] = []
        for entry in entries:
            for resource in entry.resources:
                name = _split(resource.tag)[1]
                if name == "UsagePoint":
                    self.usage_points.add(entry.self_href, _UsagePoint.read(entry, resource))
                elif name == "MeterReading":
                    self.meter_readings.add(entry.self_href, entry)
                elif name == "ReadingType":
                    self.reading_types.add(entry.self_href, resource)
                elif name == "IntervalBlock":
                    self.blocks.append((entry, resource))

    def targets(self, entry: _Entry) -> tuple[Element | None, _UsagePoint | None]:
        """The ReadingType and the UsagePoint of an IntervalBlock's entry (None: unknown)."""
        reading = self.meter_readings.find(entry.paths(_MR_PATH))
        hrefs = [*entry.related, *(reading.related if reading else ())]
        paths = entry.paths(_UP_PATH) + (reading.paths(_UP_PATH) if reading else [])
        return self.reading_types.find(hrefs), self.usage_points.find(paths)


def _rows(doc: _Document, meter_id: str | None, source: str) -> Iterator[dict[str, object]]:
    work = []
    for entry, block in doc.blocks:
        readings = _children(block, "IntervalReading")
        if readings:
            work.append((entry, readings, *doc.targets(entry)))
    count = len(doc.usage_points.items)
    owners = {id(up) if up else None for *_, up in work}
    if meter_id is not None and count > 1 and (len(owners) > 1 or None in owners):
        raise FormatError(
            f"{source}: the file holds {count} UsagePoints and one --meter-id could merge "
            "the readings of several meters; split the file first"
        )
    record_no = 0
    for entry, readings, reading_type, usage_point in work:
        where = f"{source}: IntervalBlock {entry.self_href or '(no self link)'}"
        if reading_type is None:
            raise FormatError(f"{where}: cannot tell which ReadingType applies to it")
        channel = _channel(reading_type, usage_point, where)
        meter = meter_id if meter_id is not None else usage_point and usage_point.identity
        if not meter:
            raise FormatError(
                f"{where}: no usable UsagePoint identity to name the meter ({count} "
                "UsagePoints in the file); pass --meter-id"
            )
        for reading in readings:
            record_no += 1
            yield _row(reading, record_no, meter, channel)


def _channel(reading_type: Element, usage_point: _UsagePoint | None, where: str) -> _Channel:
    """What a ReadingType measures. Anything we cannot name exactly is a FormatError."""
    codes: dict[str, int | None] = {}
    for name in ("uom", "flowDirection", "commodity", "powerOfTenMultiplier"):
        text = _text(_child(reading_type, name))
        codes[name] = _integer(text)
        if text is not None and codes[name] is None:
            raise FormatError(f"{where}: ReadingType {name} {text[:40]!r} is not an integer")
    uom, flow, commodity = codes["uom"], codes["flowDirection"], codes["commodity"]
    power = codes["powerOfTenMultiplier"] or 0
    if uom is None or uom not in _UOM:
        raise FormatError(f"{where}: unsupported ReadingType uom {uom} (known: 72, 73, 42, 134)")
    if not -12 <= power <= 12:
        raise FormatError(f"{where}: ReadingType powerOfTenMultiplier {power} is out of range")
    if commodity and commodity not in _COMMODITY:
        raise FormatError(f"{where}: unsupported ReadingType commodity {commodity}")
    service = _COMMODITY[commodity] if commodity else usage_point and usage_point.service
    unit, measures = _UOM[uom]
    if service == "?":
        raise FormatError(f"{where}: the UsagePoint ServiceCategory kind is not metered here")
    if measures == "energy" and service not in (None, "electric"):  # None: Wh means electric
        raise FormatError(f"{where}: ReadingType uom {uom} (energy) on a {service} service")
    if measures == "energy" and (uom, flow) in _ELECTRIC:
        channel = _ELECTRIC[uom, flow]
    elif measures == "volume" and service in _VOLUME and flow in (None, 0, 1):
        channel = _VOLUME[service]
    elif measures == "volume" and service not in _VOLUME:
        raise FormatError(f"{where}: ReadingType uom {uom} without a water or gas commodity")
    else:
        raise FormatError(f"{where}: unsupported ReadingType flowDirection {flow} for uom {uom}")
    raw = (("commodity", commodity), ("uom", uom), ("pow", power), ("flow", flow))
    return _Channel(channel, unit, power, tuple((k, str(v)) for k, v in raw if v is not None))


def _row(reading: Element, record_no: int, meter: str, channel: _Channel) -> dict[str, object]:
    period = _child(reading, "timePeriod")
    texts = {
        "start": _text(_child(period, "start")),
        "duration": _text(_child(period, "duration")),
        "value": _text(_child(reading, "value")),
    }
    problems: list[str] = []
    numbers: dict[str, int | None] = {}
    for name, text in texts.items():
        numbers[name] = _integer(text)
        if text is None:
            problems.append(f"{name} is missing")
        elif numbers[name] is None:
            problems.append(f"{name} {text[:40]!r} is not an integer")
    start, duration, value = numbers["start"], numbers["duration"], numbers["value"]
    end: str | None = None
    if duration is not None and duration <= 0:
        problems.append(f"duration {duration} is not positive")
    elif start is not None and duration is not None:
        if start + duration in _EPOCH_RANGE:
            end = iso_utc(start + duration)
        else:
            problems.append(f"start {start} + duration {duration} is out of range")
    codes = [_text(_child(q, "quality")) for q in _children(reading, "ReadingQuality")]
    quality = _quality(codes, problems)
    attrs = [("meter", meter), *channel.attrs, *((k, v) for k, v in texts.items() if v is not None)]
    if codes:
        attrs.append(("quality", ",".join(code or "" for code in codes)))
    raw = " ".join(f'{k}="{html.escape(v, quote=True)}"' for k, v in attrs)
    return {
        "record_no": record_no,
        "meter_id": meter,
        "channel": channel.channel,
        "interval_end": end,
        "interval_seconds": None if duration is None else str(duration),
        "value": None if value is None else format(Decimal(f"{value}E{channel.power}"), "f"),
        "unit": channel.unit,
        "quality": quality,
        "raw": f"<IntervalReading {raw}/>",
        "error": Reason.MALFORMED_ROW.value if problems else None,
        "error_detail": f"IntervalReading {record_no}: {'; '.join(problems)}" if problems else None,
    }


def _quality(codes: list[str | None], problems: list[str]) -> str | None:
    """ESPI QualityOfReading codes → our text flags; several ReadingQuality elements combine."""
    if not codes:
        return None
    flags = Quality.ACTUAL
    for text in codes:
        code = _integer(text)
        if code is not None and code in ESPI_NAMES:
            # one table for both directions (vee.quality): 8 and 9 keep their method
            flags |= from_espi(code)
        else:
            problems.append(f"ReadingQuality {text!r} is not a QualityOfReading code")
    return flags.to_text()
