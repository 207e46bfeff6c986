"""The HDLC link state machine: a client and a server wired together in memory, published
exchanges replayed, segmentation with RRs both ways, recovery, and local misuse."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterledger.codec.dlms.cursor import NEED_DATA
from meterledger.codec.dlms.errors import DlmsLocalError
from meterledger.codec.dlms.hdlc_frame import (
    FrameKind,
    FrameParser,
    HdlcAddress,
    HdlcFrame,
    HdlcParameters,
    encode_frame,
)
from meterledger.codec.dlms.hdlc_link import (
    Connected,
    Data,
    Disconnected,
    Event,
    FrameRejected,
    HdlcLink,
    RejectReason,
)
from meterledger.codec.dlms.hdlc_state import TRANSITIONS, LinkAction, LinkState, Role

K = FrameKind
CLIENT_ADDRESS = HdlcAddress(16)
SERVER_ADDRESS = HdlcAddress(1, 17, 4)


def hx(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# Gyozo Kmethy, "Examples for DLMS/COSEM information exchange" (DLMS UA): client 16 to server
# 1/17 on four bytes, default parameters.
KM_SNRM = hx("7EA00A00020023219318717E")
KM_UA = hx("7EA023210002002373F6C58180140502008006020080070400000001080400000001CE6A7E")
KM_AARQ = hx(
    "7EA02E0002002321107ECBE6E600601DA109060760857405080101BE10040E01000000065F1F040000301DFFFF"
    "D4C57E"
)
KM_AARQ_APDU = hx("601DA109060760857405080101BE10040E01000000065F1F040000301DFFFF")


def client(
    params: HdlcParameters | None = None, *, max_apdu: int = 65535, max_buffer: int = 65536
) -> HdlcLink:
    return HdlcLink(
        Role.CLIENT,
        local_address=CLIENT_ADDRESS,
        peer_address=SERVER_ADDRESS,
        params=params or HdlcParameters(),
        max_apdu=max_apdu,
        max_buffer=max_buffer,
    )


def server(params: HdlcParameters | None = None, *, max_apdu: int = 65535) -> HdlcLink:
    return HdlcLink(
        Role.SERVER,
        local_address=SERVER_ADDRESS,
        params=params or HdlcParameters(),
        max_apdu=max_apdu,
    )


def feed(link: HdlcLink, data: bytes, chunk: int = 0) -> list[Event]:
    """Deliver ``data`` (in pieces of ``chunk`` bytes, or at once) and collect the events."""
    events: list[Event] = []
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] if chunk else [data]
    for piece in pieces:
        link.receive_data(piece)
        while (event := link.next_event()) is not NEED_DATA:
            assert isinstance(event, Connected | Data | Disconnected | FrameRejected)
            events.append(event)
    return events


def frames_in(wire: bytes) -> list[HdlcFrame]:
    parser = FrameParser()
    parser.receive_data(wire)
    out = []
    while isinstance(frame := parser.next_frame(), HdlcFrame):
        out.append(frame)
    return out


class Wire:
    """Shuttles bytes between a client and a server until both are quiet. The server answers
    each ``Data`` with ``respond(apdu)`` when given. Every transfer is logged."""

    def __init__(self, c: HdlcLink, s: HdlcLink, chunk: int = 0) -> None:
        self.c, self.s, self.chunk = c, s, chunk
        self.log: list[tuple[str, HdlcFrame]] = []
        self.client_events: list[Event] = []
        self.server_events: list[Event] = []

    def run(self, to_server: bytes, respond: Callable[[bytes], bytes] | None = None) -> None:
        for _ in range(10_000):
            if not to_server:
                return
            self.log += [("c>s", f) for f in frames_in(to_server)]
            events = feed(self.s, to_server, self.chunk)
            self.server_events += events
            to_client = self.s.data_to_send()
            for event in events:
                if isinstance(event, Data) and respond is not None:
                    to_client += b"".join(self.s.send_apdu(respond(event.apdu)))
            if not to_client:
                return
            self.log += [("s>c", f) for f in frames_in(to_client)]
            self.client_events += feed(self.c, to_client, self.chunk)
            to_server = self.c.data_to_send()
        raise AssertionError("the links never went quiet")

    def connect(self) -> None:
        self.run(self.c.connect())
        assert self.c.state is LinkState.CONNECTED and self.s.state is LinkState.CONNECTED
        self.client_events.clear()
        self.server_events.clear()
        self.log.clear()


def connected_pair(**kwargs: HdlcParameters) -> Wire:
    wire = Wire(client(kwargs.get("proposal")), server(kwargs.get("limits")))
    wire.connect()
    return wire


# --- published exchanges ------------------------------------------------------------------


def test_snrm_and_ua_are_the_published_frames() -> None:
    c, s = client(), server()
    assert c.connect() == KM_SNRM
    assert feed(s, KM_SNRM) == [Connected(HdlcParameters(), CLIENT_ADDRESS)]
    assert s.data_to_send() == KM_UA
    assert feed(c, KM_UA) == [Connected(HdlcParameters(), SERVER_ADDRESS)]
    assert c.data_to_send() == b""
    assert c.state is s.state is LinkState.CONNECTED


def test_first_request_is_the_published_aarq_frame() -> None:
    wire = connected_pair()
    assert wire.c.send_apdu(KM_AARQ_APDU) == [KM_AARQ]
    assert feed(wire.s, KM_AARQ) == [Data(KM_AARQ_APDU)]


def test_published_aarq_and_aare_of_an_hpl_meter() -> None:
    # gurux.fi/node/24607: client 32 and server 1, both on one byte.
    aarq = hx(
        "7E A0 5F 03 41 10 07 E2 E6 E6 00 60 51 A1 09 06 07 60 85 74 05 08 01 03 A6 0A 04 08 48"
        " 50 4C 37 32 39 39 38 8A 02 07 80 8B 07 60 85 74 05 08 02 01 AC 12 80 10 31 31 31 31"
        " 31 31 31 31 31 31 31 31 31 31 31 31 BE 17 04 15 21 13 20 00 00 00 01 E9 C5 31 32 60"
        " 76 62 DC 7A 94 A6 14 39 BF BE B5 7E"
    )
    aare = hx(
        "7E A0 4A 41 03 30 EB A8 E6 E7 00 61 3C A1 09 06 07 60 85 74 05 08 01 03 A2 03 02 01"
        " 00 A3 05 A1 03 02 01 00 A4 0A 04 08 48 50 4C 00 00 10 F4 47 BE 17 04 15 28 13 20"
        " 00 00 00 00 83 07 05 F0 35 94 EE E1 A9 6C 27 CC A0 51 76 5F 7E"
    )
    c = HdlcLink(Role.CLIENT, local_address=HdlcAddress(32), peer_address=HdlcAddress(1))
    s = HdlcLink(Role.SERVER, local_address=HdlcAddress(1))
    Wire(c, s).run(c.connect())
    assert c.send_apdu(aarq[11:-3]) == [aarq]
    (event,) = feed(c, aare)
    assert event == Data(aare[11:-3])
    assert isinstance(event, Data) and event.apdu[:2] == b"\x61\x3c"  # AARE tag, no LLC


def test_segmented_push_of_an_iskra_meter_is_reassembled() -> None:
    # github.com/arendst/Tasmota issue 8790: three UI frames, S=1, S=1, S=0, no connection.
    frames = hx(
        "7EA8A4CF0223039996E6E7000F0004022C0C07E50B020215330000FFC4000210020209060000600100FF"
        "09083738333434353337020209060000600101FF0906313331333034020309060101010700FF06000000"
        "0002020F00161B020309060101020700FF060000000002020F00161B020309060101010800FF060000E3"
        "A402020F00161E020309060101020800FF0600000BDE02020F00161E02030906010020070002C87E"
        "7EA8A4CF0223039996FF12092002020FFF1623020309060100340700FF12000002020FFF162302030906"
        "0100480700FF12000002020FFF16230203090601001F0700FF12000002020FFE16210203090601003307"
        "00FF12000002020FFE1621020309060100470700FF12000002020FFE1621020309060101010801FF0600"
        "00848102020F00161E020309060101010802FF0600005F2302020F00161E02030906010102E7517E"
        "7EA02DCF022313717C0801FF060000000002020F00161E020309060101020802FF0600000BDE02020F00"
        "161EE3F67E"
    )
    listener = HdlcLink(
        Role.CLIENT, local_address=HdlcAddress(0x67), peer_address=HdlcAddress(1, 17)
    )
    (event,) = feed(listener, frames, chunk=7)
    assert isinstance(event, Data)
    apdu = event.apdu
    assert len(apdu) == 154 + 154 + 35 - 3
    assert apdu[:5] == hx("0F0004022C")  # data-notification, invocation id
    assert apdu.endswith(hx("0BDE02020F00161E"))
    assert listener.data_to_send() == b""  # UI frames are never acknowledged


# --- segmentation ------------------------------------------------------------------------


def test_a_3000_byte_apdu_segmented_both_ways() -> None:
    wire = connected_pair()
    request = bytes(range(256)) * 11 + bytes(184)  # 3000 bytes
    response = request[::-1]
    wire.run(wire.c.send_apdu(request)[0], respond=lambda apdu: response)

    assert wire.server_events == [Data(request)]
    assert wire.client_events == [Data(response)]
    segments = -(-(3 + 3000) // 128)  # LLC + APDU in 128-byte information fields: 24
    for direction in ("c>s", "s>c"):
        sent = [f for d, f in wire.log if d == direction and f.kind is K.I]
        assert len(sent) == segments
        assert [f.segmented for f in sent] == [True] * (segments - 1) + [False]
        assert all(len(f.info) == 128 for f in sent[:-1]) and len(sent[-1].info) == 3003 % 128
        assert all(f.poll_final for f in sent)
        assert [f.send_seq for f in sent] == [i % 8 for i in range(segments)]
    client_rrs = [f for d, f in wire.log if d == "c>s" and f.kind is K.RR]
    server_rrs = [f for d, f in wire.log if d == "s>c" and f.kind is K.RR]
    assert [f.recv_seq for f in server_rrs] == [(i + 1) % 8 for i in range(segments - 1)]
    assert [f.recv_seq for f in client_rrs] == [(i + 1) % 8 for i in range(segments - 1)]
    assert [d for d, _ in wire.log] == ["c>s", "s>c"] * (2 * segments - 1)
    # the request's first segment starts with the request LLC, the response's with its own
    first_out = next(f for d, f in wire.log if d == "c>s" and f.kind is K.I)
    first_back = next(f for d, f in wire.log if d == "s>c" and f.kind is K.I)
    assert first_out.info[:3] == b"\xe6\xe6\x00" and first_back.info[:3] == b"\xe6\xe7\x00"


def test_negotiated_sizes_are_used_on_each_side() -> None:
    proposal = HdlcParameters(max_info_transmit=512, max_info_receive=1024)
    limits = HdlcParameters(max_info_transmit=256, max_info_receive=2030)
    c, s = client(proposal), server(limits)
    snrm = c.connect()
    assert HdlcParameters.decode(frames_in(snrm)[0].info) == proposal
    assert feed(s, snrm) == [Connected(HdlcParameters(256, 512), CLIENT_ADDRESS)]
    ua = s.data_to_send()
    assert HdlcParameters.decode(frames_in(ua)[0].info) == HdlcParameters(256, 512)
    assert feed(c, ua) == [Connected(HdlcParameters(512, 256), SERVER_ADDRESS)]
    wire = Wire(c, s)
    wire.run(c.send_apdu(bytes(2000))[0], respond=lambda apdu: bytes(2000))
    assert {len(f.info) for d, f in wire.log if d == "c>s" and f.kind is K.I} == {512, 2003 - 1536}
    assert {len(f.info) for d, f in wire.log if d == "s>c" and f.kind is K.I} == {256, 2003 % 256}


def test_a_server_response_waits_for_the_poll() -> None:
    wire = connected_pair()
    assert wire.s.send_apdu(b"\x01") == []  # no request pending: the client has not polled
    wire.run(wire.c.poll())
    assert wire.client_events == [Data(b"\x01")]


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 2500),
    st.integers(1, 2500),
    st.integers(16, 400),
    st.integers(16, 400),
    st.integers(0, 40),
)
def test_any_sizes_and_any_chunking_round_trip(
    request_size: int, response_size: int, client_info: int, server_info: int, chunk: int
) -> None:
    c = client(HdlcParameters(max_info_transmit=client_info, max_info_receive=server_info))
    s = server(HdlcParameters(max_info_transmit=2030, max_info_receive=2030))
    wire = Wire(c, s, chunk)
    wire.connect()
    request = bytes(i * 7 % 251 for i in range(request_size))
    response = bytes(i * 3 % 241 for i in range(response_size))
    for _ in range(2):  # twice, so sequence numbers carry on from the first exchange
        wire.run(c.send_apdu(request)[0], respond=lambda apdu: response)
    assert wire.server_events == [Data(request)] * 2
    assert wire.client_events == [Data(response)] * 2
    assert all(len(f.info) <= client_info for d, f in wire.log if d == "c>s")
    assert all(len(f.info) <= server_info for d, f in wire.log if d == "s>c" and f.kind is K.I)


# --- disconnection -----------------------------------------------------------------------


def test_disc_and_ua() -> None:
    wire = connected_pair()
    disc = wire.c.disconnect()
    assert frames_in(disc) == [HdlcFrame(K.DISC, SERVER_ADDRESS, CLIENT_ADDRESS)]
    assert wire.c.state is LinkState.DISCONNECTING
    wire.run(disc)
    assert wire.server_events == [Disconnected(K.DISC)]
    assert wire.client_events == [Disconnected(K.UA)]
    assert [f.kind for _, f in wire.log] == [K.DISC, K.UA]
    assert wire.c.state is wire.s.state is LinkState.DISCONNECTED
    # A disconnected server answers anything but SNRM with DM.
    late = encode_frame(HdlcFrame(K.I, SERVER_ADDRESS, CLIENT_ADDRESS, info=b"\xe6\xe6\x00\x01"))
    (event,) = feed(wire.s, late)
    assert isinstance(event, FrameRejected) and event.reason is RejectReason.UNEXPECTED
    assert frames_in(wire.s.data_to_send()) == [HdlcFrame(K.DM, CLIENT_ADDRESS, SERVER_ADDRESS)]
    # ... and a DISC with DM, without an event
    assert feed(wire.s, disc) == []
    assert frames_in(wire.s.data_to_send())[0].kind is K.DM


def test_dm_refuses_the_connection() -> None:
    c = client()
    c.connect()
    dm = encode_frame(HdlcFrame(K.DM, CLIENT_ADDRESS, SERVER_ADDRESS))
    assert feed(c, dm) == [Disconnected(K.DM)]
    assert c.state is LinkState.DISCONNECTED


def test_a_new_snrm_resets_the_sequence_numbers() -> None:
    wire = connected_pair()
    wire.run(wire.c.send_apdu(b"\x01")[0], respond=lambda apdu: b"\x02")
    wire.run(wire.c.connect())
    assert wire.server_events[-1] == Connected(HdlcParameters(), CLIENT_ADDRESS)
    (frame,) = frames_in(wire.c.send_apdu(b"\x03")[0])
    assert (frame.send_seq, frame.recv_seq) == (0, 0)


# --- errors from the peer ----------------------------------------------------------------


def test_out_of_sequence_i_frame_is_answered_with_rr_repeating_vr() -> None:
    wire = connected_pair()
    bad = encode_frame(
        HdlcFrame(K.I, SERVER_ADDRESS, CLIENT_ADDRESS, send_seq=3, info=b"\xe6\xe6\x00\x01")
    )
    (event,) = feed(wire.s, bad)
    assert isinstance(event, FrameRejected) and event.reason is RejectReason.OUT_OF_SEQUENCE
    (rr,) = frames_in(wire.s.data_to_send())
    assert (rr.kind, rr.recv_seq, rr.poll_final) == (K.RR, 0, True)
    assert encode_frame(rr)[3:9] == hx("21 00020023 11")  # to the client, RR N(R)=0 F=1


def test_a_lost_response_is_resent_after_poll() -> None:
    wire = connected_pair()
    feed(wire.s, wire.c.send_apdu(b"\x01")[0])
    lost = b"".join(wire.s.send_apdu(b"\x02"))
    wire.run(wire.c.poll())  # the caller's timer ran out
    assert wire.client_events == [Data(b"\x02")]
    assert wire.log[-1] == ("s>c", frames_in(lost)[0])


def test_a_lost_request_is_resent_after_poll() -> None:
    wire = connected_pair()
    lost = wire.c.send_apdu(b"\x01")[0]
    wire.run(wire.c.poll(), respond=lambda apdu: apdu + b"!")
    assert wire.server_events == [Data(b"\x01")]
    assert wire.client_events == [Data(b"\x01!")]
    assert ("c>s", frames_in(lost)[0]) in wire.log


def test_a_lost_rr_during_a_segmented_request() -> None:
    wire = connected_pair()
    request = bytes(300)  # three segments
    feed(wire.s, wire.c.send_apdu(request)[0])
    assert frames_in(wire.s.data_to_send())[0].kind is K.RR  # ... which never arrives
    wire.run(wire.c.poll(), respond=lambda apdu: b"ok")
    assert wire.server_events == [Data(request)]
    assert wire.client_events == [Data(b"ok")]


def test_rnr_holds_the_next_segment_until_a_poll() -> None:
    wire = connected_pair()
    request = bytes(300)  # three segments
    feed(wire.s, wire.c.send_apdu(request)[0])
    wire.s.data_to_send()  # the server's RR is replaced by an RNR: "busy"
    rnr = encode_frame(HdlcFrame(K.RNR, CLIENT_ADDRESS, SERVER_ADDRESS, recv_seq=1))
    assert feed(wire.c, rnr) == []
    assert wire.c.data_to_send() == b""  # nothing goes while the server is busy
    with pytest.raises(DlmsLocalError, match="still being sent"):
        wire.c.send_apdu(b"\x01")  # and a new APDU may not overtake the pending segments


def test_rnr_then_poll_resumes_the_segments() -> None:
    wire = connected_pair()
    request = bytes(300)
    feed(wire.s, wire.c.send_apdu(request)[0])
    wire.s.data_to_send()
    feed(wire.c, encode_frame(HdlcFrame(K.RNR, CLIENT_ADDRESS, SERVER_ADDRESS, recv_seq=1)))
    wire.run(wire.c.poll(), respond=lambda apdu: b"done")
    assert wire.server_events == [Data(request)]
    assert wire.client_events == [Data(b"done")]


def test_corrupt_bytes_are_reported_and_the_link_carries_on() -> None:
    wire = connected_pair()
    good = wire.c.send_apdu(b"\x01")[0]
    damaged = good[:-3] + bytes((good[-3] ^ 0xFF,)) + good[-2:]
    events = feed(wire.s, damaged + good)
    assert [type(e) for e in events] == [FrameRejected, Data]
    assert isinstance(events[0], FrameRejected) and events[0].reason is RejectReason.CORRUPT


def test_frames_for_another_station_are_rejected() -> None:
    wire = connected_pair()
    other = encode_frame(HdlcFrame(K.RR, HdlcAddress(1, 18, 4), CLIENT_ADDRESS))
    (event,) = feed(wire.s, other)
    assert isinstance(event, FrameRejected) and event.reason is RejectReason.WRONG_ADDRESS
    assert wire.s.data_to_send() == b""


def test_information_without_llc_is_rejected() -> None:
    wire = connected_pair()
    frame = encode_frame(HdlcFrame(K.I, SERVER_ADDRESS, CLIENT_ADDRESS, info=b"\xc0\x01\xc1"))
    (event,) = feed(wire.s, frame)
    assert isinstance(event, FrameRejected) and event.reason is RejectReason.BAD_LLC


def test_an_apdu_longer_than_max_apdu_is_dropped_once() -> None:
    wire = Wire(client(), server(max_apdu=200))
    wire.connect()
    wire.run(wire.c.send_apdu(bytes(500))[0])
    assert [e.reason for e in wire.server_events if isinstance(e, FrameRejected)] == [
        RejectReason.TOO_LONG
    ]
    assert not any(isinstance(e, Data) for e in wire.server_events)
    assert len([f for d, f in wire.log if d == "s>c" and f.kind is K.RR]) == 3  # 4 segments
    wire.run(wire.c.poll())  # the server has nothing to say; the client gets its turn back
    wire.run(wire.c.send_apdu(bytes(100))[0])
    assert wire.server_events[-1] == Data(bytes(100))


def test_endless_ui_segments_are_bounded_by_max_apdu() -> None:
    listener = HdlcLink(
        Role.CLIENT, local_address=HdlcAddress(0x67), peer_address=HdlcAddress(1, 17), max_apdu=300
    )
    segment = encode_frame(
        HdlcFrame(K.UI, HdlcAddress(0x67), HdlcAddress(1, 17), segmented=True, info=bytes(100))
    )
    events = feed(listener, segment * 10)
    assert [e.reason for e in events if isinstance(e, FrameRejected)] == [RejectReason.TOO_LONG] * 2


def test_frmr_and_bad_ua_parameters_are_reported() -> None:
    c = client()
    c.connect()
    bad_ua = encode_frame(HdlcFrame(K.UA, CLIENT_ADDRESS, SERVER_ADDRESS, info=b"\x81\x80\x05"))
    (event,) = feed(c, bad_ua)
    assert isinstance(event, FrameRejected) and event.reason is RejectReason.UNDECODABLE
    assert c.state.value == "connecting"
    feed(c, KM_UA)
    frmr = encode_frame(HdlcFrame(K.FRMR, CLIENT_ADDRESS, SERVER_ADDRESS, info=b"\x10\x00\x01"))
    (event,) = feed(c, frmr)
    assert isinstance(event, FrameRejected) and event.reason is RejectReason.PEER_REJECT
    assert c.state is LinkState.CONNECTED


def test_snrm_with_bad_parameters_is_refused_with_dm() -> None:
    s = server()
    snrm = encode_frame(HdlcFrame(K.SNRM, SERVER_ADDRESS, CLIENT_ADDRESS, info=b"\x82"))
    (event,) = feed(s, snrm)
    assert isinstance(event, FrameRejected) and event.reason is RejectReason.UNDECODABLE
    assert frames_in(s.data_to_send())[0].kind is K.DM
    assert s.state is LinkState.DISCONNECTED


# --- local misuse ------------------------------------------------------------------------


def test_sending_before_connecting_is_a_local_error_and_ends_in_error() -> None:
    c = client()
    with pytest.raises(DlmsLocalError):
        c.send_apdu(b"\x01")
    assert c.state is LinkState.ERROR
    with pytest.raises(DlmsLocalError):
        c.next_event()
    with pytest.raises(DlmsLocalError):
        c.receive_data(b"\x7e")
    with pytest.raises(DlmsLocalError):
        c.connect()


@pytest.mark.parametrize(
    "misuse",
    [
        lambda w: w.s.connect(),
        lambda w: w.s.disconnect(),
        lambda w: w.s.poll(),
        lambda w: w.c.send_apdu(b""),
        lambda w: (w.c.send_apdu(b"\x01"), w.c.send_apdu(b"\x02")),  # no answer yet
    ],
)
def test_out_of_state_calls(misuse: Callable[[Wire], object]) -> None:
    wire = connected_pair()
    with pytest.raises(DlmsLocalError):
        misuse(wire)
    assert LinkState.ERROR in (wire.c.state, wire.s.state)


def test_constructor_checks() -> None:
    with pytest.raises(DlmsLocalError):
        HdlcLink(Role.CLIENT, local_address=CLIENT_ADDRESS)
    with pytest.raises(DlmsLocalError):
        client(HdlcParameters(window_receive=7))
    with pytest.raises(DlmsLocalError):
        client(max_apdu=0)


def test_receive_buffer_overflow_is_a_local_error() -> None:
    c = client(max_buffer=4096)
    with pytest.raises(DlmsLocalError):
        c.receive_data(bytes(5000))
    assert c.state is LinkState.ERROR


def test_the_transition_table_covers_every_role_and_state() -> None:
    assert set(TRANSITIONS) == {(role, state) for role in Role for state in LinkState}
    assert TRANSITIONS[(Role.CLIENT, LinkState.ERROR)] == {}
    assert TRANSITIONS[(Role.SERVER, LinkState.ERROR)] == {}
    server_actions = {
        trigger
        for (role, _), table in TRANSITIONS.items()
        if role is Role.SERVER
        for trigger in table
        if isinstance(trigger, LinkAction)
    }
    assert server_actions == {LinkAction.SEND}  # a secondary station never connects or polls
