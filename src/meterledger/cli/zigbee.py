"""``meterledger zigbee collect``: read Zigbee Smart Energy meters behind a gateway, exactly once.

The composition root of the Zigbee collector: :func:`meterledger.collect.zigbee.collect_meters`
reads each meter's GetProfile buffer back to the last stored interval, and the readings
go through the same :class:`~meterledger.cli.collect.StoreLedger` (ingest: validation,
idempotency keys, quarantine, audit) as the DLMS collector's, source ``zigbee``; then the
VEE rules run over the new batches.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from meterledger.cli.collect import StoreLedger
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
from meterledger.cli.feeds import BreakerRecorder, refuse_if_paused, save_breakers
from meterledger.cli.vee import print_outcome
from meterledger.collect.breaker import BreakerBoard, BreakerReading, BreakerSettings
from meterledger.collect.zigbee import (
    SOURCE,
    ZigbeeMeterRef,
    ZigbeeResult,
    collect_meters,
    parse_eui64,
)
from meterledger.core.ids import is_valid_meter_id
from meterledger.ingest.pipeline import Ingestor

__all__ = ["app", "collect", "parse_meters"]

ZIGBEE_FEED = "zigbee"  # the feed `meterledger pause zigbee` stops

app = typer.Typer(help="Zigbee Smart Energy meters behind a gateway.", no_args_is_help=True)


def parse_meters(specs: list[str]) -> list[ZigbeeMeterRef]:
    """``EUI64=METER_ID`` options as meter references (exit 2 on a malformed one)."""
    meters: list[ZigbeeMeterRef] = []
    for spec in specs:
        eui, sep, meter_id = spec.partition("=")
        try:
            eui64 = parse_eui64(eui)
        except ValueError as exc:
            raise fail(f"--meter {spec!r}: {exc}") from None
        if not sep or not is_valid_meter_id(meter_id):
            raise fail(f"--meter {spec!r}: give EUI64=METER_ID")
        meters.append(ZigbeeMeterRef(eui64, meter_id))
    if len({m.eui64 for m in meters}) != len(meters):
        raise fail("an EUI64 is given twice")
    return meters


def _table(results: tuple[ZigbeeResult, ...]) -> Table:
    table = Table("meter", "eui64", "result", "intervals", "gaps", "requests", "message")
    for r in results:
        table.add_row(
            r.meter_id,
            r.eui64,
            "ok" if r.ok else f"[red]{r.code}[/]",
            str(r.intervals),
            str(r.gaps),
            str(r.requests),
            r.message,
        )
    return table


def _breaker(reading: BreakerReading) -> dict[str, object]:
    return {
        "name": reading.name,
        "state": reading.state.value,
        "failure_rate": reading.failure_rate,
        "calls_in_window": reading.calls_in_window,
        "opened": reading.opened,
    }


@app.command("collect")
@handle_errors
def collect(
    meter: Annotated[
        list[str],
        typer.Option("--meter", help="EUI64=METER_ID (hex EUI64; repeat for each meter)."),
    ],
    host: Annotated[str, typer.Option("--host", help="The gateway's host.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The gateway's TCP port.")] = 7702,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for each answer.")
    ] = 5.0,
    periods: Annotated[
        int, typer.Option("--periods", min=1, max=255, help="Intervals asked per GetProfile.")
    ] = 24,
    breaker_threshold: Annotated[
        int, typer.Option("--breaker-threshold", min=1, help="Timeouts in a row that open it.")
    ] = 5,
    breaker_failure_rate: Annotated[
        float,
        typer.Option("--breaker-failure-rate", help="Failure share of the window that opens it."),
    ] = 0.15,
    breaker_min_calls: Annotated[
        int | None,
        typer.Option("--breaker-min-calls", help="Calls the window needs first (default 10)."),
    ] = None,
    breaker_window: Annotated[
        float, typer.Option("--breaker-window", help="Seconds of calls the rate looks at.")
    ] = 60.0,
    breaker_cooldown: Annotated[
        float, typer.Option("--breaker-cooldown", help="Seconds open before a probe.")
    ] = 60.0,
    breaker_probes: Annotated[
        int, typer.Option("--breaker-probes", min=1, help="Probe calls that must succeed.")
    ] = 1,
    breaker_wait: Annotated[
        float | None,
        typer.Option(
            "--breaker-wait",
            help="Seconds a meter waits for an open circuit, then E03 "
            "(default: a cool-down and a timeout).",
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Meters asked at once per gateway.")
    ] = 8,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Read each meter's profile buffer back to the last stored interval, into the store.

    Readings go through ingest (source zigbee), so a repeated run has no second effect;
    invalid intervals are gaps, which the VEE rules then estimate. Exit 1 when any meter
    failed (E04: it did not answer in time)."""
    meters = parse_meters(meter)
    store = open_db(db)
    refuse_if_paused(store, ZIGBEE_FEED)
    ledger = StoreLedger(store, now=lambda: datetime.now(UTC), source=SOURCE)
    try:
        settings = BreakerSettings(
            threshold=breaker_threshold,
            cooldown=breaker_cooldown,
            window=breaker_window,
            failure_rate=breaker_failure_rate,
            min_calls=breaker_min_calls,
            probes=breaker_probes,
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    breakers = BreakerBoard.of(settings, feed=ZIGBEE_FEED, listener=BreakerRecorder(store))
    try:
        results = asyncio.run(
            collect_meters(
                host,
                port,
                meters,
                ledger,
                timeout=timeout,
                periods=periods,
                concurrency=concurrency,
                breakers=breakers,
                breaker_wait=breaker_wait,
            )
        )
    finally:
        save_breakers(store, breakers.readings())  # for `meterledger status`
    with console.status("running the VEE rules…"):
        checked = Ingestor(store).check_pending()
    failed = [r for r in results if not r.ok]
    accepted = sum(r.handoff.accepted for r in results)
    duplicates = sum(r.handoff.duplicates for r in results)
    if json_out:
        emit_json(
            {
                "results": [r.to_dict() for r in results],
                "summary": {
                    "meters": len(results),
                    "ok": len(results) - len(failed),
                    "failed": len(failed),
                    "accepted": accepted,
                    "duplicates": duplicates,
                },
                "vee": checked.as_dict(),
                "breakers": [_breaker(r) for r in breakers.readings()],
            }
        )
    else:
        out.print(_table(results))
        console.print(
            f"{len(results) - len(failed)} read, {len(failed)} failed; "
            f"ingest accepted {accepted}, duplicates {duplicates}"
        )
        print_outcome(checked)
    if failed:
        raise typer.Exit(1)
