"""deliver_or_dead_letter: a handoff that fails N times is retried with full-jitter backoff
and, when the attempts run out, dead-lettered with its bytes and the last error."""

from __future__ import annotations

import asyncio

import pytest

from meterledger.collect.deadletter import (
    DELIVERY_POLICY,
    DeadLetter,
    Delivered,
    deliver_or_dead_letter,
    retryable,
)
from meterledger.collect.errors import ConnectionLostError, SecurityLevelError
from meterledger.collect.retry import RetryPolicy

DELIVERY = DeadLetter("dlms", "gw-1", b"meter_id,channel\n\xff", "csv")


class Sink:
    def __init__(self) -> None:
        self.kept: list[tuple[str, str, bytes, str, str, int]] = []

    def put(
        self, feed: str, source: str, payload: bytes, fmt: str, error: str, attempts: int
    ) -> None:
        self.kept.append((feed, source, payload, fmt, error, attempts))


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def run(
    failures: int, policy: RetryPolicy, error: Exception | None = None
) -> tuple[Delivered[int], Sink, Sleeps, list[bytes]]:
    sink, sleeps, seen = Sink(), Sleeps(), []

    async def handoff(delivery: DeadLetter) -> int:
        seen.append(delivery.payload)
        if len(seen) <= failures:
            raise error or OSError(f"store down ({len(seen)})")
        return 42

    outcome = asyncio.run(deliver_or_dead_letter(handoff, sink, policy, DELIVERY, sleep=sleeps))
    return outcome, sink, sleeps, seen


@pytest.mark.parametrize("failures", [0, 1, 3])
def test_a_handoff_that_recovers_within_the_attempts_is_delivered(failures: int) -> None:
    policy = RetryPolicy(attempts=4, initial=0.5, maximum=1.5)
    outcome, sink, sleeps, seen = run(failures, policy)
    assert outcome == Delivered(42, failures + 1)
    assert not outcome.dead_lettered and sink.kept == []
    assert len(seen) == failures + 1 and len(sleeps.waits) == failures
    for n, wait in enumerate(sleeps.waits):  # full jitter in [0, min(max, initial * 2^n)]
        assert 0 <= wait <= min(1.5, 0.5 * 2**n)


def test_the_last_failure_is_dead_lettered_with_the_payload_and_error() -> None:
    outcome, sink, sleeps, seen = run(10, RetryPolicy(attempts=3, initial=0, maximum=0))
    assert outcome == Delivered(None, 3, "OSError: store down (3)")
    assert outcome.dead_lettered
    assert sink.kept == [
        ("dlms", "gw-1", b"meter_id,channel\n\xff", "csv", "OSError: store down (3)", 3)
    ]
    assert len(seen) == 3 and sleeps.waits == [0, 0]


def test_an_error_that_a_retry_cannot_help_is_dead_lettered_at_once() -> None:
    outcome, sink, _, seen = run(10, DELIVERY_POLICY, SecurityLevelError("bad key"))
    assert len(seen) == 1 and outcome.attempts == 1
    assert sink.kept[0][4] == "SecurityLevelError: E09 Security Level Violation: bad key"
    assert retryable(ConnectionLostError("rst")) and not retryable(SecurityLevelError("k"))
    assert retryable(OSError("x")) and not retryable(KeyboardInterrupt())


@pytest.mark.parametrize("attempts", [1, 2, 6])
def test_three_to_five_attempts(attempts: int) -> None:
    with pytest.raises(ValueError, match="3 to 5"):
        run(0, RetryPolicy(attempts=attempts))


def test_a_failing_sink_is_not_swallowed() -> None:
    class Broken:
        def put(self, *args: object) -> None:
            raise OSError("sink down too")

    async def handoff(delivery: DeadLetter) -> int:
        raise OSError("store down")

    with pytest.raises(OSError, match="sink down too"):
        asyncio.run(
            deliver_or_dead_letter(
                handoff, Broken(), RetryPolicy(3, 0, 0), DELIVERY, sleep=Sleeps()
            )
        )
