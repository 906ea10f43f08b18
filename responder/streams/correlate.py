"""Correlation stage: keyed window state per partition, in memory, backed by a changelog.

Consumes the micro-batched records of the correlation topic, feeds them to the pure engine and
emits incident changes. Changed keys are written to the compacted changelog once per commit
interval (as Kafka Streams' record cache does), a step of keys per loop round between batches,
then offsets are committed in the background once every send is acknowledged
(`streams/kafka.py` `Committer`): a crash replays only what was not yet flushed, and the
engine's dedup plus deterministic incident ids make the replay harmless. On assignment a partition's state is restored from its changelog partition.

Poison never stops the stage: a message it cannot decode goes to the DLQ; a record whose
correlation raises (or whose incident change cannot be written) is skipped and its message goes
to the DLQ once, naming each failed record with the exception class, while the message's other
records are correlated as usual; a changelog entry that cannot be restored is dead-lettered and
its group starts afresh.
"""

from __future__ import annotations

import asyncio
import time as clock
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, Literal

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from responder.correlation.capacity import GroupStore, rule_of
from responder.correlation.engine import Correlator, routed_by_key
from responder.correlation.rules import Rule, RuleSet
from responder.correlation.watermark import Watermarks
from responder.correlation.window import WindowEvent, state_from_dict
from responder.events.schema import rfc3339
from responder.kafka_clients import client_options
from responder.metrics.worker import GROUPS_EVICTED, LIVE_GROUPS
from responder.metrics.worker import rules as metric_rules
from responder.settings import CorrelationSettings, KafkaSettings
from responder.streams import native as compiled
from responder.streams import native_windows, records
from responder.streams.collector import Promoter, collection_paused
from responder.streams.failures import failure_detail, failure_reason
from responder.streams.kafka import (
    Batch,
    BatchSender,
    Committer,
    LagMeter,
    dead_letter,
    membership,
    run_beside,
    send_dead_letter,
)
from responder.streams.native_windows import NativeWindows
from responder.streams.salvage import UNDECODABLE, WAIT_MS, pass_undecodable
from responder.streams.topics import MAX_MESSAGE_BYTES, partition_for

MAX_CHANGE_BYTES = MAX_MESSAGE_BYTES - 64 * 1024  # room for the record batch framing
MAX_FAILURES_NAMED = 20  # failed records named in one DLQ message's detail


class ChangeTooLarge(ValueError):
    """An incident change the incidents topic would refuse."""


Store = GroupStore | NativeWindows
"""One partition's window state: the Python engine's, or the compiled one's."""
Failure = tuple[Any, str, str, BaseException]
"""A record that failed: (group key, event source, event id, what it raised)."""
Fed = tuple[str, bytes] | Literal[False] | None
"""A record fed: its change as (incident id, JSON), None for none, False when its rule is no
longer in the set."""
Correlated = tuple[
    list[tuple[str, bytes]], list[tuple[int, float | None]], int, float, list[Failure]
]
"""One message fed: (changes, input progress, records fed, their newest time, failures)."""


def _named(failures: list[Failure]) -> list[str]:
    """The DLQ detail of a message's failed records: rule, event and error, the first few."""
    return [
        f"{rule_of(key)[:128] if type(key) is str else '?'} {source}/{event_id}: "
        f"{failure_detail(exc)[0]}"
        for key, source, event_id, exc in failures[:MAX_FAILURES_NAMED]
    ]


log = structlog.get_logger(__name__)

WATERMARK_KEY = "watermarks"
"""The changelog key of a partition's input progress (no `|`: no group key looks like it)."""

NOTICE_EVERY_S = 600.0
"""At most one `correlation.groups_evicted` event per rule and partition this often."""

LOGGED_CORRUPT = 20  # corrupt changelog entries a restore logs one by one (each goes to the DLQ)
RESTORE_CHUNK = 20_000
"""Changelog records a compiled store restores in one call, off the GIL: large enough that a
call's cost is nothing, small enough that a chunk's records are let go as its states are built."""
RESTORE_FETCH_WAIT_MS = 20
"""How long the broker may hold a restore's fetch of a partition with nothing more to read. The
broker answers a connection's requests in order, so a fetch it holds delays the next restore's
offset requests behind it: with the client's default (500 ms), restoring an empty changelog
took 1.2 s, a stage that correlated nothing meanwhile. Between restores nothing is fetched."""
FLUSH_STEP_KEYS = 1000  # changelog keys a flush writes per loop round, between batches
FLUSH_ACK_POLL_MS = 5  # how long an idle loop waits for events while a flush step is in flight
STATE_TTL = timedelta(days=1)  # event time a group may stay idle before its state is forgotten
SWEEP_EVERY_S = 30.0
SWEEP_STEP_KEYS = 5000  # groups a sweep looks at per loop round (all at once stopped the stage)


