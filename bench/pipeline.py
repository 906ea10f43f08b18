"""Pipeline benchmark: our worker pipeline vs a raw aiokafka consumer on the same topic.

1. writes N synthetic events (default 200k, 10k distinct groups, matching the shipped rules) to a
   fresh 4-partition topic;
2. (a) a raw aiokafka consumer drains it (`getmany` + `json.loads`): the baseline;
3. (b) the plain `responder worker` command (a process per stage group, the SQL sink on
   PostgreSQL) drains the same topic; we time until every record was correlated and every
   incident change produced, and separately until the sink stored them; (a) and (b) run
   `--repeat` times, interleaved, and the ratios compare their medians (this machine varies by
   ~10% run to run); `--before DIR` adds another checkout's worker to the interleaving;
   (b') `--stages ingest` and `--stages correlate` processes, for the CPU per stage, then the
   sink alone on SQLite and PostgreSQL (with the shipped playbooks: runs are created), and the
   default worker's sinks on PostgreSQL (one per core, the extra ones on standby);
4. latency: the plain `responder worker` (its own process tree, PostgreSQL) fed events at a
   steady rate (`--rates`, default 500, 2k and 5k/s), each opening an incident; p50/p99 of
   (incident change timestamp - event timestamp) on the broker; and the cores its process tree
   uses at a low rate (`--low-load-rate`, 100/s); `--only latency` measures only these.
Prints events/s of each and the ratio b/a. Run: `make bench` (or `python bench/pipeline.py -h`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from workers import (
    WorkerRun,
    drain_with_worker,
    pg_schema,
    process_tree_cpu,
    restore_run,
    worker_process,
)

from responder import bootstrap
from responder.logs import configure
from responder.settings import Settings, merged
from responder.streams.collector import tune_gc
from responder.streams.records import read
from responder.streams.standby import JOIN_BACKLOG
from responder.streams.supervisor import default_processes, storing_processes, worker_layout
from responder.streams.topics import create_topics, ensure_topics

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' helpers
from tests.support.harness import consume_all

T0 = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)


def synthetic(n: int, groups: int, seed: int = 7) -> list[bytes]:
    """Events that exercise every shipped rule; ~300 B each; time advances through the run."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        g = rng.randrange(groups)
        at = (T0 + timedelta(seconds=i * 0.05)).isoformat().replace("+00:00", "Z")
        roll = rng.random()
        if roll < 0.5:
            doc = {
                "type": "input.adversarial",
                "resource": {"kind": "endpoint", "id": f"ep-{g}"},
                "actor": {"ip": f"10.0.{g % 250}.{rng.randrange(250)}"},
                "attributes": {"score": round(rng.random(), 3), "detector": "squeeze"},
            }
        elif roll < 0.8:
            doc = {
                "type": "key.used",
                "resource": {"kind": "api_key", "id": f"AKIA{g:012d}"},
                "actor": {"ip": f"198.51.{g % 200}.{rng.randrange(4)}"},
                "attributes": {"api": "s3:GetObject", "region": "eu-west-1"},
            }
        elif roll < 0.9:
            doc = {
                "type": "secret.leaked",
                "resource": {"kind": "api_key", "id": f"AKIA{g:012d}"},
                "attributes": {"file": "deploy/values.yaml", "line": rng.randrange(400)},
            }
        else:
            doc = {
                "type": "vulnerability.found",
                "resource": {"kind": "image", "id": f"registry/ml/serving-{g}:1.0"},
                "labels": {"env": "prod", "component": "model-serving"},
                "attributes": {"cve": f"CVE-2025-{rng.randrange(99999)}", "cvss": 9.8},
            }
        doc.update(
            id=f"ev-{i}",
            source="bench",
            time=at,
            severity=rng.choice(["low", "medium", "high", "critical"]),
            title=f"synthetic {doc['type']} #{i}",
        )
        out.append(json.dumps(doc).encode())
    return out


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    start = time.perf_counter()
    futures = []
    for v in values:
        futures.append(
            await producer.send(topic, v, key=v[v.find(b'"id": "') : v.find(b'"id": "') + 24])
        )
    await asyncio.gather(*futures)
    await producer.stop()
    return time.perf_counter() - start


