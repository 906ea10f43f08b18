"""Poison-proof stages, offline: a record that raises goes to the DLQ and the stage goes on.

Each stage runs its real `handle` here with the Kafka side recorded instead of sent (`reject`
and `done` of `TopicStage`, the batch sender), so these tests need no broker.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from responder.audit.store import AuditRecord
from responder.commands import IncidentCommand, KillSwitch, apply_command
from responder.correlation.engine import Correlator
from responder.correlation.rules import RuleSet
from responder.incidents.model import IncidentChange
from responder.incidents.store import apply_changes, get_incident, list_incidents
from responder.playbooks.runs import kill_switch_on
from responder.settings import CorrelationSettings, KafkaSettings
from responder.storage.database import make_engine, upgrade
from responder.streams import db_retry, ingest_batch, records
from responder.streams.correlate import CorrelateStage
from responder.streams.ingest import IngestStage
from responder.streams.ingest_batch import DeadLetter, IngestBatch
from responder.streams.kafka import Batch, BatchSender, consumer_record
from responder.streams.playbooks import CommandStage, Wakeup
from responder.streams.records import MessageTooLarge, decode
from responder.streams.sink import SinkStage
from tests.support.builders import rule
from tests.support.faults import routing_raises
from tests.support.runner_kit import change
from tests.support.signing import GATE, SIGNER

KAFKA = KafkaSettings()
RULES = RuleSet([rule(id="every", match={"type|exists": True}, window="1h")])
SANDBOXED = rule(
    id="every",
    match={"type|exists": True},
    window="1h",
    incident={"kind": "test", "title": "{{ group['resource.id'] | upper }}"},
)
TP = TopicPartition("events", 0)


def event(event_id: str, **overrides: Any) -> bytes:
    doc: dict[str, Any] = {
        "id": event_id,
        "source": "unit",
        "type": "test.seen",
        "time": "2026-11-25T09:00:00Z",
        "severity": "low",
        "title": f"event {event_id}",
        "resource": {"kind": "endpoint", "id": f"res-{event_id}"},
    }
    doc.update(overrides)
    return json.dumps(doc).encode()


def message(value: bytes, offset: int, topic: str = "events") -> ConsumerRecord[bytes, bytes]:
    signed = SIGNER.headers(value, now_ms=time.time_ns() // 10**6) if topic == "commands" else ()
    return consumer_record(topic, value, offset, headers=signed)


def batch_of(values: Sequence[bytes], topic: str = "events") -> Batch:
    return {TopicPartition(topic, 0): [message(v, i, topic) for i, v in enumerate(values)]}


class Recorded:
    """Records what a TopicStage would send to the DLQ and commit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rejected: list[tuple[int, str, list[str]]] = []
        self.finished = 0

    async def reject(
        self, msg: ConsumerRecord[bytes, bytes], reason: str, detail: Sequence[str] = ()
    ) -> None:
        self.rejected.append((msg.offset, reason, list(detail)))

    async def done(self, batch: Batch) -> None:
        self.finished += 1

    def held(self) -> list[int]:
        return [0]


class SentBatches(BatchSender):
    def __init__(self) -> None:
        self.sent: list[tuple[str, int, bytes | None]] = []

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        self.sent.append((topic, partition, value))

    async def submit(self) -> list[Any]:
        return []


class OfflineIngest(Recorded, IngestStage):
    pass


class OfflineSink(Recorded, SinkStage):
    pass


class OfflineCommands(Recorded, CommandStage):
    pass


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    db = make_engine(f"sqlite:///{tmp_path / 'responder.db'}")
    upgrade(db)
    yield db
    db.dispose()


def routed_ids(values: list[bytes]) -> list[str]:
    return [e.id for v in values for *_, e in decode(v)]


# --- ingest ------------------------------------------------------------------------------------


