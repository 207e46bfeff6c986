"""The public surface: every module states ``__all__``, every name in it exists, and
importing the package has no side effects (no store opened, no settings read)."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import meterledger

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(meterledger.__path__, "meterledger.")
    if not info.ispkg and ".cli." not in info.name  # the CLI modules are commands, not an API
)


@pytest.mark.parametrize("name", MODULES)
def test_module_declares_its_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    missing = [item for item in exported if not hasattr(module, item)]
    assert not missing, f"{name}.__all__ names what it lacks: {missing}"


def test_importing_everything_opens_nothing(tmp_path: object) -> None:
    code = (
        "import os, pkgutil, importlib, meterledger\n"
        "for i in pkgutil.walk_packages(meterledger.__path__, 'meterledger.'):\n"
        "    importlib.import_module(i.name)\n"
        "print(sorted(os.listdir('.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"  # no meterledger.db, no log file, nothing
