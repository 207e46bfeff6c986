"""``meterledger simulate``: meters that speak the real protocols, for demos and tests.

``simulate dlms`` serves N simulated DLMS/COSEM meters on one TCP port (see
docs/simulator.md): meter ``i`` is the logical device ``1 + i`` (wrapper wPort or upper
HDLC address), its keys follow from the seed, and it runs until Ctrl-C.

``simulate zigbee`` serves N simulated Zigbee Smart Energy meters behind one gateway on
TCP, raw ZCL frames in a length/EUI64/endpoint/cluster envelope, until Ctrl-C; with
``--mqtt`` the same gateway answers on MQTT topics instead (docs/zigbee.md).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import aiomqtt
import typer
import yaml

from meterledger.cli.common import JsonOption, console, emit_json, fail, handle_errors, out
from meterledger.codec.zigbee import ProfileIntervalPeriod
from meterledger.core.errors import ConfigError
from meterledger.simulate.dlms_server import (
    MANAGEMENT_CLIENT,
    PUBLIC_CLIENT,
    DlmsSimulator,
    Framing,
    MeterBehaviour,
    SecurityMode,
    SimulatorConfig,
    logical_address,
)
from meterledger.simulate.zigbee_gateway import (
    METER_ENDPOINT,
    GatewayConfig,
    ZigbeeGateway,
    eui64_of,
)
from meterledger.simulate.zigbee_mqtt_gateway import DEFAULT_ROOT, ZigbeeMqttGateway

__all__ = ["app", "dlms", "fleet_file", "zigbee"]

app = typer.Typer(help="Simulated meters that speak the real protocols.", no_args_is_help=True)

_AUTH = {
    SecurityMode.NONE: ("none", "none"),
    SecurityMode.LLS: ("low", "none"),
    SecurityMode.HLS: ("hls-gmac", "none"),
    SecurityMode.HLS_AUTH_ENC: ("hls-gmac", "auth-enc"),
}


def _delay(text: str) -> tuple[float, float]:
    """``"50-500"`` or ``"200"`` milliseconds → seconds."""
    try:
        low, _, high = text.partition("-")
        values = (float(low), float(high or low))
    except ValueError:
        raise ConfigError(f"--delay-ms is A-B or A in milliseconds, not {text!r}") from None
    return values[0] / 1000, values[1] / 1000


def _indices(text: str | None, meters: int, option: str) -> set[int]:
    """``"0,5,9"`` → meter indices (0-based)."""
    if not text:
        return set()
    try:
        found = {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        raise ConfigError(f"{option} is a comma-separated list of meter indices") from None
    if any(not 0 <= index < meters for index in found):
        raise ConfigError(f"{option} names a meter index outside 0..{meters - 1}")
    return found


def fleet_file(sim: DlmsSimulator, host: str) -> dict[str, Any]:
    """A collector fleet file (collect/config.py format) that reads every simulated meter
    with the keys the simulator documents (a wrong-key meter holds others)."""
    config = sim.config
    auth, security = _AUTH[config.security]
    client = PUBLIC_CLIENT if config.security is SecurityMode.NONE else MANAGEMENT_CLIENT
    defaults: dict[str, Any] = {
        "host": host,
        "port": sim.port,
        "framing": config.framing.value,
        "client_sap": client,
        "auth": auth,
        "security": security,
        "timezone": config.tz,
    }
    if config.framing is Framing.HDLC:
        defaults.update({"physical": 17, "address_size": 4})
    meters = []
    for index in range(config.meters):
        entry: dict[str, Any] = {
            "meter_id": f"MTR-{index + 1:05d}",
            "server_sap": logical_address(index),
        }
        keys = sim.keys(index)
        if auth == "low":
            entry["password"] = "text:" + keys.password.decode("ascii")
        if auth == "hls-gmac" or security == "auth-enc":
            entry["ek"] = "hex:" + keys.ek.hex().upper()
            entry["ak"] = "hex:" + keys.ak.hex().upper()
        meters.append(entry)
    return {"defaults": defaults, "meters": meters}


def _summary(sim: DlmsSimulator, host: str) -> dict[str, Any]:
    config = sim.config
    return {
        "host": host,
        "port": sim.port,
        "framing": config.framing.value,
        "meters": config.meters,
        "addressing": "meter i (0-based) is logical device 1 + i: "
        + ("the upper HDLC address (lower 17)" if config.framing is Framing.HDLC else "wPort"),
        "security": config.security.value,
        "clients": {
            str(PUBLIC_CLIENT): "public, no authentication",
            str(MANAGEMENT_CLIENT): {
                SecurityMode.NONE: "management, no authentication",
                SecurityMode.LLS: "management, LLS password",
                SecurityMode.HLS: "management, HLS-GMAC",
                SecurityMode.HLS_AUTH_ENC: "management, HLS-GMAC + suite 0 auth-enc",
            }[config.security],
        },
        "seed": config.seed,
        "keys": "key = HMAC-SHA256(b'meterledger-simulator', f'{seed}/{i}/0/{label}')[:16], "
        "label ek|ak|kek|bek; password = hex of label lls, first 16 digits; "
        "system title = b'MLS' + i as 5 octets",
        "profile_start": sim.start.isoformat(),
        "profile_days": sim.profile_days,
    }


async def _serve(
    config: SimulatorConfig, json_out: bool, fleet_path: Path | None, duration: float | None
) -> None:
    async with DlmsSimulator(config) as sim:
        summary = _summary(sim, config.host)
        if fleet_path is not None:
            text = yaml.safe_dump(fleet_file(sim, config.host), sort_keys=False)
            fleet_path.write_text(text, "utf-8")
            summary["fleet_file"] = str(fleet_path)
        if json_out:
            emit_json(summary)
        else:
            out.print(
                f"DLMS simulator: {config.meters} meters on {config.host}:{sim.port} "
                f"({summary['addressing']})"
            )
            for sap, role in summary["clients"].items():
                out.print(f"  client SAP {sap}: {role}")
            out.print(f"  keys: {summary['keys']} (seed {config.seed})")
            out.print(
                f"  profile: {sim.profile_days} days of 15-minute data from "
                f"{summary['profile_start']}"
            )
            if fleet_path is not None:
                out.print(f"  collector fleet file: {fleet_path}")
            console.print("Ctrl-C to stop")
        if duration is None:
            await sim.run_forever()
        else:
            await asyncio.sleep(duration)


@app.command("dlms")
@handle_errors
def dlms(
    port: Annotated[int, typer.Option(help="TCP port (0: any free one).")] = 4059,
    meters: Annotated[int, typer.Option(help="How many meters to serve.")] = 10,
    hdlc: Annotated[bool, typer.Option("--hdlc", help="HDLC over TCP, not the wrapper.")] = False,
    security: Annotated[
        bool, typer.Option("--security", help="Management client: HLS-GMAC + suite 0.")
    ] = False,
    mode: Annotated[
        SecurityMode | None,
        typer.Option(help="Management client security (overrides --security)."),
    ] = None,
    days: Annotated[int, typer.Option(help="Whole days of profile before today.")] = 1,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    seed: Annotated[int, typer.Option(help="Seed of the data and the keys.")] = 1,
    delay_ms: Annotated[
        str, typer.Option("--delay-ms", help="Response delay in ms: A-B (uniform) or A.")
    ] = "0",
    drop_rate: Annotated[float, typer.Option(help="Chance that a response is lost.")] = 0.0,
    drift_s_per_day: Annotated[
        float, typer.Option("--drift-s-per-day", help="Clock drift of every meter, s/day.")
    ] = 0.0,
    silent: Annotated[
        str | None, typer.Option(help="Meter indices that never answer, e.g. 3,7.")
    ] = None,
    wrong_keys: Annotated[
        str | None, typer.Option(help="Meter indices with keys the head-end lacks.")
    ] = None,
    tz: Annotated[str, typer.Option(help="The meters' time zone.")] = "America/New_York",
    fleet: Annotated[
        Path | None, typer.Option("--fleet-file", help="Write a collector fleet file here.")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Serve simulated DLMS/COSEM meters on one TCP port until Ctrl-C."""
    behaviour = MeterBehaviour(
        delay=_delay(delay_ms), drop_rate=drop_rate, clock_drift_s_per_day=drift_s_per_day
    )
    overrides: dict[int, MeterBehaviour] = {}
    for index in _indices(silent, meters, "--silent"):
        overrides[index] = MeterBehaviour(
            delay=behaviour.delay, clock_drift_s_per_day=drift_s_per_day, silent=True
        )
    for index in _indices(wrong_keys, meters, "--wrong-keys"):
        base = overrides.get(index, behaviour)
        overrides[index] = MeterBehaviour(
            delay=base.delay,
            drop_rate=base.drop_rate,
            silent=base.silent,
            clock_drift_s_per_day=drift_s_per_day,
            wrong_keys=True,
        )
    chosen = mode or (SecurityMode.HLS_AUTH_ENC if security else SecurityMode.NONE)
    config = SimulatorConfig(
        meters=meters,
        seed=seed,
        host=host,
        port=port,
        framing=Framing.HDLC if hdlc else Framing.WRAPPER,
        security=chosen,
        days=days,
        tz=tz,
        behaviour=behaviour,
        overrides=overrides,
    )
    try:
        asyncio.run(_serve(config, json_out, fleet, duration))
    except KeyboardInterrupt:
        console.print("simulator stopped")
        raise typer.Exit(130) from None
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc}") from exc


