"""The MQTT broker for tests: the real Mosquitto on ``METERLEDGER_TEST_MQTT`` (host:port,
default ``127.0.0.1:1883``). When it cannot be reached a test that needs it is skipped with
a notice, except under ``CI=true``, where that is a failure (``.ci/run`` starts it)."""

from __future__ import annotations

import functools
import os
import socket
import uuid

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
