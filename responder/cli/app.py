"""The `responder` command."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from responder import __version__
from responder.cli.console import err, load_settings, out
from responder.cli.runs import By, Wait, kill_switch, runs_app, send_incident_command
from responder.correlation.rules import load_rules
from responder.logs import configure
from responder.settings import Settings
from responder.yamlfiles import YamlFileError

if TYPE_CHECKING:
    from responder.playbooks.loader import PlaybookSet

app = typer.Typer(
    help="Event-driven incident response for AI/ML systems.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
incidents_app = typer.Typer(help="Look at incidents in the database.", no_args_is_help=True)
rules_app = typer.Typer(help="Correlation rules.", no_args_is_help=True)
schema_app = typer.Typer(help="Published JSON Schemas.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
playbooks_app = typer.Typer(help="Response playbooks.", no_args_is_help=True)
app.add_typer(incidents_app, name="incidents")
app.add_typer(rules_app, name="rules")
app.add_typer(schema_app, name="schema")
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")
app.add_typer(playbooks_app, name="playbooks")
app.add_typer(runs_app, name="runs")


RulesDir = Annotated[
    Path | None, typer.Option("--rules", help="rules directory (default: RESPONDER_RULES_DIR)")
]
PlaybooksDir = Annotated[
    Path | None,
    typer.Option("--playbooks", help="playbooks directory (default: RESPONDER_PLAYBOOKS__DIR)"),
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        out.print(f"responder {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    """Event-driven incident response for AI/ML systems."""


@app.command()
def worker(
    rules: RulesDir = None,
    playbooks: PlaybooksDir = None,
    stages: Annotated[
        str,
        typer.Option(
            help="comma-separated stages this process runs: sink, correlate, ingest, runner, "
            "commands (split them over processes to use more cores)"
        ),
    ] = "all",
) -> None:
    """Run the stream worker: ingest, correlate, store incidents, run playbooks (run N for scale)."""
    settings = load_settings()
    if rules is not None:
        settings.rules_dir = rules
    if playbooks is not None:
        settings.playbooks.dir = playbooks
    from responder import bootstrap
    from responder.streams.app import run_worker

    chosen = bootstrap.STAGES if stages == "all" else tuple(s.strip() for s in stages.split(","))
    try:
        pipeline = bootstrap.pipeline(settings, stages=chosen)
    except YamlFileError as exc:
        raise _fail(f"rules or playbooks are invalid:\n{exc}") from None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    run_worker(settings, pipeline)


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="JSONL file of SecurityEvent v1, one per line")],
    rules: RulesDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per incident")] = False,
    strict: Annotated[bool, typer.Option(help="exit non-zero if any line is rejected")] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="also plan the playbooks each incident would run (nothing is executed): adds "
            "`playbooks: [{id, mode, change, steps: [{id, action, with, skipped?}]}]` to each "
            "incident; implies --json",
        ),
    ] = False,
    playbooks: PlaybooksDir = None,
) -> None:
    """Correlate recorded events offline with the worker's engine (no Kafka, no database)."""
    from responder.correlation.replay import replay as run_replay
    from responder.playbooks.plan import plan_changes

    settings = Settings()
    try:
        ruleset = load_rules(rules or settings.rules_dir)
    except YamlFileError as exc:
        raise _fail(f"rules are invalid:\n{exc}") from None
    playbook_set = _playbooks(playbooks or settings.playbooks.dir) if dry_run else None
    if not file.is_file():
        raise _fail(f"{file}: no such file")
    with file.open("rb") as lines:
        result = run_replay(lines, ruleset)
    for number, reason in result.rejected:
        err.print(f"{file}:{number}: rejected: {reason}", highlight=False, markup=False)
    if as_json or playbook_set is not None:
        for incident in result.incidents:
            data = incident.to_json()
            if playbook_set is not None:
                runs = plan_changes(
                    incident.changes,
                    playbook_set,
                    kill_switch=settings.playbooks.kill_switch,
                    variables=settings.playbooks.vars,
                )
                data["playbooks"] = [run.to_json() for run in runs]
            sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    else:
        table = Table("first seen", "severity", "rule", "events", "title")
        for inc in result.incidents:
            data = inc.to_json()
            table.add_row(
                data["first_seen"], inc.severity, inc.rule, str(len(inc.events)), inc.title
            )
        out.print(table)
    err.print(
        f"events read: {result.read}, rejected: {len(result.rejected)}, "
        f"incidents: {len(result.incidents)}",
        highlight=False,
    )
    if strict and result.rejected:
        raise typer.Exit(2)


