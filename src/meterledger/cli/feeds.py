"""``meterledger deadletters list|replay``, ``pause``, ``resume`` and ``status``: the
operator's view of the feeds' resilience (docs/resilience.md).

This module is also where the store meets ``collect/``'s resilience pieces:
:class:`StoreDeadLetterSink` keeps dead letters in the store, :func:`save_breakers` writes a
collector's breaker readings as snapshots, :func:`refuse_if_paused` stops a command whose
feed is paused.
"""

from __future__ import annotations

import enum
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from meterledger.cli.common import (
    DbOption,
    JsonOption,
    console,
    emit_json,
    fail,
    handle_errors,
    open_db,
    out,
)
from meterledger.collect.breaker import (
    BreakerEvent,
    BreakerReading,
    BreakerState,
    CircuitBreaker,
)
from meterledger.core.errors import NotFoundError
from meterledger.ingest import audit
from meterledger.ingest.pipeline import IngestOptions, Ingestor
from meterledger.store import Store
from meterledger.store.feeds_sql import (
    ALL_FEEDS,
    BreakerSnapshot,
    DeadLetterRecord,
    NewDeadLetter,
    check_feed,
)

__all__ = [
    "BreakerRecorder",
    "Replayed",
    "StoreDeadLetterSink",
    "breaker_feed",
    "deadletters_app",
    "pause",
    "refuse_if_paused",
    "replay_dead_letters",
    "restore_breaker",
    "resume",
    "save_breakers",
    "status",
    "status_report",
]

deadletters_app = typer.Typer(
    help="Deliveries that failed after their retries, kept with their payload: list, replay.",
    no_args_is_help=True,
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class StoreDeadLetterSink:
    """A :class:`~meterledger.collect.deadletter.DeadLetterSink` over the store: each dead
    letter in a write transaction of its own."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.kept: list[int] = []

    def put(
        self, feed: str, source: str, payload: bytes, fmt: str, error: str, attempts: int
    ) -> None:
        letter = NewDeadLetter(feed, source, payload, fmt, error, attempts)
        with self.store.write() as tx:
            self.kept.append(tx.add_dead_letter(letter, _now()))


def save_breakers(store: Store, readings: Sequence[BreakerReading]) -> list[BreakerSnapshot]:
    """Write the breakers' readings (a collector's, at the end of its run) as snapshots;
    how long ago each opened becomes a wall-clock ``opened_at``."""
    now = datetime.now(UTC)
    at = now.isoformat(timespec="seconds")
    snapshots = [
        BreakerSnapshot(
            r.name,
            r.state.value,
            r.failure_rate,
            r.calls_in_window,
            r.opened,
            None
            if r.opened_seconds_ago is None
            else (now - timedelta(seconds=r.opened_seconds_ago)).isoformat(timespec="seconds"),
            at,
            None
            if r.state is not BreakerState.OPEN
            else (now + timedelta(seconds=r.retry_in)).isoformat(timespec="milliseconds"),
        )
        for r in readings
    ]
    if snapshots:
        with store.write() as tx:
            tx.put_breaker_states(snapshots)
    return snapshots


class BreakerRecorder:
    """A breaker listener (:class:`~meterledger.collect.breaker.BreakerEvent`) that saves
    each change at once, so ``meterledger status`` shows a circuit open while its feed is
    paused, not only after the run; ``events`` keeps them for a report."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.events: list[BreakerEvent] = []

    def __call__(self, event: BreakerEvent) -> None:
        self.events.append(event)
        save_breakers(self.store, [event.reading])


def restore_breaker(store: Store, breaker: CircuitBreaker) -> BreakerSnapshot | None:
    """Carry the saved state of ``breaker`` over into a new run (``drops pull`` runs from
    cron, a breaker per run): a circuit saved open stays open until its ``retry_at``; the
    calls of a window saved less than ``window`` seconds ago still count. The snapshot
    used, or None."""
    saved = next((b for b in store.breaker_states() if b.endpoint == breaker.name), None)
    if saved is None:
        return None
    now = datetime.now(UTC)
    age = (now - datetime.fromisoformat(saved.updated_at)).total_seconds()
    calls = saved.calls_in_window if age < breaker.window else 0
    failures = min(calls, round(saved.failure_rate * calls))
    open_for = 0.0
    if saved.state == "open" and saved.retry_at is not None:
        open_for = (datetime.fromisoformat(saved.retry_at) - now).total_seconds()
    in_a_row = failures if failures == calls else 0  # all failed: they were in a row
    breaker.carry_over(failures=failures, calls=calls, open_for=open_for, in_a_row=in_a_row)
    return saved


def breaker_feed(endpoint: str) -> str:
    """The feed a breaker belongs to: the part of its name before ``/`` (a DLMS breaker
    saved before breakers were named by feed has none: ``dlms``)."""
    head, slash, _ = endpoint.partition("/")
    return head if slash else "dlms"


