"""The affected assets of an incident, and what the model registry says about them.

Which assets an incident affects is an `AssetSource`'s answer. Today's is `EventAssets`: the
models the incident's events name (`resource.kind: model`, the registered model's name in
`resource.name`, else `resource.id`; the implicated version in `resource.version`). The AI asset
graph (`responder.assets`: lineage and blast radius from MLflow) is meant to be another
`AssetSource` handed to the snapshot in its place, reaching models the events do not name.

`describe_models` asks the `ModelRegistryPort` about each model: aliases, tags, every version
with its tags, and for the implicated versions and those an alias points at, the artifact files
with their sha256 and the digests of the datasets their runs logged. A registry that is not
configured, or that fails, is recorded as such in the bundle: the snapshot still happens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from responder.actions.ports import ModelRegistryPort
from responder.actions.registry import ActionError

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ModelRef:
    """A registered model an incident affects, and the versions it implicates (maybe none)."""

    name: str
    versions: tuple[str, ...] = ()


class AssetSource(Protocol):
    name: str

    def affected_models(
        self, incident: Mapping[str, Any], events: Sequence[Mapping[str, Any]]
    ) -> list[ModelRef]: ...


class EventAssets:
    """The models the incident's own events name (pure)."""

    name = "events"

    def affected_models(
        self, incident: Mapping[str, Any], events: Sequence[Mapping[str, Any]]
    ) -> list[ModelRef]:
        found: dict[str, list[str]] = {}
        for event in events:
            resource = event.get("resource")
            if not isinstance(resource, Mapping) or resource.get("kind") != "model":
                continue
            name = resource.get("name") or resource.get("id")
            if not isinstance(name, str) or not name:
                continue
            versions = found.setdefault(name, [])
            version = resource.get("version")
            if version is not None and str(version) not in versions:
                versions.append(str(version))
        return [ModelRef(name, tuple(versions)) for name, versions in found.items()]


def _failure(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ActionError) else f"{type(exc).__name__}: {exc}"


async def describe_models(
    models: ModelRegistryPort | None,
    refs: Sequence[ModelRef],
    *,
    source: str,
    max_bytes: int,
    max_files: int,
) -> dict[str, Any]:
    """The `assets.json` member: each affected model as the registry describes it."""
    described: list[dict[str, Any]] = []
    for ref in refs:
        entry: dict[str, Any] = {"name": ref.name, "implicated_versions": list(ref.versions)}
        if models is not None:
            try:
                entry.update(await _describe(models, ref, max_bytes, max_files))
            except Exception as exc:  # evidence keeps what it could learn, and why not more
                log.warning("evidence: model registry failed", model=ref.name, error=str(exc))
                entry["error"] = _failure(exc)
        described.append(entry)
    return {
        "source": source,
        "model_registry": "configured" if models is not None else "not configured",
        "models": described,
    }


async def _describe(
    models: ModelRegistryPort, ref: ModelRef, max_bytes: int, max_files: int
) -> dict[str, Any]:
    aliases = await models.aliases(name=ref.name)
    tags = await models.model_tags(name=ref.name)
    versions = await models.versions(name=ref.name)
    detailed = set(ref.versions) | set(aliases.values())
    out: list[dict[str, Any]] = []
    for info in sorted(versions, key=lambda v: (len(v.version), v.version)):
        item: dict[str, Any] = {
            "version": info.version,
            "created_at": info.created_at.isoformat(),
            "tags": dict(info.tags),
            "aliases": sorted(a for a, v in aliases.items() if v == info.version),
            "implicated": info.version in ref.versions,
        }
        if info.version in detailed:
            try:
                found = await models.artifacts(
                    name=ref.name, version=info.version, max_bytes=max_bytes, max_files=max_files
                )
                item.update(found.model_dump(mode="json", exclude={"version"}))
            except Exception as exc:  # one version's files failing leaves the rest described
                item["artifacts_error"] = _failure(exc)
        out.append(item)
    return {"aliases": dict(aliases), "tags": dict(tags), "versions": out}
