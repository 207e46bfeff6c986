"""Run every enabled rule over a series and gather what they find.

Each channel's rule profile comes from its (meter class, source) (see
:mod:`meterledger.vee.config`); a class with ``net_meter: true`` marks its channels net in
the series the rules see. Rules run in catalogue order, ``ROLLOVER`` first. A rule runs once
over all the channels whose profiles give it the same severity and parameters -- usually
every channel, in one call over the whole series. The channels of each other setting are
taken out as a sub-series (by channel offsets, no per-interval loop) with its own
:class:`~meterledger.vee.findings.Context`; what ``ROLLOVER`` explained is carried between
the contexts, so every rule sees it. A rule marked
:func:`~meterledger.vee.findings.per_channel` (its findings on a channel depend on that
channel alone) is instead run over the whole series for each setting, keeping the findings
on that setting's channels: no rows are copied. Each hit is tagged with its rule's code and
severity.

:class:`Findings` are sorted by (channel_id, interval_end, rule) and hold at most one finding
per rule and interval. An interval is *held* (kept out of billing until reviewed) when its
worst finding is ``fail``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from meterledger.vee.config import RuleSet
from meterledger.vee.findings import Context, Hits, Severity, is_per_channel
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
    series: Series, registers: Registers, clocks: ClockReads, chans: np.ndarray
) -> tuple[Series, Registers, ClockReads, np.ndarray]:
    """The channels ``chans`` taken out, with their registers and clock reads, and the row
    index (into ``series``) of each row taken."""
    info = series.channels
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
        net=info.net[chans],
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
    return sub, regs, clks, rows


def _only(hits: Hits, chans: np.ndarray, count: int) -> Hits:
    """The hits on channels ``chans`` (of ``count``)."""
    member = np.zeros(count, dtype=bool)
    member[chans] = True
    keep = member[hits.row_channel]
    detail = tuple(d for d, k in zip(hits.detail, keep.tolist(), strict=True) if k)
    return Hits(hits.row_channel[keep], hits.interval_end[keep], detail)


def _tick(timings: dict[str, float] | None, name: str, started: float) -> float:
    now = time.perf_counter()
    if timings is not None:
        timings[name] = timings.get(name, 0.0) + now - started
    return now


@dataclass(slots=True)
class _Hits:
    """Hits gathered over the run, in global channel indices."""

    chan: list[np.ndarray] = field(default_factory=list)
    end: list[np.ndarray] = field(default_factory=list)
    code: list[np.ndarray] = field(default_factory=list)
    severity: list[np.ndarray] = field(default_factory=list)
    detail: list[str] = field(default_factory=list)

    def add(self, chans: np.ndarray, hits: Hits, rule: str, code: int, severity: Severity) -> None:
        if len(hits) and (hits.row_channel.min() < 0 or hits.row_channel.max() >= len(chans)):
            raise ValueError(f"rule {rule} named a channel outside its series")
        self.chan.append(chans[hits.row_channel])
        self.end.append(hits.interval_end)
        self.code.append(np.full(len(hits), code, dtype=_I64))
        self.severity.append(np.full(len(hits), int(severity), dtype=np.int8))
        self.detail.extend(hits.detail)


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
    ``partition``, ``local_time`` and ``findings``).

    Each channel's profile is that of its (meter class, source). A rule runs once over all
    the channels whose profiles give it the same severity and parameters (usually all of
    them, in one call over the whole series); the channels of each other setting are taken
    out as a sub-series with its own context, whose ``explained`` rows are carried to and
    from the whole series' context so that every rule sees what ``ROLLOVER`` explained."""
    count = len(series.channels)
    registers = registers if registers is not None else Registers.empty(count)
    clocks = clocks if clocks is not None else ClockReads.empty(count)
    clock = time.perf_counter()
    info = series.channels
    keys = list(zip(info.meter_class, info.source, strict=True))
    profiles = {key: ruleset.profile(*key) for key in sorted(set(keys))}
    order = {key: i for i, key in enumerate(profiles)}
    profile_of = np.array([order[key] for key in keys], dtype=_I64)
    listed = list(profiles.values())
    net = np.asarray(info.net, dtype=bool) | np.array(
        [profiles[key].net_meter for key in keys], dtype=bool
    )
    if count and not np.array_equal(net, info.net):
        series = replace(series, channels=replace(info, net=net))
    whole = Context(series, registers, clocks, now)
    everyone = np.arange(count, dtype=_I64)
    parts: dict[bytes, tuple[Series, Context, np.ndarray]] = {}
    codes = sorted(rule.code for rule in ruleset.catalogue)
    code_index = {code: i for i, code in enumerate(codes)}
    found = _Hits()
    clock = _tick(timings, "partition", clock)
    if count and any(p.enabled() for p in listed):
        _ = whole.local_start  # computed once, shared by the rules
    clock = _tick(timings, "local_time", clock)
    for rule in ruleset.catalogue:
        settings: dict[tuple[Severity, str], list[int]] = {}
        for i, profile in enumerate(listed):
            severity = profile.severity(rule.code)
            if severity is not Severity.PASS:
                setting = repr(sorted(profile.params(rule.code).items()))
                settings.setdefault((severity, setting), []).append(i)
        for (severity, _), members in settings.items():
            params = listed[members[0]].params(rule.code)
            chans = np.flatnonzero(np.isin(profile_of, members))
            if len(chans) == count or is_per_channel(rule.rule):
                hits = rule.rule(series, whole, params)
                if len(chans) < count:  # keep the findings on this setting's channels
                    hits = _only(hits, chans, count)
                found.add(everyone, hits, rule.code, code_index[rule.code], severity)
                clock = _tick(timings, rule.code, clock)
                continue
            part = parts.get(chans.tobytes())
            if part is None:
                sub, regs, clks, rows = _subset(series, registers, clocks, chans)
                part = parts[chans.tobytes()] = (sub, Context(sub, regs, clks, now), rows)
                clock = _tick(timings, "partition", clock)
            sub, context, rows = part
            context.explained = whole.explained[rows]
            hits = rule.rule(sub, context, params)
            whole.explained[rows] = context.explained
            found.add(chans, hits, rule.code, code_index[rule.code], severity)
            clock = _tick(timings, rule.code, clock)
    result = _assemble(series, codes, found)
    _tick(timings, "findings", clock)
    return result


def _assemble(series: Series, codes: Sequence[str], found: _Hits) -> Findings:
    if not found.detail:
        return Findings.empty()
    chan = np.concatenate(found.chan)
    channel_id = np.asarray(series.channels.channel_id, dtype=_I64)[chan]
    end = np.concatenate(found.end)
    code = np.concatenate(found.code)
    order = np.lexsort((code, end, channel_id))  # stable: a rule's first hit is kept
    channel_id, end, code, chan = channel_id[order], end[order], code[order], chan[order]
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = (channel_id[1:] != channel_id[:-1]) | (end[1:] != end[:-1]) | (code[1:] != code[:-1])
    order, chan = order[keep], chan[keep]
    names = np.asarray(codes, dtype=object)
    meters = np.asarray(series.channels.meter_id, dtype=object)
    obis = np.asarray(series.channels.obis, dtype=object)
    text = np.asarray(found.detail, dtype=object)
    return Findings(
        channel_id[keep],
        tuple(meters[chan].tolist()),
        tuple(obis[chan].tolist()),
        end[keep],
        tuple(names[code[keep]].tolist()),
        np.concatenate(found.severity)[order],
        tuple(text[order].tolist()),
    )
