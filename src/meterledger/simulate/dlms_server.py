"""A DLMS/COSEM meter simulator on TCP: N meters behind one listening port.

Addressing. Every meter is a logical device of the one port, addressed as meter index
``i`` (0-based) by logical address ``1 + i``: the destination wPort of the IEC 62056-47
wrapper, or the upper HDLC address (with any lower, physical, address; 17 is usual) for
HDLC over TCP. A connection may talk to several meters, one after the other or
interleaved, as through a gateway; each (connection, logical device) pair gets its own
sans-IO :class:`~meterledger.codec.dlms.server.DlmsServer`. Frames for an address with no
meter are ignored, as a meter ignores what is not meant for it (the client times out).

Associations, by :class:`SecurityMode`: the public client (SAP 16) always associates
without authentication; the management client (SAP 1) with nothing (``none``), the LLS
password (``lls``), HLS-GMAC (``hls``) or HLS-GMAC with every APDU authenticated and
encrypted by suite 0 (``hls-auth-enc``, either ciphering style). Outside ``none`` the
public client may read only the association, the clock and the meter's names. Keys come
from :func:`~meterledger.simulate.dlms_meter.keys_for`; a meter with ``wrong_keys`` holds
those of generation 1, which a head-end never learns (it sees E09).

Behaviour per meter (:class:`MeterBehaviour`): a response delay (fixed, or uniform in a
range, seeded), dropped responses (a probability, or ``silent``: never a word, E04 at the
client), clock drift and outages. The server never blocks: one task per connection,
``asyncio.sleep`` for the latency, meters (and their profiles) built on first use.

Time. The simulator's "now" is ``SimulatorConfig.clock`` (the wall clock by default, read
here at the edge, never in the meter model). Without ``start`` each meter holds ``days``
whole local days before today plus today so far, captured as time passes.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from meterledger.codec.dlms.apdu_common import SelectiveAccess
from meterledger.codec.dlms.codes import ActionResult, DataAccessResult
from meterledger.codec.dlms.cosem import ObjectListEntry
from meterledger.codec.dlms.cursor import NEED_DATA
from meterledger.codec.dlms.data import Data
from meterledger.codec.dlms.errors import CorruptFrameError, DecodeError, DlmsLocalError
from meterledger.codec.dlms.hdlc_frame import FrameParser, HdlcAddress, HdlcFrame, encode_frame
from meterledger.codec.dlms.server import (
    AssociationOpened,
    AssociationRefused,
    ClientPolicy,
    Disconnected,
    DlmsServer,
    Released,
    ServerSettings,
)
from meterledger.codec.dlms.wrapper import WrapperParser, WrapperPdu, encode_wrapper
from meterledger.core.errors import ConfigError
from meterledger.core.time import parse_zone
from meterledger.simulate.dlms_meter import (
    ASSOCIATION_LN,
    CLOCK,
    DEVICE_NAME,
    METER_SERIAL,
    MeterKeys,
    SimulatedDlmsMeter,
    keys_for,
)
from meterledger.simulate.fleet import make_fleet
from meterledger.simulate.stream_server import StreamServer

__all__ = [
    "MANAGEMENT_CLIENT",
    "PUBLIC_CLIENT",
    "DlmsSimulator",
    "Framing",
    "MeterBehaviour",
    "SecurityMode",
    "SimulatorConfig",
    "logical_address",
]

PUBLIC_CLIENT = 16
MANAGEMENT_CLIENT = 1
_MAX_METERS = {"wrapper": 0xFFFE, "hdlc": 0x3FFE}  # wPort 1..65535, HDLC upper 1..16383
_PUBLIC_OBJECTS = frozenset({ASSOCIATION_LN, CLOCK, DEVICE_NAME, METER_SERIAL})
_READ_SIZE = 65536


class Framing(enum.StrEnum):
    WRAPPER = "wrapper"  # IEC 62056-47, TCP port 4059
    HDLC = "hdlc"  # IEC 62056-46 frames carried over TCP


class SecurityMode(enum.StrEnum):
    """What the management client (SAP 1) must present."""

    NONE = "none"
    LLS = "lls"
    HLS = "hls"
    HLS_AUTH_ENC = "hls-auth-enc"


def logical_address(meter_index: int) -> int:
    """The wPort / upper HDLC address of meter ``meter_index``."""
    return 1 + meter_index


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterBehaviour:
    """How one meter misbehaves. ``delay`` is seconds before each response, uniform in
    ``(low, high)`` (fixed when equal); ``drop_rate`` the chance a response is lost."""

    delay: tuple[float, float] = (0.0, 0.0)
    drop_rate: float = 0.0
    silent: bool = False
    wrong_keys: bool = False
    clock_drift_s_per_day: float = 0.0
    outages: tuple[tuple[datetime, datetime], ...] = ()

    def __post_init__(self) -> None:
        low, high = self.delay
        if not 0 <= low <= high:
            raise ConfigError(f"delay range must be 0 <= low <= high, got {self.delay}")
        if not 0.0 <= self.drop_rate <= 1.0:
            raise ConfigError(f"drop rate must be 0..1, got {self.drop_rate}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorConfig:
    """The fleet the simulator serves. Meter ``i`` is ``MTR-{i+1:05d}`` of
    :func:`~meterledger.simulate.fleet.make_fleet` (same kind and size as in the CSV
    feeds); ``overrides`` replace ``behaviour`` for single meters."""

    meters: int
    seed: int = 1
    host: str = "127.0.0.1"
    port: int = 4059
    framing: Framing = Framing.WRAPPER
    security: SecurityMode = SecurityMode.NONE
    days: int = 1
    start: datetime | None = None
    tz: str = "America/New_York"
    behaviour: MeterBehaviour = MeterBehaviour()
    overrides: Mapping[int, MeterBehaviour] = field(default_factory=dict)
    clock: Callable[[], datetime] | None = None
    max_pdu: int = 1024
    backlog: int = 4096

    def __post_init__(self) -> None:
        limit = _MAX_METERS[Framing(self.framing)]
        if not 1 <= self.meters <= limit:
            raise ConfigError(f"{self.framing} addresses 1..{limit} meters, not {self.meters}")
        if self.days < 1:
            raise ConfigError(f"days must be at least 1, got {self.days}")
        if any(not 0 <= index < self.meters for index in self.overrides):
            raise ConfigError("overrides name a meter index outside the fleet")
        parse_zone(self.tz)

    def behaviour_of(self, index: int) -> MeterBehaviour:
        return self.overrides.get(index, self.behaviour)


class _View:
    """The model as one association sees it: outside ``SecurityMode.NONE`` the public
    client reads only the association, the clock and the names, and changes nothing."""

    def __init__(self, meter: SimulatedDlmsMeter, restricted: bool) -> None:
        self.meter = meter
        self.restricted = restricted
        self.client_sap: int | None = None

    def _public(self) -> bool:
        return self.restricted and self.client_sap != MANAGEMENT_CLIENT

    def get(
        self, class_id: int, obis: bytes, attribute: int, selective: SelectiveAccess | None
    ) -> Data | DataAccessResult:
        if self._public() and obis not in _PUBLIC_OBJECTS:
            return DataAccessResult.READ_WRITE_DENIED
        return self.meter.get(class_id, obis, attribute, selective)

    def set(
        self,
        class_id: int,
        obis: bytes,
        attribute: int,
        value: Data,
        selective: SelectiveAccess | None,
    ) -> DataAccessResult:
        if self._public():
            return DataAccessResult.READ_WRITE_DENIED
        return self.meter.set(class_id, obis, attribute, value, selective)

    def action(
        self, class_id: int, obis: bytes, method: int, parameters: Data | None
    ) -> tuple[ActionResult, Data | None]:
        if self._public():
            return ActionResult.READ_WRITE_DENIED, None
        return self.meter.action(class_id, obis, method, parameters)

    def object_list(self) -> tuple[ObjectListEntry, ...]:
        return self.meter.object_list()


class _MeterState:
    """What the simulator keeps per meter across connections: the model, the network's
    random stream, our invocation counters and the last client counter accepted."""

    __slots__ = (
        "_challenges",
        "_network",
        "_seed",
        "behaviour",
        "counters",
        "last_client_counter",
        "meter",
    )

    def __init__(self, meter: SimulatedDlmsMeter, behaviour: MeterBehaviour, seed: int) -> None:
        self.meter = meter
        self.behaviour = behaviour
        self.counters: Iterator[int] = itertools.count(1)
        self.last_client_counter: int | None = None
        # Mersenne Twister states are 2.5 kB each: made only for meters that need them.
        self._seed = f"{seed}:{meter.index}"
        self._network: random.Random | None = None
        self._challenges: random.Random | None = None

    @property
    def network(self) -> random.Random:
        if self._network is None:
            self._network = random.Random(f"{self._seed}:network")
        return self._network

    def challenge(self) -> bytes:
        """StoC for an HLS association (seeded: a simulator, not a meter to trust)."""
        if self._challenges is None:
            self._challenges = random.Random(f"{self._seed}:challenge")
        return self._challenges.randbytes(16)

    def delay(self) -> float:
        low, high = self.behaviour.delay
        return low if high <= low else self.network.uniform(low, high)

    def dropped(self) -> bool:
        rate = self.behaviour.drop_rate
        return self.behaviour.silent or (rate > 0 and self.network.random() < rate)


class _Session:
    """One logical device on one connection."""

    def __init__(
        self, sim: DlmsSimulator, state: _MeterState, hdlc: HdlcAddress | None = None
    ) -> None:
        self.sim = sim
        self.state = state
        self.hdlc = hdlc
        self.view = _View(state.meter, sim.config.security is not SecurityMode.NONE)
        self.server = self._build()

    def _build(self) -> DlmsServer:
        meter, config = self.state.meter, self.sim.config
        self.keys = meter.keys
        hdlc = self.hdlc
        return DlmsServer(
            ServerSettings(
                framing="hdlc" if hdlc is not None else "wrapper",
                logical_address=logical_address(meter.index),
                physical_address=0 if hdlc is None or hdlc.lower is None else hdlc.lower,
                address_size=4 if hdlc is None else hdlc.size,
                clients=_policies(config.security, self.keys),
                ek=self.keys.ek,
                ak=self.keys.ak,
                system_title=self.keys.system_title,
                next_challenge=self.state.challenge,
                invocation_counters=self.state.counters,
                last_client_counter=self.state.last_client_counter,
                max_pdu=config.max_pdu,
            ),
            self.view,
        )

    def feed(self, data: bytes) -> bytes:
        """Hand ``data`` to the server and return its answers."""
        server = self.server
        server.receive_data(data)
        rebuild = False
        while (event := server.next_event()) is not NEED_DATA:
            if isinstance(event, AssociationOpened):
                self.view.client_sap = event.client_sap
                self.state.meter.client_system_title = event.client_system_title or b""
            elif isinstance(event, Released | Disconnected | AssociationRefused):
                self.view.client_sap = None
                rebuild = self.hdlc is None and self.state.meter.keys != self.keys
        answer = server.data_to_send()
        if self.state.meter.keys != self.keys:
            self.state.last_client_counter = None  # a new key starts the counters afresh
        elif server.last_client_counter is not None:
            self.state.last_client_counter = server.last_client_counter
        if rebuild:  # keys transferred: the next association uses them
            self.server = self._build()
        return answer


def _policies(mode: SecurityMode, keys: MeterKeys) -> tuple[ClientPolicy, ...]:
    public = ClientPolicy(PUBLIC_CLIENT)
    if mode is SecurityMode.LLS:
        return public, ClientPolicy(MANAGEMENT_CLIENT, "low", keys.password)
    if mode is SecurityMode.HLS:
        return public, ClientPolicy(MANAGEMENT_CLIENT, "hls-gmac")
    if mode is SecurityMode.HLS_AUTH_ENC:
        return public, ClientPolicy(MANAGEMENT_CLIENT, "hls-gmac", security="auth-enc")
    return public, ClientPolicy(MANAGEMENT_CLIENT)


class _Connection:
    """One TCP connection: finds each frame's logical device and answers for it."""

    def __init__(self, sim: DlmsSimulator, writer: asyncio.StreamWriter) -> None:
        self.sim = sim
        self.writer = writer
        self.sessions: dict[int, _Session] = {}
        hdlc = sim.config.framing is Framing.HDLC
        self.frames = FrameParser() if hdlc else None
        self.pdus = None if hdlc else WrapperParser()

    async def receive(self, data: bytes) -> None:
        for session, raw in self._route(data):
            answer = session.feed(raw)
            if answer:
                await self._respond(session.state, answer)

    def _route(self, data: bytes) -> list[tuple[_Session, bytes]]:
        routed: list[tuple[_Session, bytes]] = []
        if self.pdus is not None:
            self.pdus.receive_data(data)  # a corrupt stream raises: the connection ends
            while isinstance(pdu := self.pdus.next_pdu(), WrapperPdu):
                session = self._session(pdu.dst, None)
                if session is not None:
                    routed.append((session, encode_wrapper(pdu.src, pdu.dst, pdu.apdu)))
            return routed
        assert self.frames is not None
        self.frames.receive_data(data)
        while True:
            try:
                frame = self.frames.next_frame()
            except (CorruptFrameError, DecodeError):
                continue  # line noise: the parser has moved past it
            if not isinstance(frame, HdlcFrame):
                return routed
            session = self._session(frame.dst.upper, frame.dst)
            if session is not None:
                routed.append((session, encode_frame(frame)))

    def _session(self, address: int, hdlc: HdlcAddress | None) -> _Session | None:
        session = self.sessions.get(address)
        if session is None:
            state = self.sim.state(address - 1)
            if state is None:
                return None
            session = self.sessions[address] = _Session(self.sim, state, hdlc)
        return session

    async def _respond(self, state: _MeterState, answer: bytes) -> None:
        stats = self.sim.stats
        if state.dropped():
            stats["dropped"] += 1
            return
        pause = state.delay()
        if pause > 0:
            await asyncio.sleep(pause)
        self.writer.write(answer)
        await self.writer.drain()
        stats["responses"] += 1


