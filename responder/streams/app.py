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
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

import faust
import structlog
from faust.app.base import BootStrategy
from mode import Service
from setproctitle import setproctitle

from responder.kafka_clients import faust_credentials
from responder.metrics.worker import Endpoint, serve
from responder.settings import Settings
from responder.streams.collector import tune_gc
from responder.streams.pipeline import Pipeline
from responder.streams.topics import ensure_topics, wait_for_broker

log = structlog.get_logger(__name__)

STOP_GRACE_S = 10.0  # a worker that has not exited this long after SIGTERM is ended hard
STAGE_STOP_S = 3.0  # each stage's clients get this long to close


class PipelineService(Service):
    """Starts the stages (sink first, ingest last) and runs their loops until stopped.

    A stage that fails stops the whole process with exit code 1 (so a supervisor restarts it,
    and the partitions go to the other workers meanwhile); a process that does not finish
    stopping within `stop_grace_s` (set when it owns the process) is ended hard, so it can
    never hang half-stopped.
    """

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        *,
        stop_grace_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.stop_grace_s = stop_grace_s
        self.ready = asyncio.Event()
        self.exit_code = 0
        self.metrics: Endpoint | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        metrics = self.settings.metrics
        if metrics.port is not None:  # Prometheus: the process's default registry
            self.metrics = serve(metrics.host, metrics.port)
            log.info("metrics served", host=metrics.host, port=metrics.port, path="/metrics")
        await ensure_topics(self.settings.kafka)
        for stage in self.pipeline.stages:
            await stage.start()
        log.info(
            "worker started",
            bootstrap=self.settings.kafka.bootstrap_servers,
            security_protocol=self.settings.kafka.security_protocol,
            stages=self.pipeline.names,
            topic=self.settings.kafka.topics.events,
            instance_id=self.settings.kafka.instance_id,  # static membership: its member name
        )

    async def on_started(self) -> None:
        tune_gc()
        self._loops = asyncio.ensure_future(
            asyncio.gather(*(stage.run() for stage in self.pipeline.stages))
        )
        self._loops.add_done_callback(self._loops_ended)
        self.ready.set()

    def _loops_ended(self, task: asyncio.Future[Any]) -> None:
        if task.cancelled() or self.should_stop:
            return  # stopping: the loops were cancelled on purpose
        error = task.exception()
        if error is None or isinstance(error, asyncio.CancelledError):
            return
        log.error(
            "a pipeline stage failed; stopping the worker (exit code 1)",
            error=repr(error),
            exc_info=error,
        )
        self.exit_code = 1
        os.kill(os.getpid(), signal.SIGTERM)  # the worker's own graceful shutdown path

    async def on_stop(self) -> None:
        grace = self.stop_grace_s
        if grace is not None:
            hard_stop(grace, lambda: self.exit_code)
        loops = getattr(self, "_loops", None)
        if loops is not None and not loops.done():
            loops.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loops
        for stage in reversed(self.pipeline.stages):
            try:
                async with asyncio.timeout(STAGE_STOP_S):
                    await stage.stop()
            except Exception as exc:  # keep stopping the others
                log.warning(
                    "stage did not stop cleanly", stage=type(stage).__name__, error=repr(exc)
                )
        if self.metrics is not None:
            self.metrics.close()
        log.info("worker stopped")


def hard_stop(grace_s: float, exit_code: Callable[[], int]) -> threading.Timer:
    """End the process after `grace_s` unless it exited by itself (a daemon timer thread)."""

    def end() -> None:
        log.error("worker did not stop in time; ending it", grace_s=grace_s)
        os._exit(exit_code() or 1)

    timer = threading.Timer(grace_s, end)
    timer.daemon = True
    timer.start()
    return timer


class _Worker(faust.Worker):
    """faust's Worker, stopping the pipeline first (every stage commits its offsets) and only
    then the faust App (whatever it waits for, the pipeline's grace timer bounds)."""

    def __init__(self, app: faust.App, service: PipelineService, **kwargs: Any) -> None:
        super().__init__(app, service, **kwargs)
        self.pipeline_service = service
        # faust's progress spinner writes cursor control codes to stdout, terminal or not: a
        # worker's output is a log (structlog's lines, "Ready" once started)
        self.spinner = None

    async def on_stop(self) -> None:
        await self.pipeline_service.stop()
        await super().on_stop()

    def _setproctitle(self, info: str, *, ident: str = "") -> None:
        """faust titles the process after its App id, the same in every process; ours names
        the stages it runs, so `ps` tells the supervisor's children apart."""
        stages = ",".join(self.pipeline_service.pipeline.names)
        setproctitle(f"responder worker --stages {stages} ({info})")


class _Boot(BootStrategy):
    """faust starts no Kafka client of its own: the stages have theirs. (A faust consumer would
    only join a group of its own, rebalance it whenever a worker comes or goes, and could hold
    up a worker's stop in the middle of such a rebalance.)"""

    enable_kafka = False


class _App(faust.App):
    BootStrategy = _Boot


def create_app(settings: Settings) -> faust.App:
    # The id stays per deployment (prefix), though the App no longer joins a consumer group.
    app_id = f"{settings.kafka.group_prefix}-worker"
    return _App(
        app_id,
        datadir=str(settings.kafka.data_dir / f"{app_id}-data"),
        broker=f"kafka://{settings.kafka.bootstrap_servers}",
        broker_credentials=faust_credentials(settings.kafka),
        store="memory://",
        processing_guarantee="at_least_once",
        web_enabled=False,
        autodiscover=False,
        topic_partitions=settings.kafka.partitions,
    )


def run_worker(settings: Settings, pipeline: Pipeline) -> None:
    """Block running the worker until SIGINT/SIGTERM; exit 1 if a stage failed.

    The broker is awaited first, for as long as it takes (an orchestrator may start workers
    before Kafka): a worker never exits because of an outage.
    """
    asyncio.run(wait_for_broker(settings.kafka))
    settings.kafka.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # faust makes one level
    app = create_app(settings)
    service = PipelineService(settings, pipeline, stop_grace_s=STOP_GRACE_S)
    worker = _Worker(
        app,
        service,
        loglevel=settings.log_level.lower(),
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as done:
        raise SystemExit(service.exit_code or done.code) from None
