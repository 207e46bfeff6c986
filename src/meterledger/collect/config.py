"""The fleet file: which meters to read, how to reach them, and how hard to try.

Format (YAML; every meter key may also be given under ``defaults``)::

    collector:                  # all optional
      concurrency: 100          # meters read at once (1..10000)
      attempts: 3               # sessions per meter, counting the first
      backoff_initial: 0.5      # s, first retry waits up to this (full jitter)
      backoff_max: 10           # s
      breaker_threshold: 5      # consecutive transient failures that open a circuit
      breaker_cooldown: 60      # s before a half-open probe batch
      breaker_window: 60        # s: the sliding window of the failure rate
      breaker_failure_rate: 0.15  # a share of failures above this in the window opens it
      breaker_min_calls: 10     # calls the window must hold first (default max(10, threshold))
      breaker_probes: 1         # calls of the half-open probe batch; all must succeed
      lookback_hours: 48        # a meter with nothing stored is read from now - this
      every_seconds: 900        # the schedule: a meter read this recently is not due
      counter_block: 256        # invocation counters reserved per session
      system_title: hex:4D4C4300000000FF   # our (client) system title, 8 octets
    defaults: {port: 4059, framing: wrapper, auth: none, security: none}
    meters:
      - meter_id: M0001
        host: 10.0.0.5          # or `device: /dev/ttyUSB0` for a serial line
        port: 4059
        framing: wrapper        # wrapper | hdlc (HDLC over TCP, or always on serial)
        client_sap: 16          # wrapper wPort / HDLC client address
        server_sap: 1           # logical device: wrapper wPort / HDLC upper address
        physical: 17            # HDLC lower (physical) address, when framing is hdlc
        address_size: 4         # HDLC server address octets: 1, 2 or 4
        auth: hls-gmac          # none | low | hls-gmac
        password: env:M0001_PW  # auth low: a secret reference
        security: auth-enc      # none | auth-enc (security suite 0)
        ciphering: glo          # glo (service-specific) | general-glo
        ek: env:M0001_EK        # secret references: env:NAME, file:PATH, hex:..., text:...
        ak: file:/etc/meterledger/keys/M0001.ak
        gateway: dcu-17         # breaker key (default host:port or the device)
        timeout: 5              # s per request
        deadline: 60            # s for the meter, all attempts included
        profile: 1.0.99.1.0.255
        timezone: Europe/Vienna # for date-times without deviation

Secrets never sit in the file in production: ``env:NAME`` reads the environment variable,
``file:PATH`` a file (relative to the fleet file), both holding hex for keys and text for a
password; ``hex:`` and ``text:`` inline values are for tests and the simulator.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from meterledger.collect.breaker import BreakerSettings
from meterledger.core.errors import ConfigError
from meterledger.core.ids import is_valid_meter_id
from meterledger.core.obis import ObisCode
from meterledger.core.time import parse_zone

__all__ = [
    "AUTH_MODES",
    "CIPHERING_STYLES",
    "FRAMINGS",
    "SECURITY_MODES",
    "CollectorOptions",
    "Fleet",
    "MeterEndpoint",
    "load_fleet",
    "parse_fleet",
    "resolve_secret",
]

FRAMINGS = ("wrapper", "hdlc")
AUTH_MODES = ("none", "low", "hls-gmac")
SECURITY_MODES = ("none", "auth-enc")
CIPHERING_STYLES = ("glo", "general-glo")
_KEY_LENGTH = 16
_TITLE_LENGTH = 8


def resolve_secret(
    ref: str, *, binary: bool, base: Path | None = None, env: Mapping[str, str] | None = None
) -> bytes:
    """The bytes a secret reference names (``env:``, ``file:``, ``hex:``, ``text:``).

    ``binary`` secrets (keys, titles) are hex text in their source; others (a password) are
    used as UTF-8 text. The reference, never the secret, appears in error messages."""
    env = os.environ if env is None else env
    kind, sep, rest = ref.partition(":")
    if not sep:
        raise ConfigError(f"secret reference {ref!r}: expected env:, file:, hex: or text:")
    if kind == "env":
        if rest not in env:
            raise ConfigError(f"secret reference {ref!r}: the variable is not set")
        text = env[rest]
    elif kind == "file":
        path = Path(rest)
        if base is not None and not path.is_absolute():
            path = base / path
        try:
            text = path.read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"secret reference {ref!r}: {exc.strerror}") from exc
    elif kind == "hex":
        if not binary:
            raise ConfigError(f"secret reference {ref!r}: a password is text, not hex")
        text = rest
    elif kind == "text":
        if binary:
            raise ConfigError(f"secret reference {ref!r}: a key is hex, not text")
        text = rest
    else:
        raise ConfigError(f"secret reference {ref!r}: unknown kind {kind!r}")
    if not binary:
        return text.encode("utf-8")
    try:
        return bytes.fromhex(text.strip())
    except ValueError:
        raise ConfigError(f"secret reference {ref!r}: not hex") from None


@dataclass(frozen=True, slots=True)
class MeterEndpoint:
    """How to reach and read one meter; secrets already resolved."""

    meter_id: str
    host: str | None = None
    port: int = 4059
    device: str | None = None  # a serial line instead of host:port
    baud: int = 9600
    mode_e: bool = False
    framing: str = "wrapper"
    client_sap: int = 16
    server_sap: int = 1
    physical: int = 17
    address_size: int = 4
    auth: str = "none"
    password: bytes = field(default=b"", repr=False)
    security: str = "none"
    ciphering: str = "glo"
    ek: bytes = field(default=b"", repr=False)
    ak: bytes = field(default=b"", repr=False)
    gateway: str | None = None
    timeout: float = 5.0
    deadline: float = 60.0
    profile: str = "1.0.99.1.0.255"
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        where = f"meter {self.meter_id!r}"
        if not is_valid_meter_id(self.meter_id):
            raise ConfigError(f"{where}: malformed meter id")
        if (self.host is None) == (self.device is None):
            raise ConfigError(f"{where}: give either host (TCP) or device (serial)")
        if self.framing not in FRAMINGS:
            raise ConfigError(f"{where}: framing is one of {', '.join(FRAMINGS)}")
        if self.device is not None and self.framing != "hdlc":
            raise ConfigError(f"{where}: a serial line carries HDLC (framing: hdlc)")
        if self.auth not in AUTH_MODES:
            raise ConfigError(f"{where}: auth is one of {', '.join(AUTH_MODES)}")
        if self.security not in SECURITY_MODES:
            raise ConfigError(f"{where}: security is one of {', '.join(SECURITY_MODES)}")
        if self.ciphering not in CIPHERING_STYLES:
            raise ConfigError(f"{where}: ciphering is one of {', '.join(CIPHERING_STYLES)}")
        if self.address_size not in (1, 2, 4):
            raise ConfigError(f"{where}: address_size is 1, 2 or 4")
        if self.auth == "low" and not self.password:
            raise ConfigError(f"{where}: auth low needs a password")
        needs_keys = self.security == "auth-enc" or self.auth == "hls-gmac"
        if needs_keys and (len(self.ek) != _KEY_LENGTH or len(self.ak) != _KEY_LENGTH):
            raise ConfigError(f"{where}: suite 0 and HLS-GMAC need 16-octet ek and ak")
        if not 0 < self.port < 65536:
            raise ConfigError(f"{where}: port {self.port} out of range")
        if self.timeout <= 0 or self.deadline <= 0:
            raise ConfigError(f"{where}: timeout and deadline are positive seconds")
        ObisCode.parse(self.profile)
        parse_zone(self.timezone)

    @property
    def endpoint(self) -> str:
        """``host:port`` or the serial device."""
        return self.device if self.device is not None else f"{self.host}:{self.port}"

    @property
    def breaker_key(self) -> str:
        return self.gateway or self.endpoint


@dataclass(frozen=True, slots=True)
class CollectorOptions:
    """The ``collector:`` section; :attr:`breaker_settings` are the breakers' knobs."""

    concurrency: int = 100
    attempts: int = 3
    backoff_initial: float = 0.5
    backoff_max: float = 10.0
    breaker_threshold: int = 5
    breaker_cooldown: float = 60.0
    breaker_window: float = 60.0
    breaker_failure_rate: float = 0.15
    breaker_min_calls: int | None = None  # None: max(10, breaker_threshold)
    breaker_probes: int = 1
    lookback_hours: float = 48.0
    every_seconds: float = 900.0
    counter_block: int = 256
    system_title: bytes = b"MLC\x00\x00\x00\x00\x01"

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 10_000:
            raise ConfigError(f"concurrency {self.concurrency}: expected 1..10000")
        if self.attempts < 1 or self.breaker_threshold < 1 or self.counter_block < 1:
            raise ConfigError("attempts, breaker_threshold and counter_block are at least 1")
        if min(self.backoff_initial, self.backoff_max, self.breaker_cooldown) < 0:
            raise ConfigError("backoff and cool-down times are not negative")
        if self.lookback_hours <= 0 or self.every_seconds < 0:
            raise ConfigError("lookback_hours is positive; every_seconds not negative")
        if len(self.system_title) != _TITLE_LENGTH:
            raise ConfigError("the client system title is 8 octets")
        if self.breaker_window <= 0:
            raise ConfigError(f"breaker_window {self.breaker_window:g}: expected positive seconds")
        if not 0 <= self.breaker_failure_rate < 1:
            raise ConfigError(
                f"breaker_failure_rate {self.breaker_failure_rate:g}: expected a share in [0, 1)"
            )
        if self.breaker_min_calls is not None and self.breaker_min_calls < 1:
            raise ConfigError(f"breaker_min_calls {self.breaker_min_calls}: expected at least 1")
        if self.breaker_probes < 1:
            raise ConfigError(f"breaker_probes {self.breaker_probes}: expected at least 1")

    @property
    def breaker_settings(self) -> BreakerSettings:
        """The knobs of every breaker of the fleet (one per gateway or endpoint)."""
        return BreakerSettings(
            threshold=self.breaker_threshold,
            cooldown=self.breaker_cooldown,
            window=self.breaker_window,
            failure_rate=self.breaker_failure_rate,
            min_calls=self.breaker_min_calls,
            probes=self.breaker_probes,
        )