def refuse_if_paused(store: Store, feed: str) -> None:
    """Exit 2 with a message naming the pause when ``feed`` or all ingestion is paused."""
    held = store.pause_of(feed)
    if held is None:
        return
    what = "all ingestion is" if held.feed == ALL_FEEDS else f"feed {held.feed} is"
    why = f" ({held.reason})" if held.reason else ""
    raise fail(
        f"{what} paused since {held.updated_at}{why}; nothing was read. Run "
        f"`meterledger resume{'' if held.feed == ALL_FEEDS else ' ' + held.feed}` first"
    )


# -- dead letters ---------------------------------------------------------------------------


class Status(enum.StrEnum):
    open = "open"
    replayed = "replayed"
    discarded = "discarded"
    all = "all"


@dataclass(frozen=True, slots=True)
class Replayed:
    """What a replay did with one dead letter: ``replayed`` (into ``batch``), ``failed``
    (still open, ``error``), or ``skipped`` (not open: a replay has no second effect)."""

    dead_letter_id: int
    outcome: str
    batch: int | None = None
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.dead_letter_id,
            "outcome": self.outcome,
            "batch": self.batch,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "error": self.error,
        }


def _replay_one(store: Store, letter: DeadLetterRecord) -> Replayed:
    before = set(store.batch_audit_refs())
    try:
        result = Ingestor(store).ingest_stream(
            io.BytesIO(letter.payload),
            fmt=letter.fmt,
            source=letter.source,
            options=IngestOptions(fmt=letter.fmt),
        )
    except Exception as exc:  # kept open with the new error: nothing is lost
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        with store.write() as tx:
            tx.dead_letter_failed(letter.dead_letter_id, error, _now())
        return Replayed(letter.dead_letter_id, "failed", error=error)
    made = sorted(set(store.batch_audit_refs()) - before)
    batch = made[-1] if made else None
    c = result.counts
    with store.write() as tx:
        tx.dead_letter_replayed(letter.dead_letter_id, batch)
        audit.append(
            tx,
            "deadletter.replayed",
            str(letter.dead_letter_id),
            {"feed": letter.feed, "source": letter.source, "batch": batch},
        )
    return Replayed(
        letter.dead_letter_id, "replayed", batch, c.accepted, c.duplicates, c.quarantined
    )


def replay_dead_letters(
    store: Store, ids: Sequence[int] = (), feed: str | None = None
) -> list[Replayed]:
    """Replay the dead letters named (default: every open one, of ``feed`` if given)
    through ingest, one by one; each takes effect once (idempotency keys), and one not
    open is skipped. Unknown ids are an error before anything is replayed."""
    if ids:
        found = {d.dead_letter_id: d for d in store.list_dead_letters(status=None, ids=ids)}
        missing = sorted(set(ids) - set(found))
        if missing:
            raise NotFoundError(f"no dead letter {', '.join(map(str, missing))}")
        letters = [found[i] for i in sorted(set(ids)) if feed is None or found[i].feed == feed]
    else:
        letters = store.list_dead_letters(feed=feed)
    done: list[Replayed] = []
    for letter in letters:
        if letter.status != "open":
            done.append(Replayed(letter.dead_letter_id, "skipped", letter.replayed_batch))
        else:
            done.append(_replay_one(store, letter))
    return done


FeedOption = Annotated[str | None, typer.Option("--feed", help="Only this feed's.")]


