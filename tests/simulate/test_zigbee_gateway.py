"""The Zigbee gateway over real loopback TCP, driven by an asyncio client using the codec."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
from typer.testing import CliRunner

from meterledger.cli import simulate as simulate_cli
from meterledger.codec.zigbee import (
    METERING_CLUSTER,
    DefaultResponse,
    Direction,
    GetProfile,
    GetProfileResponse,
    ProfileStatus,
    ReadAttributes,
    ReadAttributesResponse,
    ZclFrame,
    ZclStatus,
    decode_frame,
    encode_frame,
    to_utc_time,
)
from meterledger.simulate.zigbee_gateway import (
    METER_ENDPOINT,
    Envelope,
    GatewayConfig,
    ZigbeeGateway,
    decode_envelope,
    encode_envelope,
    eui64_of,
)

NOW = 1_709_269_200 + 3 * 86_400 + 500  # 500 s into an interval
LATEST_END = NOW // 900 * 900
TIMEOUT = 2.0


def synchronously(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run an async test in its own event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())

    return run


class Client:
    """Sends one envelope at a time and reads the answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.sequence = 0

    async def send_raw(self, eui64: bytes, zcl: bytes, *, cluster: int = METERING_CLUSTER) -> None:
        self.writer.write(encode_envelope(Envelope(eui64, METER_ENDPOINT, cluster, zcl)))
        await self.writer.drain()

    async def receive(self, timeout: float = TIMEOUT) -> tuple[Envelope, ZclFrame]:
        length = int.from_bytes(await asyncio.wait_for(self.reader.readexactly(2), timeout), "big")
        envelope = decode_envelope(await self.reader.readexactly(length))
        assert envelope is not None
        return envelope, decode_frame(envelope.zcl, cluster=envelope.cluster)

    async def request(
        self, eui64: bytes, command: GetProfile | ReadAttributes
    ) -> tuple[Envelope, ZclFrame]:
        self.sequence = (self.sequence + 1) % 256
        frame = ZclFrame.of(
            command, sequence_number=self.sequence, direction=Direction.CLIENT_TO_SERVER
        )
        await self.send_raw(eui64, encode_frame(frame))
        return await self.receive()

    async def profile(self, eui64: bytes, end: int, periods: int) -> GetProfileResponse:
        envelope, frame = await self.request(eui64, GetProfile(0, end, periods))
        assert envelope.eui64 == eui64
        assert frame.header.sequence_number == self.sequence
        assert frame.header.direction is Direction.SERVER_TO_CLIENT
        assert isinstance(frame.command, GetProfileResponse)
        return frame.command


@asynccontextmanager
async def running(**options: object) -> AsyncIterator[tuple[ZigbeeGateway, Client]]:
    config = GatewayConfig(meters=3, port=0, clock=lambda: NOW, **options)  # type: ignore[arg-type]
    async with ZigbeeGateway(config) as gateway:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        try:
            yield gateway, Client(reader, writer)
        finally:
            writer.close()
            await writer.wait_closed()


def test_eui64s_are_deterministic_and_distinct() -> None:
    assert eui64_of(0).hex() == "024d4c5a00000000"
    assert eui64_of(41).hex() == "024d4c5a00000029"
    assert len({eui64_of(i) for i in range(100)}) == 100


def test_envelope_round_trip_and_short_envelope() -> None:
    envelope = Envelope(eui64_of(2), 1, 0x0702, b"\x01\x02\x00")
    wire = encode_envelope(envelope)
    assert wire[:2] == (11 + 3).to_bytes(2, "big") and wire[10:13] == b"\x01\x07\x02"
    assert decode_envelope(wire[2:]) == envelope
    assert decode_envelope(b"\x00" * 10) is None


@synchronously
async def test_get_profile_pages_back_to_the_oldest_entry() -> None:
    async with running(buffer=96, days=2, max_periods_per_response=24) as (gateway, client):
        eui = eui64_of(1)
        blocks: list[GetProfileResponse] = []
        end = 0
        while True:
            block = await client.profile(eui, end, 24)
            if block.status is not ProfileStatus.SUCCESS:
                break
            blocks.append(block)
            end = block.end_time - len(block.intervals) * block.profile_interval_period.seconds
        assert block.status is ProfileStatus.NO_INTERVALS_AVAILABLE_FOR_THE_REQUESTED_TIME
        assert [len(b.intervals) for b in blocks] == [24, 24, 24, 24]
        assert blocks[0].end_time == to_utc_time(LATEST_END)
        ends = [e for b in blocks for e in b.interval_ends()]
        assert ends == [to_utc_time(LATEST_END - k * 900) for k in range(96)]
        values = [v for b in blocks for v in b.intervals]
        stored = gateway.meter(1).entries
        assert values == [e.delivered for e in reversed(stored)]
        assert all(v is not None and v > 0 for v in values)