@dataclass(frozen=True, slots=True)
class Fleet:
    meters: tuple[MeterEndpoint, ...]
    options: CollectorOptions = CollectorOptions()

    def select(self, meter_ids: list[str] | None) -> Fleet:
        """The fleet restricted to ``meter_ids`` (ConfigError naming any unknown one)."""
        if not meter_ids:
            return self
        known = {m.meter_id: m for m in self.meters}
        unknown = [m for m in meter_ids if m not in known]
        if unknown:
            raise ConfigError(f"not in the fleet file: {', '.join(unknown)}")
        return replace(self, meters=tuple(known[m] for m in dict.fromkeys(meter_ids)))


_METER_KEYS = {f for f in MeterEndpoint.__dataclass_fields__}
_SECRET_KEYS = {"password", "ek", "ak"}
_OPTION_KEYS = {f for f in CollectorOptions.__dataclass_fields__}
_NUMBERS: dict[str, type] = {
    "port": int,
    "baud": int,
    "client_sap": int,
    "server_sap": int,
    "physical": int,
    "address_size": int,
    "timeout": float,
    "deadline": float,
}


def _mapping(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping")
    return {str(k): v for k, v in value.items()}


def _meter(
    raw: dict[str, Any], where: str, base: Path | None, env: Mapping[str, str] | None
) -> MeterEndpoint:
    unknown = sorted(set(raw) - _METER_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}")
    if "meter_id" not in raw:
        raise ConfigError(f"{where}: meter_id is required")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _SECRET_KEYS:
            values[key] = resolve_secret(str(value), binary=key != "password", base=base, env=env)
        elif key in _NUMBERS:
            try:
                values[key] = _NUMBERS[key](value)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: {key} is a number, got {value!r}") from None
        elif key == "mode_e":
            values[key] = bool(value)
        elif key == "profile":
            values[key] = str(ObisCode.parse(str(value)))
        else:
            values[key] = None if value is None else str(value)
    try:
        return MeterEndpoint(**values)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{where}: {exc}") from exc


_OPTION_TYPES: dict[str, type] = {
    "concurrency": int,
    "attempts": int,
    "breaker_threshold": int,
    "breaker_min_calls": int,
    "breaker_probes": int,
    "counter_block": int,
    "backoff_initial": float,
    "backoff_max": float,
    "breaker_cooldown": float,
    "breaker_window": float,
    "breaker_failure_rate": float,
    "lookback_hours": float,
    "every_seconds": float,
}


def _options(raw: dict[str, Any], where: str) -> CollectorOptions:
    """The ``collector:`` section, every error prefixed with ``where`` (the file's path)."""
    values: dict[str, Any] = dict(raw)
    for key, kind in _OPTION_TYPES.items():
        value = values.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: {key} is a number, got {value!r}")
        if kind is int and value != int(value):
            raise ConfigError(f"{where}: {key} is a whole number, got {value!r}")
        values[key] = kind(value)
    try:
        return CollectorOptions(**values)
    except Exception as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def parse_fleet(
    data: object,
    where: str = "fleet",
    *,
    base: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Fleet:
    root = _mapping(data, where)
    unknown = sorted(set(root) - {"collector", "defaults", "meters"})
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}")
    raw_options = _mapping(root.get("collector"), f"{where}: collector")
    bad = sorted(set(raw_options) - _OPTION_KEYS)
    if bad:
        raise ConfigError(f"{where}: collector: unknown keys {bad}")
    if "system_title" in raw_options:
        raw_options["system_title"] = resolve_secret(
            str(raw_options["system_title"]), binary=True, base=base, env=env
        )
    options = _options(raw_options, f"{where}: collector")
    defaults = _mapping(root.get("defaults"), f"{where}: defaults")
    raw_meters = root.get("meters")
    if not isinstance(raw_meters, list) or not raw_meters:
        raise ConfigError(f"{where}: 'meters' is a non-empty list")
    meters = [
        _meter(
            {**defaults, **_mapping(m, f"{where}: meters[{n}]")}, f"{where}: meters[{n}]", base, env
        )
        for n, m in enumerate(raw_meters)
    ]
    seen: set[str] = set()
    for m in meters:
        if m.meter_id in seen:
            raise ConfigError(f"{where}: meter {m.meter_id} is listed twice")
        seen.add(m.meter_id)
    return Fleet(tuple(meters), options)


def load_fleet(path: Path, *, env: Mapping[str, str] | None = None) -> Fleet:
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return parse_fleet(data, str(path), base=path.parent, env=env)
