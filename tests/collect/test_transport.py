"""Transports: the in-memory pipe, TCP over loopback, and serial with the IEC 62056-21
mode E opening against a fake meter on the other end of the line."""

from __future__ import annotations

import asyncio
import socket

import pytest

from meterledger.collect.errors import (
    ConnectFailedError,
    ConnectionLostError,
    MeterProtocolError,
    ResponseTimeoutError,
)
from meterledger.collect.transport import (
    SerialTransport,
    TcpTransport,
    Transport,
    mode_e_ack,
    parse_identification,
    pipe_pair,
)


def test_pipe_carries_bytes_both_ways_and_close_is_end_of_stream() -> None:
    async def run() -> None:
        a, b = pipe_pair()
        assert isinstance(a, Transport)
        await a.send(b"\x00\x01")
        await b.send(b"hello")
        assert await b.receive() == b"\x00\x01"
        assert await a.receive() == b"hello"
        a.close()
        assert await b.receive() == b""
        assert await b.receive() == b""  # stays at the end
        with pytest.raises(ConnectionLostError) as caught:
            await a.send(b"late")
        assert caught.value.code == "E02"
        assert caught.value.transient

    asyncio.run(run())


def test_tcp_round_trip_over_loopback() -> None:
    async def run() -> None:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.read(100)
            writer.write(data[::-1])
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            transport = await TcpTransport.connect("127.0.0.1", port)
            assert transport.peer == f"tcp 127.0.0.1:{port}"
            await transport.send(b"abc")
            received = b""
            while chunk := await transport.receive():
                received += chunk
            assert received == b"cba"
            transport.close()

    asyncio.run(run())


def test_tcp_connection_refused_is_a_transient_e01() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the connect: nobody listens

    async def run() -> None:
        await TcpTransport.connect("127.0.0.1", port, timeout=2)

    with pytest.raises(ConnectFailedError) as caught:
        asyncio.run(run())
    assert caught.value.code == "E01" and caught.value.transient


# -- serial, mode E ---------------------------------------------------------------------


class FakeMeterLine:
    """The far end of a serial line: a meter that speaks IEC 62056-21 mode E.

    It hears bytes only when both ends use the same line settings (else it hears noise),
    answers the request with its identification, and after the acknowledgement switches to
    the agreed baud rate 8N1, where it answers each HDLC frame with ``reply``."""

    def __init__(self, ident: bytes = b"/MLS6\\2SIM-METER-01\r\n", silent: bool = False) -> None:
        self.ident = ident
        self.silent = silent
        self.settings: tuple[int, int, str, int] = (9600, 8, "N", 1)  # the port's
        self.meter: tuple[int, int, str, int] = (300, 7, "E", 1)  # the meter's
        self.heard: list[tuple[tuple[int, int, str, int], bytes]] = []
        self.configured: list[tuple[int, int, str, int]] = []
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = False
        self.reply = b"\x7e\xa0\x07\x03\x21\x93\x0f\x01\x7e"

    @property
    def name(self) -> str:
        return "/dev/fake"

    def configure(self, baudrate: int, bytesize: int, parity: str, stopbits: int) -> None:
        self.settings = (baudrate, bytesize, parity, stopbits)
        self.configured.append(self.settings)

    async def write(self, data: bytes) -> None:
        self.heard.append((self.settings, data))
        if self.settings != self.meter:
            return  # garbage at the meter's end
        if data == b"/?!\r\n" and not self.silent:
            await self.inbox.put(self.ident)
        elif data.startswith(b"\x06"):
            from meterledger.collect.transport import BAUD_CHARS

            assert data[1:2] == b"2" and data[3:] == b"2\r\n"
            self.meter = (BAUD_CHARS[chr(data[2])], 8, "N", 1)
        elif data.startswith(b"\x7e"):
            await self.inbox.put(self.reply)

    async def read(self) -> bytes:
        return await self.inbox.get()

    def close(self) -> None:
        self.closed = True


