"""The MQTT broker for tests: the real Mosquitto on ``METERLEDGER_TEST_MQTT`` (host:port,
default ``127.0.0.1:1883``). When it cannot be reached a test that needs it is skipped with
a notice, except under ``CI=true``, where that is a failure (``.ci/run`` starts it)."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

MQTT_HOST, _, _port = os.environ.get("METERLEDGER_TEST_MQTT", "127.0.0.1:1883").partition(":")
MQTT_PORT = int(_port or 1883)


@functools.cache
def mqtt_unreachable() -> str | None:
    """Why the broker cannot be used, or None when it can (checked once)."""
    try:
        with socket.create_connection((MQTT_HOST, MQTT_PORT), timeout=3):
            return None
    except OSError as exc:
        return f"MQTT broker at {MQTT_HOST}:{MQTT_PORT} unreachable: {exc}"


def require_mqtt() -> None:
    """Skip (or, under CI, fail) a test that needs the MQTT broker."""
    why = mqtt_unreachable()
    if why is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI=true: MQTT tests must run, not skip)")
    pytest.skip(why)


def unique_root() -> str:
    """A topic root of the test's own, so parallel tests never see each other's messages."""
    return f"test-{uuid.uuid4().hex[:12]}/meterledger/v1"


def unique_id(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Broker:
    """A private Mosquitto on ``port`` with its persistence in ``where`` (kept across a
    stop and a start), for the tests that stop and restart a broker: never the shared one."""

    def __init__(self, where: Path, port: int) -> None:
        self.port = port
        self.conf = where / "mosquitto.conf"
        data = where / "data"
        data.mkdir(exist_ok=True)
        self.conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {data}/\nmax_queued_messages 0\n"
            # run as root, Mosquitto drops to its own user, which cannot write a root-owned
            # temporary folder: it would keep no sessions across the restart
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.listening():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for the private broker to listen")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # SIGTERM: Mosquitto writes its persistence file
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A private broker, started (import this fixture into the test module)."""
    if shutil.which("mosquitto") is None:
        pytest.fail("mosquitto is not installed (the fault tests need a private broker)")
    made = Broker(tmp_path, free_port())
    made.start()
    yield made
    made.stop()
