"""The ingest pipeline: a file in, readings stored exactly once, everything else quarantined.

A file is read in blocks; each block becomes one batch and one write transaction, so a crash
leaves whole batches or nothing, and a re-run turns the batches already stored into
duplicates. Parsing, validation and the insert preparation run on two staging threads, up
to three blocks ahead, while the main thread writes (see :mod:`meterledger.ingest.staging`).
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol, cast

import polars as pl

from meterledger.core.errors import FormatError, InputError
from meterledger.core.ids import Service, channels_for_service
from meterledger.core.time import epoch_of, iso_utc
from meterledger.core.units import BaseUnit, Unit
from meterledger.ingest import audit
from meterledger.ingest.apply import Prepared, apply_readings
from meterledger.ingest.canonical import quarantine_digest, record_key
from meterledger.ingest.parsers.delimited import BLOCK_BYTES
from meterledger.ingest.reasons import Reason
from meterledger.ingest.records import FIELDS
from meterledger.ingest.staging import (
    Snapshot,
    Staged,
    Stager,
    ThreadStager,
    load_registry,
    read_blocks,
)
from meterledger.ingest.validate import Checked, check
from meterledger.ingest.vee_check import ESTIMATE_SOURCE, VeeOutcome, check_pending
from meterledger.store.base import (
    AuditRow,
    BatchCounts,
    MeterRecord,
    NewQuarantine,
    Store,
    WriteTx,
)
from meterledger.vee.config import RuleSet

__all__ = [
    "FORMATS",
    "IngestOptions",
    "IngestResult",
    "Ingestor",
    "detect_format",
    "load_registry",
    "open_input",
    "register_meter",
    "source_name",
    "write_batch",
]

FORMATS = ("csv", "jsonl", "greenbutton")
Progress = Callable[[int], None]


def detect_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".xml"):
        return "greenbutton"
    raise InputError(f"cannot tell the format of {path.name}: pass --format csv|jsonl|greenbutton")


def source_name(path: Path) -> str:
    """The path as text a database can hold: bytes of a file name that are not UTF-8 are
    written as ``\\xNN`` (a surrogate-escaped name would fail to encode)."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def open_input(path: Path) -> BinaryIO:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    compressed = handle.read(2) == b"\x1f\x8b"
    handle.seek(0)
    if compressed:
        handle.close()
        return cast(BinaryIO, _Guarded(gzip.open(path, "rb"), path))
    return cast(BinaryIO, _Guarded(handle, path))


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class _Guarded:
    """A binary input whose read errors (a truncated gzip, a vanished file) become a
    FormatError naming the file, instead of EOFError or OSError escaping."""

    def __init__(self, raw: _Readable, path: Path) -> None:
        self._raw = raw
        self._path = path

    def _fail(self, exc: Exception) -> FormatError:
        return FormatError(f"cannot read {self._path.name}: {exc or type(exc).__name__}")

    def read(self, size: int = -1) -> bytes:
        try:
            return self._raw.read(size)
        except (OSError, EOFError, zlib.error) as exc:
            raise self._fail(exc) from exc

    def readline(self, size: int = -1) -> bytes:
        try:
            return self._raw.readline(size)
        except (OSError, EOFError, zlib.error) as exc:
            raise self._fail(exc) from exc

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> _Guarded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class IngestOptions:
    fmt: str | None = None
    create_meters: bool = False
    meter_id: str | None = None
    default_tz: str = "UTC"
    block_bytes: int = BLOCK_BYTES


@dataclass(slots=True)
class IngestResult:
    counts: BatchCounts = field(default_factory=BatchCounts)
    batches: int = 0
    audit_entries: int = 0
    meters_created: list[str] = field(default_factory=list)
    vee: VeeOutcome | None = None


def _flag_last(items: Iterable[Staged], look: bool) -> Iterator[tuple[Staged, bool]]:
    """Each item with whether it is the last (known one item ahead, only when ``look``)."""
    if not look:
        yield from ((item, False) for item in items)
        return
    held: Staged | None = None
    for item in items:
        if held is not None:
            yield held, False
        held = item
    if held is not None:
        yield held, True


def _service_for(unit: str | None) -> Service:
    try:
        base = Unit(unit).base if unit else BaseUnit.WH
    except ValueError:
        base = BaseUnit.WH
    if base is BaseUnit.LITRE:
        return Service.GAS if unit == Unit.CUBIC_METRE.value else Service.WATER
    return Service.ELECTRIC


def register_meter(tx: WriteTx, meter: MeterRecord) -> None:
    """Add a meter with every catalogue channel of its service, on the audit chain."""
    tx.add_meter(meter)
    service = Service(meter.service)
    for spec in channels_for_service(service):
        tx.add_channel(meter.meter_id, str(spec.obis), spec.base.value, spec.allows_negative)
    audit.append(tx, "meter.added", meter.meter_id, audit.meter_payload(meter))


