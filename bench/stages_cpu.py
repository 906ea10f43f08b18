"""CPU per event of the ingest and correlation stages' own work, in process, no broker.

Runs `streams.ingest_batch.IngestBatch.handle` (validate, route, encode) on the pipeline
benchmark's synthetic events (`bench/pipeline.py`, the shipped rules) in batches of 5,000 as the
stage fetches them, then feeds the correlation messages it made to `streams.correlate.
CorrelateStage.handle` (decode, window, incident changes) partition by partition, and flushes
the changed window state every `--flush-every` events as the stage does once per commit interval
(changelog values serialized; nothing is sent). Each repetition is a fresh process (cold caches,
empty state, the worker's garbage collection settings). Prints, per checkout, the medians of
CPU µs per event for ingest, correlate (handle) and the flushes, and the bytes per event written
to the correlation topic and the changelog.

`--before DIR` (a checkout of main, e.g. `git worktree add DIR main`) runs the same measurement
on DIR's `responder` package, interleaved with this checkout's, for a before/after from one run.
`--profile` prints cProfile's top functions of one pass per stage instead.
`--compression` adds what lz4 and zstd would cost (compress at the producer, decompress at the
consumer) and save on the correlation topic's and the changelog's record batches.

Run: `python bench/stages_cpu.py` (or `-h`). The aiokafka fetch and produce paths are not
included: `make bench` measures whole stage processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

BATCH = 5000  # events per ingest batch (the stage's max_batch)
FIGURES = (
    "ingest_us",
    "correlate_us",
    "flush_us",
    "total_us",
    "correlate_bytes",
    "changelog_bytes",
)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One pass in this process: both stages over every event."""
    import asyncio

    from aiokafka import TopicPartition
    from pipeline import synthetic

    from responder.correlation.rules import load_rules
    from responder.settings import CorrelationSettings, KafkaSettings
    from responder.streams.collector import tune_gc
    from responder.streams.correlate import CorrelateStage
    from responder.streams.ingest_batch import IngestBatch
    from responder.streams.kafka import consumer_record

    values = synthetic(args.events, args.groups)
    inputs = [i % args.partitions for i in range(len(values))]
    rules = load_rules(args.rules)
    work = IngestBatch(rules, args.partitions)
    kafka = KafkaSettings()
    stage = CorrelateStage(kafka, rules, CorrelationSettings())
    for p in range(args.partitions):
        stage.stores[p] = stage.new_store()
    sink = Written()
    stage.batcher = sink  # type: ignore[assignment]
    stage.changelog = sink  # type: ignore[assignment]
    stage.incident_partitions = args.partitions

    class NoCommits:
        """The flush hands its offsets over; nothing is committed here."""

        async def hand_over(self, *_: Any) -> None:
            return None

    stage.committer = NoCommits()  # type: ignore[assignment]
    stage.consumer = None
    held = list(range(args.partitions))
    tune_gc()
    ingest_s = correlate_s = flush_s = 0.0
    offsets = [0] * args.partitions
    correlate_bytes = 0
    since_flush = changes = 0
    loop = asyncio.new_event_loop()
    profiles = _profiles(args.profile)
    for start in range(0, len(values), BATCH):
        chunk = values[start : start + BATCH]
        with profiles["ingest"]:
            began = time.process_time()
            outcome = work.handle(chunk, inputs[start : start + BATCH], held=held, announce=True)
            ingest_s += time.process_time() - began
        assert not outcome.dead, outcome.dead[:3]
        batch = {}
        for partition, messages in outcome.messages.items():
            records = []
            for value in messages:
                records.append(consumer_record("c", value, offsets[partition], partition=partition))
                offsets[partition] += 1
                correlate_bytes += len(value)
            batch[TopicPartition("c", partition)] = records
        with profiles["correlate"]:
            began = time.process_time()
            stage.handle(batch)
            changes += len(stage.outbox)
            stage.outbox.clear()  # what `_send_outbox` hands to the producer
            correlate_s += time.process_time() - began
        assert not stage.dead, stage.dead[:3]
        since_flush += len(chunk)
        if since_flush >= args.flush_every or start + BATCH >= len(values):
            since_flush = 0
            with profiles["flush"]:
                began = time.process_time()
                loop.run_until_complete(stage._flush())
                flush_s += time.process_time() - began
    loop.close()
    n = len(values)
    for name, profile in profiles.items():
        profile.report(name)
    return {
        "ingest_us": ingest_s / n * 1e6,
        "correlate_us": correlate_s / n * 1e6,
        "flush_us": flush_s / n * 1e6,
        "total_us": (ingest_s + correlate_s + flush_s) / n * 1e6,
        "correlate_bytes": correlate_bytes / n,
        "changelog_bytes": sink.bytes / n,
        "records": stage.stats.records,
        "changes": changes,
        "keys_written": stage.stats.keys_written,
        "_compression": compression(sink.batches, work, values, inputs) if args.compression else {},
    }


