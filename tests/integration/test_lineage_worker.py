"""Lineage in the real worker (Kafka broker, PostgreSQL): the graph stored in SQL is loaded
before ingest starts; a poisoning report on a dataset and drift on a model version trained on
it become one incident, as `replay --assets` predicts, and the sink stores its blast radius."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from responder.assets import store
from responder.assets.blast_store import get_radius
from responder.assets.graph import AssetGraph
from responder.assets.lineage import LineageIndex
from responder.assets.model import (
    NodeKind,
    alias_id,
    dataset_id,
    model_id,
    model_version_id,
    node,
    simple_id,
)
from responder.correlation.replay import replay
from responder.correlation.rules import load_rules
from responder.events.schema import rfc3339
from responder.incidents.store import Incident
from responder.storage.database import make_engine, upgrade
from tests.support.asset_chain import serving_chain
from tests.support.harness import Worker, produce, topic, wait_for, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
AT = datetime.now(UTC) - timedelta(hours=1)
TX = dataset_id("transactions", "8be7b4a3")
V3, V4 = model_version_id("fraud", 3), model_version_id("fraud", 4)
CHAMPION = alias_id("fraud", "champion")
API = simple_id(NodeKind.endpoint, "fraud-api")


def event(n: int, type: str, resource: dict[str, Any]) -> bytes:
    doc = {
        "id": f"lw-{n}",
        "source": "ml-monitor",
        "type": type,
        "time": rfc3339(datetime.now(UTC) + timedelta(seconds=n)),
        "severity": "high",
        "title": f"{type} #{n}",
        "resource": resource,
        "schema_version": "1",
    }
    return json.dumps(doc).encode()


def test_the_worker_correlates_along_the_graph_and_stores_the_blast_radius(
    kafka_bootstrap: str, pg_schema_url: str, unique: str, tmp_path: Path, workers: list[Worker]
) -> None:
    engine = make_engine(pg_schema_url)
    upgrade(engine)
    nodes = [node(n, "mlflow", AT) for n in (TX, V3, V4, CHAMPION, model_id("fraud"))]
    edges = serving_chain("fraud", {3: [TX], 4: [TX]}, AT, champion=4, endpoint="fraud-api")
    with Session(engine) as session, session.begin():
        store.replace_source(session, "mlflow", nodes, edges)
    env = worker_env(kafka_bootstrap, pg_schema_url, ROOT / "rules", unique)
    # stages split over processes: ingest enriches, the sink computes blast radii, each its own
    workers.append(Worker(env, tmp_path / "ingest.log", ("--stages", "ingest")).start())
    workers.append(Worker(env, tmp_path / "rest.log", ("--stages", "correlate,sink")).start())

    lines = [
        event(1, "data.poisoning_suspected", {"kind": "dataset", "id": "transactions@8be7b4a3"}),
        event(2, "model.drift", {"kind": "model", "id": "fraud", "version": "4"}),
    ]
    produce(kafka_bootstrap, topic(unique, "events"), lines, key_by_resource=True)
    predicted = replay(
        lines, load_rules(ROOT / "rules"), assets=LineageIndex(AssetGraph(nodes, edges))
    )
    [expected] = predicted.incidents
    assert expected.last_change.event_count == 2

    def stored() -> list[Incident]:
        with Session(engine) as session:
            return list(session.exec(select(Incident)).all())

    wait_for(lambda: [r.event_count for r in stored()] == [2], 90)
    [row] = stored()
    assert (row.rule, row.id, row.group) == (
        "data-poisoning",
        expected.last_change.incident_id,
        {"lineage.dataset": TX},
    )
    with Session(engine) as session:
        radius = get_radius(session, row.id)
    assert radius is not None
    assert sorted(v["id"] for v in radius["versions"]) == sorted([V3, V4])
    assert [a["id"] for a in radius["aliases"]] == [CHAMPION]
    assert [e["id"] for e in radius["endpoints"]] == [API]
    assert radius["models"] == ["fraud"]
    engine.dispose()