def test_ingest_batch_redoes_a_failing_batch_record_by_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the record that raises is dead-lettered, with its exception class; others go on."""
    routing_raises(monkeypatch, "boom", RuntimeError("nobody foresaw this"))
    outcome = IngestBatch(RULES, 4).handle([event("a"), event("boom"), b"{bad", event("c")])
    assert outcome.redone == "RuntimeError: nobody foresaw this"
    assert outcome.dead == [
        DeadLetter(1, "ingest failed: RuntimeError", ["RuntimeError: nobody foresaw this"]),
        DeadLetter(2, "invalid JSON", outcome.dead[1].detail),
    ]
    assert sorted(routed_ids([v for vs in outcome.messages.values() for v in vs])) == ["a", "c"]
    assert outcome.records == 2


def test_an_event_whose_correlation_message_is_too_large_is_isolated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message the topic would refuse no longer fails the batch: its event goes to the DLQ."""
    monkeypatch.setattr(records, "MAX_CORRELATION_MESSAGE", 2000)
    big = event("big", attributes={"blob": "x" * 3000})
    outcome = IngestBatch(RULES, 1).handle([event("a"), big, event("b")])
    assert [(d.index, d.reason) for d in outcome.dead] == [(1, "ingest failed: MessageTooLarge")]
    assert sorted(routed_ids(outcome.messages[0])) == ["a", "b"]
    assert issubclass(MessageTooLarge, ValueError)


async def test_ingest_stage_dead_letters_poison_and_commits_the_batch() -> None:
    """The crash loop: a huge integer or year-1 time used to raise in the stage; now each goes
    to the DLQ with its reason, the good events are produced and the batch is committed."""
    stage = OfflineIngest(KAFKA, RULES)
    stage.work = IngestBatch(RULES, 4)
    stage.batcher = sent = SentBatches()
    poison = [
        event("huge", attributes={"n": 2**64}),
        event("year1", time="0001-01-01T00:00:00+01:00"),
        event("inf").replace(b'"severity"', b'"attributes": {"x": 1e999}, "severity"'),
    ]
    await stage.handle(batch_of([event("a"), *poison, event("b")]))
    assert [(offset, reason.split(":")[0]) for offset, reason, _ in stage.rejected] == [
        (1, "schema violation"),
        (2, "schema violation"),
        (3, "schema violation"),
    ]
    assert "64-bit" in stage.rejected[0][1] and "time" in stage.rejected[1][1]
    assert sorted(routed_ids([v for _, _, v in sent.sent if v])) == ["a", "b"]
    assert stage.finished == 1 and stage.stats.rejected == 3 and stage.stats.events == 5


