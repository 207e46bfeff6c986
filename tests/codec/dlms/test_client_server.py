"""DlmsClient and DlmsServer wired together in memory (no sockets), over the wrapper and
over HDLC with a small information field (so that every long APDU is segmented): the
association with no authentication, LLS and HLS-GMAC; GET of a register, the clock and a
profile buffer (block transfer with a small server PDU), selective access by range,
GET-with-list, SET, ACTION, the object list, release and disconnect.

The security cases are in ``test_client_server_security.py`` and the error cases in
``test_client_server_errors.py``; both import the model and the pipe from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterledger.codec.dlms.apdu import (
    EntryDescriptor,
    RangeDescriptor,
    SelectiveAccess,
    entry_access,
    parse_selective_access,
    range_access,
)
from meterledger.codec.dlms.association import AssociationState
from meterledger.codec.dlms.client import (
    ActionCompleted,
    Associated,
    ClientEvent,
    ClientSettings,
    Disconnected,
    DlmsClient,
    GetFailed,
    GetListResult,
    GetResult,
    Released,
    SetResult,
)
from meterledger.codec.dlms.codes import ActionResult, Conformance, DataAccessResult
from meterledger.codec.dlms.cosem import (
    CaptureObject,
    ObjectListEntry,
    ScalerUnit,
    capture_objects_data,
    clock_value,
    obis_bytes,
    parse_buffer,
    parse_capture_objects,
    parse_object_list,
    parse_scaler_unit,
    scaler_unit_data,
)
from meterledger.codec.dlms.cursor import NEED_DATA
from meterledger.codec.dlms.data import CosemDateTime, Data, DataType
from meterledger.codec.dlms.hdlc_frame import HdlcParameters
from meterledger.codec.dlms.server import (
    PUBLIC_CLIENT,
    AssociationOpened,
    ClientPolicy,
    DlmsServer,
    LinkOpened,
    RequestServed,
    ServerEvent,
    ServerSettings,
)

EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
CLIENT_TITLE = bytes.fromhex("4D4C430000000001")
SERVER_TITLE = bytes.fromhex("4D4C530000BC614E")
CTOS = bytes.fromhex("4B35366956616759")
STOC = bytes.fromhex("503677524A323146")
PASSWORD = b"12345678"

CLOCK = obis_bytes("0.0.1.0.0.255")
ENERGY = obis_bytes("1.0.1.8.0.255")
PROFILE = obis_bytes("1.0.99.1.0.255")
SERIAL = obis_bytes("0.0.96.1.0.255")
START = datetime(2024, 1, 1, tzinfo=UTC)
FRAMINGS = ("wrapper", "hdlc")
SMALL_HDLC = HdlcParameters(32, 32)  # forces segmentation of every AARQ, AARE and profile
CAPTURE = (CaptureObject(8, CLOCK, 2), CaptureObject(3, ENERGY, 2))


def stamp(moment: datetime) -> Data:
    return Data.date_time_octets(CosemDateTime.from_datetime(moment))


class Meter:
    """A tiny CosemModel: a clock, an energy register, a 15-minute profile, a serial."""

    def __init__(self, rows: int = 96) -> None:
        self.clock = START + timedelta(hours=12)
        self.energy = 100005
        self.rows = [(START + timedelta(minutes=15 * (i + 1)), 100000 + i) for i in range(rows)]
        self.calls: list[tuple[str, int, bytes, int]] = []

    def get(
        self, class_id: int, obis: bytes, attribute: int, selective: SelectiveAccess | None
    ) -> Data | DataAccessResult:
        self.calls.append(("get", class_id, obis, attribute))
        key = (class_id, obis, attribute)
        if key == (8, CLOCK, 2):
            return stamp(self.clock)
        if key == (3, ENERGY, 2):
            return Data.uint32(self.energy)
        if key == (3, ENERGY, 3):
            return scaler_unit_data(ScalerUnit(0, 30))
        if key == (1, SERIAL, 2):
            return Data.octets(b"ML-000001")
        if key == (7, PROFILE, 2):
            return self._buffer(selective)
        if key == (7, PROFILE, 3):
            return capture_objects_data(CAPTURE)
        if key == (7, PROFILE, 4):
            return Data.uint32(900)
        if obis in (CLOCK, ENERGY, PROFILE, SERIAL):
            return DataAccessResult.OBJECT_CLASS_INCONSISTENT
        return DataAccessResult.OBJECT_UNDEFINED

    def _buffer(self, selective: SelectiveAccess | None) -> Data | DataAccessResult:
        rows = self.rows
        if selective is not None:
            descriptor = parse_selective_access(selective)
            if isinstance(descriptor, RangeDescriptor):
                low = descriptor.from_time().utc()
                high = descriptor.to_time().utc()
                rows = [row for row in rows if low <= row[0] <= high]
            else:
                assert isinstance(descriptor, EntryDescriptor)
                last = descriptor.to_entry or len(rows)
                rows = rows[descriptor.from_entry - 1 : last]
        return Data.array(*(Data.structure(stamp(t), Data.uint32(v)) for t, v in rows))

    def set(
        self,
        class_id: int,
        obis: bytes,
        attribute: int,
        value: Data,
        selective: SelectiveAccess | None,
    ) -> DataAccessResult:
        self.calls.append(("set", class_id, obis, attribute))
        if (class_id, obis, attribute) == (8, CLOCK, 2):
            self.clock = value.to_cosem_datetime().utc()
            return DataAccessResult.SUCCESS
        if (class_id, obis) == (3, ENERGY):
            return DataAccessResult.READ_WRITE_DENIED
        return DataAccessResult.OBJECT_UNDEFINED

    def action(
        self, class_id: int, obis: bytes, method: int, parameters: Data | None
    ) -> tuple[ActionResult, Data | None]:
        self.calls.append(("action", class_id, obis, method))
        if (class_id, obis, method) == (8, CLOCK, 6):  # shift_time(long seconds)
            assert parameters is not None and isinstance(parameters.value, int)
            self.clock += timedelta(seconds=parameters.value)
            return ActionResult.SUCCESS, None
        if (class_id, obis, method) == (3, ENERGY, 1):  # reset, returns the old value
            old, self.energy = self.energy, 0
            return ActionResult.SUCCESS, Data.uint32(old)
        return ActionResult.OBJECT_UNDEFINED, None

    def object_list(self) -> tuple[ObjectListEntry, ...]:
        return (
            ObjectListEntry(8, 0, CLOCK, ((1, 1), (2, 3)), ((6, True),)),
            ObjectListEntry(3, 0, ENERGY, ((1, 1), (2, 1), (3, 1))),
            ObjectListEntry(7, 1, PROFILE, ((1, 1), (2, 1), (3, 1), (4, 1))),
        )


def drain_client(client: DlmsClient) -> list[ClientEvent]:
    events: list[ClientEvent] = []
    while (event := client.next_event()) is not NEED_DATA:
        assert not isinstance(event, type(NEED_DATA))
        events.append(event)
    return events


def drain_server(server: DlmsServer) -> list[ServerEvent]:
    events: list[ServerEvent] = []
    while (event := server.next_event()) is not NEED_DATA:
        assert not isinstance(event, type(NEED_DATA))
        events.append(event)
    return events


def pieces(data: bytes, size: int | None) -> Iterator[bytes]:
    if size is None:
        yield data
        return
    for i in range(0, len(data), size):
        yield data[i : i + size]


@dataclass
class Pipe:
    """Carries bytes both ways until neither side has anything to send. ``chunk`` feeds
    every transfer in pieces of that size; ``wire`` keeps the transcript."""

    client: DlmsClient
    server: DlmsServer
    chunk: int | None = None
    server_events: list[ServerEvent] = field(default_factory=list)
    wire: list[tuple[str, bytes]] = field(default_factory=list)

    def to_server(self, data: bytes) -> bytes:
        """Feed the server; return its answer (without giving it to the client)."""
        self.wire.append(("c", data))
        for piece in pieces(data, self.chunk):
            self.server.receive_data(piece)
            self.server_events.extend(drain_server(self.server))
        return self.server.data_to_send()

    def to_client(self, data: bytes) -> list[ClientEvent]:
        self.wire.append(("s", data))
        events: list[ClientEvent] = []
        for piece in pieces(data, self.chunk):
            self.client.receive_data(piece)
            events.extend(drain_client(self.client))
        return events

    def send(self, data: bytes) -> list[ClientEvent]:
        events: list[ClientEvent] = []
        for _ in range(10_000):
            if not data:
                return events
            answer = self.to_server(data)
            if not answer:
                return events
            events.extend(self.to_client(answer))
            data = self.client.data_to_send()
        raise AssertionError("the exchange does not end")

    def one(self, data: bytes) -> ClientEvent:
        events = self.send(data)
        assert len(events) == 1, events
        return events[0]


def client_settings(framing: str = "wrapper", **changes: object) -> ClientSettings:
    base = ClientSettings(
        framing=framing,  # type: ignore[arg-type]
        ek=EK,
        ak=AK,
        system_title=CLIENT_TITLE,
        challenge=CTOS,
        password=PASSWORD,
        invocation_counters=range(1000, 100_000),
        hdlc=SMALL_HDLC,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


MANAGEMENT = {
    "none": ClientPolicy(1),
    "low": ClientPolicy(1, "low", PASSWORD),
    "hls-gmac": ClientPolicy(1, "hls-gmac"),
}


def server_settings(framing: str = "wrapper", **changes: object) -> ServerSettings:
    base = ServerSettings(
        framing=framing,  # type: ignore[arg-type]
        clients=(PUBLIC_CLIENT, ClientPolicy(1, "low", PASSWORD)),
        ek=EK,
        ak=AK,
        system_title=SERVER_TITLE,
        challenge=STOC,
        invocation_counters=range(500, 100_000),
        hdlc=HdlcParameters(64, 64),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def pair(
    client: ClientSettings, server: ServerSettings, meter: Meter | None = None, **pipe: object
) -> Pipe:
    return Pipe(DlmsClient(client), DlmsServer(server, meter or Meter()), **pipe)  # type: ignore[arg-type]


def associate(
    framing: str = "wrapper",
    *,
    auth: str = "none",
    security: str = "none",
    ciphering: str = "glo",
    meter: Meter | None = None,
    server: dict[str, object] | None = None,
    client: dict[str, object] | None = None,
    chunk: int | None = None,
) -> Pipe:
    management = auth != "none" or security != "none"
    policy = replace(MANAGEMENT[auth], security=security)  # type: ignore[arg-type]
    pipe = pair(
        client_settings(
            framing,
            client_sap=1 if management else 16,
            auth=auth,
            security=security,
            ciphering=ciphering,
            **(client or {}),
        ),
        server_settings(framing, clients=(PUBLIC_CLIENT, policy), **(server or {})),
        meter,
        chunk=chunk,
    )
    event = pipe.one(pipe.client.start())
    assert isinstance(event, Associated)
    assert pipe.client.state is AssociationState.ASSOCIATED
    assert pipe.server.state is AssociationState.ASSOCIATED
    return pipe


# --- association ---------------------------------------------------------------------------


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("auth", ["none", "low", "hls-gmac"])
def test_associate_and_read_a_register(framing: str, auth: str) -> None:
    pipe = associate(framing, auth=auth)
    opened = [e for e in pipe.server_events if isinstance(e, AssociationOpened)]
    assert len(opened) == 1 and opened[0].auth == auth
    assert opened[0].client_sap == (16 if auth == "none" else 1)
    if framing == "hdlc":
        assert isinstance(pipe.server_events[0], LinkOpened)
    assert Conformance.GET in pipe.client.negotiated_conformance
    if auth == "hls-gmac":
        assert pipe.client.server_system_title == SERVER_TITLE
        assert opened[0].client_system_title == CLIENT_TITLE

    value = pipe.one(pipe.client.get(3, "1.0.1.8.0.255", 2))
    assert isinstance(value, GetResult) and value.value == Data.uint32(100005)
    scaler = pipe.one(pipe.client.get(3, ENERGY, 3))
    assert isinstance(scaler, GetResult)
    assert parse_scaler_unit(scaler.value) == ScalerUnit(0, 30)
    assert value.invoke_id != scaler.invoke_id


def test_hdlc_segments_both_ways() -> None:
    pipe = associate("hdlc", auth="hls-gmac", security="auth-enc")
    # The AARQ and the AARE are longer than the 32-octet information field.
    segmented = [data for _, data in pipe.wire if data[1] & 0x08]
    assert len(segmented) >= 2
    assert {side for side, data in pipe.wire if data[1] & 0x08} == {"c", "s"}


@pytest.mark.parametrize("framing", FRAMINGS)
def test_clock_read_and_set(framing: str) -> None:
    meter = Meter()
    pipe = associate(framing, auth="low", meter=meter)
    read = pipe.one(pipe.client.get(8, "0.0.1.0.0.255", 2))
    assert isinstance(read, GetResult)
    assert clock_value(read.value).time == START + timedelta(hours=12)

    moment = datetime(2024, 3, 1, 8, 30, tzinfo=UTC)
    done = pipe.one(pipe.client.set(8, CLOCK, 2, stamp(moment)))
    assert done == SetResult(done.invoke_id, DataAccessResult.SUCCESS)  # type: ignore[union-attr]
    assert meter.clock == moment
    denied = pipe.one(pipe.client.set(3, ENERGY, 2, Data.uint32(0)))
    assert isinstance(denied, SetResult) and denied.result is DataAccessResult.READ_WRITE_DENIED


@pytest.mark.parametrize("framing", FRAMINGS)
def test_profile_buffer_by_block_transfer(framing: str) -> None:
    pipe = associate(framing, server={"max_pdu": 64})
    event = pipe.one(pipe.client.get(7, PROFILE, 2))
    assert isinstance(event, GetResult)
    rows = parse_buffer(event.value)
    assert len(rows) == 96
    assert rows[0][0].to_cosem_datetime().utc() == START + timedelta(minutes=15)
    assert rows[-1][1] == Data.uint32(100095)
    blocks = [e for e in pipe.server_events if isinstance(e, RequestServed)]
    assert blocks[-1].service == "get-next" and len(blocks) > 20
    # A whole second GET works after the long one.
    again = pipe.one(pipe.client.get(7, PROFILE, 4))
    assert again == GetResult(again.invoke_id, Data.uint32(900))  # type: ignore[union-attr]


@pytest.mark.parametrize("framing", FRAMINGS)
def test_profile_selective_access_by_range(framing: str) -> None:
    pipe = associate(framing, server={"max_pdu": 96})
    capture = pipe.one(pipe.client.get(7, PROFILE, 3))
    assert isinstance(capture, GetResult)
    assert parse_capture_objects(capture.value) == CAPTURE
    start, end = START + timedelta(hours=2), START + timedelta(hours=4)
    event = pipe.one(pipe.client.get(7, PROFILE, 2, selective=range_access(start, end)))
    assert isinstance(event, GetResult)
    times = [row[0].to_cosem_datetime().utc() for row in parse_buffer(event.value)]
    assert times == [start + timedelta(minutes=15 * i) for i in range(9)]  # both ends in
    by_entry = pipe.one(pipe.client.get(7, PROFILE, 2, selective=entry_access(1, 3)))
    assert isinstance(by_entry, GetResult) and len(parse_buffer(by_entry.value)) == 3
    empty = pipe.one(
        pipe.client.get(
            7, PROFILE, 2, selective=range_access(START - timedelta(days=2), START - timedelta(1))
        )
    )
    assert empty == GetResult(empty.invoke_id, Data.array())  # type: ignore[union-attr]


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("max_pdu", [0xFFFF, 100])
def test_get_with_list(framing: str, max_pdu: int) -> None:
    pipe = associate(framing, server={"max_pdu": max_pdu})
    event = pipe.one(
        pipe.client.get_with_list(
            [
                (3, "1.0.1.8.0.255", 2),
                (1, SERIAL, 2),
                (3, "1.0.2.8.0.255", 2),
                (7, PROFILE, 2, range_access(START, START + timedelta(hours=3))),
            ]
        )
    )
    assert isinstance(event, GetListResult)
    energy, serial, missing, rows = event.results
    assert energy == Data.uint32(100005) and serial == Data.octets(b"ML-000001")
    assert missing is DataAccessResult.OBJECT_UNDEFINED
    assert isinstance(rows, Data) and len(parse_buffer(rows)) == 12
    served = [e.service for e in pipe.server_events if isinstance(e, RequestServed)]
    assert ("get-next" in served) is (max_pdu < 0xFFFF)


@pytest.mark.parametrize("framing", FRAMINGS)
def test_get_failures_are_events(framing: str) -> None:
    pipe = associate(framing)
    missing = pipe.one(pipe.client.get(3, "9.9.9.9.9.9", 2))
    assert isinstance(missing, GetFailed) and missing.result is DataAccessResult.OBJECT_UNDEFINED
    wrong = pipe.one(pipe.client.get(1, ENERGY, 2))
    assert isinstance(wrong, GetFailed)
    assert wrong.result is DataAccessResult.OBJECT_CLASS_INCONSISTENT


@pytest.mark.parametrize("framing", FRAMINGS)
def test_action(framing: str) -> None:
    meter = Meter()
    pipe = associate(framing, auth="low", meter=meter)
    shifted = pipe.one(pipe.client.action(8, CLOCK, 6, Data(DataType.LONG, -30)))
    assert shifted == ActionCompleted(shifted.invoke_id, ActionResult.SUCCESS, None)  # type: ignore[union-attr]
    assert meter.clock == START + timedelta(hours=12, seconds=-30)
    reset = pipe.one(pipe.client.action(3, "1.0.1.8.0.255", 1, Data.int8(0)))
    assert isinstance(reset, ActionCompleted) and reset.return_data == Data.uint32(100005)
    unknown = pipe.one(pipe.client.action(3, "1.0.1.8.1.255", 1))
    assert isinstance(unknown, ActionCompleted)
    assert unknown.result is ActionResult.OBJECT_UNDEFINED


@pytest.mark.parametrize("framing", FRAMINGS)
def test_object_list_from_association_ln(framing: str) -> None:
    pipe = associate(framing, server={"max_pdu": 64})
    event = pipe.one(pipe.client.get(15, "0.0.40.0.0.255", 2))
    assert isinstance(event, GetResult)
    entries = parse_object_list(event.value)
    assert [(e.class_id, e.logical_name) for e in entries] == [
        (8, CLOCK),
        (3, ENERGY),
        (7, PROFILE),
    ]
    assert entries[0].method_access == ((6, True),)
    name = pipe.one(pipe.client.get(15, "0.0.40.0.0.255", 1))
    assert name == GetResult(name.invoke_id, Data.octets(obis_bytes("0.0.40.0.0.255")))  # type: ignore[union-attr]


@pytest.mark.parametrize("framing", FRAMINGS)
def test_release_then_disconnect(framing: str) -> None:
    pipe = associate(framing, auth="low")
    released = pipe.one(pipe.client.release())
    assert isinstance(released, Released)
    assert any(isinstance(e, Released) for e in pipe.server_events)
    assert pipe.client.state is AssociationState.CONNECTED
    assert pipe.server.state is AssociationState.CONNECTED
    data = pipe.client.disconnect()
    if framing == "wrapper":
        assert data == b"" and pipe.client.state is AssociationState.DISCONNECTED
        return
    assert pipe.one(data) == Disconnected()
    assert any(isinstance(e, Disconnected) for e in pipe.server_events)
    assert pipe.client.state is AssociationState.DISCONNECTED


def test_hdlc_reassociates_after_release_on_a_new_link() -> None:
    pipe = associate("hdlc")
    pipe.one(pipe.client.release())
    assert pipe.one(pipe.client.disconnect()) == Disconnected()
    fresh = DlmsClient(client_settings("hdlc", client_sap=16))
    pipe.client = fresh
    assert isinstance(pipe.one(fresh.start()), Associated)
    assert isinstance(pipe.one(fresh.get(3, ENERGY, 2)), GetResult)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    framing=st.sampled_from(FRAMINGS),
    chunk=st.integers(min_value=1, max_value=40),
    security=st.sampled_from(["none", "auth-enc"]),
)
def test_any_split_of_the_byte_stream(framing: str, chunk: int, security: str) -> None:
    """TCP and serial lines deliver bytes in arbitrary pieces: the result is the same."""
    pipe = associate(framing, security=security, server={"max_pdu": 80}, chunk=chunk)
    event = pipe.one(pipe.client.get(7, PROFILE, 2, selective=entry_access(1, 10)))
    assert isinstance(event, GetResult) and len(parse_buffer(event.value)) == 10
    listed = pipe.one(pipe.client.get_with_list([(3, ENERGY, 2), (8, CLOCK, 2)]))
    assert isinstance(listed, GetListResult) and listed.results[0] == Data.uint32(100005)


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(st.integers(min_value=0, max_value=2**32 - 1), min_size=1, max_size=300),
    max_pdu=st.integers(min_value=64, max_value=600),
)
def test_block_transfer_reassembles_any_value(values: list[int], max_pdu: int) -> None:
    class Numbers(Meter):
        def get(
            self, class_id: int, obis: bytes, attribute: int, selective: SelectiveAccess | None
        ) -> Data | DataAccessResult:
            return Data.array(*(Data.uint32(v) for v in values))

    pipe = associate(server={"max_pdu": max_pdu}, meter=Numbers())
    event = pipe.one(pipe.client.get(1, SERIAL, 2))
    assert event == GetResult(event.invoke_id, Data.array(*(Data.uint32(v) for v in values)))  # type: ignore[union-attr]


def test_public_surface() -> None:
    from meterledger.codec import dlms

    for name in (
        "DlmsClient",
        "ClientSettings",
        "DlmsServer",
        "ServerSettings",
        "ClientPolicy",
        "CosemModel",
        "Associated",
        "GetResult",
        "GetFailed",
        "GetListResult",
        "SetResult",
        "ActionCompleted",
        "Released",
        "Disconnected",
        "NEED_DATA",
        "AssociationState",
        "SecurityError",
        "range_access",
    ):
        assert name in dlms.__all__, name
        assert getattr(dlms, name) is not None
    assert len(set(dlms.__all__)) == len(dlms.__all__)


def test_hdlc_poll_recovers_a_lost_answer() -> None:
    """After the caller's timeout, poll() asks the meter to repeat its last frame."""
    pipe = associate("hdlc")
    lost = pipe.to_server(pipe.client.get(3, ENERGY, 2))
    assert lost  # ... and never delivered
    events = pipe.send(pipe.client.poll())
    assert events == [GetResult(1, Data.uint32(100005))]
    assert pipe.client.poll() != b"" and DlmsClient(client_settings()).poll() == b""
