"""One model's serving chain as asset-graph edges, for the tests and benchmarks that build a
graph by hand: versions trained on datasets, an alias on one version, an endpoint serving it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from responder.assets.model import (
    Edge,
    EdgeKind,
    NodeKind,
    alias_id,
    edge,
    model_id,
    model_version_id,
    simple_id,
)


def serving_chain(
    model: str,
    trained_on: Mapping[int, Sequence[str]],
    at: datetime,
    *,
    champion: int | None = None,
    endpoint: str | None = None,
    source: str = "mlflow",
) -> list[Edge]:
    """Each version in `trained_on` `version_of` `model` and `trained_on` its dataset ids;
    `alias:model@champion` `points_to` version `champion` (if given); `endpoint` (an endpoint
    key) `serves` that alias."""
    edges = []
    for version, datasets in trained_on.items():
        vid = model_version_id(model, version)
        edges += [edge(vid, EdgeKind.trained_on, ds, source, at) for ds in datasets]
        edges.append(edge(vid, EdgeKind.version_of, model_id(model), source, at))
    if champion is not None:
        alias = alias_id(model, "champion")
        edges.append(edge(alias, EdgeKind.points_to, model_version_id(model, champion), source, at))
        if endpoint is not None:
            served = simple_id(NodeKind.endpoint, endpoint)
            edges.append(edge(served, EdgeKind.serves, alias, source, at))
    return edges