async def test_ingest_stage_dead_letters_what_raises_with_the_exception_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever raises in the handling of one event: DLQ with class and message, stage goes on."""

    def explode(raw: bytes) -> Any:
        raise OverflowError("date value out of range")

    stage = OfflineIngest(KAFKA, RULES)
    stage.work = IngestBatch(RULES, 4, native=False)  # the fault is in the Python path's parse
    stage.batcher = SentBatches()
    monkeypatch.setattr(ingest_batch, "parse_event_doc", explode)
    await stage.handle(batch_of([event("a")]))
    assert stage.rejected == [
        (0, "ingest failed: OverflowError", ["OverflowError: date value out of range"])
    ]
    assert stage.finished == 1 and stage.stats.redone == 1


# --- correlate ---------------------------------------------------------------------------------


def correlation_messages(*values: bytes) -> list[bytes]:
    outcome = IngestBatch(RULES, 1).handle(list(values))
    return outcome.messages[0]


@pytest.mark.parametrize("native", [False, True], ids=["python", "compiled"])
def test_correlate_skips_a_record_that_raises_and_dead_letters_its_message(
    monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    """The other records of the message are still correlated; the message goes to the DLQ once."""
    stage = CorrelateStage(KAFKA, RULES, CorrelationSettings(), native=native)
    stage.stores[0] = stage.new_store()
    real_feed = stage.engine.feed

    def feed(state: Any, routed: Any, ev: Any, watermark: float | None = None) -> Any:
        if ev.id == "boom":
            raise ZeroDivisionError("division by zero")
        return real_feed(state, routed, ev, watermark)

    monkeypatch.setattr(stage.engine, "feed", feed)  # (the Python engine's)
    if stage.compiled_windows:  # the compiled engine asks Python for a sandboxed title
        monkeypatch.setattr(stage, "rules", RuleSet([SANDBOXED]))
        stage.engine = Correlator(stage.rules)
        stage.stores[0] = stage.new_store()
        real_render = stage.engine.titles.render

        def render(rule: Any, key: str, group: Any, ev: Any, count: int) -> str:
            if ev.doc()["id"] == "boom":
                raise ZeroDivisionError("division by zero")
            return real_render(rule, key, group, ev, count)

        monkeypatch.setattr(stage.engine.titles, "render", render)
    [value] = correlation_messages(event("a"), event("boom"), event("c"))
    stage.handle(batch_of([value, b"not a correlation message"], topic="correlate"))
    assert sorted(json.loads(v)["group"]["resource.id"] for _, v in stage.outbox) == [
        "res-a",
        "res-c",
    ]
    [(poisoned, reason, detail), (foreign, why, _)] = stage.dead
    assert poisoned.offset == 0 and reason == "correlate failed: ZeroDivisionError"
    assert detail == ["every unit/boom: ZeroDivisionError: division by zero"]
    assert foreign.offset == 1 and why == "undecodable correlation message"
    assert stage.stats.records == 2
    assert stage.pending[TopicPartition("correlate", 0)] == 2  # committed past both


@pytest.mark.parametrize("native", [False, True], ids=["python", "compiled"])
def test_correlate_survives_a_forged_record(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    """A record with a time that is not a number (not from our ingest) is dead-lettered."""
    stage = CorrelateStage(KAFKA, RULES, CorrelationSettings(), native=native)
    stage.stores[0] = stage.new_store()
    [value] = correlation_messages(event("a"))
    size = int.from_bytes(value[4:8], "big")
    header = orjson.loads(value[8 : 8 + size])
    header["docs"][0][6] = "yesterday"  # the event's time
    forged_header = orjson.dumps(header)
    forged = value[:4] + len(forged_header).to_bytes(4, "big") + forged_header + value[8 + size :]
    stage.handle(batch_of([forged], topic="correlate"))
    [(_, reason, _)] = stage.dead
    assert reason == "correlate failed: TypeError"


# --- sink --------------------------------------------------------------------------------------


def change_message(c: IncidentChange) -> bytes:
    return c.model_dump_json().encode()


async def test_sink_stores_change_by_change_when_the_batch_fails(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change the store cannot take goes to the DLQ with its class; the others are stored."""
    real = apply_changes

    def apply(
        session: Session, changes: list[IncidentChange], after_writes: Any = None, **options: Any
    ) -> int:
        if any(c.incident_id == "poison" for c in changes):
            raise TypeError("unexpected value in change")
        return real(session, changes, after_writes, **options)

    monkeypatch.setattr("responder.streams.sink.apply_changes", apply)
    stage = OfflineSink(KAFKA, engine)
    values = [
        change_message(change(incident_id="inc-a")),
        change_message(change(incident_id="poison")),
        b'{"not": "a change"}',
        change_message(change(incident_id="inc-b")),
    ]
    await stage.handle(batch_of(values, topic="incidents"))
    reasons = {offset: reason for offset, reason, _ in stage.rejected}
    assert reasons[1] == "sink failed: TypeError"
    assert reasons[2].startswith("invalid incident change")
    assert [d for o, _, d in stage.rejected if o == 1] == [
        ["TypeError: unexpected value in change"]
    ]
    with Session(engine) as session:
        assert sorted(r.id for r in list_incidents(session, limit=10)) == ["inc-a", "inc-b"]
    assert stage.finished == 1 and stage.stats.redone == 1