class Ingestor:
    """Runs files through the pipeline into ``store``. ``now`` fixes the receipt time (tests).

    With ``vee`` every call ends by running the VEE rules over what it wrote, and over any
    batch an earlier run left unchecked (:func:`check_pending`), estimating gaps on the way;
    ``ruleset`` is the rule configuration (default: the bundled one). The commands turn it
    on; a caller that hands over many small deliveries (the collector) leaves it off and
    calls :meth:`check_pending` once at the end. Batches written with it off stay pending,
    and the bill run checks them before it rates anything."""

    def __init__(
        self,
        store: Store,
        *,
        now: datetime | None = None,
        vee: bool = False,
        ruleset: RuleSet | None = None,
    ) -> None:
        self.store = store
        self.now = now
        self.vee = vee
        self.ruleset = ruleset
        # The registry as last loaded: a later call reuses it while the store's registry
        # version is unchanged (a head-end hands over many small batches).
        self._snapshot: Snapshot | None = None

    def _now(self) -> datetime:
        return self.now or datetime.now(UTC)

    def ingest_path(
        self, path: Path, options: IngestOptions | None = None, progress: Progress | None = None
    ) -> IngestResult:
        options = options or IngestOptions()
        fmt = options.fmt or detect_format(path)
        if fmt not in FORMATS:
            raise InputError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
        if options.meter_id is not None and fmt != "greenbutton":
            raise InputError(
                "--meter-id assigns a Green Button file's readings; CSV and JSON "
                "lines name the meter on every record"
            )
        with open_input(path) as stream:
            return self.ingest_stream(
                stream, fmt=fmt, source=source_name(path), options=options, progress=progress
            )

    def ingest_stream(
        self,
        stream: BinaryIO,
        *,
        fmt: str,
        source: str,
        options: IngestOptions,
        progress: Progress | None = None,
        mark: tuple[str, str] | None = None,
    ) -> IngestResult:
        """Ingest ``stream`` block by block. ``mark`` ``(feed, mark)`` sets that feed's
        high-water mark in the write transaction of the last block's readings (alone if no
        block has any), so the mark never runs ahead of or behind what was stored."""
        result = IngestResult()
        marked = mark is None
        held = self._snapshot
        snapshot = held.refresh(self.store) if held is not None else Snapshot.load(self.store)
        blocks = read_blocks(stream, fmt, source, options.meter_id, options.block_bytes)
        stager: Stager = ThreadStager(blocks, snapshot, self._now, encode=self.store.encode_new)
        with stager:
            for staged, last in _flag_last(stager, mark is not None):
                if staged.prepared.height:
                    self._apply_block(staged, fmt, source, options, result, mark if last else None)
                    marked = marked or last
                    fresh = snapshot.refresh(self.store)
                    if fresh is not snapshot:
                        snapshot = fresh
                        stager.update(snapshot)
                if progress is not None:
                    progress(staged.size)
        self._snapshot = snapshot
        if mark is not None and not marked:
            with self.store.write() as tx:
                tx.set_feed_mark(mark[0], mark[1], self._now().isoformat())
        if self.vee and result.batches:
            result.vee = self.check_pending()
        return result

    def check_pending(self) -> VeeOutcome:
        """VEE over every batch not yet checked; estimates go in through this ingest."""
        return check_pending(
            self.store, ruleset=self.ruleset, now=self.now, write_estimates=self.write_estimates
        )

    def write_estimates(self, jsonl: bytes) -> int:
        """Ingest estimated readings (JSON lines) as their own batch, VEE off."""
        quiet = Ingestor(self.store, now=self.now, vee=False)
        quiet._snapshot = self._snapshot
        result = quiet.ingest_stream(
            io.BytesIO(jsonl), fmt="jsonl", source=ESTIMATE_SOURCE, options=IngestOptions()
        )
        return result.counts.accepted + result.counts.superseded

    def _apply_block(
        self,
        staged: Staged,
        fmt: str,
        source: str,
        options: IngestOptions,
        result: IngestResult,
        mark: tuple[str, str] | None = None,
    ) -> None:
        at = self._now()
        checked = staged.checked
        ahead: Prepared | None = staged.ahead
        if checked.good.height:
            self.store.prepare_months(checked.good.get_column("interval_end").to_numpy())
        with self.store.write() as tx:
            if options.create_meters:
                created = self._create_meters(tx, staged.prepared, options, at)
                result.meters_created += created
                result.audit_entries += len(created)
            if tx.registry_version() != staged.registry_version:
                # meters changed since the block was checked: check it again, inside the tx
                checked = check(
                    staged.prepared,
                    load_registry(self.store),
                    now=epoch_of(at.replace(microsecond=0)),
                )
                ahead = None
            counts, entry = write_batch(tx, checked, fmt=fmt, source=source, at=at, ahead=ahead)
            if mark is not None:
                tx.set_feed_mark(mark[0], mark[1], at.isoformat())
        result.counts.add(counts)
        result.batches += 1
        result.audit_entries += int(entry is not None)

    def _create_meters(
        self, tx: WriteTx, prepared: pl.DataFrame, options: IngestOptions, at: datetime
    ) -> list[str]:
        known = {m.meter_id for m in self.store.list_meters()}
        wanted = (
            prepared.filter(pl.col("meter_ok") & pl.col("error").is_null())
            .group_by("meter_id")
            .agg(pl.col("unit").drop_nulls().first())
            .sort("meter_id")
        )
        created: list[str] = []
        for meter_id, unit in wanted.iter_rows():
            if meter_id in known:
                continue
            service = _service_for(unit)
            register_meter(
                tx,
                MeterRecord(
                    meter_id=meter_id,
                    service=service.value,
                    unit=service.default_unit.value,
                    timezone=options.default_tz,
                    account=None,
                    status="active",
                    capacity=service.default_capacity_milli_per_hour,
                    created_at=at.isoformat(timespec="seconds"),
                ),
            )
            created.append(meter_id)
        return created


