"""``meterledger drops watch|pull``: file drops into the store, each file exactly once
(docs/drops.md).

The composition root of the file-drop feed (``collect/drops.py`` knows no store): a file
that has stopped changing is hashed; a checksum already in ``received_files`` means the
file is moved aside as a duplicate; otherwise it is ingested, recorded by checksum in a
write transaction after the ingest has committed, and only then renamed into the
processed directory. A crash between those steps can at worst ingest a file again, which
exactly-once ingest turns into duplicates; it can never lose one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from meterledger.cli.breaker_options import (
    CooldownOption,
    FailureRateOption,
    MinCallsOption,
    ProbesOption,
    ThresholdOption,
    breaker_summary,
    feed_breaker_settings,
)
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
from meterledger.cli.feeds import BreakerRecorder, refuse_if_paused, restore_breaker, save_breakers
from meterledger.cli.ingest import INGEST_FEED, counts_dict
from meterledger.cli.vee import print_outcome
from meterledger.collect.breaker import BreakerBoard, CircuitBreaker, wait_until_allowed
from meterledger.collect.drops import (
    DUPLICATES,
    FAILED,
    INCOMING,
    PROCESSED,
    SftpDrop,
    SftpEndpoint,
    StableFiles,
    local_listing,
    move_atomically,
    sha256_of,
    target_in,
)
from meterledger.collect.errors import CollectError
from meterledger.collect.retry import RetryPolicy, with_retries
from meterledger.core.errors import InputError
from meterledger.ingest.pipeline import IngestOptions, Ingestor, detect_format
from meterledger.ingest.vee_check import VeeOutcome
from meterledger.store import Store
from meterledger.store.base import BatchCounts
from meterledger.store.records import ReceivedFile

#: A pull's sessions: 3 attempts, the first retry within 0.5 s, none waiting over 5 s.
PULL_POLICY = RetryPolicy(attempts=3, initial=0.5, maximum=5.0)
#: A pull runs from cron: its breaker keeps a circuit open across runs for this long.
PULL_COOLDOWN = 300.0

__all__ = ["DropProcessor", "Taken", "app", "pull_files", "watch_directory"]

app = typer.Typer(
    help="File drops: a watched directory and an SFTP pull, each file ingested once.",
    no_args_is_help=True,
)
Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclasses.dataclass(slots=True)
class Taken:
    """One file handled: ``outcome`` is ``ingested``, ``duplicate`` (checksum seen before)
    or ``failed`` (not readable at all; moved to ``processed/failed``)."""

    name: str
    sha256: str
    size: int
    outcome: str
    moved_to: str
    batches: int = 0
    counts: BatchCounts = dataclasses.field(default_factory=BatchCounts)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "size": self.size,
            "outcome": self.outcome,
            "moved_to": self.moved_to,
            "batches": self.batches,
            "error": self.error,
            **counts_dict(self.counts),
        }


class DropProcessor:
    """Takes one complete file at a time into ``store`` for ``feed`` and moves it into
    ``processed`` (duplicates into ``processed/duplicates``)."""

    def __init__(self, store: Store, *, feed: str, processed: Path) -> None:
        self.store = store
        self.feed = feed
        self.processed = processed
        self.ingestor = Ingestor(store)

    def process(self, path: Path) -> Taken:
        sha256 = sha256_of(path)
        size = path.stat().st_size
        if self.store.received_file(sha256) is not None:
            moved = move_atomically(path, target_in(self.processed / DUPLICATES, path.name, sha256))
            return Taken(path.name, sha256, size, "duplicate", str(moved))
        try:
            result = self.ingestor.ingest_path(path, IngestOptions(fmt=detect_format(path)))
        except InputError as exc:
            moved = move_atomically(path, target_in(self.processed / FAILED, path.name, sha256))
            console.print(f"[bold red]{path.name}[/]: {exc}; moved to {moved}", highlight=False)
            return Taken(path.name, sha256, size, "failed", str(moved), error=str(exc))
        target = target_in(self.processed, path.name, sha256)
        self.record(
            ReceivedFile(
                sha256,
                self.feed,
                path.name,
                size,
                result.batches,
                datetime.now(UTC).isoformat(timespec="seconds"),
                str(target),
            )
        )
        move_atomically(path, target)
        return Taken(
            path.name, sha256, size, "ingested", str(target), result.batches, result.counts
        )

    def record(self, rec: ReceivedFile) -> None:
        """Write the checksum once the readings are committed (False from the store: a
        rival recorded the same bytes meanwhile, which is just as good)."""
        with self.store.write() as tx:
            tx.add_received_file(rec)


def _take(processor: DropProcessor, directory: Path, names: list[str]) -> list[Taken]:
    return [processor.process(directory / name) for name in names]


def watch_directory(
    processor: DropProcessor,
    directory: Path,
    *,
    settle: float,
    interval: float,
    once: bool,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    rounds: int | None = None,
) -> list[Taken]:
    """Take every file in ``directory`` once it has been stable for ``settle`` seconds.
    With ``once``: what is there now (waiting ``settle`` once for files not yet stable;
    those still changing are left for the next run). Otherwise every ``interval`` seconds,
    holding while the feed is paused, for ``rounds`` rounds (None: until interrupted)."""
    stable = StableFiles(settle)
    taken: list[Taken] = []
    done = 0
    while rounds is None or done < rounds:
        done += 1
        if processor.store.pause_of(processor.feed) is None:
            ready = stable.observe(local_listing(directory), clock())
            taken += _take(processor, directory, ready)
            for name in ready:
                stable.forget(name)
            if once:
                if stable.waiting():
                    sleep(settle)
                    ready = stable.observe(local_listing(directory), clock())
                    taken += _take(processor, directory, ready)
                return taken
        elif once:
            return taken
        sleep(interval)
    return taken


@dataclasses.dataclass(slots=True)
class Pulled:
    taken: list[Taken] = dataclasses.field(default_factory=list)
    changing: list[str] = dataclasses.field(default_factory=list)  # left for the next pull
    archived: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> remote path
    error: str | None = None  # why the pull stopped early (the rest is fetched next time)


async def pull_files(
    processor: DropProcessor,
    endpoint: SftpEndpoint,
    local: Path,
    *,
    settle: float,
    breaker: CircuitBreaker | None = None,
    policy: RetryPolicy = PULL_POLICY,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Pulled:
    """Download each remote file whose size and mtime held for ``settle`` seconds, process
    it as the watcher does, then archive it remotely into ``<remote-dir>/processed/``.

    A session that fails on the way (no connection, lost, no answer) is tried again per
    ``policy`` (full jitter): what it took is kept, the next lists again and goes on. With
    a ``breaker`` each session is one call: while the circuit is open the pull connects to
    nothing (E03, ``Pulled.error``), and a failure or a success is recorded."""
    local.mkdir(parents=True, exist_ok=True)
    for stale in (local / INCOMING).glob("*.part"):
        stale.unlink()  # a download a killed run left behind: it is fetched whole again
    pulled = Pulled()
    stable = StableFiles(settle)

    async def session(number: int) -> None:
        if breaker is not None:  # a run does not wait out a cool-down: it ends (E03)
            await wait_until_allowed(breaker, sleep=sleep, deadline=breaker.clock())
        try:
            await _session(processor, endpoint, local, settle, stable, pulled)
        except CollectError as exc:
            if breaker is not None:
                (breaker.record_failure if exc.transient else breaker.record_success)()
            raise
        except BaseException:
            if breaker is not None:
                breaker.release()
            raise
        if breaker is not None:
            breaker.record_success()

    try:
        await with_retries(session, policy, sleep=sleep, name=endpoint.host)
    except CollectError as exc:  # still failing: what was taken is kept
        pulled.error = str(exc)
    pulled.changing = sorted(set(pulled.changing))
    return pulled


async def _session(
    processor: DropProcessor,
    endpoint: SftpEndpoint,
    local: Path,
    settle: float,
    stable: StableFiles,
    pulled: Pulled,
) -> None:
    async with SftpDrop(endpoint) as drop:
        listing = await drop.listing()
        ready = stable.observe({n: f.state for n, f in listing.items()}, time.monotonic())
        if len(ready) < len(listing):
            await asyncio.sleep(settle)
            listing = await drop.listing()
            ready = stable.observe({n: f.state for n, f in listing.items()}, time.monotonic())
        pulled.changing = sorted(set(listing) - set(ready))
        for name in ready:
            remote = listing[name]
            path = await drop.download(remote, local)
            if path is None:
                pulled.changing.append(name)
                continue
            taken = processor.process(path)
            pulled.taken.append(taken)
            if taken.outcome != "failed":
                pulled.archived[name] = await drop.archive(remote, taken.sha256)


def _report(
    taken: list[Taken], checked: VeeOutcome | None, json_out: bool, extra: dict[str, Any]
) -> None:
    total = BatchCounts()
    for t in taken:
        total.add(t.counts)
    if json_out:
        emit_json(
            {
                "files": [t.as_dict() for t in taken],
                "totals": counts_dict(total),
                "vee": checked.as_dict() if checked is not None else None,
                **extra,
            }
        )
        return
    for t in taken:
        out.print(f"{t.outcome:9} {t.name} ({t.size:,} bytes) -> {t.moved_to}")
    out.print(
        f"{len(taken)} files: {total.records:,} records, {total.accepted:,} accepted, "
        f"{total.duplicates:,} duplicates, {total.quarantined:,} quarantined"
    )
    for name in extra.get("changing", []):
        out.print(f"still changing, left for the next pull: {name}")
    if checked is not None:
        print_outcome(checked)


FeedOption = Annotated[
    str,
    typer.Option("--feed", help="The feed name files are recorded under (and paused by)."),
]
SettleOption = Annotated[
    float,
    typer.Option(
        "--settle", min=0.0, help="Seconds a file's size and mtime must hold before it is taken."
    ),
]


@app.command("watch")
@handle_errors
def watch(
    directory: Annotated[
        Path,
        typer.Argument(help="The drop directory.", exists=True, file_okay=False),
    ],
    processed: Annotated[
        Path | None,
        typer.Option(
            "--processed",
            help="Where taken files are moved (default DIR/processed; same file system).",
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Process what is there now, then exit.")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between scans.")
    ] = 5.0,
    settle: SettleOption = 2.0,
    feed: FeedOption = INGEST_FEED,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Watch a directory: ingest each complete file once, then move it to processed/."""
    store = open_db(db)
    refuse_if_paused(store, feed)
    processor = DropProcessor(store, feed=feed, processed=processed or directory / PROCESSED)
    taken: list[Taken] = []
    try:
        taken = watch_directory(processor, directory, settle=settle, interval=interval, once=once)
    except KeyboardInterrupt:
        console.print("[yellow]stopped[/]: every file taken so far is stored and moved")
    checked = Ingestor(store).check_pending()
    _report(taken, checked, json_out, {})


