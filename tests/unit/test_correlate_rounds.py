"""What a round of the correlation stage's loop does besides correlating: a flush of the window
state never holds up incident changes (the changelog is written on a connection of its own, a
step at a time, each once the previous step was acknowledged), and the sweep of idle groups
looks at a bounded number of groups per round."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import replace
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from responder.correlation.rules import RuleSet
from responder.correlation.window import GroupState, window_event
from responder.settings import CorrelationSettings, KafkaSettings
from responder.streams import correlate
from responder.streams.correlate import FLUSH_ACK_POLL_MS, STATE_TTL, CorrelateStage
from responder.streams.ingest_batch import IngestBatch
from responder.streams.kafka import Batch, BatchSender, Committer, consumer_record
from tests.support.builders import event, rule

EACH_AN_INCIDENT = rule(
    id="each",
    match={"type": "test.seen"},
    group_by=["resource.id"],
    window="10m",
    correlation={"type": "event_count", "condition": {"gte": 1}},
)
RULES = RuleSet([EACH_AN_INCIDENT])
TP = TopicPartition("correlate", 0)


class Consumer:
    """Hands out the queued batches, one per fetch; nothing once they are gone."""

    def __init__(self) -> None:
        self.batches: deque[Batch] = deque()
        self.waits: list[int] = []

    async def getmany(self, *, timeout_ms: int, max_records: int) -> Batch:
        self.waits.append(timeout_ms)
        return self.batches.popleft() if self.batches else {}

    def assignment(self) -> set[TopicPartition]:
        return set()


class Sender(BatchSender):
    """Records each submit; its batches are acknowledged at once, or when the test says."""

    def __init__(self, *, acknowledged: bool) -> None:
        self.acknowledged = acknowledged
        self.queued: list[tuple[str, bytes | None]] = []
        self.submitted: list[list[tuple[str, bytes | None]]] = []
        self.flying: list[asyncio.Future[Any]] = []
        self.partitions: list[tuple[int, str]] = []  # (partition, key) of every record added

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        self.queued.append(((key or b"").decode(), value))
        self.partitions.append((partition, (key or b"").decode()))

    async def submit(self) -> list[asyncio.Future[Any]]:
        if not self.queued:
            return []
        assert not self.flying_now(), "a submit waited for the batches in flight"
        sent: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.acknowledged:
            sent.set_result(None)
        self.submitted.append(self.queued)
        self.queued, self.flying = [], [sent]
        return [sent]

    def acknowledge(self) -> None:
        for future in self.flying:
            future.set_result(None)


def stage_with(consumer: Consumer) -> tuple[CorrelateStage, Sender, Sender]:
    stage = CorrelateStage(KafkaSettings(), RULES, CorrelationSettings())
    stage.stores[0] = stage.new_store()
    stage.consumer = consumer
    stage.committer = Committer(consumer, every_s=0.0)
    stage.incident_partitions = 1
    stage.batcher = incidents = Sender(acknowledged=True)
    stage.changelog = changelog = Sender(acknowledged=False)
    return stage, incidents, changelog


def batch_of(ids: list[str], offset: int) -> Batch:
    """The correlation messages ingest writes for these events (each on its own resource)."""
    raws = [json.dumps(event(i, at=n, resource_id=i)).encode() for n, i in enumerate(ids)]
    outcome = IngestBatch(RULES, partitions=1).handle(raws, [0] * len(raws))
    values = outcome.messages[0]
    return {TP: [consumer_record("correlate", v, offset + n) for n, v in enumerate(values)]}


def incident_events(sender: Sender) -> list[list[str]]:
    return [
        sorted(e["id"] for _, value in submit for e in orjson.loads(value or b"{}")["events"])
        for submit in sender.submitted
    ]


async def test_incident_changes_go_out_while_a_flush_step_waits_for_its_acknowledgement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(correlate, "FLUSH_STEP_KEYS", 2)
    consumer = Consumer()
    stage, incidents, changelog = stage_with(consumer)
    consumer.batches.extend([batch_of(["a", "b", "c"], 0), batch_of(["d"], 3)])
    stage.last_flush -= stage.settings.commit_interval_s  # a flush is due after this batch

    async with asyncio.timeout(5):
        await stage.round()
    assert incident_events(incidents) == [["a", "b", "c"]]
    assert len(changelog.submitted) == 1 and len(changelog.submitted[0]) == 2  # the first step
    assert stage.writing is not None and changelog.flying_now()

    # the step is not acknowledged yet: the next batch is correlated and its change sent at once,
    # and no further step is written behind the one in flight
    async with asyncio.timeout(5):
        await stage.round()
    assert incident_events(incidents) == [["a", "b", "c"], ["d"]]
    assert len(changelog.submitted) == 1
    assert consumer.waits[-1] == FLUSH_ACK_POLL_MS  # the next fetch waits a little, not 200 ms

    changelog.acknowledge()
    async with asyncio.timeout(5):
        await stage.round()  # nothing fetched: the flush goes on
    assert len(changelog.submitted) == 2
    written = [key for submit in changelog.submitted for key, _ in submit]
    assert sorted(key.split("|")[0] for key in written) == ["each"] * 3 + ["watermarks"]
    assert stage.writing is None  # the flush ended: the third key and the progress
    assert len(stage.committer.handed) == 1  # its offsets go to the committer behind every send
    handed = stage.committer.handed[0]
    assert handed.offsets == {TP: 1}
    # behind every send so far: both incident submits and both changelog steps, the last of
    # which the broker has not acknowledged yet (the committer waits for it, not the stage)
    assert len(handed.sends) == 4
    assert [send.done() for send in handed.sends] == [True, True, True, False]


async def test_a_flush_writes_every_changed_key_of_every_partition_a_step_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Steps of FLUSH_STEP_KEYS cross partitions: each key once, under its own partition, and
    a state's entry where the store holds one (else a tombstone); a partition with nothing
    changed costs no step."""
    monkeypatch.setattr(correlate, "FLUSH_STEP_KEYS", 3)
    stage, _, changelog = stage_with(Consumer())
    changelog.acknowledged = True
    changed = {
        0: [f'each|["p0-{n}"]' for n in range(4)],
        1: [],
        2: [*(f'each|["p2-{n}"]' for n in range(4)), "gone"],
        3: [],
    }
    for partition, keys in changed.items():
        stage.stores[partition] = stage.stores.get(partition) or stage.new_store()
        for n, key in enumerate(keys):
            if key != "gone":
                state = GroupState()
                seen = window_event(EACH_AN_INCIDENT, event(f"e{n}"), 1000.0 + n)
                state.add(replace(seen, raw=orjson.dumps(seen.body), body=None))
                stage.stores[partition].put(key, state, "each")
        stage.dirty[partition].update(keys)
    stage.last_flush -= stage.settings.commit_interval_s
    await stage._start_flush()
    steps = 0
    while stage.writing is not None:
        await stage._flush_step(correlate.FLUSH_STEP_KEYS)
        steps += 1
    assert [len(submit) for submit in changelog.submitted] == [3, 3, 3] and steps == 3
    expected = {(p, key) for p, keys in changed.items() for key in keys}
    assert sorted(changelog.partitions) == sorted(expected)
    written = dict(item for submit in changelog.submitted for item in submit)
    assert written["gone"] is None and all(written[k] is not None for k in changed[0])


