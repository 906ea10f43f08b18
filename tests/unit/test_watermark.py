"""Lateness judged against every input partition: the pure progress tracker, and the correlation
stage fed by ingest with one input partition stalled, against replay of the same events."""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from responder.correlation.replay import replay
from responder.correlation.rules import RuleSet
from responder.correlation.watermark import MAX_GAP_S, Watermarks
from responder.settings import CorrelationSettings, KafkaSettings
from responder.streams.correlate import CorrelateStage
from responder.streams.ingest_batch import IngestBatch
from responder.streams.kafka import consumer_record
from responder.streams.records import read
from tests.support.builders import BASE, epoch, event, rule

IDLE = 60.0


def test_the_slowest_active_partition_is_the_watermark() -> None:
    marks = Watermarks(IDLE)
    assert marks.current() == float("-inf")  # nothing known yet: nothing is late
    marks.observe(0, 100.0, now=0)
    marks.observe(1, None, now=0)  # read by ingest, no event yet: holds everything back
    assert marks.current() == float("-inf")
    marks.observe(1, 40.0, now=1)
    assert marks.current() == 40.0
    marks.observe(1, 30.0, now=2)  # a re-read after a rebalance never moves progress back
    assert marks.current() == 40.0
    assert marks.changed


def test_a_partition_idle_while_the_others_advance_stops_holding_them_back() -> None:
    marks = Watermarks(IDLE)
    marks.observe(0, 10.0, now=0)
    marks.observe(1, 5.0, now=0)
    for second in range(1, 61):
        marks.observe(0, 10.0 + second, now=second)
    assert marks.current() == 5.0  # idle for exactly IDLE: still waited for
    marks.observe(0, 100.0, now=61.5)
    assert marks.idle(1) and not marks.idle(0)
    assert marks.current() == 100.0
    marks.observe(1, 6.0, now=62)  # it advances again: active, and the slowest once more
    assert marks.current() == 6.0


def test_an_outage_of_every_partition_makes_none_idle() -> None:
    """A broker outage stops all partitions; when they resume, the last to resume is waited for."""
    marks = Watermarks(IDLE)
    marks.observe(0, 10.0, now=0)
    marks.observe(1, 10.0, now=0)
    marks.observe(0, 20.0, now=3600)  # an hour with no progress anywhere counts MAX_GAP_S
    assert marks.activity == MAX_GAP_S
    assert marks.current() == 10.0


def test_restored_progress_gets_a_fresh_idle_allowance() -> None:
    marks = Watermarks(IDLE)
    marks.observe(0, 50.0, now=0)
    marks.observe(1, None, now=0)
    marks.observe(2, 7.5, now=0)
    for second in range(1, 200):
        marks.observe(0, 50.0 + second, now=second)
    assert marks.current() == 249.0  # 1 and 2 went idle
    back = Watermarks.from_dict(orjson.loads(orjson.dumps(marks.to_dict())), IDLE)
    assert {n: p.progress for n, p in back.parts.items()} == {
        0: 249.0,
        1: float("-inf"),
        2: 7.5,
    }
    assert back.current() == float("-inf")  # after a restart every partition is waited for


@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False)),
            st.floats(0, 30, allow_nan=False),
        ),
        max_size=60,
    )
)
def test_the_watermark_is_the_least_progress_of_the_active_partitions(
    steps: list[tuple[int, float | None, float]],
) -> None:
    """Against a direct computation: each partition's progress is the most it reported, idle
    means no advance for IDLE seconds of the activity clock."""
    marks = Watermarks(IDLE)
    now = 0.0
    best: dict[int, float] = {}
    for partition, progress, gap in steps:
        now += gap
        marks.observe(partition, progress, now)
        seen = float("-inf") if progress is None else progress
        best[partition] = max(best.get(partition, seen), seen)
    assert {n: p.progress for n, p in marks.parts.items()} == best
    active = [best[n] for n in best if marks.activity - marks.parts[n].advanced_at <= IDLE]
    assert marks.current() == ((min(active) if active else None) if best else float("-inf"))
    assert all(p.advanced_at <= marks.activity for p in marks.parts.values())


# --- the stage, fed by ingest -----------------------------------------------------------------

BY_TEAM = rule(
    id="by-team",
    match={"type": "test.seen"},
    group_by=["labels.team"],  # not the event key (resource id): a group spans input partitions
    window="10m",
    correlation={"type": "event_count", "condition": {"gte": 3}},
)


def _record(value: bytes, offset: int) -> ConsumerRecord[bytes, bytes]:
    return consumer_record("correlate", value, offset)


def stalled_scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Input partition 0 (resource r0): one event every 30 min for 6 h; partition 1 (r1): two
    events a minute after each. Each incident needs both partitions' events."""
    fast = [
        event(f"a{i}", at=1800 * i, resource_id="r0", labels={"team": "red"}) for i in range(12)
    ]
    slow = [
        event(f"b{i}-{j}", at=1800 * i + 60 * j, resource_id="r1", labels={"team": "red"})
        for i in range(12)
        for j in (1, 2)
    ]
    return fast, slow


