"""Dead letters: a delivery that still fails after its retries is kept, with its bytes as
received and the last error, so nothing is lost.

Every collector hands a payload to ingest through :func:`deliver_or_dead_letter`: the
handoff is tried up to ``policy.attempts`` times (3 to 5), sleeping a random time in
``[0, min(maximum, initial * 2**n))`` before retry ``n`` (exponential backoff with full
jitter, tenacity); an error whose ``transient`` is false (a payload that cannot be read will
never be read) ends the retries at once. On the last failure the delivery goes to the
:class:`DeadLetterSink` (the store's ``dead_letters`` table, through the composition root),
where ``meterledger deadletters replay`` finds it. ``collect/`` imports no store: the sink
is a protocol.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from meterledger.collect.retry import RetryPolicy

__all__ = [
    "DELIVERY_POLICY",
    "DeadLetter",
    "DeadLetterSink",
    "Delivered",
    "deliver_or_dead_letter",
    "retryable",
]

log = logging.getLogger("meterledger.collect")
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

DELIVERY_POLICY = RetryPolicy(attempts=4, initial=0.5, maximum=10.0)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One delivery: the ``payload`` bytes of ``fmt`` (``csv``, ``jsonl``, ...) from
    ``source`` on ``feed`` (``dlms``, ``mqtt``, ``files``, ...)."""

    feed: str
    source: str
    payload: bytes
    fmt: str


class DeadLetterSink(Protocol):
    """Where deliveries that failed for good are kept (the store, or a test's list)."""

    def put(
        self, feed: str, source: str, payload: bytes, fmt: str, error: str, attempts: int
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Delivered(Generic[T]):
    """The outcome of :func:`deliver_or_dead_letter`: the handoff's ``result``, or None and
    the ``error`` it was dead-lettered with; ``attempts`` made."""

    result: T | None
    attempts: int
    error: str | None = None

    @property
    def dead_lettered(self) -> bool:
        return self.error is not None


def retryable(exc: BaseException) -> bool:
    """Retry unless the error says a retry cannot help (``transient`` false)."""
    return isinstance(exc, Exception) and getattr(exc, "transient", True) is not False


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def deliver_or_dead_letter(
    handoff: Callable[[DeadLetter], Awaitable[T]],
    sink: DeadLetterSink,
    policy: RetryPolicy,
    delivery: DeadLetter,
    *,
    sleep: Sleep = asyncio.sleep,
) -> Delivered[T]:
    """``await handoff(delivery)`` with retries; on the last failure ``sink.put`` the
    delivery with that error and the attempts made. Raises only if the sink fails (then
    nothing was acknowledged, and the caller must not drop the payload either)."""
    if not 3 <= policy.attempts <= 5:
        raise ValueError(f"a delivery is tried 3 to 5 times, got {policy.attempts}")
    attempts = 0

    async def once() -> T:
        nonlocal attempts
        attempts += 1
        return await handoff(delivery)

    retrying = AsyncRetrying(
        sleep=sleep,
        stop=stop_after_attempt(policy.attempts),
        wait=wait_random_exponential(multiplier=policy.initial, max=policy.maximum),
        retry=retry_if_exception(retryable),
        reraise=True,
    )
    try:
        result: T = await retrying(once)
    except Exception as exc:
        error = _describe(exc)
        sink.put(delivery.feed, delivery.source, delivery.payload, delivery.fmt, error, attempts)
        log.warning(
            "delivery from %s (%s) dead-lettered after %d attempt(s): %s",
            delivery.source,
            delivery.feed,
            attempts,
            error,
            extra={"feed": delivery.feed, "code": "dead-letter", "attempts": attempts},
        )
        return Delivered(None, attempts, error)
    return Delivered(result, attempts)
