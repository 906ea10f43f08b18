"""Small aiokafka helpers shared by the stages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from responder.kafka_clients import client_options
from responder.metrics.worker import CONSUMER_LAG
from responder.settings import KafkaSettings
from responder.streams.failures import source_headers
from responder.streams.salvage import UNDECODABLE, Salvage

log = structlog.get_logger(__name__)

LAG_EVERY_S = 1.0  # how often a stage measures its consumer lag

Batch = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]


def dlq_headers(
    msg: ConsumerRecord[bytes, bytes], reason: str, detail: Sequence[str] = ()
) -> list[tuple[str, bytes]]:
    """Why a message went to the DLQ and where it came from (the value stays the original)."""
    return source_headers(msg.topic, msg.partition, msg.offset, reason, detail)


async def dead_letter(
    producer: AIOKafkaProducer,
    topic: str,
    msg: ConsumerRecord[bytes, bytes],
    reason: str,
    detail: Sequence[str] = (),
) -> None:
    """Send one message to the DLQ with its reason and wait for the broker."""
    await producer.send_and_wait(
        topic, value=msg.value, key=msg.key, headers=dlq_headers(msg, reason, detail)
    )


def membership(kafka: KafkaSettings, role: str) -> dict[str, Any]:
    """Consumer group options of one stage: the session timeout (heartbeats every third of it)
    and, with `instance_id`, static membership (KIP-345): a worker restarted under the same
    instance id takes its partitions back without a rebalance, instead of waiting for the
    killed process's session to expire."""
    session_ms = int(kafka.session_timeout_s * 1000)
    options: dict[str, Any] = {
        "session_timeout_ms": session_ms,
        "heartbeat_interval_ms": session_ms // 3,
    }
    if kafka.instance_id is not None:
        options["group_instance_id"] = f"{kafka.instance_id}-{role}"
    return options


def offsets_after(batch: Batch) -> dict[TopicPartition, int]:
    return {tp: msgs[-1].offset + 1 for tp, msgs in batch.items() if msgs}


