"""Helpers the VEE rule tests share: a series from per-channel rows, a context, running one
rule with its default parameters. Import as ``import vee_support``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from meterledger.vee import rules_stats, rules_values
from meterledger.vee.findings import Context, Hits, Rule
from meterledger.vee.series import Channels, ClockReads, Registers, Series, offsets_of

Q = 900
IMPORT, EXPORT, NET = "1.0.1.8.0.255", "1.0.2.8.0.255", "1.0.16.8.0.255"
KWH = 1_000_000  # mWh


def at(text: str, tz: str = "UTC") -> int:
    """Epoch seconds of a wall-clock time in ``tz`` (the first of a repeated hour)."""
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp())


def series_of(
    rows: Sequence[tuple[Sequence[int], Sequence[int], Sequence[int]]],
    *,
    obis: Sequence[str],
    tz: Sequence[str],
    check_from: Sequence[int],
    check_to: Sequence[int],
    net: Sequence[bool] | None = None,
    negative: Sequence[bool] | None = None,
) -> Series:
    """A quarter-hour series of channels ``M0``, ``M1`` ...: ``rows[c]`` is channel c's
    ``(ends, values, quality flags)``."""
    n = len(rows)
    return Series(
        Channels(
            channel_id=np.arange(1, n + 1, dtype=np.int64),
            meter_id=tuple(f"M{i}" for i in range(n)),
            obis=tuple(obis),
            timezone=tuple(tz),
            meter_class=("default",) * n,
            source=("csv",) * n,
            step=np.full(n, Q, dtype=np.int64),
            net=np.array(net if net is not None else [False] * n, dtype=bool),
            allows_negative=np.array(negative if negative is not None else [False] * n, dtype=bool),
        ),
        offsets_of([len(r[0]) for r in rows]),
        np.array([e for r in rows for e in r[0]], dtype=np.int64),
        np.full(sum(len(r[0]) for r in rows), Q, dtype=np.int64),
        np.array([v for r in rows for v in r[1]], dtype=np.int64),
        np.array([f for r in rows for f in r[2]], dtype=np.int64),
        np.array(check_from, dtype=np.int64),
        np.array(check_to, dtype=np.int64),
    )


def context(series: Series, registers: Registers | None = None) -> Context:
    count = len(series.channels)
    regs = registers if registers is not None else Registers.empty(count)
    return Context(series, regs, ClockReads.empty(count), now=at("2030-01-01T00:00"))


def run(code: str, series: Series, ctx: Context | None = None, **params: object) -> Hits:
    """One value or statistical rule with its default parameters, ``params`` changed."""
    rules: dict[str, Rule] = {**rules_values.RULES, **rules_stats.RULES}
    defaults = {**rules_values.DEFAULTS, **rules_stats.DEFAULTS}
    merged = {k: v for k, v in defaults[code].items() if k != "severity"}
    merged.update(params)
    return rules[code](series, ctx or context(series), merged)


def found(hits: Hits) -> list[tuple[int, int, str]]:
    return sorted(
        zip(hits.row_channel.tolist(), hits.interval_end.tolist(), hits.detail, strict=True)
    )