_PERIODS = {
    period.seconds // 60: period for period in ProfileIntervalPeriod if period.seconds >= 60
}
_PERIODS.pop(7, None)  # 7.5 minutes does not round to a whole minute


def _zigbee_summary(config: GatewayConfig, host: str, port: int | None) -> dict[str, Any]:
    where = {} if port is None else {"host": host, "port": port}
    return {
        **where,
        "meters": config.meters,
        "framing": "2-byte big-endian length, 8-byte EUI64 (big-endian), 1-byte endpoint, "
        "2-byte cluster id (big-endian), then the ZCL frame",
        "endpoint": METER_ENDPOINT,
        "cluster": "0x0702",
        "period_minutes": ProfileIntervalPeriod(config.period).seconds // 60,
        "buffer": config.buffer,
        "days": config.days,
        "seed": config.seed,
        "dark": sorted(config.dark),
        "eui64": {f"MTR-{i + 1:05d}": eui64_of(i).hex() for i in range(config.meters)},
    }


def _print_zigbee(
    summary: dict[str, Any], config: GatewayConfig, where: str, topics: str | None = None
) -> None:
    out.print(
        f"Zigbee gateway: {config.meters} meters on {where} "
        f"(endpoint {METER_ENDPOINT}, cluster 0x0702)"
    )
    out.print(f"  framing: {summary['framing']}")
    if topics is not None:
        out.print(f"  topics: {topics}")
    out.print(
        f"  profile: {summary['period_minutes']}-minute intervals, buffer of "
        f"{config.buffer}, {config.days} days of history"
    )
    out.print(f"  EUI64 of meter i: {eui64_of(0).hex()} + i (seed {config.seed})")
    if config.dark:
        out.print(f"  dark meters: {', '.join(map(str, sorted(config.dark)))}")
    console.print("Ctrl-C to stop")