@app.command()
def send(
    file: Annotated[Path, typer.Argument(help="JSONL file; each line is sent as is")],
    topic: Annotated[str | None, typer.Option(help="default: the events topic")] = None,
) -> None:
    """Send a JSONL file to Kafka (lines are not validated here: the worker does that)."""
    from responder.cli.send import send_file

    settings = load_settings()
    if not file.is_file():
        raise _fail(f"{file}: no such file")
    sent = asyncio.run(send_file(settings.kafka, file, topic or settings.kafka.topics.events))
    err.print(f"sent {sent} messages to {topic or settings.kafka.topics.events}")


@app.command()
def demo() -> None:
    """Run the sample AI-SecOps scenario end to end on a local Kafka and SQLite."""
    from responder.cli.demo import run_demo

    settings = Settings()
    # The demo prints its own story; the worker's log is in a file. Keep ours to warnings
    # unless a level was asked for.
    level = settings.log_level if "RESPONDER_LOG_LEVEL" in os.environ else "WARNING"
    configure(level, settings.log_format)
    raise typer.Exit(run_demo(settings, out, err))


@incidents_app.command("list")
def incidents_list(
    status: Annotated[str | None, typer.Option(help="open, acknowledged, resolved, ...")] = None,
    severity: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List incidents, newest first."""
    from responder.cli.incident_view import print_incident_list

    print_incident_list(
        load_settings(), out, status=status, severity=severity, limit=limit, as_json=as_json
    )


@incidents_app.command("show")
def incidents_show(
    incident_id: Annotated[str, typer.Argument(help="incident id or a unique prefix")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show one incident with its evidence events and audit trail."""
    from responder.cli.incident_view import print_incident

    if not print_incident(load_settings(), out, incident_id, as_json=as_json):
        raise _fail(f"no incident {incident_id!r}")


@incidents_app.command("ack")
def incidents_ack(
    incident_id: Annotated[str, typer.Argument(help="incident id or a unique prefix")],
    by: By = "",
    comment: Annotated[str | None, typer.Option()] = None,
    wait: Wait = 10.0,
) -> None:
    """Acknowledge an incident (through responder.commands, audited)."""
    send_incident_command(incident_id, by=by, status="acknowledged", comment=comment, wait=wait)


@incidents_app.command("resolve")
def incidents_resolve(
    incident_id: Annotated[str, typer.Argument(help="incident id or a unique prefix")],
    by: By = "",
    comment: Annotated[str | None, typer.Option()] = None,
    wait: Wait = 10.0,
) -> None:
    """Resolve an incident."""
    send_incident_command(incident_id, by=by, status="resolved", comment=comment, wait=wait)


@incidents_app.command("false-positive")
def incidents_false_positive(
    incident_id: Annotated[str, typer.Argument(help="incident id or a unique prefix")],
    by: By = "",
    comment: Annotated[str | None, typer.Option()] = None,
    wait: Wait = 10.0,
) -> None:
    """Mark a false positive: playbook steps with an `undo` are compensated, newest first."""
    send_incident_command(incident_id, by=by, status="false_positive", comment=comment, wait=wait)


@incidents_app.command("assign")
def incidents_assign(
    incident_id: Annotated[str, typer.Argument(help="incident id or a unique prefix")],
    to: Annotated[str, typer.Option("--to", help="assignee")],
    by: By = "",
    wait: Wait = 10.0,
) -> None:
    """Assign an incident to someone."""
    send_incident_command(incident_id, by=by, assignee=to, wait=wait)


@rules_app.command("validate")
def rules_validate(
    directory: Annotated[Path | None, typer.Argument(help="default: RESPONDER_RULES_DIR")] = None,
) -> None:
    """Load every rule file and report problems with file, line and field."""
    path = directory or Settings().rules_dir
    try:
        ruleset = load_rules(path)
    except YamlFileError as exc:
        for message in exc.messages:
            err.print(message, highlight=False, markup=False)
        raise typer.Exit(1) from None
    out.print(f"OK: {len(ruleset)} rules in {path}", highlight=False)


def _playbooks(directory: Path) -> PlaybookSet:
    """Load playbooks against every registered action; exit 1 with file:line messages."""
    from responder.playbooks.loader import load_playbooks

    try:
        from responder.actions.catalog import REGISTRY
    except ImportError as exc:  # an action module missing its optional dependency
        raise _fail(f"actions cannot be loaded: {exc}") from None
    try:
        return load_playbooks(directory, REGISTRY)
    except YamlFileError as exc:
        for message in exc.messages:
            err.print(message, highlight=False, markup=False)
        raise typer.Exit(1) from None


@playbooks_app.command("validate")
def playbooks_validate(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="playbooks directory (default: RESPONDER_PLAYBOOKS__DIR)"),
    ] = None,
) -> None:
    """Load every playbook, check actions, parameters and templates; report file:line errors."""
    path = directory or Settings().playbooks.dir
    loaded = _playbooks(path)
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
) -> None:
    """Turn every playbook run into a dry run, at once, for every worker (no restart); runs
    under way stop acting. `off` lets them act again. Audited."""
    kill_switch(state, by=by, reason=reason, wait=wait)


