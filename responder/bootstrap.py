"""The composition root: the one place that reads Settings and builds adapters from them.

Every entry point starts here: the worker (`pipeline`), the CLI and the demo (`services`).
Nothing else constructs `Settings`, an engine, a Kafka client for commands, or the playbook
and rule sets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from responder.actions.aws_iam import Boto3Iam
from responder.actions.aws_waf import Boto3Waf
from responder.actions.http import AiohttpAdapter
from responder.actions.ports import Ports
from responder.actions.slack import SlackWebAdapter
from responder.assets.lineage import GraphSnapshot
from responder.assets.sync import AssetSync
from responder.audit.chain import ChainKey
from responder.audit.store import Keyring, use_keys
from responder.commands import AnyCommand, command_gate, command_signer, send_command
from responder.correlation.rules import RuleSet, load_rules
from responder.evidence.snapshot import Snapshotter
from responder.evidence.store import EvidenceStore, open_store
from responder.incidents.store import SqlIncidents
from responder.logs import configure
from responder.playbooks.blast_sql import BlastRadii
from responder.playbooks.loader import PlaybookSet, load_playbooks
from responder.playbooks.quorum import Directory
from responder.playbooks.runner import Runner
from responder.playbooks.start_sql import RunStarter
from responder.security.signatures import Signer
from responder.service.publish import OneShotPublisher
from responder.service.writer import Writer
from responder.settings import Settings, merged
from responder.storage.database import SchemaNotCurrent, make_engine, require_current, upgrade
from responder.storage.signals import RUNS_CHANNEL, Listener, listens
from responder.streams.anchors import AnchorStage
from responder.streams.correlate import CorrelateStage
from responder.streams.ingest import IngestStage
from responder.streams.pipeline import STAGES, Pipeline
from responder.streams.playbooks import CommandStage, RunnerStage, Wakeup
from responder.streams.reports import ReportStage
from responder.streams.sink import SinkStage

__all__ = [
    "STAGES",
    "Pipeline",
    "Services",
    "api_app",
    "asset_sync",
    "database",
    "directory",
    "evidence_store",
    "kafka_publisher",
    "load_settings",
    "pipeline",
    "playbooks",
    "ports",
    "rules",
    "services",
    "slack_front",
    "socket_mode",
]

if TYPE_CHECKING:
    from fastapi import FastAPI

    from responder.service.publish import KafkaPublisher, Publisher
    from responder.service.slack.front import SlackFront
    from responder.service.slack.socket_mode import SocketModeFront

log = structlog.get_logger(__name__)


def load_settings(
    overrides: dict[str, Any] | None = None, *, log_level: str | None = None
) -> Settings:
    """Settings from the environment (`RESPONDER_...`), then `overrides` (a nested dict);
    logging is configured from them (`log_level` wins over the setting when given)."""
    settings = merged(Settings(), overrides or {})
    configure(log_level or settings.log_level, settings.log_format)
    return settings


@dataclass
class Services:
    """What an entry point (CLI command, demo) needs, built on first use from one Settings."""

    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        return database(self.settings)

    def rules(self) -> RuleSet:
        return rules(self.settings)

    def playbooks(self) -> PlaybookSet:
        return playbooks(self.settings)

    def asset_sync(self) -> AssetSync:
        return asset_sync(self.settings, self.engine)

    def send(self, command: AnyCommand) -> None:
        """Publish an analyst command to the commands topic and wait for the broker's ack."""
        asyncio.run(send_command(self.settings.kafka, command, self.signer))

    @cached_property
    def signer(self) -> Signer | None:
        """This process's command signing key (None: it cannot send commands)."""
        return command_signer(self.settings.commands)

    def writer(self) -> Writer:
        """The service operations' database and a one-shot publisher (one command per call)."""
        return Writer(self.engine, OneShotPublisher(self.settings.kafka, self.signer))


def services(overrides: dict[str, Any] | None = None, *, log_level: str | None = None) -> Services:
    return Services(load_settings(overrides, log_level=log_level))


def database(settings: Settings, *, migrate_sqlite: bool = True) -> Engine:
    """Engine for the configured URL. In normal use (`migrate_sqlite`) the embedded SQLite
    default is migrated on first use, and any other database must be at this code's revision
    (`SchemaNotCurrent`, a `ValueError`: `responder db upgrade` migrates it); `db upgrade` and
    `audit verify` take the database as it is."""
    engine = make_engine(settings.database.url, echo=settings.database.echo)
    use_keys(engine, chain_keys(settings))
    if migrate_sqlite and engine.dialect.name == "sqlite":
        upgrade(engine)
    elif migrate_sqlite:
        try:
            require_current(engine)
        except SchemaNotCurrent:
            engine.dispose()
            raise
        except OperationalError as exc:  # down at start: the services wait for it, as before
            log.warning(
                "database not reachable: its schema revision is not checked",
                error=type(exc).__name__,
            )
    return engine


