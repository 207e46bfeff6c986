"""Circuit breakers, one per gateway or endpoint, so a dead gateway costs a few probes per
cool-down instead of a timeout for every meter behind it.

::

       failure rate in the window > limit             cool-down elapsed
       (given min_calls), or threshold in a row
    CLOSED ─────────────────────────────► OPEN ──────────────────────────► HALF_OPEN
      ▲                                     ▲                                 │
      │ every probe succeeded               │ a probe failed                  │ probes
      └─────────────────────────────────────┴─────────────────────────────────┘

Two things open a closed circuit, whichever comes first:

* the **failure rate** among the calls of the last ``window`` seconds (60) passes
  ``failure_rate`` (15 %: 16 failures in 100 calls open it, 14 do not), once the window
  holds at least ``min_calls`` calls (default: 10, or ``threshold`` if that is more, so the
  rate never trips on fewer calls than a run of failures would need);
* ``threshold`` **consecutive** failures (5), so an endpoint that is plainly dead opens at
  once, without waiting for enough calls.

A call is recorded when it ends, at the clock's time then; it leaves the window
``window`` seconds later. Only *transient* failures (no connection, no answer) count: a
meter that answers with a security or data-access error proves the gateway works, and its
caller records a success. While open, :meth:`CircuitBreaker.allow` refuses; calls that
were already under way when it opened are not counted. Each opening logs one line at ERROR
and counts one in :attr:`CircuitBreaker.opened`. After ``cooldown`` seconds the circuit is
half-open: up to ``probes`` calls go through (a probe batch); it closes when all of them
succeed, with an empty window, and a failed probe opens it for a whole cool-down again.
(A call begun before the circuit opened that is still under way when the cool-down ends
is not told from a probe: its verdict then counts as one. It is recent evidence either
way; a collector whose calls can outlast the cool-down should have a longer one.)
The clock is injected (``monotonic`` seconds), so the state machine is tested exactly.

A breaker tells a ``listener`` of each change as a :class:`BreakerEvent` (opened, the
first probe let through when half-open, closed): the composition root saves it for
``meterledger status`` and a demo prints it. A long-running feed (the vendor poller, the
MQTT listener, Zigbee rounds) does not fail its calls while the circuit is open: it
*pauses*, :func:`wait_until_allowed`, and goes on with the probe when the cool-down ends.
:class:`BreakerSettings` are the knobs a fleet file or a command line sets; a board made
for a ``feed`` names its breakers ``feed/key`` (``vendor/127.0.0.1:8000``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from meterledger.collect.errors import CircuitOpenError

__all__ = [
    "BreakerBoard",
    "BreakerEvent",
    "BreakerReading",
    "BreakerSettings",
    "BreakerState",
    "CircuitBreaker",
    "wait_until_allowed",
]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
log = logging.getLogger("meterledger.collect")


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True, slots=True)
class BreakerReading:
    """A breaker as it stands (the metrics ``meterledger status`` shows): its state, the
    failure rate and the number of calls in the window, how many times it opened, how
    long ago it last opened (None: never), and the seconds until an open one half-opens."""

    name: str
    state: BreakerState
    failure_rate: float
    calls_in_window: int
    opened: int
    opened_seconds_ago: float | None
    retry_in: float = 0.0


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """A breaker changed: it ``state`` now (OPEN, HALF_OPEN when the first probe goes
    through, CLOSED), ``why``, at the breaker's clock ``at``, and its reading then."""

    name: str
    state: BreakerState
    why: str
    at: float
    reading: BreakerReading


Listener = Callable[[BreakerEvent], None]


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """The knobs of every breaker of a feed (fleet file ``options``, command-line flags):
    ``threshold`` failures in a row, or more than ``failure_rate`` of the calls of the last
    ``window`` seconds once it holds ``min_calls`` (None: max(10, threshold)), open the
    circuit for ``cooldown`` seconds; then ``probes`` trial calls decide."""

    threshold: int = 5
    cooldown: float = 60.0
    window: float = 60.0
    failure_rate: float = 0.15
    min_calls: int | None = None
    probes: int = 1

    def __post_init__(self) -> None:
        self.breaker("check")  # the same checks, the same messages

    def breaker(
        self, name: str, clock: Clock = time.monotonic, listener: Listener | None = None
    ) -> CircuitBreaker:
        """A breaker with these settings."""
        return CircuitBreaker(
            name,
            self.threshold,
            self.cooldown,
            clock,
            window=self.window,
            failure_rate=self.failure_rate,
            min_calls=self.min_calls,
            probes=self.probes,
            listener=listener,
        )


