"""Pipeline benchmark: our worker pipeline vs a raw aiokafka consumer on the same topic.

1. writes N synthetic events (default 200k, 10k distinct groups, matching the shipped rules) to a
   fresh 4-partition topic;
2. (a) a raw aiokafka consumer drains it (`getmany` + `json.loads`): the baseline;
3. (b) the worker pipeline (ingest → correlation → incidents topic, and the SQL sink on SQLite)
   drains the same topic; we time until every record was correlated and every incident change
   produced, and separately until the sink stored them;
   (b') is the deployment that uses both cores: `responder worker --stages ingest` and
   `responder worker --stages correlate` as two processes; (a) and (b') run `--repeat` times,
   interleaved, and the ratio compares their medians (this machine varies by ~10% run to run);
4. latency: events at a steady rate (default 2k/s), each opening an incident; p50/p99 of
   (incident change timestamp - event timestamp) on the broker.
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
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from responder import bootstrap
from responder.logs import configure
from responder.settings import Settings
from responder.streams.app import tune_gc
from responder.streams.topics import create_topics, ensure_topics

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


def settings_for(bootstrap: str, run: str, db: Path, rules: Path) -> Settings:
    s = Settings()
    s.kafka.bootstrap_servers = bootstrap
    s.kafka.group_prefix = f"bench-{run}"
    t = s.kafka.topics
    t.events, t.dlq, t.correlate = (
        f"bench.{run}.events",
        f"bench.{run}.dlq",
        f"bench.{run}.correlate",
    )
    t.changelog, t.incidents = f"bench.{run}.changelog", f"bench.{run}.incidents"
    s.database.url = f"sqlite:///{db}"
    s.rules_dir = rules
    s.playbooks.dir = Path(
        tempfile.mkdtemp(prefix="responder-bench-playbooks-")
    )  # correlation only
    return s


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


async def pipeline_run(settings: Settings, n: int, expect_sql: bool) -> dict[str, float]:
    """(b) in one process: every stage on this event loop, as `responder worker` runs by default."""
    result: dict[str, float] = {}
    async with running(settings) as p:
        assert p.ingest and p.correlate and p.sink
        start = time.perf_counter()
        while p.ingest.stats.events < n or p.correlate.stats.records < p.ingest.stats.records:
            await asyncio.sleep(0.05)
        result["correlated_s"] = time.perf_counter() - start
        result["records"] = p.ingest.stats.records
        result["changes"] = p.correlate.stats.changes
        if expect_sql:
            while p.sink.stats.changes < p.correlate.stats.changes:
                await asyncio.sleep(0.05)
            result["stored_s"] = time.perf_counter() - start
            result["applied"] = p.sink.stats.applied
    return result


TRACE = bool(os.environ.get("BENCH_TRACE"))
COUNTERS = ("events", "records", "correlated", "changes", "stored", "applied")


def _stage_process(
    settings_json: str, stages: tuple[str, ...], counters: Any, gates: tuple[Any, Any, Any]
) -> None:
    """Child process: run some stages (as `responder worker --stages ...`), publish counters."""
    configure("WARNING", "console")
    ready, go, stop = gates
    settings = Settings.model_validate_json(settings_json)

    cpu_at_go = handled_cpu = 0.0

    async def main() -> None:
        nonlocal cpu_at_go, handled_cpu
        ready.release()
        while not go.is_set():  # imports and spawn are not part of the measurement
            await asyncio.sleep(0.01)
        cpu_at_go = _cpu()
        async with running(settings, stages) as p:
            while not stop.is_set():
                if p.ingest:
                    counters[0], counters[1] = p.ingest.stats.events, p.ingest.stats.records
                if p.correlate:
                    counters[2], counters[3] = p.correlate.stats.records, p.correlate.stats.changes
                if p.sink:
                    counters[4], counters[5] = p.sink.stats.changes, p.sink.stats.applied
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
            f"{'+'.join(stages)}: cpu {_cpu() - cpu_at_go:.2f}s after go, "
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
    settings: Settings,
    n: int,
    expect_sql: bool,
    roles: list[tuple[str, ...]] | None = None,
) -> dict[str, float]:
    """(b') one process per stage: ingest and correlate drain the events to the incidents topic;
    then (c) a sink process drains the incidents topic into SQL, timed on its own."""
    ctx = multiprocessing.get_context("spawn")
    counters: list[Any] = []
    ready, go, stop = ctx.Semaphore(0), ctx.Event(), ctx.Event()
    await ensure_topics(settings.kafka)
    roles = roles or [("ingest",), ("correlate",)]
    procs = _spawn(ctx, settings, roles, counters, (ready, go, stop))
    for _ in procs:
        await asyncio.to_thread(ready.acquire)
    result: dict[str, float] = {}
    try:
        go.set()
        start = time.perf_counter()
        while True:
            c = _total(counters)
            if c["events"] >= n and c["correlated"] >= c["records"]:
                break
            if TRACE:
                print(f"{time.perf_counter() - start:6.2f}s", c, flush=True)
            await asyncio.sleep(0.02)
        result["correlated_s"] = time.perf_counter() - start
        result["records"], result["changes"] = c["records"], c["changes"]
        if expect_sql:
            sink_go = ctx.Event()
            procs += _spawn(ctx, settings, [("sink",)], counters, (ready, sink_go, stop))
            await asyncio.to_thread(ready.acquire)
            sink_go.set()
            start = time.perf_counter()
            while _total(counters)["stored"] < c["changes"]:
                await asyncio.sleep(0.05)
            result["sink_s"] = time.perf_counter() - start
            result["applied"] = _total(counters)["applied"]
    finally:
        stop.set()
        for proc in procs:
            proc.join(30)
    return result


async def latency(settings: Settings, rate: int, seconds: float) -> list[float]:
    """Events at a steady rate, each opening an incident; broker timestamps of both ends."""
    async with running(settings):
        await asyncio.sleep(3)  # let the consumer groups settle
        return await _probe(settings, rate, seconds)


async def _probe(settings: Settings, rate: int, seconds: float) -> list[float]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, linger_ms=1)
    await producer.start()
    total = int(rate * seconds)
    sent: dict[str, float] = {}
    start = time.perf_counter()
    for i in range(total):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        eid = f"lat-{i}"
        doc = {
            "id": eid,
            "source": "bench",
            "type": "vulnerability.found",
            "time": (T0 + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            "severity": "critical",
            "title": "latency probe",
            "resource": {"kind": "image", "id": f"registry/ml/lat-{i}:1"},
            "labels": {"component": "model-serving"},
            "attributes": {"cvss": 9.9},
        }
        sent[eid] = time.time()
        await producer.send(settings.kafka.topics.events, json.dumps(doc).encode())
    await producer.flush()
    consumer = AIOKafkaConsumer(
        settings.kafka.topics.incidents,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    lat: list[float] = []
    deadline = time.perf_counter() + 60
    while len(lat) < total and time.perf_counter() < deadline:
        batch = await consumer.getmany(timeout_ms=500)
        for msgs in batch.values():
            for m in msgs:
                change = json.loads(m.value)
                for e in change["events"]:
                    if e["id"] in sent:
                        lat.append(m.timestamp / 1000 - sent[e["id"]])
    await consumer.stop()
    await producer.stop()
    return lat


def report(label: str, res: dict[str, float], n: int, raw_eps: float) -> None:
    eps = n / res["correlated_s"]
    print(
        f"{label}: {eps:,.0f} events/s to the incidents topic ({res['correlated_s']:.2f}s; "
        f"{int(res['records']):,} rule/group records, {int(res['changes']):,} incident changes)"
    )
    print(f"    ratio b/a = {eps / raw_eps:.2f}")
    if "stored_s" in res:
        print(
            f"    incl. SQL sink (SQLite): {n / res['stored_s']:,.0f} events/s "
            f"({res['stored_s']:.2f}s, {int(res['applied']):,} changes stored); "
            f"ratio {n / res['stored_s'] / raw_eps:.2f}",
            flush=True,
        )


async def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--bootstrap", default=Settings().kafka.bootstrap_servers)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--rules", type=Path, default=Path("rules"))
    ap.add_argument("--skip-sql", action="store_true", help="measure to the incidents topic only")
    ap.add_argument("--repeat", type=int, default=3, help="runs of (a) and (b') (medians)")
    args = ap.parse_args()
    configure("WARNING", "console")
    run = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="responder-bench-"))
    settings = settings_for(args.bootstrap, run, tmp / "bench.db", args.rules)
    bootstrap.database(settings)  # migrate the SQLite file before timing

    print(f"generating {args.events:,} events over {args.groups:,} groups ...", flush=True)
    values = synthetic(args.events, args.groups)
    size = sum(map(len, values)) / len(values)
    await create_topics(args.bootstrap, [settings.kafka.topics.events], settings.kafka.partitions)
    took = await produce(args.bootstrap, settings.kafka.topics.events, values)
    print(f"wrote {len(values):,} events (avg {size:.0f} B) in {took:.1f}s", flush=True)

    # The machine is shared with the broker and varies run to run: (a) and (b') are measured
    # `--repeat` times, interleaved, and compared by their medians.
    raw_runs: list[float] = []
    split_runs: list[dict[str, float]] = []
    for i in range(args.repeat):
        raw_s = await raw_consumer(args.bootstrap, settings.kafka.topics.events, len(values))
        raw_runs.append(len(values) / raw_s)
        print(f"(a) raw aiokafka getmany + json.loads: {raw_runs[-1]:,.0f} events/s", flush=True)
        split = settings_for(args.bootstrap, f"{run}s{i}", tmp / f"split{i}.db", args.rules)
        split.kafka.topics.events = settings.kafka.topics.events  # the same events
        bootstrap.database(split)
        last = i == args.repeat - 1
        res = await split_run(split, len(values), expect_sql=last and not args.skip_sql)
        split_runs.append(res)
        report("(b') one process per stage (ingest | correlate)", res, len(values), raw_runs[-1])
    raw_eps = statistics.median(raw_runs)
    split_eps = statistics.median(len(values) / r["correlated_s"] for r in split_runs)
    print(
        f"==> medians of {args.repeat}: (a) {raw_eps:,.0f} events/s, (b') {split_eps:,.0f} "
        f"events/s, ratio b'/a = {split_eps / raw_eps:.2f}",
        flush=True,
    )
    if "sink_s" in split_runs[-1]:
        res = split_runs[-1]
        print(
            f"(c) SQL sink (SQLite) in its own process, afterwards: "
            f"{res['changes'] / res['sink_s']:,.0f} incident changes/s "
            f"({int(res['applied']):,} stored in {res['sink_s']:.2f}s)",
            flush=True,
        )

    res = await pipeline_run(settings, len(values), expect_sql=not args.skip_sql)
    report("(b) one worker process, all stages", res, len(values), raw_eps)

    lat_settings = settings_for(args.bootstrap, run + "l", tmp / "lat.db", args.rules)
    bootstrap.database(lat_settings)
    lat = await latency(lat_settings, args.rate, args.seconds)
    if lat:
        q = statistics.quantiles(lat, n=100)
        print(
            f"latency at {args.rate:,} events/s for {args.seconds:.0f}s: p50 {q[49] * 1000:.1f} ms, "
            f"p99 {q[98] * 1000:.1f} ms ({len(lat):,} incidents)"
        )


if __name__ == "__main__":  # spawn children re-import this module: keep the guard
    asyncio.run(main())
