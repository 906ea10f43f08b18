"""The one place that builds adapters (database, Kafka stages, rules) from Settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from responder.correlation.rules import RuleSet, load_rules
from responder.database import make_engine, upgrade
from responder.settings import Settings
from responder.streams.correlate import CorrelateStage
from responder.streams.ingest import IngestStage
from responder.streams.sink import SinkStage


def database(settings: Settings, *, migrate_sqlite: bool = True) -> Engine:
    """Engine for the configured URL; the embedded SQLite default is migrated on first use."""
    engine = make_engine(settings.database.url, echo=settings.database.echo)
    if migrate_sqlite and engine.dialect.name == "sqlite":
        upgrade(engine)
    return engine


def rules(settings: Settings) -> RuleSet:
    return load_rules(settings.rules_dir)


@dataclass
class Pipeline:
    ingest: IngestStage
    correlate: CorrelateStage
    sink: SinkStage

    @property
    def stages(self) -> list[IngestStage | CorrelateStage | SinkStage]:
        return [self.sink, self.correlate, self.ingest]


def pipeline(settings: Settings, *, engine: Engine | None = None) -> Pipeline:
    ruleset = rules(settings)
    return Pipeline(
        ingest=IngestStage(settings.kafka, ruleset, max_batch=settings.correlation.max_batch),
        correlate=CorrelateStage(settings.kafka, ruleset, settings.correlation),
        sink=SinkStage(settings.kafka, engine or database(settings)),
    )
