"""The one place that builds adapters (database, Kafka stages, rules) from Settings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

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


STAGES = ("sink", "correlate", "ingest")  # start order: consumers of a topic before producers


class Stage(Protocol):
    async def start(self) -> None: ...
    async def run(self) -> None: ...
    async def stop(self) -> None: ...


@dataclass
class Pipeline:
    """The stages this worker process runs (a subset of STAGES, in start order)."""

    ingest: IngestStage | None = None
    correlate: CorrelateStage | None = None
    sink: SinkStage | None = None

    @property
    def stages(self) -> list[Stage]:
        found = [getattr(self, name) for name in STAGES]
        return [stage for stage in found if stage is not None]

    @property
    def names(self) -> list[str]:
        return [name for name in STAGES if getattr(self, name) is not None]


def pipeline(
    settings: Settings, *, engine: Engine | None = None, stages: Iterable[str] = STAGES
) -> Pipeline:
    """Build the chosen stages; one process may run all of them or a part (scale-out by role)."""
    wanted = set(stages)
    unknown = wanted - set(STAGES)
    if unknown or not wanted:
        raise ValueError(f"unknown stages {sorted(unknown)}: choose from {', '.join(STAGES)}")
    ruleset = rules(settings) if wanted & {"ingest", "correlate"} else None
    built = Pipeline()
    if ruleset is not None and "ingest" in wanted:
        built.ingest = IngestStage(
            settings.kafka, ruleset, max_batch=settings.correlation.max_batch
        )
    if ruleset is not None and "correlate" in wanted:
        built.correlate = CorrelateStage(settings.kafka, ruleset, settings.correlation)
    if "sink" in wanted:
        built.sink = SinkStage(settings.kafka, engine or database(settings))
    return built
