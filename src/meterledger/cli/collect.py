"""``meterledger collect``: read the DLMS fleet now, into the store, exactly once.

This module is also the composition root of the head-end: :class:`StoreLedger` is the
:class:`~meterledger.collect.fleet.RegisterLedger` over a Store and the ingest pipeline (the
collector itself imports neither; DESIGN.md: collect depends on codec and core): readings go
through ingest, the registers' values at each capture time to ``register_reads`` (source
``dlms``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from meterledger.cli.common import (
    DbOption,
    JsonOption,
    console,
    counter,
    emit_json,
    fail,
    handle_errors,
    open_db,
    out,
)
from meterledger.cli.feeds import (
    BreakerRecorder,
    StoreDeadLetterSink,
    refuse_if_paused,
    save_breakers,
)
from meterledger.cli.registers import against_store
from meterledger.cli.vee import print_outcome
from meterledger.collect.breaker import BreakerBoard, BreakerState
from meterledger.collect.config import load_fleet
from meterledger.collect.deadletter import DeadLetter
from meterledger.collect.fleet import (
    ClockSample,
    CollectRun,
    FleetCollector,
    HandoffCounts,
    MeterResult,
    RegisterCounts,
)
from meterledger.collect.profile import RegisterSample, load_profile_map
from meterledger.core.ids import CHANNEL_CATALOG
from meterledger.core.reading import Reading
from meterledger.core.time import epoch_of, iso_utc, parse_instant
from meterledger.core.units import BaseUnit, Unit, text_from_milli
from meterledger.ingest.pipeline import IngestOptions, Ingestor
from meterledger.store import Store
from meterledger.store.collect_sql import ClockRead
from meterledger.store.records import RegisterRead

__all__ = ["StoreLedger", "command", "next_round_in", "readings_csv"]

CSV_HEADER = "meter_id,channel,interval_end,interval_seconds,value,unit,quality"
REGISTER_SOURCE = "dlms"
COLLECT_FEED = "dlms"  # the feed `meterledger pause dlms` stops
log = logging.getLogger("meterledger.collect")
_UNIT_OF_BASE = {BaseUnit.WH: Unit.WH, BaseUnit.VARH: Unit.VARH, BaseUnit.LITRE: Unit.LITRE}


def readings_csv(readings: Sequence[Reading]) -> bytes:
    """Canonical CSV of ``readings``, values exact in the base unit (mWh → "1.234" Wh)."""
    lines = [CSV_HEADER]
    for r in readings:
        channel = str(r.channel)
        spec = CHANNEL_CATALOG.get(channel)
        unit = _UNIT_OF_BASE[spec.base] if spec is not None else Unit.WH
        lines.append(
            f"{r.meter_id},{channel},{iso_utc(epoch_of(r.interval_end))},{r.interval_seconds},"
            f"{text_from_milli(r.value, unit)},{unit.value},{r.quality.to_text()}"
        )
    return ("\n".join(lines) + "\n").encode("utf-8")


class StoreLedger:
    """The collector's ledger over ``store``: counters and clock reads in write
    transactions, readings through :class:`Ingestor` (validation, idempotency keys,
    quarantine, audit), so re-reading a range has no second effect; a meter's readings
    that still fail after their retries become a dead letter (feed ``dlms``, source the
    meter, canonical CSV), which ``meterledger deadletters replay`` ingests. ``now`` is the
    receipt clock handed to ingest (tests fix it)."""

    def __init__(
        self,
        store: Store,
        *,
        now: Callable[[], datetime] | None = None,
        source: str = "dlms-collect",
        feed: str = COLLECT_FEED,
    ) -> None:
        self.store = store
        self.now = now
        self.source = source
        self.feed = feed  # of its dead letters
        self._ingestor = Ingestor(store)  # one for the run: it keeps the registry snapshot
        self._channel_ids: dict[tuple[str, str], int] = {}
        self._registry_version: int | None = None

    def last_read_ms(self, meter_id: str) -> int | None:
        reads = self.store.clock_reads(meter_id)
        return reads[-1].read_at if reads else None

    def last_interval_ends(self, meter_id: str, channels: Sequence[str]) -> dict[str, int | None]:
        return {c: self.store.last_interval_end(meter_id, c) for c in channels}

    def server_counter(self, meter_id: str) -> int:
        return self.store.counters(meter_id).server_last

    def reserve_counters(self, meter_id: str, block: int) -> range:
        with self.store.write() as tx:
            return tx.reserve_counters(meter_id, block)

    def record_session(
        self, meter_id: str, clock: ClockSample | None, server_counter: int | None
    ) -> None:
        with self.store.write() as tx:
            if clock is not None:
                tx.add_clock_read(
                    ClockRead(meter_id, clock.read_at_ms, clock.meter_time_ms, clock.drift_ms)
                )
            if server_counter is not None:
                last = self.store.counters(meter_id).server_last
                if server_counter > last:  # equal: no ciphered answer since the last session
                    tx.accept_server_counter(meter_id, server_counter)

    def record_clocks(self, clocks: Sequence[ClockSample]) -> None:
        with self.store.write() as tx:
            for clock in clocks:
                tx.add_clock_read(
                    ClockRead(clock.meter_id, clock.read_at_ms, clock.meter_time_ms, clock.drift_ms)
                )

    def _channel_ids_now(self) -> dict[tuple[str, str], int]:
        """``(meter_id, obis) -> channel_id``, reloaded when the registry has changed."""
        version = self.store.registry_version()
        if version != self._registry_version:
            self._registry_version = version
            self._channel_ids = {
                (c.meter_id, c.obis): c.channel_id for c in self.store.list_channels()
            }
        return self._channel_ids

    def deliver_registers(self, reads: Sequence[RegisterSample]) -> RegisterCounts:
        counts = RegisterCounts(reads=len(reads))
        ids, source = self._channel_ids, REGISTER_SOURCE
        known: list[RegisterRead] = []
        for attempt in range(2):  # a channel not in the map: reload it once, then unknown
            missed: list[RegisterSample] = []
            for read in reads:
                channel_id = ids.get((read.meter_id, read.channel))
                if channel_id is None:
                    missed.append(read)
                else:
                    known.append(RegisterRead(channel_id, read.read_at, read.value, source))
            if not missed or attempt:
                break
            reads, ids = missed, self._channel_ids_now()
        counts.unknown = len(missed)  # an unregistered meter: ingest quarantines its readings
        if not known:
            return counts
        with self.store.write() as tx:
            checked = against_store(self.store, known)
            counts.new = tx.add_register_reads(checked.fresh) if checked.fresh else 0
        counts.duplicates, counts.conflicts = checked.duplicates, len(checked.conflicts)
        if checked.conflicts:
            names = {v: k for k, v in self._channel_ids.items()}
            first, held = checked.conflicts[0]
            meter_id, obis = names.get(first.channel_id, ("?", "?"))
            log.warning(
                "%d register read(s) differ from the stored ones and were not stored; the "
                "first: meter %s %s at %s read %d, stored %d (milli-units)",
                len(checked.conflicts),
                meter_id,
                obis,
                iso_utc(first.read_at),
                first.value,
                held,
                extra={"meter_id": meter_id, "code": "register-conflict"},
            )
        return counts

    def deliver(self, readings: Sequence[Reading]) -> HandoffCounts:
        if not readings:
            return HandoffCounts()
        self._ingestor.now = self.now() if self.now is not None else None
        result = self._ingestor.ingest_stream(
            io.BytesIO(readings_csv(readings)),
            fmt="csv",
            source=self.source,
            options=IngestOptions(fmt="csv"),
        )
        c = result.counts
        return HandoffCounts(
            records=c.records,
            accepted=c.accepted,
            duplicates=c.duplicates,
            superseded=c.superseded,
            conflicts=c.conflicts,
            quarantined=c.quarantined,
            batches=result.batches,
        )

    def dead_letter(self, meter_id: str, readings: Sequence[Reading]) -> DeadLetter:
        return DeadLetter(self.feed, meter_id, readings_csv(readings), "csv")

    def keep_dead_letter(self, letter: DeadLetter, error: str, attempts: int) -> int:
        sink = StoreDeadLetterSink(self.store)
        sink.put(letter.feed, letter.source, letter.payload, letter.fmt, error, attempts)
        return sink.kept[-1]


def _summary(run: CollectRun) -> dict[str, object]:
    h = run.handoff
    return {
        "meters": len(run.results),
        "ok": sum(r.ok and not r.skipped for r in run.results),
        "skipped": sum(r.skipped for r in run.results),
        "failed": len(run.failed),
        "dead_letters": sum(r.dead_letter is not None for r in run.results),
        "seconds": round(run.seconds, 3),
        "ingest": {
            "records": h.records,
            "accepted": h.accepted,
            "duplicates": h.duplicates,
            "superseded": h.superseded,
            "conflicts": h.conflicts,
            "quarantined": h.quarantined,
            "batches": h.batches,
        },
        "registers": dataclasses.asdict(run.registers),
    }


def _table(results: Sequence[MeterResult]) -> Table:
    table = Table("meter", "result", "intervals", "drift ms", "attempts", "s", "message")
    for r in results:
        status = "skipped" if r.skipped else ("ok" if r.ok else f"[red]{r.code}[/]")
        table.add_row(
            r.meter_id,
            status,
            str(r.intervals),
            "" if r.drift_ms is None else str(r.drift_ms),
            str(r.attempts),
            f"{r.seconds:.2f}",
            r.message,
        )
    return table


def command(
    meter_id: Annotated[
        list[str] | None,
        typer.Option("--meter-id", help="Read only this meter (repeat for more)."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Read even meters read less than every_seconds ago."),
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Re-read every selected meter from this ISO-8601 instant (stored intervals "
            "come back as duplicates, with no effect).",
        ),
    ] = None,
    fleet: Annotated[
        Path,
        typer.Option(
            "--fleet",
            envvar="METERLEDGER_FLEET",
            help="Fleet file (YAML, see docs/collect.md).",
            show_envvar=True,
        ),
    ] = Path("fleet.yaml"),
    profile: Annotated[
        Path | None,
        typer.Option("--profile", help="OBIS -> channel map (default: the shipped profile.yaml)."),
    ] = None,
    every: Annotated[
        float | None,
        typer.Option(
            "--every",
            min=0.1,
            help="Loop: a round every this many seconds (the schedule still decides which "
            "meters are due); a round waits until every open circuit is half-open.",
        ),
    ] = None,
    rounds: Annotated[
        int | None,
        typer.Option("--rounds", min=1, help="With --every: stop after this many rounds."),
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Read the DLMS meters of the fleet file now (outside the schedule) into the store.

    A meter is due when its clock was last read at least every_seconds ago; --force reads
    it anyway. Each read starts at the last stored interval, so a run can be repeated or
    interrupted without duplicates. Exit 1 when any meter failed (codes E01-E09); with
    --every, when a meter failed in the last round."""
    if not fleet.exists():
        raise fail(f"fleet file {fleet} not found (pass --fleet FILE)")
    if every is None and rounds is not None:
        raise fail("--rounds needs --every")
    if every is not None and since is not None:
        raise fail("--since re-reads a range once; it does not go with --every")
    plan = load_fleet(fleet).select(meter_id)
    profiles = load_profile_map(profile)
    start = parse_instant(since) if since else None
    store = open_db(db)
    if every is None:  # a loop holds while the feed is paused, and goes on once resumed
        refuse_if_paused(store, COLLECT_FEED)
    collector = FleetCollector(
        plan,
        StoreLedger(store, now=lambda: datetime.now(UTC)),
        profiles=profiles,
        force=force,
        since=start,
        listener=BreakerRecorder(store),  # `meterledger status` shows each change at once
    )
    if every is None:
        if _round(collector, store, json_out, lines=False).failed:
            raise typer.Exit(1)
        return
    failed = _loop(collector, store, json_out, every, rounds)
    if failed:
        raise typer.Exit(1)


