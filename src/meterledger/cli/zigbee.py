"""``meterledger zigbee collect``: read Zigbee Smart Energy meters behind a gateway, exactly once.

The composition root of the Zigbee collector: :func:`meterledger.collect.zigbee.collect_meters`
reads each meter's GetProfile buffer back to the last stored interval, and the readings
go through the same :class:`~meterledger.cli.collect.StoreLedger` (ingest: validation,
idempotency keys, quarantine, audit) as the DLMS collector's, source ``zigbee``; then the
VEE rules run over the new batches.

The gateways come from ``--meter`` (one gateway: ``--host``/``--port`` over TCP, or
``--gateway-id`` behind the MQTT broker ``--mqtt-host``/``--mqtt-port``) or from a fleet
file (``--fleet``, :mod:`meterledger.collect.zigbee_config`); all gateways are read at
once, each through its own circuit breaker of one board.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

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
from meterledger.collect.breaker import BreakerBoard, BreakerReading
from meterledger.collect.zigbee import (
    DEFAULT_ROOT,
    SOURCE,
    MqttTransport,
    TcpTransport,
    ZigbeeMeterRef,
    ZigbeeResult,
    collect_meters,
    parse_eui64,
)
from meterledger.collect.zigbee_config import (
    ZigbeeFleet,
    ZigbeeFleetOptions,
    ZigbeeGatewaySpec,
    load_zigbee_fleet,
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


def _table(results: list[tuple[str, ZigbeeResult]]) -> Table:
    table = Table("gateway", "meter", "eui64", "result", "intervals", "gaps", "requests", "message")
    for gateway, r in results:
        table.add_row(
            gateway,
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


def _resolve(options: ZigbeeFleetOptions, given: dict[str, Any]) -> ZigbeeFleetOptions:
    """The fleet file's options with the command-line options given replacing them."""
    knobs = {
        "threshold": given.pop("breaker_threshold"),
        "failure_rate": given.pop("breaker_failure_rate"),
        "min_calls": given.pop("breaker_min_calls"),
        "window": given.pop("breaker_window"),
        "cooldown": given.pop("breaker_cooldown"),
        "probes": given.pop("breaker_probes"),
    }
    try:
        breaker = replace(options.breaker, **{k: v for k, v in knobs.items() if v is not None})
    except ValueError as exc:
        raise fail(str(exc)) from None
    chosen = {k: v for k, v in given.items() if v is not None}
    if chosen.get("timeout", 1.0) <= 0:
        raise fail(f"--timeout is a positive number of seconds, not {chosen['timeout']}")
    return replace(options, breaker=breaker, **chosen)


def _fleet(
    meter: list[str] | None,
    fleet: Path | None,
    host: str,
    port: int,
    gateway_id: str | None,
    mqtt_host: str,
    mqtt_port: int,
    mqtt_root: str,
) -> ZigbeeFleet:
    if fleet is not None:
        if meter:
            raise fail("give --meter or --fleet, not both")
        return load_zigbee_fleet(fleet)
    if not meter:
        raise fail("give the meters: --meter EUI64=METER_ID (repeatable) or --fleet FILE")
    transport: TcpTransport | MqttTransport = TcpTransport(host, port)
    if gateway_id is not None:
        try:
            transport = MqttTransport(mqtt_host, mqtt_port, gateway_id, root=mqtt_root)
        except ValueError as exc:
            raise fail(str(exc)) from None
    return ZigbeeFleet((ZigbeeGatewaySpec(transport, tuple(parse_meters(meter))),))


async def _collect_all(
    fleet: ZigbeeFleet, options: ZigbeeFleetOptions, ledger: StoreLedger, breakers: BreakerBoard
) -> list[tuple[str, ZigbeeResult]]:
    async def one(gateway: ZigbeeGatewaySpec) -> list[tuple[str, ZigbeeResult]]:
        done = await collect_meters(
            gateway.transport.host,
            gateway.transport.port,
            gateway.meters,
            ledger,
            timeout=options.timeout,
            periods=options.periods,
            concurrency=options.concurrency,
            transport=gateway.transport,
            breakers=breakers,
            breaker_wait=options.breaker_wait,
            attempts=options.attempts,
        )
        return [(gateway.key, r) for r in done]

    per_gateway = await asyncio.gather(*(one(g) for g in fleet.gateways))
    return [item for results in per_gateway for item in results]


