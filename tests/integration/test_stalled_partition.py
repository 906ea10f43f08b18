"""A stalled input partition on the real broker: its events, produced after the other partitions
moved hours ahead in event time, are behind, not late, and the stored incidents equal replay's."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlmodel import Session, select

from responder.correlation.replay import replay
from responder.correlation.rules import load_rules
from responder.incidents.store import Incident
from responder.storage.database import make_engine, upgrade
from tests.support.harness import Worker, caught_up, topic, wait_for, worker_env, write_rules

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BY_ACTOR = """
id: by-actor
title: One address probing several endpoints
match:
  type: input.adversarial
group_by: [actor.ip]
window: 10m
correlation:
  type: event_count
  condition: {gte: 3}
incident: {kind: adversarial_attack, severity: high}
"""

START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def event(event_id: str, endpoint: str, minutes: float) -> bytes:
    at = START + timedelta(minutes=minutes)
    return json.dumps(
        {
            "id": event_id,
            "source": "detector",
            "type": "input.adversarial",
            "time": at.isoformat().replace("+00:00", "Z"),
            "severity": "medium",
            "title": "adversarial input",
            "resource": {"kind": "endpoint", "id": endpoint},
            "actor": {"ip": "203.0.113.7"},
        }
    ).encode()


async def _send(bootstrap: str, name: str, partition: int, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(name, value=value, partition=partition)
    finally:
        await producer.stop()


def send(bootstrap: str, name: str, partition: int, values: list[bytes]) -> None:
    asyncio.run(_send(bootstrap, name, partition, values))


def test_a_stalled_partition_yields_the_incidents_of_replay(
    kafka_bootstrap: str, pg_schema_url: str, unique: str, tmp_path: Path, workers: list[Worker]
) -> None:
    """One address probes endpoint A (input partition 0) every 30 minutes for 6 hours and
    endpoint B (partition 1) a minute and two after each probe of A. Partition 1's producer is
    stalled: B's events arrive after the worker has correlated all of A's. Each incident needs
    both partitions' events."""
    upgrade(make_engine(pg_schema_url))
    rules = write_rules(tmp_path / "rules", BY_ACTOR)
    env = worker_env(kafka_bootstrap, pg_schema_url, rules, unique)
    workers.append(Worker(env, tmp_path / "w.log").start())
    fast = [event(f"a{i}", "endpoint-a", 30 * i) for i in range(12)]
    slow = [event(f"b{i}-{j}", "endpoint-b", 30 * i + j) for i in range(12) for j in (1, 2)]
    events = topic(unique, "events")

    send(kafka_bootstrap, events, 0, fast)
    wait_for(
        lambda: caught_up(kafka_bootstrap, f"t-{unique}-correlate", topic(unique, "correlate")), 60
    )
    send(kafka_bootstrap, events, 1, slow)

    in_time_order = sorted(fast + slow, key=lambda v: json.loads(v)["time"])
    expected = replay(in_time_order, load_rules(rules))
    want = {
        (s.rule, frozenset((e["source"], e["id"]) for e in s.events)) for s in expected.incidents
    }
    assert len(want) == 12

    def stored() -> set[tuple[str, frozenset[tuple[str, str]]]]:
        engine = make_engine(pg_schema_url)
        try:
            with Session(engine) as s:
                rows = s.exec(select(Incident)).all()
                return {
                    (r.rule, frozenset((e["source"], e["id"]) for e in r.event_ids)) for r in rows
                }
        finally:
            engine.dispose()

    wait_for(lambda: stored() == want, 60)
