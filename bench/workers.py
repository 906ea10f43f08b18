"""The plain `responder worker` command as a user runs it, measured from outside, and the
correlation stage's restore from a large changelog. Used by bench/pipeline.py.

A worker is a real process tree (the supervisor and its children) on topics of its own. The
bench's events are written to its events topic first, so the worker drains a backlog as the raw
consumer does (writing them while it drains took ~0.6 of a core from it on two cores: the load
generator's `send` per record is costly Python). The clock starts at the ingest group's first
commit (what it had committed then is not counted, nor the CPU spent until then: start-up and
the first batch). Three times are taken from it: until every incident change is on the
incidents topic (the topic's end, read every 20 ms, reached what it finally holds: the default
worker's rate, as the issue of record defines it); until the ingest and correlation groups have
committed everything (the correlation stage writes its window state to the changelog once it is
idle, then commits: a drain's last flush, ~46k keys and ~60 MB here, is most of the gap); and,
for end to end, until the sink group has committed every incident change (each committed only
after its SQL transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import create_engine, make_url, text

from responder.settings import Settings, as_environment, merged
from responder.storage.database import make_engine, upgrade
from responder.streams.correlate import CorrelateStage
from responder.streams.supervisor import storing_processes, worker_layout
from responder.streams.topics import create_topics

SETTLE_S = 6.0  # after every child logged "worker started": consumer groups join and settle
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class WorkerRun:
    events: int  # drained while the clock ran
    to_incidents_s: float  # every incident change on the incidents topic
    committed_s: float  # ... and every input offset committed (the window state written)
    stored_s: float | None
    cpu_s: float  # every process of the worker, while the clock ran

    @property
    def rate(self) -> float:
        return self.events / self.to_incidents_s

    @property
    def committed_rate(self) -> float:
        return self.events / self.committed_s

    @property
    def stored_rate(self) -> float:
        return self.events / (self.stored_s or float("inf"))

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.events * 1e6


def schema_url(base: str, schema: str) -> str:
    """`base` with every connection's search_path set to `schema`."""
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def pg_schema(base: str) -> Any:
    """A fresh PostgreSQL schema, migrated (dropped afterwards); yields its URL."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = schema_url(base, schema)
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def children_of(pid: int) -> list[str]:
    """The live child pids of `pid` (Linux /proc)."""
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of `pid` and its live children (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return own + sum(process_tree_cpu(int(k)) for k in children_of(pid))


class Offsets:
    """Committed offsets of consumer groups and ends of topics, asked of the broker."""

    def __init__(self, bootstrap: str) -> None:
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)

    async def __aenter__(self) -> Offsets:
        await self.admin.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def ends(self, topic: str) -> dict[int, int]:
        parts = self.consumer.partitions_for_topic(topic)
        if not parts:
            await self.consumer._client.force_metadata_update()
            parts = self.consumer.partitions_for_topic(topic) or set()
        ends = await self.consumer.end_offsets([TopicPartition(topic, p) for p in parts])
        return {tp.partition: end for tp, end in ends.items()}

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        done = await self.admin.list_consumer_group_offsets(group)
        return {tp.partition: meta.offset for tp, meta in done.items() if tp.topic == topic}

    async def caught_up(self, group: str, topic: str) -> bool:
        ends = await self.ends(topic)
        got = await self.committed(group, topic)
        return bool(ends) and all(got.get(p, 0) >= end for p, end in ends.items() if end)


@contextlib.asynccontextmanager
async def worker_process(
    overrides: dict[str, Any],
    args: Sequence[str],
    log_path: Path,
    cpus: str | None = None,
    source: Path | None = None,
    *,
    settle: bool = True,
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """`responder worker ARGS` with the settings `overrides` in its environment (the code of
    `source`, another checkout, when given: however many processes it runs, it has started them
    all before the first logs "worker started"); settled on entry (with `settle`; else just
    launched), stopped with SIGTERM on exit (the exit code must be 0)."""
    env = {**os.environ, **as_environment(overrides)}
    env.update(RESPONDER_LOG_FORMAT="json", RESPONDER_LOG_LEVEL="INFO")
    if source is not None:
        env["PYTHONPATH"] = os.path.abspath(source)  # noqa: ASYNC240
    argv = [sys.executable, "-m", "responder", "worker", *args]
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    stages = args[args.index("--stages") + 1] if "--stages" in args else "all"
    count = int(args[args.index("--processes") + 1]) if "--processes" in args else None
    settings = merged(Settings(), overrides)  # the environment's too, as the child's
    storing = storing_processes(
        make_url(settings.database.url).get_backend_name(), settings.kafka.partitions
    )
    processes = len(worker_layout(stages, count, storing=storing))
    with log_path.open("wb") as log:
        # `python -m` looks in its working directory first: run `source` from there
        proc = subprocess.Popen(  # noqa: ASYNC220
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=source
        )
        try:
            while settle:
                text = log_path.read_text(errors="replace")  # noqa: ASYNC240
                started = text.count('"worker started"')
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited early; see {log_path}")
                if source is not None and started:  # its supervisor's children, if any
                    processes = max(1, len(children_of(proc.pid)))
                if started >= processes:
                    break
                await asyncio.sleep(0.1)
            if settle:
                await asyncio.sleep(SETTLE_S)
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 60)
            if code != 0:
                print(f"    (worker exited {code}; see {log_path})", flush=True)


async def drain_with_worker(
    settings: Settings,
    overrides: dict[str, Any],
    values: list[bytes],
    produce: Any,
    args: Sequence[str],
    log_path: Path,
    *,
    stored: bool,
    cpus: str | None = None,
    source: Path | None = None,
) -> WorkerRun:
    """Write `values` to the worker's fresh events topic, start the worker, time its drain."""
    kafka = settings.kafka
    t = kafka.topics
    group = kafka.group_prefix
    await create_topics(kafka.bootstrap_servers, [t.events], kafka.partitions)
    await produce(kafka.bootstrap_servers, t.events, values)
    n = len(values)
    async with (
        Offsets(kafka.bootstrap_servers) as offsets,
        worker_process(overrides, args, log_path, cpus, source, settle=False) as proc,
    ):

        async def until(done: Any) -> None:
            """Poll `done()` every 20 ms while the worker lives."""
            while not await done():
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited early; see {log_path}")
                await asyncio.sleep(0.02)

        async def ingested() -> int:
            return sum((await offsets.committed(f"{group}-ingest", t.events)).values())

        # the watcher starts before the clock, so its client's start-up is not timed
        async with watching(kafka.bootstrap_servers, t.incidents) as grown:
            await until(ingested)
            first, start, cpu0 = await ingested(), time.perf_counter(), process_tree_cpu(proc.pid)
            await until(lambda: offsets.caught_up(f"{group}-ingest", t.events))
            await until(lambda: offsets.caught_up(f"{group}-correlate", t.correlate))
            committed = time.perf_counter() - start
        final = sum((await offsets.ends(t.incidents)).values())
        hit = next((when for when, total in grown if total >= final), None) if final else None
        if hit is None or hit <= start:
            print(
                "  (the last incident change was not seen while the clock ran: timed to the commit)"
            )
            hit = start + committed
        stored_s = None
        if stored:
            await until(lambda: offsets.caught_up(f"{group}-sink", t.incidents))
            stored_s = time.perf_counter() - start
        cpu = process_tree_cpu(proc.pid) - cpu0
    return WorkerRun(n - first, hit - start, committed, stored_s, cpu)


