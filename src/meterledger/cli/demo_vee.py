"""The demo's VEE steps: the rules over the file drops, the injected faults matched with the
findings, and after billing a late actual replacing estimates and a manual edit of a held
spike, each leading to a rebill.
"""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

from rich.table import Table

from meterledger.cli.common import out
from meterledger.cli.vee_service import edit_anomaly, ingest_checked
from meterledger.core.reading import Quality
from meterledger.core.time import iso_utc, parse_instant
from meterledger.ingest.pipeline import Ingestor
from meterledger.simulate.fleet import Delivery
from meterledger.store import Store

__all__ = ["after_billing", "match_faults", "render_vee", "vee_pass"]

_METHOD = {
    "linear": Quality.EST_LINEAR,
    "like-day": Quality.EST_LIKE_DAY,
    "register": Quality.EST_REGISTER,
}


def vee_pass(store: Store) -> dict[str, Any]:
    """Run the rules over everything not yet checked, estimating gaps on the way."""
    return Ingestor(store).check_pending().as_dict()


def _epoch(text: str | int) -> int:
    return text if isinstance(text, int) else int(parse_instant(str(text)).timestamp())


def match_faults(store: Store, delivery: Delivery) -> list[dict[str, Any]]:
    """Each injected VEE fault with whether its rule found it and, for a gap, whether every
    interval of it now carries an estimate by the expected method."""
    found: dict[tuple[str, str, str], list[int]] = {}
    for a in store.list_anomalies(status=None):
        found.setdefault((a.meter_id, a.channel, a.rule), []).append(a.interval_end)
    rows = []
    for item in delivery.vee_expected():
        meter, channel, rule = str(item["meter_id"]), str(item["channel"]), str(item["rule"])
        lo, hi = _epoch(item["first_interval_end"]), _epoch(item["last_interval_end"])
        hit = any(lo <= end <= hi for end in found.get((meter, channel, rule), []))
        method = str(item.get("estimate") or "")
        estimated = ""
        if method:
            stored = store.readings(meter, lo - 1, hi, channel)
            flag = int(_METHOD[method])
            ok = stored.height == int(item["intervals"]) and all(
                int(q) & flag for q in stored["quality"]
            )
            estimated = method if ok else "no"
        rows.append(
            {
                "fault": item["fault"],
                "meter_id": meter,
                "rule": rule,
                "first_interval_end": iso_utc(lo),
                "intervals": item["intervals"],
                "found": hit,
                "estimate_expected": method,
                "estimated": estimated,
            }
        )
    return rows


def faults_matched(rows: list[dict[str, Any]]) -> bool:
    return all(r["found"] and r["estimated"] == r["estimate_expected"] for r in rows)


def after_billing(store: Store, delivery: Delivery) -> dict[str, Any]:
    """Two things a billing team sees after the bills are out: late actuals for a gap that
    was billed on estimates, and a held spike corrected by hand. Each changes a billed
    cycle, so each rebills it."""
    steps: dict[str, Any] = {"late_actuals": None, "edit": None}
    gap = next((v for v in delivery.vee_expected() if v.get("estimate") == "like-day"), None)
    if gap is not None:
        meter, channel = str(gap["meter_id"]), str(gap["channel"])
        lo, hi = _epoch(gap["first_interval_end"]), _epoch(gap["last_interval_end"])
        stored = store.readings(meter, lo - 1, hi, channel)
        lines = ["meter_id,channel,interval_end,interval_seconds,value,unit,quality"]
        for end, seconds, value in stored.select(
            "interval_end", "interval_seconds", "value"
        ).iter_rows():
            actual = int(value) + 50_000  # the meter's own values, 50 Wh above the estimate
            lines.append(
                f"{meter},{channel},{iso_utc(int(end))},{int(seconds)},"
                f"{Decimal(actual) / 1000:.3f},Wh,actual"
            )
        done = ingest_checked(
            store,
            io.BytesIO(("\n".join(lines) + "\n").encode()),
            fmt="csv",
            source="demo:late-actuals",
        )
        steps["late_actuals"] = {
            "meter_id": meter,
            "intervals": stored.height,
            "superseded_estimates": done.result.counts.superseded,
            "rebills": [r.as_dict() for r in done.rebills],
        }
    spike = next((a for a in store.list_anomalies(rule="SPIKE") if a.severity == "fail"), None)
    if spike is not None:
        record, rebills = edit_anomaly(
            store,
            spike.anomaly_id,
            value="0.450",
            unit="kWh",
            note="demo: field check found a stuck relay; value read from the meter's display",
        )
        steps["edit"] = {
            "anomaly_id": record.anomaly_id,
            "meter_id": record.meter_id,
            "interval_end": iso_utc(record.interval_end),
            "old_value_milli": record.value,
            "new_value": "0.450 kWh",
            "rebills": [r.as_dict() for r in rebills],
        }
    return steps


def render_vee(vee: dict[str, Any], faults: list[dict[str, Any]]) -> None:
    out.print(
        f"VEE: {vee['intervals']:,} intervals checked, {vee['findings']} findings, "
        f"{vee['held']} intervals held out of billing, {vee['estimated']} estimated "
        f"({vee['seconds']} s)"
    )
    table = Table("fault injected", "meter", "rule", "found", "estimated", title="VEE findings")
    for r in faults:
        table.add_row(
            str(r["fault"]),
            str(r["meter_id"]),
            str(r["rule"]),
            "[green]yes[/]" if r["found"] else "[red]no[/]",
            str(r["estimated"] or ""),
        )
    out.print(table)
    by_rule = ", ".join(f"{k} {v}" for k, v in sorted(vee["by_rule"].items()))
    out.print(f"findings by rule: {by_rule}")


def render_after(steps: dict[str, Any]) -> None:
    late = steps.get("late_actuals")
    if late:
        out.print(
            f"late actuals for {late['meter_id']}: {late['superseded_estimates']} estimates "
            f"superseded; "
            + (
                ", ".join(
                    f"{r['account']} {r['period']} rebilled (cancel {r['cancel']}, rebill "
                    f"{r['rebill']})"
                    for r in late["rebills"]
                )
                or "no bill changed"
            )
        )
    edit = steps.get("edit")
    if edit:
        out.print(
            f"anomaly {edit['anomaly_id']} (held spike on {edit['meter_id']} at "
            f"{edit['interval_end']}) edited to {edit['new_value']}; "
            + (
                ", ".join(f"{r['account']} {r['period']} rebilled" for r in edit["rebills"])
                or "no bill changed"
            )
        )
