"""The fleet collector's handoff: meters' readings to the ledger, in batches, exactly once,
and what is not stored after its retries kept as a dead letter.

::

    meters ─► queue ─► one batch (registers, then readings) ─► ledger ── ok ──► each meter
                         │ the batch failed
                         └─► each meter's delivery alone: deliver_or_dead_letter
                               (DELIVERY_POLICY: 4 attempts, full jitter) ── ok ──► the meter
                               └─ still failing ─► ledger.keep_dead_letter ─► E08 naming its id

Every store call runs on the ledger's one thread (:class:`LedgerThread`): the store has one
writer, and the event loop is never blocked by it. A ledger that is no
:class:`~meterledger.collect.ledger.DeadLetterLedger` keeps the old rule: a failed batch is
E08 for its meters, which the next collection reads again from the meter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from meterledger.collect.deadletter import DELIVERY_POLICY, DeadLetter, deliver_or_dead_letter
from meterledger.collect.errors import CollectError, HandoffError
from meterledger.collect.ledger import (
    ClockLedger,
    ClockSample,
    DeadLetterLedger,
    HandoffCounts,
    Ledger,
    RegisterCounts,
    RegisterLedger,
)
from meterledger.collect.profile import RegisterSample
from meterledger.collect.retry import RetryPolicy
from meterledger.core.reading import Reading

__all__ = ["DeadLetteredError", "Handoff", "HandoffJob", "LedgerThread", "deliver_or_keep"]

log = logging.getLogger("meterledger.collect")
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
_BATCH_ROWS = 200_000


class DeadLetteredError(HandoffError):
    """E08: a meter's readings were not stored after their retries; ``dead_letter_id`` is
    where they are kept (None: the dead letter could not be stored either)."""

    def __init__(
        self, detail: str, *, dead_letter_id: int | None, meter_id: str | None = None
    ) -> None:
        self.dead_letter_id = dead_letter_id
        super().__init__(detail, meter_id=meter_id)


class LedgerThread:
    """The ledger's one worker thread."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self.executor = executor

    async def raw(self, call: Callable[..., T], *args: object) -> T:
        """``call(*args)`` on the thread; its exception as raised (``transient`` kept)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, call, *args)

    async def call(self, call: Callable[..., T], *args: object) -> T:
        """``call(*args)`` on the thread; a failure other than a CollectError is E08."""
        try:
            return await self.raw(call, *args)
        except CollectError:
            raise
        except Exception as exc:
            raise HandoffError(f"{type(exc).__name__}: {exc}") from exc


@dataclass(slots=True)
class HandoffJob:
    """One meter's readings and register reads, and the future its meter awaits."""

    meter_id: str
    readings: tuple[Reading, ...]
    registers: tuple[RegisterSample, ...] = ()
    registers_stored: bool = False
    clock: ClockSample | None = None  # the session's clock read, recorded once stored
    done: asyncio.Future[HandoffCounts] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _Held:
    """A dead-letter sink that only holds the letter: the ledger stores it on its thread
    afterwards (the store is not called from the event loop)."""

    def put(
        self, feed: str, source: str, payload: bytes, fmt: str, error: str, attempts: int
    ) -> None:
        return None


async def deliver_or_keep(
    ledger: DeadLetterLedger,
    meter_id: str,
    readings: Sequence[Reading],
    deliver: Callable[[], Awaitable[HandoffCounts]],
    *,
    policy: RetryPolicy = DELIVERY_POLICY,
    sleep: Sleep = asyncio.sleep,
) -> HandoffCounts:
    """One meter's readings through ``deliver`` with the retries of ``policy``; when it
    still fails, the readings are kept as the ledger's dead letter and
    :class:`DeadLetteredError` (E08) names it. For a collector that hands over one meter at
    a time on its own thread (Zigbee); the fleet collector's batches use :class:`Handoff`."""
    letter = ledger.dead_letter(meter_id, readings)

    async def handoff(_: DeadLetter) -> HandoffCounts:
        return await deliver()

    done = await deliver_or_dead_letter(handoff, _Held(), policy, letter, sleep=sleep)
    if done.result is not None:
        return done.result
    what = f"{len(readings)} reading(s) not stored after {done.attempts} attempt(s) ({done.error})"
    try:
        kept = ledger.keep_dead_letter(letter, done.error or "", done.attempts)
    except Exception as exc:
        raise DeadLetteredError(
            f"{what}; not kept as a dead letter either ({type(exc).__name__}: {exc}); "
            "the next collection reads them from the meter again",
            dead_letter_id=None,
            meter_id=meter_id,
        ) from exc
    raise DeadLetteredError(
        f"{what}; kept as dead letter {kept} (meterledger deadletters replay {kept})",
        dead_letter_id=kept,
        meter_id=meter_id,
    )