def next_round_in(board: BreakerBoard, every: float, elapsed: float) -> float:
    """Seconds until the next round of ``--every``: ``every`` after the last one began,
    and not before every open circuit is half-open (its feed paused until then)."""
    wait = max(0.0, every - elapsed)
    for key, state in board.states().items():
        if state is BreakerState.OPEN:
            wait = max(wait, board.get(key).retry_after())
    return wait


def _loop(
    collector: FleetCollector, store: Store, json_out: bool, every: float, rounds: int | None
) -> bool:
    """Rounds until ``rounds`` or Ctrl-C, holding while the feed is paused; whether a meter
    failed in the last round."""
    done, failed = 0, False
    try:
        while rounds is None or done < rounds:
            began = time.monotonic()
            done += 1
            held = store.pause_of(COLLECT_FEED)
            if held is None:
                failed = bool(_round(collector, store, json_out, lines=True).failed)
            elif not json_out:
                console.print(f"feed {held.feed} paused since {held.updated_at}: round skipped")
            if rounds is not None and done >= rounds:
                break
            time.sleep(next_round_in(collector.breakers, every, time.monotonic() - began))
    except KeyboardInterrupt:
        console.print("interrupted")
    return failed


def _round(collector: FleetCollector, store: Store, json_out: bool, *, lines: bool) -> CollectRun:
    """One collection, its breakers saved, the VEE rules run, and its report printed (with
    ``lines``, JSON on one line: one object per round)."""
    with counter(show=not json_out) as progress:
        task = progress.add_task("collect", total=len(collector.fleet.meters))
        run = asyncio.run(collector.run(lambda _: progress.advance(task)))
    save_breakers(store, collector.breakers.readings())  # for `meterledger status`
    # the rules run once over the whole run's deliveries (each meter's is its own batch)
    with console.status("running the VEE rules…"):
        checked = Ingestor(store).check_pending()
    if json_out:
        payload = {
            "results": [r.to_dict() for r in run.results],
            "summary": _summary(run),
            "vee": checked.as_dict(),
        }
        if lines:
            sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")
            sys.stdout.flush()
        else:
            emit_json(payload)
    else:
        out.print(_table(run.results))
        s = _summary(run)
        console.print(
            f"{s['ok']} read, {s['skipped']} skipped, {s['failed']} failed in {s['seconds']} s; "
            f"ingest accepted {run.handoff.accepted}, duplicates {run.handoff.duplicates}; "
            f"{run.registers.new} new register read(s)"
            + (f", {run.registers.conflicts} conflicting" if run.registers.conflicts else "")
            + (
                f"; {s['dead_letters']} meter(s) kept as dead letters "
                "(meterledger deadletters replay)"
                if s["dead_letters"]
                else ""
            )
        )
        print_outcome(checked)
    return run


command = handle_errors(command)