@synchronously
async def test_read_attributes_over_tcp() -> None:
    async with running() as (gateway, client):
        _, frame = await client.request(eui64_of(0), ReadAttributes((0x0301, 0x0302, 0x0000)))
        assert isinstance(frame.command, ReadAttributesResponse)
        values = [r.value for r in frame.command.records]
        assert values == [1, 1000, gateway.meter(0).summation_delivered]


@synchronously
async def test_dark_meter_never_answers_but_the_others_do() -> None:
    async with running(dark=frozenset({2})) as (_, client):
        await client.send_raw(eui64_of(2), encode_frame(_get_profile(7)))
        with pytest.raises(TimeoutError):
            await client.receive(timeout=0.3)
        block = await client.profile(eui64_of(0), 0, 4)
        assert block.status is ProfileStatus.SUCCESS and len(block.intervals) == 4


@synchronously
async def test_unknown_meter_gets_unsupported_cluster() -> None:
    async with running() as (_, client):
        stranger = bytes.fromhex("0011223344556677")
        await client.send_raw(stranger, encode_frame(_get_profile(9)))
        envelope, frame = await client.receive()
        assert envelope.eui64 == stranger
        assert frame.header.sequence_number == 9
        assert frame.command == DefaultResponse(0x00, ZclStatus.UNSUPPORTED_CLUSTER)


@synchronously
async def test_other_cluster_gets_unsupported_cluster() -> None:
    async with running() as (_, client):
        read = ZclFrame.of(
            ReadAttributes((0x0000,)), sequence_number=3, direction=Direction.CLIENT_TO_SERVER
        )
        await client.send_raw(eui64_of(0), encode_frame(read), cluster=0x0006)
        _, frame = await client.receive()
        assert frame.command == DefaultResponse(0x00, ZclStatus.UNSUPPORTED_CLUSTER)


@synchronously
async def test_malformed_frames_get_error_responses_and_the_gateway_goes_on() -> None:
    async with running() as (gateway, client):
        eui = eui64_of(0)
        # GetProfile cut short after the channel: header readable, payload truncated.
        await client.send_raw(eui, bytes((0x01, 0x42, 0x00, 0x00, 0x01)))
        _, frame = await client.receive()
        assert frame.header.sequence_number == 0x42
        assert frame.command == DefaultResponse(0x00, ZclStatus.MALFORMED_COMMAND)
        # Reserved frame-control bits: nothing of the header is trusted.
        await client.send_raw(eui, bytes((0xE1, 0x07, 0x00)))
        _, frame = await client.receive()
        assert frame.header.sequence_number == 0
        assert frame.command == DefaultResponse(0x00, ZclStatus.MALFORMED_COMMAND)
        # A Metering command the meter does not serve (cluster-specific 0x05).
        await client.send_raw(eui, bytes((0x01, 0x43, 0x05)))
        _, frame = await client.receive()
        assert frame.command == DefaultResponse(0x05, ZclStatus.UNSUP_CLUSTER_COMMAND)
        # An envelope too short to route is dropped; the connection still serves.
        client.writer.write(b"\x00\x03abc")
        block = await client.profile(eui, 0, 2)
        assert block.status is ProfileStatus.SUCCESS
        assert gateway.stats["unanswered"] == 1


@synchronously
async def test_gateway_serves_several_connections() -> None:
    async with running() as (gateway, first):
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        second = Client(reader, writer)
        a, b = await asyncio.gather(
            first.profile(eui64_of(0), 0, 3), second.profile(eui64_of(0), 0, 3)
        )
        assert a.intervals == b.intervals
        writer.close()
        await writer.wait_closed()


def test_history_is_deterministic_from_the_seed() -> None:
    def entries(seed: int) -> tuple[object, ...]:
        gateway = ZigbeeGateway(GatewayConfig(meters=2, seed=seed, days=1, clock=lambda: NOW))
        return gateway.meter(1).entries

    assert entries(5) == entries(5)
    assert entries(5) != entries(6)


def _get_profile(sequence: int) -> ZclFrame:
    return ZclFrame.of(GetProfile(0, 0, 4), sequence_number=sequence)


def test_cli_serves_and_describes_the_gateway() -> None:
    runner = CliRunner()
    args = ["zigbee", "--port", "0", "--meters", "2", "--dark", "1", "--duration", "0.1", "--json"]
    result = runner.invoke(simulate_cli.app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["dark"] == [1] and summary["period_minutes"] == 15
    assert summary["eui64"] == {"MTR-00001": "024d4c5a00000000", "MTR-00002": "024d4c5a00000001"}
    bad = runner.invoke(simulate_cli.app, ["zigbee", "--period", "7", "--duration", "0"])
    assert bad.exit_code != 0
