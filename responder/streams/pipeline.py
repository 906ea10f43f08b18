"""The stages one worker process hosts, in start order (the composition root fills them in)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Engine

from responder.streams.anchors import AnchorStage
from responder.streams.correlate import CorrelateStage
from responder.streams.ingest import IngestStage
from responder.streams.playbooks import CommandStage, RunnerStage
from responder.streams.reports import ReportStage
from responder.streams.sink import SinkStage

# start order: consumers of a topic before its producers; the playbook stages last; `anchors`
# writes the audit chain's head outside the database (streams/anchors.py)
STAGES = ("sink", "correlate", "ingest", "reports", "runner", "commands", "anchors")


class Stage(Protocol):
    async def start(self) -> None: ...
    async def run(self) -> None: ...
    async def stop(self) -> None: ...


@dataclass
class Pipeline:
    """The stages this worker process runs (a subset of STAGES, in start order)."""

    ingest: IngestStage | None = None
    reports: ReportStage | None = None
    correlate: CorrelateStage | None = None
    sink: SinkStage | None = None
    runner: RunnerStage | None = None
    commands: CommandStage | None = None
    anchors: AnchorStage | None = None
    helpers: list[Stage] = field(default_factory=list)  # not Kafka stages: the graph refresher
    engine: Engine | None = None  # the database the stages use (None: none of them does)

    @property
    def stages(self) -> list[Stage]:
        """Helpers first (they start before the stages that read them), then the stages."""
        found = [getattr(self, name) for name in STAGES]
        return [*self.helpers, *(stage for stage in found if stage is not None)]

    @property
    def names(self) -> list[str]:
        return [name for name in STAGES if getattr(self, name) is not None]
