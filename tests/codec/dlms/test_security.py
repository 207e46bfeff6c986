"""Security suite 0: golden vectors from the Green Book, round trips, tampering, replay.

Golden vectors (keys, system title and counter of the Green Book's worked examples)::

    system title 4D4D4D0000BC614E, IC 01234567, IV 4D4D4D0000BC614E01234567
    EK 000102030405060708090A0B0C0D0E0F, AK D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF

* GLO_GET_*: Green Book (DLMS UA 1000-2 Ed. 8), Table 40 "Encoding example:
  global-get-request xDLMS APDU" — get-request for attribute 2 of the Clock, all three
  security controls. Quoted byte for byte in a public DLMS/COSEM security tutorial (its
  section "The complete official worked example", marked verified against Table 40).
* GLO_INITIATE_REQUEST: the Green Book's ciphered AARQ user-information example
  (glo-initiateRequest with a dedicated key), as quoted by dlms-cosem's test suite
  (``TestGlobalCipherInitiateRequest``) and by a Go DLMS library's ``TestCipherData``.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterledger.codec.dlms.errors import DecodeError, DlmsLocalError, SecurityError
from meterledger.codec.dlms.security import (
    AUTHENTICATED,
    AUTHENTICATED_ENCRYPTED,
    ENCRYPTED,
    MAX_INVOCATION_COUNTER,
    CipheredTag,
    InvocationCounter,
    Protection,
    SecurityControl,
    cipher_apdu,
    decipher_any,
    decipher_apdu,
    general_glo_cipher,
    parse_ciphered,
    protect,
    unprotect,
)

SYSTEM_TITLE = bytes.fromhex("4D4D4D0000BC614E")
EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
IC = 0x01234567
OTHER_KEY = bytes.fromhex("FFEEDDCCBBAA99887766554433221100")

GET_CLOCK_TIME = bytes.fromhex("C0010000080000010000FF0200")
GLO_GET_AUTHENTICATED_ENCRYPTED = bytes.fromhex(
    "C81E3001234567411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B"
)
GLO_GET_AUTHENTICATED = bytes.fromhex(
    "C81E1001234567C0010000080000010000FF020006725D910F9221D263877516"
)
GLO_GET_ENCRYPTED = bytes.fromhex("C8122001234567411312FF935A47566827C467BC")

INITIATE_REQUEST = bytes.fromhex("01011000112233445566778899AABBCCDDEEFF0000065F1F0400007E1F04B0")
GLO_INITIATE_REQUEST = bytes.fromhex(
    "21303001234567801302FF8A7874133D414CED25B42534D28DB0047720606B175BD52211BE6841DB20"
    "4D39EE6FDB8E356855"
)

GOLDEN = [
    (AUTHENTICATED_ENCRYPTED, GLO_GET_AUTHENTICATED_ENCRYPTED),
    (AUTHENTICATED, GLO_GET_AUTHENTICATED),
    (ENCRYPTED, GLO_GET_ENCRYPTED),
]
AUTHENTICATED_MODES = [AUTHENTICATED_ENCRYPTED, AUTHENTICATED]


def require_for(security: SecurityControl) -> Protection:
    return security.protection


# --- security control byte ---------------------------------------------------------------


def test_security_control_bits() -> None:
    assert AUTHENTICATED_ENCRYPTED.to_byte() == 0x30
    assert AUTHENTICATED.to_byte() == 0x10
    assert ENCRYPTED.to_byte() == 0x20
    full = SecurityControl(
        authenticated=True, encrypted=True, suite=5, broadcast_key=True, compressed=True
    )
    assert full.to_byte() == 0xF5


@given(st.integers(0, 255))
def test_security_control_round_trips_every_octet(value: int) -> None:
    assert SecurityControl.from_byte(value).to_byte() == value


def test_security_control_rejects_bad_values() -> None:
    with pytest.raises(DlmsLocalError):
        SecurityControl(authenticated=True, encrypted=True, suite=16)
    with pytest.raises(DlmsLocalError):
        SecurityControl.from_byte(256)


# --- golden vectors ----------------------------------------------------------------------


@pytest.mark.parametrize(("security", "expected"), GOLDEN, ids=["0x30", "0x10", "0x20"])
def test_green_book_glo_get_request(security: SecurityControl, expected: bytes) -> None:
    ciphered = cipher_apdu(
        GET_CLOCK_TIME,
        security=security,
        system_title=SYSTEM_TITLE,
        invocation_counter=IC,
        ek=EK,
        ak=AK,
    )
    assert ciphered == expected
    done = decipher_apdu(
        expected, system_title=SYSTEM_TITLE, ek=EK, ak=AK, require=require_for(security)
    )
    assert done.plain_apdu == GET_CLOCK_TIME
    assert done.security == security
    assert done.invocation_counter == IC
    assert done.ciphered_tag is CipheredTag.GLO_GET_REQUEST
    assert not done.dedicated


def test_green_book_protect_is_the_apdu_content() -> None:
    protected = protect(
        GET_CLOCK_TIME,
        security=AUTHENTICATED_ENCRYPTED,
        system_title=SYSTEM_TITLE,
        invocation_counter=IC,
        ek=EK,
        ak=AK,
    )
    assert protected == GLO_GET_AUTHENTICATED_ENCRYPTED[2:]
    assert unprotect(protected, system_title=SYSTEM_TITLE, ek=EK, ak=AK) == (
        AUTHENTICATED_ENCRYPTED,
        IC,
        GET_CLOCK_TIME,
    )


def test_green_book_glo_initiate_request() -> None:
    ciphered = cipher_apdu(
        INITIATE_REQUEST,
        security=AUTHENTICATED_ENCRYPTED,
        system_title=SYSTEM_TITLE,
        invocation_counter=IC,
        ek=EK,
        ak=AK,
    )
    assert ciphered == GLO_INITIATE_REQUEST
    done = decipher_any(GLO_INITIATE_REQUEST, system_title=SYSTEM_TITLE, ek=EK, ak=AK)
    assert done.plain_apdu == INITIATE_REQUEST
    assert done.ciphered_tag is CipheredTag.GLO_INITIATE_REQUEST


def test_general_glo_ciphering_carries_the_same_content() -> None:
    ciphered = general_glo_cipher(
        GET_CLOCK_TIME,
        security=AUTHENTICATED_ENCRYPTED,
        system_title=SYSTEM_TITLE,
        invocation_counter=IC,
        ek=EK,
        ak=AK,
    )
    # tag DB, system title as an octet string, then the Table 40 content.
    assert ciphered == bytes.fromhex("DB08") + SYSTEM_TITLE + GLO_GET_AUTHENTICATED_ENCRYPTED[1:]
    done = decipher_any(ciphered, ek=EK, ak=AK)  # the system title comes from the APDU
    assert done.plain_apdu == GET_CLOCK_TIME
    assert done.system_title == SYSTEM_TITLE
    assert done.ciphered_tag is CipheredTag.GENERAL_GLO_CIPHERING


def test_decipher_any_accepts_both_styles() -> None:
    general = general_glo_cipher(
        GET_CLOCK_TIME,
        security=AUTHENTICATED_ENCRYPTED,
        system_title=SYSTEM_TITLE,
        invocation_counter=IC,
        ek=EK,
        ak=AK,
    )
    for ciphered in (GLO_GET_AUTHENTICATED_ENCRYPTED, general):
        done = decipher_any(ciphered, system_title=SYSTEM_TITLE, ek=EK, ak=AK)
        assert done.plain_apdu == GET_CLOCK_TIME
    assert decipher_any(general, ek=EK, ak=AK).ciphered_tag.general
    with pytest.raises(DecodeError, match="not a service-specific"):
        decipher_apdu(general, system_title=SYSTEM_TITLE, ek=EK, ak=AK)


def test_general_glo_from_another_system_title_is_refused() -> None:
    general = general_glo_cipher(
        GET_CLOCK_TIME,
        security=AUTHENTICATED_ENCRYPTED,
        system_title=SYSTEM_TITLE,
        invocation_counter=IC,
        ek=EK,
        ak=AK,
    )
    with pytest.raises(SecurityError, match="system title"):
        decipher_any(general, system_title=bytes(8), ek=EK, ak=AK)


def test_service_specific_needs_the_peer_system_title() -> None:
    with pytest.raises(DlmsLocalError, match="system title"):
        decipher_any(GLO_GET_AUTHENTICATED_ENCRYPTED, ek=EK, ak=AK)


def test_parse_ciphered_reads_the_header_without_keys() -> None:
    parsed = parse_ciphered(GLO_GET_AUTHENTICATED_ENCRYPTED)
    assert parsed.tag is CipheredTag.GLO_GET_REQUEST
    assert parsed.system_title is None
    assert parsed.security == AUTHENTICATED_ENCRYPTED
    assert parsed.invocation_counter == IC
    assert parsed.protected == GLO_GET_AUTHENTICATED_ENCRYPTED[2:]


# --- tampering, wrong keys, downgrade ----------------------------------------------------


@pytest.mark.parametrize("security", AUTHENTICATED_MODES, ids=["0x30", "0x10"])
def test_tampering_any_protected_byte_is_a_security_error(security: SecurityControl) -> None:
    protected = protect(
        GET_CLOCK_TIME,
        security=security,
        system_title=SYSTEM_TITLE,
        invocation_counter=IC,
        ek=EK,
        ak=AK,
    )
    for position in range(len(protected)):
        for mask in (0x01, 0x10, 0x80, 0xFF):
            altered = bytearray(protected)
            altered[position] ^= mask
            with pytest.raises(SecurityError):
                unprotect(bytes(altered), system_title=SYSTEM_TITLE, ek=EK, ak=AK)


@pytest.mark.parametrize("ciphered", [GLO_GET_AUTHENTICATED_ENCRYPTED, GLO_GET_AUTHENTICATED])
def test_tampering_any_byte_of_the_apdu_never_passes(ciphered: bytes) -> None:
    for position in range(len(ciphered)):
        for value in range(256):
            if value == ciphered[position]:
                continue
            altered = bytearray(ciphered)
            altered[position] = value
            with pytest.raises((SecurityError, DecodeError)):
                decipher_any(bytes(altered), system_title=SYSTEM_TITLE, ek=EK, ak=AK)


@settings(max_examples=200)
@given(
    plain=st.binary(max_size=300),
    position=st.integers(min_value=0),
    mask=st.integers(1, 255),
    security=st.sampled_from(AUTHENTICATED_MODES),
)
def test_tampering_random_messages(
    plain: bytes, position: int, mask: int, security: SecurityControl
) -> None:
    protected = bytearray(
        protect(
            plain,
            security=security,
            system_title=SYSTEM_TITLE,
            invocation_counter=IC,
            ek=EK,
            ak=AK,
        )
    )
    protected[position % len(protected)] ^= mask
    with pytest.raises(SecurityError):
        unprotect(bytes(protected), system_title=SYSTEM_TITLE, ek=EK, ak=AK)


@pytest.mark.parametrize("which", ["ek", "ak", "system_title"])
@pytest.mark.parametrize("security", AUTHENTICATED_MODES, ids=["0x30", "0x10"])
def test_wrong_key_or_system_title_is_a_security_error(
    which: str, security: SecurityControl
) -> None:
    protected = protect(
        GET_CLOCK_TIME,
        security=security,
        system_title=SYSTEM_TITLE,
        invocation_counter=IC,
        ek=EK,
        ak=AK,
    )
    args = {"system_title": SYSTEM_TITLE, "ek": EK, "ak": AK}
    args[which] = OTHER_KEY[: len(args[which])]
    with pytest.raises(SecurityError, match="tag does not verify"):
        unprotect(protected, **args)


def test_encryption_only_is_refused_unless_allowed() -> None:
    # The SC is not authenticated in 0x20; a receiver expecting 0x30 must not take it.
    with pytest.raises(SecurityError, match="AUTHENTICATION"):
        decipher_apdu(GLO_GET_ENCRYPTED, system_title=SYSTEM_TITLE, ek=EK, ak=AK)
    done = decipher_apdu(
        GLO_GET_ENCRYPTED, system_title=SYSTEM_TITLE, ek=EK, ak=AK, require=Protection.ENCRYPTION
    )
    assert done.plain_apdu == GET_CLOCK_TIME


def test_downgrade_of_the_security_control_is_refused() -> None:
    downgraded = bytearray(GLO_GET_AUTHENTICATED_ENCRYPTED)
    downgraded[2] = 0x20  # claim encryption only, hoping the tag is not checked
    with pytest.raises(SecurityError):
        decipher_apdu(bytes(downgraded), system_title=SYSTEM_TITLE, ek=EK, ak=AK)
    with pytest.raises(SecurityError, match="ENCRYPTION"):
        decipher_apdu(
            GLO_GET_AUTHENTICATED,
            system_title=SYSTEM_TITLE,
            ek=EK,
            ak=AK,
            require=Protection.AUTHENTICATED_ENCRYPTION,
        )


@pytest.mark.parametrize("sc", [0x00, 0x31, 0xB0])
def test_unusable_security_controls_are_refused(sc: int) -> None:
    # no protection, suite 1, compression: none of them can be processed here.
    altered = bytes((sc,)) + GLO_GET_AUTHENTICATED_ENCRYPTED[3:]
    with pytest.raises(SecurityError):
        unprotect(altered, system_title=SYSTEM_TITLE, ek=EK, ak=AK, require=Protection.NONE)


def test_key_selection_follows_the_tag_and_key_set_bit() -> None:
    broadcast = SecurityControl(authenticated=True, encrypted=True, broadcast_key=True)
    common = {"system_title": SYSTEM_TITLE, "invocation_counter": IC, "ak": AK}
    to_many = cipher_apdu(GET_CLOCK_TIME, security=broadcast, ek=OTHER_KEY, **common)
    with pytest.raises(SecurityError, match="broadcast"):
        decipher_apdu(to_many, system_title=SYSTEM_TITLE, ek=EK, ak=AK)
    done = decipher_apdu(to_many, system_title=SYSTEM_TITLE, ek=EK, ak=AK, broadcast_ek=OTHER_KEY)
    assert done.plain_apdu == GET_CLOCK_TIME
    assert done.security.broadcast_key

    dedicated = cipher_apdu(
        GET_CLOCK_TIME, security=AUTHENTICATED_ENCRYPTED, ek=OTHER_KEY, dedicated=True, **common
    )
    assert dedicated[0] == CipheredTag.DED_GET_REQUEST
    with pytest.raises(SecurityError, match="dedicated"):
        decipher_apdu(dedicated, system_title=SYSTEM_TITLE, ek=EK, ak=AK)
    done = decipher_apdu(dedicated, system_title=SYSTEM_TITLE, ek=EK, ak=AK, dedicated_ek=OTHER_KEY)
    assert done.dedicated
    assert done.plain_apdu == GET_CLOCK_TIME


def test_ciphered_tag_must_match_the_plain_service() -> None:
    # A correctly protected set-request relabelled as glo-get-request.
    protected = protect(
        bytes.fromhex("C1") + GET_CLOCK_TIME[1:],
        security=AUTHENTICATED_ENCRYPTED,
        system_title=SYSTEM_TITLE,
        invocation_counter=IC,
        ek=EK,
        ak=AK,
    )
    relabelled = bytes((CipheredTag.GLO_GET_REQUEST, len(protected))) + protected
    with pytest.raises(DecodeError, match="0xC1"):
        decipher_apdu(relabelled, system_title=SYSTEM_TITLE, ek=EK, ak=AK)


# --- malformed input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes.fromhex("C8"),
        bytes.fromhex("C81E30"),  # truncated content
        GLO_GET_AUTHENTICATED_ENCRYPTED + b"\x00",  # trailing octet
        bytes.fromhex("C0010000080000010000FF0200"),  # plain, not ciphered
        bytes.fromhex("C8033001"),  # content shorter than the security header
        bytes.fromhex("C8053001234567"),  # authenticated but no room for a tag
        bytes.fromhex("DB04") + SYSTEM_TITLE[:4] + GLO_GET_AUTHENTICATED_ENCRYPTED[1:],
        bytes.fromhex("C885") + bytes(10),  # unsupported length form
    ],
)
def test_malformed_apdus_are_decode_errors(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decipher_any(data, system_title=SYSTEM_TITLE, ek=EK, ak=AK)


@settings(max_examples=500)
@given(st.binary(max_size=80))
def test_fuzzed_input_raises_only_protocol_errors(data: bytes) -> None:
    # Anything else (IndexError, struct.error, ValueError ...) escapes and fails the test.
    try:
        done = decipher_any(data, system_title=SYSTEM_TITLE, ek=EK, ak=AK, require=Protection.NONE)
    except (DecodeError, SecurityError):
        return
    # Only encryption-only content can pass without a key check; it must still be whole.
    assert done.security == ENCRYPTED
    assert done.ciphered_tag == data[0]
    assert done.plain_apdu


@settings(max_examples=300)
@given(
    tag=st.sampled_from([t for t in CipheredTag if not t.dedicated]),
    body=st.binary(max_size=60),
)
def test_fuzzed_content_behind_a_valid_header(tag: CipheredTag, body: bytes) -> None:
    # Well-framed APDUs with random content reach the cryptography, not just the framing.
    title = (bytes((8,)) + SYSTEM_TITLE) if tag.general else b""
    data = bytes((tag,)) + title + bytes((len(body),)) + body
    try:
        done = decipher_any(data, system_title=SYSTEM_TITLE, ek=EK, ak=AK)
    except (DecodeError, SecurityError):
        return
    raise AssertionError(f"random content deciphered: {done}")


def test_protect_refuses_what_it_cannot_send() -> None:
    common = {"system_title": SYSTEM_TITLE, "invocation_counter": IC, "ek": EK, "ak": AK}
    none = SecurityControl(authenticated=False, encrypted=False)
    with pytest.raises(DlmsLocalError, match="neither"):
        protect(b"x", security=none, **common)
    with pytest.raises(DlmsLocalError, match="suite"):
        protect(b"x", security=SecurityControl(True, True, suite=2), **common)
    with pytest.raises(DlmsLocalError, match="compressed"):
        protect(b"x", security=SecurityControl(True, True, compressed=True), **common)
    with pytest.raises(DlmsLocalError, match="system title"):
        protect(b"x", security=AUTHENTICATED, **{**common, "system_title": b"short"})
    with pytest.raises(DlmsLocalError, match="ek"):
        protect(b"x", security=AUTHENTICATED_ENCRYPTED, **{**common, "ek": bytes(32)})
    with pytest.raises(DlmsLocalError, match="invocation counter"):
        protect(b"x", security=AUTHENTICATED, **{**common, "invocation_counter": 2**32})
    with pytest.raises(DlmsLocalError, match="0xC8"):
        cipher_apdu(GLO_GET_AUTHENTICATED, security=AUTHENTICATED, **common)  # ciphered already
    with pytest.raises(DlmsLocalError, match="0xD8"):
        cipher_apdu(bytes.fromhex("D8"), security=AUTHENTICATED, **common)  # exception-response


# --- round trips -------------------------------------------------------------------------

titles = st.binary(min_size=8, max_size=8)
keys = st.binary(min_size=16, max_size=16)
counters = st.integers(0, MAX_INVOCATION_COUNTER)
modes = st.sampled_from([AUTHENTICATED_ENCRYPTED, AUTHENTICATED, ENCRYPTED])
plain_tags = st.sampled_from([1, 5, 6, 8, 12, 13, 14, 22, 24, 192, 193, 194, 195, 196, 197, 199])


@given(plain=st.binary(max_size=600), title=titles, ic=counters, ek=keys, ak=keys, mode=modes)
def test_protect_round_trip(
    plain: bytes, title: bytes, ic: int, ek: bytes, ak: bytes, mode: SecurityControl
) -> None:
    protected = protect(
        plain, security=mode, system_title=title, invocation_counter=ic, ek=ek, ak=ak
    )
    extra = 12 if mode.authenticated else 0
    assert len(protected) == 5 + len(plain) + extra
    assert protected[1:5] == ic.to_bytes(4, "big")
    if mode.encrypted and len(plain) >= 16:
        assert plain not in protected
    result = unprotect(protected, system_title=title, ek=ek, ak=ak, require=mode.protection)
    assert result == (mode, ic, plain)


@given(
    tag=plain_tags,
    body=st.binary(max_size=300),
    title=titles,
    ic=counters,
    mode=modes,
    dedicated=st.booleans(),
    general=st.booleans(),
)
def test_apdu_round_trip(
    tag: int,
    body: bytes,
    title: bytes,
    ic: int,
    mode: SecurityControl,
    dedicated: bool,
    general: bool,
) -> None:
    plain = bytes((tag,)) + body
    wrap = general_glo_cipher if general else cipher_apdu
    ciphered = wrap(
        plain,
        security=mode,
        system_title=title,
        invocation_counter=ic,
        ek=OTHER_KEY if dedicated else EK,
        ak=AK,
        dedicated=dedicated,
    )
    done = decipher_any(
        ciphered,
        system_title=title,
        ek=EK,
        ak=AK,
        dedicated_ek=OTHER_KEY,
        require=mode.protection,
    )
    assert done.plain_apdu == plain
    assert done.invocation_counter == ic
    assert done.dedicated is dedicated
    assert done.ciphered_tag.general is general
    assert parse_ciphered(ciphered).security == mode


def test_long_apdus_use_the_long_length_form() -> None:
    plain = bytes.fromhex("C4") + bytes(1000)
    ciphered = cipher_apdu(
        plain,
        security=AUTHENTICATED_ENCRYPTED,
        system_title=SYSTEM_TITLE,
        invocation_counter=IC,
        ek=EK,
        ak=AK,
    )
    assert ciphered[:4] == bytes.fromhex("CC8203FA")  # 1 + 4 + 1001 + 12 = 1018 = 0x3FA
    assert len(ciphered) == 4 + 1018
    done = decipher_apdu(ciphered, system_title=SYSTEM_TITLE, ek=EK, ak=AK)
    assert done.plain_apdu == plain


# --- invocation counters -----------------------------------------------------------------


def test_sender_counter_continues_from_the_stored_value() -> None:
    counter = InvocationCounter(last=41)
    assert [counter.next(), counter.next()] == [42, 43]
    assert counter.last == 43
    assert InvocationCounter().next() == 0


def test_sender_counter_exhaustion() -> None:
    counter = InvocationCounter(last=MAX_INVOCATION_COUNTER - 1)
    assert counter.next() == MAX_INVOCATION_COUNTER
    assert counter.exhausted
    with pytest.raises(DlmsLocalError, match="exhausted"):
        counter.next()
    assert counter.last == MAX_INVOCATION_COUNTER  # unchanged by the refusal


def test_receiver_rejects_replayed_and_older_counters() -> None:
    counter = InvocationCounter()
    counter.accept(0)
    counter.accept(10)
    with pytest.raises(SecurityError, match="replayed"):
        counter.accept(10)
    with pytest.raises(SecurityError, match="replayed"):
        counter.accept(3)
    assert counter.last == 10
    counter.accept(11)
    assert counter.last == 11


def test_receiver_check_does_not_commit() -> None:
    counter = InvocationCounter(last=5)
    counter.check(9)
    assert counter.last == 5
    with pytest.raises(SecurityError):
        counter.check(5)


def test_counter_values_are_32_bit() -> None:
    with pytest.raises(DlmsLocalError):
        InvocationCounter(last=2**32)
    with pytest.raises(DlmsLocalError):
        InvocationCounter().accept(-1)


@given(st.lists(counters, min_size=1, max_size=30))
def test_receiver_accepts_exactly_the_increasing_values(values: list[int]) -> None:
    counter = InvocationCounter()
    accepted = []
    for value in values:
        try:
            counter.accept(value)
        except SecurityError:
            assert accepted and value <= accepted[-1]
        else:
            assert not accepted or value > accepted[-1]
            accepted.append(value)
    assert counter.last == accepted[-1]


def test_replayed_apdu_is_caught_by_the_counter() -> None:
    peer = InvocationCounter()
    done = decipher_apdu(GLO_GET_AUTHENTICATED_ENCRYPTED, system_title=SYSTEM_TITLE, ek=EK, ak=AK)
    peer.accept(done.invocation_counter)
    again = decipher_apdu(GLO_GET_AUTHENTICATED_ENCRYPTED, system_title=SYSTEM_TITLE, ek=EK, ak=AK)
    with pytest.raises(SecurityError, match="replayed"):
        peer.accept(again.invocation_counter)
