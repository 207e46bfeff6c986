"""A DLMS session: the thin asyncio shell over the sans-IO :class:`DlmsClient`.

::

    async with DlmsSession(transport, ClientSettings(...), timeout=5, meter_id="M1") as s:
        clock = await s.read_clock()
        energy = await s.read_register("1.0.1.8.0.255")
        rows = await s.read_profile("1.0.99.1.0.255", start, end)   # selective by range
    # released (RLRQ/RLRE), HDLC disconnected, transport closed

One reader task (named ``dlms-reader <meter>``) pumps bytes from the transport into the
client, puts each event on a bounded queue and sends what the client queues by itself
(the AARQ after the UA, GET-next for data blocks, HDLC RR). A request sends its bytes and
waits for its answer, matched by invoke-id, under the per-request ``timeout``: silence is
:class:`ResponseTimeoutError` (E04); with HDLC the client first polls once (the meter
repeats its last frame). Authentication and ciphering failures are
:class:`SecurityLevelError` (E09); every error names the meter and is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from types import TracebackType

from meterledger.codec.dlms.apdu_common import SelectiveAccess
from meterledger.codec.dlms.apdu_selective import range_access
from meterledger.codec.dlms.association import AssociationState
from meterledger.codec.dlms.client import (
    Associated,
    ClientEvent,
    ClientSettings,
    Disconnected,
    DlmsClient,
    GetFailed,
    GetResult,
    Released,
)
from meterledger.codec.dlms.cosem import (
    CaptureObject,
    ClockValue,
    ObjectListEntry,
    RegisterValue,
    ScalerUnit,
    parse_buffer,
    parse_capture_objects,
    parse_object_list,
    parse_scaler_unit,
)
from meterledger.codec.dlms.cursor import NeedDataType as _NeedDataType
from meterledger.codec.dlms.data import Data
from meterledger.codec.dlms.errors import DlmsLocalError, DlmsRemoteError
from meterledger.collect.config import MeterEndpoint
from meterledger.collect.errors import (
    CollectError,
    ConnectionLostError,
    MeterDataAccessError,
    MeterProtocolError,
    ResponseTimeoutError,
    translate,
)
from meterledger.collect.transport import SerialTransport, TcpTransport, Transport

__all__ = [
    "ASSOCIATION_OBIS",
    "CLOCK_OBIS",
    "Connector",
    "DlmsSession",
    "ProfileRead",
    "client_settings",
    "open_session",
    "open_transport",
]

log = logging.getLogger("meterledger.collect")
CLOCK_OBIS = "0.0.1.0.0.255"
ASSOCIATION_OBIS = "0.0.40.0.0.255"
Connector = Callable[[MeterEndpoint], Awaitable[Transport]]
_Item = ClientEvent | BaseException


@dataclass(frozen=True, slots=True)
class ProfileRead:
    """A Profile Generic read: its columns, capture period (s) and the rows asked for."""

    obis: str
    capture_objects: tuple[CaptureObject, ...]
    capture_period: int
    rows: tuple[tuple[Data, ...], ...]


def _int(d: Data, what: str) -> int:
    if not isinstance(d.value, int) or isinstance(d.value, bool):
        raise MeterProtocolError(f"{what}: expected an integer, got {d.type.name}")
    return d.value


class DlmsSession:
    """One association with one logical device over ``transport`` (see the module doc)."""

    def __init__(
        self,
        transport: Transport,
        settings: ClientSettings,
        *,
        timeout: float = 5.0,
        meter_id: str = "",
        polls: int | None = None,
        zone: tzinfo | None = None,
    ) -> None:
        self.transport = transport
        self.settings = settings
        self.timeout = timeout
        self.meter_id = meter_id
        self.zone = zone
        self.polls = (1 if settings.framing == "hdlc" else 0) if polls is None else polls
        self.client = DlmsClient(settings)
        self.associated: Associated | None = None
        self._events: asyncio.Queue[_Item] = asyncio.Queue(maxsize=64)
        self._reader: asyncio.Task[None] | None = None
        self._heard = 0.0  # loop time of the last bytes received

    @property
    def server_counter(self) -> int | None:
        """The meter's last invocation counter accepted in this session (persist it)."""
        return self.client.last_server_counter

    def _error(self, exc: BaseException) -> CollectError:
        return translate(exc, meter_id=self.meter_id or None)

    # -- the reader task ---------------------------------------------------------------
    async def _read_loop(self) -> None:
        client, events = self.client, self._events
        while True:
            try:
                data = await self.transport.receive()
            except Exception as exc:
                await events.put(exc)
                return
            if not data:
                await events.put(ConnectionLostError(f"{self.transport.peer} closed the link"))
                return
            self._heard = asyncio.get_running_loop().time()
            try:
                client.receive_data(data)
                while True:
                    event = client.next_event()
                    if isinstance(event, _NeedDataType):
                        break
                    await events.put(event)
                reply = client.data_to_send()
                if reply:
                    await self.transport.send(reply)
            except Exception as exc:
                await events.put(exc)
                if client.state is AssociationState.ERROR:
                    return

    async def _send(self, data: bytes) -> None:
        if data:
            await self.transport.send(data)

    async def _call(self, make: Callable[[], bytes]) -> None:
        try:
            data = make()
        except (DlmsLocalError, DlmsRemoteError) as exc:
            raise self._error(exc) from exc
        await self._send(data)

    async def _expect(self, what: str) -> ClientEvent:
        """The next event. E04 after ``timeout`` seconds without a byte from the meter:
        a long answer (data blocks, HDLC segments) keeps the request alive while it flows."""
        loop = asyncio.get_running_loop()
        asked = loop.time()
        polls = self.polls
        while True:
            wait = self.timeout - (loop.time() - max(asked, self._heard))
            if wait > 0:
                try:
                    async with asyncio.timeout(wait):
                        item = await self._events.get()
                except TimeoutError:
                    continue  # look again: bytes may have come in meanwhile
                if isinstance(item, BaseException):
                    raise self._error(item) from item
                return item
            if polls > 0:
                polls -= 1
                try:
                    poll = self.client.poll()  # HDLC: ask the meter to repeat its frame
                except DlmsLocalError:
                    poll = b""  # no link yet (the SNRM unanswered): nothing to repeat
                if poll:
                    await self._send(poll)
                    asked = loop.time()
                    continue
            raise self._error(
                ResponseTimeoutError(f"no answer to {what} within {self.timeout:g} s")
            )

    # -- life cycle ----------------------------------------------------------------------
    async def __aenter__(self) -> DlmsSession:
        self._reader = asyncio.create_task(
            self._read_loop(), name=f"dlms-reader {self.meter_id or self.transport.peer}"
        )
        try:
            await self._call(self.client.start)
            event = await self._expect("the association request")
            if not isinstance(event, Associated):
                raise MeterProtocolError(f"{type(event).__name__} where the AARE was expected")
            self.associated = event
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None and self.client.state is AssociationState.ASSOCIATED:
                with contextlib.suppress(CollectError):
                    await self.release()
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        try:
            if self.settings.framing == "hdlc" and self.client.state in (
                AssociationState.CONNECTED,
                AssociationState.ASSOCIATED,
            ):
                with contextlib.suppress(CollectError, DlmsLocalError, DlmsRemoteError):
                    await self._send(self.client.disconnect())
                    saved, self.polls = self.polls, 0
                    try:
                        event = await self._expect("the DISC")
                        if not isinstance(event, Disconnected):
                            log.debug("after DISC: %s", type(event).__name__)
                    finally:
                        self.polls = saved
        finally:
            if self._reader is not None:
                self._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._reader
                self._reader = None
            self.transport.close()

    async def release(self) -> None:
        """Release the association (RLRQ → RLRE)."""
        await self._call(self.client.release)
        event = await self._expect("the release request")
        if not isinstance(event, Released):
            raise self._error(MeterProtocolError(f"{type(event).__name__} answers the RLRQ"))

    # -- services ------------------------------------------------------------------------
    async def get(
        self,
        class_id: int,
        obis: str,
        attribute: int,
        *,
        selective: SelectiveAccess | None = None,
    ) -> Data:
        """GET one attribute; E06 if the meter answers with a data-access result."""
        what = f"GET {class_id}/{obis}/{attribute}"
        await self._call(lambda: self.client.get(class_id, obis, attribute, selective=selective))
        event = await self._expect(what)
        if isinstance(event, GetResult):
            return event.value
        if isinstance(event, GetFailed):
            raise self._error(MeterDataAccessError(f"{what}: {event.result.standard_name}"))
        raise self._error(MeterProtocolError(f"{type(event).__name__} answers {what}"))

    async def read_clock(self, obis: str = CLOCK_OBIS) -> ClockValue:
        """The meter's clock (attribute 2): the instant in the meter's own offset."""
        data = await self.get(8, obis, 2)
        try:
            value = data.to_cosem_datetime()
            return ClockValue(value.to_datetime(self.zone), value.deviation, value.status)
        except (DlmsLocalError, DlmsRemoteError) as exc:
            raise self._error(MeterProtocolError(f"clock {obis}: {exc}")) from exc

    async def read_scaler_unit(self, obis: str, class_id: int = 3) -> ScalerUnit:
        try:
            return parse_scaler_unit(await self.get(class_id, obis, 3))
        except DlmsRemoteError as exc:
            raise self._error(exc) from exc

    async def read_register(self, obis: str, class_id: int = 3) -> RegisterValue:
        """A Register (3) or Extended Register (4): raw value, scaler and unit."""
        value = await self.get(class_id, obis, 2)
        scaler_unit = await self.read_scaler_unit(obis, class_id)
        return RegisterValue(_int(value, f"{obis} value"), scaler_unit.scaler, scaler_unit.unit)

    async def read_capture_objects(self, obis: str) -> tuple[CaptureObject, ...]:
        try:
            return parse_capture_objects(await self.get(7, obis, 3))
        except DlmsRemoteError as exc:
            raise self._error(exc) from exc

    async def read_capture_period(self, obis: str) -> int:
        return _int(await self.get(7, obis, 4), f"{obis} capture_period")

    async def read_profile(
        self, obis: str, start: datetime, end: datetime
    ) -> tuple[tuple[Data, ...], ...]:
        """Buffer rows captured from ``start`` to ``end`` (inclusive), by range."""
        data = await self.get(7, obis, 2, selective=range_access(start, end))
        try:
            return parse_buffer(data)
        except DlmsRemoteError as exc:
            raise self._error(exc) from exc

    async def read_profile_generic(self, obis: str, start: datetime, end: datetime) -> ProfileRead:
        """Capture objects, capture period and the rows from ``start`` to ``end``."""
        objects = await self.read_capture_objects(obis)
        period = await self.read_capture_period(obis)
        rows = await self.read_profile(obis, start, end)
        return ProfileRead(obis, objects, period, rows)

    async def read_object_list(self, obis: str = ASSOCIATION_OBIS) -> tuple[ObjectListEntry, ...]:
        """The current association's object list (Association LN attribute 2)."""
        try:
            return parse_object_list(await self.get(15, obis, 2))
        except DlmsRemoteError as exc:
            raise self._error(exc) from exc


