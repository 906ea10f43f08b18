"""Ingest stage: `responder.events` → validate → match → correlation topic, in batches.

Reads with aiokafka `getmany`, so the per-message cost of a framework agent is not paid per event
(docs/architecture.md, "Why the hot path is batched"). The work on a batch is
`responder.streams.ingest_batch` (pure); this stage does the I/O around it. Bad input goes to
the DLQ with the original bytes and the reason in headers, and so does any event that makes the
handling raise (the batch is then redone record by record). Each fetched batch becomes at most
one message per correlation partition (more when large), each carrying the progress (newest
event time) of the input partitions this ingest reads, so lateness downstream is judged against
every input partition; offsets are committed only after the
broker acknowledged everything the batch produced (at least once).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import structlog

from responder.assets.lineage import GraphSnapshot
from responder.correlation.rules import RuleSet
from responder.metrics import labels
from responder.metrics.worker import EVENTS_RECEIVED, EVENTS_REJECTED
from responder.settings import KafkaSettings
from responder.streams.collector import Promoter
from responder.streams.gather import GatherPace
from responder.streams.ingest_batch import IngestBatch
from responder.streams.kafka import Batch, BatchSender, TopicStage, set_fetch_gather
from responder.streams.native import NativeRouter
from responder.streams.topics import MAX_MESSAGE_BYTES

log = structlog.get_logger(__name__)

ANNOUNCE_EVERY_S = 1.0
"""How often the input progress goes to every correlation partition, not only to those a batch
has records for (`correlation/watermark.py`)."""


@dataclass
class IngestStats:
    events: int = 0
    rejected: int = 0
    records: int = 0
    batches: int = 0
    redone: int = 0  # batches redone record by record because something raised
    cpu_s: float = 0.0  # process CPU spent handling batches (validation, routing, encoding)


class IngestStage(TopicStage):
    def __init__(
        self,
        kafka: KafkaSettings,
        rules: RuleSet,
        *,
        max_batch: int = 5000,
        assets: GraphSnapshot | None = None,
        gather_bytes: int = 1,
        gather_ms: int = 500,
        gather_window_ms: int = 0,
        native: bool = True,
    ) -> None:
        super().__init__(kafka, kafka.topics.events, "ingest", max_records=max_batch)
        self.native = native
        self.rules = rules
        self.gather_bytes = gather_bytes
        self.gather_ms = gather_ms
        # the routing caches (a route and a partition per group key: 5,000 new ones a second at
        # 5,000 new groups) are long-lived: out of the collector's scans, as window state is
        self.promoter = Promoter()
        self.pace = GatherPace(gather_bytes, gather_ms, gather_window_ms / 1000)
        self.asked = (gather_bytes, gather_ms)  # what the client's fetches were last given
        self.assets = assets
        self.stats = IngestStats()
        self.partitions = kafka.partitions
        self.announce_due = 0.0

    def consumer_options(self) -> dict[str, Any]:
        return {
            "max_partition_fetch_bytes": MAX_MESSAGE_BYTES,
            "fetch_max_bytes": 16 * 1024 * 1024,
            # the broker gathers a quiet stream into small batches (WorkerSettings.gather_*):
            # every stage downstream then pays its per-fetch cost once per batch, not per event
            "fetch_min_bytes": self.gather_bytes,
            "fetch_max_wait_ms": self.gather_ms,
        }

    def producer_options(self) -> dict[str, Any]:
        return {
            "acks": "all",
            "linger_ms": 0,  # BatchSender hands over whole batches: lingering only adds latency
            "max_request_size": MAX_MESSAGE_BYTES + 64 * 1024,
            "max_batch_size": 1024 * 1024,
        }

    async def start(self) -> None:
        await super().start()
        self.batcher = BatchSender(self.producer)
        correlate = self.kafka.topics.correlate
        self.partitions = len(await self.producer.partitions_for(correlate))
        self.work = IngestBatch(self.rules, self.partitions, self.assets, native=self.native)
        if self.native and not isinstance(self.work.router, NativeRouter):
            log.info(
                "ingest runs its Python path: responder-native is not installed "
                "(`make install` builds it where cargo is found)"
            )

    async def fetch(self) -> Batch:
        """The next batch, read with a `fetch_min_bytes` that follows the rate (`gather.py`)."""
        pace = self.pace
        if pace.window_s:
            wanted = pace.ask()
            if wanted != self.asked:
                if set_fetch_gather(self.consumer, *wanted):
                    self.asked = wanted
                else:
                    pace.window_s = 0.0  # another client version: the fixed gather stays
                    log.warning("the Kafka client cannot change its fetch size; gather fixed")
        batch = await super().fetch()
        self.promoter.step(idle=not batch)
        if pace.window_s:
            size = sum(msg.serialized_value_size for ms in batch.values() for msg in ms)
            pace.observe(size, time.monotonic())
        return batch

    def held(self) -> list[int]:
        """The input partitions this ingest reads now."""
        return [tp.partition for tp in self.consumer.assignment()]

    async def quiet(self) -> None:
        """Nothing to read: still tell every correlation partition, once a second, which input
        partitions this ingest holds. With several ingest processes, one whose partitions are
        all stalled would otherwise never be heard of, and the others' progress alone would make
        its partitions' events late (see `correlation/watermark.py`)."""
        now = time.monotonic()
        held = self.held()
        if now < self.announce_due or not held:
            return
        self.announce_due = now + ANNOUNCE_EVERY_S
        topic = self.kafka.topics.correlate
        for partition, values in self.work.handle(
            [], [], held=held, announce=True
        ).messages.items():
            for value in values:
                self.batcher.add(topic, partition, None, value)
        self.pending.extend(await self.batcher.submit())
        await self.done({})  # nothing to commit: its sends are settled in order with the rest

    async def handle(self, batch: Batch) -> None:
        started = time.process_time()
        stats = self.stats
        msgs = [msg for messages in batch.values() for msg in messages]
        now = time.monotonic()
        announce = now >= self.announce_due
        if announce:
            self.announce_due = now + ANNOUNCE_EVERY_S
        outcome = self.work.handle(
            [msg.value for msg in msgs],
            [msg.partition for msg in msgs],
            held=self.held(),
            announce=announce,
        )
        stats.events += len(msgs)
        EVENTS_RECEIVED.inc(len(msgs))
        if outcome.redone is not None:
            stats.redone += 1
            log.warning("ingest batch redone record by record", error=outcome.redone)
        for dead in outcome.dead:
            msg = msgs[dead.index]
            stats.rejected += 1
            EVENTS_REJECTED.labels(labels.reason(dead.reason)).inc()
            log.warning(
                "event rejected to DLQ",
                reason=dead.reason,
                partition=msg.partition,
                offset=msg.offset,
            )
            await self.reject(msg, dead.reason, dead.detail)
        topic = self.kafka.topics.correlate
        for partition, values in outcome.messages.items():
            for value in values:
                self.batcher.add(topic, partition, None, value)
        stats.records += outcome.records
        stats.cpu_s += time.process_time() - started
        self.pending.extend(await self.batcher.submit())
        await self.done(batch)
        stats.batches += 1