async def _serve_zigbee(config: GatewayConfig, json_out: bool, duration: float | None) -> None:
    async with ZigbeeGateway(config) as gateway:
        for index in range(config.meters):
            gateway.meter(index)  # fill every buffer with its history before serving
        summary = _zigbee_summary(config, config.host, gateway.port)
        if json_out:
            emit_json(summary)
        else:
            _print_zigbee(summary, config, f"{config.host}:{gateway.port}")
        if duration is None:
            await gateway.run_forever()
        else:
            await asyncio.sleep(duration)


async def _serve_zigbee_mqtt(
    gateway: ZigbeeMqttGateway, json_out: bool, duration: float | None
) -> None:
    config, gateway_id, root = gateway.config, gateway.gateway_id, gateway.root
    broker = (gateway.host, gateway.port)
    for index in range(config.meters):
        gateway.meter(index)  # fill every buffer with its history before serving
    async with gateway:
        summary = _zigbee_summary(config, config.host, None)
        summary.update(
            transport="mqtt",
            broker=f"{broker[0]}:{broker[1]}",
            gateway_id=gateway_id,
            request_topic=f"{root}/{gateway_id}/req/{{eui64}}",
            response_topic=f"{root}/{gateway_id}/rsp/{{eui64}}",
            framing="8-byte EUI64 (big-endian), 1-byte endpoint, 2-byte cluster id "
            "(big-endian), then the ZCL frame; QoS 1",
        )
        if json_out:
            emit_json(summary)
        else:
            topics = f"{summary['request_topic']} -> {summary['response_topic']}"
            _print_zigbee(summary, config, f"MQTT {summary['broker']} as {gateway_id}", topics)
        if duration is None:
            await gateway.run_forever()
        else:
            await asyncio.sleep(duration)


