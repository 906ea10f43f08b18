"""Ingest stage: `responder.events` → validate → match → correlation topic, in batches.

Reads with aiokafka `getmany`, so the per-message cost of a framework agent is not paid per event
(DESIGN.md "Speed"). Bad input goes to the DLQ with the original bytes and the reason in headers.
Each fetched batch becomes at most one message per correlation partition; offsets are committed
only after the broker acknowledged everything the batch produced (at least once).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from responder.correlation.engine import route
from responder.correlation.match import MISSING, get_path
from responder.correlation.rules import RuleSet
from responder.events.schema import Rejection, Severity, event_to_dict, parse_event
from responder.settings import KafkaSettings
from responder.streams.kafka import BatchSender, commit, dlq_headers, offsets_after
from responder.streams.records import Doc, PartitionBatch, Record
from responder.streams.topics import MAX_MESSAGE_BYTES, partition_for

log = structlog.get_logger(__name__)


@dataclass
class IngestStats:
    events: int = 0
    rejected: int = 0
    records: int = 0
    batches: int = 0


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

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.producer.stop()

    async def run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=200, max_records=self.max_batch)
            if batch:
                await self.handle(batch)

    async def handle(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        docs: list[Doc] = []
        by_partition: dict[int, PartitionBatch] = {}
        sends = []
        for messages in batch.values():
            for msg in messages:
                self.stats.events += 1
                parsed = parse_event(msg.value or b"")
                if isinstance(parsed, Rejection):
                    self.stats.rejected += 1
                    log.warning(
                        "event rejected to DLQ",
                        reason=parsed.reason,
                        partition=msg.partition,
                        offset=msg.offset,
                    )
                    sends.append(
                        await self.producer.send(
                            self.kafka.topics.dlq,
                            value=msg.value,
                            key=msg.key,
                            headers=dlq_headers(msg, parsed.reason, parsed.detail),
                        )
                    )
                    continue
                doc = event_to_dict(parsed)
                routes = route(self.rules, doc)
                if not routes:
                    continue
                time = parsed.time.timestamp()
                index = len(docs)
                docs.append(
                    Doc(
                        orjson.dumps(doc),
                        parsed.source,
                        parsed.id,
                        parsed.type,
                        int(Severity[parsed.severity]),
                    )
                )
                for routed in routes:
                    partition = partition_for(routed.key, self.partitions)
                    target = by_partition.get(partition)
                    if target is None:
                        target = by_partition[partition] = PartitionBatch(docs)
                    field = self.rules.rules[routed.rule_id].value_field
                    target.records.append(
                        Record(
                            routed.rule_id,
                            routed.key,
                            routed.group,
                            time,
                            index,
                            MISSING if field is None else get_path(doc, field),
                        )
                    )
        for partition, target in by_partition.items():
            self.stats.records += len(target.records)
            for value in target.messages():
                self.batcher.add(self.kafka.topics.correlate, partition, None, value)
        sends.extend(await self.batcher.submit())
        if sends:
            await asyncio.gather(*sends)
        await commit(self.consumer, offsets_after(batch))
        self.stats.batches += 1