async def test_database_errors_about_the_data_are_not_waited_on_forever(engine: Engine) -> None:
    """An OperationalError while the database answers is the call's fault: it is raised."""
    calls = 0

    def failing() -> int:
        nonlocal calls
        calls += 1
        raise OperationalError("INSERT ...", {}, Exception("index row size exceeds maximum"))

    with pytest.raises(OperationalError):
        await db_retry.call_with_db_retry(
            engine, failing, what="test", attempts_before_check=3, first_delay=0
        )
    assert calls == 3


async def test_database_outage_is_waited_out(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the database does not answer, the call is retried, not dropped."""
    calls = 0
    answers = iter([False, False, False])

    def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls < 5:
            raise OperationalError("SELECT", {}, Exception("connection refused"))
        return 7

    monkeypatch.setattr(db_retry, "reachable", lambda _engine: next(answers))
    assert await db_retry.call_with_db_retry(
        engine, flaky, what="test", attempts_before_check=2, first_delay=0
    )
    assert calls == 5


# --- commands ----------------------------------------------------------------------------------


async def test_commands_stage_dead_letters_any_exception_and_goes_on(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Applying a command that raises (here TypeError) no longer stops the commands stage."""
    with Session(engine) as session, session.begin():
        apply_changes(session, [change(incident_id="inc-1")])
    real = apply_command

    def apply(session: Session, command: Any, directory: Any = None) -> dict[str, Any]:
        if getattr(command, "comment", None) == "poison":
            raise TypeError("unsupported operand")
        return real(session, command, directory)

    monkeypatch.setattr("responder.streams.playbooks.apply_command", apply)
    stage = OfflineCommands(KAFKA, engine, Wakeup(), GATE)
    poison = IncidentCommand(incident_id="inc-1", comment="poison", by="al")
    good = IncidentCommand(incident_id="inc-1", status="acknowledged", by="al")
    await stage.handle(
        batch_of(
            [poison.model_dump_json().encode(), b"{", good.model_dump_json().encode()],
            topic="commands",
        )
    )
    assert [(o, r) for o, r, _ in stage.rejected] == [
        (0, "commands failed: TypeError"),
        (1, "invalid command"),
    ]
    assert stage.rejected[0][2] == ["TypeError: unsupported operand"]
    with Session(engine) as session:
        incident = get_incident(session, "inc-1")
        assert incident is not None and incident.status == "acknowledged"
    assert stage.stats.applied == 1 and stage.finished == 1


def _framed(header: Any, body: bytes) -> bytes:
    encoded = orjson.dumps(header)
    return records.MAGIC + len(encoded).to_bytes(4, "big") + encoded + body


_ANY = st.none() | st.booleans() | st.integers(-5, 5) | st.floats() | st.text(max_size=3)
# headers close to what ingest writes: heads of seven fields, records pointing at them, keys of
# the stage's rule that fit, do not fit or name no rule
_HEADS = st.lists(
    st.tuples(
        st.integers(-1, 40) | _ANY,
        st.integers(-1, 40) | _ANY,
        st.text(max_size=3) | _ANY,
        st.text(max_size=3) | _ANY,
        st.text(max_size=3) | _ANY,
        st.integers(0, 5) | _ANY,
        st.floats(0, 1e9) | _ANY,
    ).map(list),
    max_size=3,
)
_KEYS = st.sampled_from(
    ['every|["res-a"]', "every|[1]", "every|[]", "every|nope", 'gone|["x"]', "every"]
) | st.lists(_ANY, max_size=2)
_RECS = st.lists(
    st.tuples(_KEYS, st.integers(-1, 3) | _ANY).map(list)
    | st.tuples(_KEYS, st.integers(0, 3), _ANY).map(list),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.builds(
            lambda docs, recs, body: _framed({"docs": docs, "recs": recs}, body),
            _HEADS,
            _RECS,
            st.binary(max_size=40) | st.just(event("a") * 2),
        ),
        st.binary(max_size=120).map(lambda b: records.MAGIC + b),
        st.builds(
            lambda n, header: records.MAGIC + n.to_bytes(4, "big") + header,
            st.integers(0, 300),
            st.binary(max_size=200),
        ),
        st.builds(
            lambda doc: records.MAGIC + len(doc).to_bytes(4, "big") + doc,
            st.recursive(
                st.none()
                | st.booleans()
                | st.integers(-(2**63), 2**63)
                | st.floats()
                | st.text(max_size=5),
                lambda inner: (
                    st.lists(inner, max_size=6)
                    | st.dictionaries(st.sampled_from(["docs", "recs"]), inner, max_size=2)
                ),
                max_leaves=20,
            ).map(orjson.dumps),
        ),
    )
)
def test_correlate_never_raises_on_forged_messages(value: bytes) -> None:
    """Whatever bytes arrive on the correlation topic, `handle` queues them for the DLQ or
    correlates them; it never raises."""
    stage = CorrelateStage(KAFKA, RULES, CorrelationSettings())
    stage.stores[0] = stage.new_store()
    stage.handle(batch_of([value], topic="correlate"))
    assert stage.pending[TopicPartition("correlate", 0)] == 1