@app.command("collect")
@handle_errors
def collect(
    meter: Annotated[
        list[str] | None,
        typer.Option("--meter", help="EUI64=METER_ID (hex EUI64; repeat for each meter)."),
    ] = None,
    fleet: Annotated[
        Path | None,
        typer.Option("--fleet", help="A YAML fleet file of gateways and meters (not --meter)."),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="The TCP gateway's host.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The TCP gateway's port.")] = 7702,
    gateway_id: Annotated[
        str | None,
        typer.Option("--gateway-id", help="Reach this gateway over MQTT instead of TCP."),
    ] = None,
    mqtt_host: Annotated[
        str, typer.Option("--mqtt-host", help="The MQTT broker's host.")
    ] = "127.0.0.1",
    mqtt_port: Annotated[int, typer.Option("--mqtt-port", help="The MQTT broker's port.")] = 1883,
    mqtt_root: Annotated[
        str, typer.Option("--mqtt-root", help="The gateway topics' root.")
    ] = DEFAULT_ROOT,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds to wait for each answer [5].")
    ] = None,
    periods: Annotated[
        int | None,
        typer.Option("--periods", min=1, max=255, help="Intervals asked per GetProfile [24]."),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", min=1, help="Meters asked at once per gateway [8]."),
    ] = None,
    attempts: Annotated[
        int | None,
        typer.Option(
            "--attempts",
            min=1,
            max=5,
            help="Reads of a meter that fails on the way (no answer, connection lost) [2].",
        ),
    ] = None,
    breaker_threshold: Annotated[
        int | None,
        typer.Option("--breaker-threshold", min=1, help="Timeouts in a row that open it [5]."),
    ] = None,
    breaker_failure_rate: Annotated[
        float | None,
        typer.Option(
            "--breaker-failure-rate", help="Failure share of the window that opens it [0.15]."
        ),
    ] = None,
    breaker_min_calls: Annotated[
        int | None,
        typer.Option("--breaker-min-calls", help="Calls the window needs first [10]."),
    ] = None,
    breaker_window: Annotated[
        float | None, typer.Option("--breaker-window", help="Seconds the rate looks at [60].")
    ] = None,
    breaker_cooldown: Annotated[
        float | None, typer.Option("--breaker-cooldown", help="Seconds open before a probe [60].")
    ] = None,
    breaker_probes: Annotated[
        int | None,
        typer.Option("--breaker-probes", min=1, help="Probe calls that must succeed [1]."),
    ] = None,
    breaker_wait: Annotated[
        float | None,
        typer.Option(
            "--breaker-wait",
            min=0,
            help="Seconds a meter waits for an open circuit, then E03 "
            "(default: one cool-down and one timeout).",
        ),
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Read each meter's profile buffer back to the last stored interval, into the store.

    Readings go through ingest (source zigbee), so a repeated run has no second effect;
    invalid intervals are gaps, which the VEE rules then estimate. Exit 1 when any meter
    failed (E04: it did not answer in time; E03: its gateway's circuit was open)."""
    chosen = _fleet(meter, fleet, host, port, gateway_id, mqtt_host, mqtt_port, mqtt_root)
    options = _resolve(
        chosen.options,
        {
            "timeout": timeout,
            "periods": periods,
            "concurrency": concurrency,
            "attempts": attempts,
            "breaker_wait": breaker_wait,
            "breaker_threshold": breaker_threshold,
            "breaker_failure_rate": breaker_failure_rate,
            "breaker_min_calls": breaker_min_calls,
            "breaker_window": breaker_window,
            "breaker_cooldown": breaker_cooldown,
            "breaker_probes": breaker_probes,
        },
    )
    store = open_db(db)
    refuse_if_paused(store, ZIGBEE_FEED)
    ledger = StoreLedger(store, now=lambda: datetime.now(UTC), source=SOURCE, feed=ZIGBEE_FEED)
    breakers = BreakerBoard.of(options.breaker, feed=ZIGBEE_FEED, listener=BreakerRecorder(store))
    try:
        results = asyncio.run(_collect_all(chosen, options, ledger, breakers))
    finally:
        save_breakers(store, breakers.readings())  # for `meterledger status`
    with console.status("running the VEE rules…"):
        checked = Ingestor(store).check_pending()
    failed = [r for _, r in results if not r.ok]
    accepted = sum(r.handoff.accepted for _, r in results)
    duplicates = sum(r.handoff.duplicates for _, r in results)
    if json_out:
        emit_json(
            {
                "results": [{**r.to_dict(), "gateway": g} for g, r in results],
                "summary": {
                    "gateways": len(chosen.gateways),
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
