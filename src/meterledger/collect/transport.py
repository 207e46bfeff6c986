"""Transports: the seam between a DLMS session and the wire.

A :class:`Transport` moves bytes and nothing else; framing (IEC 62056-47 wrapper or HDLC)
belongs to the sans-IO client, so the same session runs over

* :class:`TcpTransport`: asyncio streams, for the wrapper on port 4059 and for HDLC over
  TCP (gateways, terminal servers) alike;
* :class:`SerialTransport`: an optical probe or an RS-485 bus through pyserial-asyncio, at
  9600 baud and up, optionally opened with the IEC 62056-21 mode E sequence (see
  :func:`mode_e_open`);
* :class:`PipeTransport`: an in-memory pair, for tests and for a simulator in the same
  process.

``receive()`` returns the bytes that arrived (at least one) or ``b""`` at the end of the
stream; errors of the underlying stream become :mod:`meterledger.collect.errors` values
here, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from meterledger.collect.errors import (
    CollectError,
    ConnectFailedError,
    ConnectionLostError,
    MeterProtocolError,
    ResponseTimeoutError,
    translate,
)

__all__ = [
    "BAUD_CHARS",
    "ModeE",
    "PipeTransport",
    "PySerialLine",
    "SerialLine",
    "SerialTransport",
    "TcpTransport",
    "Transport",
    "mode_e_ack",
    "mode_e_open",
    "parse_identification",
    "pipe_pair",
]

log = logging.getLogger("meterledger.collect")
_READ_SIZE = 65536


@runtime_checkable
class Transport(Protocol):
    """Bytes to and from one peer."""

    @property
    def peer(self) -> str:
        """Where the bytes go, for logs: ``tcp 10.0.0.5:4059``, ``serial /dev/ttyUSB0``."""
        ...

    async def send(self, data: bytes) -> None: ...

    async def receive(self) -> bytes:
        """The next bytes that arrived, or ``b""`` when the peer closed the stream."""
        ...

    def close(self) -> None: ...


# -- TCP ---------------------------------------------------------------------------------


class TcpTransport:
    """A TCP connection (asyncio streams); the same for the wrapper and HDLC over TCP."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._peer = peer

    @classmethod
    async def connect(cls, host: str, port: int, *, timeout: float = 10.0) -> TcpTransport:
        """Open the connection; E01 if it is refused or unreachable, E04 if it hangs."""
        peer = f"tcp {host}:{port}"
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port)
        except TimeoutError as exc:
            raise ResponseTimeoutError(f"connect to {host}:{port} took over {timeout:g} s") from exc
        except OSError as exc:
            raise ConnectFailedError(f"{host}:{port}: {exc.strerror or exc}") from exc
        return cls(reader, writer, peer)

    @property
    def peer(self) -> str:
        return self._peer

    async def send(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ConnectionLostError(f"{self._peer}: {exc}") from exc

    async def receive(self) -> bytes:
        try:
            return await self._reader.read(_READ_SIZE)
        except (ConnectionError, OSError) as exc:
            raise ConnectionLostError(f"{self._peer}: {exc}") from exc

    def close(self) -> None:
        if not self._writer.is_closing():
            self._writer.close()


# -- in-memory pipe ---------------------------------------------------------------------


class PipeTransport:
    """One end of an in-memory pipe (see :func:`pipe_pair`). ``close()`` ends the peer's
    stream (its ``receive()`` returns ``b""``); queues are bounded for backpressure."""

    def __init__(
        self,
        inbox: asyncio.Queue[bytes],
        outbox: asyncio.Queue[bytes],
        peer: str = "pipe",
    ) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._peer = peer
        self._closed = False
        self._eof = False

    @property
    def peer(self) -> str:
        return self._peer

    async def send(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionLostError(f"{self._peer}: send on a closed pipe")
        if data:
            await self._outbox.put(bytes(data))

    async def receive(self) -> bytes:
        if self._eof:
            return b""
        data = await self._inbox.get()
        if not data:
            self._eof = True
        return data

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            # a full queue: the peer is not reading; it sees the close as a lost link
            with contextlib.suppress(asyncio.QueueFull):
                self._outbox.put_nowait(b"")


def pipe_pair(
    maxsize: int = 64, names: tuple[str, str] = ("a", "b")
) -> tuple[PipeTransport, PipeTransport]:
    """Two connected pipe ends: what one sends, the other receives."""
    a_to_b: asyncio.Queue[bytes] = asyncio.Queue(maxsize)
    b_to_a: asyncio.Queue[bytes] = asyncio.Queue(maxsize)
    return (
        PipeTransport(b_to_a, a_to_b, f"pipe {names[1]}"),
        PipeTransport(a_to_b, b_to_a, f"pipe {names[0]}"),
    )


# -- serial and IEC 62056-21 mode E ------------------------------------------------------


class SerialLine(Protocol):
    """A serial port as the transport needs it: bytes, and its line settings."""

    @property
    def name(self) -> str: ...

    async def write(self, data: bytes) -> None:
        """Queue ``data`` and wait until the port has taken it."""
        ...

    async def read(self) -> bytes:
        """Bytes that arrived (``b""`` if the port closed)."""
        ...

    def configure(self, baudrate: int, bytesize: int, parity: str, stopbits: int) -> None:
        """Change the line settings; ``parity`` is ``"N"``, ``"E"`` or ``"O"``."""
        ...

    def close(self) -> None: ...


class PySerialLine:
    """A :class:`SerialLine` over pyserial-asyncio (POSIX)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._name = name

    @classmethod
    async def open(
        cls, url: str, baudrate: int, bytesize: int = 8, parity: str = "N", stopbits: int = 1
    ) -> PySerialLine:
        import serial_asyncio  # type: ignore[import-untyped]

        try:
            reader, writer = await serial_asyncio.open_serial_connection(
                url=url, baudrate=baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits
            )
        except Exception as exc:  # serial.SerialException is an OSError subclass or not
            raise ConnectFailedError(f"serial {url}: {exc}") from exc
        return cls(reader, writer, url)

    @property
    def name(self) -> str:
        return self._name

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def read(self) -> bytes:
        return await self._reader.read(_READ_SIZE)

    def configure(self, baudrate: int, bytesize: int, parity: str, stopbits: int) -> None:
        port: Any = self._writer.transport.get_extra_info("serial")
        port.baudrate = baudrate
        port.bytesize = bytesize
        port.parity = parity
        port.stopbits = stopbits

    def close(self) -> None:
        self._writer.close()


#: IEC 62056-21 baud rate characters (mode C/E), with the common 7-9 extension.
BAUD_CHARS: dict[str, int] = {
    "0": 300,
    "1": 600,
    "2": 1200,
    "3": 2400,
    "4": 4800,
    "5": 9600,
    "6": 19200,
    "7": 38400,
    "8": 57600,
    "9": 115200,
}
_ACK = 0x06
_OPENING_BAUD = 300
_MAX_IDENTIFICATION = 64  # "/" + 3 + Z + "\W" + up to 16 characters + CR LF, with slack


@dataclass(frozen=True, slots=True)
class ModeE:
    """The meter's identification message ``/XXXZ\\2Ident``."""

    manufacturer: str  # three letters; a lowercase third letter means 20 ms reaction time
    baud_char: str
    baud: int
    hdlc: bool  # the "\\2" escape: the meter offers mode E (HDLC)
    identification: str


def parse_identification(line: bytes) -> ModeE:
    """Parse the identification message (CR LF removed or not)."""
    text = line.strip(b"\r\n").decode("ascii", errors="replace")
    start = text.rfind("/")
    if start < 0 or len(text) - start < 5:
        raise MeterProtocolError(f"not an IEC 62056-21 identification message: {text!r}")
    body = text[start + 1 :]
    manufacturer, baud_char, rest = body[:3], body[3], body[4:]
    if baud_char not in BAUD_CHARS:
        raise MeterProtocolError(f"identification {text!r}: unknown baud rate character")
    hdlc = rest.startswith("\\2")
    ident = rest[2:] if rest.startswith("\\") and len(rest) >= 2 else rest
    return ModeE(manufacturer, baud_char, BAUD_CHARS[baud_char], hdlc, ident)


def mode_e_ack(baud_char: str) -> bytes:
    """The acknowledgement that switches to HDLC: ACK '2' (HDLC procedure) Z '2' CR LF."""
    if baud_char not in BAUD_CHARS:
        raise ValueError(f"unknown baud rate character {baud_char!r}")
    return bytes((_ACK, 0x32, ord(baud_char), 0x32, 0x0D, 0x0A))


async def _read_line(line: SerialLine, timeout: float) -> bytes:
    buffer = bytearray()
    try:
        async with asyncio.timeout(timeout):
            while not buffer.endswith(b"\r\n"):
                chunk = await line.read()
                if not chunk:
                    raise ConnectionLostError(f"serial {line.name}: closed during the opening")
                buffer += chunk
                if len(buffer) > 4 * _MAX_IDENTIFICATION:
                    raise MeterProtocolError(f"serial {line.name}: no identification message")
    except TimeoutError as exc:
        raise ResponseTimeoutError(
            f"serial {line.name}: no identification within {timeout:g} s"
        ) from exc
    return bytes(buffer)


async def mode_e_open(
    line: SerialLine,
    *,
    max_baud: int = 9600,
    address: str = "",
    timeout: float = 2.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> ModeE:
    """The IEC 62056-21 opening for mode E, leaving the line in HDLC at the agreed rate.

    At 300 baud 7E1: send ``/?`` address ``!`` CR LF, read ``/XXXZ\\2Ident`` CR LF, answer
    ``06 32 Z 32 0D 0A`` with Z the lower of the meter's offer and ``max_baud``, wait until
    the acknowledgement has left the port, then switch to Z at 8N1.
    """
    line.configure(_OPENING_BAUD, 7, "E", 1)
    await line.write(b"/?" + address.encode("ascii") + b"!\r\n")
    ident = parse_identification(await _read_line(line, timeout))
    if not ident.hdlc:
        raise MeterProtocolError(
            f"serial {line.name}: meter {ident.manufacturer} {ident.identification!r} does "
            "not offer mode E (HDLC)"
        )
    allowed = [c for c, b in BAUD_CHARS.items() if b <= min(ident.baud, max_baud)]
    if not allowed:
        raise MeterProtocolError(f"serial {line.name}: no baud rate at or below {max_baud}")
    chosen = max(allowed, key=lambda c: BAUD_CHARS[c])
    ack = mode_e_ack(chosen)
    await line.write(ack)
    # 10 bits a character at 300 baud, plus the meter's 200 ms to switch over
    await sleep(len(ack) * 10 / _OPENING_BAUD + 0.2)
    line.configure(BAUD_CHARS[chosen], 8, "N", 1)
    log.info(
        "serial %s: mode E with %s %s at %d baud",
        line.name,
        ident.manufacturer,
        ident.identification,
        BAUD_CHARS[chosen],
        extra={"port": line.name, "baud": BAUD_CHARS[chosen]},
    )
    return ModeE(ident.manufacturer, chosen, BAUD_CHARS[chosen], True, ident.identification)


class SerialTransport:
    """A serial line carrying HDLC; build it with :meth:`open`."""

    def __init__(self, line: SerialLine, mode_e: ModeE | None = None) -> None:
        self._line = line
        self.mode_e = mode_e

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        baudrate: int = 9600,
        mode_e: bool = False,
        address: str = "",
        timeout: float = 2.0,
        line: SerialLine | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> SerialTransport:
        """Open ``url`` (``/dev/ttyUSB0``, ``socket://host:port``, ...) at ``baudrate`` 8N1,
        or with the mode E opening up to ``baudrate``. ``line`` replaces the port (tests)."""
        if line is None:
            line = await PySerialLine.open(url, _OPENING_BAUD if mode_e else baudrate)
        try:
            if mode_e:
                agreed = await mode_e_open(
                    line, max_baud=baudrate, address=address, timeout=timeout, sleep=sleep
                )
                return cls(line, agreed)
            line.configure(baudrate, 8, "N", 1)
        except CollectError:
            line.close()
            raise
        except Exception as exc:
            line.close()
            raise translate(exc) from exc
        except BaseException:
            line.close()
            raise
        return cls(line)

    @property
    def peer(self) -> str:
        return f"serial {self._line.name}"

    async def send(self, data: bytes) -> None:
        try:
            await self._line.write(data)
        except (ConnectionError, OSError) as exc:
            raise ConnectionLostError(f"{self.peer}: {exc}") from exc

    async def receive(self) -> bytes:
        try:
            return await self._line.read()
        except (ConnectionError, OSError) as exc:
            raise ConnectionLostError(f"{self.peer}: {exc}") from exc

    def close(self) -> None:
        self._line.close()