@app.command("pull")
@handle_errors
def pull(
    host: Annotated[str, typer.Option("--host", help="SFTP server host.")],
    user: Annotated[str, typer.Option("--user", help="SFTP user name.")],
    remote_dir: Annotated[
        str, typer.Option("--remote-dir", help="Remote directory the files are dropped in.")
    ],
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="SFTP port.")] = 22,
    key: Annotated[
        Path | None,
        typer.Option("--key", exists=True, dir_okay=False, help="Private key file to log in with."),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password", envvar="METERLEDGER_SFTP_PASSWORD", help="Password to log in with."
        ),
    ] = None,
    known_hosts: Annotated[
        Path | None,
        typer.Option(
            "--known-hosts",
            exists=True,
            dir_okay=False,
            help="known_hosts file the server's host key is checked against "
            "(default ~/.ssh/known_hosts).",
        ),
    ] = None,
    local: Annotated[
        Path,
        typer.Option("--local", file_okay=False, help="Local drop directory files land in."),
    ] = Path("drops"),
    settle: SettleOption = 2.0,
    feed: FeedOption = INGEST_FEED,
    attempts: Annotated[
        int, typer.Option("--attempts", min=1, max=5, help="Sessions tried before giving up.")
    ] = PULL_POLICY.attempts,
    breaker_cooldown: CooldownOption = PULL_COOLDOWN,
    breaker_failure_rate: FailureRateOption = 0.15,
    breaker_min_calls: MinCallsOption = None,
    breaker_window: Annotated[
        float,
        typer.Option(
            "--breaker-window", min=1.0, help="Seconds of the sliding failure-rate window."
        ),
    ] = 3600.0,
    breaker_probes: ProbesOption = 1,
    breaker_threshold: ThresholdOption = 5,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Pull complete files from an SFTP directory, ingest each once, archive it remotely.

    A failed session is tried again (--attempts, full jitter); the server's circuit
    breaker carries over from run to run, and while it is open a run connects to nothing
    (E03, exit 2) until its cool-down ends."""
    if key is not None and password is not None:
        raise fail("give --key or --password, not both")
    store = open_db(db)
    refuse_if_paused(store, feed)
    endpoint = SftpEndpoint(
        host, user, remote_dir, port=port, key_file=key, password=password, known_hosts=known_hosts
    )
    try:
        settings = feed_breaker_settings(
            cooldown=breaker_cooldown,
            failure_rate=breaker_failure_rate,
            min_calls=breaker_min_calls,
            window=breaker_window,
            probes=breaker_probes,
            threshold=breaker_threshold,
        )
    except ValueError as exc:
        raise fail(str(exc)) from exc
    board = BreakerBoard.of(settings, feed=feed, listener=BreakerRecorder(store))
    breaker = board.get(f"{host}:{port}")
    restore_breaker(store, breaker)
    processor = DropProcessor(store, feed=feed, processed=local / PROCESSED)
    policy = RetryPolicy(attempts, PULL_POLICY.initial, PULL_POLICY.maximum)
    pulled = asyncio.run(
        pull_files(processor, endpoint, local, settle=settle, breaker=breaker, policy=policy)
    )
    save_breakers(store, board.readings())
    checked = Ingestor(store).check_pending()
    _report(
        pulled.taken,
        checked,
        json_out,
        {
            "changing": pulled.changing,
            "archived": dict(sorted(pulled.archived.items())),
            "error": pulled.error,
            "breaker": breaker_summary(board),
        },
    )
    if pulled.error is not None:
        raise fail(f"{pulled.error}; the files not taken are fetched whole next time")
