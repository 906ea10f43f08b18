"""`responder rules ...` and `responder playbooks ...`: check the YAML definitions, the kill switch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from responder import bootstrap
from responder.cli.console import err, out
from responder.cli.options import Api, By, Wait, attempt, await_applied, backend, fail
from responder.correlation.rules import load_rules
from responder.security.terminal import plain
from responder.yamlfiles import YamlFileError

if TYPE_CHECKING:
    from responder.playbooks.loader import PlaybookSet

rules_app = typer.Typer(help="Correlation rules.", no_args_is_help=True)
playbooks_app = typer.Typer(help="Response playbooks.", no_args_is_help=True)


def report(exc: YamlFileError) -> typer.Exit:
    """Print every file:line message of a definition error; exit 1."""
    for message in exc.messages:
        err.print(plain(message, lines=True), highlight=False, markup=False)
    return typer.Exit(1)


@rules_app.command("validate")
def rules_validate(
    directory: Annotated[Path | None, typer.Argument(help="default: RESPONDER_RULES_DIR")] = None,
) -> None:
    """Load every rule file and report problems with file, line and field."""
    path = directory or bootstrap.load_settings().rules_dir
    try:
        ruleset = load_rules(path)
    except YamlFileError as exc:
        raise report(exc) from None
    out.print(f"OK: {len(ruleset)} rules in {path}", highlight=False)


def load_playbook_dir(directory: Path) -> PlaybookSet:
    """Load playbooks against every registered action; exit 1 with file:line messages."""
    from responder.playbooks.loader import load_playbooks

    try:
        from responder.actions.catalog import REGISTRY
    except ImportError as exc:  # an action module missing its optional dependency
        raise fail(f"actions cannot be loaded: {exc}") from None
    try:
        return load_playbooks(directory, REGISTRY)
    except YamlFileError as exc:
        raise report(exc) from None


@playbooks_app.command("validate")
def playbooks_validate(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="playbooks directory (default: RESPONDER_PLAYBOOKS__DIR)"),
    ] = None,
) -> None:
    """Load every playbook, check actions, parameters and templates; report file:line errors."""
    path = directory or bootstrap.load_settings().playbooks.dir
    loaded = load_playbook_dir(path)
    for playbook in loaded:
        out.print(
            f"{playbook.id}  mode={playbook.mode}  steps={len(playbook.steps)}", highlight=False
        )
    out.print(f"OK: {len(loaded)} playbooks in {path}", highlight=False)


@playbooks_app.command("kill-switch")
def playbooks_kill_switch(
    state: Annotated[
        str | None, typer.Argument(help="on | off; without it, show the current state")
    ] = None,
    by: By = "",
    reason: Annotated[str | None, typer.Option()] = None,
    wait: Wait = 10.0,
    api: Api = None,
) -> None:
    """Turn every playbook run into a dry run, at once, for every worker (no restart); runs
    under way stop acting. `off` lets them act again. Audited."""
    source = backend(api)
    if state is None:
        row = attempt(source.kill_switch)
        since = f" (set by {row.by} at {row.at:%Y-%m-%d %H:%M:%S})" if row.by and row.at else ""
        out.print(f"kill switch: {'ON' if row.on else 'off'}{since}", highlight=False)
        if row.setting:
            out.print("RESPONDER_PLAYBOOKS__KILL_SWITCH is set: every run is a dry run anyway")
        return
    if state not in ("on", "off"):
        err.print(f"say on or off, not {state!r}")
        raise typer.Exit(1)
    on = state == "on"
    sent = attempt(lambda: source.set_kill_switch(on, reason, by=by or None))
    out.print(
        f"kill switch {state}: command {sent.command_id} sent to {source.commands_topic}",
        highlight=False,
    )
    await_applied(lambda: source.kill_switch().on == on, wait)