def write_batch(
    tx: WriteTx,
    checked: Checked,
    *,
    fmt: str,
    source: str,
    at: datetime,
    ahead: Prepared | None = None,
) -> tuple[BatchCounts, AuditRow | None]:
    """Store one checked batch in ``tx``: readings, versions, quarantine, batch row, audit."""
    received = at.isoformat(timespec="microseconds")
    batch_id = tx.new_batch(source, fmt, received)
    applied = apply_readings(
        tx,
        checked.good,
        batch_id=batch_id,
        received_at=epoch_of(at.replace(microsecond=0)),
        ahead=ahead,
    )
    found = quarantine_records(checked.bad, fmt, source)
    found += conflict_records(applied.conflicts, fmt, source)
    # the same bad record twice in one batch is one record (the copies are duplicates)
    records = list({r.record_key: r for r in reversed(found)}.values())[::-1]
    held = tx.insert_quarantine(batch_id, records, received)
    inserted = len(held)
    counts = BatchCounts(
        records=checked.good.height + checked.bad.height + checked.repeats,
        accepted=applied.new,
        duplicates=applied.duplicates + checked.repeats,
        superseded=applied.superseded,
        ignored=applied.ignored,
        conflicts=applied.conflicts.height,
        quarantined=inserted,
        quarantine_duplicates=len(found) - inserted,
    )
    fresh = set(held)
    for record in records:
        if record.record_key not in fresh:
            continue
        for reason in record.reasons:
            counts.reasons[reason] = counts.reasons.get(reason, 0) + 1
    entry = None
    if counts.effective:
        entry = audit.append(
            tx,
            audit.BATCH_KIND,
            f"batch {batch_id}",
            {
                "batch_id": batch_id,
                "source": source,
                "format": fmt,
                "records": counts.records,
                "accepted": counts.accepted,
                "superseded": counts.superseded,
                "ignored": counts.ignored,
                "conflicts": counts.conflicts,
                "duplicates": counts.duplicates,
                "quarantined": inserted,
                "reasons": dict(sorted(counts.reasons.items())),
                "stored_rows": applied.stored_rows,
                "stored_digest": applied.stored_digest,
                "quarantine_digest": quarantine_digest(
                    [(r.record_key, r.fields, r.reasons) for r in records if r.record_key in fresh]
                ),
            },
            at,
        )
    tx.finish_batch(batch_id, counts, entry.seq if entry else None)
    return counts, entry


def _fields_json(row: dict[str, object]) -> str:
    return json.dumps({name: row.get(name) for name in FIELDS}, sort_keys=True)


def quarantine_records(bad: pl.DataFrame, fmt: str, source: str) -> list[NewQuarantine]:
    out: list[NewQuarantine] = []
    for row in bad.iter_rows(named=True):
        raw = str(row["raw"] or "")
        out.append(
            NewQuarantine(
                record_key=record_key(fmt, raw),
                source=source,
                format=fmt,
                record_no=row["record_no"],
                meter_id=row["meter_id"],
                channel=row["channel"],
                interval_end=row["interval_end"],
                reasons=tuple(row["reasons"]),
                detail=str(row["detail"]),
                raw=raw,
                fields=_fields_json(row),
            )
        )
    return out


def conflict_records(conflicts: pl.DataFrame, fmt: str, source: str) -> list[NewQuarantine]:
    out: list[NewQuarantine] = []
    for row in conflicts.iter_rows(named=True):
        raw = str(row["raw"] or "")
        detail = (
            f"stored value {row['cur_value']} (quality {row['cur_quality']}) differs from "
            f"revision {row['value']} (quality {row['quality']}); kept as version "
            f"{row['version']} pending review"
        )
        out.append(
            NewQuarantine(
                record_key=record_key(fmt, raw, Reason.REVISION_CONFLICT.value),
                source=source,
                format=fmt,
                record_no=row["record_no"],
                meter_id=row["meter_id"],
                channel=row["channel"],
                interval_end=iso_utc(row["interval_end"]),
                reasons=(Reason.REVISION_CONFLICT.value,),
                detail=detail,
                raw=raw,
                fields=json.dumps(
                    {
                        "channel_id": row["channel_id"],
                        "interval_end_epoch": row["interval_end"],
                        "version": row["version"],
                        "value_milli": row["value"],
                        "quality_flags": row["quality"],
                        "interval_seconds": row["interval_seconds"],
                        "meter_id": row["meter_id"],
                        "channel": row["channel"],
                    },
                    sort_keys=True,
                ),
            )
        )
    return out
