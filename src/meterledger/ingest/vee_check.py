"""VEE over stored data: the rules on what a batch wrote, its gaps estimated, the findings on
the anomaly ledger.

The ingest calls :func:`check_batches` after its batches commit (the collector once per run);
``meterledger vee run`` calls :func:`check_range`. A batch is marked checked (``vee_at``) in
the same transaction that records its findings, so a crash in between leaves it pending
and :func:`check_pending` (run before every bill run) picks it up: nothing reaches a bill
unchecked.

For each channel the rows written are checked from the local midnight before the first of
them up to the last; ``HISTORY_DAYS`` before that are read as context (averages,
hour-of-week statistics, like days). Gaps inside the checked window are estimated first
(:mod:`meterledger.vee.estimate`) and the estimates go through the ordinary ingest as their
own batch (source ``vee:estimate``), so they have idempotency keys, the audit chain and the
revision rules: an actual arriving later supersedes them. The rules then see the estimates,
flagged as such (a gap stays a gap to the completeness rules; a long run of estimates is
a finding of its own).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from meterledger.core.errors import InputError
from meterledger.core.reading import Quality
from meterledger.core.time import epoch_of, iso_utc
from meterledger.ingest import audit
from meterledger.store.base import Store
from meterledger.store.records import ChannelRecord, MeterRecord, NewAnomaly
from meterledger.vee.config import RuleSet
from meterledger.vee.engine import Findings, run_rules
from meterledger.vee.estimate import Estimates, EstimationParams, estimate
from meterledger.vee.findings import Severity
from meterledger.vee.series import Channels, ClockReads, Registers, Series, local_epoch, offsets_of

__all__ = [
    "ESTIMATE_SOURCE",
    "HISTORY_DAYS",
    "VeeOutcome",
    "check_batches",
    "check_pending",
    "check_range",
    "source_kind",
]

HISTORY_DAYS = 35
CHUNK_CHANNELS = 2_000  # channels per pass: ~2,000 x 65 days of quarter-hours in memory
ESTIMATE_SOURCE = "vee:estimate"
_DAY = 86_400
_I64 = np.int64

# writes estimated rows through the ordinary ingest (the caller supplies it: the ingest
# pipeline imports this module, not the other way round)
EstimateWriter = Callable[[bytes], int]


@dataclass(slots=True)
class VeeOutcome:
    """What one VEE pass did."""

    batches: int = 0
    channels: int = 0
    intervals: int = 0
    findings: int = 0
    opened: int = 0
    cleared: int = 0
    held: int = 0
    estimated: int = 0
    unfilled: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, other: VeeOutcome) -> None:
        for name in (
            "batches",
            "channels",
            "intervals",
            "findings",
            "opened",
            "cleared",
            "held",
            "estimated",
            "unfilled",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for code, count in other.by_rule.items():
            self.by_rule[code] = self.by_rule.get(code, 0) + count
        self.seconds += other.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "channels": self.channels,
            "intervals": self.intervals,
            "findings": self.findings,
            "opened": self.opened,
            "cleared": self.cleared,
            "held": self.held,
            "estimated": self.estimated,
            "unfilled": self.unfilled,
            "by_rule": dict(sorted(self.by_rule.items())),
            "seconds": round(self.seconds, 3),
        }


def source_kind(source: str, fmt: str) -> str:
    """The data source a rule profile is chosen by: ``dlms`` for the head-end's deliveries,
    ``vee`` for estimates, else the file format (``csv``, ``jsonl``, ``greenbutton``)."""
    if source.startswith("dlms"):
        return "dlms"
    if source.startswith("vee:"):
        return "vee"
    return fmt


@dataclass(frozen=True, slots=True)
class _Span:
    channel_id: int
    lo: int  # first interval end to check
    hi: int  # last interval end to check


def _merge(spans: Iterable[tuple[int, int, int]]) -> list[_Span]:
    """One span per channel covering every span given for it."""
    wide: dict[int, tuple[int, int]] = {}
    for channel_id, lo, hi in spans:
        held = wide.get(channel_id)
        wide[channel_id] = (lo, hi) if held is None else (min(held[0], lo), max(held[1], hi))
    return [_Span(c, lo, hi) for c, (lo, hi) in sorted(wide.items())]


def _midnight_before(instant: int, tz: str) -> int:
    """UTC epoch of the local midnight at which the interval ending at ``instant`` starts
    its day (the check window starts there, so day-level rules see whole days)."""
    local = int(local_epoch(np.array([instant - 1], dtype=_I64), tz)[0])
    midnight_local = local - local % _DAY
    offset = local - (instant - 1)
    return midnight_local - offset


@dataclass(frozen=True, slots=True)
class _Registry:
    """The meters and channels, read once per pass (not once per chunk)."""

    channels: dict[int, ChannelRecord]
    meters: dict[str, MeterRecord]

    @classmethod
    def load(cls, store: Store) -> _Registry:
        return cls(
            {c.channel_id: c for c in store.list_channels()},
            {m.meter_id: m for m in store.list_meters()},
        )


def _series(
    store: Store, spans: list[_Span], ruleset: RuleSet, history_days: int, registry: _Registry
) -> tuple[Series, Registers, ClockReads, np.ndarray]:
    channels, meters = registry.channels, registry.meters
    missing = [s.channel_id for s in spans if s.channel_id not in channels]
    if missing:
        raise InputError(f"unknown channels {missing}")
    ids = np.array([s.channel_id for s in spans], dtype=_I64)
    tz = tuple(meters[channels[s.channel_id].meter_id].timezone for s in spans)
    check_from = np.array(
        [_midnight_before(s.lo, z) for s, z in zip(spans, tz, strict=True)], dtype=_I64
    )
    check_to = np.array([s.hi for s in spans], dtype=_I64)
    start = int(check_from.min()) - history_days * _DAY
    end = int(check_to.max())
    rows = store.vee_read([int(c) for c in ids], start, end)
    position = np.searchsorted(ids, rows.channel_id)
    offsets = offsets_of(np.bincount(position, minlength=len(ids)))
    # the channel's expected interval: the most common length in its rows (else 15 minutes)
    step = np.full(len(ids), 900, dtype=_I64)
    latest_batch = np.full(len(ids), -1, dtype=_I64)
    for i in range(len(ids)):
        lo, hi = int(offsets[i]), int(offsets[i + 1])
        if hi > lo:
            lengths, counts = np.unique(rows.interval_seconds[lo:hi], return_counts=True)
            step[i] = int(lengths[np.argmax(counts)])
            latest_batch[i] = int(rows.batch_id[lo:hi].max())
    sources = store.batch_sources([int(b) for b in set(latest_batch.tolist()) if b >= 0])
    kinds = tuple(
        source_kind(*sources[int(b)]) if int(b) in sources else "csv" for b in latest_batch
    )
    classes = tuple(meters[channels[s.channel_id].meter_id].meter_class for s in spans)
    net = np.array(
        [ruleset.profile(k, src).net_meter for k, src in zip(classes, kinds, strict=True)],
        dtype=bool,
    )
    info = Channels(
        channel_id=ids,
        meter_id=tuple(channels[s.channel_id].meter_id for s in spans),
        obis=tuple(channels[s.channel_id].obis for s in spans),
        timezone=tz,
        meter_class=classes,
        source=kinds,
        step=step,
        net=net,
        allows_negative=np.array([channels[s.channel_id].allows_negative for s in spans]),
    )
    _reach_back(spans, tz, offsets, rows.interval_end, step, check_from)
    series = Series(
        info,
        offsets,
        rows.interval_end,
        rows.interval_seconds,
        rows.value,
        rows.quality,
        check_from,
        check_to,
    )
    reads = store.register_reads([int(c) for c in ids], start, end)
    reg_pos = np.searchsorted(ids, reads.channel_id)
    registers = Registers(
        offsets_of(np.bincount(reg_pos, minlength=len(ids))), reads.read_at, reads.value
    )
    clocks = _clocks(store, info, start, end)
    return series, registers, clocks, rows.batch_id


def _reach_back(
    spans: list[_Span],
    tz: tuple[str, ...],
    offsets: np.ndarray,
    ends: np.ndarray,
    step: np.ndarray,
    check_from: np.ndarray,
) -> None:
    """Widen each channel's window back to the local midnight before a gap that ends where
    the new data starts (a day a delivery skipped is then checked and estimated now, not
    only by a later ``vee run``). Only as far back as the history read."""
    for i, span in enumerate(spans):
        lo, hi = int(offsets[i]), int(offsets[i + 1])
        at = lo + int(np.searchsorted(ends[lo:hi], span.lo)) - 1  # the row before the new
        if at < lo:
            continue
        previous = int(ends[at])
        if span.lo - previous > int(step[i]) and previous + int(step[i]) < check_from[i]:
            check_from[i] = min(
                int(check_from[i]), _midnight_before(previous + int(step[i]), tz[i])
            )


def _clocks(store: Store, info: Channels, start: int, end: int) -> ClockReads:
    by_meter: dict[str, list[tuple[int, int]]] = {}
    wanted = set(info.meter_id)
    for read in store.clock_reads(since_ms=start * 1000):  # since the read window's start
        if read.meter_id not in wanted:
            continue
        at = read.read_at // 1000
        if start < at <= end + _DAY:
            by_meter.setdefault(read.meter_id, []).append((at, read.drift_ms))
    per_channel = [by_meter.get(m, []) for m in info.meter_id]
    flat = [r for reads in per_channel for r in reads]
    return ClockReads(
        offsets_of([len(r) for r in per_channel]),
        np.array([a for a, _ in flat], dtype=_I64),
        np.array([d for _, d in flat], dtype=_I64),
    )


def _with_estimates(series: Series, est: Estimates) -> Series:
    """The series with the estimated rows merged in, each channel still in time order."""
    if not len(est):
        return series
    channel = np.concatenate([series.row_channel(), est.row_channel])
    end = np.concatenate([series.interval_end, est.interval_end])
    order = np.lexsort((end, channel))
    counts = np.bincount(channel, minlength=len(series.channels))
    return Series(
        series.channels,
        offsets_of(counts),
        end[order],
        np.concatenate([series.interval_seconds, est.interval_seconds])[order],
        np.concatenate([series.value, est.value])[order],
        np.concatenate([series.quality, est.quality])[order],
        series.check_from,
        series.check_to,
    )


def estimates_jsonl(series: Series, est: Estimates) -> bytes:
    """The estimates as JSON lines for the ingest (values exact: mWh as "1.234" Wh)."""
    lines = []
    for c, end, seconds, value, quality in zip(
        est.row_channel.tolist(),
        est.interval_end.tolist(),
        est.interval_seconds.tolist(),
        est.value.tolist(),
        est.quality.tolist(),
        strict=True,
    ):
        whole, milli = divmod(abs(int(value)), 1000)
        sign = "-" if value < 0 else ""
        lines.append(
            json.dumps(
                {
                    "meter_id": series.channels.meter_id[c],
                    "channel": series.channels.obis[c],
                    "interval_end": iso_utc(int(end)),
                    "interval_seconds": int(seconds),
                    "value": f"{sign}{whole}.{milli:03d}",
                    "unit": "Wh",
                    "quality": Quality(int(quality)).to_text(),
                }
            )
        )
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _anomalies(series: Series, found: Findings) -> list[NewAnomaly]:
    ids = series.channels.channel_id
    position = np.searchsorted(ids, found.channel_id)
    out: list[NewAnomaly] = []
    ends = found.interval_end.tolist()
    for i, (pos, end) in enumerate(zip(position.tolist(), ends, strict=True)):
        lo, hi = int(series.offsets[pos]), int(series.offsets[pos + 1])
        at = lo + int(np.searchsorted(series.interval_end[lo:hi], end))
        value = int(series.value[at]) if at < hi and series.interval_end[at] == end else None
        out.append(
            NewAnomaly(
                channel_id=int(found.channel_id[i]),
                interval_end=int(end),
                rule=found.rule[i],
                severity=found.severity_text(i),
                detail=found.detail[i],
                value=value,
            )
        )
    return out


def _chunks(registry: _Registry, spans: list[_Span]) -> list[list[_Span]]:
    """Spans in groups of about ``CHUNK_CHANNELS`` channels, a meter's channels together (the
    sibling rule compares them), so memory stays bounded however much was delivered."""
    meter_of = {c: rec.meter_id for c, rec in registry.channels.items()}
    groups: list[list[_Span]] = []
    last_meter = None
    for span in sorted(spans, key=lambda s: (meter_of.get(s.channel_id, ""), s.channel_id)):
        meter = meter_of.get(span.channel_id)
        if not groups or (len(groups[-1]) >= CHUNK_CHANNELS and meter != last_meter):
            groups.append([])
        groups[-1].append(span)
        last_meter = meter
    return [sorted(g, key=lambda s: s.channel_id) for g in groups]


def _check_spans(
    store: Store,
    raw_spans: Iterable[tuple[int, int, int]],
    batch_ids: Sequence[int],
    *,
    ruleset: RuleSet,
    now: datetime | None,
    write_estimates: EstimateWriter | None,
) -> VeeOutcome:
    """The rules over these spans, chunk by chunk, each chunk's findings in a transaction
    of its own; the batches are marked checked with the last. A crash part-way leaves them
    pending: the next pass does it all again, which changes nothing already recorded."""
    started = time.perf_counter()
    at = now or datetime.now(UTC)
    stamp = at.isoformat(timespec="microseconds")
    spans = _merge(raw_spans)
    outcome = VeeOutcome(batches=len(batch_ids), channels=len(spans))
    marks = list(batch_ids)
    registry = _Registry.load(store)
    for chunk in _chunks(registry, spans):
        outcome.add(_check_chunk(store, registry, chunk, ruleset, at, write_estimates, marks))
    with store.write() as tx:
        tx.mark_vee(marks, stamp)
        if outcome.opened or outcome.cleared:
            audit.append(
                tx,
                "vee.checked",
                f"vee {len(spans)} channels",
                {
                    "batches": sorted(int(b) for b in batch_ids),
                    "channels": len(spans),
                    "opened": outcome.opened,
                    "cleared": outcome.cleared,
                    "estimated": outcome.estimated,
                    "by_rule": dict(sorted(outcome.by_rule.items())),
                },
                at,
            )
    outcome.seconds = time.perf_counter() - started
    return outcome


def _check_chunk(
    store: Store,
    registry: _Registry,
    spans: list[_Span],
    ruleset: RuleSet,
    at: datetime,
    write_estimates: EstimateWriter | None,
    marks: list[int],
) -> VeeOutcome:
    """One chunk: estimate its gaps (their batches join ``marks``), run the rules, record
    the findings."""
    outcome = VeeOutcome()
    series, registers, clocks, _ = _series(store, spans, ruleset, HISTORY_DAYS, registry)
    outcome.intervals = int(series.checked().sum())
    params = EstimationParams(
        max_linear=ruleset.estimation.max_linear, like_days=ruleset.estimation.like_days
    )
    stored = series  # the values a finding records are the stored ones, not this pass's estimates
    if write_estimates is not None:
        est = estimate(series, registers, params)
        outcome.unfilled = len(est.unfilled[0])
        if len(est):
            before = set(store.vee_pending())
            write_estimates(estimates_jsonl(series, est))
            outcome.estimated = len(est)
            series = _with_estimates(series, est)
            # the estimates' own batches are checked by this pass (the rules see them)
            fresh = sorted(set(store.vee_pending()) - before - set(marks))
            sources = store.batch_sources(fresh)
            marks += [b for b in fresh if sources.get(b, ("", ""))[0] == ESTIMATE_SOURCE]
    found = run_rules(
        series, ruleset, registers=registers, clocks=clocks, now=epoch_of(at.replace(microsecond=0))
    )
    outcome.findings = len(found)
    outcome.by_rule = found.count_by_rule()
    outcome.held = int((found.worst().severity == Severity.FAIL).sum())  # intervals, not findings
    checked = [(int(c), int(f), int(t)) for c, f, t in _windows(series)]
    with store.write() as tx:
        outcome.opened, outcome.cleared = tx.record_findings(
            _anomalies(stored, found),
            spans=checked,
            rules=[info.code for info in ruleset.catalogue],  # a rule turned off clears too
            at=at.isoformat(timespec="microseconds"),
        )
    return outcome


def _windows(series: Series) -> Iterable[tuple[int, int, int]]:
    return zip(
        series.channels.channel_id.tolist(),
        series.check_from.tolist(),
        series.check_to.tolist(),
        strict=True,
    )


def check_batches(
    store: Store,
    batch_ids: Sequence[int],
    *,
    ruleset: RuleSet | None = None,
    now: datetime | None = None,
    write_estimates: EstimateWriter | None = None,
) -> VeeOutcome:
    """Check what these batches wrote (their spans per channel) and mark them checked."""
    ruleset = ruleset or RuleSet.load()
    spans = store.batch_spans(list(batch_ids)) if batch_ids else []
    return _check_spans(
        store, spans, batch_ids, ruleset=ruleset, now=now, write_estimates=write_estimates
    )


def check_pending(
    store: Store,
    *,
    ruleset: RuleSet | None = None,
    now: datetime | None = None,
    write_estimates: EstimateWriter | None = None,
) -> VeeOutcome:
    """Check every batch not yet checked (after a crash, or a collector run)."""
    return check_batches(
        store, store.vee_pending(), ruleset=ruleset, now=now, write_estimates=write_estimates
    )


def check_range(
    store: Store,
    *,
    meter_id: str | None = None,
    start: int | None = None,
    end: int | None = None,
    ruleset: RuleSet | None = None,
    now: datetime | None = None,
    write_estimates: EstimateWriter | None = None,
) -> VeeOutcome:
    """``vee run``: the rules again over stored data (every channel with readings, or one
    meter's), within ``start < interval_end <= end`` when given."""
    ruleset = ruleset or RuleSet.load()
    if meter_id is not None and store.get_meter(meter_id) is None:
        raise InputError(f"unknown meter {meter_id!r}")
    spans = [
        s for s in store.channel_spans(meter_id=meter_id, start=start, end=end) if s[1] <= s[2]
    ]
    return _check_spans(store, spans, (), ruleset=ruleset, now=now, write_estimates=write_estimates)
