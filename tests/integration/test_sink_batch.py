"""The sink's batched transaction: a batch is written in a fixed number of statements, blast
radii computed once per batch, and what is stored is what storing change by change would store
(runs with the evidence and radius as of their change, audit records, idempotence)."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlmodel import Session, col, select
from structlog.testing import capture_logs

from responder import bootstrap
from responder.assets.blast_store import get_radius
from responder.assets.graph import AssetGraph
from responder.assets.lineage import GraphSnapshot
from responder.assets.model import EdgeKind, NodeKind, edge, node, simple_id
from responder.audit.store import AuditRecord, verify_chain
from responder.incidents import store as store_module
from responder.incidents.model import IncidentChange
from responder.incidents.store import Applied, Incident, IncidentEvent
from responder.metrics.worker import INCIDENTS_OPENED
from responder.playbooks.blast_sql import BlastRadii
from responder.playbooks.loader import load_playbooks
from responder.playbooks.runs import PlaybookRun, StepRun, run_events
from responder.playbooks.start_sql import RunStarter
from responder.settings import KafkaSettings, Settings, merged
from responder.storage.bulk import StaleRows
from responder.storage.database import alembic_config, make_engine, upgrade
from responder.streams.sink import SinkStage, store_changes
from tests.integration.test_runner import CONTAIN
from tests.support.runner_kit import KEY, change, event


def stored(db: Engine) -> dict[str, Any]:
    with Session(db) as s:
        return {
            "incidents": sorted(
                (r.id, r.version, r.event_count, len(r.event_ids)) for r in s.exec(select(Incident))
            ),
            "evidence": sorted(
                (e.incident_id, e.event_id, e.position) for e in s.exec(select(IncidentEvent))
            ),
            "runs": sorted(
                (r.incident_id, r.incident_version, [e["id"] for e in run_events(s, r)])
                for r in s.exec(select(PlaybookRun))
            ),
            "audit": sorted(
                (a.subject, a.action, a.data.get("version"))
                for a in s.exec(select(AuditRecord).order_by(col(AuditRecord.seq)))
            ),
        }


def test_a_mixed_batch_stores_everything_once_and_runs_see_their_evidence(
    db: Engine, tmp_path: Path
) -> None:
    """One batch: an incident that starts a run (opened, then updated in the same batch) and
    one no playbook matches. The run holds the evidence as of its change, not the batch's
    later evidence; a redelivered batch changes nothing."""
    (tmp_path / "pb").mkdir()
    (tmp_path / "pb" / "contain.yaml").write_text(CONTAIN)
    sink = SinkStage(KafkaSettings(), db, on_applied=RunStarter(load_playbooks(tmp_path / "pb")))
    batch = [
        change(1, incident_id="inc-a"),
        change(1, incident_id="inc-b", severity="low"),  # `contain` wants high or above
        change(2, incident_id="inc-a", change_kind="updated", events=[event("e2", 2)]),
        change(
            2, incident_id="inc-b", severity="low", change_kind="updated", events=[event("e2b", 2)]
        ),
    ]
    assert sink._apply(batch) == 4
    first = stored(db)
    assert first["incidents"] == [("inc-a", 2, 2, 2), ("inc-b", 2, 2, 2)]
    assert first["evidence"] == [
        ("inc-a", "e1", 0),
        ("inc-a", "e2", 1),
        ("inc-b", "e1", 0),
        ("inc-b", "e2b", 1),
    ]
    # `contain` (opened, high or above) matched inc-a's opening only; the run holds the
    # evidence written before it in the same transaction
    assert first["runs"] == [("inc-a", 1, ["e1"])]
    changes = [a for a in first["audit"] if a[1].startswith("incident.")]
    assert changes == [
        ("inc-a", "incident.opened", 1),
        ("inc-a", "incident.updated", 2),
        ("inc-b", "incident.opened", 1),
        ("inc-b", "incident.updated", 2),
    ]
    with Session(db) as s:
        assert verify_chain(s)[1] is None

    assert sink._apply(batch) == 0  # redelivered: nothing twice
    assert stored(db) == first


WATCH = """
id: watch
title: Watch the blast radius
on: {kind: credential_compromise, change: [opened, updated]}
steps:
  - {id: tell, action: slack.notify, with: {text: "{{ incident.blast_radius.size }}"}}
