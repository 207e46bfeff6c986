"""The circuit breaker state machine (with a fake clock) and the tenacity retry policy."""

from __future__ import annotations

import asyncio

import pytest

from meterledger.codec.dlms.errors import AssociationRejectedError, SecurityError
from meterledger.collect.breaker import BreakerBoard, BreakerState, CircuitBreaker
from meterledger.collect.errors import (
    CollectError,
    ConnectFailedError,
    ConnectionLostError,
    MeterDataAccessError,
    ResponseTimeoutError,
    SecurityLevelError,
    translate,
)
from meterledger.collect.retry import RetryPolicy, with_retries


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("gw:4059", threshold=3, cooldown=30, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_success()  # a success resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after() == 30
    clock.now += 29.9
    assert not breaker.allow()


def test_breaker_half_opens_for_one_trial_after_the_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("gw", threshold=1, cooldown=10, clock=clock)
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 10
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # only one at a time
    breaker.record_failure()  # the trial failed: open for a whole cool-down again
    assert breaker.state is BreakerState.OPEN
    clock.now += 9
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow() and breaker.allow()


def test_breaker_released_trial_lets_the_next_one_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("gw", threshold=1, cooldown=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.release()  # cancelled before a verdict
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()


def test_board_keeps_one_breaker_per_key() -> None:
    board = BreakerBoard(threshold=1, cooldown=5, clock=FakeClock())
    board.get("a:1").record_failure()
    assert board.get("a:1") is board.get("a:1")
    assert board.states() == {"a:1": BreakerState.OPEN}
    assert board.get("b:1").allow()


def test_breaker_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("x", threshold=0)


# -- retries --------------------------------------------------------------------------


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _run(errors: list[CollectError | None], policy: RetryPolicy) -> tuple[list[int], Sleeps]:
    calls: list[int] = []
    sleeps = Sleeps()

    async def attempt(n: int) -> str:
        calls.append(n)
        error = errors[n - 1] if n - 1 < len(errors) else None
        if error is not None:
            raise error
        return "ok"

    async def run() -> None:
        assert await with_retries(attempt, policy, sleep=sleeps, name="M1") == "ok"

    asyncio.run(run())
    return calls, sleeps


@pytest.mark.parametrize(
    "error",
    [ResponseTimeoutError("no answer"), ConnectFailedError("refused"), ConnectionLostError("rst")],
)
def test_transient_errors_are_retried_with_jittered_backoff(error: CollectError) -> None:
    policy = RetryPolicy(attempts=4, initial=0.5, maximum=1.5)
    calls, sleeps = _run([error, error, error], policy)
    assert calls == [1, 2, 3, 4]
    assert len(sleeps.waits) == 3
    for n, wait in enumerate(sleeps.waits):  # full jitter in [0, min(max, initial * 2^n)]
        assert 0 <= wait <= min(1.5, 0.5 * 2**n)


def test_attempts_run_out_and_the_last_error_is_raised() -> None:
    policy = RetryPolicy(attempts=2, initial=0, maximum=0)
    with pytest.raises(ResponseTimeoutError):
        _run([ResponseTimeoutError("1"), ResponseTimeoutError("2"), None], policy)


@pytest.mark.parametrize(
    "error", [SecurityLevelError("bad key"), MeterDataAccessError("object-undefined")]
)
def test_terminal_errors_are_not_retried(error: CollectError) -> None:
    calls: list[int] = []

    async def attempt(n: int) -> None:
        calls.append(n)
        raise error

    async def run() -> None:
        await with_retries(attempt, RetryPolicy(attempts=5), sleep=Sleeps(), name="M1")

    with pytest.raises(type(error)):
        asyncio.run(run())
    assert calls == [1]


def test_codec_security_failures_translate_to_e09_and_are_terminal() -> None:
    for exc in (
        SecurityError("GCM tag mismatch"),
        AssociationRejectedError(1, 13, "authentication-failure"),
    ):
        error = translate(exc, meter_id="M7")
        assert isinstance(error, SecurityLevelError)
        assert error.code == "E09" and not error.transient
        assert str(error).startswith("E09 Security Level Violation: meter M7:")


def test_os_errors_translate_to_transient_codes() -> None:
    assert translate(TimeoutError()).code == "E04"
    assert translate(ConnectionRefusedError(111, "refused")).code == "E01"
    assert translate(ConnectionResetError(104, "reset")).code == "E02"
    assert translate(asyncio.IncompleteReadError(b"", 5)).code == "E02"
