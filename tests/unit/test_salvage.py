"""`streams/salvage.py` offline: a consumer whose partition raises on a record it cannot decode.

The fake consumer behaves as aiokafka does (checked on the real broker by
tests/integration/test_kafka_clients.py): reading a partition decodes its records in order,
and the one that cannot be decoded raises from every read that reaches it, while the consumer's
position stays on it.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiokafka import TopicPartition

from responder.streams.salvage import REASON, Salvage

GOOD, BAD = TopicPartition("events", 0), TopicPartition("events", 1)


class FakeConsumer:
    def __init__(self, logs: dict[TopicPartition, list[bytes | None]], committed: dict[Any, int]):
        self.logs = logs  # None: a record that cannot be decoded
        self.committed_offsets = committed
        self.positions = dict.fromkeys(logs, 99)  # fetched past what was handled
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return set(self.logs)

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.committed_offsets.get(tp)

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.positions[tp] = 0

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def getmany(
        self, tp: TopicPartition, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[Any]]:
        log, at = self.logs[tp], self.positions[tp]
        if at >= len(log):
            return {}
        if log[at] is None:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
        self.positions[tp] = at + 1
        return {tp: [(tp.partition, at, log[at])]}


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict[str, bytes]]] = []

    async def send_and_wait(
        self, topic: str, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        self.sent.append((topic, value, dict(headers)))


async def test_salvage_hands_over_the_records_before_the_bad_one_then_passes_it() -> None:
    consumer = FakeConsumer({GOOD: [b"g0", b"g1"], BAD: [b"b0", b"b1", None, b"b3"]}, {BAD: 1})
    producer = FakeProducer()

    async def commit(offsets: dict[TopicPartition, int]) -> bool:
        consumer.commits.append(offsets)
        return True

    salvage = Salvage(consumer, producer, "dlq", rounds=100, commit=commit)
    await salvage.begin(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"))
    assert consumer.positions == {GOOD: 0, BAD: 1}  # never committed: from the beginning

    handed: list[Any] = []
    while salvage.active:
        batch = await salvage.step()
        handed += [record for records in batch.values() for record in records]
    assert handed == [(0, 0, b"g0"), (1, 1, b"b1"), (0, 1, b"g1")]
    [(topic, value, headers)] = producer.sent
    assert topic == "dlq" and headers["responder.reason"] == REASON.encode()
    assert orjson.loads(value) == {
        "topic": "events",
        "partition": 1,
        "offset": 2,
        "error": "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0: "
        "invalid start byte",
    }
    assert headers["responder.source.offset"] == b"2"
    assert consumer.commits == [{BAD: 3}] and consumer.positions[BAD] == 3
    assert salvage.skipped == 1


async def test_salvage_stops_when_nothing_is_left_or_after_its_rounds() -> None:
    consumer = FakeConsumer({GOOD: [b"g0", b"g1", b"g2"]}, {GOOD: 0})

    async def commit(offsets: dict[TopicPartition, int]) -> bool:
        return True

    salvage = Salvage(consumer, FakeProducer(), "dlq", rounds=2, commit=commit)
    await salvage.begin(ValueError("x"))
    assert (await salvage.step()) == {GOOD: [(0, 0, b"g0")]}
    assert salvage.active
    assert (await salvage.step()) == {GOOD: [(0, 1, b"g1")]}
    assert not salvage.active  # as many rounds as one fetch could hold: back to batches