@app.command("zigbee")
@handle_errors
def zigbee(
    port: Annotated[int, typer.Option(help="TCP port (0: any free one).")] = 7702,
    meters: Annotated[int, typer.Option(help="How many meters behind the gateway.")] = 10,
    period: Annotated[
        int, typer.Option(help="Profile interval in minutes: 1, 2 (2.5), 5, 10, 15, 30, 60, 1440.")
    ] = 15,
    buffer: Annotated[int, typer.Option(help="Profile buffer size in periods.")] = 96,
    days: Annotated[int, typer.Option(help="Days of history before now in each buffer.")] = 1,
    dark: Annotated[
        list[int] | None, typer.Option(help="A meter index that never answers (repeatable).")
    ] = None,
    per_response: Annotated[
        int, typer.Option(help="Most intervals in one GetProfileResponse.")
    ] = 24,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    seed: Annotated[int, typer.Option(help="Seed of the data.")] = 1,
    tz: Annotated[
        str, typer.Option(help="The meters' time zone (load shape).")
    ] = "America/New_York",
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")
    ] = None,
    mqtt: Annotated[
        bool, typer.Option("--mqtt", help="Answer on MQTT topics instead of TCP.")
    ] = False,
    mqtt_host: Annotated[str, typer.Option("--mqtt-host", help="The MQTT broker's host.")] = (
        "127.0.0.1"
    ),
    mqtt_port: Annotated[int, typer.Option("--mqtt-port", help="The MQTT broker's port.")] = 1883,
    gateway_id: Annotated[
        str, typer.Option("--gateway-id", help="The gateway's id in the MQTT topics.")
    ] = "gw1",
    mqtt_root: Annotated[
        str, typer.Option("--mqtt-root", help="The MQTT topics' root.")
    ] = DEFAULT_ROOT,
    json_out: JsonOption = False,
) -> None:
    """Serve simulated Zigbee Smart Energy meters behind one gateway, on TCP or (--mqtt)
    on MQTT topics, until Ctrl-C."""
    chosen = _PERIODS.get(period)
    if chosen is None:
        raise ConfigError(f"--period is one of {sorted(_PERIODS)} minutes, not {period}")
    config = GatewayConfig(
        meters=meters,
        seed=seed,
        host=host,
        port=port,
        period=chosen,
        buffer=buffer,
        days=days,
        max_periods_per_response=per_response,
        tz=tz,
        dark=frozenset(_indices(",".join(map(str, dark or [])), meters, "--dark")),
    )
    try:
        if mqtt:
            try:
                gateway = ZigbeeMqttGateway(
                    config, host=mqtt_host, port=mqtt_port, gateway_id=gateway_id, root=mqtt_root
                )
            except ValueError as exc:
                raise fail(str(exc)) from exc
            try:
                asyncio.run(_serve_zigbee_mqtt(gateway, json_out, duration))
            except aiomqtt.MqttError as exc:
                raise fail(f"MQTT broker {mqtt_host}:{mqtt_port}: {exc}") from exc
        else:
            asyncio.run(_serve_zigbee(config, json_out, duration))
    except KeyboardInterrupt:
        console.print("gateway stopped")
        raise typer.Exit(130) from None
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc}") from exc
