"""Run every enabled rule over a series and gather what they find.

Channels are grouped by their rule profile (meter class, source; see
:mod:`meterledger.vee.config`); each group's rows are taken out as one sub-series (by channel
offsets, no per-interval loop) with one :class:`~meterledger.vee.findings.Context`, and its
enabled rules run in order, ``ROLLOVER`` first so that later rules see what a rollover
explains. A class with ``net_meter: true`` marks its channels net in the series its rules
see. Each hit is tagged with its rule's code and the profile's severity for it.

:class:`Findings` are sorted by (channel_id, interval_end, rule) and hold at most one finding
per rule and interval. An interval is *held* (kept out of billing until reviewed) when its
worst finding is ``fail``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from meterledger.vee.config import RuleSet
from meterledger.vee.findings import Context, Hits, Severity
from meterledger.vee.series import Channels, ClockReads, Registers, Series, offsets_of

__all__ = ["Findings", "Verdicts", "run_rules"]

_I64 = np.int64


@dataclass(frozen=True, slots=True)
class Verdicts:
    """The worst severity of each flagged interval, sorted by (channel_id, interval_end)."""

    channel_id: np.ndarray
    interval_end: np.ndarray
    severity: np.ndarray

    def __len__(self) -> int:
        return len(self.channel_id)


@dataclass(frozen=True, slots=True)
class Findings:
    """What the rules found, one row per (channel, interval end, rule), sorted by those.
    ``severity`` holds :class:`Severity` values (int8); ``interval_end`` UTC epoch seconds."""

    channel_id: np.ndarray
    meter_id: tuple[str, ...]
    obis: tuple[str, ...]
    interval_end: np.ndarray
    rule: tuple[str, ...]
    severity: np.ndarray
    detail: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.detail)

    @classmethod
    def empty(cls) -> Findings:
        none = np.empty(0, dtype=_I64)
        return cls(none, (), (), none.copy(), (), np.empty(0, dtype=np.int8), ())

    def severity_text(self, i: int) -> str:
        """``pass``, ``warn`` or ``fail`` for row ``i``."""
        return Severity(int(self.severity[i])).text

    def _heads(self) -> np.ndarray:
        """True at the first row of each (channel_id, interval_end)."""
        head = np.ones(len(self), dtype=bool)
        head[1:] = (self.channel_id[1:] != self.channel_id[:-1]) | (
            self.interval_end[1:] != self.interval_end[:-1]
        )
        return head

    def worst(self) -> Verdicts:
        """The worst severity per flagged interval (the worst finding wins)."""
        if not len(self):
            return Verdicts(self.channel_id, self.interval_end, self.severity)
        heads = np.flatnonzero(self._heads())
        worst = np.maximum.reduceat(self.severity, heads)
        return Verdicts(self.channel_id[heads], self.interval_end[heads], worst)

    def held(self) -> np.ndarray:
        """Per row: True when its interval's worst finding is ``fail`` (kept out of billing)."""
        if not len(self):
            return np.zeros(0, dtype=bool)
        head = self._heads()
        worst = np.maximum.reduceat(self.severity, np.flatnonzero(head))
        held: np.ndarray = worst[np.cumsum(head) - 1] == int(Severity.FAIL)
        return held

    def count_by_rule(self) -> dict[str, int]:
        """Findings per rule code, codes sorted."""
        codes, counts = np.unique(np.asarray(self.rule, dtype=str), return_counts=True)
        return {str(c): int(n) for c, n in zip(codes.tolist(), counts.tolist(), strict=True)}

    def select(self, mask: np.ndarray) -> Findings:
        """The rows where ``mask`` is True (still sorted)."""
        index = np.flatnonzero(mask).tolist()
        return Findings(
            self.channel_id[index],
            tuple(self.meter_id[i] for i in index),
            tuple(self.obis[i] for i in index),
            self.interval_end[index],
            tuple(self.rule[i] for i in index),
            self.severity[index],
            tuple(self.detail[i] for i in index),
        )

    def records(self) -> list[dict[str, Any]]:
        """One plain mapping per finding (``interval_end`` as epoch seconds)."""
        return [
            {
                "channel_id": int(c),
                "meter_id": m,
                "channel": o,
                "interval_end": int(e),
                "rule": r,
                "severity": Severity(int(s)).text,
                "detail": d,
            }
            for c, m, o, e, r, s, d in zip(
                self.channel_id.tolist(),
                self.meter_id,
                self.obis,
                self.interval_end.tolist(),
                self.rule,
                self.severity.tolist(),
                self.detail,
                strict=True,
            )
        ]