class DlmsSimulator(StreamServer):
    """The simulator: ``async with DlmsSimulator(config) as sim`` listens on
    ``config.host`` (port 0 picks a free one: see :attr:`port`) until the block ends."""

    what = "the simulator"
    ends = (CorruptFrameError, DlmsLocalError)

    def __init__(self, config: SimulatorConfig) -> None:
        super().__init__()
        self.config = config
        self.clock = config.clock or (lambda: datetime.now(UTC))
        self.start = config.start or self._default_start()
        self.stats.update(responses=0, dropped=0)
        self._fleet = make_fleet(config.meters, seed=config.seed, tz=config.tz)
        self._states: dict[int, _MeterState] = {}

    def _default_start(self) -> datetime:
        zone = parse_zone(self.config.tz)
        today = self.clock().astimezone(zone).date() - timedelta(days=self.config.days)
        return datetime(today.year, today.month, today.day, tzinfo=zone).astimezone(UTC)

    @property
    def profile_days(self) -> int:
        """Days each meter's profile spans (today is one more without a fixed start)."""
        return self.config.days + (1 if self.config.start is None else 0)

    def keys(self, meter_index: int) -> MeterKeys:
        """The keys a head-end is given for the meter (a wrong-key meter holds others)."""
        return keys_for(meter_index, self.config.seed)

    def meter(self, meter_index: int) -> SimulatedDlmsMeter:
        """Meter ``meter_index``, built on first use."""
        state = self.state(meter_index)
        if state is None:
            raise IndexError(f"no meter {meter_index} in a fleet of {self.config.meters}")
        return state.meter

    def state(self, meter_index: int) -> _MeterState | None:
        if not 0 <= meter_index < self.config.meters:
            return None
        state = self._states.get(meter_index)
        if state is None:
            config, spec = self.config, self._fleet[meter_index]
            behaviour = config.behaviour_of(meter_index)
            meter = SimulatedDlmsMeter(
                spec.meter_id,
                seed=config.seed,
                kind=spec.kind,
                start=self.start,
                days=self.profile_days,
                clock_drift_s_per_day=behaviour.clock_drift_s_per_day,
                outages=behaviour.outages,
                tz=config.tz,
                index=meter_index,
                keys=keys_for(meter_index, config.seed, generation=int(behaviour.wrong_keys)),
                clock=self.clock,
                daily_kwh=spec.daily_kwh,
                security_policy=3 if config.security is SecurityMode.HLS_AUTH_ENC else 0,
            )
            state = self._states[meter_index] = _MeterState(meter, behaviour, config.seed)
        return state

    async def start_serving(self) -> None:
        await self.listen(self.config.host, self.config.port, backlog=self.config.backlog)

    async def start_default(self) -> None:
        await self.start_serving()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(self, writer)
        while data := await reader.read(_READ_SIZE):
            await connection.receive(data)
