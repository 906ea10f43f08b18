"""Poison records on the real broker: dead-lettered with a reason, the stage goes on.

Before, one event with an integer of 2**64 or a year-1 time with an offset made the ingest stage
raise: the worker stopped, the offset stayed uncommitted and the same batch came back after
every restart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session, select

from responder.correlation.rules import Rule, RuleSet
from responder.incidents.store import Incident
from responder.storage.database import make_engine, upgrade
from responder.streams.ingest import IngestStage
from responder.streams.topics import ensure_topics
from tests.support.faults import routing_raises
from tests.support.harness import (
    EACH_RULE,
    Worker,
    _produce,
    caught_up,
    consume,
    consume_all,
    event_json,
    kafka_settings,
    produce,
    routed_ids,
    topic,
    wait_for,
    worker_env,
    write_rules,
)
from tests.support.stages import running

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Three rules grouping by a large attribute: one valid event of about 1 MiB becomes three
# records whose keys and groups spell that attribute out (large, but within the limits).
BIG_RULES = [
    f"""
id: big-{n}
title: Big {n}
match:
  type: blob.seen
group_by: [attributes.blob]
window: 1h
incident: {{kind: big}}
"""
    for n in range(3)
]


def load_rule_text(text: str) -> Rule:
    return Rule.model_validate(yaml.safe_load(text))


def incidents(url: str) -> list[Incident]:
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            return list(s.exec(select(Incident)).all())
    finally:
        engine.dispose()


def test_poison_events_go_to_the_dlq_and_the_next_events_still_make_their_incidents(
    kafka_bootstrap: str, pg_schema_url: str, unique: str, tmp_path: Path, workers: list[Worker]
) -> None:
    """Events that used to crash the ingest stage are dead-lettered with their reasons, the
    batch is committed, and the events after them (a large one too) become incidents."""
    upgrade(make_engine(pg_schema_url))
    rules = write_rules(tmp_path / "rules", EACH_RULE, *BIG_RULES)
    env = worker_env(kafka_bootstrap, pg_schema_url, rules, unique)
    workers.append(Worker(env, tmp_path / "w.log").start())

    def secret(event_id: str, **extra: Any) -> bytes:
        return event_json(event_id, type="secret.leaked", resource="k1", **extra)

    huge_int = secret("p1", attributes={"n": 2**64})
    year_one = secret("p2").replace(b"2026-11-25T09:00:00Z", b"0001-01-01T00:00:00+01:00")
    year_end = secret("p3").replace(b"2026-11-25T09:00:00Z", b"9999-12-31T23:59:59-01:00")
    overflow = secret("p4", attributes={"x": "X"}).replace(b'"X"', b"1e999")
    duplicate = b'{"id": "p0", ' + secret("p5")[1:]
    big = event_json("big", type="blob.seen", resource="k1", attributes={"blob": "b" * 900_000})
    valid = secret("ok", severity="high")
    poison = [huge_int, year_one, year_end, overflow, duplicate]
    produce(kafka_bootstrap, topic(unique, "events"), [*poison, big, valid], key=b"k1")

    dead = consume(kafka_bootstrap, topic(unique, "dlq"), expect=len(poison), timeout=60)
    assert [m.value for m in dead] == poison  # original bytes, in order
    reasons = [dict(m.headers)["responder.reason"].decode() for m in dead]
    assert "64-bit range" in reasons[0]
    assert "time" in reasons[1] and "time" in reasons[2]
    assert "finite number" in reasons[3]
    assert "duplicate key" in reasons[4]

    def stored() -> list[tuple[str, list[str]]]:
        return sorted((r.rule, [e["id"] for e in r.event_ids]) for r in incidents(pg_schema_url))

    wanted = [("big-0", ["big"]), ("big-1", ["big"]), ("big-2", ["big"]), ("each-secret", ["ok"])]
    wait_for(lambda: stored() == wanted, 90)
    wait_for(lambda: caught_up(kafka_bootstrap, f"t-{unique}-ingest", topic(unique, "events")), 30)
    worker = workers[0]
    assert worker.proc is not None and worker.proc.poll() is None  # still running


async def test_ingest_stage_on_the_broker_dead_letters_what_raises_with_its_class(
    kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event whose handling raises (whatever the cause) goes to the DLQ with the exception
    class and message; the stage goes on and routes the next event to the correlation topic."""
    kafka = kafka_settings(kafka_bootstrap, unique)
    await ensure_topics(kafka)
    routing_raises(monkeypatch, "boom", RecursionError("maximum recursion depth exceeded"))
    rules = RuleSet([load_rule_text(EACH_RULE)])
    async with running(IngestStage(kafka, rules)) as stage:
        values = [
            event_json("boom", type="secret.leaked", resource="k1"),
            event_json("after", type="secret.leaked", resource="k1"),
        ]
        await _produce(kafka_bootstrap, kafka.topics.events, values, [b"k1", b"k1"])
        dead = await consume_all(kafka_bootstrap, kafka.topics.dlq, 1, timeout=30)
        routed = await routed_ids(kafka_bootstrap, kafka.topics.correlate, 1)
    [message] = dead
    headers = dict(message.headers)
    assert message.value == values[0]
    assert headers["responder.reason"] == b"ingest failed: RecursionError"
    assert json.loads(headers["responder.detail"]) == [
        "RecursionError: maximum recursion depth exceeded"
    ]
    assert routed == ["after"]
    assert stage.stats.redone == 1 and stage.stats.rejected == 1