@schema_app.command("event")
def schema_event() -> None:
    """Print the JSON Schema of SecurityEvent v1."""
    from responder.events.schema import dumps_schema

    sys.stdout.write(dumps_schema() + "\n")


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[
        str | None,
        typer.Option(
            help="SEQ:HASH printed by `audit head` earlier: also detect deleted newest records"
        ),
    ] = None,
) -> None:
    """Recompute the hash chain; print OK or the first broken record."""
    from sqlmodel import Session

    from responder import bootstrap
    from responder.audit.store import check_anchor, verify_chain

    expected: tuple[int, str] | None = None
    if anchor is not None:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise _fail(
                f"--anchor wants SEQ:HASH as `responder audit head` prints it, not {anchor!r}"
            )
        expected = (int(seq), digest)
    engine = bootstrap.database(load_settings())
    with Session(engine) as session:
        count, broken = verify_chain(session)
        anchored = check_anchor(session, *expected) if expected else None
    if broken is not None:
        out.print(f"BROKEN at record {broken.seq}: {broken.reason} ({count} records checked)")
        raise typer.Exit(1)
    if anchored is not None:
        out.print(f"BROKEN: {anchored} ({count} records checked)")
        raise typer.Exit(1)
    out.print(
        f"OK: {count} audit records, hash chain intact" + (", anchor holds" if expected else "")
    )


@audit_app.command("head")
def audit_head() -> None:
    """Print the newest record as SEQ:HASH; keep it outside the database (a ticket, a log
    service) and pass it to `audit verify --anchor` to detect truncation."""
    from sqlmodel import Session

    from responder import bootstrap
    from responder.audit.store import head

    with Session(bootstrap.database(load_settings())) as session:
        newest = head(session)
    if newest is None:
        raise _fail("the audit log is empty")
    out.print(f"{newest[0]}:{newest[1]}", highlight=False)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply database migrations (Alembic) to RESPONDER_DATABASE__URL."""
    from responder.storage.database import current_revision, make_engine, upgrade

    settings = load_settings()
    engine = make_engine(settings.database.url)
    upgrade(engine, revision)
    out.print(f"database at revision {current_revision(engine)}")