# -- from a fleet entry --------------------------------------------------------------------


def client_settings(
    meter: MeterEndpoint,
    *,
    system_title: bytes,
    counters: range | None = None,
    server_counter_floor: int | None = None,
    challenge: bytes | None = None,
) -> ClientSettings:
    """The :class:`ClientSettings` of a fleet entry. The HLS challenge comes from the OS
    CSPRNG unless given; ``counters`` is the block reserved in the store."""
    secured = meter.security != "none" or meter.auth == "hls-gmac"
    if meter.auth == "hls-gmac" and challenge is None:
        challenge = secrets.token_bytes(16)
    try:
        return ClientSettings(
            framing=meter.framing,  # type: ignore[arg-type]
            client_sap=meter.client_sap,
            server_logical=meter.server_sap,
            server_physical=meter.physical,
            address_size=meter.address_size,
            auth=meter.auth,  # type: ignore[arg-type]
            password=meter.password or None,
            security=meter.security,  # type: ignore[arg-type]
            ciphering=meter.ciphering,  # type: ignore[arg-type]
            ek=meter.ek or None,
            ak=meter.ak or None,
            system_title=system_title if secured else None,
            challenge=challenge,
            invocation_counters=counters if counters is not None else (),
            last_server_counter=server_counter_floor or None,
        )
    except DlmsLocalError as exc:
        raise MeterProtocolError(f"meter {meter.meter_id}: {exc}") from exc


async def open_transport(meter: MeterEndpoint) -> Transport:
    """TCP to ``host:port`` or the serial ``device`` (with the mode E opening if asked)."""
    if meter.device is not None:
        return await SerialTransport.open(
            meter.device, baudrate=meter.baud, mode_e=meter.mode_e, timeout=meter.timeout
        )
    assert meter.host is not None
    return await TcpTransport.connect(meter.host, meter.port, timeout=meter.timeout)


@contextlib.asynccontextmanager
async def open_session(
    meter: MeterEndpoint,
    *,
    system_title: bytes,
    counters: range | None = None,
    server_counter_floor: int | None = None,
    connect: Connector | None = None,
    zone: tzinfo | None = None,
) -> AsyncIterator[DlmsSession]:
    """Connect, associate, yield the session; release and close on the way out."""
    settings = client_settings(
        meter,
        system_title=system_title,
        counters=counters,
        server_counter_floor=server_counter_floor,
    )
    try:
        transport = await (connect or open_transport)(meter)
    except Exception as exc:
        raise translate(exc, meter_id=meter.meter_id) from exc
    session = DlmsSession(
        transport, settings, timeout=meter.timeout, meter_id=meter.meter_id, zone=zone
    )
    async with session:
        yield session
