"""The circuit breaker's sliding window, exactly (fake clock): the failure rate among the
calls of the last 60 s opens it past 15 % given the minimum calls; probes decide after the
cool-down; each opening is one ERROR line and one count. (The consecutive-failure rule and
the single trial are in test_breaker_retry.py.)"""

from __future__ import annotations

import asyncio
import logging

import pytest

from meterledger.collect.breaker import (
    BreakerBoard,
    BreakerEvent,
    BreakerReading,
    BreakerSettings,
    BreakerState,
    CircuitBreaker,
    wait_until_allowed,
)
from meterledger.collect.errors import CircuitOpenError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: FakeClock, **options: object) -> CircuitBreaker:
    # a threshold this high leaves the failure rate as the only reason to open
    settings: dict[str, object] = {"threshold": 1000, "cooldown": 30.0, "min_calls": 10}
    settings.update(options)
    return CircuitBreaker("gw:4059", clock=clock, **settings)  # type: ignore[arg-type]


def calls(b: CircuitBreaker, clock: FakeClock, ok: int, failed: int, step: float = 0.1) -> None:
    for outcome in [True] * ok + [False] * failed:
        assert b.allow()
        clock.now += step
        if outcome:
            b.record_success()
        else:
            b.record_failure()


def test_fourteen_percent_does_not_open() -> None:
    clock = FakeClock()
    b = breaker(clock)
    calls(b, clock, ok=43, failed=7)  # 7 / 50 = 14 %
    assert b.state is BreakerState.CLOSED
    assert (b.calls_in_window(), b.window_failure_rate()) == (50, 0.14)
    assert b.opened == 0


