"""The fleet collector: read many meters at once, each on its own terms, none stopping another.

For each meter (at most ``concurrency`` at a time, by a pool of workers)::

    due? ── no ──► skipped (read less than ``every_seconds`` ago; --force reads anyway)
     │ yes
    deadline ┬─ attempt 1 ── breaker allows? ── reserve counters ── session ── release
             ├─ attempt 2 … (transient failures only, jittered exponential backoff)
             └─ the read: clock (drift recorded), profile since the last stored interval
    handoff ──► the ledger (ingest pipeline, in batches across meters): exactly once
                (and the registers' values at each capture time, as register reads);
                a batch the store fails: each meter retried, then a dead letter (E08)

A session reads the clock (drift = meter time − head-end time at the request's midpoint),
the profile's capture objects and capture period, the scaler_unit of each mapped register,
and the buffer by range from the last stored interval (its row is the baseline of the
first delta) or the lookback window's start, to now. Invocation counters: a block is
reserved in the store before each secured session and passed to the client; the meter's
last counter is persisted after it, so no counter is used twice and no meter counter is
accepted twice, whatever fails.

Everything that touches the store goes through a :class:`Ledger`, called on one worker
thread (the store has one writer; the event loop is never blocked by it). The composition
root (``meterledger collect``) provides the ledger over the Store and the ingest pipeline.

Register reads (each cumulative register's total at each capture time, for VEE's sum
check and register-delta estimate) go in the same handoff batch, before its readings, to
:meth:`RegisterLedger.deliver_registers`; a plain :class:`Ledger` is handed none.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from meterledger.collect.breaker import BreakerBoard, BreakerEvent, CircuitBreaker, Listener
from meterledger.collect.config import Fleet, MeterEndpoint
from meterledger.collect.deadletter import DELIVERY_POLICY
from meterledger.collect.errors import (
    CircuitOpenError,
    CollectError,
    DeadlineExceededError,
    translate,
)
from meterledger.collect.handoff import DeadLetteredError, Handoff, HandoffJob, LedgerThread
from meterledger.collect.ledger import (
    ClockSample,
    HandoffCounts,
    Ledger,
    RegisterCounts,
    RegisterLedger,
)
from meterledger.collect.profile import (
    ChannelKind,
    ProfileMap,
    RegisterSample,
    load_profile_map,
    profile_readings,
)
from meterledger.collect.retry import RetryPolicy, with_retries
from meterledger.collect.session import Connector, DlmsSession, client_settings, open_transport
from meterledger.core.reading import Reading
from meterledger.core.time import epoch_of, from_epoch, parse_zone

__all__ = [
    "ClockSample",
    "CollectRun",
    "FleetCollector",
    "HandoffCounts",
    "Ledger",
    "MeterResult",
    "RegisterCounts",
    "RegisterLedger",
]

log = logging.getLogger("meterledger.collect")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class MeterResult:
    """The outcome for one meter. ``intervals`` counts the readings handed to ingest;
    ``dead_letter`` is the id of the dead letter keeping readings that could not be stored
    (E08)."""

    meter_id: str
    ok: bool
    code: str | None
    message: str
    intervals: int = 0
    drift_ms: int | None = None
    seconds: float = 0.0
    attempts: int = 0
    skipped: bool = False
    dead_letter: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "meter_id": self.meter_id,
            "ok": self.ok,
            "code": self.code,
            "message": self.message,
            "intervals": self.intervals,
            "drift_ms": self.drift_ms,
            "seconds": round(self.seconds, 3),
            "attempts": self.attempts,
            "skipped": self.skipped,
            "dead_letter": self.dead_letter,
        }


@dataclass(frozen=True, slots=True)
class CollectRun:
    results: tuple[MeterResult, ...]
    handoff: HandoffCounts
    seconds: float
    registers: RegisterCounts = field(default_factory=RegisterCounts)

    @property
    def failed(self) -> tuple[MeterResult, ...]:
        return tuple(r for r in self.results if not r.ok)


@dataclass(slots=True)
class _Read:
    readings: tuple[Reading, ...] = ()
    drift_ms: int | None = None
    gaps: int = 0
    registers: tuple[RegisterSample, ...] = ()
    clock: ClockSample | None = None  # recorded once the readings are stored


class FleetCollector:
    """Collects a :class:`Fleet` into a :class:`Ledger`; see the module docstring.

    ``connect`` opens a meter's transport (default: TCP or serial from the endpoint);
    ``clock`` is the head-end's wall clock (epoch seconds), ``monotonic`` its timer and
    ``sleep`` the backoff sleep, all injectable for tests. The breakers come from the fleet
    file's settings (or ``breakers``, a board kept across runs, with its own listener);
    ``listener`` is told of each change of the breakers made here, on the ledger's thread
    (``meterledger collect`` saves them for ``meterledger status``)."""

    def __init__(
        self,
        fleet: Fleet,
        ledger: Ledger,
        *,
        profiles: ProfileMap | None = None,
        connect: Connector | None = None,
        force: bool = False,
        since: datetime | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        breakers: BreakerBoard | None = None,
        listener: Listener | None = None,
        delivery_policy: RetryPolicy = DELIVERY_POLICY,
    ) -> None:
        self.fleet = fleet
        self.options = fleet.options
        self.ledger = ledger
        self.profiles = profiles or load_profile_map()
        self.connect = connect
        self.force = force
        self.since = since
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        # one breaker per gateway or endpoint, named dlms/<key>; ``listener`` hears each change
        self.listener = listener
        self.breakers = breakers or BreakerBoard.of(
            self.options.breaker_settings,
            feed="dlms",
            clock=monotonic,
            listener=None if listener is None else self._tell,
        )
        self.policy = RetryPolicy(
            self.options.attempts, self.options.backoff_initial, self.options.backoff_max
        )
        self.delivery_policy = delivery_policy
        for meter in fleet.meters:  # a typo in the fleet file fails before any meter is read
            self.profiles.get(meter.profile)
        # register reads go to a ledger that keeps them; a plain Ledger is handed none
        self.registers = ledger if isinstance(ledger, RegisterLedger) else None
        self._thread: LedgerThread | None = None
        self._handoff: asyncio.Queue[HandoffJob] | None = None

    # -- the store, on its one thread ----------------------------------------------------
    def _tell(self, event: BreakerEvent) -> None:
        """Hand a breaker change to the listener on the ledger's thread (a listener that
        saves it uses the store, which has one writer); its failure never stops a read."""
        listener = self.listener
        assert listener is not None

        def call() -> None:
            try:
                listener(event)
            except Exception as exc:
                log.warning(
                    "breaker change of %s not recorded: %s: %s",
                    event.name,
                    type(exc).__name__,
                    exc,
                    extra={"endpoint": event.name, "code": "breaker-unrecorded"},
                )

        if self._thread is None:
            call()
        else:
            self._thread.executor.submit(call)

    async def _ledger(self, call: Callable[..., T], *args: object) -> T:
        assert self._thread is not None
        return await self._thread.call(call, *args)

    # -- one meter -------------------------------------------------------------------
    def _now_ms(self) -> int:
        return round(self.clock() * 1000)

    async def _due(self, meter: MeterEndpoint) -> str | None:
        """None if the meter is due; else why not."""
        if self.force or self.since is not None or self.options.every_seconds <= 0:
            return None
        last = await self._ledger(self.ledger.last_read_ms, meter.meter_id)
        if last is None:
            return None
        age = (self._now_ms() - last) / 1000
        if age >= self.options.every_seconds:
            return None
        return f"not due: read {age:.0f} s ago (every {self.options.every_seconds:g} s)"

    def _secured(self, meter: MeterEndpoint) -> bool:
        return meter.security != "none" or meter.auth == "hls-gmac"

    async def _attempt(self, meter: MeterEndpoint, breaker: CircuitBreaker, number: int) -> _Read:
        counters = floor = None
        if self._secured(meter):
            floor = await self._ledger(self.ledger.server_counter, meter.meter_id)
            counters = await self._ledger(
                self.ledger.reserve_counters, meter.meter_id, self.options.counter_block
            )
        if not breaker.allow():
            raise CircuitOpenError(
                f"circuit {breaker.name} is open (retry in {breaker.retry_after():.0f} s)"
            )
        session: DlmsSession | None = None
        try:
            settings = client_settings(
                meter,
                system_title=self.options.system_title,
                counters=counters,
                server_counter_floor=floor,
            )
            transport = await (self.connect or open_transport)(meter)
            session = DlmsSession(
                transport,
                settings,
                timeout=meter.timeout,
                meter_id=meter.meter_id,
                zone=parse_zone(meter.timezone),
            )
            async with session:
                read, clock = await self._read(meter, session)
            breaker.record_success()
            # the clock read is recorded with the readings, once they are stored: until then
            # (and if the release above failed, the readings thrown away) the meter stays due
            read.clock = clock
            return read
        except Exception as exc:
            error = translate(exc, meter_id=meter.meter_id)
            if error.transient:
                breaker.record_failure()
            else:
                breaker.record_success()  # the endpoint answered: it is up
            log.warning(
                "%s (attempt %d)",
                error,
                number,
                extra={"meter_id": meter.meter_id, "code": error.code, "attempt": number},
            )
            if error is exc:
                raise
            raise error from exc
        except BaseException:
            breaker.release()
            raise
        finally:
            seen = session.server_counter if session is not None else None
            if seen is not None:
                # shielded: a deadline that strikes now must not lose the meter's counter
                with contextlib.suppress(CollectError):
                    await asyncio.shield(
                        self._ledger(self.ledger.record_session, meter.meter_id, None, seen)
                    )

    async def _read(self, meter: MeterEndpoint, session: DlmsSession) -> tuple[_Read, ClockSample]:
        sent = self._now_ms()
        value = await session.read_clock()
        answered = self._now_ms()
        read_at = (sent + answered) // 2
        meter_ms = round(value.time.timestamp() * 1000)
        clock = ClockSample(meter.meter_id, read_at, meter_ms, meter_ms - read_at)

        spec = self.profiles.get(meter.profile)
        objects = await session.read_capture_objects(spec.obis)
        period = await session.read_capture_period(spec.obis)
        present = spec.present(objects)
        classes = {o.obis: o.class_id for o in objects}
        scalers = {
            c.capture: await session.read_scaler_unit(c.capture, classes[c.capture])
            for c in present
        }
        now = self.clock()
        if self.since is not None:
            start = epoch_of(self.since.astimezone(UTC).replace(microsecond=0))
            after: dict[str, int | None] = {c.channel: start for c in present}
        else:
            after = await self._ledger(
                self.ledger.last_interval_ends, meter.meter_id, [c.channel for c in present]
            )
            window = int(now - self.options.lookback_hours * 3600)
            window -= window % period if period > 0 else 0
            starts = [
                window
                if after.get(c.channel) is None
                else int(after[c.channel] or 0) + (c.kind is ChannelKind.INTERVAL)
                for c in present
            ]
            start = min(starts, default=window)
        end = int(now)
        if not present or start >= end:
            return _Read(drift_ms=clock.drift_ms), clock
        rows = await session.read_profile(spec.obis, from_epoch(start), from_epoch(end))
        converted = profile_readings(
            meter.meter_id,
            spec,
            objects,
            scalers,
            rows,
            capture_period=period,
            status_quality=self.profiles,
            after=after,
            zone=parse_zone(meter.timezone),
            source=f"dlms:{meter.meter_id}:{spec.obis}",
        )
        # a fast meter stamps rows ahead of our clock: they wait for the next read, so that
        # ingest never sees an interval that ends after its receipt time
        due = tuple(r for r in converted.readings if epoch_of(r.interval_end) <= end)
        registers = (
            tuple(r for r in converted.registers if r.read_at <= end)
            if self.registers is not None
            else ()
        )
        return _Read(due, clock.drift_ms, converted.gaps, registers), clock

    async def _collect(self, meter: MeterEndpoint) -> MeterResult:
        started = self.monotonic()
        meter_id = meter.meter_id
        attempts = 0

        def result(
            ok: bool,
            code: str | None,
            message: str,
            *,
            intervals: int = 0,
            drift_ms: int | None = None,
            skipped: bool = False,
            dead_letter: int | None = None,
        ) -> MeterResult:
            return MeterResult(
                meter_id,
                ok,
                code,
                message,
                intervals=intervals,
                drift_ms=drift_ms,
                seconds=self.monotonic() - started,
                attempts=attempts,
                skipped=skipped,
                dead_letter=dead_letter,
            )

        try:
            not_due = await self._due(meter)
            if not_due is not None:
                return result(True, None, not_due, skipped=True)
            breaker = self.breakers.get(meter.breaker_key)
            last_error: list[CollectError] = []

            async def attempt(number: int) -> _Read:
                nonlocal attempts
                attempts = number
                try:
                    return await self._attempt(meter, breaker, number)
                except CollectError as exc:
                    last_error[:] = [exc]
                    raise

            try:
                async with asyncio.timeout(meter.deadline):
                    read = await with_retries(attempt, self.policy, sleep=self.sleep, name=meter_id)
            except TimeoutError:
                why = f"; last: {last_error[0]}" if last_error else ""
                raise DeadlineExceededError(
                    f"deadline of {meter.deadline:g} s ran out after {attempts} attempt(s){why}"
                ) from None
            delivered = 0
            if read.readings or read.registers:  # the handoff records the clock read too
                assert self._handoff is not None
                job = HandoffJob(meter_id, read.readings, read.registers, clock=read.clock)
                await self._handoff.put(job)
                await job.done
                delivered = len(read.readings)
            elif read.clock is not None:  # the last-read rule: read (and nothing to store)
                with contextlib.suppress(CollectError):
                    await asyncio.shield(
                        self._ledger(self.ledger.record_session, meter_id, read.clock, None)
                    )
            gaps = f", {read.gaps} gap(s)" if read.gaps else ""
            return result(
                True,
                None,
                f"{delivered} interval(s) read{gaps}",
                intervals=delivered,
                drift_ms=read.drift_ms,
            )
        except Exception as exc:
            error = translate(exc, meter_id=meter_id)
            log.error(
                "%s",
                error,
                extra={"meter_id": meter_id, "code": error.code, "attempts": attempts},
            )
            kept = error.dead_letter_id if isinstance(error, DeadLetteredError) else None
            return result(False, error.code, str(error), dead_letter=kept)

    # -- the fleet -----------------------------------------------------------------------
    async def run(self, progress: Callable[[MeterResult], None] | None = None) -> CollectRun:
        started = self.monotonic()
        meters = self.fleet.meters
        todo: asyncio.Queue[MeterEndpoint] = asyncio.Queue()
        for meter in meters:
            todo.put_nowait(meter)
        results: list[MeterResult] = []
        workers = min(self.options.concurrency, len(meters))

        async def worker() -> None:
            while True:
                try:
                    meter = todo.get_nowait()
                except asyncio.QueueEmpty:
                    return
                outcome = await self._collect(meter)
                results.append(outcome)
                if progress is not None:
                    progress(outcome)

        # Thousands of live sessions make many short-lived objects and few cycles: full
        # collections would pause every session at once. Objects alive now are frozen out
        # of the collector and it runs less often, until the run ends.
        threshold = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(max(threshold[0], 50_000), threshold[1], max(threshold[2], 100))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="meterledger-ledger") as pool:
            self._thread = LedgerThread(pool)
            self._handoff = asyncio.Queue(maxsize=max(1, workers))
            delivery = Handoff(self.ledger, self._thread, self.delivery_policy, self.sleep)
            handoff = asyncio.create_task(delivery.run(self._handoff), name="collect-handoff")
            try:
                async with asyncio.TaskGroup() as group:
                    for n in range(workers):
                        group.create_task(worker(), name=f"collect-worker-{n}")
            finally:
                handoff.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await handoff
                self._thread = None
                self._handoff = None
                gc.set_threshold(*threshold)
                gc.unfreeze()
        results.sort(key=lambda r: r.meter_id)
        return CollectRun(
            tuple(results), delivery.totals, self.monotonic() - started, delivery.registers
        )
