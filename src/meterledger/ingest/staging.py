"""Staging: the work done ahead of the write transaction, one block at a time.

For each block: parse it, :func:`~meterledger.ingest.validate.prepare` it, check it against a
snapshot of the meter registry, and prepare the insert for the common all-new case. The
writer then only has to store it.

:class:`ThreadStager` runs this up to three blocks ahead on two worker threads while the
writer stores the block before them; polars and the database drivers release the GIL for
most of their work. (A staging *process* was measured and rejected: pickling each block's
frames across the process boundary cost far more than the GIL contention it removed.)

A snapshot that turns out stale (meters changed) costs only speed: the writer compares
``registry_version`` inside its transaction and checks the block again.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import BinaryIO, Protocol

import polars as pl

from meterledger.core.errors import FormatError, InputError
from meterledger.core.time import epoch_of
from meterledger.ingest.apply import Prepared
from meterledger.ingest.parsers.delimited import BLOCK_BYTES, Thunk, csv_blocks, jsonl_blocks
from meterledger.ingest.validate import Checked, Registry, check, prepare
from meterledger.store.base import Store

__all__ = [
    "Snapshot",
    "Staged",
    "Stager",
    "ThreadStager",
    "load_registry",
    "read_blocks",
]


SWITCH_INTERVAL_S = 0.0005
_switching = threading.Lock()
_stagers = 0
_saved_interval = 0.0


def _fast_switching(on: bool) -> None:
    """The short switch interval while any stager runs in this process; the caller's own
    interval back when the last one ends."""
    global _stagers, _saved_interval  # noqa: PLW0603 - process-wide, like the interval
    with _switching:
        if on:
            if _stagers == 0:
                _saved_interval = sys.getswitchinterval()
                sys.setswitchinterval(min(_saved_interval, SWITCH_INTERVAL_S))
            _stagers += 1
        else:
            _stagers -= 1
            if _stagers == 0:
                sys.setswitchinterval(_saved_interval)


def load_registry(store: Store) -> Registry:
    meters = store.list_meters()
    channels = store.list_channels()
    return Registry(
        meters=pl.DataFrame(
            [(m.meter_id, m.timezone, m.capacity, m.status) for m in meters],
            schema={
                "meter_id": pl.String,
                "timezone": pl.String,
                "capacity": pl.Int64,
                "status": pl.String,
            },
            orient="row",
        ),
        channels=pl.DataFrame(
            [(c.meter_id, c.obis, c.channel_id, c.base_unit, c.allows_negative) for c in channels],
            schema={
                "meter_id": pl.String,
                "obis": pl.String,
                "channel_id": pl.Int64,
                "base_unit": pl.String,
                "allows_negative": pl.Boolean,
            },
            orient="row",
        ),
    )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The registry as of ``version``, for checking blocks off the write transaction."""

    registry: Registry
    version: int

    @classmethod
    def load(cls, store: Store) -> Snapshot:
        version = store.registry_version()
        return cls(load_registry(store), version)

    def refresh(self, store: Store) -> Snapshot:
        return self if store.registry_version() == self.version else Snapshot.load(store)


@dataclass(frozen=True, slots=True)
class Staged:
    prepared: pl.DataFrame
    checked: Checked
    ahead: Prepared
    registry_version: int
    size: int


def read_blocks(
    stream: BinaryIO, fmt: str, source: str, meter_id: str | None, block_bytes: int = BLOCK_BYTES
) -> Iterator[tuple[Thunk, int]]:
    """(parse, bytes consumed) per block of ``stream`` in format ``fmt``: reading is
    sequential, ``parse()`` may run on any thread."""
    if fmt == "csv":
        yield from csv_blocks(stream, block_bytes=block_bytes)
    elif fmt == "jsonl":
        yield from jsonl_blocks(stream, block_bytes=block_bytes)
    elif fmt == "greenbutton":
        from meterledger.ingest.parsers.greenbutton import MAX_DOCUMENT_BYTES, parse_greenbutton

        # bounded: the stream is already decompressed, so a gzip bomb stops here
        data = stream.read(MAX_DOCUMENT_BYTES + 1)
        if len(data) > MAX_DOCUMENT_BYTES:
            raise FormatError(f"{source}: document larger than {MAX_DOCUMENT_BYTES} bytes")
        yield partial(parse_greenbutton, data, source=source, meter_id=meter_id), len(data)
    else:
        raise InputError(f"unknown format {fmt!r}")


Encode = Callable[[pl.DataFrame], object | None]


def stage(
    raw: pl.DataFrame, size: int, snapshot: Snapshot, now: datetime, encode: Encode | None = None
) -> Staged:
    prepared = prepare(raw)
    checked = check(prepared, snapshot.registry, now=epoch_of(now.replace(microsecond=0)))
    return Staged(prepared, checked, Prepared.of(checked.good, encode), snapshot.version, size)


class Stager(Protocol):
    def __iter__(self) -> Iterator[Staged]: ...

    def update(self, snapshot: Snapshot) -> None: ...

    def __enter__(self) -> Stager: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class ThreadStager:
    """Stages up to ``ahead`` blocks at once on ``workers`` threads; yields them in order.

    Two workers keep both cores busy: while one waits on the GIL for its Python parts, the
    other's polars work runs, and the writer stores the block before them."""

    def __init__(
        self,
        blocks: Iterator[tuple[Thunk, int]],
        snapshot: Snapshot,
        now: Callable[[], datetime],
        *,
        workers: int = 2,
        ahead: int = 3,
        encode: Encode | None = None,
    ) -> None:
        self._encode = encode
        self._blocks = blocks
        self._snapshot = snapshot
        self._now = now
        self._ahead = ahead
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest-stage")

    def _submit(self) -> Future[Staged] | None:
        item = next(self._blocks, None)  # reading stays on the consumer's thread, in order
        if item is None:
            return None
        parse, size = item
        return self._pool.submit(
            _stage_thunk, parse, size, self._snapshot, self._now(), self._encode
        )

    def __iter__(self) -> Iterator[Staged]:
        pending: deque[Future[Staged]] = deque()
        exhausted = False
        while True:
            while not exhausted and len(pending) < self._ahead:
                future = self._submit()
                if future is None:
                    exhausted = True
                else:
                    pending.append(future)
            if not pending:
                return
            yield pending.popleft().result()

    def update(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def __enter__(self) -> ThreadStager:
        # The writer thread makes many short calls into the database driver, each giving up
        # the GIL; at the default 5 ms switch interval it then waits behind the staging
        # threads' Python work after every one. 0.5 ms keeps it moving (measured: PostgreSQL
        # ingest 250k -> 380k rows/s). Restored on exit.
        _fast_switching(True)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        _fast_switching(False)


def _stage_thunk(
    parse: Thunk, size: int, snapshot: Snapshot, now: datetime, encode: Encode | None
) -> Staged:
    return stage(parse(), size, snapshot, now, encode)
