"""The fleet file: defaults, secret references, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meterledger.collect.breaker import BreakerSettings
from meterledger.collect.config import load_fleet, parse_fleet, resolve_secret
from meterledger.core.errors import ConfigError

EK = "000102030405060708090A0B0C0D0E0F"
AK = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"


def test_fleet_file_with_defaults_and_secret_references(tmp_path: Path) -> None:
    (tmp_path / "m2.ak").write_text(AK + "\n")
    path = tmp_path / "fleet.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "collector": {
                    "concurrency": 500,
                    "attempts": 2,
                    "system_title": "hex:4D4C430000000002",
                },
                "defaults": {"host": "127.0.0.1", "port": 4059, "timeout": 2},
                "meters": [
                    {"meter_id": "M1", "server_sap": 1},
                    {
                        "meter_id": "M2",
                        "server_sap": 2,
                        "security": "auth-enc",
                        "auth": "hls-gmac",
                        "ek": "env:M2_EK",
                        "ak": "file:m2.ak",
                        "gateway": "dcu-1",
                    },
                    {
                        "meter_id": "M3",
                        "host": None,
                        "device": "/dev/ttyUSB0",
                        "framing": "hdlc",
                        "mode_e": True,
                        "auth": "low",
                        "password": "text:12345678",
                    },
                ],
            }
        )
    )
    fleet = load_fleet(path, env={"M2_EK": EK})
    assert fleet.options.concurrency == 500 and fleet.options.attempts == 2
    assert fleet.options.system_title == bytes.fromhex("4D4C430000000002")
    m1, m2, m3 = fleet.meters
    assert (m1.host, m1.port, m1.server_sap, m1.timeout, m1.endpoint) == (
        "127.0.0.1",
        4059,
        1,
        2.0,
        "127.0.0.1:4059",
    )
    assert m2.ek == bytes.fromhex(EK) and m2.ak == bytes.fromhex(AK)
    assert m2.breaker_key == "dcu-1" and m1.breaker_key == "127.0.0.1:4059"
    assert m3.device == "/dev/ttyUSB0" and m3.mode_e and m3.password == b"12345678"
    assert "12345678" not in repr(m3) and EK not in repr(m2)
    assert [m.meter_id for m in fleet.select(["M3", "M1"]).meters] == ["M3", "M1"]
    with pytest.raises(ConfigError, match="M9"):
        fleet.select(["M9"])


@pytest.mark.parametrize(
    ("meter", "message"),
    [
        ({"meter_id": "M1"}, "either host"),
        ({"meter_id": "M1", "host": "h", "framing": "x"}, "framing"),
        ({"meter_id": "M1", "host": "h", "auth": "low"}, "password"),
        ({"meter_id": "M1", "host": "h", "security": "auth-enc"}, "16-octet"),
        ({"meter_id": "M1", "host": "h", "port": "x"}, "number"),
        ({"meter_id": "M1", "host": "h", "colour": "red"}, "unknown"),
        ({"meter_id": "bad id", "host": "h"}, "malformed"),
        ({"meter_id": "M1", "device": "/dev/ttyS0"}, "HDLC"),
        ({"meter_id": "M1", "host": "h", "timezone": "Mars/Base"}, "zone"),
        ({"meter_id": "M1", "host": "h", "ek": "env:NOPE"}, "not set"),
    ],
)
def test_bad_meters_are_config_errors(meter: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_fleet({"meters": [meter]}, env={})


def test_duplicate_meters_and_bad_options() -> None:
    with pytest.raises(ConfigError, match="twice"):
        parse_fleet({"meters": [{"meter_id": "M1", "host": "h"}] * 2})
    with pytest.raises(ConfigError, match="concurrency"):
        parse_fleet({"collector": {"concurrency": 0}, "meters": [{"meter_id": "M1", "host": "h"}]})
    with pytest.raises(ConfigError, match="non-empty"):
        parse_fleet({"meters": []})


def test_secret_references() -> None:
    assert resolve_secret("hex:0102", binary=True) == b"\x01\x02"
    assert resolve_secret("text:pw", binary=False) == b"pw"
    assert resolve_secret("env:K", binary=True, env={"K": "ff"}) == b"\xff"
    for ref, binary in (("0102", True), ("hex:zz", True), ("text:x", True), ("hex:01", False)):
        with pytest.raises(ConfigError) as caught:
            resolve_secret(ref, binary=binary)
        assert ref in str(caught.value)


def test_breaker_settings_come_from_the_collector_section(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "collector": {
                    "breaker_threshold": 3,
                    "breaker_cooldown": 30,
                    "breaker_window": 120,
                    "breaker_failure_rate": 0.25,
                    "breaker_min_calls": 20,
                    "breaker_probes": 2,
                },
                "meters": [{"meter_id": "M1", "host": "h"}],
            }
        )
    )
    settings = load_fleet(path).options.breaker_settings
    assert settings == BreakerSettings(
        threshold=3, cooldown=30.0, window=120.0, failure_rate=0.25, min_calls=20, probes=2
    )
    assert settings.breaker("x").needed_calls == 20
    # the defaults are the breakers' own: 5 in a row, 15 % over 60 s, one probe
    default = parse_fleet({"meters": [{"meter_id": "M1", "host": "h"}]}).options
    assert default.breaker_settings == BreakerSettings()
    assert default.breaker_settings.breaker("x").needed_calls == 10


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"breaker_window": 0}, "breaker_window 0: expected positive"),
        ({"breaker_failure_rate": 1.0}, r"breaker_failure_rate 1: expected a share in \[0, 1\)"),
        ({"breaker_failure_rate": -0.1}, "breaker_failure_rate"),
        ({"breaker_min_calls": 0}, "breaker_min_calls 0: expected at least 1"),
        ({"breaker_probes": 0}, "breaker_probes 0: expected at least 1"),
        ({"breaker_probes": 1.5}, "breaker_probes is a whole number"),
        ({"breaker_window": "soon"}, "breaker_window is a number"),
        ({"breaker_threshold": 0}, "breaker_threshold"),
        ({"breaker_typo": 1}, "unknown keys"),
    ],
)
def test_bad_breaker_settings_name_the_fleet_file(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        yaml.safe_dump({"collector": options, "meters": [{"meter_id": "M1", "host": "h"}]})
    )
    with pytest.raises(ConfigError, match=message) as caught:
        load_fleet(path)
    assert str(caught.value).startswith(f"{path}: collector: ")
