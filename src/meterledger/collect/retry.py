"""Retries with jittered exponential backoff (tenacity), for transient failures only.

An attempt is one whole session (connect, associate, read, release). It is repeated when it
fails with a :class:`~meterledger.collect.errors.CollectError` whose ``transient`` is true
(E01 connection failed, E02 connection lost, E04 response timeout), at most ``attempts``
times in all, sleeping a random time in ``[0, min(maximum, initial * 2**n))`` before retry
``n`` ("full jitter", so a thousand meters that failed together do not retry together).
Everything else (E09 security, E05 protocol, E06 data access, E03 circuit open) is final at
once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from meterledger.collect.errors import CollectError

__all__ = ["RetryPolicy", "is_transient", "with_retries"]

log = logging.getLogger("meterledger.collect")
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    initial: float = 0.5  # seconds: the first retry waits up to this long
    maximum: float = 10.0  # seconds: no wait is longer

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"at least one attempt, got {self.attempts}")
        if self.initial < 0 or self.maximum < 0:
            raise ValueError("backoff times are not negative")


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, CollectError) and exc.transient


async def with_retries(
    attempt: Callable[[int], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Sleep = asyncio.sleep,
    name: str = "",
) -> T:
    """``await attempt(n)`` for n = 1, 2, ... until it succeeds, fails for good, or the
    attempts run out; the last error is raised as it was."""

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.info(
            "retrying %s after attempt %d: %s (in %.2f s)",
            name,
            state.attempt_number,
            error,
            wait,
            extra={"meter_id": name, "attempt": state.attempt_number, "wait_s": wait},
        )

    retrying = AsyncRetrying(
        sleep=sleep,
        stop=stop_after_attempt(policy.attempts),
        wait=wait_random_exponential(multiplier=policy.initial, max=policy.maximum),
        retry=retry_if_exception(is_transient),
        before_sleep=before_sleep,
        reraise=True,
    )
    number = 0

    async def once() -> T:
        nonlocal number
        number += 1
        return await attempt(number)

    result: T = await retrying(once)
    return result
