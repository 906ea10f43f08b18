"""The worker process: a faust App hosting the batched pipeline stages as a mode Service.

faust owns the process (service tree, signals, graceful shutdown); the five stages (ingest,
correlate, sink, runner, commands) run their own aiokafka consumers in batches because a
per-message agent caps near 5k events/s here (docs/architecture.md, "Why the hot path is
batched"). Each stage has its own consumer group, so N workers split every stage's
partitions between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any

import faust
import structlog
from mode import Service

from responder.settings import Settings
from responder.streams.pipeline import Pipeline
from responder.streams.topics import ensure_topics

log = structlog.get_logger(__name__)

GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Fewer, cheaper garbage collections for a long-running stream process.

    Window state keeps many small dicts alive, and the default thresholds (700 allocations)
    rescan them over and over: in the benchmark that cost about a third of the CPU. Objects
    alive at start (modules, rules, clients) are frozen out of collection altogether.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class PipelineService(Service):
    """Starts the stages (sink first, ingest last) and runs their loops until stopped."""

    def __init__(self, settings: Settings, pipeline: Pipeline, **kwargs: Any) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.ready = asyncio.Event()
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        await ensure_topics(self.settings.kafka)
        for stage in self.pipeline.stages:
            await stage.start()
        log.info(
            "worker started",
            bootstrap=self.settings.kafka.bootstrap_servers,
            stages=self.pipeline.names,
            topic=self.settings.kafka.topics.events,
        )

    async def on_started(self) -> None:
        tune_gc()
        self._loops = asyncio.ensure_future(
            asyncio.gather(*(stage.run() for stage in self.pipeline.stages))
        )
        self._loops.add_done_callback(self._loops_ended)
        self.ready.set()

    def _loops_ended(self, task: asyncio.Future[Any]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.error("a pipeline stage failed; stopping the worker", error=repr(error))
            self._crash(error)

    async def on_stop(self) -> None:
        loops = getattr(self, "_loops", None)
        if loops is not None and not loops.done():
            loops.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loops
        for stage in reversed(self.pipeline.stages):
            try:
                await stage.stop()
            except Exception as exc:  # keep stopping the others
                log.warning(
                    "stage did not stop cleanly", stage=type(stage).__name__, error=str(exc)
                )
        log.info("worker stopped")


def create_app(settings: Settings) -> faust.App:
    return faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka.bootstrap_servers}",
        store="memory://",
        processing_guarantee="at_least_once",
        web_enabled=False,
        autodiscover=False,
        topic_partitions=settings.kafka.partitions,
    )


def run_worker(settings: Settings, pipeline: Pipeline) -> None:
    """Block running the worker until SIGINT/SIGTERM."""
    app = create_app(settings)
    service = PipelineService(settings, pipeline)
    worker = faust.Worker(
        app,
        service,
        loglevel=settings.log_level.lower(),
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    worker.execute_from_commandline()
