"""The `responder` command: the root, the pipeline commands, and the command groups."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer
from rich.table import Table

from responder import __version__, bootstrap
from responder.cli.assets import assets_app, offline_lineage
from responder.cli.audit import audit_app
from responder.cli.command_keys import commands_app
from responder.cli.console import err, out
from responder.cli.definitions import load_playbook_dir, playbooks_app, rules_app
from responder.cli.evidence import evidence_app
from responder.cli.exports import export
from responder.cli.incidents import incidents_app
from responder.cli.options import PlaybooksDir, RulesDir, fail
from responder.cli.reporting import deadlines, reportable
from responder.cli.reports import AssetOption, LabelOption, TimeOption, context_of
from responder.cli.reports import convert as convert_report
from responder.cli.runs import runs_app
from responder.cli.tokens import tokens_app
from responder.correlation.rules import load_rules
from responder.security.terminal import plain, text
from responder.settings import as_environment
from responder.yamlfiles import YamlFileError

log = structlog.get_logger(__name__)

app = typer.Typer(
    help="Event-driven incident response for AI/ML systems.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
schema_app = typer.Typer(help="Published JSON Schemas.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(incidents_app, name="incidents")
app.add_typer(rules_app, name="rules")
app.add_typer(schema_app, name="schema")
app.add_typer(audit_app, name="audit")
app.add_typer(commands_app, name="commands")
app.add_typer(db_app, name="db")
app.add_typer(playbooks_app, name="playbooks")
app.add_typer(runs_app, name="runs")
app.add_typer(assets_app, name="assets")
app.add_typer(tokens_app, name="tokens")
app.command("convert")(convert_report)
app.add_typer(evidence_app, name="evidence")
# commands of the incidents group that live in their own modules
incidents_app.command("export")(export)
incidents_app.command("reportable")(reportable)
incidents_app.command("deadlines")(deadlines)


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


def _directories(rules: Path | None, playbooks: Path | None) -> dict[str, Any]:
    """Settings overrides for the --rules / --playbooks options."""
    overrides: dict[str, Any] = {}
    if rules is not None:
        overrides["rules_dir"] = rules
    if playbooks is not None:
        overrides["playbooks"] = {"dir": playbooks}
    return overrides


@app.command()
def worker(
    rules: RulesDir = None,
    playbooks: PlaybooksDir = None,
    stages: Annotated[
        str,
        typer.Option(
            help="comma-separated stages to run: sink, correlate, ingest, reports, runner, "
            "commands, anchors (default all: a process per stage group unless --processes)"
        ),
    ] = "all",
    processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="worker processes, each running all the chosen stages, under a supervisor that "
            "restarts them (default: RESPONDER_WORKER__PROCESSES; unset: all stages run as one "
            "process per stage group, chosen stages as one process per core)",
        ),
    ] = None,
    parent_pid: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Run the stream worker: ingest, correlate, store incidents, run playbooks (a process per
    stage group by default; run more workers on other machines to scale out)."""
    from responder.streams.app import run_worker
    from responder.streams.standby import JOIN_BACKLOG
    from responder.streams.supervisor import (
        Child,
        Forked,
        Supervisor,
        can_fork,
        executed,
        extra_sink,
        niceness,
        storing_processes,
        watch_parent,
        worker_layout,
    )

    overrides = _directories(rules, playbooks)
    settings = bootstrap.load_settings(overrides)
    chosen = _chosen(stages)
    try:  # also migrates the embedded SQLite database once, before any child starts
        # a child of a supervisor (`--parent-pid`) leaves the warnings to the supervisor
        pipeline = bootstrap.pipeline(settings, stages=chosen, announce=parent_pid is None)
    except YamlFileError as exc:
        raise fail(f"rules or playbooks are invalid:\n{exc}") from None
    except ValueError as exc:
        raise fail(str(exc)) from None
    storing = (
        1
        if pipeline.engine is None
        else storing_processes(pipeline.engine.dialect.name, settings.kafka.partitions)
    )
    count = processes or settings.worker.processes
    layout = worker_layout(stages, count, storing=storing)
    if len(layout) == 1:
        if parent_pid is not None:
            watch_parent(parent_pid)
        run_worker(settings, pipeline)
        return
    if pipeline.engine is not None:  # each child opens its own database connections
        pipeline.engine.dispose()
    supervisor = os.getpid()
    metrics_port = settings.metrics.port
    instance_id = settings.kafka.instance_id

    def slot_environment(slot: int) -> dict[str, str]:
        env = {}
        if metrics_port is not None:  # one endpoint per process: port, port + 1, ...
            env["RESPONDER_METRICS__PORT"] = str(metrics_port + slot)
        if instance_id is not None:  # static membership: one member name per process
            env["RESPONDER_KAFKA__INSTANCE_ID"] = f"{instance_id}-{slot}"
        # the extra sinks wait on standby, the others are members whatever the environment
        # says (a static member is one anyway: it would not leave its group)
        standby = JOIN_BACKLOG if extra_sink(stages, count, slot) else 0
        env["RESPONDER_WORKER__SINK_STANDBY_BACKLOG"] = str(standby)
        return env

    def forked(slot: int) -> Forked:
        return Forked(
            lambda: _forked_worker(layout[slot], overrides, slot_environment(slot), supervisor),
            name=f"responder-worker-{slot}",
        )

    def command(slot: int) -> tuple[list[str], dict[str, str]]:
        argv = [sys.executable, "-m", "responder", "worker", "--stages", layout[slot]]
        argv += ["--processes", "1", "--parent-pid", str(supervisor)]
        return argv, {**as_environment(overrides), **slot_environment(slot)}

    fresh = executed(command)

    def spawn(slot: int) -> Child:  # forked while that is safe (decided at each start)
        return forked(slot) if can_fork() else fresh(slot)

    raise typer.Exit(
        Supervisor(spawn, len(layout), niceness=lambda slot: niceness(layout[slot])).run()
    )