async def _no_sleep(_: float) -> None:
    return None


def test_mode_e_opening_switches_to_hdlc_at_the_agreed_rate() -> None:
    line = FakeMeterLine()

    async def run() -> SerialTransport:
        transport = await SerialTransport.open(
            "/dev/fake", baudrate=19200, mode_e=True, line=line, sleep=_no_sleep
        )
        await transport.send(b"\x7e\xa0\x08\x02\x21\x93\x00\x00\x7e")
        assert await transport.receive() == line.reply
        return transport

    transport = asyncio.run(run())
    assert transport.mode_e is not None
    assert transport.mode_e.baud == 19200 and transport.mode_e.manufacturer == "MLS"
    assert transport.mode_e.identification == "SIM-METER-01"
    assert line.heard[0] == ((300, 7, "E", 1), b"/?!\r\n")
    assert line.heard[1] == ((300, 7, "E", 1), bytes.fromhex("06 32 36 32 0D 0A"))
    assert line.heard[2][0] == (19200, 8, "N", 1)  # HDLC at the new rate
    assert line.configured == [(300, 7, "E", 1), (19200, 8, "N", 1)]
    assert transport.peer == "serial /dev/fake"


def test_mode_e_takes_the_lower_of_offer_and_limit() -> None:
    line = FakeMeterLine()

    async def run() -> None:
        await SerialTransport.open(
            "/dev/fake", baudrate=9600, mode_e=True, line=line, sleep=_no_sleep
        )

    asyncio.run(run())
    assert line.heard[1][1] == mode_e_ack("5") == b"\x06\x32\x35\x32\r\n"
    assert line.configured[-1] == (9600, 8, "N", 1)


def test_mode_e_refused_when_the_meter_offers_no_hdlc() -> None:
    line = FakeMeterLine(ident=b"/MLS5SIM-METER-01\r\n")  # mode C only

    async def run() -> None:
        await SerialTransport.open("/dev/fake", mode_e=True, line=line, sleep=_no_sleep)

    with pytest.raises(MeterProtocolError, match="mode E"):
        asyncio.run(run())
    assert line.closed


def test_mode_e_silence_is_a_response_timeout() -> None:
    line = FakeMeterLine(silent=True)

    async def run() -> None:
        await SerialTransport.open(
            "/dev/fake", mode_e=True, line=line, timeout=0.05, sleep=_no_sleep
        )

    with pytest.raises(ResponseTimeoutError) as caught:
        asyncio.run(run())
    assert caught.value.code == "E04"
    assert line.closed


def test_plain_serial_opens_at_the_rate_8n1() -> None:
    line = FakeMeterLine()

    async def run() -> None:
        transport = await SerialTransport.open("/dev/fake", baudrate=115200, line=line)
        assert transport.mode_e is None

    asyncio.run(run())
    assert line.configured == [(115200, 8, "N", 1)]


@pytest.mark.parametrize(
    ("line", "manufacturer", "baud", "hdlc", "ident"),
    [
        (b"/ISK5\\2MT382-1000\r\n", "ISK", 9600, True, "MT382-1000"),
        (b"\x00/LGZ4\\2ZMD3104\r\n", "LGZ", 4800, True, "ZMD3104"),  # noise before "/"
        (b"/KFM5KAIFA-METER\r\n", "KFM", 9600, False, "KAIFA-METER"),
    ],
)
def test_identification_messages(
    line: bytes, manufacturer: str, baud: int, hdlc: bool, ident: str
) -> None:
    parsed = parse_identification(line)
    assert (parsed.manufacturer, parsed.baud, parsed.hdlc, parsed.identification) == (
        manufacturer,
        baud,
        hdlc,
        ident,
    )


def test_identification_garbage_is_a_protocol_error() -> None:
    with pytest.raises(MeterProtocolError):
        parse_identification(b"hello\r\n")
    with pytest.raises(MeterProtocolError):
        parse_identification(b"/ABCx\\2foo\r\n")