class Written:
    """Stands in for the stage's BatchSender: counts what would be produced."""

    def __init__(self) -> None:
        self.bytes = 0
        self.batches: list[list[bytes]] = []
        self.current: list[bytes] = []

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        if value is not None and "changelog" in topic:
            self.bytes += len(value) + len(key or b"")
            self.current.append(value)

    async def submit(self) -> list[Any]:
        if self.current:
            self.batches.append(self.current)
            self.current = []
        return []


class _NoProfile:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: Any) -> None:
        return None

    def report(self, name: str) -> None:
        return None


class _Profile:
    def __init__(self) -> None:
        import cProfile

        self.profile = cProfile.Profile(time.process_time)

    def __enter__(self) -> None:
        self.profile.enable()

    def __exit__(self, *_: Any) -> None:
        self.profile.disable()

    def report(self, name: str) -> None:
        import pstats

        print(f"\n===== {name} =====", file=sys.stderr)
        stats = pstats.Stats(self.profile, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(25)


def _profiles(on: bool) -> dict[str, Any]:
    return {name: _Profile() if on else _NoProfile() for name in ("ingest", "correlate", "flush")}


def compression(
    changelog: list[list[bytes]], work: Any, values: list[bytes], inputs: list[int]
) -> dict[str, float]:
    """CPU µs per event and bytes per event of lz4 and zstd over the record batches' payloads
    (the producer compresses a whole batch; the consumer decompresses it)."""
    from aiokafka.codec import lz4_decode, lz4_encode, zstd_decode, zstd_encode

    correlation: list[bytes] = []
    for start in range(0, len(values), BATCH):
        outcome = work.handle(values[start : start + BATCH], inputs[start : start + BATCH])
        correlation.extend(b"".join(messages) for messages in outcome.messages.values())
    out: dict[str, float] = {}
    n = len(values)
    for topic, payloads in (
        ("correlate", correlation),
        ("changelog", [b"".join(batch) for batch in changelog]),
    ):
        out[f"{topic} bytes none"] = sum(map(len, payloads)) / n
        for codec, encode, decode in (
            ("lz4", lz4_encode, lz4_decode),
            ("zstd", zstd_encode, zstd_decode),
        ):
            began = time.process_time()
            packed = [encode(p) for p in payloads]
            encoded = time.process_time()
            for p in packed:
                decode(p)
            done = time.process_time()
            out[f"{topic} bytes {codec}"] = sum(map(len, packed)) / n
            out[f"{topic} {codec} compress µs"] = (encoded - began) / n * 1e6
            out[f"{topic} {codec} decompress µs"] = (done - encoded) / n * 1e6
    return out


def child(args: argparse.Namespace, source: Path) -> dict[str, Any]:
    """One measurement in a fresh process on `source`'s responder package."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--events",
        str(args.events),
        "--groups",
        str(args.groups),
        "--partitions",
        str(args.partitions),
        "--flush-every",
        str(args.flush_every),
        "--rules",
        str(args.rules.resolve()),
    ]
    if args.compression:
        command.append("--compression")
    done = subprocess.run(command, env=env, cwd=source, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--flush-every", type=int, default=50_000, help="events per commit interval")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rules", type=Path, default=HERE.parent / "rules")
    ap.add_argument("--before", type=Path, help="another checkout, measured interleaved")
    ap.add_argument("--profile", action="store_true", help="cProfile one pass, in this process")
    ap.add_argument("--compression", action="store_true", help="lz4 and zstd costs and savings")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child or args.profile:
        print(json.dumps(measure(args)))
        return
    sources = {"after": HERE.parent}
    if args.before is not None:
        sources = {"before": args.before.resolve(), **sources}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sources}
    for _ in range(args.repeat):  # interleaved: the machine's drift hits every checkout alike
        for name, source in sources.items():
            runs[name].append(child(args, source))
    print(f"{args.events} events, {args.groups} groups, medians of {args.repeat} runs")
    print(f"{'':8s}" + "".join(f"{f:>17s}" for f in FIGURES))
    medians = {}
    for name, results in runs.items():
        medians[name] = {f: statistics.median(r[f] for r in results) for f in FIGURES}
        print(f"{name:8s}" + "".join(f"{medians[name][f]:17.2f}" for f in FIGURES))
        print(f"{'':8s}  runs total µs: {[round(r['total_us'], 2) for r in results]}")
        print(
            f"{'':8s}  records {results[0]['records']}, changes {results[0]['changes']}, "
            f"changelog keys written {results[0]['keys_written']}"
        )
        for key, value in results[0]["_compression"].items():
            print(f"{'':8s}  {key}: {value:.2f}")
    if "before" in medians:
        before, after = medians["before"], medians["after"]
        print(
            "before → after, µs per event: "
            + ", ".join(
                f"{f[:-3]} {before[f]:.1f} → {after[f]:.1f}"
                for f in ("ingest_us", "correlate_us", "flush_us", "total_us")
            )
        )


if __name__ == "__main__":
    main()
