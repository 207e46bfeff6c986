"""Invocation counters for a DLMS read that has no store: a small state file, under a lock."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

from meterledger.core.errors import ConfigError

__all__ = ["reserve_local_counters"]


def _state_file() -> Path:
    base = os.environ.get("METERLEDGER_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "meterledger"
    )
    return Path(base) / "dlms-counters.json"


def reserve_local_counters(key: str, block: int = 256) -> range:
    """Invocation counters for a read with no store: a block above every block handed out
    before for ``key`` (kept in a small state file, under a lock), and above the Unix time,
    so two reads in the same second never reuse a counter."""
    path = _state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            held = json.loads(path.read_text("utf-8")) if path.exists() else {}
        except (OSError, ValueError):
            held = {}
        first = max(int(held.get(key, 0)) + 1, int(time.time()))
        if first + block > 2**32:
            raise ConfigError(f"invocation counters for {key} are exhausted; give --counter")
        held[key] = first + block - 1
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(held, sort_keys=True), "utf-8")
        os.replace(tmp, path)
    return range(first, first + block)
