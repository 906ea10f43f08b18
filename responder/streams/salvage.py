"""Records the Kafka client cannot decode: find each one, leave a note in the DLQ, step past it.

aiokafka decodes a partition's records lazily inside `getmany`. A record it cannot decode (a
header key that is not UTF-8, which any non-Java client can write; a corrupt or undecompressable
batch) raises from that `getmany` and from every later one, and the records decoded before it in
the same call are lost with the exception (the consumer's position has already moved past
them). Left alone, a stage would stop the worker, and a restarted worker would stop again on the
same record. So a stage that sees such an error hands it here:

1. `begin`: every assigned partition goes back to its committed offset (the stages commit only
   what they handled: nothing handled is redone, nothing fetched and dropped is lost);
2. `step`, until it is done: one record from each partition per call, which the stage handles
   and commits as an ordinary batch; the partition whose read raises is at the bad record (its
   position), so a note goes to the DLQ (where it is, and why it cannot be read; its bytes
   cannot be had through the client), and the consumer seeks one past it and commits that.

Salvage ends when the bad record was passed, when no partition returns anything, or after as
many rounds as one `getmany` could have returned; a later error starts it again. The client
decodes a batch's records in order from its start, so the records after a bad one in the same
batch cannot be read either, and a compressed batch that cannot be decompressed not at all: each
such record is passed the same way, with a note of its own.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import cramjam
import orjson
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CorruptRecordException, UnsupportedCodecError

from responder.streams.failures import failure_detail, source_headers

log = structlog.get_logger(__name__)

# What aiokafka raises for the bytes of a record or batch (not for the broker or the network)
UNDECODABLE: tuple[type[BaseException], ...] = (
    UnicodeDecodeError,  # a header key that is not UTF-8
    UnsupportedCodecError,
    CorruptRecordException,
    cramjam.DecompressionError,  # snappy, lz4, zstd
    gzip.BadGzipFile,
    zlib.error,
    EOFError,  # a truncated gzip stream
)
REASON = "undecodable record"
WAIT_MS = 1000  # a partition just sought must be fetched again: wait for it this long


class Salvage:
    """The salvage of one stage's consumer (see the module docstring)."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        dlq: str,
        rounds: int,
        commit: Callable[[dict[TopicPartition, int]], Awaitable[bool]],
    ) -> None:
        self.consumer = consumer
        self.commit = commit
        self.producer = producer
        self.dlq = dlq
        self.max_rounds = rounds
        self.suspects: list[TopicPartition] = []
        self.rounds = 0
        self.skipped = 0  # records passed with a note in the DLQ

    @property
    def active(self) -> bool:
        return bool(self.suspects)

    async def begin(self, error: BaseException) -> None:
        """Rewind every assigned partition to its committed offset and start stepping."""
        consumer = self.consumer
        self.suspects = sorted(consumer.assignment())
        self.rounds = 0
        log.warning(
            "a record could not be decoded; reading one record at a time to pass it",
            error=failure_detail(error)[0],
            partitions=len(self.suspects),
        )
        for tp in self.suspects:
            committed = await consumer.committed(tp)
            if committed is None or committed < 0:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)

    async def step(self) -> dict[TopicPartition, list[Any]]:
        """At most one record from each suspect partition, for the stage to handle."""
        self.rounds += 1
        batch: dict[TopicPartition, list[Any]] = {}
        for tp in list(self.suspects):
            if tp not in self.consumer.assignment():  # a rebalance took it away
                self.suspects.remove(tp)
                continue
            try:
                got = await self.consumer.getmany(tp, timeout_ms=WAIT_MS, max_records=1)
            except UNDECODABLE as exc:
                await self.skip(tp, exc)
                self.suspects = []  # the rewind already recovered the other partitions
                return batch
            if got.get(tp):
                batch[tp] = got[tp]
            else:
                self.suspects.remove(tp)
        if self.rounds >= self.max_rounds:
            self.suspects = []
        return batch

    async def skip(self, tp: TopicPartition, error: BaseException) -> None:
        """A note for the record at the partition's position, then one past it, committed."""
        offset = await pass_undecodable(self.consumer, self.producer, self.dlq, tp, error)
        await self.commit({tp: offset + 1})
        self.skipped += 1


async def pass_undecodable(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    dlq: str,
    tp: TopicPartition,
    error: BaseException,
) -> int:
    """The record at `tp`'s position could not be decoded: a note to the DLQ (where it is, and
    why), and the consumer sought one past it. Returns its offset."""
    offset = int(await consumer.position(tp))
    detail = failure_detail(error)
    note = {"topic": tp.topic, "partition": tp.partition, "offset": offset, "error": detail[0]}
    await producer.send_and_wait(
        dlq,
        value=orjson.dumps(note),
        headers=source_headers(tp.topic, tp.partition, offset, REASON, detail),
    )
    consumer.seek(tp, offset + 1)
    log.warning(
        "undecodable record to DLQ",
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        error=detail[0],
    )
    return offset