async def raw_consumer(bootstrap: str, topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got = 0
    start = time.perf_counter()
    while got < n:
        batch = await consumer.getmany(timeout_ms=500, max_records=5000)
        for msgs in batch.values():
            for m in msgs:
                json.loads(m.value)
                got += 1
    elapsed = time.perf_counter() - start
    await consumer.stop()
    return elapsed


def overrides_for(bootstrap: str, run: str, db_url: str, rules: Path) -> dict[str, Any]:
    """The settings of one measured deployment: topics and groups of its own, a database."""
    names = ("events", "dlq", "correlate", "changelog", "incidents", "commands", "reports")
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_prefix": f"bench-{run}",
            "topics": {name: f"bench.{run}.{name}" for name in names},
        },
        "database": {"url": db_url},
        "rules_dir": str(rules.resolve()),
        # correlation only: no playbooks
        "playbooks": {"dir": tempfile.mkdtemp(prefix="responder-bench-playbooks-")},
    }


def settings_for(bootstrap: str, run: str, db: Path | str, rules: Path) -> Settings:
    url = db if isinstance(db, str) else f"sqlite:///{db}"
    return merged(Settings(), overrides_for(bootstrap, run, url, rules))


@contextlib.asynccontextmanager
async def running(
    settings: Settings, stages: tuple[str, ...] = ("sink", "correlate", "ingest")
) -> AsyncIterator[bootstrap.Pipeline]:
    """The worker's stages, started in this event loop, stopped on exit."""
    await ensure_topics(settings.kafka)
    p = bootstrap.pipeline(settings, stages=stages)
    for stage in p.stages:
        await stage.start()
    tune_gc()
    tasks = [asyncio.ensure_future(stage.run()) for stage in p.stages]
    try:
        yield p
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for stage in reversed(p.stages):
            await stage.stop()


TRACE = bool(os.environ.get("BENCH_TRACE"))
COUNTERS = (
    "events",
    "records",
    "correlated",
    "changes",
    "stored",
    "applied",
    "cpu_ms",  # CPU since `first_ms`
    "first_ms",  # time.monotonic() when the child first saw its stages make progress (0: not yet)
    "at_first",  # how much progress it saw then (events, records or changes: its stage's unit)
)
"""What each stage process publishes. A stage is timed from its first progress, not from the
start signal: its start-up (imports done, a database migrated, a consumer group joined) is not
per-event work, and counted in it made the stage rates and CPU per event depend on how long a
group join took. What it did before that first look (the batches it handled since the poll
before, 20 ms earlier) is left out of both the count and the time (`_since_first`). A child
writes `at_first` and `first_ms` before the progress counters that show it: the parent never
sees progress without them."""


def _stage_process(
    settings_json: str, stages: tuple[str, ...], counters: Any, gates: tuple[Any, Any, Any]
) -> None:
    """Child process: run some stages (as `responder worker --stages ...`), publish counters."""
    configure("WARNING", "console")
    ready, go, stop = gates
    settings = Settings.model_validate_json(settings_json)

    cpu_at_first = handled_cpu = 0.0

    async def main() -> None:
        nonlocal cpu_at_first, handled_cpu
        ready.release()
        while not go.is_set():  # imports and spawn are not part of the measurement
            await asyncio.sleep(0.01)
        async with running(settings, stages) as p:
            while not stop.is_set():
                counts = [0] * 6
                if p.ingest:
                    counts[0], counts[1] = p.ingest.stats.events, p.ingest.stats.records
                if p.correlate:
                    counts[2], counts[3] = p.correlate.stats.records, p.correlate.stats.changes
                if p.sink:
                    counts[4], counts[5] = p.sink.stats.changes, p.sink.stats.applied
                progress = counts[0] + counts[2] + counts[4]
                if not counters[7] and progress:
                    cpu_at_first = _cpu()
                    counters[8] = progress
                    counters[7] = int(time.monotonic() * 1000)
                if counters[7]:
                    counters[6] = int((_cpu() - cpu_at_first) * 1000)
                counters[:6] = counts  # after `first_ms` (`COUNTERS`)
                await asyncio.sleep(0.02)
            handled_cpu = sum(s.stats.cpu_s for s in (p.ingest, p.correlate) if s is not None)

    profile = os.environ.get("BENCH_PROFILE")  # a directory: one cProfile dump per child
    if profile:
        import cProfile

        with cProfile.Profile(time.process_time) as prof:
            asyncio.run(main())
        prof.dump_stats(f"{profile}/{'-'.join(stages)}.prof")
    else:
        asyncio.run(main())
    if TRACE:
        print(
            f"{'+'.join(stages)}: cpu {_cpu() - cpu_at_first:.2f}s after its first progress, "
            f"in handle {handled_cpu:.2f}s",
            flush=True,
        )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _spawn(
    ctx: Any, settings: Settings, roles: list[tuple[str, ...]], counters: list[Any], gates: Any
) -> list[Any]:
    """One process per role; each publishes its counters in an array of its own."""
    procs = []
    for role in roles:
        mine = ctx.Array("q", len(COUNTERS), lock=False)
        counters.append(mine)
        procs.append(
            ctx.Process(target=_stage_process, args=(settings.model_dump_json(), role, mine, gates))
        )
    for proc in procs:
        proc.start()
    return procs


