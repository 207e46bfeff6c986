"""A-XDR encoding of the COSEM ``Data`` CHOICE (Blue Book DLMS UA 1000-1 4.1.5, the A-XDR
rules of IEC 61334-6): a tag byte, then

* fixed-length integers and floats big-endian (IEEE 754 for float32/float64), boolean one
  byte (any non-zero byte reads as TRUE; TRUE is sent as 0x01), null-data and dont-care
  nothing;
* octet-string, visible-string, utf8-string: a BER-style length, then the bytes;
  bit-string: the length *in bits*, then the bytes;
* array, structure: the element count (BER-style), then each element with its own tag;
* compact-array: the type description, the length of the contents, then the elements
  packed by that description, without tags or counts;
* date-time, date, time: 12, 5 and 4 octets, without length.

Decoding reads through a :class:`~meterledger.codec.dlms.cursor.Cursor`: bytes that end
early raise :class:`~meterledger.codec.dlms.cursor.NeedData`, and bytes that cannot be an
encoding raise :class:`DecodeError`, never anything else; the cursor moves only past a whole
value. Nesting deeper than ``max_depth`` arrays/structures and more than ``max_elements``
elements in one array, structure or compact array are :class:`DecodeError`: hostile input
cannot exhaust the stack or the memory. Encoding checks every value against its type and
raises :class:`DlmsLocalError` for one that does not fit.

The decoder lives in :mod:`~meterledger.codec.dlms.axdr_decode` and the encoder in
:mod:`~meterledger.codec.dlms.axdr_encode`; this module is their public API, with the
dates and times that most COSEM attributes carry as octet-strings.
"""

from __future__ import annotations

from meterledger.codec.dlms.axdr_decode import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_ELEMENTS,
    MAX_DEPTH_LIMIT,
    DataDecoder,
    decode_data,
    decode_data_bytes,
)
from meterledger.codec.dlms.axdr_encode import encode_data, encode_value
from meterledger.codec.dlms.cosem_time import CosemDate, CosemDateTime, CosemTime
from meterledger.codec.dlms.data import Data

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_ELEMENTS",
    "MAX_DEPTH_LIMIT",
    "DataDecoder",
    "cosem_date_from_octets",
    "cosem_date_to_octets",
    "cosem_datetime_from_octets",
    "cosem_datetime_of",
    "cosem_datetime_to_octets",
    "cosem_time_from_octets",
    "cosem_time_to_octets",
    "decode_data",
    "decode_data_bytes",
    "encode_data",
    "encode_value",
]

# -- dates and times as octet-strings (most COSEM attributes carry them so) ----------------


def cosem_datetime_from_octets(raw: bytes) -> CosemDateTime:
    """The 12 octets of a date-time (:class:`DecodeError` if the length or a field is bad)."""
    return CosemDateTime.from_octets(raw)


def cosem_datetime_to_octets(value: CosemDateTime) -> bytes:
    return value.to_octets()


def cosem_date_from_octets(raw: bytes) -> CosemDate:
    return CosemDate.from_octets(raw)


def cosem_date_to_octets(value: CosemDate) -> bytes:
    return value.to_octets()


def cosem_time_from_octets(raw: bytes) -> CosemTime:
    return CosemTime.from_octets(raw)


def cosem_time_to_octets(value: CosemTime) -> bytes:
    return value.to_octets()


def cosem_datetime_of(d: Data) -> CosemDateTime:
    """A DATE_TIME value, or an OCTET_STRING of 12 holding one."""
    return d.to_cosem_datetime()