@dataclass(slots=True)
class CircuitBreaker:
    """Opens on a failure rate over a sliding window or on ``threshold`` failures in a row,
    for ``cooldown`` seconds; then ``probes`` trial calls decide."""

    name: str
    threshold: int = 5
    cooldown: float = 60.0
    clock: Clock = time.monotonic
    window: float = 60.0
    failure_rate: float = 0.15
    min_calls: int | None = None  # None: max(10, threshold)
    probes: int = 1
    listener: Listener | None = None
    opened: int = field(default=0, init=False)  # metric: times the circuit opened
    _calls: deque[tuple[float, bool]] = field(default_factory=deque, init=False)
    _window_failures: int = field(default=0, init=False)
    _failures: int = field(default=0, init=False)
    _opened_at: float | None = field(default=None, init=False)
    _last_opened: float | None = field(default=None, init=False)
    _probing: int = field(default=0, init=False)
    _probes_passed: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError(f"a breaker threshold is at least 1, got {self.threshold}")
        if self.cooldown < 0:
            raise ValueError(f"a breaker cool-down is not negative, got {self.cooldown}")
        if self.window <= 0:
            raise ValueError(f"a breaker window is positive, got {self.window}")
        if not 0 <= self.failure_rate < 1:
            raise ValueError(f"a failure rate limit is in [0, 1), got {self.failure_rate}")
        if self.min_calls is not None and self.min_calls < 1:
            raise ValueError(f"a breaker's minimum calls is at least 1, got {self.min_calls}")
        if self.probes < 1:
            raise ValueError(f"a probe batch is at least 1 call, got {self.probes}")

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self.clock() - self._opened_at >= self.cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def failures(self) -> int:
        """Failures in a row (reset by a success)."""
        return self._failures

    @property
    def needed_calls(self) -> int:
        """The calls the window must hold before its failure rate can open the circuit."""
        return self.min_calls if self.min_calls is not None else max(10, self.threshold)

    def _prune(self, now: float) -> None:
        oldest = now - self.window
        calls = self._calls
        while calls and calls[0][0] <= oldest:
            _, ok = calls.popleft()
            self._window_failures -= not ok

    def calls_in_window(self) -> int:
        self._prune(self.clock())
        return len(self._calls)

    def window_failure_rate(self) -> float:
        """Failures / calls among the calls of the last ``window`` seconds (0 if none)."""
        calls = self.calls_in_window()
        return self._window_failures / calls if calls else 0.0

    def retry_after(self) -> float:
        """Seconds until the circuit half-opens (0 when it is not open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (self.clock() - self._opened_at))

    def allow(self) -> bool:
        """May a call go through now? In HALF_OPEN, True for up to ``probes`` calls."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self._probing + self._probes_passed >= self.probes:
            return False
        self._probing += 1
        if self._probing + self._probes_passed == 1:
            self._tell(BreakerState.HALF_OPEN, f"cool-down over: a probe batch of {self.probes}")
        return True

    def record_success(self) -> None:
        if self._opened_at is None:
            self._record(ok=True)
            self._failures = 0
            return
        if self.state is BreakerState.HALF_OPEN and self._probing:
            self._probing -= 1
            self._probes_passed += 1
            if self._probes_passed >= self.probes:
                self._close()
        # a call begun before the circuit opened proves nothing about it now

    def record_failure(self) -> None:
        if self._opened_at is None:
            self._record(ok=False)
            self._failures += 1
            calls = len(self._calls)
            rate = self._window_failures / calls
            if self._failures >= self.threshold:
                self._open(f"{self._failures} failures in a row")
            elif calls >= self.needed_calls and rate > self.failure_rate:
                self._open(
                    f"{self._window_failures} of {calls} calls failed in {self.window:g} s "
                    f"({rate:.0%} > {self.failure_rate:.0%})"
                )
            return
        if self.state is BreakerState.HALF_OPEN and self._probing:
            self._open("a probe failed")  # open for a whole cool-down again

    def carry_over(
        self, *, failures: int, calls: int, open_for: float = 0.0, in_a_row: int = 0
    ) -> None:
        """Start from a saved reading (a collector run by cron has a breaker per run): its
        window's ``calls``, ``failures`` of them, count as ending now, the last
        ``in_a_row`` of them failures in a row; ``open_for`` > 0 opens the circuit for that
        many more seconds (not a new opening: no log, no count). Only for a breaker that
        has seen no call yet."""
        if self._calls or self._opened_at is not None:
            raise ValueError("carry_over is for a new breaker")
        if not 0 <= in_a_row <= failures <= calls:
            raise ValueError(
                f"need 0 <= in_a_row <= failures <= calls, got {in_a_row}, {failures}, {calls}"
            )
        now = self.clock()
        self._calls.extend([(now, False)] * failures + [(now, True)] * (calls - failures))
        self._window_failures = failures
        self._failures = in_a_row
        if open_for > 0:
            self._opened_at = self._last_opened = now - max(0.0, self.cooldown - open_for)

    def release(self) -> None:
        """A call that ended without a verdict (cancelled): free its probe slot."""
        if self._probing:
            self._probing -= 1

    def reading(self) -> BreakerReading:
        now = self.clock()
        return BreakerReading(
            self.name,
            self.state,
            self.window_failure_rate(),
            len(self._calls),
            self.opened,
            None if self._last_opened is None else now - self._last_opened,
            self.retry_after(),
        )

    def _record(self, *, ok: bool) -> None:
        now = self.clock()
        self._calls.append((now, ok))
        self._window_failures += not ok
        self._prune(now)

    def _open(self, why: str) -> None:
        self._opened_at = self._last_opened = self.clock()
        self._probing = self._probes_passed = 0
        self.opened += 1
        log.error(
            "circuit %s opened for %g s: %s",
            self.name,
            self.cooldown,
            why,
            extra={"endpoint": self.name, "code": "circuit-open", "opened": self.opened},
        )
        self._tell(BreakerState.OPEN, why)

    def _close(self) -> None:
        self._opened_at = None
        self._failures = self._probing = self._probes_passed = 0
        self._calls.clear()
        self._window_failures = 0
        log.info("circuit %s closed: the probes succeeded", self.name)
        self._tell(BreakerState.CLOSED, "the probes succeeded")

    def _tell(self, state: BreakerState, why: str) -> None:
        """Tell the listener; one that fails (a store that is locked) is logged and never
        leaves the breaker half-way through a change (a probe slot taken for ever)."""
        if self.listener is None:
            return
        try:
            self.listener(BreakerEvent(self.name, state, why, self.clock(), self.reading()))
        except Exception as exc:
            log.warning(
                "circuit %s: its listener failed on %s: %s: %s",
                self.name,
                state.value,
                type(exc).__name__,
                exc,
                extra={"endpoint": self.name, "code": "breaker-listener"},
            )