def _total(counters: list[Any]) -> dict[str, int]:
    return {name: sum(c[i] for c in counters) for i, name in enumerate(COUNTERS)}


async def split_run(
    settings: Settings, n: int, sinks: dict[str, list[Settings]] | None = None
) -> dict[str, float]:
    """(b') one process per stage: ingest and correlate drain the events to the incidents topic;
    then (c) each entry of `sinks` drains the incidents topic into SQL, timed on its own: a sink
    process per Settings given (one consumer group), until they applied every change the first
    entry applied. Each stage is timed, and its CPU counted, from its first progress (`COUNTERS`).

    Returns the rates (`correlated_eps`: events/s through ingest and correlation; `sink_{name}`:
    incident changes/s), the CPU per event of each stage (`{stage}_cpu_us`), `records` and
    `changes`."""
    ctx = multiprocessing.get_context("spawn")
    counters: list[Any] = []
    ready, go, stop = ctx.Semaphore(0), ctx.Event(), ctx.Event()
    await ensure_topics(settings.kafka)
    procs = _spawn(ctx, settings, [("ingest",), ("correlate",)], counters, (ready, go, stop))
    for _ in procs:
        await asyncio.to_thread(ready.acquire)
    result: dict[str, float] = {}
    try:
        go.set()
        start = time.monotonic()
        while True:
            c = _total(counters)
            if c["events"] >= n and c["correlated"] >= c["records"]:
                break
            if TRACE:
                print(f"{time.monotonic() - start:6.2f}s", c, flush=True)
            await asyncio.sleep(0.02)
        end = time.monotonic()
        if not c["records"]:
            raise RuntimeError("no rule matched the benchmark's events: nothing to correlate")
        ingest, correlate = counters[0], counters[1]
        timed, seconds, own = _since_first([ingest], n, end)
        result["correlated_eps"] = timed / seconds
        result["records"], result["changes"] = c["records"], c["changes"]
        result["ingest_cpu_us"] = ingest[6] * 1000 / own
        *_, records_own = _since_first([correlate], c["records"], end)
        result["correlate_cpu_us"] = correlate[6] * 1000 / (n * records_own / c["records"])
        applied = None  # what the first sink applied: every change, in a fresh database
        for name, group in (sinks or {}).items():
            sink_go = ctx.Event()
            mine: list[Any] = []
            for sink in group:
                procs += _spawn(ctx, sink, [("sink",)], mine, (ready, sink_go, stop))
            for _ in group:
                await asyncio.to_thread(ready.acquire)
            counters += mine
            sink_go.set()
            while (
                sum(m[4] for m in mine) < c["changes"]
                if applied is None
                else sum(m[5] for m in mine) < applied
            ):
                await asyncio.sleep(0.05)
            timed, seconds, own = _since_first(mine, c["changes"], time.monotonic())
            result[f"sink_{name}"] = timed / seconds
            cpu_ms = sum(m[6] for m in mine)  # each process's since its own first progress
            result[f"sink_{name}_cpu_us"] = cpu_ms * 1000 / (n * own / c["changes"])
            if applied is None:
                applied = sum(m[5] for m in mine)
    finally:
        stop.set()
        for proc in procs:
            proc.join(30)
    return result


def _since_first(mine: list[Any], total: float, end: float) -> tuple[float, float, float]:
    """For processes sharing the work of `total` units, timed from their first progress
    (`COUNTERS`), ending at `end` (monotonic): (units done since the first of them saw
    progress, seconds since; units each did since its own first look, summed, for their CPU).
    A process that joined later (a standby sink) did all of its units in the first's time."""
    seen = [m for m in mine if m[7]]
    if not seen:
        raise RuntimeError("a stage process reported no progress")
    first = min(m[7] for m in seen)
    before = sum(m[8] for m in seen if m[7] == first)
    own = sum(m[8] for m in seen)
    if total - own < total / 2:  # most of it done before the first look: too few to time
        raise RuntimeError(f"too little to time: {total - own:,.0f} of {total:,.0f} units")
    return total - before, max(1e-3, end - first / 1000), total - own