@dataclass(slots=True)
class Handoff:
    """Delivers the queued jobs; ``totals`` and ``registers`` add up what was stored."""

    ledger: Ledger
    thread: LedgerThread
    policy: RetryPolicy
    sleep: Sleep = asyncio.sleep
    totals: HandoffCounts = field(default_factory=HandoffCounts)
    registers: RegisterCounts = field(default_factory=RegisterCounts)
    _rescues: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def keeps_registers(self) -> bool:
        return isinstance(self.ledger, RegisterLedger)

    async def run(self, queue: asyncio.Queue[HandoffJob]) -> None:
        """Deliver whatever has queued up as one batch, while the next batch gathers."""
        while True:
            jobs = [await queue.get()]
            rows = len(jobs[0].readings)
            while rows < _BATCH_ROWS and not queue.empty():
                jobs.append(queue.get_nowait())
                rows += len(jobs[-1].readings)
            try:
                counts = await self._batch(jobs)
            except CollectError as exc:
                if isinstance(self.ledger, DeadLetterLedger):
                    for job in jobs:  # each on its own, so one meter's trouble is its own
                        task = asyncio.create_task(
                            self._rescue(job, self.ledger), name=f"handoff-{job.meter_id}"
                        )
                        self._rescues.add(task)
                        task.add_done_callback(self._rescues.discard)
                else:
                    for job in jobs:
                        _settle(job, error=exc)
            else:
                self.totals.add(counts)
                await self._record_clocks(jobs)
                for job in jobs:
                    _settle(job, counts=counts)
            finally:
                for _ in jobs:
                    queue.task_done()

    async def _record_clocks(self, jobs: list[HandoffJob]) -> None:
        """The stored meters' clock reads (the schedule's last-read rule), before their
        meters hear of it: one write for the batch when the ledger can. A failure leaves
        the meters due, which only means they are read again sooner."""
        clocks = [job.clock for job in jobs if job.clock is not None]
        if not clocks:
            return
        try:
            if isinstance(self.ledger, ClockLedger):
                await self.thread.call(self.ledger.record_clocks, clocks)
            else:
                for clock in clocks:
                    await self.thread.call(self.ledger.record_session, clock.meter_id, clock, None)
        except CollectError as exc:
            log.warning("clock reads not recorded: %s", exc, extra={"code": "E08"})

    async def _batch(self, jobs: list[HandoffJob]) -> HandoffCounts:
        batch = [r for job in jobs for r in job.readings]
        reads = [r for job in jobs for r in job.registers]
        if reads and isinstance(self.ledger, RegisterLedger):
            self.registers.add(await self.thread.call(self.ledger.deliver_registers, reads))
            for job in jobs:
                job.registers_stored = True
        return await self.thread.call(self.ledger.deliver, batch) if batch else HandoffCounts()

    async def _one(self, job: HandoffJob) -> HandoffCounts:
        """One meter's delivery, its store errors raised as they are (a retry of a
        transient one may help, of a terminal one not)."""
        if job.registers and not job.registers_stored and isinstance(self.ledger, RegisterLedger):
            self.registers.add(await self.thread.raw(self.ledger.deliver_registers, job.registers))
            job.registers_stored = True
        if not job.readings:
            return HandoffCounts()
        return await self.thread.raw(self.ledger.deliver, job.readings)

    async def _rescue(self, job: HandoffJob, ledger: DeadLetterLedger) -> None:
        try:
            letter = ledger.dead_letter(job.meter_id, job.readings)

            async def handoff(_: DeadLetter) -> HandoffCounts:
                return await self._one(job)

            done = await deliver_or_dead_letter(
                handoff, _Held(), self.policy, letter, sleep=self.sleep
            )
            if done.result is not None:
                self.totals.add(done.result)
                await self._record_clocks([job])
                _settle(job, counts=done.result)
                return
            if not job.readings:  # register reads only: nothing a replay could ingest
                raise HandoffError(
                    f"{len(job.registers)} register read(s) not stored after {done.attempts} "
                    f"attempt(s) ({done.error}); the next collection reads them again"
                )
            what = (
                f"{len(job.readings)} reading(s) not stored after {done.attempts} "
                f"attempt(s) ({done.error})"
            )
            try:
                kept = await self.thread.raw(
                    ledger.keep_dead_letter, letter, done.error or "", done.attempts
                )
            except Exception as exc:
                log.error(
                    "%s: %s, and the dead letter was not kept either: %s: %s",
                    job.meter_id,
                    what,
                    type(exc).__name__,
                    exc,
                    extra={"meter_id": job.meter_id, "code": "E08", "feed": letter.feed},
                )
                raise DeadLetteredError(
                    f"{what}; not kept as a dead letter either ({type(exc).__name__}: {exc}); "
                    "the next collection reads them from the meter again",
                    dead_letter_id=None,
                ) from exc
            raise DeadLetteredError(
                f"{what}; kept as dead letter {kept} (meterledger deadletters replay {kept})",
                dead_letter_id=kept,
            )
        except CollectError as exc:
            _settle(job, error=exc)
        except Exception as exc:  # a bug must not leave its meter waiting for ever
            _settle(job, error=HandoffError(f"{type(exc).__name__}: {exc}"))


def _settle(
    job: HandoffJob, *, counts: HandoffCounts | None = None, error: BaseException | None = None
) -> None:
    if job.done.done():
        return
    if error is not None:
        job.done.set_exception(error)
    else:
        job.done.set_result(counts or HandoffCounts())
