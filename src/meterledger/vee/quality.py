"""Our quality flags as IEC 61968-9 ReadingQuality codes and Green Button (ESPI) qualities.

**IEC 61968-9 ReadingQualityType** codes are ``<systemId>.<category>.<index>`` (CIM class
``ReadingQualityType``: systemId, category, subCategory). A reading carries none (assumed
valid), one or several. Systems: 0 not applicable, 1 end device, 2 metering system (head-end),
3 MDM, 4 other, 5 externally specified. Categories: 0 valid, 1 diagnostics, 2 power quality,
3 tamper, 4 data collection, 5 reasonability, 6 validation, 7 edited, 8 estimated,
9 (obsolete, oscillatory), 10 questionable, 11 derived, 12 projected. Sources: IEC 61968-9
Annex D as implemented by the Elster/Honeywell Connexo MDM (``com.elster.jupiter.cbo``:
``QualityCodeSystem``, ``QualityCodeCategory``, ``QualityCodeIndex``), the IEC 61968-9
interoperability test enumerations (S. Neumann, 2009: 1.0.0 data valid, 3.7.0 manually edited,
3.8.0 generic estimated, ...) and the Aclara I-210+c user guide's supported quality codes
(1.2.32 EndDevice.PowerQuality.PowerFail "outage during interval", 1.4.9
EndDevice.DataCollectionRelated.ClockChanged).

========================  ==========  ==================================================
our flag                  IEC code    meaning
========================  ==========  ==================================================
(none: actual)            1.0.0       end device: data valid
``CLOCK_ADJUSTED``        1.4.9       end device, data collection: clock changed
``POWER_OUTAGE``          1.2.32      end device, power quality: power fail in interval
``SUSPECT``               3.5.258     MDM, reasonability: suspect
``EDITED``                3.7.0       MDM, edited: manually edited (generic)
``ESTIMATED`` (+method)   3.8.0       MDM, estimated: generic
========================  ==========  ==================================================

IEC 61968-9 standardises one index in the estimated category, 0 (generic); an MDM may put its
own estimator in the index (Connexo reads any 8.x as generic), but a receiver is only sure to
understand 8.0, so every estimate is 3.8.0 and the method travels in the ESPI code and our own
text flag (``estimated:linear``). Codes are returned sorted by (system, category, index).

**Green Button / NAESB REQ.21 ESPI ``QualityOfReading``** (``espi.xsd`` v4.0, 2023-12-13):
0 valid, 7 manually edited, 8 estimated using reference day, 9 estimated using linear
interpolation, 10 questionable, 11 derived, 12 projected (forecast), 13 mixed, 14 raw,
15 normalized for weather, 16 other, 17 validated, 18 verified, 19 revenue-quality. The numbers
follow the IEC categories (7 edited, 10 questionable, 11 derived, 12 projected), except that ESPI
splits "estimated" into 8 and 9. An ``IntervalReading`` may hold several ``ReadingQuality``
elements, but the Green Button Alliance notes one is normally enough ("Accuracy and Reading
Quality"), so we export one code per reading, chosen by this precedence:

1. ``EDITED`` → 7 (a person replaced or approved the value);
2. ``EST_LINEAR`` → 9;
3. ``EST_LIKE_DAY`` → 8, and also ``EST_REGISTER`` or ``ESTIMATED`` without a method → 8: ESPI has
   no other estimation code, and 8's definition ("replaced by a machine computed value based on
   analysis of historical data using the same type of measurement") covers a value spread from
   the meter's own register reads. 11 "derived" is not used: readers (our ingest included) take
   derived values as measured, and an actual arriving later must still replace an estimate;
4. ``SUSPECT`` → 10 questionable;
5. otherwise 0 valid, or 14 raw when the data has not been through VEE (``validated=False``).
   ``POWER_OUTAGE`` and ``CLOCK_ADJUSTED`` alone have no ESPI code: the value is as measured.

ESPI's ``IntervalBlock`` has no quality; a summary (``UsageSummary.qualityOfReading``) or a
reading that aggregates several intervals takes :func:`espi_aggregate_quality`: the common code,
or 13 "mixed" when the intervals' codes differ.

Ingest (:func:`from_espi`): 0, 11, 14, 17, 18, 19 → actual; 7 → edited; 8 → estimated:like-day;
9 → estimated:linear; 12 (projected) and 13 (mixed, partly estimated) → estimated, so that an
actual replaces them; 10, 15 (not the metered amount) and 16 → suspect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

import numpy as np

from meterledger.core.errors import InputError
from meterledger.core.reading import Quality

__all__ = [
    "ESPI_NAMES",
    "IEC_CODES",
    "IEC_VALID",
    "espi_aggregate_quality",
    "espi_codes",
    "espi_quality",
    "from_espi",
    "from_reading_quality",
    "qualities_from_espi",
    "reading_qualities",
    "reading_quality",
]

_I64 = np.int64
_METHOD_FLAGS = (Quality.EST_LINEAR, Quality.EST_LIKE_DAY, Quality.EST_REGISTER)
_METHODS = Quality.EST_LINEAR | Quality.EST_LIKE_DAY | Quality.EST_REGISTER
_ALL = int(
    Quality.ESTIMATED
    | Quality.EDITED
    | Quality.POWER_OUTAGE
    | Quality.CLOCK_ADJUSTED
    | Quality.SUSPECT
    | _METHODS
)

IEC_VALID = "1.0.0"
"""The code of an actual reading with no flag: end device, valid, data valid."""

IEC_CODES: Mapping[Quality, str] = MappingProxyType(
    {
        Quality.CLOCK_ADJUSTED: "1.4.9",
        Quality.POWER_OUTAGE: "1.2.32",
        Quality.SUSPECT: "3.5.258",
        Quality.EDITED: "3.7.0",
        Quality.ESTIMATED: "3.8.0",
    }
)
"""IEC 61968-9 ReadingQuality code of each flag (the method flags imply ``ESTIMATED``)."""

ESPI_NAMES: Mapping[int, str] = MappingProxyType(
    {
        0: "valid",
        7: "manually edited",
        8: "estimated using reference day",
        9: "estimated using linear interpolation",
        10: "questionable",
        11: "derived",
        12: "projected (forecast)",
        13: "mixed",
        14: "raw",
        15: "normalized for weather",
        16: "other",
        17: "validated",
        18: "verified",
        19: "revenue-quality",
    }
)
"""The ESPI ``QualityOfReading`` enumeration (``espi.xsd`` appinfo names)."""

_FROM_ESPI: Mapping[int, Quality] = MappingProxyType(
    {
        0: Quality.ACTUAL,
        7: Quality.EDITED,
        8: Quality.ESTIMATED | Quality.EST_LIKE_DAY,
        9: Quality.ESTIMATED | Quality.EST_LINEAR,
        10: Quality.SUSPECT,
        11: Quality.ACTUAL,
        12: Quality.ESTIMATED,
        13: Quality.ESTIMATED,
        14: Quality.ACTUAL,
        15: Quality.SUSPECT,
        16: Quality.SUSPECT,
        17: Quality.ACTUAL,
        18: Quality.ACTUAL,
        19: Quality.ACTUAL,
    }
)
_MIXED = 13
_RAW = 14


def _checked(flags: int) -> Quality:
    if isinstance(flags, bool) or not 0 <= int(flags) <= _ALL:
        raise InputError(f"not a quality flag value: {flags!r}")
    quality = Quality(int(flags))
    if sum(bool(quality & method) for method in _METHOD_FLAGS) > 1:
        raise InputError(f"a value has one estimation method, got {quality.to_text()!r}")
    return quality


def _sort_key(code: str) -> tuple[int, ...]:
    return tuple(int(part) for part in code.split("."))


def reading_quality(flags: int) -> tuple[str, ...]:
    """The IEC 61968-9 ReadingQuality codes of a reading with these flags, sorted."""
    quality = _checked(flags)
    if quality & _METHODS:
        quality |= Quality.ESTIMATED
    codes = [code for flag, code in IEC_CODES.items() if quality & flag]
    return tuple(sorted(codes, key=_sort_key)) if codes else (IEC_VALID,)


def reading_qualities(flags: np.ndarray) -> tuple[tuple[str, ...], ...]:
    """:func:`reading_quality` of every element (computed once per distinct flag value)."""
    values, inverse = np.unique(np.asarray(flags, dtype=_I64), return_inverse=True)
    table = [reading_quality(int(v)) for v in values]
    return tuple(table[i] for i in inverse.ravel())


def from_reading_quality(codes: Iterable[str]) -> Quality:
    """Our flags for a reading's IEC 61968-9 codes (any system): category 7 → edited, 8 →
    estimated, 5, 6 and 10 (except 10.1, manually accepted) → suspect, x.2.32 → power outage,
    x.4.9, x.4.64, x.4.128 (clock changed, set forward, set backward) → clock adjusted; the
    others (valid, diagnostics, derived, ...) add nothing."""
    flags = Quality.ACTUAL
    for code in codes:
        parts = code.strip().split(".")
        if len(parts) != 3 or not all(part.isdigit() for part in parts):
            raise InputError(f"not a ReadingQuality code: {code!r}")
        category, index = int(parts[1]), int(parts[2])
        if category == 7:
            flags |= Quality.EDITED
        elif category == 8:
            flags |= Quality.ESTIMATED
        elif category in (5, 6) or (category == 10 and index != 1):
            flags |= Quality.SUSPECT
        elif category == 2 and index == 32:
            flags |= Quality.POWER_OUTAGE
        elif category == 4 and index in (9, 64, 128):
            flags |= Quality.CLOCK_ADJUSTED
    return flags


def espi_quality(flags: int, *, validated: bool = True) -> int:
    """The one ESPI ``QualityOfReading`` code for a reading (precedence in the module doc)."""
    quality = _checked(flags)
    if quality & Quality.EDITED:
        return 7
    if quality & Quality.EST_LINEAR:
        return 9
    if quality & (Quality.ESTIMATED | _METHODS):
        return 8
    if quality & Quality.SUSPECT:
        return 10
    return 0 if validated else _RAW


def _espi_table(validated: bool) -> np.ndarray:
    """``espi_quality`` of every flag value, -1 where the value is not valid flags."""
    table = np.full(_ALL + 1, -1, dtype=_I64)
    for flags in range(_ALL + 1):
        try:
            table[flags] = espi_quality(flags, validated=validated)
        except InputError:
            continue  # two estimation methods: no code
    return table


_ESPI_TABLES = {True: _espi_table(True), False: _espi_table(False)}


def espi_codes(flags: np.ndarray, *, validated: bool = True) -> np.ndarray:
    """:func:`espi_quality` of every element, vectorised (a table lookup)."""
    values = np.asarray(flags, dtype=_I64)
    if values.size and (values.min() < 0 or values.max() > _ALL):
        raise InputError("not a quality flag value in the array")
    codes: np.ndarray = _ESPI_TABLES[validated][values]
    if (codes < 0).any():
        raise InputError("a value has one estimation method; the array has one with several")
    return codes


def espi_aggregate_quality(flags: np.ndarray, *, validated: bool = True) -> int:
    """One ESPI code for a value made of several readings (a summary, a daily total): their
    common code, or 13 "mixed" when they differ."""
    codes = espi_codes(flags, validated=validated)
    if not codes.size:
        raise ValueError("an aggregate of no readings has no quality")
    first = int(codes.flat[0])
    return first if bool((codes == first).all()) else _MIXED


def from_espi(code: int) -> Quality:
    """Our flags for an ESPI ``QualityOfReading`` code (see the module doc)."""
    try:
        return _FROM_ESPI[int(code)]
    except (KeyError, ValueError, TypeError):
        raise InputError(f"not a QualityOfReading code: {code!r}") from None


_FROM_ESPI_TABLE = np.array([int(_FROM_ESPI.get(c, -1)) for c in range(max(_FROM_ESPI) + 1)])


def qualities_from_espi(codes: np.ndarray) -> np.ndarray:
    """:func:`from_espi` of every element, vectorised: an array of flag values."""
    values = np.asarray(codes, dtype=_I64)
    if values.size and (values.min() < 0 or values.max() >= len(_FROM_ESPI_TABLE)):
        raise InputError("not a QualityOfReading code in the array")
    flags: np.ndarray = _FROM_ESPI_TABLE[values]
    if (flags < 0).any():
        raise InputError("not a QualityOfReading code in the array")
    return flags