@dataclass
class Probe:
    latencies: list[float]  # seconds, event written → incident change written (broker clocks)
    cores: float  # CPU of the worker's whole process tree / wall time, while events were sent
    written_at: list[float] = field(default_factory=list)  # of each latency's event, from the first
    ingest_hop: list[tuple[float, float]] = field(default_factory=list)
    """(written at, seconds from the event written to its correlation record written)"""

    def timeline(self) -> str:
        """Max latency per second of the probe, whole and of the ingest hop alone (where the
        p99 comes from: spikes or a level, ingest or correlation)."""
        whole = _worst_per_second(zip(self.written_at, self.latencies, strict=True))
        return f"{whole}\n  ... of the ingest hop: {_worst_per_second(self.ingest_hop)}"


def _worst_per_second(latencies: Iterable[tuple[float, float]]) -> str:
    worst: dict[int, float] = {}
    for at, latency in latencies:
        worst[int(at)] = max(worst.get(int(at), 0.0), latency)
    return " ".join(f"{worst[s] * 1000:.0f}" for s in sorted(worst))


async def probe_worker(
    settings: Settings,
    overrides: dict[str, Any],
    rate: int,
    seconds: float,
    log_path: Path,
    source: Path | None = None,
    *,
    timeline: bool = False,
) -> Probe:
    """The plain `responder worker` (of `source` if given; its own process tree, settled) fed
    events at a steady rate, each opening an incident: latency, and the cores it used."""
    kafka = settings.kafka
    await create_topics(kafka.bootstrap_servers, [kafka.topics.events], kafka.partitions)
    await append_time(kafka.bootstrap_servers, kafka.topics.events)
    async with worker_process(overrides, [], log_path, source=source) as proc:
        cpu = lambda: process_tree_cpu(proc.pid)  # noqa: E731
        return await _probe(settings, rate, seconds, cpu, timeline=timeline)


async def append_time(bootstrap_servers: str, topic: str) -> None:
    """Stamp `topic`'s records with the broker's append time: a probe event's latency starts
    when it is in Kafka, not when the probe's own client queued it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        config = {"message.timestamp.type": "LogAppendTime"}
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, config)])
    finally:
        await admin.close()


def probe_event(i: int) -> bytes:
    return json.dumps(
        {
            "id": f"lat-{i}",
            "source": "bench",
            "type": "vulnerability.found",
            "time": (T0 + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            "severity": "critical",
            "title": "latency probe",
            "resource": {"kind": "image", "id": f"registry/ml/lat-{i}:1"},
            "labels": {"component": "model-serving"},
            "attributes": {"cvss": 9.9},
        }
    ).encode()


PROBE_TICK_S = 0.001  # the probe writes the events due every tick, a record batch a partition


async def _probe(
    settings: Settings,
    rate: int,
    seconds: float,
    cpu: Callable[[], float],
    *,
    timeline: bool = False,
) -> Probe:
    """Events at `rate` (whole record batches, so the probe's own client keeps up at 5k/s on a
    loaded machine), each opening an incident; latency = the incident's timestamp (set by the
    correlation stage's producer) - the event's (the broker's append time)."""
    kafka = settings.kafka
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=0)
    await producer.start()
    total = int(rate * seconds)
    futures = []

    async def send(batch: Any, partition: int) -> Any:
        return await producer.send_batch(batch, kafka.topics.events, partition=partition)

    written = 0
    cpu0 = cpu()
    start = time.perf_counter()
    while written < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        batches = [producer.create_batch() for _ in range(kafka.partitions)]
        for i in range(written, due):
            partition = i % kafka.partitions
            value = probe_event(i)
            # a full batch refuses the record (after a stall of the probe, many are due at once)
            while batches[partition].append(key=None, value=value, timestamp=None) is None:
                futures.append(await send(batches[partition], partition))
                batches[partition] = producer.create_batch()
        for partition, batch in enumerate(batches):
            if batch.record_count():
                futures.append(await send(batch, partition))
        written = due
        await asyncio.sleep(PROBE_TICK_S)
    await asyncio.gather(*futures)
    cores = (cpu() - cpu0) / (time.perf_counter() - start)
    await producer.stop()
    appended = await consume_all(kafka.bootstrap_servers, kafka.topics.events, total, timeout=60)
    arrived: dict[str, float] = {}
    for m in appended:
        arrived[json.loads(m.value)["id"]] = m.timestamp / 1000
    first = min(arrived.values(), default=0.0)
    probe = Probe([], cores)
    for m in await consume_all(kafka.bootstrap_servers, kafka.topics.incidents, total, timeout=60):
        for e in json.loads(m.value)["events"]:
            if e["id"] in arrived:
                probe.latencies.append(m.timestamp / 1000 - arrived[e["id"]])
                probe.written_at.append(arrived[e["id"]] - first)
    if timeline:
        for m in await consume_all(
            kafka.bootstrap_servers, kafka.topics.correlate, 10**9, timeout=5
        ):
            for _, event in read(m.value)[0]:
                if event.id in arrived:
                    sent_at = arrived[event.id]
                    probe.ingest_hop.append((sent_at - first, m.timestamp / 1000 - sent_at))
    return probe


