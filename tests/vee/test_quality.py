"""Quality flags to IEC 61968-9 ReadingQuality codes and to Green Button (ESPI) QualityOfReading,
and back: exact codes for every flag combination that matters."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

from meterledger.core.errors import InputError
from meterledger.core.reading import Quality
from meterledger.vee.quality import (
    ESPI_NAMES,
    IEC_CODES,
    IEC_VALID,
    espi_aggregate_quality,
    espi_codes,
    espi_quality,
    from_espi,
    from_reading_quality,
    qualities_from_espi,
    reading_qualities,
    reading_quality,
)

E = Quality.ESTIMATED
LINEAR = E | Quality.EST_LINEAR
LIKE = E | Quality.EST_LIKE_DAY
REG = E | Quality.EST_REGISTER
OUT = Quality.POWER_OUTAGE
CLOCK = Quality.CLOCK_ADJUSTED
SUS = Quality.SUSPECT
EDIT = Quality.EDITED
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "greenbutton" / "dst_fallback_sample.xml"


# -- IEC 61968-9 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "codes"),
    [
        (Quality.ACTUAL, ("1.0.0",)),
        (E, ("3.8.0",)),
        (LINEAR, ("3.8.0",)),
        (LIKE, ("3.8.0",)),
        (REG, ("3.8.0",)),
        (Quality.EST_REGISTER, ("3.8.0",)),  # a method implies estimated
        (EDIT, ("3.7.0",)),
        (OUT, ("1.2.32",)),
        (CLOCK, ("1.4.9",)),
        (SUS, ("3.5.258",)),
        (LIKE | OUT, ("1.2.32", "3.8.0")),
        (EDIT | LINEAR, ("3.7.0", "3.8.0")),
        (SUS | CLOCK | OUT, ("1.2.32", "1.4.9", "3.5.258")),
        (EDIT | REG | OUT | CLOCK | SUS, ("1.2.32", "1.4.9", "3.5.258", "3.7.0", "3.8.0")),
    ],
)
def test_reading_quality_codes(flags: Quality, codes: tuple[str, ...]) -> None:
    assert reading_quality(flags) == codes
    assert reading_quality(int(flags)) == codes


def test_the_iec_table_for_the_export() -> None:
    assert IEC_VALID == "1.0.0"
    assert dict(IEC_CODES) == {
        CLOCK: "1.4.9",
        OUT: "1.2.32",
        SUS: "3.5.258",
        EDIT: "3.7.0",
        E: "3.8.0",
    }


@pytest.mark.parametrize(
    "flags", [-1, 256, int(LINEAR | Quality.EST_LIKE_DAY), int(Quality.EST_LINEAR | REG)]
)
def test_impossible_flags_are_refused(flags: int) -> None:
    with pytest.raises(InputError):
        reading_quality(flags)
    with pytest.raises(InputError):
        espi_quality(flags)


def test_reading_qualities_of_an_array() -> None:
    flags = np.array([0, int(LINEAR), 0, int(OUT | LIKE), int(EDIT)])
    assert reading_qualities(flags) == (
        ("1.0.0",),
        ("3.8.0",),
        ("1.0.0",),
        ("1.2.32", "3.8.0"),
        ("3.7.0",),
    )
    assert reading_qualities(np.empty(0, np.int64)) == ()
    with pytest.raises(InputError):
        reading_qualities(np.array([0, 3 * 32]))


@pytest.mark.parametrize(
    ("codes", "flags"),
    [
        (["1.0.0"], Quality.ACTUAL),
        ([], Quality.ACTUAL),
        (["3.8.0"], E),
        (["2.8.1001"], E),  # any system's estimate, any index
        (["3.7.0"], EDIT),
        (["1.2.32"], OUT),
        (["1.4.9"], CLOCK),
        (["1.4.64"], CLOCK),
        (["2.4.128"], CLOCK),
        (["3.5.258"], SUS),
        (["3.6.0"], SUS),
        (["3.10.0"], SUS),
        (["3.10.1"], Quality.ACTUAL),  # questionable, then manually accepted
        (["3.11.0", "1.4.5"], Quality.ACTUAL),  # derived; test data
        (["1.2.32", " 3.8.0 "], OUT | E),
    ],
)
def test_from_reading_quality(codes: list[str], flags: Quality) -> None:
    assert from_reading_quality(codes) == flags


@pytest.mark.parametrize("bad", ["3.8", "3.8.x", "", "1.2.3.4"])
def test_malformed_reading_quality_codes_are_refused(bad: str) -> None:
    with pytest.raises(InputError):
        from_reading_quality([bad])


@pytest.mark.parametrize("flag", [E, EDIT, OUT, CLOCK, SUS, EDIT | E | OUT | CLOCK | SUS])
def test_iec_codes_round_trip(flag: Quality) -> None:
    assert from_reading_quality(reading_quality(flag)) == flag


# -- Green Button (ESPI) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "code"),
    [
        (Quality.ACTUAL, 0),
        (OUT, 0),
        (CLOCK, 0),
        (OUT | CLOCK, 0),
        (SUS, 10),
        (SUS | OUT, 10),
        (E, 8),
        (LIKE, 8),
        (REG, 8),
        (LINEAR, 9),
        (Quality.EST_LINEAR, 9),
        (LINEAR | SUS, 9),  # the method before questionable
        (LIKE | OUT, 8),
        (EDIT, 7),
        (EDIT | LINEAR, 7),  # edited before the method
        (EDIT | SUS, 7),
    ],
)
def test_espi_quality_precedence(flags: Quality, code: int) -> None:
    assert espi_quality(flags) == code


@pytest.mark.parametrize(
    ("flags", "code"), [(Quality.ACTUAL, 14), (OUT, 14), (SUS, 10), (LINEAR, 9), (EDIT, 7)]
)
def test_espi_quality_before_validation_is_raw(flags: Quality, code: int) -> None:
    assert espi_quality(flags, validated=False) == code


def test_espi_codes_of_an_array() -> None:
    flags = np.array([0, int(LINEAR), int(LIKE), int(REG), int(SUS), int(EDIT | E), int(OUT)])
    assert espi_codes(flags).tolist() == [0, 9, 8, 8, 10, 7, 0]
    assert espi_codes(flags, validated=False).tolist() == [14, 9, 8, 8, 10, 7, 14]
    assert espi_codes(np.empty(0, np.int64)).tolist() == []
    for bad in ([0, 256], [-1], [int(Quality.EST_LINEAR | Quality.EST_REGISTER)]):
        with pytest.raises(InputError):
            espi_codes(np.array(bad))


def test_espi_aggregate_quality() -> None:
    assert espi_aggregate_quality(np.array([0, 0, int(OUT)])) == 0  # all valid
    assert espi_aggregate_quality(np.array([int(LINEAR), int(LINEAR)])) == 9
    assert espi_aggregate_quality(np.array([0, int(LINEAR)])) == 13  # mixed
    assert espi_aggregate_quality(np.array([int(LIKE), int(REG)])) == 8  # both code 8
    assert espi_aggregate_quality(np.array([0, 0]), validated=False) == 14
    with pytest.raises(ValueError, match="no readings"):
        espi_aggregate_quality(np.empty(0, np.int64))


@pytest.mark.parametrize(
    ("code", "flags"),
    [
        (0, Quality.ACTUAL),
        (7, EDIT),
        (8, LIKE),
        (9, LINEAR),
        (10, SUS),
        (11, Quality.ACTUAL),
        (12, E),
        (13, E),
        (14, Quality.ACTUAL),
        (15, SUS),
        (16, SUS),
        (17, Quality.ACTUAL),
        (18, Quality.ACTUAL),
        (19, Quality.ACTUAL),
    ],
)
def test_from_espi(code: int, flags: Quality) -> None:
    assert from_espi(code) == flags
    assert qualities_from_espi(np.array([code])).tolist() == [int(flags)]


@pytest.mark.parametrize("code", [-1, 1, 2, 3, 4, 5, 6, 20, 255])
def test_unknown_espi_codes_are_refused(code: int) -> None:
    with pytest.raises(InputError):
        from_espi(code)
    with pytest.raises(InputError):
        qualities_from_espi(np.array([0, code]))


@pytest.mark.parametrize("code", [0, 7, 8, 9, 10])
def test_espi_codes_we_write_read_back_the_same(code: int) -> None:
    assert espi_quality(from_espi(code)) == code


def test_the_espi_enumeration() -> None:
    assert sorted(ESPI_NAMES) == [0, *range(7, 20)]
    assert ESPI_NAMES[9] == "estimated using linear interpolation"
    assert ESPI_NAMES[13] == "mixed"


def test_a_green_button_files_reading_qualities_map_to_our_flags() -> None:
    ns = {"espi": "http://naesb.org/espi"}
    root = ElementTree.parse(SAMPLE).getroot()
    codes = [int(q.text or "") for q in root.iterfind(".//espi:ReadingQuality/espi:quality", ns)]
    flags = qualities_from_espi(np.array(codes))
    assert len(flags) == len(codes) >= 4
    assert sorted({Quality(int(f)).to_text() for f in flags}) == [
        "actual",
        "edited",
        "estimated:like-day",
        "suspect",
    ]
