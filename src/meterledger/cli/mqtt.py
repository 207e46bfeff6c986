"""``meterledger mqtt listen|publish``: the MQTT feed into the store, and simulated meters
publishing to it (docs/mqtt.md).

This module is the feed's composition root (``collect/`` imports no store or ingest):
:class:`MqttLedger` hands decoded readings to ingest as canonical CSV, keeps register totals
in ``register_reads`` (source ``mqtt``) and derives intervals from them against the totals
already stored, and sends a payload that cannot be decoded, or a delivery that still fails
after its retries, to the dead letters. A batch is acknowledged to the broker only after
all of that has committed. The broker has a circuit breaker (``mqtt/host:port``) that
pauses the reconnects while it is open; each change is saved at once for ``meterledger
status``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import aiomqtt
import typer

from meterledger.cli.breaker_options import (
    FEED_COOLDOWN,
    CooldownOption,
    FailureRateOption,
    MinCallsOption,
    ProbesOption,
    ThresholdOption,
    WindowOption,
    breaker_summary,
    feed_breaker_settings,
)
from meterledger.cli.collect import readings_csv
from meterledger.cli.common import (
    DbOption,
    JsonOption,
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
from meterledger.collect.breaker import BreakerBoard
from meterledger.collect.deadletter import DELIVERY_POLICY, DeadLetter, deliver_or_dead_letter
from meterledger.collect.mqtt import (
    TOPIC_ROOT,
    FeedMessage,
    MqttFeed,
    MqttPayloadError,
    MqttSettings,
    Received,
    decode_message,
    derive_intervals,
)
from meterledger.collect.profile import RegisterSample
from meterledger.core.reading import Reading
from meterledger.core.time import epoch_of
from meterledger.core.units import Unit, milli_from_text
from meterledger.ingest.pipeline import IngestOptions, Ingestor
from meterledger.simulate.mqtt_publisher import (
    PublishPlan,
    publish,
    reading_messages,
    register_messages,
)
from meterledger.store import Store
from meterledger.store.records import RegisterRead

__all__ = ["ListenCounts", "MqttLedger", "app", "listen"]

FEED = "mqtt"
SOURCE = "mqtt"
log = logging.getLogger("meterledger.collect.mqtt")
app = typer.Typer(
    help="The MQTT feed: subscribe and ingest, or publish simulated meters.",
    no_args_is_help=True,
)


@dataclasses.dataclass(slots=True)
class ListenCounts:
    messages: int = 0
    acked: int = 0
    readings: int = 0
    accepted: int = 0
    duplicates: int = 0
    superseded: int = 0
    conflicts: int = 0
    quarantined: int = 0
    register_totals: int = 0
    register_new: int = 0
    register_intervals: int = 0
    findings: Counter[str] = dataclasses.field(default_factory=Counter)
    dead_letters: int = 0
    reconnects: int = 0
    connect_attempts: int = 0
    pauses: int = 0  # waits for the broker's open circuit
    paused_seconds: float = 0.0
    breaker: dict[str, object] | None = None  # breaker_summary of the broker's breaker


class MqttLedger:
    """Delivers batches of MQTT messages into ``store``; ``counts`` adds them up."""

    def __init__(self, store: Store, *, interval_seconds: int = 900, root: str = TOPIC_ROOT):
        self.store = store
        self.interval_seconds = interval_seconds
        self.root = root
        self.ingestor = Ingestor(store)
        self.sink = StoreDeadLetterSink(store)
        self.counts = ListenCounts()

    def _dead_letter(self, exc: MqttPayloadError) -> None:
        self.sink.put(FEED, exc.topic, exc.payload, "mqtt", exc.detail, 1)
        self.counts.dead_letters += 1
        log.error("%s: kept as a dead letter", exc, extra={"code": "mqtt-malformed"})

    async def deliver(self, batch: Sequence[Received]) -> None:
        """Decode, store and derive; returns once every message is stored or dead-lettered
        (raises, with nothing to acknowledge, only if even the dead letter fails)."""
        readings: list[Reading] = []
        totals: list[RegisterSample] = []
        for received in batch:
            self.counts.messages += 1
            try:
                message: FeedMessage = decode_message(
                    received.topic, received.payload, root=self.root
                )
            except MqttPayloadError as exc:
                self._dead_letter(exc)
                continue
            readings += message.readings
            totals += message.registers
        if totals:
            readings += self._registers(totals)
        if readings:
            delivery = DeadLetter(FEED, SOURCE, readings_csv(readings), "csv")
            done = await deliver_or_dead_letter(self._ingest, self.sink, DELIVERY_POLICY, delivery)
            self.counts.dead_letters += done.dead_lettered

    async def _ingest(self, delivery: DeadLetter) -> None:
        result = self.ingestor.ingest_stream(
            io.BytesIO(delivery.payload), fmt="csv", source=SOURCE, options=IngestOptions(fmt="csv")
        )
        c, n = result.counts, self.counts
        n.readings += c.records
        n.accepted += c.accepted
        n.duplicates += c.duplicates
        n.superseded += c.superseded
        n.conflicts += c.conflicts
        n.quarantined += c.quarantined

    def _registers(self, totals: Sequence[RegisterSample]) -> list[Reading]:
        """Store the totals, then derive intervals over them and their stored neighbours
        (a day's totals may arrive message by message, in any order)."""
        self.counts.register_totals += len(totals)
        ids = {(c.meter_id, c.obis): c.channel_id for c in self.store.list_channels()}
        names = {v: k for k, v in ids.items()}
        known = [
            RegisterRead(ids[(t.meter_id, t.channel)], t.read_at, t.value, SOURCE)
            for t in totals
            if (t.meter_id, t.channel) in ids
        ]
        if known:
            with self.store.write() as tx:
                checked = against_store(self.store, known)
                self.counts.register_new += (
                    tx.add_register_reads(checked.fresh) if checked.fresh else 0
                )
        step = self.interval_seconds
        first, last = min(t.read_at for t in totals), max(t.read_at for t in totals)
        stored = self.store.register_reads(
            sorted({r.channel_id for r in known}), first - step, last + step
        )
        around = [
            RegisterSample(*names[int(c)], int(at), int(v))
            for c, at, v in zip(stored.channel_id, stored.read_at, stored.value, strict=True)
        ]
        derived = derive_intervals([*around, *totals], interval_seconds=step)
        for f in derived.findings:
            if first <= f.read_at <= last + step:
                self.counts.findings[f.code] += 1
                level = logging.INFO if f.code == "register-rollover" else logging.WARNING
                log.log(
                    level,
                    "%s %s: %s",
                    f.meter_id,
                    f.channel,
                    f.message,
                    extra={"meter_id": f.meter_id, "code": f.code},
                )
        self.counts.register_intervals += len(derived.readings)
        return list(derived.readings)


async def listen(
    store: Store,
    settings: MqttSettings,
    *,
    until_idle: float | None,
    interval_seconds: int = 900,
    breakers: BreakerBoard | None = None,
) -> ListenCounts:
    """Subscribe and deliver until ``until_idle`` seconds pass without a message. With
    ``breakers`` the broker's circuit pauses the reconnects while open; the breakers'
    readings are saved at the end for ``meterledger status``."""
    ledger = MqttLedger(store, interval_seconds=interval_seconds, root=settings.root)
    feed = MqttFeed(settings, breakers=breakers)
    try:
        async for batch in feed.batches(until_idle=until_idle):
            await ledger.deliver(batch)
            ledger.counts.acked += feed.ack(batch)
    finally:
        if breakers is not None:
            save_breakers(store, breakers.readings())
    n = ledger.counts
    n.reconnects, n.connect_attempts = feed.reconnects, feed.attempts
    n.pauses, n.paused_seconds = feed.pauses, round(feed.paused_seconds, 3)
    n.breaker = None if breakers is None else breaker_summary(breakers)
    return n


HostOption = Annotated[str, typer.Option("--host", help="MQTT broker host.")]
PortOption = Annotated[int, typer.Option("--port", help="MQTT broker port.")]
RootOption = Annotated[str, typer.Option("--root", help="Topic root (the contract's default).")]


@app.command("listen")
@handle_errors
def listen_command(
    host: HostOption = "127.0.0.1",
    port: PortOption = 1883,
    group: Annotated[
        str, typer.Option("--group", help="Shared-subscription group ('' for a plain one).")
    ] = "meterledger",
    client_id: Annotated[
        str, typer.Option("--client-id", help="Fixed client id: the broker keeps its session.")
    ] = "meterledger-ingest",
    until_idle: Annotated[
        float | None,
        typer.Option("--until-idle", help="Stop after this many seconds without a message."),
    ] = None,
    interval: Annotated[
        int, typer.Option("--register-interval", help="Seconds between register totals.")
    ] = 900,
    root: RootOption = TOPIC_ROOT,
    breaker_cooldown: CooldownOption = FEED_COOLDOWN,
    breaker_failure_rate: FailureRateOption = 0.15,
    breaker_min_calls: MinCallsOption = None,
    breaker_window: WindowOption = 60.0,
    breaker_probes: ProbesOption = 1,
    breaker_threshold: ThresholdOption = 5,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Subscribe to the MQTT feed (QoS 1, persistent session) and ingest what arrives.

    Each batch is acknowledged after it is stored; malformed payloads become dead letters.
    Register totals become intervals (rollover corrected, resets left as gaps). VEE checks
    everything at the end. The broker's circuit breaker stops the reconnects while it is
    open (shown by `meterledger status`), then one probe connect decides."""
    if breaker_probes != 1:
        raise fail(
            "--breaker-probes must be 1 for mqtt listen: the probe is one connection, held "
            "open once it succeeds"
        )
    store = open_db(db)
    refuse_if_paused(store, FEED)
    settings = MqttSettings(
        host=host, port=port, client_id=client_id, group=group or None, root=root
    )
    breaker_settings = feed_breaker_settings(
        cooldown=breaker_cooldown,
        failure_rate=breaker_failure_rate,
        min_calls=breaker_min_calls,
        window=breaker_window,
        probes=breaker_probes,
        threshold=breaker_threshold,
    )
    board = BreakerBoard.of(breaker_settings, feed=FEED, listener=BreakerRecorder(store))
    counts = asyncio.run(
        listen(store, settings, until_idle=until_idle, interval_seconds=interval, breakers=board)
    )
    checked = Ingestor(store).check_pending()
    summary = dataclasses.asdict(counts)
    summary["findings"] = dict(sorted(counts.findings.items()))
    if json_out:
        emit_json({**summary, "vee": checked.as_dict()})
        return
    out.print(
        f"{counts.messages} message(s), {counts.acked} acknowledged: {counts.readings} "
        f"reading(s), accepted {counts.accepted}, duplicates {counts.duplicates}, "
        f"quarantined {counts.quarantined}; {counts.register_totals} register total(s) "
        f"gave {counts.register_intervals} interval(s); {counts.dead_letters} dead letter(s)"
    )
    if counts.pauses and counts.breaker is not None:
        out.print(
            f"paused {counts.pauses} time(s), {counts.paused_seconds:.1f} s, while the broker's"
            f" circuit was open (opened {counts.breaker['opened']})"
        )
    print_outcome(checked)


@app.command("publish")
@handle_errors
def publish_command(
    meters: Annotated[int, typer.Option("--meters", help="Simulated meters.")] = 3,
    days: Annotated[int, typer.Option("--days", help="Days of data per meter.")] = 1,
    registers: Annotated[
        bool, typer.Option("--registers", help="Publish register totals, not intervals.")
    ] = False,
    start: Annotated[
        str | None,
        typer.Option("--start", help="First day (YYYY-MM-DD, UTC; default: D days ago)."),
    ] = None,
    register_start: Annotated[
        str | None, typer.Option("--register-start", help="First register total in kWh.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 7,
    host: HostOption = "127.0.0.1",
    port: PortOption = 1883,
    root: RootOption = TOPIC_ROOT,
    json_out: JsonOption = False,
) -> None:
    """Publish simulated meters' interval readings (or register totals) at QoS 1."""
    first = date.fromisoformat(start) if start else datetime.now(UTC).date() - timedelta(days=days)
    plan = PublishPlan(
        meters=meters,
        days=days,
        start=epoch_of(datetime(first.year, first.month, first.day, tzinfo=UTC)),
        seed=seed,
        root=root,
        register_start=None
        if register_start is None
        else milli_from_text(register_start, Unit.KWH),
    )
    messages = register_messages(plan) if registers else reading_messages(plan)
    try:
        sent = asyncio.run(publish(messages, host=host, port=port))
    except aiomqtt.MqttError as exc:
        raise fail(f"MQTT broker {host}:{port}: {exc}") from exc
    kind = "registers" if registers else "readings"
    if json_out:
        emit_json({"messages": sent, "meters": meters, "days": days, "kind": kind})
    else:
        out.print(f"published {sent} {kind} message(s) for {meters} meter(s), {days} day(s)")
