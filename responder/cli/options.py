"""Options, errors and waiting shared by the command modules."""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from responder.cli.console import err, out
from responder.security.terminal import safe

if TYPE_CHECKING:
    from responder.cli.backend import Backend, Sent

RulesDir = Annotated[
    Path | None, typer.Option("--rules", help="rules directory (default: RESPONDER_RULES_DIR)")
]
PlaybooksDir = Annotated[
    Path | None,
    typer.Option("--playbooks", help="playbooks directory (default: RESPONDER_PLAYBOOKS__DIR)"),
]
By = Annotated[
    str,
    typer.Option(
        "--by",
        help="who decides (recorded in the audit log; with --api the token's name is recorded)",
    ),
]
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


def send_and_wait(
    source: Backend,
    send: Callable[[], Sent],
    what: str,
    applied: Callable[[str], bool],
    wait: float,
) -> None:
    """Send one command (`what` names it, `{target}` its target), say where it went, and wait
    until `applied(full target id)` holds."""
    sent = attempt(send)
    out.print(
        f"{what.format(target=sent.target[:8])}: command {sent.command_id} sent to "
        f"{source.commands_topic}",
        highlight=False,
    )
    await_applied(lambda: applied(sent.target), wait)


Api = Annotated[
    str | None,
    typer.Option(
        "--api",
        envvar="RESPONDER_API_URL",
        help="act through the REST API at this URL (token from RESPONDER_API_TOKEN) "
        "instead of the database and Kafka directly",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="JSON for scripts")]


def backend(api: str | None) -> Backend:
    """The API at `api`, else this machine's database and Kafka (bootstrap's settings)."""
    if api:
        from responder.cli.remote import Remote

        try:
            return Remote.from_environment(api)
        except ValueError as exc:
            raise fail(str(exc)) from None
    from responder import bootstrap
    from responder.cli.backend import Direct

    return Direct(bootstrap.services(), default_user())


T = TypeVar("T")


def attempt(call: Callable[[], T]) -> T:
    """`call()`, with a refused operation (no such incident, stale, forbidden...) as `error:`."""
    from responder.cli.remote import RemoteError
    from responder.service.errors import ServiceError

    try:
        return call()
    except (ServiceError, RemoteError) as exc:
        raise fail(str(exc)) from None
