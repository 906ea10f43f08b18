"""The registry reader against a fake MlflowClient, and the sync job on an embedded SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from responder.assets.mlflow_source import Limits, read_registry
from responder.assets.model import EdgeKind
from responder.assets.store import load_graph, sources
from responder.assets.sync import AssetSync, SyncResult, SyncStage, run_periodically
from responder.storage.database import make_engine, upgrade

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


class Page(list[Any]):
    def __init__(self, items: Sequence[Any], token: str | None) -> None:
        super().__init__(items)
        self.token = token


class Missing(Exception):
    error_code = "RESOURCE_DOES_NOT_EXIST"


def model(name: str, aliases: dict[str, str] | None = None, **tags: str) -> Any:
    return SimpleNamespace(
        name=name,
        tags=tags,
        aliases=aliases or {},
        description=None,
        creation_timestamp=1_764_060_000_000,
    )


def version(name: str, number: int, run_id: str | None = None, model_id: str | None = None) -> Any:
    return SimpleNamespace(
        name=name,
        version=str(number),
        run_id=run_id,
        model_id=model_id,
        tags={},
        source=f"models:/{name}/{number}",
        status="READY",
        user_id="alice",
        creation_timestamp=1_764_060_000_000,
    )


def run(*datasets: tuple[str, str], context: str = "training") -> Any:
    inputs = [
        SimpleNamespace(
            dataset=SimpleNamespace(
                name=n, digest=d, source_type="s3", source='{"uri": "s3://b/x"}'
            ),
            tags=[SimpleNamespace(key="mlflow.data.context", value=context)],
        )
        for n, d in datasets
    ]
    return SimpleNamespace(inputs=SimpleNamespace(dataset_inputs=inputs))


class FakeRegistry:
    """Pages of at most `max_results`, a token while more remain; counts calls."""

    def __init__(
        self,
        models: list[Any],
        versions: list[Any],
        runs: dict[str, Any],
        logged: dict[str, str] | None = None,
        fail_run: Exception | None = None,
    ) -> None:
        self.models, self.versions, self.runs = models, versions, runs
        self.logged = logged or {}
        self.fail_run = fail_run
        self.calls: list[str] = []

    @staticmethod
    def page(items: list[Any], max_results: int, token: str | None) -> Page:
        start = int(token or 0)
        end = start + max_results
        return Page(items[start:end], str(end) if end < len(items) else None)

    def search_registered_models(self, *, max_results: int, page_token: str | None) -> Page:
        self.calls.append("models")
        return self.page(self.models, max_results, page_token)

    def search_model_versions(self, *, max_results: int, page_token: str | None) -> Page:
        self.calls.append("versions")
        return self.page(self.versions, max_results, page_token)

    def get_run(self, run_id: str) -> Any:
        self.calls.append(f"run {run_id}")
        if self.fail_run is not None:
            raise self.fail_run
        if run_id not in self.runs:
            raise Missing(run_id)
        return self.runs[run_id]

    def get_logged_model(self, model_id: str) -> Any:
        self.calls.append(f"logged {model_id}")
        if model_id not in self.logged:
            raise Missing(model_id)
        return SimpleNamespace(source_run_id=self.logged[model_id])


def fraud_registry(**kwargs: Any) -> FakeRegistry:
    return FakeRegistry(
        models=[model("fraud", {"champion": "2"}, team="ml"), model("churn")],
        versions=[
            version("fraud", 1, "r1"),
            version("fraud", 2, "r2"),
            version("churn", 1, None, model_id="m-7"),
            version("churn", 2, "gone"),
        ],
        runs={
            "r1": run(("tx", "aa11")),
            "r2": run(("tx", "aa11"), ("cb", "bb22")),
            "r7": run(("cb", "bb22"), context="eval"),
        },
        logged={"m-7": "r7"},
        **kwargs,
    )


def test_the_reader_builds_models_versions_aliases_and_training_data() -> None:
    """Every registry fact becomes a claim: version_of, points_to, trained_on with context;
    a logged model leads to its source run; a vanished run is skipped and reported."""
    got = read_registry(fraud_registry(), at=T0, limits=Limits(page_size=2))
    edges = {e.key: e for e in got.edges}
    assert set(edges) == {
        ("model_version:fraud/1", EdgeKind.version_of, "model:fraud"),
        ("model_version:fraud/2", EdgeKind.version_of, "model:fraud"),
        ("model_version:churn/1", EdgeKind.version_of, "model:churn"),
        ("model_version:churn/2", EdgeKind.version_of, "model:churn"),
        ("alias:fraud@champion", EdgeKind.points_to, "model_version:fraud/2"),
        ("model_version:fraud/1", EdgeKind.trained_on, "dataset:tx@aa11"),
        ("model_version:fraud/2", EdgeKind.trained_on, "dataset:tx@aa11"),
        ("model_version:fraud/2", EdgeKind.trained_on, "dataset:cb@bb22"),
        ("model_version:churn/1", EdgeKind.trained_on, "dataset:cb@bb22"),
    }
    assert edges[("model_version:churn/1", EdgeKind.trained_on, "dataset:cb@bb22")].attributes[
        "context"
    ] == ("eval")
    nodes = {n.id: n for n in got.nodes}
    assert nodes["model:fraud"].tags["team"] == "ml"
    assert nodes["model_version:churn/1"].attributes["run_id"] == "r7"
    assert nodes["dataset:cb@bb22"].attributes["source_type"] == "s3"
    assert got.skipped == ["run gone: not found"]
    assert not got.truncated
    assert all(n.source == "mlflow" and n.at == T0 for n in got.nodes)


def test_pages_are_followed_and_runs_read_once() -> None:
    """Page tokens are followed to the end; a run shared by versions is fetched once."""
    fake = fraud_registry()
    fake.versions.append(version("fraud", 3, "r1"))
    got = read_registry(fake, at=T0, limits=Limits(page_size=1))
    assert fake.calls.count("models") == 2
    assert fake.calls.count("versions") == 5
    assert fake.calls.count("run r1") == 1
    assert got.calls == len(fake.calls)


def test_limits_bound_what_is_read_and_say_so() -> None:
    """A registry larger than the limits: the reader stops there and reports `truncated`."""
    many = FakeRegistry(
        models=[model(f"m{i}") for i in range(50)],
        versions=[version(f"m{i}", 1) for i in range(50)],
        runs={},
    )
    got = read_registry(many, at=T0, limits=Limits(max_models=10, max_versions=20, page_size=7))
    assert got.truncated
    assert sum(1 for n in got.nodes if n.kind.value == "model") == 10
    assert sum(1 for n in got.nodes if n.kind.value == "model_version") == 10  # of the 20 read
    assert len(many.calls) <= 2 + 3 + 1


def test_datasets_per_run_are_bounded() -> None:
    """A run that logged thousands of inputs contributes the first few."""
    flood = run(*[(f"d{i}", f"{i:04x}") for i in range(500)])
    fake = FakeRegistry([model("m")], [version("m", 1, "r")], {"r": flood})
    got = read_registry(fake, at=T0, limits=Limits(max_datasets_per_run=5))
    assert got.truncated and sum(e.kind is EdgeKind.trained_on for e in got.edges) == 5


def test_hostile_registry_values_are_skipped_or_clipped() -> None:
    """A name too long for an id is skipped and reported; huge tags are clipped."""
    fake = FakeRegistry(
        models=[model("x" * 600), model("ok", big="v" * 100_000)],
        versions=[],
        runs={},
    )
    got = read_registry(fake, at=T0)
    assert [n.id for n in got.nodes] == ["model:ok"]
    assert len(got.nodes[0].tags["big"]) == 2048
    assert len(got.skipped) == 1 and "longer than 512" in got.skipped[0]


def test_errors_other_than_not_found_stop_the_read() -> None:
    """The tracking server down is not "no datasets": the read raises, nothing is half-done."""
    with pytest.raises(ConnectionError):
        read_registry(fraud_registry(fail_run=ConnectionError("refused")), at=T0)


# -- the sync job -------------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = make_engine(f"sqlite:///{tmp_path / 'responder.db'}")
    upgrade(made)
    yield made
    made.dispose()


def assets_dir(tmp_path: Path, endpoint: str = "fraud-api") -> Path:
    directory = tmp_path / "assets"
    directory.mkdir(exist_ok=True)
    (directory / "serving.yaml").write_text(
        f"teams: [{{id: fraud-ml}}]\n"
        f"endpoints:\n  - id: {endpoint}\n    serves: fraud@champion\n    owner: fraud-ml\n"
    )
    return directory


def clock(*moments: datetime) -> Any:
    it = iter(moments)
    return lambda: next(it)


def test_a_sync_writes_every_source_and_lineage_crosses_them(
    engine: Engine, tmp_path: Path
) -> None:
    """Registry and file land as separate sources; lineage of a dataset reaches the endpoint
    that a file says serves an alias the registry points at a version trained on it."""
    sync = AssetSync(engine, assets_dir=assets_dir(tmp_path), client=fraud_registry())
    result = sync.run_once()
    assert result.ok and set(result.written) == {"mlflow", "assets/serving.yaml"}
    with Session(engine) as session:
        graph = load_graph(session)
        assert set(sources(session)) == {"mlflow", "assets/serving.yaml"}
    reach = graph.lineage("dataset:cb@bb22")
    assert reach is not None
    kinds = {k.value: v for k, v in reach.by_kind().items()}
    assert kinds["model_version"] == ["model_version:fraud/2", "model_version:churn/1"]
    assert kinds["alias"] == ["alias:fraud@champion"]
    assert kinds["endpoint"] == ["endpoint:fraud-api"]


def test_a_later_sync_replaces_and_forgets(engine: Engine, tmp_path: Path) -> None:
    """A renamed endpoint replaces the old one; a deleted file's claims go; a model gone from
    the registry goes."""
    directory = assets_dir(tmp_path)
    (directory / "extra.yaml").write_text("api_keys: [{id: AKIA1}]\n")
    AssetSync(engine, assets_dir=directory, client=fraud_registry()).run_once()
    assets_dir(tmp_path, endpoint="fraud-api-v2")
    (directory / "extra.yaml").unlink()
    smaller = fraud_registry()
    smaller.models.pop()  # churn is gone
    result = AssetSync(engine, assets_dir=directory, client=smaller).run_once()
    assert result.dropped == ["assets/extra.yaml"]
    with Session(engine) as session:
        graph = load_graph(session)
    assert "endpoint:fraud-api-v2" in graph and "endpoint:fraud-api" not in graph
    assert "api_key:AKIA1" not in graph and "model:churn" not in graph


def test_invalid_files_keep_their_previous_claims_and_the_registry_still_syncs(
    engine: Engine, tmp_path: Path
) -> None:
    """A typo in a file must not wipe the declared endpoints; the error is reported."""
    directory = assets_dir(tmp_path)
    AssetSync(engine, assets_dir=directory, client=None).run_once()
    (directory / "serving.yaml").write_text("endpoints:\n  - id: x\n    tier: urgent\n")
    result = AssetSync(engine, assets_dir=directory, client=fraud_registry()).run_once()
    assert not result.ok and "serving.yaml:3: endpoints.0.tier" in result.errors[0]
    with Session(engine) as session:
        graph = load_graph(session)
    assert "endpoint:fraud-api" in graph and "model:fraud" in graph


def test_an_unreachable_registry_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    """The read fails before the transaction: the stored graph is what it was."""
    AssetSync(engine, assets_dir=assets_dir(tmp_path), client=fraud_registry()).run_once()
    broken = AssetSync(
        engine,
        assets_dir=assets_dir(tmp_path, endpoint="changed"),
        client=fraud_registry(fail_run=ConnectionError("refused")),
    )
    with pytest.raises(ConnectionError):
        broken.run_once()
    with Session(engine) as session:
        graph = load_graph(session)
    assert "endpoint:fraud-api" in graph and "endpoint:changed" not in graph


def test_a_missing_directory_leaves_declared_claims_alone(engine: Engine, tmp_path: Path) -> None:
    """An unmounted volume is not "no assets": a warning, and the old claims stay."""
    AssetSync(engine, assets_dir=assets_dir(tmp_path), client=None).run_once()
    result = AssetSync(engine, assets_dir=tmp_path / "gone", client=None).run_once()
    assert result.ok and any("no assets directory" in w for w in result.warnings)
    with Session(engine) as session:
        assert "endpoint:fraud-api" in load_graph(session)


async def test_the_periodic_loop_runs_until_stopped_and_survives_failures() -> None:
    """A failing run is logged; the loop keeps its interval and ends when told."""
    outcomes: list[str] = []

    def flaky() -> SyncResult:
        outcomes.append("run")
        if len(outcomes) == 2:
            raise ConnectionError("registry down")
        if len(outcomes) == 4:
            stop.set()
        return SyncResult(at=T0)

    stop = asyncio.Event()
    async with asyncio.timeout(5):
        runs = await run_periodically(flaky, 0.01, stop)
    assert outcomes == ["run"] * 4 and runs == 3


async def test_the_sync_stage_starts_runs_and_stops(engine: Engine, tmp_path: Path) -> None:
    """The worker-stage face: start, run in the background, stop ends the loop."""
    sync = AssetSync(
        engine, assets_dir=assets_dir(tmp_path), clock=clock(T0, T0 + timedelta(seconds=1))
    )
    stage = SyncStage(sync, interval_s=60)
    await stage.start()
    task = asyncio.create_task(stage.run())
    for _ in range(200):
        with Session(engine) as session:
            if sources(session):
                break
        await asyncio.sleep(0.02)
    await stage.stop()
    async with asyncio.timeout(5):
        await task
    assert stage.runs == 1
