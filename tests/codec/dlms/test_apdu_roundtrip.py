"""Every APDU type round trips through ``encode``/``decode_apdu``; random and mutated bytes
only ever raise DecodeError (and whatever does decode is a valid message that encodes)."""

from __future__ import annotations

import random
from datetime import UTC
from functools import partial
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from meterledger.codec.dlms.apdu import (
    ActionOutcome,
    ActionRequestNextPblock,
    ActionRequestNormal,
    ActionRequestWithFirstPblock,
    ActionRequestWithList,
    ActionRequestWithListAndFirstPblock,
    ActionRequestWithPblock,
    ActionResponseNextPblock,
    ActionResponseNormal,
    ActionResponseWithList,
    ActionResponseWithPblock,
    Apdu,
    AttributeReference,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    ExceptionResponse,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    SelectiveAccess,
    SetRequestNormal,
    SetRequestWithDatablock,
    SetRequestWithFirstDatablock,
    SetRequestWithList,
    SetRequestWithListAndFirstDatablock,
    SetResponseDatablock,
    SetResponseLastDatablock,
    SetResponseLastDatablockWithList,
    SetResponseNormal,
    SetResponseWithList,
    decode_apdu,
    encode,
    entry_access,
    range_access,
)
from meterledger.codec.dlms.codes import (
    ActionResult,
    DataAccessResult,
    ExceptionServiceError,
    ExceptionStateError,
)
from meterledger.codec.dlms.data import INTEGER_RANGES, Data, DataType
from meterledger.codec.dlms.errors import DecodeError

T = TypeVar("T")

# --- values -------------------------------------------------------------------------------

_simple = st.one_of(
    st.just(Data.null()),
    st.booleans().map(partial(Data, DataType.BOOLEAN)),
    *(
        st.integers(low, high).map(partial(Data, kind))
        for kind, (low, high) in INTEGER_RANGES.items()
    ),
    st.binary(max_size=40).map(Data.octets),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20).map(
        Data.visible_string
    ),
)
data = st.recursive(
    _simple,
    lambda inner: (
        st.lists(inner, max_size=4).map(lambda xs: Data.structure(*xs))
        | st.lists(inner, max_size=4).map(lambda xs: Data.array(*xs))
    ),
    max_leaves=12,
)
invokes = st.integers(0, 255)
blocks = st.integers(0, 0xFFFFFFFF)
raw = st.binary(max_size=200)
dars = st.sampled_from(list(DataAccessResult))
action_results = st.sampled_from(list(ActionResult))
get_data_results = data | dars
obis = st.binary(min_size=6, max_size=6)
attributes = st.builds(
    CosemAttributeDescriptor, st.integers(0, 0xFFFF), obis, st.integers(-128, 127)
)
methods = st.builds(CosemMethodDescriptor, st.integers(0, 0xFFFF), obis, st.integers(-128, 127))
accesses = st.none() | st.builds(SelectiveAccess, st.integers(0, 255), data)
profile_accesses = st.builds(
    range_access,
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(timezones=st.just(UTC)),
) | st.builds(entry_access, st.integers(0, 1000), st.integers(0, 1000))
references = st.builds(AttributeReference, attributes, accesses | profile_accesses)
short = partial(st.lists, max_size=5)


@st.composite
def set_with_list(draw: st.DrawFn) -> SetRequestWithList:
    items = tuple(draw(short(references)))
    values = tuple(draw(st.lists(data, min_size=len(items), max_size=len(items))))
    return SetRequestWithList(draw(invokes), items, values)


@st.composite
def action_with_list(draw: st.DrawFn) -> ActionRequestWithList:
    descriptors = tuple(draw(short(methods)))
    values = tuple(draw(st.lists(data, min_size=len(descriptors), max_size=len(descriptors))))
    return ActionRequestWithList(draw(invokes), descriptors, values)


exceptions = st.builds(
    ExceptionResponse,
    st.sampled_from(list(ExceptionStateError)),
    st.sampled_from(
        [
            e
            for e in ExceptionServiceError
            if e is not ExceptionServiceError.INVOCATION_COUNTER_ERROR
        ]
    ),
) | st.builds(
    ExceptionResponse,
    st.sampled_from(list(ExceptionStateError)),
    st.just(ExceptionServiceError.INVOCATION_COUNTER_ERROR),
    blocks,
)
outcomes = st.builds(ActionOutcome, action_results, st.none() | get_data_results)


def tuples(elements: st.SearchStrategy[T]) -> st.SearchStrategy[tuple[T, ...]]:
    return st.lists(elements, max_size=5).map(tuple)


