"""The ``--breaker-*`` options of the long-running feeds (``vendor poll``, ``mqtt listen``)
and what their reports say about a feed's breaker (docs/resilience.md#circuit-breakers).

A feed's defaults differ from the DLMS fleet's: a feed has one endpoint and pauses while
its circuit is open, so a shorter cool-down (30 s) brings it back sooner.
"""

from __future__ import annotations

from typing import Annotated

import typer

from meterledger.collect.breaker import BreakerBoard, BreakerSettings

__all__ = [
    "FEED_COOLDOWN",
    "CooldownOption",
    "FailureRateOption",
    "MinCallsOption",
    "ProbesOption",
    "ThresholdOption",
    "WindowOption",
    "breaker_summary",
    "feed_breaker_settings",
]

FEED_COOLDOWN = 30.0

CooldownOption = Annotated[
    float,
    typer.Option(
        "--breaker-cooldown", min=0.0, help="Seconds the circuit stays open before a probe."
    ),
]
FailureRateOption = Annotated[
    float,
    typer.Option(
        "--breaker-failure-rate",
        min=0.0,
        max=0.99,
        help="Open when more than this share of the window's calls failed.",
    ),
]
MinCallsOption = Annotated[
    int | None,
    typer.Option(
        "--breaker-min-calls",
        min=1,
        help="Calls the window must hold before its rate counts (default max(10, threshold)).",
    ),
]
WindowOption = Annotated[
    float,
    typer.Option("--breaker-window", min=1.0, help="Seconds of the sliding failure-rate window."),
]
ProbesOption = Annotated[
    int, typer.Option("--breaker-probes", min=1, help="Calls in the half-open probe batch.")
]
ThresholdOption = Annotated[
    int,
    typer.Option("--breaker-threshold", min=1, help="Open after this many failures in a row."),
]


def feed_breaker_settings(
    *,
    cooldown: float = FEED_COOLDOWN,
    failure_rate: float = 0.15,
    min_calls: int | None = None,
    window: float = 60.0,
    probes: int = 1,
    threshold: int = 5,
) -> BreakerSettings:
    """The settings the options give (a :class:`ValueError` for a bad combination)."""
    return BreakerSettings(
        threshold=threshold,
        cooldown=cooldown,
        window=window,
        failure_rate=failure_rate,
        min_calls=min_calls,
        probes=probes,
    )


def breaker_summary(board: BreakerBoard) -> dict[str, object] | None:
    """The feed's breaker for a ``--json`` report: ``{"endpoint", "state", "opened",
    "failure_rate", "calls_in_window"}`` (None before any call)."""
    readings = board.readings()
    if not readings:
        return None
    r = readings[0]
    return {
        "endpoint": r.name,
        "state": r.state.value,
        "opened": r.opened,
        "failure_rate": round(r.failure_rate, 4),
        "calls_in_window": r.calls_in_window,
    }
