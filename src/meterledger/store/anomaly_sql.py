"""The VEE tables of schema version 5 (``anomalies``, ``register_reads``, ``batch_spans``,
``batches.vee_at``), once for both backends, over the backend's ``_billing_rows`` (one
statement with ``?`` placeholders, plain SQL that SQLite and PostgreSQL both run).

:class:`VeeReadAPI` and :class:`VeeWriteAPI` are the abstract methods ``Store`` and
``WriteTx`` add; :class:`AnomalyReads` and :class:`AnomalyWrites` implement them, except
:meth:`VeeReadAPI.vee_read`, which each backend reads its own fast way.

Many keys go to the database in chunks of multi-row ``VALUES`` lists (a few hundred rows
a statement), never one statement per row. The columns of a ``VALUES`` list are named
``column1``, ``column2``, ... by both databases.

The ledger: a finding is ``open`` until someone acts on it (``released`` or ``edited``,
both final) or a later run over the same data no longer raises it (``cleared``; it reopens
if a run raises it again). Findings are never deleted. An open finding of severity ``fail``
holds its interval out of billing (:meth:`AnomalyReads._drop_held`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import polars as pl

from meterledger.core.errors import ConflictError, InputError
from meterledger.store.arrays import BillingArrays, RegisterArrays, VeeRows
from meterledger.store.records import (
    ANOMALY_STATUSES,
    SEVERITIES,
    AnomalyRecord,
    NewAnomaly,
    RegisterRead,
)
from meterledger.store.vee_api import VeeReadAPI, VeeWriteAPI

__all__ = [
    "ANOMALY_COLUMNS",
    "AnomalyReads",
    "AnomalyWrites",
    "RegisterArrays",
    "VeeReadAPI",
    "VeeRows",
    "VeeWriteAPI",
    "anomaly_record",
]

Rows = list[tuple[Any, ...]]
T = TypeVar("T")
_CHUNK = 400  # rows of a multi-row statement: at most 8 x 400 parameters

ANOMALY_COLUMNS = (
    "a.anomaly_id, a.channel_id, c.meter_id, c.obis, a.interval_end, a.rule, a.severity,"
    " a.detail, a.status, a.value, a.created_at, a.resolved_at, a.note, a.audit_seq"
)
_ANOMALIES = (
    f"SELECT {ANOMALY_COLUMNS} FROM anomalies a JOIN channels c ON c.channel_id = a.channel_id"
)
# the partial index anomalies_held serves exactly this
_HELD = (
    "SELECT channel_id, interval_end FROM anomalies WHERE status = 'open' AND severity = 'fail'"
    " AND interval_end > ? AND interval_end <= ?"
)
_UPSERT = (
    "INSERT INTO anomalies (channel_id, interval_end, rule, severity, detail, value, status,"
    " created_at) VALUES {values} ON CONFLICT (channel_id, interval_end, rule) DO UPDATE SET"
    " severity = excluded.severity, detail = excluded.detail, value = excluded.value,"
    " status = 'open', resolved_at = NULL WHERE anomalies.status IN ('open', 'cleared')"
)


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for at in range(0, len(items), size):
        yield items[at : at + size]


def _values(rows: int, row: str) -> str:
    """``rows`` copies of the ``(?, ?, ...)`` row template, comma-separated."""
    return ", ".join([row] * rows)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _int_or_none(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def anomaly_record(row: Sequence[Any]) -> AnomalyRecord:
    """A row of ``ANOMALY_COLUMNS`` as a record."""
    return AnomalyRecord(
        int(row[0]),
        int(row[1]),
        str(row[2]),
        str(row[3]),
        int(row[4]),
        str(row[5]),
        str(row[6]),
        str(row[7]),
        str(row[8]),
        _int_or_none(row[9]),
        str(row[10]),
        None if row[11] is None else str(row[11]),
        None if row[12] is None else str(row[12]),
        _int_or_none(row[13]),
    )


def _text(value: str | None) -> str | None:
    """Descriptive text as both databases can hold it (PostgreSQL text cannot hold NUL)."""
    return None if value is None else value.replace("\x00", "\ufffd")


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class AnomalyReads(VeeReadAPI):
    """The reads of the VEE tables, over the backend's ``_billing_rows``."""

    @abstractmethod
    def _billing_rows(self, query: str, params: Sequence[object] = ()) -> Rows:
        """Run one statement with ``?`` placeholders; its rows."""

    def list_anomalies(
        self,
        meter_id: str | None = None,
        rule: str | None = None,
        status: str | None = "open",
        limit: int | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> list[AnomalyRecord]:
        if status is not None and status not in ANOMALY_STATUSES:
            raise InputError(
                f"anomaly status must be one of {', '.join(ANOMALY_STATUSES)}, got {status!r}"
            )
        query = _ANOMALIES + " WHERE 1 = 1"
        params: list[object] = []
        for clause, value in (
            (" AND c.meter_id = ?", meter_id),
            (" AND a.rule = ?", rule),
            (" AND a.status = ?", status),
            (" AND a.interval_end > ?", start),
            (" AND a.interval_end <= ?", end),
        ):
            if value is not None:
                query += clause
                params.append(value)
        query += " ORDER BY a.anomaly_id"
        if limit is not None:
            query += " LIMIT ?"
            params.append(int(limit))
        return [anomaly_record(row) for row in self._billing_rows(query, params)]

    def get_anomaly(self, anomaly_id: int) -> AnomalyRecord | None:
        rows = self._billing_rows(_ANOMALIES + " WHERE a.anomaly_id = ?", (int(anomaly_id),))
        return anomaly_record(rows[0]) if rows else None

    def held(
        self, start: int, end: int, channel_ids: Sequence[int] | None = None
    ) -> set[tuple[int, int]]:
        found = {(int(c), int(e)) for c, e in self._billing_rows(_HELD, (int(start), int(end)))}
        if channel_ids is None:
            return found
        wanted = {int(c) for c in channel_ids}
        return {key for key in found if key[0] in wanted}

    def _drop_held(
        self, read: BillingArrays, meters: Sequence[tuple[str, int]], start: int, end: int
    ) -> BillingArrays:
        """``read`` without the intervals held out of billing. ``meters`` are the
        ``(meter_id, channel_id)`` of ``read.meter_ids``, in that order. One indexed query,
        which finds nothing when there are no held findings: then ``read`` itself."""
        rows = self._billing_rows(_HELD, (int(start), int(end)))
        if not rows or not read.rows:
            return read
        ends: dict[int, list[int]] = {}
        for channel_id, interval_end in rows:
            ends.setdefault(int(channel_id), []).append(int(interval_end))
        position = {channel_id: i for i, (_, channel_id) in enumerate(meters)}
        keep = np.ones(read.rows, dtype=bool)
        for channel_id, held in ends.items():  # a loop per held channel, not per interval
            i = position.get(channel_id)
            if i is not None:
                lo, hi = int(read.offsets[i]), int(read.offsets[i + 1])
                keep[lo:hi] &= ~np.isin(read.interval_end[lo:hi], held)
        return read if bool(keep.all()) else read.without(keep)

    def vee_pending(self) -> list[int]:
        rows = self._billing_rows(
            "SELECT b.batch_id FROM batches b WHERE b.vee_at IS NULL AND EXISTS"
            " (SELECT 1 FROM batch_spans s WHERE s.batch_id = b.batch_id) ORDER BY b.batch_id"
        )
        return [int(r[0]) for r in rows]

    def batch_spans(self, batch_ids: Sequence[int]) -> list[tuple[int, int, int]]:
        spans: dict[int, tuple[int, int]] = {}
        ids = sorted({int(b) for b in batch_ids})
        for part in _chunks(ids):
            rows = self._billing_rows(
                "SELECT channel_id, min(lo), max(hi) FROM batch_spans"
                f" WHERE batch_id IN ({_marks(len(part))}) GROUP BY channel_id",
                part,
            )
            for c, first, last in rows:
                held = spans.get(int(c))
                lo, hi = int(first), int(last)
                spans[int(c)] = (lo, hi) if held is None else (min(held[0], lo), max(held[1], hi))
        return [(c, lo, hi) for c, (lo, hi) in sorted(spans.items())]

    def channel_spans(
        self, meter_id: str | None = None, start: int | None = None, end: int | None = None
    ) -> list[tuple[int, int, int]]:
        query = (
            "SELECT r.channel_id, min(r.interval_end), max(r.interval_end) FROM readings r"
            " JOIN channels c ON c.channel_id = r.channel_id WHERE 1 = 1"
        )
        params: list[object] = []
        if meter_id is not None:
            query += " AND c.meter_id = ?"
            params.append(meter_id)
        if start is not None:  # >= start + 1: PostgreSQL then prunes the months before
            query += " AND r.interval_end >= ?"
            params.append(int(start) + 1)
        if end is not None:
            query += " AND r.interval_end <= ?"
            params.append(int(end))
        rows = self._billing_rows(query + " GROUP BY r.channel_id ORDER BY r.channel_id", params)
        return [(int(c), int(lo), int(hi)) for c, lo, hi in rows]

    def batch_sources(self, batch_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        out: dict[int, tuple[str, str]] = {}
        ids = sorted({int(b) for b in batch_ids})
        for part in _chunks(ids):
            rows = self._billing_rows(
                f"SELECT batch_id, source, format FROM batches WHERE batch_id IN"
                f" ({_marks(len(part))})",
                part,
            )
            out.update({int(b): (str(s), str(f)) for b, s, f in rows})
        return dict(sorted(out.items()))

    def batch_formats(self, batch_ids: Sequence[int]) -> dict[int, str]:
        return {b: fmt for b, (_, fmt) in self.batch_sources(batch_ids).items()}

    def register_reads(self, channel_ids: Sequence[int], start: int, end: int) -> RegisterArrays:
        found: Rows = []
        ids = sorted({int(c) for c in channel_ids})
        for part in _chunks(ids):
            found += self._billing_rows(
                "SELECT channel_id, read_at, value FROM register_reads"
                f" WHERE channel_id IN ({_marks(len(part))}) AND read_at >= ? AND read_at <= ?"
                " ORDER BY channel_id, read_at",
                [*part, int(start), int(end)],
            )
        data = np.array(found, dtype=np.int64).reshape(-1, 3)
        return RegisterArrays(*(np.ascontiguousarray(data[:, i]) for i in range(3)))


def _worse(a: NewAnomaly, b: NewAnomaly) -> NewAnomaly:
    return b if (a.severity, b.severity) == ("warn", "fail") else a


def _check_finding(a: NewAnomaly) -> None:
    if not (_is_int(a.channel_id) and _is_int(a.interval_end)):
        raise InputError(f"a finding's channel_id and interval_end must be integers: {a!r}")
    if a.severity not in SEVERITIES:
        raise InputError(f"a finding's severity must be warn or fail, got {a.severity!r}")
    if not isinstance(a.rule, str) or not a.rule:
        raise InputError(f"a finding needs a rule code: {a!r}")
    if a.value is not None and not _is_int(a.value):
        raise InputError(f"a finding's value must be an integer or None: {a!r}")


class AnomalyWrites(VeeWriteAPI):
    """The writes of the VEE tables, for a WriteTx (under the store's writer lock). What
    the tables would refuse is refused first with InputError or ConflictError, so that no
    statement fails inside a PostgreSQL transaction."""

    @abstractmethod
    def _billing_rows(self, query: str, params: Sequence[object] = ()) -> Rows:
        """Run one statement with ``?`` placeholders; its rows."""

    def _known_channels(self, channel_ids: set[int]) -> None:
        ids = sorted(channel_ids)
        found: set[int] = set()
        for part in _chunks(ids):
            rows = self._billing_rows(
                f"SELECT channel_id FROM channels WHERE channel_id IN ({_marks(len(part))})", part
            )
            found |= {int(r[0]) for r in rows}
        missing = [c for c in ids if c not in found]
        if missing:
            raise InputError(f"unknown channel ids {missing[:10]}")

    def record_findings(
        self,
        found: Sequence[NewAnomaly],
        *,
        spans: Sequence[tuple[int, int, int]],
        rules: Sequence[str],
        at: str,
    ) -> tuple[int, int]:
        wanted: dict[tuple[int, int, str], NewAnomaly] = {}
        for finding in found:
            _check_finding(finding)
            key = (int(finding.channel_id), int(finding.interval_end), finding.rule)
            held = wanted.get(key)
            wanted[key] = finding if held is None else _worse(held, finding)
        if wanted:
            self._known_channels({k[0] for k in wanted})
        status = self._statuses(list(wanted))
        write = [a for k, a in wanted.items() if status.get(k) in (None, "open", "cleared")]
        opened = sum(1 for k in wanted if status.get(k) in (None, "cleared"))
        for part in _chunks(write):
            params: list[object] = []
            for a in part:
                value = _int_or_none(a.value)
                params += [int(a.channel_id), int(a.interval_end), a.rule, a.severity]
                params += [_text(a.detail), value, at]
            row = "(?, ?, ?, ?, ?, ?, 'open', ?)"
            self._billing_rows(_UPSERT.format(values=_values(len(part), row)), params)
        return opened, self._clear(spans, rules, set(wanted), at)

    def _statuses(self, keys: list[tuple[int, int, str]]) -> dict[tuple[int, int, str], str]:
        out: dict[tuple[int, int, str], str] = {}
        for part in _chunks(keys):
            rows = self._billing_rows(
                "SELECT a.channel_id, a.interval_end, a.rule, a.status FROM (VALUES"
                f" {_values(len(part), '(?, ?, ?)')}) AS k JOIN anomalies a"
                " ON a.channel_id = k.column1 AND a.interval_end = k.column2"
                " AND a.rule = k.column3",
                [v for key in part for v in key],
            )
            out.update({(int(c), int(e), str(r)): str(s) for c, e, r, s in rows})
        return out

    def _clear(
        self,
        spans: Sequence[tuple[int, int, int]],
        rules: Sequence[str],
        found: set[tuple[int, int, str]],
        at: str,
    ) -> int:
        rules = sorted(set(rules))
        if not spans or not rules:
            return 0
        stale: set[int] = set()
        for part in _chunks(spans):
            rows = self._billing_rows(
                "SELECT a.anomaly_id, a.channel_id, a.interval_end, a.rule FROM (VALUES"
                f" {_values(len(part), '(?, ?, ?)')}) AS s JOIN anomalies a"
                " ON a.channel_id = s.column1 AND a.interval_end > s.column2"
                " AND a.interval_end <= s.column3"
                f" WHERE a.status = 'open' AND a.rule IN ({_marks(len(rules))})",
                [*(int(v) for span in part for v in span), *rules],
            )
            stale |= {int(i) for i, c, e, r in rows if (int(c), int(e), str(r)) not in found}
        for ids in _chunks(sorted(stale)):
            self._billing_rows(
                "UPDATE anomalies SET status = 'cleared', resolved_at = ?"
                f" WHERE status = 'open' AND anomaly_id IN ({_marks(len(ids))})",
                [at, *ids],
            )
        return len(stale)

    def resolve_anomaly(
        self, anomaly_id: int, status: str, at: str, note: str | None, audit_seq: int | None
    ) -> None:
        if status not in ("released", "edited"):
            raise InputError(f"a finding is resolved as released or edited, not {status!r}")
        rows = self._billing_rows(
            "SELECT status FROM anomalies WHERE anomaly_id = ?", (int(anomaly_id),)
        )
        if not rows:
            raise InputError(f"no anomaly {anomaly_id}")
        if rows[0][0] != "open":
            raise ConflictError(f"anomaly {anomaly_id} is {rows[0][0]}, not open")
        self._billing_rows(
            "UPDATE anomalies SET status = ?, resolved_at = ?, note = ?, audit_seq = ?"
            " WHERE anomaly_id = ?",
            (status, at, _text(note), audit_seq, int(anomaly_id)),
        )

    def add_register_reads(self, reads: Sequence[RegisterRead]) -> int:
        new: dict[tuple[int, int], RegisterRead] = {}
        for read in reads:
            if not all(_is_int(v) for v in (read.channel_id, read.read_at, read.value)):
                raise InputError(
                    f"a register read's channel, time and value are integers: {read!r}"
                )
            if read.batch_id is not None and not _is_int(read.batch_id):
                raise InputError(f"a register read's batch_id is an integer or None: {read!r}")
            if not isinstance(read.source, str) or not read.source:
                raise InputError(f"a register read needs a source: {read!r}")
            key = (int(read.channel_id), int(read.read_at))
            held = new.setdefault(key, read)
            if int(held.value) != int(read.value):
                raise ConflictError(_conflict(key, int(held.value), int(read.value)))
        if not new:
            return 0
        self._known_channels({k[0] for k in new})
        keys = sorted(new)
        for part in _chunks(keys):
            rows = self._billing_rows(
                "SELECT r.channel_id, r.read_at, r.value FROM (VALUES"
                f" {_values(len(part), '(?, ?)')}) AS k JOIN register_reads r"
                " ON r.channel_id = k.column1 AND r.read_at = k.column2",
                [v for key in part for v in key],
            )
            for c, t, value in rows:
                key = (int(c), int(t))
                if int(value) != int(new[key].value):
                    raise ConflictError(_conflict(key, int(value), int(new[key].value)))
                del new[key]
        fresh = [new[k] for k in keys if k in new]
        for rows_part in _chunks(fresh):
            params: list[object] = []
            for r in rows_part:
                batch = _int_or_none(r.batch_id)
                params += [int(r.channel_id), int(r.read_at), int(r.value), r.source, batch]
            self._billing_rows(
                "INSERT INTO register_reads (channel_id, read_at, value, source, batch_id)"
                f" VALUES {_values(len(rows_part), '(?, ?, ?, ?, ?)')}",
                params,
            )
        return len(fresh)

    def mark_vee(self, batch_ids: Sequence[int], at: str) -> None:
        for part in _chunks(sorted({int(b) for b in batch_ids})):
            self._billing_rows(
                f"UPDATE batches SET vee_at = ? WHERE batch_id IN ({_marks(len(part))})",
                [at, *part],
            )

    def _note_spans(self, rows: pl.DataFrame, batch_id: int | None = None) -> None:
        """Record which channels and interval ends a batch wrote (``rows``: ``channel_id``,
        ``interval_end``, and ``batch_id`` unless one ``batch_id`` is given), so that
        :meth:`AnomalyReads.batch_spans` is an index look-up, not a scan of readings."""
        if rows.is_empty():
            return
        keys = ["channel_id"] if batch_id is not None else ["batch_id", "channel_id"]
        spans = rows.group_by(keys).agg(
            pl.col("interval_end").min().alias("lo"), pl.col("interval_end").max().alias("hi")
        )
        if batch_id is not None:
            spans = spans.with_columns(pl.lit(int(batch_id), pl.Int64).alias("batch_id"))
        ordered = spans.select("batch_id", "channel_id", "lo", "hi").sort("batch_id", "channel_id")
        found = ordered.rows()
        for part in _chunks(found):
            self._billing_rows(
                "INSERT INTO batch_spans (batch_id, channel_id, lo, hi)"
                f" VALUES {_values(len(part), '(?, ?, ?, ?)')}",
                [int(v) for span in part for v in span],
            )


def _conflict(key: tuple[int, int], held: int, given: int) -> str:
    return (
        f"register read of channel {key[0]} at {key[1]} is held with value {held}; a"
        f" different value ({given}) for the same read is refused"
    )
