"""What a rule is handed and what it gives back.

A rule is a function ``rule(series, context, params) -> Hits``: it looks at every row of
``series`` at once (numpy, never a Python loop per interval) with scalar ``params`` (the
merged parameters of one meter class and data source, see :mod:`meterledger.vee.config`)
and returns the intervals it flags, each with a one-line ``detail`` a reviewer can act on.
The engine adds the rule's code and severity. Rules report only on checked rows
(:meth:`Series.checked`); history rows are context.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from meterledger.vee.facts import local_start
from meterledger.vee.series import ClockReads, Registers, Series

__all__ = ["Context", "Hits", "Rule", "Severity", "is_per_channel", "per_channel"]

_I64 = np.int64


class Severity(enum.IntEnum):
    """A rule's result; the worst wins. ``pass`` as a configured severity turns a rule off."""

    PASS = 0
    WARN = 1
    FAIL = 2

    @property
    def text(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"severity is pass, warn or fail, got {text!r}") from None


@dataclass(frozen=True, slots=True)
class Hits:
    """Flagged intervals: the channel index (into ``series.channels``) and ``interval_end``
    of each, and its detail. An interval that has no row (a gap) is named by the end it
    should have had; a finding about a whole local day by the day's last interval end."""

    row_channel: np.ndarray
    interval_end: np.ndarray
    detail: tuple[str, ...]

    def __post_init__(self) -> None:
        if not len(self.row_channel) == len(self.interval_end) == len(self.detail):
            raise ValueError("Hits arrays differ in length")

    def __len__(self) -> int:
        return len(self.detail)

    @classmethod
    def empty(cls) -> Hits:
        none = np.empty(0, dtype=_I64)
        return cls(none, none.copy(), ())

    @classmethod
    def of(cls, row_channel: np.ndarray, interval_end: np.ndarray, detail: Sequence[str]) -> Hits:
        return cls(
            np.asarray(row_channel, dtype=_I64), np.asarray(interval_end, dtype=_I64), tuple(detail)
        )


@dataclass(slots=True)
class Context:
    """What every rule may use besides the rows: register and clock reads, the time now
    (UTC epoch seconds, for future timestamps), and facts computed once per series.

    ``explained`` marks rows whose odd value a rollover or reset explains (the rollover
    rule runs first and sets it); spike and negative-usage rules leave those rows alone.
    """

    series: Series
    registers: Registers
    clocks: ClockReads
    now: int
    explained: np.ndarray = field(init=False)
    _local_start: np.ndarray | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.explained = np.zeros(self.series.rows, dtype=bool)

    @property
    def local_start(self) -> np.ndarray:
        """Each row's interval *start* as local wall-clock seconds in its meter's zone
        (:func:`local_epoch`): ``// 86400`` is the local day the interval belongs to,
        ``% 86400`` its time of day; ``(day + 3) % 7`` is the weekday, Monday 0."""
        if self._local_start is None:
            self._local_start = local_start(self.series)
        return self._local_start


Rule = Callable[[Series, Context, Mapping[str, Any]], Hits]


_R = TypeVar("_R", bound=Rule)
_PER_CHANNEL: set[object] = set()


def per_channel(rule: _R) -> _R:
    """Mark ``rule`` as one whose findings on a channel depend only on that channel (its
    rows, register and clock reads and explained rows) and that changes no
    ``Context.explained``: the engine may then run it over the whole series for each
    setting and keep the findings on that setting's channels, instead of taking the
    channels out as a sub-series."""
    _PER_CHANNEL.add(rule)
    return rule


def is_per_channel(rule: Rule) -> bool:
    """Whether ``rule`` was marked with :func:`per_channel`."""
    return rule in _PER_CHANNEL