def _chosen(stages: str) -> tuple[str, ...]:
    """The stages a `--stages` value names ("all": every one)."""
    return bootstrap.STAGES if stages == "all" else tuple(s.strip() for s in stages.split(","))


def _forked_worker(
    stages: str, overrides: dict[str, Any], environment: dict[str, str], supervisor: int
) -> None:
    """A forked child of the supervisor: its settings read again with its slot's environment,
    its stages built, then run until it is stopped (or its supervisor is gone)."""
    from responder.streams.app import run_worker
    from responder.streams.supervisor import watch_parent

    os.environ.update(environment)
    try:  # what the supervisor validated before forking: a failure here is the unexpected kind
        settings = bootstrap.load_settings(overrides)
        pipeline = bootstrap.pipeline(settings, stages=_chosen(stages), announce=False)
    except Exception as exc:
        log.error("worker process could not start", stages=stages, error=str(exc)[:2000])
        raise SystemExit(1) from None
    watch_parent(supervisor)
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
    assets: Annotated[
        Path | None,
        typer.Option(
            "--assets",
            help="route events with their lineage, as the worker's ingest does with its graph: "
            "from a FILE written by `responder assets export` (the whole stored graph) or from "
            "the declared assets in a DIR (assets/*.yaml)",
        ),
    ] = None,
) -> None:
    """Correlate recorded events offline with the worker's engine (no Kafka, no database)."""
    from responder.correlation.replay import replay as run_replay
    from responder.playbooks.plan import plan_changes

    settings = bootstrap.load_settings(_directories(rules, playbooks))
    try:
        ruleset = load_rules(settings.rules_dir)
    except YamlFileError as exc:
        raise fail(f"rules are invalid:\n{exc}") from None
    playbook_set = load_playbook_dir(settings.playbooks.dir) if dry_run else None
    if not file.is_file():
        raise fail(f"{file}: no such file")
    correlation = settings.correlation  # the worker's lateness and cap on live groups
    index = None if assets is None else offline_lineage(assets)
    with file.open("rb") as lines:
        result = run_replay(
            lines,
            ruleset,
            allowed_lateness=timedelta(seconds=correlation.allowed_lateness_s),
            max_groups=correlation.max_groups_per_rule,
            assets=index,
        )
    for number, reason in result.rejected:
        err.print(f"{file}:{number}: rejected: {plain(reason)}", highlight=False, markup=False)
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
                text(data["first_seen"]),
                text(data["severity"]),
                text(data["rule"]),
                text(len(inc.events)),
                text(data["title"]),
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
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="send FILE as one tool report (auto or a format name, see `convert`) to the "
            "reports topic; the worker converts it",
        ),
    ] = None,
    label: LabelOption = None,
    asset: AssetOption = None,
    time: TimeOption = None,
) -> None:
    """Send a JSONL file to Kafka (lines are not validated here: the worker does that)."""
    from responder.cli.send import send_file, send_report

    settings = bootstrap.load_settings()
    if not file.is_file():
        raise fail(f"{file}: no such file")
    if format is not None:
        target = topic or settings.kafka.topics.reports
        context = context_of(label, asset, time)
        try:
            size = asyncio.run(send_report(settings.kafka, file, target, format, context))
        except ValueError as exc:
            raise fail(str(exc)) from None
        err.print(f"sent the report ({size} bytes) to {target}")
        return
    target = topic or settings.kafka.topics.events
    sent = asyncio.run(send_file(settings.kafka, file, target))
    err.print(f"sent {sent} messages to {target}")