def _rows_of(offsets: np.ndarray, chans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The new offsets of channels ``chans`` taken out, and the row index of each new row."""
    lo = offsets[chans]
    counts = offsets[chans + 1] - lo
    new = offsets_of(counts)
    index = np.arange(int(new[-1]), dtype=_I64) - np.repeat(new[:-1] - lo, counts)
    return new, index


def _subset(
    series: Series, registers: Registers, clocks: ClockReads, chans: np.ndarray, net: bool
) -> tuple[Series, Registers, ClockReads]:
    info = series.channels
    every = len(chans) == len(info)
    flags = np.asarray(info.net[chans], dtype=bool) | net
    if every:
        channels = replace(info, net=flags) if net else info
        return replace(series, channels=channels), registers, clocks
    picked = chans.tolist()

    def pick(values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(values[c] for c in picked)

    channels = Channels(
        channel_id=info.channel_id[chans],
        meter_id=pick(info.meter_id),
        obis=pick(info.obis),
        timezone=pick(info.timezone),
        meter_class=pick(info.meter_class),
        source=pick(info.source),
        step=info.step[chans],
        net=flags,
        allows_negative=info.allows_negative[chans],
    )
    offsets, rows = _rows_of(series.offsets, chans)
    sub = Series(
        channels,
        offsets,
        series.interval_end[rows],
        series.interval_seconds[rows],
        series.value[rows],
        series.quality[rows],
        series.check_from[chans],
        series.check_to[chans],
    )
    reg_offsets, reg_rows = _rows_of(registers.offsets, chans)
    regs = Registers(reg_offsets, registers.read_at[reg_rows], registers.value[reg_rows])
    clk_offsets, clk_rows = _rows_of(clocks.offsets, chans)
    clks = ClockReads(clk_offsets, clocks.read_at[clk_rows], clocks.drift_ms[clk_rows])
    return sub, regs, clks


def _groups(series: Series) -> list[tuple[tuple[str, str], np.ndarray]]:
    """Channel indices per (meter class, source), in sorted key order."""
    by_key: dict[tuple[str, str], list[int]] = {}
    info = series.channels
    for c, key in enumerate(zip(info.meter_class, info.source, strict=True)):
        by_key.setdefault(key, []).append(c)
    return [(key, np.array(by_key[key], dtype=_I64)) for key in sorted(by_key)]


def _tick(timings: dict[str, float] | None, name: str, started: float) -> float:
    now = time.perf_counter()
    if timings is not None:
        timings[name] = timings.get(name, 0.0) + now - started
    return now


def run_rules(
    series: Series,
    ruleset: RuleSet,
    *,
    registers: Registers | None = None,
    clocks: ClockReads | None = None,
    now: int,
    timings: dict[str, float] | None = None,
) -> Findings:
    """Every enabled rule of each channel's profile over ``series``; ``now`` is UTC epoch
    seconds. ``timings``, when given, is added the seconds spent per rule code (and in
    ``partition``, ``local_time`` and ``findings``)."""
    count = len(series.channels)
    registers = registers if registers is not None else Registers.empty(count)
    clocks = clocks if clocks is not None else ClockReads.empty(count)
    chan_parts: list[np.ndarray] = []
    end_parts: list[np.ndarray] = []
    code_parts: list[np.ndarray] = []
    sev_parts: list[np.ndarray] = []
    details: list[str] = []
    codes = [info.code for info in ruleset.catalogue]
    code_index = {code: i for i, code in enumerate(sorted(codes))}
    clock = time.perf_counter()
    for (meter_class, source), chans in _groups(series):
        profile = ruleset.profile(meter_class, source)
        enabled = profile.enabled()
        if not enabled:
            continue
        sub, regs, clks = _subset(series, registers, clocks, chans, profile.net_meter)
        context = Context(sub, regs, clks, now)
        clock = _tick(timings, "partition", clock)
        _ = context.local_start  # computed once, shared by the group's rules
        clock = _tick(timings, "local_time", clock)
        for code in enabled:
            hits: Hits = ruleset.rule(code)(sub, context, profile.params(code))
            if len(hits):
                if hits.row_channel.min() < 0 or hits.row_channel.max() >= len(chans):
                    raise ValueError(f"rule {code} named a channel outside its series")
                chan_parts.append(chans[hits.row_channel])
                end_parts.append(hits.interval_end)
                code_parts.append(np.full(len(hits), code_index[code], dtype=_I64))
                sev_parts.append(np.full(len(hits), int(profile.severity(code)), dtype=np.int8))
                details.extend(hits.detail)
            clock = _tick(timings, code, clock)
    found = _assemble(series, codes, chan_parts, end_parts, code_parts, sev_parts, details)
    _tick(timings, "findings", clock)
    return found


def _assemble(
    series: Series,
    codes: Sequence[str],
    chan_parts: list[np.ndarray],
    end_parts: list[np.ndarray],
    code_parts: list[np.ndarray],
    sev_parts: list[np.ndarray],
    details: list[str],
) -> Findings:
    if not details:
        return Findings.empty()
    chan = np.concatenate(chan_parts)
    channel_id = np.asarray(series.channels.channel_id, dtype=_I64)[chan]
    end = np.concatenate(end_parts)
    code = np.concatenate(code_parts)
    order = np.lexsort((code, end, channel_id))  # stable: a rule's first hit is kept
    channel_id, end, code, chan = channel_id[order], end[order], code[order], chan[order]
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = (channel_id[1:] != channel_id[:-1]) | (end[1:] != end[:-1]) | (code[1:] != code[:-1])
    order, chan = order[keep], chan[keep]
    names = np.asarray(sorted(codes), dtype=object)
    meters = np.asarray(series.channels.meter_id, dtype=object)
    obis = np.asarray(series.channels.obis, dtype=object)
    text = np.asarray(details, dtype=object)
    return Findings(
        channel_id[keep],
        tuple(meters[chan].tolist()),
        tuple(obis[chan].tolist()),
        end[keep],
        tuple(names[code[keep]].tolist()),
        np.concatenate(sev_parts)[order],
        tuple(text[order].tolist()),
    )
