"""The asset graph against real software: an MLflow sqlite registry whose runs logged datasets
(`mlflow.log_input`), the store on SQLite and PostgreSQL, MLflow's own webhook sender, the CLI.

Tests taking `db` run twice (see `tests/conftest.py`): on an embedded SQLite file and on a
fresh PostgreSQL schema, both migrated with Alembic.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel
from typer.testing import CliRunner

from responder.assets.graph import AssetGraph
from responder.assets.mlflow_source import read_registry
from responder.assets.model import (
    EdgeKind,
    GraphUpdate,
    NodeKind,
    alias_id,
    dataset_id,
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
from responder.assets.sync import AssetSync
from responder.assets.webhooks import ReplayGuard, receive
from responder.cli import app
from tests.support.mlflow_lineage import LineageRegistry, create_lineage_registry

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
SERVING = """\
teams:
  - id: fraud-ml
endpoints:
  - id: fraud-api
    serves: fraud-detector@champion
    runs: fraud-serving:1.4.2
    uses: [AKIAEXAMPLE01]
    tier: critical
    owner: fraud-ml
  - id: churn-api
    serves: churn-model@champion
models:
  - name: fraud-detector
    tier: critical
    owner: fraud-ml
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> LineageRegistry:
    return create_lineage_registry(tmp_path_factory.mktemp("lineage"))


@pytest.fixture
def assets(tmp_path: Path) -> Path:
    directory = tmp_path / "assets"
    directory.mkdir()
    (directory / "serving.yaml").write_text(SERVING)
    return directory


def synced(db: Engine, registry: LineageRegistry, assets: Path) -> AssetGraph:
    result = AssetSync(db, assets_dir=assets, client=registry.client()).run_once()
    assert result.ok and not result.skipped and not result.truncated, result
    with Session(db) as session:
        return load_graph(session)


# -- the registry, read for real ----------------------------------------------------------


def test_lineage_of_a_dataset_lists_exactly_what_it_reaches(
    db: Engine, registry: LineageRegistry, assets: Path
) -> None:
    """Poisoned `transactions`: fraud-detector v1 and v2 and credit-scorer v1 were trained on
    it; @champion of fraud-detector (-> 2) and credit-scorer (-> 1) point at them; fraud-api
    serves fraud-detector@champion. Not v3, not churn, not @challenger."""
    started = time.perf_counter()
    graph = synced(db, registry, assets)
    elapsed = time.perf_counter() - started
    print(f"\nsync of the test registry into {db.dialect.name}: {elapsed * 1000:.0f} ms")
    tx = dataset_id("transactions", registry.digests["transactions"])
    reach = graph.lineage(tx)
    assert reach is not None and not reach.truncated
    kinds = reach.by_kind()
    assert set(kinds[NodeKind.model_version]) == {
        model_version_id("fraud-detector", 1),
        model_version_id("fraud-detector", 2),
        model_version_id("credit-scorer", 1),
    }
    assert set(kinds[NodeKind.alias]) == {
        alias_id("fraud-detector", "champion"),
        alias_id("credit-scorer", "champion"),
    }
    assert kinds[NodeKind.endpoint] == ["endpoint:fraud-api"]
    assert set(kinds[NodeKind.model]) == {model_id("fraud-detector"), model_id("credit-scorer")}
    assert kinds[NodeKind.api_key] == ["api_key:AKIAEXAMPLE01"]
    assert kinds[NodeKind.image] == ["image:fraud-serving:1.4.2"]
    assert kinds[NodeKind.team] == ["team:fraud-ml"]
    assert kinds[NodeKind.dataset] == [tx]


def test_the_synced_graph_keeps_what_the_registry_knows(
    db: Engine, registry: LineageRegistry, assets: Path
) -> None:
    """Run ids, dataset sources and context, tags, and the declared tier on a registry model."""
    graph = synced(db, registry, assets)
    v2 = graph.node(model_version_id("fraud-detector", 2))
    assert v2 is not None and v2.attributes["run_id"] == registry.runs[("fraud-detector", 2)]
    cb = dataset_id("chargebacks", registry.digests["chargebacks"])
    dataset = graph.node(cb)
    assert dataset is not None
    assert json.loads(dataset.attributes["source"]) == {
        "uri": "s3://datasets/chargebacks/2026-11.parquet"
    }
    out, into = graph.edges_of(cb)
    assert {e.src for e in into} == {
        model_version_id("fraud-detector", 2),
        model_version_id("fraud-detector", 3),
        model_version_id("churn-model", 1),
    }
    assert all(e.attributes["context"] == "training" for e in into) and out == []
    fraud = graph.node(model_id("fraud-detector"))
    assert fraud is not None and fraud.tier == "critical" and fraud.tags["team"] == "ml"
    assert fraud.sources == ("assets/serving.yaml", "mlflow")
    no_run = graph.node(model_version_id("credit-scorer", 2))
    assert no_run is not None and "run_id" not in no_run.attributes
    blast = graph.blast_radius([cb]).by_kind()  # fraud-api serves v2, trained on cb as well
    assert set(blast[NodeKind.endpoint]) == {"endpoint:fraud-api", "endpoint:churn-api"}


