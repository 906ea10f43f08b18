"""The asset graph against real software: the store on SQLite and PostgreSQL.

Tests taking `db` run twice (see `tests/conftest.py`): on an embedded SQLite file and on a
fresh PostgreSQL schema, both migrated with Alembic.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel

from responder.assets.model import (
    EdgeKind,
    GraphUpdate,
    alias_id,
    edge,
    model_id,
    model_version_id,
    node,
)
from responder.assets.store import (
    apply_update,
    drop_sources,
    forget,
    load_graph,
    replace_source,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


# -- the store ----------------------------------------------------------------------------


def test_the_migration_matches_the_tables(db: Engine) -> None:
    """Alembic's 0006 creates exactly what the models declare (no drift)."""
    with db.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert [d for d in diff if "asset_" in repr(d)] == []


def test_the_store_round_trips_claims_exactly(db: Engine) -> None:
    """Nodes and edges come back with kind, tier, tags, attributes, source and time."""
    fraud, v1 = model_id("fraud"), model_version_id("fraud", 1)
    nodes = [
        node(fraud, "mlflow", T0, tags={"team": "ml", "ünïcode": "✓"}),
        node(v1, "mlflow", T0, attributes={"run_id": "r1"}),
    ]
    edges = [edge(v1, EdgeKind.version_of, fraud, "mlflow", T0, attributes={"why": "registry"})]
    declared = [node(fraud, "assets/a.yaml", T0 + timedelta(hours=1), tier="high")]
    with Session(db) as session, session.begin():
        assert replace_source(session, "mlflow", nodes, edges) == (2, 1)
        replace_source(session, "assets/a.yaml", declared, [])
    with Session(db) as session:
        graph = load_graph(session)
    got = graph.node(fraud)
    assert got is not None
    assert (got.tier, dict(got.tags), got.sources) == (
        "high",
        {"team": "ml", "ünïcode": "✓"},
        ("assets/a.yaml", "mlflow"),
    )
    assert got.at == T0 + timedelta(hours=1)
    [stored] = list(graph.edges())
    assert stored.key == (v1, EdgeKind.version_of, fraud)
    assert (dict(stored.attributes), stored.sources, stored.at) == (
        {"why": "registry"},
        ("mlflow",),
        T0,
    )


def test_replacing_a_source_is_atomic_and_leaves_other_sources_alone(db: Engine) -> None:
    """A second sync of `mlflow` replaces only `mlflow`; a failure inside the transaction
    rolls back to the previous claims."""
    a, b = model_id("a"), model_id("b")
    with Session(db) as session, session.begin():
        replace_source(session, "mlflow", [node(a, "mlflow", T0)], [])
        replace_source(session, "assets/x.yaml", [node(b, "assets/x.yaml", T0)], [])

    def crash_mid_sync() -> None:
        with Session(db) as session, session.begin():
            replace_source(session, "mlflow", [], [])
            raise RuntimeError("crash mid-sync")

    with pytest.raises(RuntimeError):
        crash_mid_sync()
    with Session(db) as session:
        assert {n.id for n in load_graph(session).nodes()} == {a, b}
    with Session(db) as session, session.begin():
        replace_source(session, "mlflow", [node(b, "mlflow", T0)], [])
        assert drop_sources(session, "assets/", keep=[]) == ["assets/x.yaml"]
    with Session(db) as session:
        graph = load_graph(session)
    assert {n.id for n in graph.nodes()} == {b}
    found = graph.node(b)
    assert found is not None and found.sources == ("mlflow",)


def test_webhook_updates_move_an_alias_and_stale_ones_do_not(db: Engine) -> None:
    """An alias moved by a webhook supersedes the sync's edge; an older delivery arriving
    late changes nothing; the next sync forgets the webhook's claims."""
    champion = alias_id("fraud", "champion")
    v2, v3 = model_version_id("fraud", 2), model_version_id("fraud", 3)
    with Session(db) as session, session.begin():
        replace_source(
            session, "mlflow", [], [edge(champion, EdgeKind.points_to, v2, "mlflow", T0)]
        )

    def move(to: str, at: datetime) -> bool:
        update = GraphUpdate(
            at=at,
            nodes=(node(champion, "webhook", at, attributes={"version": to[-1]}),),
            edges=(edge(champion, EdgeKind.points_to, to, "webhook", at),),
            replaces=((champion, EdgeKind.points_to),),
        )
        with Session(db) as session, session.begin():
            return apply_update(session, update)

    def target() -> list[str]:
        with Session(db) as session:
            out, _ = load_graph(session).edges_of(champion)
        return [e.dst for e in out if e.kind is EdgeKind.points_to]

    assert move(v3, T0 + timedelta(minutes=5))
    assert target() == [v3]
    assert not move(v2, T0 + timedelta(minutes=2))  # sent earlier, delivered later
    assert target() == [v3]
    assert move(v3, T0 + timedelta(minutes=6))  # a redelivery of the same move: harmless
    assert target() == [v3]
    with Session(db) as session, session.begin():
        assert forget(session, "webhook", before=T0 + timedelta(minutes=10)) == 2
    assert target() == []  # the sync that forgot them would have written the registry's view
