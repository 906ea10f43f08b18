"""The sync job: the MLflow registry and the declared files into the store, now and periodically.

One run reads everything first (declared files, then the registry), then replaces the stored
sources in one transaction: `mlflow`, each `assets/<file>`, the files that are gone, and the
webhook claims the registry read supersedes. Failures leave the store as it was: a registry
that cannot be read writes nothing; invalid declared files keep their previous claims (and are
reported) while the registry part still syncs. A missing assets directory is not "no assets":
the declared claims are kept and a warning says why.

`run_periodically` is the async loop for a long-running process (the worker's stage, later),
`SyncStage` the same with the worker's start / run / stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog
from sqlalchemy import Engine
from sqlmodel import Session

from responder.assets.declared import Declared, load_declared
from responder.assets.mlflow_source import Limits, RegistryClient, read_registry
from responder.assets.model import DECLARED_PREFIX, MLFLOW, WEBHOOK
from responder.assets.store import drop_sources, forget, replace_source
from responder.yamlfiles import YamlFileError

log = structlog.get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SyncResult:
    """What one run wrote (source -> nodes, edges), left alone, and could not use."""

    at: datetime
    written: dict[str, tuple[int, int]] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)  # declared files that are gone
    forgotten: int = 0  # webhook rows the registry read superseded
    skipped: list[str] = field(default_factory=list)  # registry items that could not be read
    truncated: bool = False  # a registry limit was reached
    errors: list[str] = field(default_factory=list)  # declared files: file:line: field: ...
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    registry_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class AssetSync:
    """One configured sync: where declared files are, which registry (None: not configured)."""

    engine: Engine
    assets_dir: Path
    client: RegistryClient | None = None
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], datetime] = _now

    def run_once(self) -> SyncResult:
        started = time.perf_counter()
        result = SyncResult(at=self.clock())
        declared = self._declared(result)
        registry = None
        if self.client is not None:
            registry = read_registry(self.client, at=result.at, limits=self.limits)
            result.skipped, result.truncated = registry.skipped, registry.truncated
            result.registry_seconds = registry.seconds
        else:
            result.warnings.append("MLflow is not configured (RESPONDER_MLFLOW__TRACKING_URI)")
        with Session(self.engine) as session, session.begin():
            if registry is not None:
                result.written[MLFLOW] = replace_source(
                    session, MLFLOW, registry.nodes, registry.edges
                )
                result.forgotten = forget(session, WEBHOOK, before=result.at)
            if declared is not None:
                for part in declared:
                    result.written[part.source] = replace_source(
                        session, part.source, part.nodes, part.edges
                    )
                result.dropped = drop_sources(
                    session, DECLARED_PREFIX, keep={p.source for p in declared}
                )
        result.seconds = time.perf_counter() - started
        log.info(
            "assets.synced",
            sources=len(result.written),
            nodes=sum(n for n, _ in result.written.values()),
            edges=sum(e for _, e in result.written.values()),
            dropped=result.dropped,
            skipped=len(result.skipped),
            truncated=result.truncated,
            errors=len(result.errors),
            seconds=round(result.seconds, 3),
        )
        return result

    def _declared(self, result: SyncResult) -> list[Declared] | None:
        if not self.assets_dir.is_dir():
            result.warnings.append(
                f"{self.assets_dir}: no assets directory; declared assets left as they were"
            )
            return None
        try:
            return load_declared(self.assets_dir, result.at)
        except YamlFileError as exc:
            result.errors.extend(exc.messages)
            return None


async def run_periodically(
    sync: Callable[[], SyncResult], interval_s: float, stop: asyncio.Event
) -> int:
    """Run `sync` in a thread now and every `interval_s` until `stop` is set; a failed run is
    logged and the loop goes on. Returns how many runs completed."""
    runs = 0
    while not stop.is_set():
        try:
            result = await asyncio.to_thread(sync)
            runs += 1
            for message in result.errors:
                log.error("assets.declared_invalid", message=message)
        except Exception:
            log.exception("assets.sync_failed")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval_s):
                await stop.wait()
    return runs


class SyncStage:
    """The periodic sync with a worker stage's start / run / stop."""

    def __init__(self, sync: AssetSync, interval_s: float) -> None:
        self.sync = sync
        self.interval_s = interval_s
        self._stop = asyncio.Event()
        self.runs = 0

    async def start(self) -> None:
        self._stop.clear()

    async def run(self) -> None:
        self.runs = await run_periodically(self.sync.run_once, self.interval_s, self._stop)

    async def stop(self) -> None:
        self._stop.set()