@dataclass
class CorrelateStats:
    records: int = 0
    changes: int = 0
    flushes: int = 0
    keys_written: int = 0
    restored_keys: int = 0
    cpu_s: float = 0.0  # process CPU spent correlating batches


@dataclass
class _Flush:
    """A flush under way: the changed keys it writes, by partition, and the offsets they
    cover; `at` is the next key to write of the partition `part` of `keys`."""

    keys: list[tuple[int, list[str]]]
    offsets: dict[TopicPartition, int]
    partitions: set[int] | None
    part: int = 0
    at: int = 0


@dataclass
class _Sweep:
    """A sweep under way: the partitions whose stores have keys left to look at (each store
    holds its sweep's keys: `begin_sweep` once the sweep reaches it, then `sweep`)."""

    todo: list[int]
    store: Store | None = None  # the store that began its sweep (one assigned since: anew)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stage: CorrelateStage) -> None:
        self.stage = stage

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.stage.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.stage.on_assigned(assigned)


class CorrelateStage:
    def __init__(
        self,
        kafka: KafkaSettings,
        rules: RuleSet,
        settings: CorrelationSettings,
        *,
        native: bool = True,
    ) -> None:
        self.kafka = kafka
        self.rules = rules
        self.settings = settings
        # messages read in one compiled pass where responder-native is installed (and wanted)
        self.read = compiled.read if native else records.read
        self.engine = Correlator(
            rules, allowed_lateness=timedelta(seconds=settings.allowed_lateness_s)
        )
        self.stats = CorrelateStats()
        # window state in the compiled engine where it is installed (and wanted)
        self.compiled_windows = native and native_windows.available()
        self.stores: dict[int, Store] = {}
        self.dirty: dict[int, set[str]] = defaultdict(set)
        self.watermark: dict[int, float] = defaultdict(lambda: float("-inf"))  # newest seen
        self.progress: dict[int, Watermarks] = {}  # of the input partitions, per partition
        self.pending: dict[TopicPartition, Any] = {}  # processed, not yet committed
        self.outbox: list[tuple[str, bytes]] = []  # (incident id, change JSON)
        self.dead: list[tuple[Any, str, list[str]]] = []  # (message, reason, detail)
        self.sends: list[asyncio.Future[Any]] = []
        self.lock = asyncio.Lock()
        self.writing: _Flush | None = None  # a flush under way (`_flush_step`)
        self.last_flush = clock.monotonic()
        self.last_sweep = clock.monotonic()
        self.sweeping: _Sweep | None = None  # a sweep under way (`_sweep_step`)
        self.lag = LagMeter("correlate")
        self.promoter = Promoter()  # window state kept out of the collector's scans
        self.evictions: dict[tuple[str, int], int] = {}  # (rule, partition) → groups evicted
        self.noticed: dict[tuple[str, int], float] = {}  # (rule, partition) → when reported

    def _clients(self) -> None:
        kafka = self.kafka
        common = client_options(kafka)
        self.consumer = AIOKafkaConsumer(
            **common,
            group_id=f"{kafka.group_prefix}-correlate",
            client_id=f"{kafka.client_id}-correlate",
            **membership(kafka, "correlate"),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
        )
        self.restorer = AIOKafkaConsumer(
            **common,
            group_id=None,
            enable_auto_commit=False,
            client_id=f"{kafka.client_id}-restore",
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            fetch_max_wait_ms=RESTORE_FETCH_WAIT_MS,
            auto_offset_reset="earliest",  # a log start past a position: read on from it, not skip
        )
        producer = {
            **common,
            "client_id": f"{kafka.client_id}-correlate",
            "acks": "all",
            "linger_ms": 0,  # BatchSender hands over whole batches: lingering only adds latency
            "max_batch_size": 1024 * 1024,
            "max_request_size": MAX_MESSAGE_BYTES + 64 * 1024,
        }
        self.producer = AIOKafkaProducer(**producer)
        self.batcher = BatchSender(self.producer)
        # The changelog has a connection of its own: the client keeps one request in flight per
        # broker, so incident changes would otherwise wait behind each step of a flush.
        self.changelog_producer = AIOKafkaProducer(
            **{**producer, "client_id": f"{kafka.client_id}-changelog"}
        )
        self.changelog = BatchSender(self.changelog_producer)
        # offsets committed behind the flush's sends, in the background (streams/kafka.py)
        self.committer = Committer(self.consumer, every_s=0.0)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._clients()
        await self.producer.start()
        await self.changelog_producer.start()
        await self.restorer.start()
        self.incident_partitions = len(
            await self.producer.partitions_for(self.kafka.topics.incidents)
        )
        await self._prime_restorer()
        self.consumer.subscribe([self.kafka.topics.correlate], listener=_Rebalance(self))
        await self.consumer.start()

    async def stop(self) -> None:
        async with self.lock:
            await self._flush()
            await self.committer.drain()
        await self.consumer.stop()
        await self.restorer.stop()
        await self.changelog_producer.stop()
        await self.producer.stop()

    async def run(self) -> None:
        await run_beside(self._loop(), self.committer.run())

    async def _loop(self) -> None:
        while True:
            await self.round()

    async def round(self) -> None:
        """One round: correlate what the fetch brought, send its incident changes, and write
        the next step of a flush under way once the previous step was acknowledged."""
        batch = await self.consumer.getmany(
            timeout_ms=self._fetch_wait_ms(), max_records=max(1, self.settings.max_batch // 100)
        )
        async with self.lock:
            if batch:
                self.handle(batch)
                await self._send_outbox()
                await self._dead_letter()
            if self.writing is None and self._flush_due(idle=not batch):
                await self._start_flush()
            if self.writing is not None and not self.changelog.flying_now():
                await self._flush_step(FLUSH_STEP_KEYS)
            if self.sweeping is not None:
                self._sweep_step(SWEEP_STEP_KEYS)
        await self.lag.measure(self.consumer)
        self.promoter.step(idle=not batch and self.writing is None)

    def _fetch_wait_ms(self) -> int:
        """A flush under way goes on at once, or as soon as its last step was acknowledged (its
        sends are never waited for here: events keep being correlated meanwhile)."""
        if self.writing is None:
            return 200
        return FLUSH_ACK_POLL_MS if self.changelog.flying_now() else 0

    def _flush_due(self, *, idle: bool) -> bool:
        """Flush once per commit interval, and as soon as the consumer is idle (a quiet stream
        gets its offsets committed and its state written at once, not up to an interval later)."""
        if clock.monotonic() - self.last_flush >= self.settings.commit_interval_s:
            return True
        return idle and bool(self.pending or self.dirty)

    # --- processing -----------------------------------------------------------------------

    def handle(self, batch: Batch) -> None:
        """Feed every record of the batch; queue the resulting incident changes."""
        started = clock.process_time()
        fed = 0
        horizon = self.horizon()
        for tp, messages in batch.items():
            store = self.stores.get(tp.partition)
            if store is None:
                continue  # revoked while the fetch was in flight
            dirty = self.dirty[tp.partition]
            newest = self.watermark[tp.partition]
            marks = self._marks(tp.partition)
            for msg in messages:
                if not msg.value:
                    continue
                watermark = marks.current()
                try:
                    done = self._correlate(store, msg.value, watermark, dirty)
                except Exception as exc:  # e.g. written by another version
                    self.dead.append((msg, "undecodable correlation message", failure_detail(exc)))
                    continue
                changes, progress, count, latest, failures = done
                fed += count
                if latest > newest:
                    newest = latest
                self.outbox.extend(changes)
                if failures:
                    self.dead.append(
                        (msg, failure_reason("correlate", failures[0][3]), _named(failures))
                    )
                now = clock.monotonic()
                for input_partition, input_newest in progress:  # after its records
                    if input_newest is not None and input_newest > horizon:
                        input_newest = horizon
                    marks.observe(input_partition, input_newest, now)
            if isinstance(store, NativeWindows):
                dirty.update(store.take_fed())
            self.watermark[tp.partition] = newest if newest < horizon else horizon
            self.pending[tp] = messages[-1].offset + 1
            self._evicted(tp.partition, store)
        self.stats.records += fed
        self.stats.cpu_s += clock.process_time() - started

    def _correlate(
        self, store: Store, value: bytes, watermark: float | None, dirty: set[str]
    ) -> Correlated:
        """One message's records fed: (changes, input progress, records fed, their newest
        event time, the records that failed). Raises for a message that cannot be read."""
        if isinstance(store, NativeWindows):
            done: Correlated | None = store.feed_message(value, watermark)
            if done is not None:
                return done
        decoded, progress = self.read(value)
        feed = self._feed_native if isinstance(store, NativeWindows) else self._feed
        changes: list[tuple[str, bytes]] = []
        failures: list[Failure] = []
        fed, newest = 0, float("-inf")
        for key, event in decoded:
            try:
                change = feed(store, key, event, watermark, dirty)
            except Exception as exc:
                failures.append((key, event.source, event.id, exc))
                continue
            if change is False:
                continue  # the rule was removed since this record was routed
            if change is not None:
                changes.append(change)
            if event.time > newest:
                newest = event.time
            fed += 1
        return changes, progress, fed, newest, failures

    def _feed(
        self,
        store: Store,
        key: Any,
        event: WindowEvent,
        watermark: float | None,
        dirty: set[str],
    ) -> Fed:
        """One record through the Python engine."""
        assert isinstance(store, GroupStore)
        routed = self.rules.keyed.get(key) if type(key) is str else None
        if routed is None:
            routed = routed_by_key(self.rules, key)
            if routed is None:
                return False
        state = store.get(key)
        if state is None:
            state = store.group(routed.rule_id, key)
        dirty.add(key)
        change = self.engine.feed(state, routed, event, watermark)
        if change is None:
            return None
        value = change.to_json()
        if len(value) > MAX_CHANGE_BYTES:
            raise ChangeTooLarge(f"incident change of {len(value)} bytes > {MAX_CHANGE_BYTES}")
        return change.incident_id, value

    @staticmethod
    def _feed_native(
        store: Store,
        key: Any,
        event: WindowEvent,
        watermark: float | None,
        dirty: set[str],
    ) -> Fed:
        """One record through the compiled engine (which keeps the keys fed itself)."""
        assert isinstance(store, NativeWindows)
        fed: Fed = store.feed(key, event, watermark)
        return fed

    def horizon(self) -> float:
        """The furthest event time progress may be taken to: the wall clock plus the allowed
        skew. An event dated years ahead (one per input partition would do) would otherwise make
        every later event late and prune every window, for good: progress never goes back."""
        return clock.time() + self.settings.max_clock_skew_s

    def new_store(self) -> Store:
        cap = self.settings.max_groups_per_rule
        if self.compiled_windows:
            return NativeWindows(
                self.engine, cap=cap, max_change=MAX_CHANGE_BYTES, too_large=ChangeTooLarge
            )
        return GroupStore(cap)

    def _evicted(self, partition: int, store: Store) -> None:
        """Tombstones for the groups the cap evicted; counted per rule for the metric and the
        notice (`_notify`)."""
        evicted = store.take_evicted()
        if not evicted:
            return
        self.dirty[partition].update(evicted)
        for key in evicted:
            rule_id = rule_of(key)
            self.evictions[(rule_id, partition)] = self.evictions.get((rule_id, partition), 0) + 1
            GROUPS_EVICTED.labels(metric_rules(rule_id)).inc()

    async def _notify(self) -> None:
        """A `correlation.groups_evicted` event (rule `correlation-state-capped` makes it an
        incident) per rule and partition whose groups were evicted, at most every NOTICE_EVERY_S;
        its id names the rule, the partition and the period, so a redelivery counts once."""
        now = clock.time()
        for (rule_id, partition), count in list(self.evictions.items()):
            last = self.noticed.get((rule_id, partition))
            if last is not None and now - last < NOTICE_EVERY_S:
                continue
            self.noticed[(rule_id, partition)] = now
            del self.evictions[(rule_id, partition)]
            cap = self.settings.max_groups_per_rule
            log.warning(
                "correlation groups evicted", rule=rule_id, partition=partition, evicted=count
            )
            event = {
                "id": f"groups-evicted/{rule_id}/{partition}/{int(now // NOTICE_EVERY_S)}",
                "source": "responder",
                "type": "correlation.groups_evicted",
                "time": rfc3339(datetime.fromtimestamp(now, UTC)),
                "severity": "high",
                "title": f"Rule {rule_id} had more than {cap} live groups; the oldest were evicted",
                "resource": {"kind": "rule", "id": rule_id},
                "attributes": {"cap": cap, "evicted": count, "partition": partition},
                "schema_version": "1",
            }
            self.sends.append(
                await self.producer.send(
                    self.kafka.topics.events, value=orjson.dumps(event), key=rule_id.encode()
                )
            )

    def _marks(self, partition: int) -> Watermarks:
        marks = self.progress.get(partition)
        if marks is None:
            marks = self.progress[partition] = Watermarks(self.settings.idle_partition_s)
        return marks

    async def _send_outbox(self) -> None:
        topic = self.kafka.topics.incidents
        self.stats.changes += len(self.outbox)
        for incident_id, value in self.outbox:
            self.batcher.add(
                topic,
                partition_for(incident_id, self.incident_partitions),
                incident_id.encode(),
                value,
            )
        self.outbox.clear()
        self.sends.extend(await self.batcher.submit())

    async def _dead_letter(self) -> None:
        for msg, reason, detail in self.dead:
            log.error(
                "correlation message to DLQ", reason=reason, offset=msg.offset, detail=detail[:3]
            )
            await dead_letter(self.producer, self.kafka.topics.dlq, msg, reason, detail)
        self.dead.clear()

    # --- durability -----------------------------------------------------------------------

    async def _flush(self, partitions: set[int] | None = None) -> None:
        """Write every changed key to the changelog now (stop, revocation), after the rest of a
        flush under way; the offsets are committed once every send is acknowledged, without
        waiting here (`drain` the committer to wait)."""
        while self.writing is not None:
            await self._flush_step(None)
        await self._start_flush(partitions)
        while self.writing is not None:
            await self._flush_step(None)

    async def _start_flush(self, partitions: set[int] | None = None) -> None:
        """Take the changed keys and the offsets they cover; `_flush_step` writes them."""
        await self._send_outbox()
        await self._notify()
        now = clock.monotonic()
        if now - self.last_sweep >= SWEEP_EVERY_S and self.sweeping is None:
            self.sweeping = _Sweep(list(self.stores))
            self.last_sweep = now
        keys: list[tuple[int, list[str]]] = []  # (a tuple a key took ~20 ms a flush at 5,000/s)
        for partition in list(self.dirty):
            if partitions is None or partition in partitions:
                changed = self.dirty.pop(partition)
                if changed:
                    keys.append((partition, list(changed)))
        offsets = {
            tp: off
            for tp, off in self.pending.items()
            if partitions is None or tp.partition in partitions
        }
        for tp in offsets:
            self.pending.pop(tp, None)
        self.writing = _Flush(keys, offsets, partitions)

    async def _flush_step(self, limit: int | None) -> None:
        """Write up to `limit` keys (None: all) of the flush under way; after the last, the
        input progress, and hand its offsets to the committer behind every send so far.

        A flush of many keys is written a step per loop round, between batches, so it never
        holds up the events behind it for long. A key written later than the flush began may
        already hold newer events than the offsets it commits: a replay after a crash is then
        deduplicated by the engine, as any replay is."""
        flush = self.writing
        assert flush is not None
        changelog = self.kafka.topics.changelog
        written = 0
        while flush.part < len(flush.keys) and (limit is None or written < limit):
            partition, keys = flush.keys[flush.part]
            end = len(keys) if limit is None else min(len(keys), flush.at + limit - written)
            store = self.stores.get(partition)
            for key in keys[flush.at : end]:
                value = None if store is None else _changelog_value(store, key)
                self.changelog.add(changelog, partition, key.encode(), value)
            written += end - flush.at
            flush.at = end
            if end == len(keys):
                flush.part, flush.at = flush.part + 1, 0
        self.stats.keys_written += written
        if flush.part < len(flush.keys):
            self.sends.extend(await self.changelog.submit())
            return
        for partition, marks in self.progress.items():
            if marks.changed and (flush.partitions is None or partition in flush.partitions):
                value = orjson.dumps(marks.to_dict())
                self.changelog.add(changelog, partition, WATERMARK_KEY.encode(), value)
                marks.changed = False
        self.sends.extend(await self.changelog.submit())
        sends, self.sends = self.sends, []
        self.writing = None
        await self.committer.hand_over(flush.offsets, sends)
        self.last_flush = clock.monotonic()
        self.stats.flushes += 1
        LIVE_GROUPS.set(sum(len(store) for store in self.stores.values()))

    def _sweep_step(self, limit: int) -> None:
        """Look at up to `limit` groups of the sweep under way and forget those idle (in event
        time) for longer than STATE_TTL; their tombstones go out with the next flush. A sweep of
        every group at once held up the events behind it (~0.3 s for 120k groups here), and so
        did listing every key as Python text when it began (~75 ms at 5,000 events/s): each
        store keeps its sweep's keys itself."""
        sweep = self.sweeping
        assert sweep is not None
        ttl = STATE_TTL.total_seconds()
        while sweep.todo and limit > 0:
            partition = sweep.todo[-1]
            store = self.stores.get(partition)
            left = 0
            if store is not None and store is not sweep.store:  # a store at a time: listing
                store.begin_sweep()  # its keys is the dearest part of a sweep (~25 ms for 800k)
                sweep.store = store
            if store is not None:  # (else revoked since: its groups went with it)
                watermark = self._marks(partition).current()
                newest = self.watermark[partition] if watermark is None else watermark
                dropped, looked, left = store.sweep(newest - ttl, limit)
                self.dirty[partition].update(dropped)
                limit -= looked
            if not left:
                sweep.todo.pop()
                sweep.store = None
        if not sweep.todo:
            self.sweeping = None

    # --- rebalancing ----------------------------------------------------------------------

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        parts = {tp.partition for tp in revoked}
        async with self.lock:
            await self._flush(parts)
            await self.committer.drain()
            for p in parts:
                self.stores.pop(p, None)
                self.dirty.pop(p, None)
                self.progress.pop(p, None)
        log.info("correlation partitions revoked", partitions=sorted(parts))

    async def on_assigned(self, assigned: list[TopicPartition]) -> None:
        parts = sorted(tp.partition for tp in assigned if tp.partition not in self.stores)
        if not parts:
            return
        async with self.lock:
            started = clock.monotonic()
            with collection_paused():  # millions of new objects: full collections, over and over
                restored = await self._restore(parts)
        log.info(
            "correlation partitions assigned",
            partitions=parts,
            restored_keys=restored,
            seconds=round(clock.monotonic() - started, 3),
        )

    async def _prime_restorer(self) -> None:
        """Have the restorer learn the changelog's partition leaders now, not when the group
        first assigns partitions: a client asked for offsets of a topic it has no metadata of
        looks it up and retries after its backoff (100 ms of a first restore). Assigned paused
        and at a position, nothing is fetched or looked up until a restore seeks."""
        changelog = self.kafka.topics.changelog
        tps = [TopicPartition(changelog, p) for p in await self.producer.partitions_for(changelog)]
        self.restorer.assign(tps)
        self.restorer.pause(*tps)
        for tp in tps:
            self.restorer.seek(tp, 0)

    async def _restore(self, parts: list[int]) -> int:
        tps = [TopicPartition(self.kafka.topics.changelog, p) for p in parts]
        stores: dict[int, dict[str, Any]] = {p: {} for p in parts}  # key → newest record
        # the offsets first, while no fetch of the restorer's is in flight (RESTORE_FETCH_WAIT_MS)
        ends = await self.restorer.end_offsets(tps)
        read_to = await self.restorer.beginning_offsets(tps)  # one past the last record kept
        # a partition at a time, each built (compiled, off the GIL) while the next is read;
        # put in place only once every one is built, so a failure leaves none half restored
        corrupt = Corrupt()
        builds: list[asyncio.Task[Built]] = []
        try:
            self.restorer.assign(tps)  # (fresh: unpaused, no position)
            for tp in tps:
                self.restorer.seek(tp, read_to[tp])
            for tp in tps:
                while ends[tp] > read_to[tp]:
                    try:
                        fetched = await self.restorer.getmany(tp, timeout_ms=500, max_records=10000)
                    except UNDECODABLE as exc:
                        await self._pass_undecodable(tp, read_to, stores[tp.partition], exc)
                    else:
                        messages = fetched.get(tp)
                        if messages:
                            _keep_newest(stores[tp.partition], messages)
                            read_to[tp] = messages[-1].offset + 1
                    if await self.restorer.position(tp) >= ends[tp]:
                        break
                for build in builds:  # a build that failed ends the restore now
                    if build.done():
                        build.result()
                records = stores.pop(tp.partition)  # let go with its partition
                task = self._build_store(tp.partition, records, corrupt)
                builds.append(asyncio.create_task(task))
            built = await asyncio.gather(*builds)
        except BaseException:
            for build in builds:
                build.cancel()
            await asyncio.gather(*builds, return_exceptions=True)
            raise
        finally:
            self.restorer.pause(*tps)  # nothing is fetched until the next restore
        horizon = self.horizon()  # a restored window's newest time is no progress
        for done in built:
            if done.progress is not None:
                self.progress[done.partition] = done.progress
            else:
                self.progress.pop(done.partition, None)
            self.watermark[done.partition] = min(done.watermark, horizon)
            self.stores[done.partition] = done.store
            self._evicted(done.partition, done.store)
        await _delivered(corrupt.sends)
        count = sum(len(done.store) for done in built)
        self.stats.restored_keys += count
        return count

    async def _pass_undecodable(
        self,
        tp: TopicPartition,
        read_to: dict[TopicPartition, int],
        raw: dict[str, Any],
        error: BaseException,
    ) -> None:
        """A changelog record the client cannot decode (see streams/salvage.py): the records
        decoded before it in the same read are lost with the exception, so read again from the
        last one kept, a record at a time, up to the bad one; note it in the DLQ and pass it.
        Left to escape, the error would leave the partition without state on every restart."""
        log.warning("a changelog record could not be decoded", partition=tp.partition)
        self.restorer.seek(tp, read_to[tp])
        while True:
            try:
                fetched = await self.restorer.getmany(tp, timeout_ms=WAIT_MS, max_records=1)
            except UNDECODABLE as exc:
                offset = await pass_undecodable(
                    self.restorer, self.producer, self.kafka.topics.dlq, tp, exc
                )
                read_to[tp] = offset + 1
                return
            messages = fetched.get(tp)
            if not messages:  # the error was not this partition's to repeat
                log.warning("changelog read failed once", error=failure_detail(error)[0])
                return
            _keep_newest(raw, messages)
            read_to[tp] = messages[-1].offset + 1

    async def _build_store(self, p: int, records: dict[str, Any], corrupt: Corrupt) -> Built:
        """Partition `p`'s window states from the newest changelog record of each key, and
        its input progress; not put in place (`_restore` does, once every partition is built).
        A compiled store restores RESTORE_CHUNK records a call in another thread (the GIL
        released); each chunk's records are let go once it is built, so the states take the
        memory the records leave. A corrupt entry goes to the DLQ: its group starts afresh,
        its next flush replaces it."""
        store = self.new_store()
        marks = records.pop(WATERMARK_KEY, None)
        progress = None if marks is None else self._restored_progress(p, marks)
        watermark = self.watermark[p]
        strings: dict[str, str] = {}  # one copy of each event source and type
        items = iter(records.items())
        rules = self.rules.rules
        while chunk := list(islice(items, RESTORE_CHUNK)):
            keys = [key for key, _ in chunk]
            values = [msg.value for _, msg in chunk]
            for key in keys:
                records[key] = None
            if isinstance(store, NativeWindows):  # off the GIL: the next partition is read
                newest, failed = await asyncio.to_thread(
                    restore_entries, store, keys, values, rules, strings
                )
            else:
                newest, failed = restore_entries(store, keys, values, rules, strings)
            if newest is not None and newest > watermark:
                watermark = newest
            for at, exc in failed:
                key, msg = chunk[at]
                await corrupt.add(self, msg, key, exc)
        return Built(p, store, watermark, progress)

    def _restored_progress(self, partition: int, msg: Any) -> Watermarks | None:
        try:
            marks = Watermarks.from_dict(orjson.loads(msg.value), self.settings.idle_partition_s)
        except Exception as exc:  # progress starts afresh: lateness waits for every partition
            log.error("input progress not restored", partition=partition, error=repr(exc)[:300])
            return None
        marks.cap(self.horizon())
        return marks


def _changelog_value(store: Store, key: str) -> bytes | None:
    """The key's changelog value; a window that cannot be written for any reason (e.g. a
    sequence or version a forged changelog entry took past 64 bits) is forgotten and tombstoned,
    with an error logged: left in place it would fail every flush, and the stage with it."""
    try:
        return store.changelog(key)
    except Exception as exc:
        log.error("window state not writable; forgotten", key=key[:200], error=repr(exc)[:300])
        store.drop(key)
        return None


@dataclass
class Built:
    """One partition's restore, before it is put in place."""

    partition: int
    store: Store
    watermark: float  # the newest event time of its windows (not yet capped at the horizon)
    progress: Watermarks | None  # its input progress, if restored


@dataclass
class Corrupt:
    """A restore's corrupt changelog entries: their DLQ sends (awaited once, at the end); the
    first LOGGED_CORRUPT of the whole restore are logged one by one."""

    sends: list[asyncio.Future[Any]] = field(default_factory=list)

    async def add(self, stage: CorrelateStage, msg: Any, key: str, exc: Exception) -> None:
        if len(self.sends) < LOGGED_CORRUPT:
            log.error("changelog entry not restored", key=key, error=repr(exc)[:300])
        self.sends.append(
            await send_dead_letter(
                stage.producer,
                stage.kafka.topics.dlq,
                msg,
                failure_reason("correlate restore", exc),
                failure_detail(exc),
            )
        )


PANICKED = "the compiled window store failed (a panic); see the worker's stderr"


def restore_entries(
    store: Store,
    keys: list[str],
    values: list[bytes],
    rules: dict[str, Rule],
    strings: dict[str, str],
) -> tuple[float | None, list[tuple[int, Exception]]]:
    """Changelog entries (`keys[i]`, `values[i]`) restored into `store` and put in place, in
    order (a cap evicts as it would have when they were fed): the newest event time of those
    restored (None if none was), and the position and error of each that is not a window
    (`state_from_dict` says why). A key whose rule is gone is passed over. A compiled store restores the shape a
    flush writes, many a call without the GIL; Python the rest, each in its place."""
    newest: float | None = None
    failed: list[tuple[int, Exception]] = []

    def by_python(at: int) -> None:
        nonlocal newest
        key, value = keys[at], values[at]
        rule = rules.get(key.split("|", 1)[0])
        if rule is None:
            return
        try:
            state = state_from_dict(rule, orjson.loads(value), strings)
            store.put(key, state, rule.id)
        except Exception as exc:
            failed.append((at, exc))
            return
        if newest is None or state.max_time > newest:
            newest = state.max_time

    if not isinstance(store, NativeWindows):
        for at in range(len(keys)):
            by_python(at)
        return newest, failed
    start = 0
    while start < len(keys):
        restored, left, panicked = store.restore_many(keys, values, start)
        if restored is not None and (newest is None or restored > newest):
            newest = restored
        failed += [(at, RuntimeError(PANICKED)) for at in panicked]
        if left is None:
            break
        by_python(left)
        start = left + 1
    failed.sort(key=lambda pair: pair[0])
    return newest, failed


async def _delivered(corrupt: list[asyncio.Future[Any]]) -> None:
    """Wait for the DLQ copies of a restore's corrupt entries. One that cannot be sent is
    logged, not raised: the entry is still in the changelog, and the partition's other windows
    must not be lost with it."""
    if not corrupt:
        return
    results = await asyncio.gather(*corrupt, return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    log.error(
        "changelog entries not restored",
        dead_lettered=len(results) - len(failed),
        not_sent=len(failed),
        error=failure_detail(failed[0])[0] if failed else None,
    )


def _keep_newest(raw: dict[str, Any], messages: list[Any]) -> None:
    """The newest changelog record of each key (a tombstone forgets the key)."""
    for msg in messages:
        try:
            key = msg.key.decode()
        except (AttributeError, UnicodeDecodeError):
            log.error("changelog entry without a usable key", offset=msg.offset)
            continue
        if msg.value is None:
            raw.pop(key, None)
        else:
            raw[key] = msg
