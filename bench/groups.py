"""Window state per live group, and a flood of distinct keys against the cap on live groups.

Drives the correlation stage's own handling (ingest's encoding, `CorrelateStage.handle`, the
per-partition `GroupStore`) without Kafka: (1) memory per live group, measured with tracemalloc
over N groups of one event each (the event's bytes as the worker keeps them included); (2) a
flood of distinct resource ids, one event each within one window, with
`RESPONDER_CORRELATION__MAX_GROUPS_PER_RULE` = CAP: live groups stay at most CAP and the peak
RSS stays flat. The changed-key set is cleared after each batch, as the stage's flush does.
Run: `python bench/groups.py [--groups 50000] [--flood 1000000] [--cap 10000]`.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import ConsumerRecord, TopicPartition

from responder.correlation.rules import Rule, RuleSet
from responder.settings import CorrelationSettings, KafkaSettings
from responder.streams.correlate import CorrelateStage
from responder.streams.ingest_batch import IngestBatch
from responder.streams.kafka import consumer_record
from tests.support.builders import count_rule

BASE = datetime(2026, 11, 25, tzinfo=UTC)
BATCH = 2000
RULE = Rule.model_validate(count_rule("burst", "input.adversarial", "resource.id", "1h", 5))


def event(i: int) -> bytes:
    moment = BASE + timedelta(milliseconds=i)
    return json.dumps(
        {
            "id": f"e{i}",
            "source": "detector",
            "type": "input.adversarial",
            "time": moment.isoformat().replace("+00:00", "Z"),
            "severity": "medium",
            "title": "adversarial input",
            "resource": {"kind": "endpoint", "id": f"endpoint-{i}"},
            "actor": {"ip": f"10.{i % 250}.{i // 250 % 250}.1"},
        }
    ).encode()


def record(value: bytes, offset: int) -> ConsumerRecord[bytes, bytes]:
    return consumer_record("correlate", value, offset)


def drive(n: int, cap: int) -> tuple[CorrelateStage, float]:
    rules = RuleSet([RULE])
    stage = CorrelateStage(KafkaSettings(), rules, CorrelationSettings(max_groups_per_rule=cap))
    stage.stores[0] = stage.new_store()
    ingest = IngestBatch(rules, partitions=1)
    started = time.perf_counter()
    offset = 0
    peak = 0
    for first in range(0, n, BATCH):
        values = [event(i) for i in range(first, min(n, first + BATCH))]
        outcome = ingest.handle(values, [0] * len(values), held=[0])
        for value in outcome.messages.get(0, []):
            stage.handle({TopicPartition("correlate", 0): [record(value, offset)]})
            offset += 1
        stage.dirty.clear()  # what the flush writes to the changelog and forgets
        peak = max(peak, len(stage.stores[0]))
    assert peak <= cap, peak
    return stage, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=50_000)
    parser.add_argument("--flood", type=int, default=1_000_000)
    parser.add_argument("--cap", type=int, default=10_000)
    args = parser.parse_args()

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    stage, _ = drive(args.groups, cap=args.groups)
    held = tracemalloc.get_traced_memory()[0] - before
    groups = len(stage.stores[0])
    tracemalloc.stop()
    print(f"{groups:,} live groups: {held / groups:,.0f} bytes per group (tracemalloc)")
    del stage

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stage, seconds = drive(args.flood, cap=args.cap)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    evicted = sum(stage.evictions.values())
    print(
        f"flood of {args.flood:,} distinct keys, cap {args.cap:,}: {len(stage.stores[0]):,} live "
        f"groups at the end, {evicted:,} evicted, {args.flood / seconds:,.0f} events/s; "
        f"peak RSS {rss_before:,.0f} MB before, {rss_after:,.0f} MB after"
    )


if __name__ == "__main__":
    main()