@pytest.mark.parametrize("per_batch", [1, 12], ids=["trickle", "whole-partition-at-once"])
def test_a_stalled_input_partition_is_behind_not_late(per_batch: int) -> None:
    """Partition 1 is read six hours of event time after partition 0: its events still complete
    the same windows, and the stage emits exactly replay's incidents. With one ingest batch for
    all of partition 0, the stage's very first message holds six hours of events and the input
    progress comes after them: nothing may be judged late before progress is known."""
    rules = RuleSet([BY_TEAM])
    fast, slow = stalled_scenario()
    ingest = IngestBatch(rules, partitions=1)
    stage = CorrelateStage(KafkaSettings(), rules, CorrelationSettings())
    stage.stores[0] = stage.new_store()
    offset = 0
    # ingest holds both input partitions; partition 1's producer is stalled
    for values, partition in ((fast, 0), (slow, 1)):
        for start in range(0, len(values), per_batch):
            raws = [json.dumps(doc).encode() for doc in values[start : start + per_batch]]
            outcome = ingest.handle(raws, [partition] * len(raws), held=[0, 1], announce=True)
            for value in outcome.messages[0]:
                stage.handle({TopicPartition("correlate", 0): [_record(value, offset)]})
                offset += 1
    got: dict[str, set[tuple[str, str]]] = {}
    for incident_id, value in stage.outbox:
        change = orjson.loads(value)
        refs = got.setdefault(incident_id, set())
        refs.update((e["source"], e["id"]) for e in change["events"])

    in_time_order = sorted(fast + slow, key=lambda d: d["time"])
    expected = replay([json.dumps(d) for d in in_time_order], rules)
    assert len(expected.incidents) == 12
    want = {
        change.incident_id: {(e["source"], e["id"]) for e in s.events}
        for s in expected.incidents
        for change in s.changes[:1]
    }
    assert got == want


def test_ingest_tells_every_correlation_partition_of_its_progress() -> None:
    rules = RuleSet([BY_TEAM])
    ingest = IngestBatch(rules, partitions=3)
    doc = event("e1", at=90, labels={"team": "red"})
    outcome = ingest.handle([json.dumps(doc).encode()], [2], held=[0, 2], announce=True)
    assert set(outcome.messages) == {0, 1, 2}
    progress = {}
    for partition, values in outcome.messages.items():
        for value in values:
            records, carried = read(value)
            progress[partition] = (len(list(records)), carried)
    assert sorted(n for n, _ in progress.values()) == [0, 0, 1]  # the record went to one
    assert {tuple(c) for _, c in progress.values()} == {((0, None), (2, epoch(doc)))}
    # without announce, only the partition with records hears of it
    quiet = ingest.handle([json.dumps(doc).encode()], [2], held=[0, 2])
    assert len(quiet.messages) == 1


def test_the_stage_restores_progress_from_its_changelog_entry() -> None:
    """What a flush writes under the key `watermarks` is what a restarted stage holds back by; a
    corrupt entry is skipped (the stage then waits for every partition to report again)."""
    stage = CorrelateStage(KafkaSettings(), RuleSet([BY_TEAM]), CorrelationSettings())
    marks = Watermarks(IDLE)
    marks.observe(0, 5000.0, now=0)
    marks.observe(3, 1200.0, now=0)
    saved = _record(orjson.dumps(marks.to_dict()), 0)
    restored = stage._restored_progress(7, saved)
    assert restored is not None and restored.current() == 1200.0
    assert stage._restored_progress(8, _record(b'{"partitions": [["x", 1]]}', 1)) is None


@pytest.mark.parametrize("progress", ["true", "1e999", '"late"'])
def test_restored_progress_that_is_no_time_is_refused(progress: str) -> None:
    stage = CorrelateStage(KafkaSettings(), RuleSet([BY_TEAM]), CorrelationSettings())
    value = b'{"partitions": [[0, %s]]}' % progress.encode()
    assert stage._restored_progress(2, _record(value, 0)) is None


def test_restored_progress_beyond_the_wall_clock_is_brought_back_to_it() -> None:
    """Progress written before the limit existed (or forged in the changelog) is capped."""
    stage = CorrelateStage(KafkaSettings(), RuleSet([BY_TEAM]), CorrelationSettings())
    restored = stage._restored_progress(2, _record(b'{"partitions": [[0, 1e300], [1, 1000.0]]}', 0))
    assert restored is not None and restored.parts[0].progress <= time.time() + 300
    assert restored.current() == 1000.0


def test_a_future_dated_event_cannot_make_every_other_event_late() -> None:
    """An event dated 9999 on each input partition is correlated in its own group, but progress
    stops at the wall clock plus the allowed skew: the events of now still complete their window
    as replay says (uncapped, the watermark stayed at 9999 for good and nothing correlated)."""
    rules = RuleSet([BY_TEAM])
    now = time.time() - BASE.timestamp()
    red = [
        event(f"r{i}", at=now - 120 + 30 * i, resource_id=f"r{i % 2}", labels={"team": "red"})
        for i in range(3)
    ]
    forged = [
        event(f"x{p}", resource_id=f"r{p}", labels={"team": "blue"}, time="9999-12-31T23:59:59Z")
        for p in (0, 1)
    ]
    arrivals = [(red[0], 0), (forged[0], 0), (forged[1], 1), (red[1], 1), (red[2], 0)]
    ingest = IngestBatch(rules, partitions=1)
    stage = CorrelateStage(KafkaSettings(), rules, CorrelationSettings())
    stage.stores[0] = stage.new_store()
    for offset, (doc, partition) in enumerate(arrivals):
        outcome = ingest.handle([json.dumps(doc).encode()], [partition], held=[0, 1], announce=True)
        for value in outcome.messages[0]:
            stage.handle({TopicPartition("correlate", 0): [_record(value, offset)]})
    assert stage.dead == []
    assert (stage.progress[0].current() or 0) <= time.time() + 300
    opened = [orjson.loads(value) for _, value in stage.outbox]
    assert [sorted(e["id"] for e in change["events"]) for change in opened] == [["r0", "r1", "r2"]]
