"""A quiet stream on the real broker is read a few events at a time (WorkerSettings.gather_*):
the broker holds the ingest stage's fetch until enough bytes are there or the wait is over, so
the stages downstream pay their per-fetch cost once per batch, not once per event. A busy
stream makes the stage wait for more (`streams/gather.py`), on the running client."""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from responder.correlation.rules import RuleSet
from responder.correlation.watermark import Watermarks
from responder.streams import ingest
from responder.streams.ingest import IngestStage
from responder.streams.kafka import set_fetch_gather
from responder.streams.records import read
from responder.streams.topics import ensure_topics
from tests.support.builders import rule
from tests.support.harness import _produce, consume_all, event_json, kafka_settings, routed_ids
from tests.support.stages import running, settle

pytestmark = [pytest.mark.integration]


async def trickle(bootstrap: str, name: str, values: list[bytes], gap_s: float) -> None:
    """Each value acknowledged on its own, `gap_s` apart: a quiet stream."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(name, value=value, partition=0)
            await asyncio.sleep(gap_s)
    finally:
        await producer.stop()


async def secrets_stage(
    bootstrap: str, unique: str, gather_bytes: int, gather_ms: int, gather_window_ms: int = 0
) -> IngestStage:
    """An ingest stage with one rule every `secrets(n)` event matches, on fresh topics."""
    kafka = kafka_settings(bootstrap, unique)
    await ensure_topics(kafka)
    rules = RuleSet([rule(id="each-secret", match={"type": "secret.leaked"})])
    return IngestStage(
        kafka,
        rules,
        gather_bytes=gather_bytes,
        gather_ms=gather_ms,
        gather_window_ms=gather_window_ms,
    )


def secrets(n: int) -> list[bytes]:
    return [event_json(f"e{i}", type="secret.leaked", resource=f"k{i}") for i in range(n)]


async def test_a_quiet_stream_is_ingested_in_gathered_batches(
    kafka_bootstrap: str, unique: str
) -> None:
    stage = await secrets_stage(kafka_bootstrap, unique, gather_bytes=1024 * 1024, gather_ms=1000)
    kafka = stage.kafka
    values = secrets(10)
    async with running(stage):
        started = time.monotonic()
        await trickle(kafka_bootstrap, kafka.topics.events, values, gap_s=0.03)
        took = time.monotonic() - started  # ~0.3 s; longer on a loaded machine
        await settle(lambda: stage.stats.events == len(values))
        routed = await routed_ids(kafka_bootstrap, kafka.topics.correlate, len(values))
    assert stage.stats.events == len(values)
    # ten events ~0.3 s apart in all, each its own produce request: one or two broker waits of
    # a second gather them all (read one by one, they would be ten batches)
    assert stage.stats.batches <= max(2, math.ceil(took) + 1), (stage.stats.batches, took)
    assert sorted(routed) == sorted(f"e{i}" for i in range(10))


async def test_an_ingest_with_nothing_to_read_still_announces_the_partitions_it_holds(
    kafka_bootstrap: str, unique: str
) -> None:
    """With several ingest processes, one whose input partitions are all stalled must still be
    heard of: every correlation partition then waits for those partitions (progress unknown)
    instead of judging their events by the other processes' progress alone."""
    kafka = kafka_settings(kafka_bootstrap, unique)
    await ensure_topics(kafka)
    stage = IngestStage(kafka, RuleSet([rule(id="r", match={"type": "x"})]))
    async with running(stage):
        await settle(lambda: len(stage.held()) == kafka.partitions)
        messages = await consume_all(kafka_bootstrap, kafka.topics.correlate, 2 * 4, timeout=10)
    assert stage.stats.events == 0
    heard: dict[int, set[tuple[int, float | None]]] = {}
    for m in messages:
        records, progress = read(m.value)
        assert list(records) == []
        heard.setdefault(m.partition, set()).update((p, t) for p, t in progress)
    everything = {(p, None) for p in range(kafka.partitions)}
    assert heard == dict.fromkeys(range(kafka.partitions), everything)
    marks = Watermarks(idle_s=60)
    for partition, newest in everything:
        marks.observe(partition, newest, now=0)
    assert marks.current() == float("-inf")  # held back until they report or go idle


async def test_the_gather_of_a_running_client_can_be_changed(
    kafka_bootstrap: str, unique: str
) -> None:
    """aiokafka has no public way to change `fetch_min_bytes` once started: `set_fetch_gather`
    sets what its fetcher reads for each request. Held here on the locked client version: the
    broker holds the next fetch for the new size, and answers at once after it is set back."""
    name = f"{unique}.gather"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        fetch_min_bytes=1,
        fetch_max_wait_ms=5000,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await _produce(kafka_bootstrap, name, [b"first"])  # (creates the topic)
    consumer.assign([TopicPartition(name, 0)])
    await consumer.start()
    try:
        assert set_fetch_gather(consumer, 1024 * 1024, 5000)
        first = await consumer.getmany(timeout_ms=15_000)
        assert [m.value for ms in first.values() for m in ms] == [b"first"]
        await _produce(kafka_bootstrap, name, [b"second"])
        assert await consumer.getmany(timeout_ms=1000) == {}  # held: 1 MiB are not there
        assert set_fetch_gather(consumer, 1, 5000)
        second = await consumer.getmany(timeout_ms=15_000)  # the held fetch runs out
        assert [m.value for ms in second.values() for m in ms] == [b"second"]
        await _produce(kafka_bootstrap, name, [b"third"])
        third = await consumer.getmany(timeout_ms=2500)  # answered as soon as it is there
        assert [m.value for ms in third.values() for m in ms] == [b"third"]
    finally:
        await consumer.stop()


async def test_a_busy_stream_raises_the_ingest_gather_and_a_stopped_one_lowers_it(
    kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage = await secrets_stage(
        kafka_bootstrap, unique, gather_bytes=2048, gather_ms=250, gather_window_ms=100
    )
    kafka = stage.kafka
    values = secrets(3000)
    started = stage.promoter.frozen
    given: list[tuple[int, int, int, int]] = []  # each ask, and what the fetcher holds after it

    def recorded(consumer: AIOKafkaConsumer, size: int, wait_ms: int) -> bool:
        done = set_fetch_gather(consumer, size, wait_ms)
        fetcher = consumer._fetcher
        given.append((size, wait_ms, fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms))
        return done

    # recorded as asked: a burst can be read, and the ask lowered again, between two looks
    monkeypatch.setattr(ingest, "set_fetch_gather", recorded)
    async with running(stage):
        fetcher = stage.consumer._fetcher
        assert (fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms) == (2048, 250)
        # the pace measures from its first fetch on (what that fetch brought is not a rate): a
        # burst that fetch brought whole, the client still finding the new topic's leaders
        # while it was written, would never be measured
        await settle(lambda: stage.pace._since is not None)
        await _produce(kafka_bootstrap, kafka.topics.events, values)
        await settle(lambda: any(size > 2048 for size, *_ in given))
        raised = [ask for ask in given if ask[0] > 2048]
        assert raised  # a tenth of a second of ~1 MB/s, held two windows:
        assert all(
            wait == 200 and (size, wait) == (held, holds) for size, wait, held, holds in raised
        )
        await settle(lambda: stage.asked == (2048, 250))  # nothing more: back to the quiet ask
        assert (fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms) == (2048, 250)
    assert stage.stats.events == len(values)
    # the loop froze its survivors (routing caches) out of the collector's scans meanwhile
    assert stage.promoter.frozen > started