@app.command()
def api(
    host: Annotated[
        str | None, typer.Option(help="default: RESPONDER_API__HOST (127.0.0.1)")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="default: RESPONDER_API__PORT (8080)")
    ] = None,
) -> None:
    """Serve the REST API and the dashboard (/ui/); stateless: run as many as you like."""
    import uvicorn

    settings = bootstrap.load_settings()
    uvicorn.run(
        bootstrap.api_app(settings),
        host=host or settings.api.host,
        port=port or settings.api.port,
        log_config=None,  # our structlog setup
        access_log=False,  # one log line per request with its request id instead
        server_header=False,
        timeout_graceful_shutdown=5,  # live dashboard pages never end by themselves
    )


@app.command()
def slack() -> None:
    """Take Slack button clicks over Socket Mode (RESPONDER_SLACK__MODE=socket, an xapp- token)."""
    from responder.cli.slack import run_socket_mode
    from responder.service.errors import ServiceError

    settings = bootstrap.load_settings()
    if settings.slack.mode != "socket":
        raise fail(
            "RESPONDER_SLACK__MODE is http: clicks come to `responder api` "
            "(POST /v1/slack/actions); set it to socket to take them here"
        )
    try:
        asyncio.run(run_socket_mode(settings))
    except ServiceError as exc:  # no token, or not an app-level one (its value is not shown)
        raise fail(str(exc)) from None


@app.command()
def demo() -> None:
    """Run the sample AI-SecOps scenario end to end on a local Kafka and SQLite."""
    from responder.cli.demo import run_demo

    # The demo prints its own story; the worker's log is in a file. Keep ours to warnings
    # unless a level was asked for.
    level = None if "RESPONDER_LOG_LEVEL" in os.environ else "WARNING"
    settings = bootstrap.load_settings(log_level=level)
    try:
        code = run_demo(settings, out, err)
    except YamlFileError as exc:  # e.g. run outside the repository: no ./rules
        raise fail(
            f"rules or playbooks are invalid:\n{exc}\n(the demo uses the shipped rules and "
            "playbooks: run it from the repository, or set RESPONDER_RULES_DIR and "
            "RESPONDER_PLAYBOOKS__DIR)"
        ) from None
    raise typer.Exit(code)


@schema_app.command("event")
def schema_event() -> None:
    """Print the JSON Schema of SecurityEvent v1."""
    from responder.events.schema import dumps_schema

    sys.stdout.write(dumps_schema() + "\n")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply database migrations (Alembic) to RESPONDER_DATABASE__URL."""
    from responder.storage.database import current_revision, upgrade

    engine = bootstrap.database(bootstrap.load_settings(), migrate_sqlite=False)
    upgrade(engine, revision)
    out.print(f"database at revision {current_revision(engine)}")
