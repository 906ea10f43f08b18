"""Ingest stage: `responder.events` → validate → match → correlation topic, in batches.

Reads with aiokafka `getmany`, so the per-message cost of a framework agent is not paid per event
(DESIGN.md "Speed"). Bad input goes to the DLQ with the original bytes and the reason in headers.
Each fetched batch becomes at most one message per correlation partition; offsets are committed
only after the broker acknowledged everything the batch produced (at least once).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from responder.correlation.rules import RuleSet
from responder.events.fast import parse_event_doc
from responder.events.schema import Rejection
from responder.settings import KafkaSettings
from responder.streams.kafka import BatchSender, commit, dlq_headers, offsets_after
from responder.streams.records import Router
from responder.streams.topics import MAX_MESSAGE_BYTES

log = structlog.get_logger(__name__)


@dataclass
class IngestStats:
    events: int = 0
    rejected: int = 0
    records: int = 0
    batches: int = 0
    cpu_s: float = 0.0  # process CPU spent handling batches (validation, routing, encoding)


class IngestStage:
    def __init__(self, kafka: KafkaSettings, rules: RuleSet, *, max_batch: int = 5000) -> None:
        self.kafka = kafka
        self.rules = rules
        self.max_batch = max_batch
        self.stats = IngestStats()
        self.partitions = kafka.partitions

    def _clients(self) -> None:
        kafka = self.kafka
        self.consumer = AIOKafkaConsumer(
            kafka.topics.events,
            bootstrap_servers=kafka.bootstrap_servers,
            group_id=f"{kafka.group_prefix}-ingest",
            client_id=f"{kafka.client_id}-ingest",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            fetch_max_bytes=16 * 1024 * 1024,
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            client_id=f"{kafka.client_id}-ingest",
            acks="all",
            linger_ms=5,
            max_request_size=MAX_MESSAGE_BYTES + 64 * 1024,
            max_batch_size=1024 * 1024,
        )
        self.batcher = BatchSender(self.producer)

    async def start(self) -> None:
        self._clients()
        await self.producer.start()
        await self.consumer.start()
        correlate = self.kafka.topics.correlate
        self.partitions = len(await self.producer.partitions_for(correlate))
        self.router = Router(self.rules, self.partitions)

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.producer.stop()

    async def run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=200, max_records=self.max_batch)
            if batch:
                await self.handle(batch)

    async def handle(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        started = time.process_time()
        router = self.router
        router.reset()
        sends = []
        stats = self.stats
        for messages in batch.values():
            stats.events += len(messages)
            for msg in messages:
                parsed = parse_event_doc(msg.value or b"")
                if isinstance(parsed, Rejection):
                    sends.append(await self._reject(msg, parsed))
                    continue
                router.add(*parsed)
        topic = self.kafka.topics.correlate
        for partition, target in router.batches.items():
            for value in target.messages():
                self.batcher.add(topic, partition, None, value)
        stats.records += router.records
        stats.cpu_s += time.process_time() - started
        sends.extend(await self.batcher.submit())
        if sends:
            await asyncio.gather(*sends)
        await commit(self.consumer, offsets_after(batch))
        stats.batches += 1

    async def _reject(
        self, msg: ConsumerRecord[bytes, bytes], rejection: Rejection
    ) -> asyncio.Future[Any]:
        self.stats.rejected += 1
        log.warning(
            "event rejected to DLQ",
            reason=rejection.reason,
            partition=msg.partition,
            offset=msg.offset,
        )
        future: asyncio.Future[Any] = await self.producer.send(
            self.kafka.topics.dlq,
            value=msg.value,
            key=msg.key,
            headers=dlq_headers(msg, rejection.reason, rejection.detail),
        )
        return future
