"""What the MLflow tracking server and model registry say about assets (I/O adapter).

Registered models and their tags; their versions (`search_model_versions`, paged); each
version's source run (its `run_id`, or the source run of its logged model in MLflow 3); the
datasets that run logged as inputs (`mlflow.log_input`: `run.inputs.dataset_inputs`, with
name, digest, source and the `mlflow.data.context` tag); and the aliases of every model.

Everything read is bounded (`Limits`): a registry can be large or hostile. What is skipped is
reported, never silently: a version or a run that cannot be read is listed in `skipped`, a limit
reached sets `truncated`. An error that is not "this one item is gone" (the server down, a
permission error) raises, so a sync never replaces the stored graph with half a registry.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from responder.assets.model import (
    MLFLOW,
    AssetIdError,
    Edge,
    EdgeKind,
    Node,
    alias_id,
    clip,
    dataset_id,
    edge,
    model_id,
    model_version_id,
    node,
)

log = structlog.get_logger(__name__)

CONTEXT_TAG = "mlflow.data.context"


class RegistryClient(Protocol):
    """The part of `mlflow.tracking.MlflowClient` this adapter calls."""

    def search_registered_models(self, *, max_results: int, page_token: str | None) -> Any: ...
    def search_model_versions(self, *, max_results: int, page_token: str | None) -> Any: ...
    def get_run(self, run_id: str) -> Any: ...
    def get_logged_model(self, model_id: str) -> Any: ...


@dataclass(frozen=True)
class Limits:
    """How much one sync reads at most."""

    max_models: int = 1000
    max_versions: int = 20_000
    max_runs: int = 20_000
    max_datasets_per_run: int = 50
    page_size: int = 500


@dataclass
class RegistrySnapshot:
    """The registry's claims, with what was left out and how many calls it took."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    truncated: bool = False
    calls: int = 0
    seconds: float = 0.0


def client_for(tracking_uri: str, registry_uri: str | None = None) -> Any:
    """An `MlflowClient` (the optional `responder[mlflow]` extra)."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise RuntimeError("MLflow support is not installed: install responder[mlflow]") from exc
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)


def _missing(exc: Exception) -> bool:
    """MLflow's "no such resource": that one item is gone, the sync goes on."""
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def _ms(value: Any) -> str | None:
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else clip(value)


def _attrs(**values: Any) -> dict[str, str]:
    return {k: v for k, raw in values.items() if (v := _text(raw)) is not None}