async def commit(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> bool:
    """Commit offsets; a rebalance in between only means the batch is redelivered."""
    if not offsets:
        return True
    try:
        await consumer.commit(offsets)
    except (CommitFailedError, IllegalStateError) as exc:
        log.warning("offset commit failed; the batch will be redelivered", error=str(exc))
        return False
    return True


class BatchSender:
    """Builds aiokafka record batches per (topic, partition) and submits them in one go.

    `producer.send()` costs tens of microseconds of Python per record; appending to a
    `BatchBuilder` costs a few, which is what lets the correlation stage write thousands of
    changelog keys and incident changes per commit interval.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.open: dict[tuple[str, int], Any] = {}
        self.full: list[tuple[Any, str, int]] = []
        self.count = 0

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        batch = self.open.get((topic, partition))
        if batch is None:
            batch = self.open[(topic, partition)] = self.producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:
            self.full.append((batch, topic, partition))
            batch = self.open[(topic, partition)] = self.producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"record of {len(value or b'')} bytes exceeds the batch size")
        self.count += 1

    async def submit(self) -> list[asyncio.Future[Any]]:
        """Queue every batch for delivery; the futures resolve when the broker acknowledged."""
        pending = self.full + [(b, t, p) for (t, p), b in self.open.items() if b.record_count()]
        self.full, self.open, self.count = [], {}, 0
        return [await self.producer.send_batch(b, t, partition=p) for b, t, p in pending]


class LagMeter:
    """`responder_consumer_lag` of one stage: the ends of its partitions minus its positions,
    measured at most once a second (a partition counts once it has been fetched)."""

    def __init__(self, stage: str) -> None:
        self.gauge = CONSUMER_LAG.labels(stage)
        self.due = 0.0

    async def measure(self, consumer: AIOKafkaConsumer) -> None:
        now = time.monotonic()
        if now < self.due:
            return
        self.due = now + LAG_EVERY_S
        lag = 0
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is not None:
                lag += max(0, end - await consumer.position(tp))
        self.gauge.set(lag)


class TopicStage:
    """A stage that reads one topic in batches under a consumer group of its own (so every
    worker process shares the topic's partitions), with a producer for its output and the DLQ.

    Subclasses implement `handle(batch)`: they `reject` what they cannot use (it goes to the
    DLQ with the reason) and end with `done(batch)`, which waits until the broker acknowledged
    everything the batch produced and only then commits its offsets (at least once).
    """

    def __init__(self, kafka: KafkaSettings, topic: str, role: str, max_records: int) -> None:
        self.kafka = kafka
        self.topic = topic
        self.role = role
        self.max_records = max_records
        self.pending: list[asyncio.Future[Any]] = []
        self.lag = LagMeter(role)

    def consumer_options(self) -> dict[str, Any]:
        """Extra `AIOKafkaConsumer` options of this stage."""
        return {}

    def producer_options(self) -> dict[str, Any]:
        """Extra `AIOKafkaProducer` options of this stage."""
        return {}

    async def start(self) -> None:
        kafka = self.kafka
        self.consumer = AIOKafkaConsumer(
            self.topic,
            **client_options(kafka),
            group_id=f"{kafka.group_prefix}-{self.role}",
            client_id=f"{kafka.client_id}-{self.role}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # a transactional producer's records only once committed; aborted ones never
            isolation_level="read_committed",
            **membership(kafka, self.role),
            **self.consumer_options(),
        )
        self.producer = AIOKafkaProducer(
            **client_options(kafka),
            client_id=f"{kafka.client_id}-{self.role}",
            **self.producer_options(),
        )
        await self.producer.start()
        await self.consumer.start()
        self.salvage = Salvage(
            self.consumer,
            self.producer,
            kafka.topics.dlq,
            rounds=self.max_records,
            commit=partial(commit, self.consumer),
        )

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.producer.stop()

    async def run(self) -> None:
        while True:
            batch = await self.fetch()
            if batch:
                await self.handle(batch)
            await self.lag.measure(self.consumer)

    async def fetch(self) -> Batch:
        """The next batch; past a record the client cannot decode (`streams/salvage.py`)."""
        if self.salvage.active:
            return await self.salvage.step()
        try:
            batch: Batch = await self.consumer.getmany(timeout_ms=200, max_records=self.max_records)
        except UNDECODABLE as exc:
            await self.salvage.begin(exc)
            return {}
        return batch

    async def handle(self, batch: Batch) -> None:
        raise NotImplementedError

    async def reject(
        self, msg: ConsumerRecord[bytes, bytes], reason: str, detail: Sequence[str] = ()
    ) -> None:
        """Queue the original message for the DLQ with why and where from (`done` waits)."""
        self.pending.append(
            await self.producer.send(
                self.kafka.topics.dlq,
                value=msg.value,
                key=msg.key,
                headers=dlq_headers(msg, reason, detail),
            )
        )

    async def done(self, batch: Batch) -> None:
        """Wait for every record this batch produced (DLQ included), then commit its offsets."""
        pending, self.pending = self.pending, []
        if pending:
            await asyncio.gather(*pending)
        await commit(self.consumer, offsets_after(batch))


def consumer_record(
    topic: str,
    value: bytes | None,
    offset: int,
    *,
    partition: int = 0,
    headers: Sequence[tuple[str, bytes]] = (),
) -> ConsumerRecord[bytes, bytes]:
    """A record as a consumer would hand it over, for what did not come from Kafka (an API
    batch, a bench, a test)."""
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=0 if partition >= 0 else -1,
        timestamp_type=0,
        key=None,
        value=value,
        checksum=None,
        serialized_key_size=0 if partition >= 0 else -1,
        serialized_value_size=0 if value is None else len(value),
        headers=tuple(headers),
    )