apdus = st.one_of(
    st.builds(GetRequestNormal, invokes, attributes, accesses | profile_accesses),
    st.builds(GetRequestNext, invokes, blocks),
    st.builds(GetRequestWithList, invokes, tuples(references)),
    st.builds(GetResponseNormal, invokes, get_data_results),
    st.builds(GetResponseWithDatablock, invokes, st.booleans(), blocks, raw | dars),
    st.builds(GetResponseWithList, invokes, tuples(get_data_results)),
    st.builds(SetRequestNormal, invokes, attributes, data, accesses),
    st.builds(
        SetRequestWithFirstDatablock, invokes, attributes, st.booleans(), blocks, raw, accesses
    ),
    st.builds(SetRequestWithDatablock, invokes, st.booleans(), blocks, raw),
    set_with_list(),
    st.builds(
        SetRequestWithListAndFirstDatablock,
        invokes,
        tuples(references),
        st.booleans(),
        blocks,
        raw,
    ),
    st.builds(SetResponseNormal, invokes, dars),
    st.builds(SetResponseDatablock, invokes, blocks),
    st.builds(SetResponseLastDatablock, invokes, dars, blocks),
    st.builds(SetResponseLastDatablockWithList, invokes, tuples(dars), blocks),
    st.builds(SetResponseWithList, invokes, tuples(dars)),
    st.builds(ActionRequestNormal, invokes, methods, st.none() | data),
    st.builds(ActionRequestNextPblock, invokes, blocks),
    action_with_list(),
    st.builds(ActionRequestWithFirstPblock, invokes, methods, st.booleans(), blocks, raw),
    st.builds(
        ActionRequestWithListAndFirstPblock, invokes, tuples(methods), st.booleans(), blocks, raw
    ),
    st.builds(ActionRequestWithPblock, invokes, st.booleans(), blocks, raw),
    st.builds(ActionResponseNormal, invokes, action_results, st.none() | get_data_results),
    st.builds(ActionResponseWithPblock, invokes, st.booleans(), blocks, raw),
    st.builds(ActionResponseWithList, invokes, tuples(outcomes)),
    st.builds(ActionResponseNextPblock, invokes, blocks),
    exceptions,
)


@settings(max_examples=600)
@given(apdus)
def test_every_apdu_round_trips(apdu: Apdu) -> None:
    encoded = encode(apdu)
    assert decode_apdu(encoded) == apdu
    assert decode_apdu(bytearray(encoded)) == apdu


@given(apdus)
def test_every_proper_prefix_is_a_decode_error(apdu: Apdu) -> None:
    encoded = encode(apdu)
    for end in range(len(encoded)):
        try:
            decode_apdu(encoded[:end])
        except DecodeError:
            continue
        raise AssertionError(f"{encoded[:end].hex()} decoded, a prefix of {encoded.hex()}")


_TAGS = [0xC0, 0xC1, 0xC3, 0xC4, 0xC5, 0xC7, 0xD8]


@settings(max_examples=1000)
@given(st.sampled_from(_TAGS), st.integers(1, 6), st.binary(max_size=80))
def test_random_bodies_are_only_ever_a_decode_error(tag: int, choice: int, body: bytes) -> None:
    _decodes_or_refuses(bytes((tag, choice)) + body)


@given(st.binary(max_size=60))
def test_random_bytes_are_only_ever_a_decode_error(body: bytes) -> None:
    _decodes_or_refuses(body)


@settings(max_examples=600)
@given(apdus, st.randoms(use_true_random=False), st.integers(1, 4))
def test_mutated_apdus_are_only_ever_a_decode_error(
    apdu: Apdu, rnd: random.Random, flips: int
) -> None:
    mutated = bytearray(encode(apdu))
    for _ in range(flips):
        where = rnd.randrange(len(mutated) + 1)
        action = rnd.randrange(3)
        if action == 0 and where < len(mutated):
            mutated[where] = rnd.randrange(256)
        elif action == 1:
            mutated.insert(where, rnd.randrange(256))
        elif where < len(mutated):
            del mutated[where]
    _decodes_or_refuses(bytes(mutated))


def _decodes_or_refuses(encoded: bytes) -> None:
    try:
        apdu = decode_apdu(encoded)
    except DecodeError:
        return
    # What decodes is a valid message; it re-encodes to bytes that decode to it again (the
    # bytes may differ: a BOOLEAN 0x02 is TRUE and goes back as 0x01).
    assert decode_apdu(encode(apdu)) == apdu