async def wait_until_allowed(
    breaker: CircuitBreaker,
    *,
    sleep: Sleep = asyncio.sleep,
    deadline: float | None = None,
    poll: float = 0.05,
) -> None:
    """Pause while ``breaker`` is open (or its probe batch is out), then return with the
    call allowed (a probe when half-open). With a ``deadline`` (the breaker's clock) that
    the cool-down would pass, raise :class:`CircuitOpenError` (E03) instead of waiting."""
    while not breaker.allow():
        wait = breaker.retry_after() or poll  # 0 while probes are out: look again soon
        if deadline is not None and breaker.clock() + wait > deadline:
            raise CircuitOpenError(
                f"circuit {breaker.name} is open (retry in {breaker.retry_after():.1f} s)"
            )
        await sleep(wait)


@dataclass(slots=True)
class BreakerBoard:
    """The breakers of a fleet, made on first use, one per key (``host:port`` or gateway),
    named ``feed/key`` when the board has a ``feed``."""

    threshold: int = 5
    cooldown: float = 60.0
    clock: Clock = time.monotonic
    window: float = 60.0
    failure_rate: float = 0.15
    min_calls: int | None = None
    probes: int = 1
    feed: str | None = None
    listener: Listener | None = None
    _breakers: dict[str, CircuitBreaker] = field(default_factory=dict, init=False)

    @classmethod
    def of(
        cls,
        settings: BreakerSettings,
        *,
        feed: str | None = None,
        clock: Clock = time.monotonic,
        listener: Listener | None = None,
    ) -> BreakerBoard:
        return cls(
            settings.threshold,
            settings.cooldown,
            clock,
            settings.window,
            settings.failure_rate,
            settings.min_calls,
            settings.probes,
            feed,
            listener,
        )

    def get(self, key: str) -> CircuitBreaker:
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(
                key if self.feed is None else f"{self.feed}/{key}",
                self.threshold,
                self.cooldown,
                self.clock,
                window=self.window,
                failure_rate=self.failure_rate,
                min_calls=self.min_calls,
                probes=self.probes,
                listener=self.listener,
            )
            self._breakers[key] = breaker
        return breaker

    def states(self) -> dict[str, BreakerState]:
        return {key: b.state for key, b in sorted(self._breakers.items())}

    def readings(self) -> list[BreakerReading]:
        """Every breaker's :class:`BreakerReading`, by key."""
        return [b.reading() for _, b in sorted(self._breakers.items())]