def test_sixteen_percent_opens(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    b = breaker(clock)
    with caplog.at_level(logging.ERROR, logger="meterledger.collect"):
        calls(b, clock, ok=42, failed=7)  # 7 / 49 = 14.3 %: still closed
        assert b.state is BreakerState.CLOSED
        calls(b, clock, ok=0, failed=1)  # 8 / 50 = 16 %
    assert b.state is BreakerState.OPEN and not b.allow()
    assert b.opened == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage() == (
        "circuit gw:4059 opened for 30 s: 8 of 50 calls failed in 60 s (16% > 15%)"
    )
    for _ in range(5):  # refused calls neither log again nor count
        assert not b.allow()
    assert b.opened == 1 and len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


def test_exactly_fifteen_percent_does_not_pass_it() -> None:
    clock = FakeClock()
    b = breaker(clock)
    calls(b, clock, ok=17, failed=3)  # 3 / 20 = 15 %: not past 15 %
    assert b.state is BreakerState.CLOSED


def test_below_the_minimum_calls_a_high_rate_does_not_open() -> None:
    clock = FakeClock()
    b = breaker(clock)
    calls(b, clock, ok=5, failed=4)  # 4 / 9 = 44 %, but only 9 calls
    assert b.state is BreakerState.CLOSED
    calls(b, clock, ok=0, failed=1)  # the 10th call: 5 / 10
    assert b.state is BreakerState.OPEN


def test_the_minimum_defaults_to_ten_or_the_threshold() -> None:
    clock = FakeClock()
    assert CircuitBreaker("a", clock=clock).needed_calls == 10
    assert CircuitBreaker("a", threshold=1000, clock=clock).needed_calls == 1000
    assert CircuitBreaker("a", threshold=1000, min_calls=3, clock=clock).needed_calls == 3


def test_old_calls_leave_the_window() -> None:
    clock = FakeClock()
    b = breaker(clock)
    calls(b, clock, ok=0, failed=5, step=0)  # at 1000.0: 5 failures
    clock.now = 1030.0
    calls(b, clock, ok=20, failed=0, step=0)
    assert (b.calls_in_window(), b.window_failure_rate()) == (25, 0.2)
    clock.now = 1060.0  # the failures at 1000.0 are 60 s old: out of the window
    assert (b.calls_in_window(), b.window_failure_rate()) == (20, 0.0)
    calls(b, clock, ok=0, failed=3, step=0)  # 3 / 23 = 13 %: stays closed
    assert b.state is BreakerState.CLOSED
    edge = FakeClock()
    b2 = breaker(edge)
    calls(b2, edge, ok=0, failed=1, step=0)
    edge.now += 59.5
    assert b2.calls_in_window() == 1  # 59.5 s old: still in
    edge.now += 0.5
    assert b2.calls_in_window() == 0  # 60 s old: out


def test_half_open_probes_that_all_succeed_close_it() -> None:
    clock = FakeClock()
    b = breaker(clock, probes=3)
    calls(b, clock, ok=0, failed=10, step=0)
    assert b.state is BreakerState.OPEN and b.retry_after() == 30
    clock.now += 30
    assert b.state is BreakerState.HALF_OPEN
    assert [b.allow() for _ in range(4)] == [True, True, True, False]  # a batch of 3
    b.record_success()
    b.record_success()
    assert b.state is BreakerState.HALF_OPEN and not b.allow()
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.allow()
    assert (b.calls_in_window(), b.window_failure_rate()) == (0, 0.0)  # a fresh window
    assert b.opened == 1


def test_a_failed_probe_reopens_for_a_whole_cooldown() -> None:
    clock = FakeClock()
    b = breaker(clock, probes=2)
    calls(b, clock, ok=0, failed=10, step=0)
    clock.now += 30
    assert b.allow() and b.allow()
    b.record_success()
    b.record_failure()
    assert b.state is BreakerState.OPEN and b.opened == 2
    b.record_success()  # the other probe's late answer changes nothing
    assert b.state is BreakerState.OPEN
    clock.now += 29.5
    assert not b.allow()
    clock.now += 0.5
    assert b.allow() and b.allow() and not b.allow()  # a new batch of 2


def test_a_released_probe_frees_its_slot() -> None:
    clock = FakeClock()
    b = breaker(clock, probes=1)
    calls(b, clock, ok=0, failed=10, step=0)
    clock.now += 30
    assert b.allow() and not b.allow()
    b.release()
    assert b.allow()


def test_readings_for_status() -> None:
    clock = FakeClock()
    board = BreakerBoard(threshold=1000, cooldown=30, clock=clock, min_calls=4)
    calls(board.get("b:1"), clock, ok=3, failed=0, step=1)
    calls(board.get("a:1"), clock, ok=2, failed=2, step=1)
    clock.now += 5
    assert board.readings() == [
        BreakerReading("a:1", BreakerState.OPEN, 0.5, 4, 1, 5.0, 25.0),  # half-open in 25 s
        BreakerReading("b:1", BreakerState.CLOSED, 0.0, 3, 0, None),
    ]


@pytest.mark.parametrize(
    "options",
    [{"window": 0}, {"failure_rate": 1.0}, {"failure_rate": -0.1}, {"min_calls": 0}, {"probes": 0}],
)
def test_nonsense_settings_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("x", **options)  # type: ignore[arg-type]


def test_listener_hears_open_half_open_and_close() -> None:
    clock = FakeClock()
    events: list[BreakerEvent] = []
    board = BreakerBoard.of(
        BreakerSettings(threshold=1000, cooldown=30, min_calls=4, probes=2),
        feed="vendor",
        clock=clock,
        listener=events.append,
    )
    b = board.get("127.0.0.1:8000")
    assert b.name == "vendor/127.0.0.1:8000"
    calls(b, clock, ok=2, failed=2)
    clock.now += 30
    assert b.allow() and b.allow() and not b.allow()  # a batch of two probes
    b.record_success()
    b.record_success()
    assert [(e.state, e.name) for e in events] == [
        (BreakerState.OPEN, "vendor/127.0.0.1:8000"),
        (BreakerState.HALF_OPEN, "vendor/127.0.0.1:8000"),
        (BreakerState.CLOSED, "vendor/127.0.0.1:8000"),
    ]
    assert "2 of 4 calls failed" in events[0].why
    assert events[0].reading.opened == 1 and events[1].at == events[0].at + 30.2 - 0.2
    assert events[2].reading.state is BreakerState.CLOSED


def test_settings_are_checked_like_a_breaker() -> None:
    with pytest.raises(ValueError, match="failure rate"):
        BreakerSettings(failure_rate=1.5)
    made = BreakerSettings(window=10, failure_rate=0.5, min_calls=2).breaker("x")
    assert (made.window, made.failure_rate, made.needed_calls) == (10, 0.5, 2)


def test_wait_until_allowed_pauses_for_the_cool_down() -> None:
    clock = FakeClock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    b = breaker(clock, threshold=1, cooldown=30)
    assert b.allow()
    b.record_failure()
    asyncio.run(wait_until_allowed(b, sleep=sleep))  # paused, then let through as the probe
    assert slept == [30.0] and b.state is BreakerState.HALF_OPEN
    b.record_failure()  # the probe failed: open again
    with pytest.raises(CircuitOpenError, match="is open"):
        asyncio.run(wait_until_allowed(b, sleep=sleep, deadline=clock.now + 10))
    assert slept == [30.0]  # it did not wait past its deadline


def test_a_failing_listener_never_leaves_a_probe_slot_taken(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A listener that raises (a locked store) is logged; the breaker's change completes,
    so the probe's verdict still closes it and later calls go through."""
    clock = FakeClock()

    def broken(event: BreakerEvent) -> None:
        raise OSError("database is locked")

    b = CircuitBreaker("gw", threshold=1, cooldown=10, clock=clock, listener=broken)
    with caplog.at_level(logging.WARNING, logger="meterledger.collect"):
        assert b.allow()
        b.record_failure()  # opens: the listener fails, the breaker is open all the same
        assert b.state is BreakerState.OPEN
        clock.now += 10
        assert b.allow()  # the probe: half-open, the listener fails again
        b.record_success()
    assert b.state is BreakerState.CLOSED and b.allow() and b.allow()
    failed = [r for r in caplog.records if getattr(r, "code", "") == "breaker-listener"]
    assert len(failed) == 3  # open, half-open, closed: each logged, none raised


def test_carry_over_starts_a_new_breaker_from_a_saved_reading() -> None:
    clock = FakeClock()
    b = CircuitBreaker("sftp", threshold=3, cooldown=300, clock=clock, min_calls=100)
    b.carry_over(failures=2, calls=2, in_a_row=2)  # the last run: two failed sessions
    assert b.state is BreakerState.CLOSED and b.calls_in_window() == 2 and b.failures == 2
    assert b.allow()
    b.record_failure()  # the third in a row
    assert b.state is BreakerState.OPEN and b.opened == 1
    held = CircuitBreaker("sftp", cooldown=300, clock=clock)
    held.carry_over(failures=1, calls=4, open_for=120)  # saved open, 120 s to go
    assert held.state is BreakerState.OPEN and not held.allow() and held.opened == 0
    assert held.retry_after() == pytest.approx(120)
    clock.now += 120
    assert held.allow()  # the probe
    with pytest.raises(ValueError, match="new breaker"):
        held.carry_over(failures=0, calls=0)
    with pytest.raises(ValueError, match="in_a_row"):
        CircuitBreaker("x", clock=clock).carry_over(failures=3, calls=2)
