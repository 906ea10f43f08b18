"""Small aiokafka helpers shared by the stages."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from responder.kafka_clients import client_options
from responder.metrics.worker import CONSUMER_LAG
from responder.settings import KafkaSettings
from responder.streams.failures import source_headers
from responder.streams.salvage import UNDECODABLE, Salvage
from responder.streams.standby import (
    PROBE_TIMEOUT_S,
    WARN_AFTER,
    Standby,
    group_backlog,
)

log = structlog.get_logger(__name__)

LAG_EVERY_S = 1.0  # how often a stage measures its consumer lag
COMMIT_EVERY_S = 0.2  # a stage commits its acknowledged offsets at most this often
MAX_IN_FLIGHT = 32  # batches handed to the committer and not yet acknowledged: the loop waits
FETCH_WAIT_MS = 200  # `getmany` returns at once when records are there, else after this

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
    await (await send_dead_letter(producer, topic, msg, reason, detail))


async def send_dead_letter(
    producer: AIOKafkaProducer,
    topic: str,
    msg: ConsumerRecord[bytes, bytes],
    reason: str,
    detail: Sequence[str] = (),
) -> asyncio.Future[Any]:
    """Queue one message for the DLQ with its reason; the future resolves when the broker has
    it (many in a row: one round trip for all, not one each)."""
    future: asyncio.Future[Any] = await producer.send(
        topic, value=msg.value, key=msg.key, headers=dlq_headers(msg, reason, detail)
    )
    return future


HEARTBEAT_MS = 500
"""How often a stage's consumer heartbeats (at most a third of the session timeout). A member
that joins a group rebalances it only once every member has heard of it through a heartbeat
(or a commit): every third of the 10 s session, an extra sink joining a burst's backlog
(`standby.py`) took ~4 s to store its first change, half a second here. `bench/pipeline.py`,
interleaved: stored 37,605 against 31,972 events/s (medians of three), at 100 events/s 0.13
cores either way."""


def membership(kafka: KafkaSettings, role: str) -> dict[str, Any]:
    """Consumer group options of one stage: the session timeout, heartbeats (`HEARTBEAT_MS`)
    and, with `instance_id`, static membership (KIP-345): a worker restarted under the same
    instance id takes its partitions back without a rebalance, instead of waiting for the
    killed process's session to expire."""
    session_ms = int(kafka.session_timeout_s * 1000)
    options: dict[str, Any] = {
        "session_timeout_ms": session_ms,
        "heartbeat_interval_ms": min(session_ms // 3, HEARTBEAT_MS),
    }
    if kafka.instance_id is not None:
        options["group_instance_id"] = f"{kafka.instance_id}-{role}"
    return options


def set_fetch_gather(consumer: AIOKafkaConsumer, size: int, wait_ms: int) -> bool:
    """Make the consumer's next fetch requests wait for `size` bytes for at most `wait_ms`
    (`fetch_min_bytes`, `fetch_max_wait_ms`).

    aiokafka reads both from its fetcher each time it builds a fetch request and has no public
    way to change them once started (`tests/integration/test_ingest_gather.py` holds this on the
    locked version). False when the client has no such attributes (another version): its
    fetches keep what they were started with."""
    fetcher = getattr(consumer, "_fetcher", None)
    names = ("_fetch_min_bytes", "_fetch_max_wait_ms")
    if fetcher is None or not all(isinstance(getattr(fetcher, n, None), int) for n in names):
        return False
    fetcher._fetch_min_bytes = size
    fetcher._fetch_max_wait_ms = wait_ms
    return True


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


@dataclass
class _Handed:
    offsets: dict[TopicPartition, int]
    sends: list[asyncio.Future[Any]]


class Committer:
    """Commits a stage's offsets in the background, so the stage fetches its next batch while
    the records of the previous ones are still on their way to the broker.

    A batch is handed over with the offsets after it and the futures of everything it produced
    (`hand_over`); batches settle in order, and an offset is committed only once its batch and
    every batch before it were acknowledged (at least once: a crash may redeliver, never lose).
    Commits go out at most every `every_s` (a quiet stream costs a commit request per interval,
    not per record). A send that failed stops the committer with its error: nothing after it
    is committed. `drain` settles and commits everything handed over (on stop, on revocation).
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        *,
        every_s: float = COMMIT_EVERY_S,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.consumer = consumer
        self.every_s = every_s
        self.max_in_flight = max_in_flight
        self.handed: deque[_Handed] = deque()
        self.acked: dict[TopicPartition, int] = {}  # settled, not yet committed
        self.last = float("-inf")  # when the last commit went out (monotonic; none yet)
        self.lock = asyncio.Lock()
        self.changed = asyncio.Event()  # a batch was handed over
        self.settled = asyncio.Event()  # a batch settled

    async def hand_over(
        self, offsets: dict[TopicPartition, int], sends: list[asyncio.Future[Any]]
    ) -> None:
        """Queue a batch's offsets behind its sends; wait while `max_in_flight` are queued."""
        if not offsets and not sends:
            return
        self.handed.append(_Handed(offsets, sends))
        self.changed.set()
        while len(self.handed) > self.max_in_flight:
            self.settled.clear()
            await self.settled.wait()

    async def run(self) -> None:
        """Forever: settle what was handed over, in order; commit when due."""
        while True:
            if self.handed:
                async with self.lock:
                    await self._settle_first()
                if time.monotonic() >= self.last + self.every_s:
                    await self.commit_settled()
                continue
            self.changed.clear()
            timeout = None
            if self.acked:
                timeout = self.last + self.every_s - time.monotonic()
                if timeout <= 0:
                    await self.commit_settled()
                    continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.changed.wait()

    async def drain(self, offsets: dict[TopicPartition, int] | None = None) -> bool:
        """Settle everything handed over and commit it now, with `offsets` on top (a record
        passed by the salvage); False if the broker refused the commit."""
        async with self.lock:
            while self.handed:
                await self._settle_first()
            self.acked.update(offsets or {})
            return await self._commit()

    async def commit_settled(self) -> bool:
        async with self.lock:
            return await self._commit()

    async def _settle_first(self) -> None:
        if not self.handed:  # a drain settled it while this waited for the lock
            return
        first = self.handed[0]
        if first.sends:
            await asyncio.wait(first.sends)  # (a cancelled wait leaves the sends alone)
            for send in first.sends:
                send.result()  # raises what failed: nothing after it is committed
        self.handed.popleft()
        self.acked.update(first.offsets)
        self.settled.set()

    async def _commit(self) -> bool:
        self.last = time.monotonic()
        if not self.acked:
            return True
        assigned = self.consumer.assignment()
        # a partition revoked meanwhile: its new owner starts from the last commit (redelivery)
        offsets = {tp: offset for tp, offset in self.acked.items() if tp in assigned}
        done = await commit(self.consumer, offsets)
        self.acked.clear()  # (under the lock: nothing settled meanwhile)
        return done


class DrainOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits everything a stage handled before its partitions go to another member."""

    def __init__(self, committer: Committer) -> None:
        self.committer = committer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if revoked:
            await self.committer.drain()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None


async def run_beside(main: Any, helper: Any) -> None:
    """Run two coroutines until one fails (both loop forever); the failure is raised, the
    other cancelled. Cancelled from outside, both are cancelled."""
    tasks = [asyncio.ensure_future(main), asyncio.ensure_future(helper)]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


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
        self.flying: list[asyncio.Future[Any]] = []  # the batches of the last submit

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

    def flying_now(self) -> bool:
        """Whether batches of the last submit still wait for the broker's acknowledgement."""
        return any(not future.done() for future in self.flying)

    async def submit(self) -> list[asyncio.Future[Any]]:
        """Queue every batch for delivery; the futures resolve when the broker acknowledged.

        The batches of the previous submit are waited for first (what failed is left to whoever
        holds their futures): the client sends one batch per partition per request, so batches
        queued behind one in flight would each cost a round trip. Waiting here instead lets the
        consumer's next fetch gather what arrived meanwhile: batches stay small (no delay) when
        the stream is quiet and grow with the load.
        """
        if not self.count:
            return []
        if self.flying:
            await asyncio.wait(self.flying)  # (cancelled here, the records stay for the next)
        pending = self.full + [(b, t, p) for (t, p), b in self.open.items() if b.record_count()]
        self.full, self.open, self.count = [], {}, 0
        self.flying = [await self.producer.send_batch(b, t, partition=p) for b, t, p in pending]
        return list(self.flying)


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
    DLQ with the reason) and end with `done(batch)`, which hands the batch's offsets and the
    futures of everything it produced to the stage's `Committer`: the offsets are committed
    once the broker acknowledged those records (at least once), while the loop already fetches
    the next batch. Each fetch returns as soon as records are there, so batches are small when
    the stream is quiet and grow with the load (up to `max_records`); a stage that wants more
    per fetch asks the broker to hold it (`consumer_options`: the ingest's gather, the sink's).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        role: str,
        max_records: int,
        *,
        standby: Standby | None = None,
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.role = role
        self.max_records = max_records
        self.pending: list[asyncio.Future[Any]] = []
        self.lag = LagMeter(role)
        # in the group only while it has a backlog (`streams/standby.py`); a static member
        # sends no LeaveGroup when it leaves, so it stays a member
        self.standby = standby if kafka.instance_id is None else None
        self.subscribed = False  # a member of its group now (set on start without a standby)
        self.decided = asyncio.Event()  # the standby's decision changed
        self.backlog = 0  # the backlog the standby last decided on

    def consumer_options(self) -> dict[str, Any]:
        """Extra `AIOKafkaConsumer` options of this stage."""
        return {}

    def producer_options(self) -> dict[str, Any]:
        """Extra `AIOKafkaProducer` options of this stage."""
        return {}

    async def start(self) -> None:
        kafka = self.kafka
        self.consumer = AIOKafkaConsumer(
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
        self.committer = Committer(self.consumer)
        if self.standby is None:
            self.subscribe()
            self.subscribed = True
        else:
            log.info(
                "on standby: joins its group at a backlog",
                stage=self.role,
                backlog=self.standby.join,
            )
        await self.producer.start()
        await self.consumer.start()
        self.salvage = Salvage(
            self.consumer,
            self.producer,
            kafka.topics.dlq,
            rounds=self.max_records,
            commit=self.committer.drain,
        )

    async def stop(self) -> None:
        """Commit everything handled (once acknowledged), then close the clients."""
        try:
            await self.committer.drain()
        finally:
            await self.consumer.stop()
            await self.producer.stop()

    async def run(self) -> None:
        helper = self.committer.run()
        if self.standby is not None:  # the backlog read beside: it never holds up a fetch
            helper = run_beside(helper, self.watch(self.standby))
        await run_beside(self._loop(), helper)

    def subscribe(self) -> None:
        self.consumer.subscribe([self.topic], listener=DrainOnRevoke(self.committer))

    async def _loop(self) -> None:
        while True:
            if self.standby is not None and not await self.follow(self.standby):
                await self.decided.wait()
                continue
            batch = await self.fetch()
            if batch:
                await self.handle(batch)
            else:
                await self.quiet()
            await self.lag.measure(self.consumer)

    async def watch(self, standby: Standby) -> None:
        """On standby, forever: read the group's backlog every PROBE_S and let `standby`
        decide; `decided` wakes the loop when the decision changes."""
        failed = 0
        while True:
            backlog = None
            try:  # (the client retries an offset read until the coordinator answers: bounded)
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    backlog = await group_backlog(self.consumer, self.topic, self.kafka.partitions)
            except (KafkaError, TimeoutError) as exc:  # left as it is: read again next time
                failed += 1
                if failed == WARN_AFTER:  # once, until a read succeeds
                    log.warning(
                        "the group's backlog cannot be read: its membership stays as it is",
                        stage=self.role,
                        error=repr(exc),
                        reads_failed=failed,
                    )
                else:
                    log.debug("backlog not read", stage=self.role, error=repr(exc))
            else:
                failed = 0
                was = standby.joined
                if standby.decide(backlog, time.monotonic()) != was:
                    self.backlog = backlog.records
                    self.decided.set()
            await asyncio.sleep(standby.next_probe_s(backlog))

    async def follow(self, standby: Standby) -> bool:
        """Join or leave the group as `standby` decided, between batches (everything handled
        committed before leaving); whether the stage is a member now."""
        self.decided.clear()
        if standby.joined == self.subscribed:
            return self.subscribed
        if standby.joined:
            self.subscribe()
            log.info("backlog: joined the group", stage=self.role, backlog=self.backlog)
        else:
            await self.committer.drain()  # (unsubscribing calls no revocation listener)
            self.consumer.unsubscribe()
            self.lag.gauge.set(0)
            log.info(
                "backlog gone: left the group",
                stage=self.role,
                backlog=self.backlog,
                under=standby.leave,
                for_s=standby.leave_after_s,
            )
        self.subscribed = standby.joined
        return self.subscribed

    async def fetch(self) -> Batch:
        """The next batch; past a record the client cannot decode (`streams/salvage.py`)."""
        if self.salvage.active:
            return await self.salvage.step()
        try:
            batch: Batch = await self.consumer.getmany(
                timeout_ms=FETCH_WAIT_MS, max_records=self.max_records
            )
        except UNDECODABLE as exc:
            await self.committer.drain()  # the rewind goes back to what was handled
            await self.salvage.begin(exc)
            return {}
        return batch

    async def handle(self, batch: Batch) -> None:
        raise NotImplementedError

    async def quiet(self) -> None:
        """After a fetch that brought nothing."""

    async def reject(
        self, msg: ConsumerRecord[bytes, bytes], reason: str, detail: Sequence[str] = ()
    ) -> None:
        """Queue the original message for the DLQ with why and where from (`done` hands the
        send to the committer with the batch)."""
        self.pending.append(
            await send_dead_letter(self.producer, self.kafka.topics.dlq, msg, reason, detail)
        )

    async def done(self, batch: Batch) -> None:
        """Hand the batch's offsets to the committer, behind every record it produced (DLQ
        included): committed once those are acknowledged, without waiting here."""
        pending, self.pending = self.pending, []
        await self.committer.hand_over(offsets_after(batch), pending)


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
