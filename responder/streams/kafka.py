"""Small aiokafka helpers shared by the stages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

log = structlog.get_logger(__name__)

Batch = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]


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
