"""``meterledger dlms read --json`` (a contract) and ``dlms objects`` against the DLMS
simulator on loopback TCP, served from a thread with its own event loop."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from meterledger.cli.dlms import app, reserve_local_counters
from meterledger.simulate.dlms_server import (
    DlmsSimulator,
    Framing,
    MeterBehaviour,
    SecurityMode,
    SimulatorConfig,
)

runner = CliRunner()
START = datetime(2024, 1, 1, tzinfo=UTC)
NOW = START + timedelta(days=1, hours=6)


class Served:
    """A simulator running on a background loop."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.sim = DlmsSimulator(config)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.sim.start_serving())
        self.ready.set()
        self.loop.run_forever()

    @property
    def port(self) -> str:
        return str(self.sim.port)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def serve(**options: Any) -> Iterator[Served]:
    config = SimulatorConfig(
        meters=3, port=0, start=START, days=2, tz="UTC", clock=lambda: NOW, **options
    )
    served = Served(config)
    try:
        yield served
    finally:
        served.close()


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads without a store keep their counters under METERLEDGER_STATE_DIR: a test's own."""
    monkeypatch.setenv("METERLEDGER_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(scope="module")
def plain() -> Iterator[Served]:
    yield from serve(overrides={2: MeterBehaviour(silent=True)})


@pytest.fixture(scope="module")
def secured() -> Iterator[Served]:
    yield from serve(security=SecurityMode.HLS_AUTH_ENC, framing=Framing.HDLC)


def read_json(*args: str) -> tuple[int, Any, str]:
    result = runner.invoke(app, ["read", *args, "--json"])
    try:
        payload = json.loads(result.stdout) if result.exit_code == 0 else None
    except json.JSONDecodeError:  # pragma: no cover - shows what was printed
        pytest.fail(f"not one JSON object: {result.stdout!r}")
    return result.exit_code, payload, result.stderr


def test_register_contract(plain: Served) -> None:
    code, payload, _ = read_json(
        "--host", "127.0.0.1", "--port", plain.port, "--obis", "1.0.1.8.0.255"
    )
    assert code == 0
    assert list(payload) == ["obis", "class_id", "value", "scaler", "unit"]
    assert payload["obis"] == "1.0.1.8.0.255" and payload["class_id"] == 3
    assert isinstance(payload["value"], int) and payload["value"] > 0
    assert (payload["scaler"], payload["unit"]) == (0, 30)


def test_clock_contract(plain: Served) -> None:
    code, payload, _ = read_json(
        "--host", "127.0.0.1", "--port", plain.port, "--obis", "0-0:1.0.0*255"
    )
    assert code == 0
    assert list(payload) == ["obis", "class_id", "time", "deviation", "status"]
    assert payload["obis"] == "0.0.1.0.0.255" and payload["class_id"] == 8
    assert datetime.fromisoformat(payload["time"]) == NOW
    assert datetime.fromisoformat(payload["time"]).utcoffset() is not None
    assert payload["deviation"] == 0 and isinstance(payload["status"], int)


def test_profile_contract_by_range(plain: Served) -> None:
    code, payload, _ = read_json(
        "--host", "127.0.0.1", "--port", plain.port, "--server-sap", "2",
        "--obis", "1.0.99.1.0.255",
        "--from", "2024-01-01T00:15:00+00:00", "--to", "2024-01-01T01:00:00Z",
    )  # fmt: skip
    assert code == 0
    assert list(payload) == ["obis", "class_id", "capture_period", "capture_objects", "rows"]
    assert payload["class_id"] == 7 and payload["capture_period"] == 900
    assert payload["capture_objects"][:2] == [
        {"class_id": 8, "obis": "0.0.1.0.0.255", "attribute": 2},
        {"class_id": 3, "obis": "1.0.1.8.0.255", "attribute": 2},
    ]
    rows = payload["rows"]
    assert [row[0] for row in rows] == [
        "2024-01-01T00:15:00+00:00",
        "2024-01-01T00:30:00+00:00",
        "2024-01-01T00:45:00+00:00",
        "2024-01-01T01:00:00+00:00",
    ]
    assert all(isinstance(row[1], int) for row in rows)
    assert [b[1] >= a[1] for a, b in itertools.pairwise(rows)] == [True] * 3


def test_data_object_and_explicit_class(plain: Served) -> None:
    code, payload, _ = read_json(
        "--host", "127.0.0.1", "--port", plain.port, "--obis", "0.0.96.1.0.255"
    )
    assert code == 0
    assert list(payload) == ["obis", "class_id", "value"] and payload["class_id"] == 1
    code, payload, _ = read_json(
        "--host", "127.0.0.1", "--port", plain.port, "--obis", "1.0.1.8.0.255", "--class-id", "3"
    )
    assert code == 0 and payload["class_id"] == 3


def test_secured_hdlc_read(secured: Served) -> None:
    keys = secured.sim.keys(1)
    code, payload, err = read_json(
        "--host", "127.0.0.1", "--port", secured.port, "--hdlc", "--server-sap", "2",
        "--client-sap", "1", "--auth", "hls-gmac", "--security", "auth-enc",
        "--ek", keys.ek.hex(), "--ak", keys.ak.hex(), "--obis", "1.0.1.8.0.255",
    )  # fmt: skip
    assert code == 0, err
    assert payload["class_id"] == 3 and payload["value"] > 0


def test_wrong_keys_exit_2_with_e09(secured: Served) -> None:
    result = runner.invoke(
        app,
        [
            "read", "--host", "127.0.0.1", "--port", secured.port, "--hdlc", "--client-sap",
            "1", "--auth", "hls-gmac", "--security", "auth-enc", "--ek", "00" * 16,
            "--ak", "11" * 16, "--obis", "1.0.1.8.0.255", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "E09" in result.stderr and "Security Level Violation" in result.stderr
    assert result.stdout == ""


def test_silent_meter_exit_2_with_e04(plain: Served) -> None:
    result = runner.invoke(
        app,
        [
            "read", "--host", "127.0.0.1", "--port", plain.port, "--server-sap", "3",
            "--timeout", "0.2", "--obis", "1.0.1.8.0.255", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "E04" in result.stderr and "Response Timeout" in result.stderr


def test_connection_refused_exit_2_with_e01() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    result = runner.invoke(
        app, ["read", "--host", "127.0.0.1", "--port", port, "--obis", "1.0.1.8.0.255"]
    )
    assert result.exit_code == 2 and "E01" in result.stderr


def test_bad_arguments_exit_2() -> None:
    for args in (
        ["--obis", "nonsense"],
        ["--obis", "1.0.1.8.0.255", "--ek", "xyz", "--security", "auth-enc"],
        ["--obis", "1.0.1.8.0.255", "--from", "2024-01-02T00:00Z", "--to", "2024-01-01T00:00Z"],
    ):
        result = runner.invoke(app, ["read", "--host", "127.0.0.1", "--port", "1", *args])
        assert result.exit_code == 2, args


def test_objects_json_and_table(plain: Served) -> None:
    result = runner.invoke(app, ["objects", "--host", "127.0.0.1", "--port", plain.port, "--json"])
    assert result.exit_code == 0, result.stderr
    listed = json.loads(result.stdout)
    assert isinstance(listed, list)
    assert all(list(item) == ["class_id", "version", "obis", "attributes"] for item in listed)
    by_obis = {item["obis"]: item for item in listed}
    assert by_obis["1.0.99.1.0.255"]["class_id"] == 7
    assert by_obis["0.0.1.0.0.255"]["class_id"] == 8
    assert {"attribute": 2, "access": "read"} in by_obis["1.0.1.8.0.255"]["attributes"]
    table = runner.invoke(app, ["objects", "--host", "127.0.0.1", "--port", plain.port])
    assert table.exit_code == 0 and "1.0.99.1.0.255" in table.stdout


def test_help_for_every_command() -> None:
    for name in ("read", "objects"):
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0 and "--host" in result.stdout


def test_secured_reads_in_the_same_second_never_reuse_a_counter(
    secured: Served, tmp_path: Path
) -> None:
    """Without a store or --counter, each read reserves a block above the last one (a state
    file under METERLEDGER_STATE_DIR), so back-to-back reads pass the meter's replay check."""
    keys = secured.sim.keys(2)  # a meter no other test reads, so its replay check is fresh
    args = (
        "--host", "127.0.0.1", "--port", secured.port, "--hdlc", "--server-sap", "3",
        "--client-sap", "1", "--auth", "hls-gmac", "--security", "auth-enc",
        "--ek", keys.ek.hex(), "--ak", keys.ak.hex(), "--obis", "1.0.1.8.0.255",
    )  # fmt: skip
    for _ in range(3):
        code, payload, err = read_json(*args)
        assert code == 0, err
        assert payload["class_id"] == 3
    held = json.loads((tmp_path / "state" / "dlms-counters.json").read_text())
    (value,) = held.values()
    first = reserve_local_counters(next(iter(held)))
    assert first.start == value + 1 and len(first) == 256