@contextlib.asynccontextmanager
async def watching(bootstrap: str, topic: str) -> AsyncIterator[list[tuple[float, int]]]:
    """(perf_counter, records on `topic`) each time the count changed, read every 20 ms while
    the block runs (stamped when asked, so a sample is late by at most the interval): when a
    worker's last incident change reached the topic, apart from when it committed the offsets
    behind it (after writing its window state: the final flush). A failing read fails the
    block's exit rather than leaving the samples short."""
    grown: list[tuple[float, int]] = []

    async def watch(probe: Offsets) -> None:
        while True:
            asked = time.perf_counter()
            total = sum((await probe.ends(topic)).values())
            if not grown or total != grown[-1][1]:
                grown.append((asked, total))
            await asyncio.sleep(0.02)

    async with Offsets(bootstrap) as probe:
        task = asyncio.ensure_future(watch(probe))
        try:
            yield grown
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# --- restore ---------------------------------------------------------------------------------


async def write_changelog(
    settings: Settings, rule_id: str, body: dict[str, Any], keys: int
) -> None:
    """Write `keys` live window states (one event each, as the changelog holds them) to a fresh
    changelog topic."""
    from aiokafka import AIOKafkaProducer

    kafka = settings.kafka
    await create_topics(kafka.bootstrap_servers, [kafka.topics.changelog], kafka.partitions)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers, linger_ms=20, max_batch_size=1024 * 1024
    )
    await producer.start()
    try:
        futures = []
        for i in range(keys):
            doc = dict(body, id=f"restore-{i}")
            value = orjson.dumps(
                {
                    "events": [[1.0e9 + i, 0, doc]],
                    "incident": None,
                    "max_time": 1.0e9 + i,
                    "next_seq": 1,
                }
            )
            key = f"{rule_id}|g{i}".encode()
            futures.append(
                await producer.send(
                    kafka.topics.changelog, value, key=key, partition=i % kafka.partitions
                )
            )
            if len(futures) >= 50_000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@dataclass
class Restored:
    keys: int
    wall_s: float
    cpu_s: float  # this process's CPU time (the broker's is not counted)


async def time_restore(settings: Settings, keys: int) -> Restored:
    """Time a correlation stage restoring every partition of the changelog `write_changelog`
    wrote (through `on_assigned`, as the stage does when it is given its partitions)."""
    from responder import bootstrap

    kafka = settings.kafka
    # Every key must stay live: the default cap on live groups per rule (100k per correlation
    # partition) would evict most of them while restoring (it once cut 1M keys to ~400k).
    correlation = settings.correlation.model_copy(update={"max_groups_per_rule": keys})
    stage = CorrelateStage(kafka, bootstrap.rules(settings), correlation)
    stage._clients()
    await stage.producer.start()
    await stage.restorer.start()
    try:
        start, cpu = time.perf_counter(), time.process_time()
        await stage.on_assigned(
            [TopicPartition(kafka.topics.correlate, p) for p in range(kafka.partitions)]
        )
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        restored = stage.stats.restored_keys
    finally:
        await stage.restorer.stop()
        await stage.producer.stop()
        # made by `_clients`, never started: closed all the same
        await stage.changelog_producer.stop()
        await stage.consumer.stop()
    if restored != keys:
        raise RuntimeError(f"restored {restored} of {keys} keys")
    return Restored(restored, took, cpu)


async def restore_run(settings: Settings, rule_id: str, body: dict[str, Any], keys: int) -> float:
    """Write `keys` live window states to a fresh changelog topic, then time a correlation stage
    restoring every partition of it (seconds)."""
    await write_changelog(settings, rule_id, body, keys)
    return (await time_restore(settings, keys)).wall_s
