"""Circuit breakers, one per gateway or endpoint, so a dead gateway costs one probe per
cool-down instead of a timeout for every meter behind it.

::

              failures >= threshold                 cool-down elapsed
    CLOSED ───────────────────────────► OPEN ──────────────────────────► HALF_OPEN
      ▲                                   ▲                                  │
      │ success                           │ failure of the trial             │ one trial
      └───────────────────────────────────┴──────────────────────────────────┘

Only *transient* failures (no connection, no answer) count: a meter that answers with a
security or data-access error proves the gateway works. A success anywhere behind the
endpoint resets the count. In HALF_OPEN one trial attempt is let through at a time; its
outcome closes or re-opens the circuit. The clock is injected (``monotonic`` seconds), so
the state machine is tested without waiting.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["BreakerBoard", "BreakerState", "CircuitBreaker"]

Clock = Callable[[], float]


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(slots=True)
class CircuitBreaker:
    """``threshold`` consecutive failures open the circuit for ``cooldown`` seconds."""

    name: str
    threshold: int = 5
    cooldown: float = 60.0
    clock: Clock = time.monotonic
    _failures: int = field(default=0, init=False)
    _opened_at: float | None = field(default=None, init=False)
    _trial: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError(f"a breaker threshold is at least 1, got {self.threshold}")
        if self.cooldown < 0:
            raise ValueError(f"a breaker cool-down is not negative, got {self.cooldown}")

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self.clock() - self._opened_at >= self.cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def failures(self) -> int:
        return self._failures

    def retry_after(self) -> float:
        """Seconds until the circuit half-opens (0 when it is not open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (self.clock() - self._opened_at))

    def allow(self) -> bool:
        """May an attempt go through now? In HALF_OPEN, True for one trial at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self._trial:
            return False
        self._trial = True
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._trial or self._failures >= self.threshold:
            self._opened_at = self.clock()  # a failed trial re-opens for a full cool-down
        self._trial = False

    def release(self) -> None:
        """An attempt that ended without a verdict (cancelled): free the trial slot."""
        self._trial = False


@dataclass(slots=True)
class BreakerBoard:
    """The breakers of a fleet, made on first use, one per key (``host:port`` or gateway)."""

    threshold: int = 5
    cooldown: float = 60.0
    clock: Clock = time.monotonic
    _breakers: dict[str, CircuitBreaker] = field(default_factory=dict, init=False)

    def get(self, key: str) -> CircuitBreaker:
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(key, self.threshold, self.cooldown, self.clock)
            self._breakers[key] = breaker
        return breaker

    def states(self) -> dict[str, BreakerState]:
        return {key: b.state for key, b in sorted(self._breakers.items())}