@deadletters_app.command("list")
@handle_errors
def list_command(
    feed: FeedOption = None,
    status: Annotated[
        Status, typer.Option("--status", help="open, replayed, discarded or all.")
    ] = Status.open,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """List dead letters (open ones by default), without their payload."""
    store = open_db(db)
    letters = store.list_dead_letters(feed, None if status is Status.all else status.value)
    if json_out:
        emit_json([d.summary() for d in letters])
        return
    table = Table("id", "feed", "source", "format", "bytes", "attempts", "last failed", "error")
    for d in letters:
        table.add_row(
            str(d.dead_letter_id),
            d.feed,
            d.source,
            d.fmt,
            f"{len(d.payload):,}",
            str(d.attempts),
            d.last_failed_at,
            d.error if d.status == "open" else f"[dim]{d.status}[/]",
        )
    out.print(table)


@deadletters_app.command("replay")
@handle_errors
def replay_command(
    ids: Annotated[
        list[int] | None,
        typer.Argument(help="Dead letter ids (default: every open one)."),
    ] = None,
    feed: FeedOption = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Run dead letters through ingest again. A replayed one is marked with its batch; one
    that fails again stays open with the new error. Exit 1 if any failed."""
    store = open_db(db)
    done = replay_dead_letters(store, ids or (), feed)
    if json_out:
        emit_json([r.as_dict() for r in done])
    else:
        for r in done:
            if r.outcome == "replayed":
                out.print(
                    f"dead letter {r.dead_letter_id}: replayed into batch {r.batch} "
                    f"({r.accepted} accepted, {r.duplicates} duplicates, "
                    f"{r.quarantined} quarantined)"
                )
            elif r.outcome == "skipped":
                out.print(f"dead letter {r.dead_letter_id}: not open, skipped")
            else:
                console.print(f"[red]dead letter {r.dead_letter_id}: failed again:[/] {r.error}")
        if not done:
            out.print("no open dead letters")
    if any(r.outcome == "failed" for r in done):
        raise typer.Exit(1)


# -- pause and resume -------------------------------------------------------------------------

PauseFeed = Annotated[
    str | None,
    typer.Argument(help="The feed (files, dlms, mqtt, ...; default: all ingestion)."),
]


def _set_paused(db: str | None, feed: str | None, paused: bool, reason: str | None) -> str:
    name = check_feed(feed or ALL_FEEDS)
    store = open_db(db)
    with store.write() as tx:
        tx.set_feed_paused(name, paused, reason, _now())
        audit.append(
            tx,
            "feed.paused" if paused else "feed.resumed",
            name,
            {"feed": name, "reason": reason} if paused else {"feed": name},
        )
    return name


@handle_errors
def pause(
    feed: PauseFeed = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (shown to others).")] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Emergency stop: ingest and collect refuse to run for a paused feed (or for any feed
    when all ingestion is paused) until it is resumed. An audit entry records it."""
    name = _set_paused(db, feed, True, reason)
    if json_out:
        emit_json({"feed": name, "paused": True, "reason": reason})
    else:
        out.print(f"paused {'all ingestion' if name == ALL_FEEDS else 'feed ' + name}")


@handle_errors
def resume(feed: PauseFeed = None, db: DbOption = None, json_out: JsonOption = False) -> None:
    """Lift a pause of one feed (or, without FEED, of all ingestion). An audit entry
    records it."""
    name = _set_paused(db, feed, False, None)
    if json_out:
        emit_json({"feed": name, "paused": False})
    else:
        out.print(f"resumed {'all ingestion' if name == ALL_FEEDS else 'feed ' + name}")


# -- status ---------------------------------------------------------------------------------


def _as_of(snapshot: BreakerSnapshot, now: str) -> BreakerSnapshot:
    """An open snapshot whose cool-down has ended is half-open now: its next call is a
    probe (and its collector may be gone: killed while the circuit was open)."""
    if snapshot.state == "open" and snapshot.retry_at is not None and snapshot.retry_at <= now:
        return replace(snapshot, state="half-open")
    return snapshot


def status_report(store: Store) -> dict[str, Any]:
    """What ``meterledger status --json`` prints: a contract."""
    pending = store.vee_pending()
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    breakers = [_as_of(b, now) for b in store.breaker_states()]
    return {
        "schema_version": store.schema_version(),
        "paused": [
            {"feed": s.feed, "reason": s.reason, "since": s.updated_at}
            for s in store.feed_states()
            if s.paused
        ],
        "circuit_paused": sorted({breaker_feed(b.endpoint) for b in breakers if b.state == "open"}),
        "breakers": [
            {
                "endpoint": b.endpoint,
                "feed": breaker_feed(b.endpoint),
                "state": b.state,
                "failure_rate": b.failure_rate,
                "calls_in_window": b.calls_in_window,
                "opened": b.opened,
                "opened_at": b.opened_at,
                "retry_at": b.retry_at,
                "updated_at": b.updated_at,
            }
            for b in breakers
        ],
        "open_dead_letters": store.open_dead_letters(),
        "vee_pending_batches": len(pending),
        "open_anomalies": len(store.list_anomalies(status="open")),
    }


@handle_errors
def status(db: DbOption = None, json_out: JsonOption = False) -> None:
    """The feeds at a glance: pauses, circuit breakers per endpoint, open dead letters per
    feed, batches VEE has not checked, open anomalies, the schema version."""
    report = status_report(open_db(db))
    if json_out:
        emit_json(report)
        return
    out.print(f"schema version {report['schema_version']}")
    for p in report["paused"]:
        what = "all ingestion" if p["feed"] == ALL_FEEDS else f"feed {p['feed']}"
        reason = f": {p['reason']}" if p["reason"] else ""
        out.print(f"[bold red]paused[/] {what} since {p['since']}{reason}")
    for feed in report["circuit_paused"]:
        out.print(f"[bold red]paused[/] feed {feed}: a circuit breaker of it is open")
    if not report["paused"] and not report["circuit_paused"]:
        out.print("no feed is paused")
    if report["breakers"]:
        table = Table("endpoint", "state", "failure rate", "calls", "opened", "last opened")
        for b in report["breakers"]:
            colour = {"open": "red", "half-open": "yellow"}.get(b["state"], "green")
            table.add_row(
                b["endpoint"],
                f"[{colour}]{b['state']}[/]",
                f"{b['failure_rate']:.0%}",
                str(b["calls_in_window"]),
                str(b["opened"]),
                b["opened_at"] or "",
            )
        out.print(table)
    letters = report["open_dead_letters"]
    out.print(
        "open dead letters: "
        + (", ".join(f"{feed} {n}" for feed, n in letters.items()) if letters else "none")
    )
    out.print(f"batches VEE has not checked: {report['vee_pending_batches']}")
    out.print(f"open anomalies: {report['open_anomalies']}")
