"""The cap on live groups per rule: bounded state under a flood of distinct keys, the documented
eviction (oldest newest-event first), replay under the same cap, the metric and the notice that
a shipped rule turns into an incident."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import orjson
from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import REGISTRY

from responder.correlation.capacity import GroupStore
from responder.correlation.replay import replay
from responder.correlation.rules import RuleSet, load_rules
from responder.correlation.window import GroupState
from responder.settings import CorrelationSettings, KafkaSettings
from responder.streams.correlate import CorrelateStage
from responder.streams.ingest_batch import IngestBatch
from responder.streams.kafka import consumer_record
from tests.support.builders import correlator, event, feed, rule

ROOT = Path(__file__).resolve().parents[2]
PER_KEY = rule(
    id="per-key", window="1h", correlation={"type": "event_count", "condition": {"gte": 2}}
)


def state_at(time: float) -> GroupState:
    state = GroupState()
    state.max_time = time
    return state


def test_the_groups_with_the_oldest_newest_event_are_evicted_down_to_nine_tenths() -> None:
    store = GroupStore(cap=10)
    for i in range(10):
        store.put(f"r|[{i}]", state_at(100 - i))  # [9] is the oldest
    store.put("other|[0]", state_at(0))  # another rule's groups do not count
    assert store.take_evicted() == []
    store.put("r|[new]", state_at(1))  # the 11th: evict down to 9, never the new one
    assert store.take_evicted() == ["r|[9]", "r|[8]"]
    assert "r|[new]" in store and "other|[0]" in store
    assert store.counts == {"r": 9, "other": 1}
    store.drop("r|[0]")
    store.drop("r|[0]")  # dropping twice counts once
    assert store.counts["r"] == 8 and len(store) == 9


def test_a_flood_of_distinct_keys_keeps_state_bounded() -> None:
    """20,000 distinct resource ids, two events each, cap 100: never more than 100 live groups,
    and every pair inside the cap still becomes its incident."""
    c = correlator(PER_KEY)
    c.states.cap = 100
    peak = 0
    changes = 0
    for i in range(20_000):
        pair = [event(f"e{i}-{j}", at=i + j / 2, resource_id=f"flood-{i}") for j in range(2)]
        changes += len(feed(c, *pair))
        peak = max(peak, len(c.states))
    assert peak <= 100
    assert changes == 20_000  # each pair was within the cap while it mattered


def _record(value: bytes, offset: int) -> ConsumerRecord[bytes, bytes]:
    return consumer_record("correlate", value, offset)


class Sent:
    def __init__(self) -> None:
        self.values: list[tuple[str, bytes]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        self.values.append((topic, value))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def evicted_total(rule_id: str) -> float:
    return (
        REGISTRY.get_sample_value("responder_correlation_groups_evicted_total", {"rule": rule_id})
        or 0.0
    )


def test_the_stage_evicts_like_replay_reports_it_once_and_a_shipped_rule_opens_an_incident() -> (
    None
):
    rules = RuleSet([PER_KEY])
    # groups interleaved so that some are evicted between their two events
    docs = []
    for i in range(40):
        docs.append(event(f"a{i}", at=10 * i, resource_id=f"k{i}"))
        if i >= 3:
            docs.append(event(f"b{i - 3}", at=10 * i + 1, resource_id=f"k{i - 3}"))
    lines = [json.dumps(d) for d in docs]
    expected = replay(lines, rules, max_groups=5)
    assert 0 < len(expected.incidents) < 37  # the cap changed the outcome

    stage = CorrelateStage(KafkaSettings(), rules, CorrelationSettings(max_groups_per_rule=5))
    stage.stores[0] = stage.new_store()
    ingest = IngestBatch(rules, partitions=1)
    before = evicted_total("per-key")
    for offset, line in enumerate(lines):
        [value] = ingest.handle([line.encode()], [0], held=[0]).messages[0]
        stage.handle({TopicPartition("correlate", 0): [_record(value, offset)]})
        assert len(stage.stores[0]) <= 5
    got = {orjson.loads(v)["incident_id"] for _, v in stage.outbox}
    assert got == {s.changes[0].incident_id for s in expected.incidents}
    evicted = evicted_total("per-key") - before
    assert evicted > 0
    assert stage.evictions == {("per-key", 0): evicted}
    assert stage.dirty[0] >= {'per-key|["k0"]'}  # a tombstone goes to the changelog

    sent = Sent()
    stage.producer = sent

    async def notify_twice() -> None:
        await stage._notify()
        stage.evictions[("per-key", 0)] = 1  # more evictions within ten minutes: not reported
        await stage._notify()

    asyncio.run(notify_twice())
    [(topic, notice)] = sent.values
    assert topic == KafkaSettings().topics.events
    result = replay([notice], load_rules(ROOT / "rules"))
    [incident] = result.incidents
    assert incident.rule == "correlation-state-capped"
    assert incident.to_json()["group"] == {"resource.id": "per-key"}
    assert json.loads(notice)["attributes"] == {"cap": 5, "evicted": evicted, "partition": 0}
