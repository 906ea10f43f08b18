"""How a worker process uses Python's cyclic garbage collector.

A stream stage allocates mostly short-lived objects (a batch's records and messages), but the
correlation stage also keeps long-lived window state: several tracked containers per live group.
Left to the collector, every object that survives a young collection is scanned again in the
next older one: with 5,000 new groups a second, one generation-1 collection scanned about a
million objects and stopped the stage for ~0.5 s (the p99 spikes of the latency benchmark).

The ingest stage's routing caches grow the same way (a route and a partition per new group
key): one generation-1 collection there stopped it 68 ms. So: fewer, cheaper collections from
the start (`tune_gc`), and what has survived for a while is frozen out of collection
(`Promoter`, stepped by both stages' loops): it is still freed by reference counting when its last
reference goes, but a cycle among frozen objects is only found when the promoter reclaims, which
it does when the stage is idle (or, on a stream that is never idle, at the latest every
`reclaim_within_s`): everything is unfrozen and collected in one full pass.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Callable, Iterator

import structlog

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


class Promoter:
    """Freezes the objects that survived `every_s` out of collection; reclaims cycles among
    them (unfreeze, one full collection) once the stage is idle and `reclaim_every_s` passed,
    or in any case after `reclaim_within_s`. Call `step` once per loop round of the stage."""

    def __init__(
        self,
        *,
        every_s: float = 1.0,
        reclaim_every_s: float = 600.0,
        reclaim_within_s: float = 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every_s = every_s
        self.reclaim_every_s = reclaim_every_s
        self.reclaim_within_s = reclaim_within_s
        self.monotonic = monotonic
        now = self.monotonic()
        self.frozen = now
        self.reclaimed = now
        self.reclaims = 0

    def step(self, *, idle: bool) -> None:
        now = self.monotonic()
        since = now - self.reclaimed
        if since >= self.reclaim_within_s or (idle and since >= self.reclaim_every_s):
            self.reclaim()
            return
        if now - self.frozen >= self.every_s:
            gc.freeze()
            self.frozen = now

    def reclaim(self) -> None:
        """Unfreeze everything, collect it in one full pass, freeze what is left."""
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self.frozen = self.reclaimed = self.monotonic()
        self.reclaims += 1
        log.debug(
            "garbage reclaimed",
            objects=found,
            frozen=gc.get_freeze_count(),
            seconds=round(time.perf_counter() - started, 3),
        )


_paused_lock = threading.Lock()
_paused = 0  # threads inside `batch_uncollected`
_paused_enabled = False  # whether the collector was on when the first of them went in


@contextlib.contextmanager
def batch_uncollected() -> Iterator[None]:
    """No garbage collection while a bounded batch is built and stored (the sink's transaction,
    in a thread): its rows, bodies and records are alive until it ends, so every young
    collection inside scanned them all and promoted them, to be scanned again in the next
    generation (12 % of the sink's CPU in `bench/sink.py`), and they are freed by reference
    counting as it ends. Unlike `collection_paused`, nothing is frozen. Threads may nest: the
    collector is turned off by the first one in and back on by the last one out."""
    global _paused, _paused_enabled
    with _paused_lock:
        if _paused == 0:
            _paused_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _paused_lock:
            _paused -= 1
            if _paused == 0 and _paused_enabled:
                gc.enable()


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No garbage collection inside; what was built inside is frozen out of later collections
    (a restore: millions of long-lived objects with no cycles to find, which the next young
    collection would otherwise scan all at once)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
