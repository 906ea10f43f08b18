"""Options, errors and waiting shared by the command modules."""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from responder.cli.console import err, out
from responder.security.terminal import safe

RulesDir = Annotated[
    Path | None, typer.Option("--rules", help="rules directory (default: RESPONDER_RULES_DIR)")
]
PlaybooksDir = Annotated[
    Path | None,
    typer.Option("--playbooks", help="playbooks directory (default: RESPONDER_PLAYBOOKS__DIR)"),
]
By = Annotated[str, typer.Option("--by", help="who decides (recorded in the audit log)")]
Wait = Annotated[
    float, typer.Option(help="seconds to wait for the worker to apply it (0: do not wait)")
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: message` on stderr; raise the returned Exit."""
    err.print(f"[red]error:[/red] {safe(message, lines=True)}", highlight=False)
    return typer.Exit(code)


def default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "analyst"


def await_applied(
    check: Callable[[], bool], wait: float, what: str = "applied by the worker"
) -> None:
    """Poll `check` until it holds (print `what`) or `wait` seconds pass (exit 2)."""
    deadline = time.monotonic() + wait
    while wait > 0:
        if check():
            out.print(what)
            return
        if time.monotonic() > deadline:
            err.print(f"not {what} within {wait:.0f}s (is a worker running?)")
            raise typer.Exit(2)
        time.sleep(0.2)