def test_the_registry_reader_pages_through_a_real_registry(registry: LineageRegistry) -> None:
    """Page size 1: every model and version is still read, following MLflow's page tokens."""
    small = read_registry(registry.client(), at=T0, limits=_limits(page_size=1))
    big = read_registry(registry.client(), at=T0)
    assert {n.id for n in small.nodes} == {n.id for n in big.nodes}
    assert small.calls > big.calls
    assert sum(n.kind is NodeKind.model_version for n in big.nodes) == 6


def _limits(**kwargs: Any) -> Any:
    from responder.assets.mlflow_source import Limits

    return Limits(**kwargs)


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


def test_a_delivery_from_mlflows_own_sender_updates_the_stored_graph(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow's delivery code builds, signs and posts the request (captured, no network); we
    verify it, convert it and apply it: the alias follows the registry's move."""
    from mlflow.entities.webhook import Webhook, WebhookAction, WebhookEntity, WebhookEvent
    from mlflow.webhooks import ModelVersionAliasCreatedPayload
    from mlflow.webhooks.delivery import _send_webhook_request

    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "https")
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
    secret = SecretStr("whsec-integration")
    captured: list[tuple[bytes, dict[str, str]]] = []

    class Capture:
        def post(self, url: str, data: bytes, headers: dict[str, str], timeout: float) -> Any:
            captured.append((data, headers))
            return None

    hook = Webhook(
        webhook_id="w1",
        name="responder",
        url="https://127.0.0.1/v1/webhooks/mlflow",
        events=[WebhookEvent(WebhookEntity.MODEL_VERSION_ALIAS, WebhookAction.CREATED)],
        creation_timestamp=0,
        last_updated_timestamp=0,
        secret=secret.get_secret_value(),
    )
    event = WebhookEvent(WebhookEntity.MODEL_VERSION_ALIAS, WebhookAction.CREATED)
    payload = ModelVersionAliasCreatedPayload(name="fraud-detector", alias="champion", version="3")
    _send_webhook_request(hook, payload, event, cast(Any, Capture()))
    [(body, headers)] = captured

    guard = ReplayGuard()
    got = receive(body, headers, secret, now=time.time(), guard=guard)
    assert got.event is not None and got.event["type"] == "model.alias_changed"
    assert got.event["resource"]["version"] == "3"
    with Session(db) as session, session.begin():
        assert apply_update(session, got.update)
    with Session(db) as session:
        out, _ = load_graph(session).edges_of(alias_id("fraud-detector", "champion"))
    assert [e.dst for e in out] == [model_version_id("fraud-detector", 3)]
    with pytest.raises(Exception, match="received already"):
        receive(body, headers, secret, now=time.time(), guard=guard)


# -- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def cli_env(
    db_url: str, registry: LineageRegistry, assets: Path, monkeypatch: pytest.MonkeyPatch
) -> CliRunner:
    monkeypatch.setenv("RESPONDER_DATABASE__URL", db_url)
    monkeypatch.setenv("RESPONDER_MLFLOW__TRACKING_URI", registry.tracking_uri)
    monkeypatch.setenv("RESPONDER_ASSETS__DIR", str(assets))
    return CliRunner()


def test_the_cli_syncs_shows_and_draws_the_graph(
    db: Engine, cli_env: CliRunner, registry: LineageRegistry
) -> None:
    """`assets sync`, `assets show --json`, `assets graph` on the synced registry."""
    sync = cli_env.invoke(app, ["assets", "sync"])
    assert sync.exit_code == 0, sync.output
    assert "assets/serving.yaml: 4 assets, 6 edges" in sync.stdout
    assert "mlflow: " in sync.stdout

    shown = cli_env.invoke(app, ["assets", "show", "fraud-detector/2", "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["node"]["id"] == "model_version:fraud-detector/2"
    assert {e["dst"] for e in data["out"]} == {
        model_id("fraud-detector"),
        dataset_id("transactions", registry.digests["transactions"]),
        dataset_id("chargebacks", registry.digests["chargebacks"]),
    }
    assert [e["src"] for e in data["in"]] == [alias_id("fraud-detector", "champion")]

    tree = cli_env.invoke(app, ["assets", "graph", "endpoint:fraud-api"])
    assert tree.exit_code == 0, tree.output
    lines = tree.stdout.splitlines()
    assert lines[0] == "endpoint:fraud-api [critical]"
    assert "├── → serves alias:fraud-detector@champion" in lines[1]
    assert any("→ points_to model_version:fraud-detector/2" in line for line in lines)

    blast = cli_env.invoke(app, ["assets", "graph", "transactions", "--blast-radius", "--json"])
    assert blast.exit_code == 0, blast.output
    assert json.loads(blast.stdout)["by_kind"]["endpoint"] == ["endpoint:fraud-api"]

    missing = cli_env.invoke(app, ["assets", "show", "nothing-like-it"])
    assert missing.exit_code == 1 and "no asset 'nothing-like-it'" in missing.output