def chain_keys(settings: Settings) -> Keyring:
    """The audit chain's keys (`RESPONDER_AUDIT__KEY`, `__KEY_ID`, `__OLD_KEYS`)."""
    audit = settings.audit
    current = None
    if audit.key is not None:
        current = ChainKey(audit.key_id, audit.key.get_secret_value().encode("utf-8"))
    old = tuple(
        ChainKey(key_id, secret.get_secret_value().encode("utf-8"))
        for key_id, secret in audit.old_keys.items()
    )
    return Keyring(current, old)


def api_app(settings: Settings, *, engine: Engine | None = None) -> FastAPI:
    """The REST API: its database engine and the process's one Kafka producer (acks=all),
    started and stopped with the app."""
    from responder.api.app import create_app
    from responder.api.context import ApiContext

    publisher = kafka_publisher(settings)
    engine = engine or database(settings)
    slack = settings.slack
    front = None
    if slack.mode == "http" and slack.signing_secret is not None:
        front = slack_front(settings, engine, publisher)
    elif slack.mode == "http" and slack.bot_token is not None:
        log.warning("slack buttons are not served: RESPONDER_SLACK__SIGNING_SECRET is not set")
    return create_app(ApiContext(settings, engine, publisher, slack=front))


def kafka_publisher(settings: Settings) -> KafkaPublisher:
    """A server's one producer (API, Slack receiver), signing commands with its key."""
    from responder.service.publish import KafkaPublisher

    signer = command_signer(settings.commands)
    if signer is None:
        log.warning(
            "commands cannot be sent: no RESPONDER_COMMANDS__ISSUER / __SIGNING_KEY "
            "(`responder commands keygen`)"
        )
    return KafkaPublisher(settings.kafka, signer=signer, timeout_s=settings.api.publish_timeout_s)


def slack_front(settings: Settings, engine: Engine, publisher: Publisher) -> SlackFront:
    """What takes Slack clicks (either way they come): the database, a publisher for commands,
    the Web API for answers (when a bot token is set), the approver directory."""
    from responder.service.slack.front import SlackFront

    slack = settings.slack
    web = None
    if slack.bot_token is not None:
        web = SlackWebAdapter(
            token=slack.bot_token, base_url=slack.base_url, default_channel=slack.channel
        )
    else:
        log.warning("slack clicks are taken, but nothing is said back: no bot token")
    return SlackFront(engine, publisher, slack, directory(settings), web)


def socket_mode(settings: Settings, engine: Engine, publisher: Publisher) -> SocketModeFront:
    """`responder slack`: the Socket Mode connection (RESPONDER_SLACK__APP_TOKEN)."""
    from responder.service.slack.socket_mode import SocketModeFront, checked_app_token

    slack = settings.slack
    return SocketModeFront(
        slack_front(settings, engine, publisher),
        app_token=checked_app_token(slack.app_token),
        base_url=slack.base_url,
    )


def rules(settings: Settings) -> RuleSet:
    return load_rules(settings.rules_dir)