class _Reader:
    def __init__(self, client: RegistryClient, limits: Limits, at: datetime) -> None:
        self.client = client
        self.limits = limits
        self.at = at
        self.out = RegistrySnapshot()
        self.runs: dict[str, Any] = {}

    def call(self, fn: Any, /, **kwargs: Any) -> Any:
        self.out.calls += 1
        return fn(**kwargs)

    def pages(self, fn: Any, cap: int) -> Iterator[Any]:
        """Items of a paged search, at most `cap` (then `truncated`)."""
        token: str | None = None
        seen = 0
        while True:
            size = max(1, min(self.limits.page_size, cap - seen + 1))
            page = self.call(fn, max_results=size, page_token=token)
            for item in page:
                if seen >= cap:
                    self.out.truncated = True
                    return
                seen += 1
                yield item
            token = getattr(page, "token", None)
            if not token:
                return

    def skip(self, what: str, why: str) -> None:
        self.out.skipped.append(f"{what}: {why}")
        log.warning("assets.mlflow_skipped", what=what, why=why)

    def add_node(self, node_id: str, **kwargs: Any) -> None:
        self.out.nodes.append(node(node_id, MLFLOW, self.at, **kwargs))

    def add_edge(self, src: str, kind: EdgeKind, dst: str, **attributes: str) -> None:
        self.out.edges.append(edge(src, kind, dst, MLFLOW, self.at, attributes=attributes))

    # -- what the registry holds -----------------------------------------------------------

    def models(self) -> set[str]:
        names: set[str] = set()
        for rm in self.pages(self.client.search_registered_models, self.limits.max_models):
            name = str(rm.name)
            try:
                mid = model_id(name)
                self.add_node(
                    mid,
                    name=name,
                    tags=dict(rm.tags or {}),
                    attributes=_attrs(
                        description=rm.description, created=_ms(rm.creation_timestamp)
                    ),
                )
                for alias, version in dict(rm.aliases or {}).items():
                    aid = alias_id(name, str(alias))
                    self.add_node(aid, attributes=_attrs(version=version))
                    self.add_edge(aid, EdgeKind.points_to, model_version_id(name, str(version)))
            except AssetIdError as exc:
                self.skip(f"model {name[:80]!r}", str(exc))
                continue
            names.add(name)
        return names

    def versions(self, models: set[str]) -> None:
        for mv in self.pages(self.client.search_model_versions, self.limits.max_versions):
            name, version = str(mv.name), str(mv.version)
            if name not in models:  # beyond max_models, or skipped
                continue
            try:
                vid = model_version_id(name, version)
                run_id = self.run_of(mv)
                self.add_node(
                    vid,
                    tags=dict(mv.tags or {}),
                    attributes=_attrs(
                        run_id=run_id,
                        model_id=getattr(mv, "model_id", None),
                        source=mv.source,
                        status=mv.status,
                        user_id=mv.user_id,
                        created=_ms(mv.creation_timestamp),
                    ),
                )
                self.add_edge(vid, EdgeKind.version_of, model_id(name))
                if run_id:
                    self.datasets(vid, run_id)
            except AssetIdError as exc:
                self.skip(f"version {name[:80]!r}/{version[:20]}", str(exc))

    def run_of(self, mv: Any) -> str | None:
        """The version's source run: its own run_id, else its logged model's source run."""
        if mv.run_id:
            return str(mv.run_id)
        logged = getattr(mv, "model_id", None)
        if not logged:
            return None
        try:
            found = self.call(self.client.get_logged_model, model_id=str(logged))
        except Exception as exc:
            if _missing(exc):
                self.skip(f"logged model {str(logged)[:80]}", "not found")
                return None
            raise
        run_id = getattr(found, "source_run_id", None)
        return str(run_id) if run_id else None

    def datasets(self, version_id: str, run_id: str) -> None:
        run = self.run(run_id)
        if run is None:
            return
        inputs = getattr(getattr(run, "inputs", None), "dataset_inputs", None) or []
        if len(inputs) > self.limits.max_datasets_per_run:
            self.out.truncated = True
        for di in inputs[: self.limits.max_datasets_per_run]:
            ds = di.dataset
            try:
                did = dataset_id(str(ds.name), str(ds.digest))
            except AssetIdError as exc:
                self.skip(f"dataset of run {run_id[:40]}", str(exc))
                continue
            context = {t.key: t.value for t in (di.tags or [])}.get(CONTEXT_TAG)
            self.add_node(
                did,
                name=str(ds.name),
                attributes=_attrs(
                    digest=ds.digest, source_type=ds.source_type, source=ds.source, run_id=run_id
                ),
            )
            self.add_edge(version_id, EdgeKind.trained_on, did, **_attrs(context=context))

    def run(self, run_id: str) -> Any | None:
        if run_id in self.runs:
            return self.runs[run_id]
        if len(self.runs) >= self.limits.max_runs:
            self.out.truncated = True
            return None
        try:
            found = self.call(self.client.get_run, run_id=run_id)
        except Exception as exc:
            if not _missing(exc):
                raise
            self.skip(f"run {run_id[:40]}", "not found")
            found = None
        self.runs[run_id] = found
        return found


def read_registry(
    client: RegistryClient, *, at: datetime, limits: Limits | None = None
) -> RegistrySnapshot:
    """Nodes and edges for what the registry holds, read at `at`."""
    started = time.perf_counter()
    reader = _Reader(client, limits or Limits(), at)
    reader.versions(reader.models())
    out = reader.out
    out.seconds = time.perf_counter() - started
    log.info(
        "assets.mlflow_read",
        nodes=len(out.nodes),
        edges=len(out.edges),
        skipped=len(out.skipped),
        truncated=out.truncated,
        calls=out.calls,
        seconds=round(out.seconds, 3),
    )
    return out
