"""VEE against the store, for the commands: ingest with the rules on, rebills when data in
a billed cycle changes, and the anomaly review actions (release, edit, replay).

When readings of a billed cycle change after the bill (an actual replacing an estimate, a
manual edit, a released anomaly putting an interval back in the billing view, late data),
:func:`rebill_touched` rates the cycle again and, if the bill's content changed, replaces it
through ``cycle rebill`` (a cancel and a rebill on the audit chain). A cycle whose bill comes
out the same is left alone.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from meterledger.billing.calendar import local_midnight_utc
from meterledger.billing.cycles import cycle_dates
from meterledger.cli.billing_service import run_cycle
from meterledger.core.errors import ConflictError, InputError, NotFoundError
from meterledger.core.reading import Quality
from meterledger.core.time import iso_utc
from meterledger.core.units import Unit, milli_from_text
from meterledger.ingest import audit
from meterledger.ingest.pipeline import IngestOptions, Ingestor, IngestResult
from meterledger.ingest.vee_check import VeeOutcome, check_range
from meterledger.store.base import Store
from meterledger.store.records import AnomalyRecord
from meterledger.vee.config import RuleSet

__all__ = [
    "Rebill",
    "edit_anomaly",
    "rebill_touched",
    "release_anomaly",
    "replay_anomalies",
    "touched_since",
]

Touched = tuple[str, int, int]  # meter_id, first and last interval end changed


@dataclass(frozen=True, slots=True)
class Rebill:
    account: str
    period: str
    cancel: int
    rebill: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "period": self.period,
            "cancel": self.cancel,
            "rebill": self.rebill,
        }


def touched_since(store: Store, batch_ids: Iterable[int]) -> list[Touched]:
    """``(meter_id, lo, hi)`` of the readings these batches wrote."""
    ids = sorted(set(batch_ids))
    if not ids:
        return []
    meter_of = {c.channel_id: c.meter_id for c in store.list_channels()}
    return [(meter_of[c], lo, hi) for c, lo, hi in store.batch_spans(ids) if c in meter_of]


def rebill_touched(store: Store, touched: Sequence[Touched]) -> list[Rebill]:
    """Rebill every billed cycle whose readings changed (see the module docstring)."""
    by_meter: dict[str, list[tuple[int, int]]] = {}
    for meter_id, lo, hi in touched:
        by_meter.setdefault(meter_id, []).append((lo, hi))
    # only the accounts of the meters touched (one registry read, not a query per account)
    by_account: dict[str, list[tuple[int, int]]] = {}
    for meter in store.list_meters():
        if meter.account is not None and meter.meter_id in by_meter:
            by_account.setdefault(meter.account, []).extend(by_meter[meter.meter_id])
    out: list[Rebill] = []
    for account_id, spans in sorted(by_account.items()):
        account = store.get_account(account_id)
        if account is None:
            continue  # a meter's account not (yet) set up for billing: nothing was billed
        zone = ZoneInfo(account.timezone)
        periods = sorted({b.period for b in store.list_bills(account.account_id)})
        for period in periods:
            if store.current_bill(account.account_id, period) is None:
                continue
            start, end = cycle_dates(period, account.cycle_day)
            lo, hi = local_midnight_utc(start, zone), local_midnight_utc(end, zone)
            if not any(a <= hi and b > lo for a, b in spans):
                continue
            report = run_cycle(store, period, account.account_id, rebill=True)
            out += [Rebill(account.account_id, period, c, r) for c, r in report.rebilled]
    return out


@dataclass(slots=True)
class Ingested:
    """An ingest with the rules on, and what it did to bills already issued."""

    result: IngestResult
    rebills: list[Rebill] = field(default_factory=list)


def ingest_checked(
    store: Store,
    stream: io.BufferedIOBase | io.BytesIO,
    *,
    fmt: str,
    source: str,
    options: IngestOptions | None = None,
    ruleset: RuleSet | None = None,
) -> Ingested:
    """Ingest a stream with VEE on, then rebill the billed cycles it changed."""
    before = set(store.batch_audit_refs())
    ingestor = Ingestor(store, vee=True, ruleset=ruleset)
    result = ingestor.ingest_stream(
        stream,  # type: ignore[arg-type]
        fmt=fmt,
        source=source,
        options=options or IngestOptions(fmt=fmt),
    )
    fresh = set(store.batch_audit_refs()) - before
    return Ingested(result, rebill_touched(store, touched_since(store, fresh)))


def _open(store: Store, anomaly_id: int) -> AnomalyRecord:
    record = store.get_anomaly(anomaly_id)
    if record is None:
        raise NotFoundError(f"no anomaly {anomaly_id}")
    if record.status != "open":
        raise ConflictError(f"anomaly {anomaly_id} is {record.status}, not open")
    return record


def _resolve(
    store: Store,
    record: AnomalyRecord,
    status: str,
    change: dict[str, Any],
    note: str | None,
    at: datetime,
) -> tuple[AnomalyRecord, list[Rebill]]:
    """Close an open finding as ``status`` with its audit entry (``anomaly.<status>``), then
    rebill the billed cycle the interval belongs to if its bill changed."""
    with store.write() as tx:
        entry = audit.append(
            tx,
            f"anomaly.{status}",
            f"anomaly {record.anomaly_id}",
            {
                "anomaly_id": record.anomaly_id,
                "meter_id": record.meter_id,
                "channel": record.channel,
                "interval_end": iso_utc(record.interval_end),
                "rule": record.rule,
                **change,
                "note": note,
            },
            at,
        )
        tx.resolve_anomaly(
            record.anomaly_id, status, at.isoformat(timespec="microseconds"), note, entry.seq
        )
    rebills = rebill_touched(store, [(record.meter_id, record.interval_end, record.interval_end)])
    resolved = store.get_anomaly(record.anomaly_id)
    assert resolved is not None
    return resolved, rebills


def release_anomaly(
    store: Store, anomaly_id: int, *, note: str | None = None, now: datetime | None = None
) -> tuple[AnomalyRecord, list[Rebill]]:
    """Accept the flagged value as it is: the interval goes back into the billing view."""
    record = _open(store, anomaly_id)
    return _resolve(
        store, record, "released", {"value": record.value}, note, now or datetime.now(UTC)
    )


def edit_anomaly(
    store: Store,
    anomaly_id: int,
    *,
    value: str,
    unit: str = "kWh",
    note: str | None = None,
    now: datetime | None = None,
) -> tuple[AnomalyRecord, list[Rebill]]:
    """Replace the flagged value by a manual edit (quality ``edited``, which outranks every
    other value): the edit goes in as its own batch through the ingest and is an entry on
    the audit chain, with the anomaly's resolution. (Were the process stopped between the
    two, the same edit again stores nothing twice and closes the finding.)"""
    record = _open(store, anomaly_id)
    try:
        parsed = Unit(unit)
    except ValueError:
        raise InputError(f"unknown unit {unit!r}") from None
    milli_from_text(value, parsed)  # a bad value fails here, before anything is written
    seconds = _interval_seconds(store, record)
    line = (
        "meter_id,channel,interval_end,interval_seconds,value,unit,quality\n"
        f"{record.meter_id},{record.channel},{iso_utc(record.interval_end)},{seconds},"
        f"{value},{parsed.value},{Quality.EDITED.to_text()}\n"
    )
    Ingestor(store, now=now, vee=False).ingest_stream(
        io.BytesIO(line.encode()),
        fmt="csv",
        source=f"edit:anomaly {anomaly_id}",
        options=IngestOptions(fmt="csv"),
    )
    change = {"old_value": record.value, "new_value": f"{value} {parsed.value}"}
    return _resolve(store, record, "edited", change, note, now or datetime.now(UTC))


def _interval_seconds(store: Store, record: AnomalyRecord) -> int:
    rows = store.readings(
        record.meter_id, record.interval_end - 1, record.interval_end, record.channel
    )
    if rows.height:
        return int(rows["interval_seconds"][0])
    nearby = store.readings(
        record.meter_id, record.interval_end - 86_400, record.interval_end, record.channel
    )
    return int(nearby["interval_seconds"].mode()[0]) if nearby.height else 900


def replay_anomalies(
    store: Store,
    anomaly_ids: Sequence[int] | None = None,
    *,
    rule: str | None = None,
    meter_id: str | None = None,
    ruleset: RuleSet | None = None,
) -> tuple[VeeOutcome, list[tuple[int, str]]]:
    """After a fix (a rule or meter class changed, data corrected), run the rules again over
    the local days of the open anomalies chosen; those no longer raised are cleared.
    Returns the pass and each anomaly's status after it."""
    if anomaly_ids:
        chosen = [a for a in (store.get_anomaly(i) for i in anomaly_ids) if a is not None]
        if len(chosen) < len(anomaly_ids):
            known = {a.anomaly_id for a in chosen}
            raise NotFoundError(f"no anomaly {sorted(set(anomaly_ids) - known)}")
    else:
        chosen = store.list_anomalies(meter_id=meter_id, rule=rule, status="open")
    outcome = VeeOutcome()
    for meter in sorted({a.meter_id for a in chosen}):
        ends = [a.interval_end for a in chosen if a.meter_id == meter]
        day = int(timedelta(days=1).total_seconds())
        outcome.add(
            check_range(
                store,
                meter_id=meter,
                start=min(ends) - day,
                end=max(ends) + day,
                ruleset=ruleset,
            )
        )
    after = [(a.anomaly_id, _status(store, a.anomaly_id)) for a in chosen]
    return outcome, after


def _status(store: Store, anomaly_id: int) -> str:
    record = store.get_anomaly(anomaly_id)
    return record.status if record is not None else "missing"
