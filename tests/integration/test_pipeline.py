"""The worker on the real Kafka broker and PostgreSQL: events in, incidents and audit out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlmodel import Session, select

from responder.audit.store import AuditRecord, check_anchors, unkeyed_count, verify_chain
from responder.correlation.replay import replay
from responder.correlation.rules import load_rules
from responder.incidents.store import Incident
from responder.settings import KafkaSettings
from responder.storage.database import make_engine, upgrade
from responder.streams.anchors import read_topic
from tests.support.harness import (
    BURST_RULE,
    EACH_RULE,
    Worker,
    caught_up,
    consume,
    event_json,
    incidents,
    keyed_engine,
    produce,
    topic,
    wait_for,
    worker_env,
    write_rules,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "responder" / "samples" / "scenario.jsonl"


def refs(row: Incident) -> list[tuple[str, str]]:
    return [(r["source"], r["id"]) for r in row.event_ids]


@pytest.mark.parametrize(
    "deployment",
    [
        [()],  # one worker, every stage
        [("--stages", "ingest"), ("--stages", "correlate,sink")],  # stages split over processes
    ],
    ids=["one-worker", "split-stages"],
)
def test_scenario_becomes_incidents_in_postgres_with_intact_audit(
    kafka_bootstrap: str,
    pg_schema_url: str,
    unique: str,
    tmp_path: Path,
    workers: list[Worker],
    deployment: list[tuple[str, ...]],
) -> None:
    upgrade(make_engine(pg_schema_url))
    env = worker_env(kafka_bootstrap, pg_schema_url, ROOT / "rules", unique)
    for i, args in enumerate(deployment):
        workers.append(Worker(env, tmp_path / f"w{i}.log", args).start())

    produce(kafka_bootstrap, topic(unique, "events"), SCENARIO.read_bytes().splitlines())

    expected = replay(SCENARIO.read_bytes().splitlines(), load_rules(ROOT / "rules"))
    want = {(i.rule, tuple((e["source"], e["id"]) for e in i.events)) for i in expected.incidents}
    assert len(want) == 3

    def stored() -> set[tuple[str, tuple[tuple[str, str], ...]]]:
        return {(r.rule, tuple(refs(r))) for r in incidents(pg_schema_url)}

    wait_for(lambda: stored() == want, 60)
    engine = keyed_engine(pg_schema_url)
    with Session(engine) as s:
        count, broken = verify_chain(s)
        actions = [a.action for a in s.exec(select(AuditRecord)).all()]
        assert unkeyed_count(s) == 0  # every record HMAC'd with the workers' chain key
    assert broken is None
    assert count == len(actions) >= 3
    if deployment == [()]:  # every stage, `anchors` included: the head is on the anchor topic
        kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)

        def anchored() -> bool:
            found, _ = asyncio.run(read_topic(kafka, f"t.{unique}.audit-anchors"))
            with Session(engine) as s:
                return found != [] and check_anchors(s, found).problems == []

        wait_for(anchored, 30)
    assert actions.count("incident.opened") == 3
    # the redelivered cloudtrail event (same source and id) counted once
    cred = next(r for r in incidents(pg_schema_url) if r.kind == "credential_compromise")
    assert cred.event_count == 3 and cred.severity == "critical"


def test_malformed_message_goes_to_dlq_and_next_valid_event_is_processed(
    kafka_bootstrap: str, pg_schema_url: str, unique: str, tmp_path: Path, workers: list[Worker]
) -> None:
    upgrade(make_engine(pg_schema_url))
    rules = write_rules(tmp_path / "rules", EACH_RULE)
    workers.append(
        Worker(
            worker_env(kafka_bootstrap, pg_schema_url, rules, unique), tmp_path / "w.log"
        ).start()
    )
    bad_json = b'{"id": "x1", "source": '
    naive_time = event_json("x2", type="secret.leaked", resource="k1").replace(b"Z", b"")
    valid = event_json("x3", type="secret.leaked", resource="k1", severity="high")
    # same key, so the three land on one partition in this order
    produce(kafka_bootstrap, topic(unique, "events"), [bad_json, naive_time, valid], key=b"k1")

    dead = consume(kafka_bootstrap, topic(unique, "dlq"), expect=2)
    assert [m.value for m in dead] == [bad_json, naive_time]  # original bytes, in order
    headers = [dict(m.headers) for m in dead]
    assert headers[0]["responder.reason"] == b"invalid JSON"
    assert b"time" in headers[1]["responder.reason"]
    assert b"timezone" in headers[1]["responder.reason"]
    assert headers[0]["responder.source.topic"] == topic(unique, "events").encode()
    assert (
        int(headers[1]["responder.source.offset"]) == int(headers[0]["responder.source.offset"]) + 1
    )

    rows = wait_for(lambda: incidents(pg_schema_url), 30)
    assert [refs(r) for r in rows] == [[("detector", "x3")]]
    assert rows[0].severity == "high"

    # A correlation message this version cannot read (e.g. from an older worker) is kept too.
    foreign = b'[{"r": "each-secret", "k": "k", "e": {}}]'
    produce(kafka_bootstrap, topic(unique, "correlate"), [foreign], key_by_resource=False)
    dead = consume(kafka_bootstrap, topic(unique, "dlq"), expect=3)
    [kept] = [m for m in dead if m.value == foreign]  # partitions are read in no fixed order
    assert dict(kept.headers)["responder.reason"] == b"undecodable correlation message"
    assert workers[0].proc is not None and workers[0].proc.poll() is None  # still running


def test_two_workers_split_partitions_and_each_incident_appears_once(
    kafka_bootstrap: str, pg_schema_url: str, unique: str, tmp_path: Path, workers: list[Worker]
) -> None:
    upgrade(make_engine(pg_schema_url))
    rules = write_rules(tmp_path / "rules", BURST_RULE)
    env = worker_env(kafka_bootstrap, pg_schema_url, rules, unique)
    workers.append(Worker(env, tmp_path / "w1.log").start())
    workers.append(Worker(env, tmp_path / "w2.log").start())

    def split() -> bool:
        latest = []
        for w in workers:
            assigned = w.log_events("correlation partitions assigned")
            revoked = w.log_events("correlation partitions revoked")
            if not assigned or (revoked and revoked[-1]["timestamp"] > assigned[-1]["timestamp"]):
                return False
            latest.append(set(assigned[-1]["partitions"]))
        return latest[0].isdisjoint(latest[1]) and latest[0] | latest[1] == {0, 1, 2, 3}

    wait_for(split, 60)

    lines = []
    for g in range(24):  # 24 endpoints, 6 events each: one incident per endpoint
        for i in range(6):
            lines.append(event_json(f"e{g}-{i}", resource=f"ep-{g}", minute=i))
    produce(kafka_bootstrap, topic(unique, "events"), lines)

    expected = replay(lines, load_rules(rules))
    assert len(expected.incidents) == 24
    # each incident is opened at 5 events and updated at 6, maybe in different sink batches
    rows = wait_for(
        lambda: (
            (r := incidents(pg_schema_url))
            and len(r) >= 24
            and all(i.event_count == 6 for i in r)
            and r
        ),
        60,
    )
    assert len(rows) == 24
    assert sorted(r.group["resource.id"] for r in rows) == sorted(f"ep-{g}" for g in range(24))
    assert all(r.event_count == 6 for r in rows)
    engine = keyed_engine(pg_schema_url)
    with Session(engine) as s:
        opened = s.exec(select(AuditRecord).where(AuditRecord.action == "incident.opened")).all()
        assert len(opened) == 24 and len({a.subject for a in opened}) == 24
        assert verify_chain(s)[1] is None
    # both workers did correlation work
    for w in workers:
        assert w.log_events("correlation partitions assigned")[-1]["partitions"]


def test_worker_killed_mid_window_recovers_state_from_changelog(
    kafka_bootstrap: str, pg_schema_url: str, unique: str, tmp_path: Path, workers: list[Worker]
) -> None:
    upgrade(make_engine(pg_schema_url))
    rules = write_rules(tmp_path / "rules", BURST_RULE)
    env = worker_env(kafka_bootstrap, pg_schema_url, rules, unique)
    first = Worker(env, tmp_path / "w1.log").start()
    workers.append(first)
    events = topic(unique, "events")
    produce(kafka_bootstrap, events, [event_json(f"k{i}", minute=i) for i in range(3)])
    # wait until the 3 records were correlated, flushed to the changelog and committed
    wait_for(
        lambda: caught_up(kafka_bootstrap, f"t-{unique}-correlate", topic(unique, "correlate")), 60
    )
    assert len(consume(kafka_bootstrap, topic(unique, "changelog"), expect=1)) >= 1
    first.kill()  # SIGKILL: no shutdown hook runs
    assert incidents(pg_schema_url) == []

    second = Worker(env, tmp_path / "w2.log").start()
    workers.append(second)
    produce(kafka_bootstrap, events, [event_json(f"k{i}", minute=i) for i in range(3, 5)])
    rows = wait_for(lambda: incidents(pg_schema_url), 60)
    assert [refs(r) for r in rows] == [[("detector", f"k{i}") for i in range(5)]]
    restored = second.log_events("correlation partitions assigned")
    assert sum(e["restored_keys"] for e in restored) == 1