def pipeline(
    settings: Settings,
    *,
    engine: Engine | None = None,
    stages: Iterable[str] = STAGES,
    announce: bool = True,
) -> Pipeline:
    """Build the chosen stages; one process may run all of them or a part (scale-out by role).

    `announce`: warn about the settings that leave a stage refusing everything (no trusted
    command issuer); a supervisor's children build theirs quietly, as it warned already."""
    wanted = set(stages)
    unknown = wanted - set(STAGES)
    if unknown or not wanted:
        raise ValueError(f"unknown stages {sorted(unknown)}: choose from {', '.join(STAGES)}")
    ruleset = rules(settings) if wanted & {"ingest", "correlate"} else None
    built = Pipeline()
    graph = None
    if wanted & {"ingest", "sink"}:  # lineage at ingest, blast radius at the sink
        from responder.assets.snapshot import SnapshotRefresher

        engine = engine or database(settings)
        graph = GraphSnapshot()
        built.helpers.append(
            SnapshotRefresher(
                engine, graph, settings.assets.refresh_s, refresh_radii="sink" in wanted
            )
        )
    if ruleset is not None and "ingest" in wanted:
        built.ingest = IngestStage(
            settings.kafka,
            ruleset,
            max_batch=settings.correlation.max_batch,
            assets=graph,
            gather_bytes=settings.worker.gather_bytes,
            gather_ms=settings.worker.gather_ms,
            gather_window_ms=settings.worker.gather_window_ms,
            native=settings.worker.native,
        )
    if "reports" in wanted:
        built.reports = ReportStage(settings.kafka)
    if ruleset is not None and "correlate" in wanted:
        built.correlate = CorrelateStage(
            settings.kafka, ruleset, settings.correlation, native=settings.worker.native
        )
    if wanted & {"sink", "runner", "commands", "anchors"}:
        engine = engine or database(settings)
        wakeup = Wakeup()
        book = playbooks(settings)
        if "sink" in wanted:
            built.sink = SinkStage(
                settings.kafka,
                engine,
                on_applied=RunStarter(book, kill_switch=settings.playbooks.kill_switch),
                blast_radii=None if graph is None else BlastRadii(graph),
                # the runner woken in memory where it runs beside, else through the database
                runs_created=wakeup.set if "runner" in wanted else None,
                notify_runs="runner" not in wanted,
                max_evidence=settings.worker.max_evidence,
                standby_backlog=settings.worker.sink_standby_backlog,
            )
        if "runner" in wanted:
            runner = Runner(
                engine=engine,
                playbooks=book,
                ports=ports(settings, engine),
                settings=settings.playbooks,
            )
            built.runner = RunnerStage(
                runner,
                wakeup,
                poll_s=settings.playbooks.poll_s,
                listener=Listener(engine, RUNS_CHANNEL, wakeup.set) if listens(engine) else None,
            )
        if "commands" in wanted:
            if announce and not settings.commands.issuers:
                log.warning(
                    "no command issuer is trusted (RESPONDER_COMMANDS__ISSUERS): "
                    "every command will be refused"
                )
            built.commands = CommandStage(
                settings.kafka,
                engine,
                wakeup,
                command_gate(settings.commands),
                directory(settings),
            )
        if "anchors" in wanted and (settings.audit.anchor_topic or settings.audit.anchor_file):
            built.anchors = AnchorStage(engine, settings.audit, settings.kafka)
    built.engine = engine
    return built


def directory(settings: Settings) -> Directory:
    """The approver groups and Slack users decisions are checked against."""
    return Directory.of(settings.slack.groups, settings.slack.users)


def playbooks(settings: Settings) -> PlaybookSet:
    """The playbooks to run; a missing directory means none (correlation still works)."""
    import responder.actions.catalog  # noqa: F401  (register every action)

    directory = settings.playbooks.dir
    if not directory.is_dir():
        log.warning("no playbooks directory; incidents will not trigger runs", dir=str(directory))
        return PlaybookSet([])
    return load_playbooks(directory)


def asset_sync(settings: Settings, engine: Engine) -> AssetSync:
    """The asset graph's sync: the declared files, and the MLflow registry when configured."""
    from responder.assets.mlflow_source import Limits, client_for

    mlflow, assets = settings.mlflow, settings.assets
    client = client_for(mlflow.tracking_uri, mlflow.registry_uri) if mlflow.tracking_uri else None
    limits = Limits(max_models=assets.max_models, max_versions=assets.max_versions)
    return AssetSync(engine, assets_dir=assets.dir, client=client, limits=limits)


def evidence_store(settings: Settings) -> EvidenceStore:
    """Where evidence bundles are written and read (`RESPONDER_EVIDENCE__...`)."""
    return open_store(settings.evidence, settings.aws)


def ports(settings: Settings, engine: Engine) -> Ports:
    """Real adapters for every action; unconfigured integrations stay None (see each action)."""
    slack = settings.slack
    models = None
    if settings.mlflow.tracking_uri:
        from responder.actions.mlflow import MlflowRegistry

        models = MlflowRegistry.from_settings(settings.mlflow)
    return Ports(
        slack=None
        if slack.bot_token is None
        else SlackWebAdapter(
            token=slack.bot_token, base_url=slack.base_url, default_channel=slack.channel
        ),
        iam=Boto3Iam.from_settings(settings.aws),
        waf=Boto3Waf.from_settings(settings.aws),
        models=models,
        http=AiohttpAdapter(
            allowed_hosts=settings.http.allowed_hosts, timeout_s=settings.http.timeout_s
        ),
        incidents=SqlIncidents(engine),
        evidence=Snapshotter(
            engine=engine, store=evidence_store(settings), models=models, settings=settings
        ),
    )