async def test_a_flood_of_forged_commands_is_refused_and_audited_within_a_budget(
    engine: Engine,
) -> None:
    """Every forged command goes to the DLQ; the audit log gets 30 a minute, not the flood."""
    forged = KillSwitch(on=True, by="mallory").model_dump_json().encode()
    unsigned = [
        dataclasses.replace(message(forged, i, "elsewhere"), topic="commands") for i in range(35)
    ]
    stage = OfflineCommands(KAFKA, engine, Wakeup(), GATE)
    await stage.handle({TopicPartition("commands", 0): unsigned})
    assert [r for _, r, _ in stage.rejected] == ["command refused: not authenticated"] * 35
    assert stage.rejected[0][2] == ["unsigned: no responder-issuer header"]
    with Session(engine) as session:
        audited = session.exec(select(AuditRecord).where(AuditRecord.action == "command.refused"))
        assert len(list(audited)) == 30
        assert not kill_switch_on(session)


@pytest.mark.parametrize("native", [False, True], ids=["python", "compiled"])
def test_a_count_threshold_past_64_bits_is_a_rule_that_never_fires(native: bool) -> None:
    """Thresholds are only `ge=0`: the compiled store is still made, and fires as Python does."""
    rules = RuleSet(
        [
            rule(
                id="every",
                match={"type|exists": True},
                window="1h",
                correlation={"type": "event_count", "condition": {"gte": 2**64}},
            )
        ]
    )
    stage = CorrelateStage(KAFKA, rules, CorrelationSettings(), native=native)
    stage.stores[0] = stage.new_store()
    [value] = IngestBatch(rules, 1).handle([event("a"), event("b")]).messages[0]
    stage.handle(batch_of([value], topic="correlate"))
    assert stage.outbox == [] and stage.dead == [] and stage.stats.records == 2


@pytest.mark.parametrize("native", [False, True], ids=["python", "compiled"])
def test_an_interrupt_while_correlating_is_not_a_failed_record(
    monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    """KeyboardInterrupt (or SystemExit, CancelledError) raised under the engine, here in the
    sandboxed title, stops the stage as it would stop any Python code; it is not dead-lettered."""
    rules = RuleSet([SANDBOXED])
    stage = CorrelateStage(KAFKA, rules, CorrelationSettings(), native=native)
    stage.stores[0] = stage.new_store()

    def render(*_: Any) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(stage.engine.titles, "render", render)
    [value] = IngestBatch(rules, 1).handle([event("a")]).messages[0]
    with pytest.raises(KeyboardInterrupt):
        stage.handle(batch_of([value], topic="correlate"))
    assert stage.dead == []