async def test_a_store_assigned_again_during_a_sweep_is_swept_in_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A partition revoked and assigned again while the sweep is at it: the new store lists
    its own keys and is swept in the same sweep, not passed over until the next."""
    monkeypatch.setattr(correlate, "SWEEP_STEP_KEYS", 2)
    stage, _, changelog = stage_with(Consumer())
    changelog.acknowledged = True
    now = 10 * STATE_TTL.total_seconds()
    stage._marks(0).observe(0, now, 0.0)

    def idle_store() -> Any:
        store = stage.new_store()
        for n in range(4):
            state = GroupState()
            state.max_time = now - STATE_TTL.total_seconds() - 1
            store.put(f'each|["idle-{n}"]', state, "each")
        return store

    stage.stores[0] = idle_store()
    stage.last_sweep -= correlate.SWEEP_EVERY_S
    await stage._start_flush()
    stage._sweep_step(correlate.SWEEP_STEP_KEYS)  # the sweep began at partition 0
    assert stage.sweeping is not None and len(stage.stores[0]) == 2
    stage.stores[0] = idle_store()  # revoked and restored
    while stage.sweeping is not None:
        stage._sweep_step(correlate.SWEEP_STEP_KEYS)
    assert len(stage.stores[0]) == 0


async def test_idle_groups_are_swept_a_step_per_round_and_tombstoned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Groups idle (in event time) for longer than the state TTL are forgotten and their
    tombstones queued for the next flush; a round looks at no more than SWEEP_STEP_KEYS of them,
    so a sweep over many groups never stops the stage for long."""
    monkeypatch.setattr(correlate, "SWEEP_STEP_KEYS", 4)
    consumer = Consumer()
    stage, _, changelog = stage_with(consumer)
    changelog.acknowledged = True
    stage.stores[1] = stage.new_store()
    now = 10 * STATE_TTL.total_seconds()
    for partition in (0, 1):
        stage._marks(partition).observe(0, now, 0.0)
        for n in range(5):
            for age, name in ((STATE_TTL.total_seconds() + 1, "idle"), (60.0, "live")):
                state = GroupState()
                state.max_time = now - age
                stage.stores[partition].put(f'each|["{name}-{n}"]', state, "each")
    stage.last_sweep -= correlate.SWEEP_EVERY_S
    await stage._start_flush()  # (nothing to write: the flush starts the sweep)
    assert stage.sweeping is not None

    remaining: list[int] = []
    while stage.sweeping is not None:
        before = sum(len(store) for store in stage.stores.values())
        async with asyncio.timeout(5):
            await stage.round()
        remaining.append(sum(len(store) for store in stage.stores.values()))
        assert before - remaining[-1] <= 4  # never more than a step's worth looked at
    assert len(remaining) == 5  # 20 groups, 4 a round
    for partition in (0, 1):
        assert sorted(stage.stores[partition]) == [f'each|["live-{n}"]' for n in range(5)]
    # each forgotten group's tombstone: written by a flush since (the stage was idle), or queued
    async with asyncio.timeout(5):
        await stage.round()
    tombstones = [key for submit in changelog.submitted for key, value in submit if value is None]
    queued = [key for keys in stage.dirty.values() for key in keys]
    assert sorted(tombstones + queued) == sorted(2 * [f'each|["idle-{n}"]' for n in range(5)])


@pytest.mark.parametrize("native", [False, True], ids=["python", "compiled"])
async def test_a_window_the_flush_cannot_write_is_forgotten_not_the_stage(native: bool) -> None:
    """A forged changelog entry restored with a sequence at 2**64 - 1: the group's next event
    takes it past what orjson writes, and its window then fails to serialize. The flush writes
    a tombstone for it and goes on with the other keys; before, it raised and stopped the stage
    (both engines alike)."""
    stage = CorrelateStage(KafkaSettings(), RULES, CorrelationSettings(), native=native)
    stage.stores[0] = stage.new_store()
    stage.committer = Committer(Consumer(), every_s=0.0)
    stage.incident_partitions = 1
    stage.batcher = Sender(acknowledged=True)
    stage.changelog = changelog = Sender(acknowledged=True)
    stage.stores[0].put('each|["huge"]', GroupState(next_seq=2**64 - 1), "each")
    stage.handle(batch_of(["huge", "fine"], 0))
    await stage._flush()
    written = dict(pair for submit in changelog.submitted for pair in submit)
    assert written['each|["huge"]'] is None and 'each|["huge"]' not in stage.stores[0]
    assert orjson.loads(written['each|["fine"]'] or b"{}")["next_seq"] == 1
