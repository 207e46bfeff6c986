"""Shared CLI plumbing: options, the store, JSON output and error reporting."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from meterledger.config import Settings, load_settings
from meterledger.core.errors import AuditError, MeterledgerError
from meterledger.logs import setup_logging
from meterledger.store import Store, open_store

__all__ = [
    "DbOption",
    "JsonOption",
    "console",
    "counter",
    "emit_json",
    "fail",
    "handle_errors",
    "open_db",
]

console = Console(stderr=True, soft_wrap=True)  # messages are not cut at 80 columns
out = Console(highlight=False)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="METERLEDGER_DB",
        help="Store URL (default sqlite:///meterledger.db).",
        show_envvar=True,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]

P = ParamSpec("P")
R = TypeVar("R")


def settings(db: str | None) -> Settings:
    loaded = load_settings(db=db)
    setup_logging(loaded.log_level)
    return loaded


def open_db(db: str | None) -> Store:
    return open_store(settings(db).db)


def counter(*, show: bool) -> Progress:
    """A transient "N of M" progress bar on stderr (hidden when ``show`` is false)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=not show,
    )


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn our errors into a one-line message and exit code (2; 1 for a broken audit chain)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except AuditError as exc:
            raise fail(str(exc), 1) from exc
        except MeterledgerError as exc:
            raise fail(str(exc)) from exc
        except KeyboardInterrupt as exc:
            console.print(
                "[yellow]interrupted[/]: committed batches are kept; run the same "
                "command again to finish without duplicates"
            )
            raise typer.Exit(130) from exc

    return wrapper