"""


def test_incidents_a_batch_opens_are_counted_by_kind_and_severity_once_stored(
    db: Engine,
) -> None:
    sink = SinkStage(KafkaSettings(), db)
    labels = ("credential_compromise", "critical")
    before = INCIDENTS_OPENED.labels(*labels)._value.get()
    low_before = INCIDENTS_OPENED.labels(labels[0], "low")._value.get()
    batch = [
        change(1, incident_id="count-a"),
        change(1, incident_id="count-b"),
        change(2, incident_id="count-a", change_kind="updated", events=[event("e2", 2)]),
        change(1, incident_id="count-c", severity="low"),
        change(1, incident_id="count-d"),
    ]
    assert sink._apply(batch) == 5
    assert INCIDENTS_OPENED.labels(*labels)._value.get() == before + 3
    assert INCIDENTS_OPENED.labels(labels[0], "low")._value.get() == low_before + 1
    assert sink._apply(batch) == 0  # redelivered: not counted again
    assert INCIDENTS_OPENED.labels(*labels)._value.get() == before + 3


def test_blast_radii_are_computed_once_per_batch_and_each_run_sees_its_own(
    db: Engine, tmp_path: Path
) -> None:
    """Two changes of one incident in one batch, the second naming a second asset: the run of
    each change sees the radius as of that change, the newest radius is stored once, and a
    redelivered batch starts nothing and stores nothing new."""
    key = simple_id(NodeKind.api_key, KEY)
    image = simple_id(NodeKind.image, "registry/ml/serving:1")
    endpoint = simple_id(NodeKind.endpoint, "scoring")
    at = datetime(2026, 11, 25, tzinfo=UTC)
    snapshot = GraphSnapshot(
        AssetGraph(
            [node(endpoint, "assets/x.yaml", at, tier="critical")],
            [
                edge(endpoint, EdgeKind.uses, key, "assets/x.yaml", at),
                edge(endpoint, EdgeKind.runs, image, "assets/x.yaml", at),
            ],
        )
    )
    (tmp_path / "pb").mkdir()
    (tmp_path / "pb" / "watch.yaml").write_text(WATCH)
    starter = RunStarter(load_playbooks(tmp_path / "pb"))
    radii = BlastRadii(snapshot)
    on_image = event("e2", 2, resource={"kind": "image", "id": "registry/ml/serving:1"})
    batch = [
        change(1, incident_id="inc-a"),
        change(2, incident_id="inc-a", change_kind="updated", events=[on_image]),
    ]
    with Session(db) as session, session.begin():
        stored = store_changes(session, batch, starter, radii)
    assert stored.applied == 2 and len(stored.runs) == 2
    with Session(db) as session:
        runs = sorted(session.exec(select(PlaybookRun)).all(), key=lambda r: r.incident_version)
        newest = get_radius(session, "inc-a")
        seen = [[e["id"] for e in run_events(session, run)] for run in runs]
    first, second = (run.incident["blast_radius"] for run in runs)
    assert first["roots"] == [key] and second["roots"] == [key, image]
    assert first["critical"] == [endpoint]
    assert newest == second
    assert seen == [["e1"], ["e1", "e2"]]  # the evidence as of each change

    with Session(db) as session, session.begin():
        again = store_changes(session, batch, starter, radii)
    assert (again.applied, again.runs) == (0, [])
    with Session(db) as session:
        assert get_radius(session, "inc-a") == newest
        assert len(session.exec(select(PlaybookRun)).all()) == 2


def test_without_an_asset_graph_runs_see_an_empty_radius_and_nothing_is_stored(
    db: Engine, tmp_path: Path
) -> None:
    (tmp_path / "pb").mkdir()
    (tmp_path / "pb" / "watch.yaml").write_text(WATCH)
    with Session(db) as session, session.begin():
        stored = store_changes(
            session,
            [change(1, incident_id="inc-e")],
            RunStarter(load_playbooks(tmp_path / "pb")),
            BlastRadii(GraphSnapshot()),
        )
    with Session(db) as session:
        [run] = session.exec(select(PlaybookRun)).all()
        assert get_radius(session, "inc-e") is None
    assert stored.runs == [run.id]
    assert run.incident["blast_radius"] == BlastRadii.empty()


def test_a_changed_graph_is_used_by_the_next_batch_whatever_was_remembered(db: Engine) -> None:
    """Radii are remembered between batches per graph snapshot: once the snapshot holds a new
    graph, the same roots and resources are weighed on it."""
    key = simple_id(NodeKind.api_key, KEY)
    endpoint = simple_id(NodeKind.endpoint, "scoring")
    at = datetime(2026, 11, 25, tzinfo=UTC)

    def graph(tier: Literal["critical", "high"]) -> AssetGraph:
        return AssetGraph(
            [node(endpoint, "assets/x.yaml", at, tier=tier)],
            [edge(endpoint, EdgeKind.uses, key, "assets/x.yaml", at)],
        )

    snapshot = GraphSnapshot(graph("high"))
    radii = BlastRadii(snapshot)

    def updated(version: int) -> IncidentChange:
        return change(version, incident_id="inc-g", change_kind="updated")

    with Session(db) as session, session.begin():  # v2's roots and resources are v3's
        store_changes(session, [change(1, incident_id="inc-g"), updated(2)], None, radii)
    with Session(db) as session:
        assert (get_radius(session, "inc-g") or {})["critical"] == []
    snapshot.set(graph("critical"))
    with Session(db) as session, session.begin():
        store_changes(session, [updated(3)], None, radii)
    with Session(db) as session:
        assert (get_radius(session, "inc-g") or {})["critical"] == [endpoint]


def test_the_sink_built_from_settings_keeps_an_incidents_first_events_and_says_so_once(
    db: Engine, tmp_path: Path
) -> None:
    """`RESPONDER_WORKER__MAX_EVIDENCE` reaches the sink the worker builds: a flooded incident
    keeps its first events; a run started past the limit holds those and then its own change's
    events, so `events | last` is still what triggered it; the sink warns once, at the change
    that fills the incident up."""
    (tmp_path / "pb").mkdir()
    (tmp_path / "pb" / "contain.yaml").write_text(
        CONTAIN.replace("severity|gte: high}", "severity|gte: high, change: [opened, updated]}")
    )
    (tmp_path / "rules").mkdir()
    settings = merged(
        Settings(),
        {
            "worker": {"max_evidence": 3},
            "playbooks": {"dir": str(tmp_path / "pb")},
            "rules_dir": str(tmp_path / "rules"),
        },
    )
    sink = bootstrap.pipeline(settings, engine=db, stages=("sink",)).sink
    assert sink is not None and sink.max_evidence == 3
    flood = [event(f"f{i}", i) for i in range(7)]
    with capture_logs() as logs:
        for version, events in [(1, flood[:2]), (2, flood[2:3]), (3, flood[3:5]), (4, flood[5:])]:
            kind = "opened" if version == 1 else "updated"
            applied = sink._apply(
                [change(version, incident_id="inc-f", change_kind=kind, events=events)]
            )
            assert applied == 1
    now = stored(db)
    assert now["incidents"] == [("inc-f", 4, 4, 3)]
    assert [e[1] for e in now["evidence"]] == ["f0", "f1", "f2"]
    assert now["runs"] == [
        ("inc-f", 1, ["f0", "f1"]),
        ("inc-f", 2, ["f0", "f1", "f2"]),
        ("inc-f", 3, ["f0", "f1", "f2", "f3", "f4"]),
        ("inc-f", 4, ["f0", "f1", "f2", "f5", "f6"]),
    ]
    full = [entry for entry in logs if entry["event"].startswith("incident evidence is full")]
    assert [(e["incident_id"], e["max_evidence"]) for e in full] == [("inc-f", 3)]


def test_a_batch_is_stored_with_the_collector_off_and_it_is_on_again_after(db: Engine) -> None:
    """The sink's transaction runs without garbage collection (`batch_uncollected`): its rows
    are alive until it ends, and collecting them over and over cost 12 % of its CPU."""
    seen: list[bool] = []

    def starter(session: Session, applied: Sequence[Applied], radii: object = None) -> list[str]:
        seen.append(gc.isenabled())
        return []

    sink = SinkStage(KafkaSettings(), db, on_applied=starter)  # type: ignore[arg-type]
    assert gc.isenabled()
    assert sink._apply([change(1, incident_id="inc-gc")]) == 1
    assert seen == [False]
    assert gc.isenabled()


def test_a_batch_another_sink_stored_meanwhile_is_stored_again_at_once_quietly(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`StaleRows` (two sinks met on a partition across a rebalance) is no failure to warn
    about: the batch is read and stored again in one transaction, not change by change."""
    sink = SinkStage(KafkaSettings(), db)
    whole = sink._apply
    calls: list[int] = []

    def stale_once(changes: list[IncidentChange]) -> int:
        calls.append(len(changes))
        if len(calls) == 1:
            raise StaleRows("1 of 2 incidents rows were newer")
        return whole(changes)

    monkeypatch.setattr(sink, "_apply", stale_once)
    batch = [change(1, incident_id="stale-a"), change(1, incident_id="stale-b")]
    with capture_logs() as logs:
        applied = asyncio.run(sink._store([(None, c) for c in batch]))
    assert applied == 2 and calls == [2, 2]
    assert (sink.stats.retried, sink.stats.redone, sink.stats.rejected) == (1, 0, 0)
    levels = {e["event"]: e["log_level"] for e in logs}
    assert levels == {"incident batch partly stored by another sink; storing the rest": "info"}


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # (SQLite: one writer)
def test_an_incident_another_sink_created_meanwhile_is_skipped_in_one_retry(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL, another sink commits a new incident between this batch's read and its
    COPY: the unique violation makes the batch read again and store the rest at once; the
    incident is opened and audited once."""
    sink = SinkStage(KafkaSettings(), db)
    other = SinkStage(KafkaSettings(), db)
    write = store_module._write
    raced: list[bool] = []

    def racing_write(session: Session, rows: Any, evidence: Any) -> None:
        if not raced:  # the other sink stores the same change first, in its own transaction
            raced.append(True)
            assert other._apply([change(1, incident_id="both")]) == 1
        write(session, rows, evidence)

    monkeypatch.setattr(store_module, "_write", racing_write)
    batch = [change(1, incident_id="both"), change(1, incident_id="mine")]
    with capture_logs() as logs:
        applied = asyncio.run(sink._store([(None, c) for c in batch]))
    assert applied == 1  # "mine"; "both" was the other sink's
    assert (sink.stats.retried, sink.stats.redone, sink.stats.rejected) == (1, 0, 0)
    assert [e["log_level"] for e in logs] == ["info"]
    with Session(db) as session:
        opened = session.exec(
            select(AuditRecord.subject).where(AuditRecord.action == "incident.opened")
        )
        assert sorted(opened.all()) == ["both", "mine"]


def test_runs_count_their_evidence_across_the_migration_both_ways(
    db_url: str, tmp_path: Path
) -> None:
    """Revision 0015: a run stored before it (every body copied into `events`) reads the same
    after the upgrade; a run stored after it holds a count, not the bodies; a downgrade copies
    the counted evidence back into the run's own `events`."""
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0014")
        old_body = event("e-old", 1)
        with engine.begin() as conn:  # as the sink at 0014 stored an incident and its run
            incident = change(1, incident_id="inc-old").model_dump(mode="json")
            conn.execute(
                text(
                    'INSERT INTO incidents (id, rule, kind, title, "group", severity, first_seen,'
                    " last_seen, event_count, status, event_ids, version, comments, created_at,"
                    " updated_at) VALUES (:id, :rule, :kind, :title, :group, :severity, :first,"
                    " :last, 1, 'open', :refs, 1, '[]', :first, :first)"
                ),
                {
                    "id": "inc-old",
                    "rule": incident["rule"],
                    "kind": incident["kind"],
                    "title": incident["title"],
                    "group": json.dumps(incident["group"]),
                    "severity": incident["severity"],
                    "first": datetime(2026, 1, 1, tzinfo=UTC),
                    "last": datetime(2026, 1, 1, tzinfo=UTC),
                    "refs": json.dumps([{"source": old_body["source"], "id": "e-old"}]),
                },
            )
            conn.execute(
                text(
                    "INSERT INTO playbook_runs (id, playbook_id, incident_id, trigger,"
                    " incident_version, mode, status, incident, events, created_at, updated_at)"
                    " VALUES ('run-old', 'contain', 'inc-old', 'opened', 1, 'live', 'completed',"
                    " '{}', :events, :at, :at)"
                ),
                {"events": json.dumps([old_body]), "at": datetime(2026, 1, 1, tzinfo=UTC)},
            )
        upgrade(engine)
        (tmp_path / "pb").mkdir()
        (tmp_path / "pb" / "contain.yaml").write_text(CONTAIN)
        starter = RunStarter(load_playbooks(tmp_path / "pb"))
        with Session(engine) as session, session.begin():
            batch = [
                change(1, incident_id="inc-new"),
                change(2, incident_id="inc-new", change_kind="updated", events=[event("e2", 2)]),
            ]
            assert len(store_changes(session, batch[:1], starter).runs) == 1
            store_changes(session, [batch[1]], starter)  # more evidence after the run's change
        with Session(engine) as session:
            old = session.get(PlaybookRun, "run-old")
            [new] = session.exec(select(PlaybookRun).where(PlaybookRun.id != "run-old")).all()
            assert old is not None and old.evidence == 0
            assert run_events(session, old) == [old_body]
            assert (new.evidence, new.events) == (1, [])  # a count, no copied body
            assert [e["id"] for e in run_events(session, new)] == ["e1"]
            new_id = new.id
        with Session(engine) as session, session.begin():  # a step refers to the run's row
            session.add(
                StepRun(run_id=new_id, step_id="s", position=0, action="x", status="completed")
            )
        command.downgrade(alembic_config(engine), "0014")
        with engine.connect() as conn:
            copied: dict[str, Any] = {
                rid: events
                for rid, events in conn.execute(text("SELECT id, events FROM playbook_runs"))
            }
        decoded = {rid: json.loads(v) if isinstance(v, str) else v for rid, v in copied.items()}
        assert decoded["run-old"] == [old_body]
        assert [e["id"] for e in decoded[new_id]] == ["e1"]
    finally:
        engine.dispose()