def quantiles_ms(lat: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(lat, n=100)
    return q[49] * 1000, q[98] * 1000


async def delete_bench_topics(bootstrap_servers: str, run: str) -> int:
    """Every topic this run created (the shared broker has an open-file limit)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(f"bench.{run}")]
        if mine:
            await admin.delete_topics(mine)
        return len(mine)
    finally:
        await admin.close()


async def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--bootstrap", default=Settings().kafka.bootstrap_servers)
    ap.add_argument(
        "--postgres",
        default=os.environ.get("RESPONDER_BENCH_DATABASE_URL"),
        help="PostgreSQL URL (a schema per measurement is created and dropped); "
        "default: $RESPONDER_BENCH_DATABASE_URL",
    )
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--rates", default="500,2000,5000", help="latency probe rates, events/s")
    ap.add_argument("--seconds", type=float, default=10, help="of each latency probe")
    ap.add_argument(
        "--low-load-rate",
        type=int,
        default=100,
        help="events/s, each opening an incident, at which the cores the default worker uses "
        "are measured (0: not measured)",
    )
    ap.add_argument("--low-load-seconds", type=float, default=20)
    ap.add_argument("--latency-repeat", type=int, default=1, help="runs of each latency probe")
    ap.add_argument(
        "--timeline", action="store_true", help="print each latency probe's max latency per second"
    )
    ap.add_argument(
        "--only",
        choices=("all", "latency", "throughput", "scale", "sinks"),
        default="all",
        help="latency: only the latency probes and the low-load cost; throughput: only (a) and "
        "(b), the raw drain and the default worker's (with --before too); scale: those and "
        "(b1), one worker process on one core; sinks: only (b') and the sinks, --repeat times",
    )
    ap.add_argument("--restore-keys", type=int, default=1_000_000)
    ap.add_argument("--rules", type=Path, default=Path("rules"))
    ap.add_argument(
        "--playbooks",
        type=Path,
        default=Path("playbooks"),
        help="the sink alone creates their runs",
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs of (a) and (b) (medians)")
    ap.add_argument(
        "--before",
        type=Path,
        help="another checkout (e.g. `git archive main | tar -x -C DIR`): its `responder worker` "
        "is measured too, interleaved, for a before/after in one run",
    )
    args = ap.parse_args()
    if not args.postgres:
        ap.error("--postgres or RESPONDER_BENCH_DATABASE_URL is required (make bench sets it)")
    configure("WARNING", "console")
    run = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="responder-bench-"))
    try:
        await measure(args, run, tmp)
    finally:
        print(f"deleted {await delete_bench_topics(args.bootstrap, run)} bench topics")


async def measure(args: argparse.Namespace, run: str, tmp: Path) -> None:
    if args.only == "latency":
        rows, low_load = await measure_latency(args, run)
        print()
        for what, value in rows:
            print(f"| {what} | {value} |")
        print()
        print(low_load, flush=True)
        return
    bs = args.bootstrap
    settings = settings_for(bs, run, tmp / "bench.db", args.rules)
    print(f"generating {args.events:,} events over {args.groups:,} groups ...", flush=True)
    values = synthetic(args.events, args.groups)
    n = len(values)
    size = sum(map(len, values)) / n
    await create_topics(bs, [settings.kafka.topics.events], settings.kafka.partitions)
    took = await produce(bs, settings.kafka.topics.events, values)
    print(f"wrote {n:,} events (avg {size:.0f} B) in {took:.1f}s", flush=True)
    if args.only == "sinks":
        for i in range(args.repeat):
            res, sinks = await split_sinks(args, f"{run}{i}", tmp, settings.kafka.topics.events, n)
            print(
                f"run {i + 1}: (b') ingest | correlate processes: "
                f"{res['correlated_eps']:,.0f} events/s, {int(res['changes']):,} changes; "
                f"CPU per event: ingest {res['ingest_cpu_us']:.1f}, correlate "
                f"{res['correlate_cpu_us']:.1f}, sink (PostgreSQL) "
                f"{res['sink_postgresql_cpu_us']:.1f} µs",
                flush=True,
            )
            for what, value in sink_rows(res, sinks):
                print(f"| run {i + 1}: {what} | {value} |", flush=True)
        return

    # (a) and (b) interleaved, `--repeat` times: this shared machine varies run to run.
    raw_runs: list[float] = []
    worker_runs: list[WorkerRun] = []
    before_runs: list[WorkerRun] = []
    cores = default_processes()
    # what the plain `responder worker` runs on PostgreSQL
    layout = worker_layout(
        "all", None, storing=storing_processes("postgresql", Settings().kafka.partitions)
    )
    default_label = f"{len(layout)} processes: " + " / ".join(layout)

    async def default_worker(label: str, name: str, source: Path | None = None) -> WorkerRun:
        """The plain `responder worker` (of `source` if given) to PostgreSQL, timed."""
        with pg_schema(args.postgres) as url:
            over = overrides_for(bs, f"{run}{name}", url, args.rules)
            done = await drain_with_worker(
                merged(Settings(), over),
                over,
                values,
                produce,
                [],
                tmp / f"{name}.log",
                stored=True,
                source=source,
            )
        print(
            f"{label}: {done.rate:,.0f} events/s to the incidents topic, "
            f"{done.committed_rate:,.0f} events/s committed (window state written), "
            f"{done.stored_rate:,.0f} events/s stored in PostgreSQL; "
            f"{done.cpu_us:.0f} µs CPU per event ({done.events:,} events timed)",
            flush=True,
        )
        return done

    for i in range(args.repeat):
        raw_runs.append(n / await raw_consumer(bs, settings.kafka.topics.events, n))
        print(f"(a) raw aiokafka getmany + json.loads: {raw_runs[-1]:,.0f} events/s", flush=True)
        worker_runs.append(await default_worker(f"(b) responder worker ({default_label})", f"w{i}"))
        if args.before is not None:
            before_runs.append(
                await default_worker("(before) responder worker", f"b{i}", args.before)
            )
    raw_eps = statistics.median(raw_runs)
    worker_eps = statistics.median(r.rate for r in worker_runs)
    committed_eps = statistics.median(r.committed_rate for r in worker_runs)
    e2e_eps = statistics.median(r.stored_rate for r in worker_runs)
    worker_cpu = statistics.median(r.cpu_us for r in worker_runs)
    if args.only == "throughput":
        print_throughput(n, raw_eps, worker_runs, before_runs)
        return

    # one worker process pinned to one core (the scale-out reference)
    over = overrides_for(bs, f"{run}one", f"sqlite:///{tmp / 'one.db'}", args.rules)
    one = await drain_with_worker(
        merged(Settings(), over),
        over,
        values,
        produce,
        ["--processes", "1"],
        tmp / "one.log",
        stored=False,
        cpus="0",
    )
    one_eps = one.rate
    print(f"(b1) one worker process on one core: {one_eps:,.0f} events/s", flush=True)
    if args.only == "scale":
        print(f"default worker vs one process on one core: {worker_eps / one_eps:.2f}x")
        return

    res, sinks = await split_sinks(args, run, tmp, settings.kafka.topics.events, n)
    changes = res["changes"]
    print(
        f"(b') ingest | correlate processes: {res['correlated_eps']:,.0f} events/s "
        f"({int(res['records']):,} rule/group records, {int(changes):,} incident changes)",
        flush=True,
    )

    latency_rows, low_load = await measure_latency(args, run)

    restore_s = None
    if args.restore_keys:
        sample = json.loads(values[0])
        try:
            restore_s = await restore_run(
                settings_for(bs, f"{run}r", tmp / "restore.db", args.rules),
                "adversarial-burst",
                sample,
                args.restore_keys,
            )
        except RuntimeError as exc:  # a short restore: say so, keep what was measured
            print(f"restore: {exc}", flush=True)

    print()
    print(f"| measured here ({n:,} events, {size:.0f} B, {cores} cores) | value |")
    print("|---|---|")
    rows = [
        ("raw aiokafka getmany + json.loads (median)", f"{raw_eps:,.0f} events/s"),
        (
            f"`responder worker` ({default_label}) to the incidents topic",
            f"{worker_eps:,.0f} events/s, ratio {worker_eps / raw_eps:.2f}",
        ),
        (
            "... until its input offsets are committed (window state written)",
            f"{committed_eps:,.0f} events/s, ratio {committed_eps / raw_eps:.2f}",
        ),
        (
            "... until stored in PostgreSQL",
            f"{e2e_eps:,.0f} events/s, ratio {e2e_eps / raw_eps:.2f}",
        ),
        ("CPU per event, all stages (default worker)", f"{worker_cpu:.0f} µs"),
        ("CPU per event: ingest", f"{res['ingest_cpu_us']:.0f} µs"),
        ("CPU per event: correlate", f"{res['correlate_cpu_us']:.0f} µs"),
        ("CPU per event: sink (PostgreSQL)", f"{res['sink_postgresql_cpu_us']:.0f} µs"),
        *sink_rows(res, sinks),
        ("one worker process on one core", f"{one_eps:,.0f} events/s"),
        ("default worker vs one process on one core", f"{worker_eps / one_eps:.2f}x"),
    ]
    rows += latency_rows
    if restore_s is not None:
        rows.append(
            (
                f"restore {args.restore_keys:,} window keys",
                f"{restore_s:.1f} s ({args.restore_keys / restore_s:,.0f} keys/s)",
            )
        )
    if before_runs:
        b_eps = statistics.median(r.rate for r in before_runs)
        b_com = statistics.median(r.committed_rate for r in before_runs)
        b_e2e = statistics.median(r.stored_rate for r in before_runs)
        b_cpu = statistics.median(r.cpu_us for r in before_runs)
        rows += [
            (
                "before: `responder worker` to the incidents topic",
                f"{b_eps:,.0f} events/s, ratio {b_eps / raw_eps:.2f}",
            ),
            (
                "before: ... until committed",
                f"{b_com:,.0f} events/s, ratio {b_com / raw_eps:.2f}",
            ),
            (
                "before: ... until stored in PostgreSQL",
                f"{b_e2e:,.0f} events/s, ratio {b_e2e / raw_eps:.2f}",
            ),
            ("before: CPU per event, all stages", f"{b_cpu:.0f} µs"),
        ]
    for what, value in rows:
        print(f"| {what} | {value} |")
    print()
    print(f"default worker: {worker_eps:.0f} events/s, ratio {worker_eps / raw_eps:.2f}")
    print(
        f"default worker, committed: {committed_eps:.0f} events/s, "
        f"ratio {committed_eps / raw_eps:.2f}"
    )
    print(f"end to end: {e2e_eps:.0f} events/s, ratio {e2e_eps / raw_eps:.2f}", flush=True)
    print(low_load, flush=True)


async def split_sinks(
    args: argparse.Namespace, run: str, tmp: Path, events: str, n: int
) -> tuple[dict[str, float], int]:
    """(b') a process per stage, CPU per stage; (c) the sink alone on SQLite and PostgreSQL,
    then the default worker's sinks on PostgreSQL, with the shipped playbooks: the runs the
    changes start are created (not run) in its batches. The figures, and how many sinks the
    default worker runs."""
    bs = args.bootstrap
    split = settings_for(bs, f"{run}s", tmp / f"split-{run}.db", args.rules)
    split.kafka.topics.events = events  # the same events
    split.playbooks.dir = args.playbooks.resolve()
    bootstrap.database(split)
    sinks = storing_processes("postgresql", split.kafka.partitions)
    with pg_schema(args.postgres) as url, pg_schema(args.postgres) as url_default:
        pg = settings_for(bs, f"{run}s", url, args.rules)
        pg.kafka.group_prefix += "-pg"
        pg.playbooks.dir = split.playbooks.dir
        bootstrap.database(pg)
        # the default worker's sinks on PostgreSQL: one per core, the extra ones on standby
        default = settings_for(bs, f"{run}s", url_default, args.rules)
        default.kafka.group_prefix += "-pgd"
        default.playbooks.dir = split.playbooks.dir
        extra = default.model_copy(deep=True)
        extra.worker.sink_standby_backlog = JOIN_BACKLOG
        res = await split_run(
            split,
            n,
            {
                "sqlite": [split],
                "postgresql": [pg],
                "postgresql_default": [default] + [extra] * (sinks - 1),
            },
        )
    return res, sinks


def sink_rows(res: dict[str, float], sinks: int) -> list[tuple[str, str]]:
    return [
        ("sink, SQLite", f"{res['sink_sqlite']:,.0f} incident changes/s"),
        ("sink, PostgreSQL", f"{res['sink_postgresql']:,.0f} incident changes/s"),
        (
            f"the default worker's {sinks} sinks, PostgreSQL",
            f"{res['sink_postgresql_default']:,.0f} incident changes/s",
        ),
    ]


def print_throughput(
    n: int, raw_eps: float, worker_runs: list[WorkerRun], before_runs: list[WorkerRun]
) -> None:
    """`--only throughput`: each checkout's default worker against the raw drain, medians."""
    print()
    for label, runs in (("now", worker_runs), ("before", before_runs)):
        if not runs:
            continue
        eps = statistics.median(r.rate for r in runs)
        com = statistics.median(r.committed_rate for r in runs)
        e2e = statistics.median(r.stored_rate for r in runs)
        cpu = statistics.median(r.cpu_us for r in runs)
        print(
            f"| {label}: to the incidents topic / committed / stored / CPU per event | "
            f"{eps:,.0f} ({eps / raw_eps:.2f}) / {com:,.0f} ({com / raw_eps:.2f}) / "
            f"{e2e:,.0f} ({e2e / raw_eps:.2f}) events/s / {cpu:.0f} µs |"
        )
    print(f"| raw aiokafka getmany + json.loads (median) | {raw_eps:,.0f} events/s |", flush=True)


async def measure_latency(args: argparse.Namespace, run: str) -> tuple[list[tuple[str, str]], str]:
    """Latency at each `--rates` and the cores used at `--low-load-rate`, of the plain
    `responder worker` (and of `--before`'s, interleaved); table rows and the low-load line."""
    bs = args.bootstrap
    rates = [int(r) for r in args.rates.split(",") if r]
    workers: list[tuple[str, Path | None]] = [("now", None)]
    if args.before is not None:
        workers.append(("before", args.before))
    found: dict[tuple[str, int], list[Probe]] = {}
    plan = [(rate, args.seconds) for rate in rates]
    if args.low_load_rate:
        plan.append((args.low_load_rate, args.low_load_seconds))
    for i in range(args.latency_repeat):
        for step, (rate, seconds) in enumerate(plan):
            for name, source in workers:
                with pg_schema(args.postgres) as url:
                    # topics of their own: a low-load rate among `--rates` is probed twice
                    prefix = f"{run}l{name[0]}{step}r{rate}x{i}"
                    over = overrides_for(bs, prefix, url, args.rules)
                    probe = await probe_worker(
                        merged(Settings(), over),
                        over,
                        rate,
                        seconds,
                        Path(tempfile.gettempdir()) / f"bench-{run}-lat-{name}-{rate}-{i}.log",
                        source,
                        timeline=args.timeline,
                    )
                found.setdefault((name, rate), []).append(probe)
                p50, p99 = quantiles_ms(probe.latencies) if len(probe.latencies) >= 2 else (0, 0)
                print(
                    f"latency ({name}) at {rate:,} events/s: p50 / p99 = {p50:.1f} / {p99:.1f} ms, "
                    f"{probe.cores:.2f} cores, {len(probe.latencies):,} of {int(rate * seconds):,}",
                    flush=True,
                )
                if args.timeline:
                    print(f"  max latency per second, ms: {probe.timeline()}", flush=True)
    rows: list[tuple[str, str]] = []
    for name, _ in workers:
        prefix = "" if name == "now" else "before: "
        for rate in rates:
            probes = found[(name, rate)]
            p50 = statistics.median(quantiles_ms(p.latencies)[0] for p in probes)
            p99 = statistics.median(quantiles_ms(p.latencies)[1] for p in probes)
            rows.append(
                (f"{prefix}latency p50 / p99 at {rate:,} events/s", f"{p50:.0f} / {p99:.0f} ms")
            )
        if args.low_load_rate:
            cores = statistics.median(p.cores for p in found[(name, args.low_load_rate)])
            rows.append(
                (
                    f"{prefix}cores used at {args.low_load_rate} events/s, each an incident",
                    f"{cores:.2f}",
                )
            )
    low_load = ""
    if args.low_load_rate:
        cores = statistics.median(p.cores for p in found[("now", args.low_load_rate)])
        low_load = f"low load: {cores:.2f} cores at {args.low_load_rate} events/s"
    return rows, low_load


if __name__ == "__main__":  # spawn children re-import this module: keep the guard
    asyncio.run(main())
