"""The Zigbee fleet file: the gateways, how each is reached, the meters behind it, and the
collector's options (``meterledger zigbee collect --fleet FILE``).

Format (YAML)::

    options:                    # all optional; a command-line option overrides
      timeout: 5                # s for each answer
      periods: 24               # intervals asked per GetProfile (1..255)
      concurrency: 8            # meters asked at once per gateway
      attempts: 2               # reads of a meter that fails on the way (1..5)
      breaker_threshold: 5      # timeouts in a row that open a gateway's circuit
      breaker_failure_rate: 0.15
      breaker_min_calls: 10
      breaker_window: 60        # s
      breaker_cooldown: 60      # s
      breaker_probes: 1
      breaker_wait: 65          # s a meter waits for an open circuit, then E03
    gateways:
      - transport: tcp          # the default
        host: 10.0.0.7
        port: 7702
        meters:
          - {eui64: 024d4c5a00000000, meter_id: MTR-00001}
          - {eui64: "02:4D:4C:5A:00:00:00:01", meter_id: MTR-00002, endpoint: 1}
      - transport: mqtt         # host and port are the broker's
        host: broker.example
        port: 1883
        gateway_id: dcu-17
        root: meterledger/zigbee
        meters:
          - {eui64: 024d4c5a00000002, meter_id: MTR-00003}

Every error names the file and the path of the bad key (``fleet.yaml: gateways[1].meters[0]:
eui64: ...``). A meter id appears once in the whole file; an EUI64 once per gateway; two
gateways are never the same one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meterledger.collect.breaker import BreakerSettings
from meterledger.collect.zigbee import (
    DEFAULT_ROOT,
    METER_ENDPOINT,
    MqttTransport,
    TcpTransport,
    ZigbeeMeterRef,
    parse_eui64,
)
from meterledger.core.errors import ConfigError
from meterledger.core.ids import is_valid_meter_id

__all__ = [
    "TRANSPORTS",
    "ZigbeeFleet",
    "ZigbeeFleetOptions",
    "ZigbeeGatewaySpec",
    "load_zigbee_fleet",
    "parse_zigbee_fleet",
]

TRANSPORTS = ("tcp", "mqtt")
_DEFAULT_PORTS = {"tcp": 7702, "mqtt": 1883}
_ROOT_KEYS = {"options", "gateways"}
_METER_KEYS = {"eui64", "meter_id", "endpoint"}
_GATEWAY_KEYS = {
    "tcp": {"transport", "host", "port", "meters"},
    "mqtt": {"transport", "host", "port", "gateway_id", "root", "client_id", "meters"},
}
_BREAKER_KEYS = {
    "breaker_threshold": ("threshold", int),
    "breaker_failure_rate": ("failure_rate", float),
    "breaker_min_calls": ("min_calls", int),
    "breaker_window": ("window", float),
    "breaker_cooldown": ("cooldown", float),
    "breaker_probes": ("probes", int),
}
_OPTION_KEYS: dict[str, type] = {
    "timeout": float,
    "periods": int,
    "concurrency": int,
    "attempts": int,
    "breaker_wait": float,
    **{key: kind for key, (_, kind) in _BREAKER_KEYS.items()},
}


@dataclass(frozen=True, slots=True)
class ZigbeeFleetOptions:
    """The collector's options (a command-line option replaces the file's)."""

    timeout: float = 5.0
    periods: int = 24
    concurrency: int = 8
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    breaker_wait: float | None = None
    attempts: int = 2  # reads of a meter in all (collect.zigbee.READ_POLICY)


@dataclass(frozen=True, slots=True)
class ZigbeeGatewaySpec:
    """One gateway: how it is reached and the meters behind it."""

    transport: TcpTransport | MqttTransport
    meters: tuple[ZigbeeMeterRef, ...]

    @property
    def key(self) -> str:
        return self.transport.key


@dataclass(frozen=True, slots=True)
class ZigbeeFleet:
    gateways: tuple[ZigbeeGatewaySpec, ...]
    options: ZigbeeFleetOptions = ZigbeeFleetOptions()

    @property
    def meters(self) -> tuple[ZigbeeMeterRef, ...]:
        return tuple(m for g in self.gateways for m in g.meters)


def _mapping(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


def _unknown(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown} (allowed: {sorted(allowed)})")


def _number(value: object, kind: type, where: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    what = "an integer" if kind is int else "a number"
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {what}, got {value!r}") from None
    if kind is int and isinstance(value, float) and value != number:
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    return number


def _text(value: object, where: str) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
        raise ConfigError(f"{where}: expected text, got {value!r}")
    return str(value)


def _options(raw: object, where: str) -> ZigbeeFleetOptions:
    if raw is None:
        return ZigbeeFleetOptions()
    values = _mapping(raw, where)
    _unknown(values, set(_OPTION_KEYS), where)
    parsed = {k: _number(v, _OPTION_KEYS[k], f"{where}.{k}") for k, v in values.items()}
    timeout = parsed.get("timeout", 5.0)
    if timeout <= 0:
        raise ConfigError(f"{where}.timeout: a positive number of seconds, got {timeout}")
    periods = parsed.get("periods", 24)
    if not 1 <= periods <= 255:
        raise ConfigError(f"{where}.periods: 1..255, got {periods}")
    concurrency = parsed.get("concurrency", 8)
    if not 1 <= concurrency <= 10_000:
        raise ConfigError(f"{where}.concurrency: 1..10000, got {concurrency}")
    attempts = parsed.get("attempts", 2)
    if not 1 <= attempts <= 5:
        raise ConfigError(f"{where}.attempts: 1..5, got {attempts}")
    wait = parsed.get("breaker_wait")
    if wait is not None and wait < 0:
        raise ConfigError(f"{where}.breaker_wait: not negative, got {wait}")
    knobs = {_BREAKER_KEYS[k][0]: v for k, v in parsed.items() if k in _BREAKER_KEYS}
    try:
        breaker = BreakerSettings(**knobs)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return ZigbeeFleetOptions(timeout, periods, concurrency, breaker, wait, attempts)


def _meter(raw: object, where: str) -> ZigbeeMeterRef:
    values = _mapping(raw, where)
    _unknown(values, _METER_KEYS, where)
    for key in ("eui64", "meter_id"):
        if key not in values:
            raise ConfigError(f"{where}: {key} is required")
    try:
        eui64 = parse_eui64(_text(values["eui64"], f"{where}.eui64"))
    except ValueError as exc:
        raise ConfigError(f"{where}.eui64: {exc}") from None
    meter_id = _text(values["meter_id"], f"{where}.meter_id")
    if not is_valid_meter_id(meter_id):
        raise ConfigError(f"{where}.meter_id: malformed meter id {meter_id!r}")
    endpoint = _number(values.get("endpoint", METER_ENDPOINT), int, f"{where}.endpoint")
    if not 1 <= endpoint <= 240:
        raise ConfigError(f"{where}.endpoint: 1..240 (a Zigbee application endpoint)")
    return ZigbeeMeterRef(eui64, meter_id, endpoint)


def _gateway(raw: object, where: str) -> ZigbeeGatewaySpec:
    values = _mapping(raw, where)
    kind = values.get("transport", "tcp")
    if kind not in TRANSPORTS:
        raise ConfigError(f"{where}.transport: one of {', '.join(TRANSPORTS)}, got {kind!r}")
    _unknown(values, _GATEWAY_KEYS[kind], where)
    host = _text(values.get("host", "127.0.0.1"), f"{where}.host")
    port = _number(values.get("port", _DEFAULT_PORTS[kind]), int, f"{where}.port")
    if not 0 < port < 65536:
        raise ConfigError(f"{where}.port: {port} out of range")
    transport: TcpTransport | MqttTransport
    if kind == "tcp":
        transport = TcpTransport(host, port)
    else:
        if "gateway_id" not in values:
            raise ConfigError(f"{where}: gateway_id is required for transport mqtt")
        gateway_id = _text(values["gateway_id"], f"{where}.gateway_id")
        root = _text(values.get("root", DEFAULT_ROOT), f"{where}.root")
        client_id = values.get("client_id")
        try:
            transport = MqttTransport(
                host,
                port,
                gateway_id,
                root=root,
                client_id=None if client_id is None else _text(client_id, f"{where}.client_id"),
            )
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    raw_meters = values.get("meters")
    if not isinstance(raw_meters, list) or not raw_meters:
        raise ConfigError(f"{where}.meters: a non-empty list")
    meters = tuple(_meter(m, f"{where}.meters[{n}]") for n, m in enumerate(raw_meters))
    seen: dict[bytes, int] = {}
    for n, meter in enumerate(meters):
        first = seen.get(meter.eui64)
        if first is not None:
            raise ConfigError(
                f"{where}.meters[{n}].eui64: {meter.eui64.hex()} is also meters[{first}]"
            )
        seen[meter.eui64] = n
    return ZigbeeGatewaySpec(transport, meters)


def parse_zigbee_fleet(data: object, where: str = "fleet") -> ZigbeeFleet:
    """The fleet in ``data`` (the YAML document); ConfigError names ``where`` and the path
    of the first bad key."""
    root = _mapping({} if data is None else data, where)
    _unknown(root, _ROOT_KEYS, where)
    options = _options(root.get("options"), f"{where}: options")
    raw_gateways = root.get("gateways")
    if not isinstance(raw_gateways, list) or not raw_gateways:
        raise ConfigError(f"{where}: gateways: a non-empty list")
    gateways = tuple(_gateway(g, f"{where}: gateways[{n}]") for n, g in enumerate(raw_gateways))
    owners: dict[str, str] = {}
    keys: dict[str, int] = {}
    for n, gateway in enumerate(gateways):
        if gateway.key in keys:
            raise ConfigError(
                f"{where}: gateways[{n}]: {gateway.key} is also gateways[{keys[gateway.key]}]"
            )
        keys[gateway.key] = n
        for k, meter in enumerate(gateway.meters):
            place = f"gateways[{n}].meters[{k}]"
            if meter.meter_id in owners:
                raise ConfigError(
                    f"{where}: {place}.meter_id: {meter.meter_id} is also {owners[meter.meter_id]}"
                )
            owners[meter.meter_id] = place
    return ZigbeeFleet(gateways, options)


def load_zigbee_fleet(path: Path) -> ZigbeeFleet:
    """The fleet file at ``path`` (ConfigError when it cannot be read or is wrong)."""
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return parse_zigbee_fleet(data, str(path))
