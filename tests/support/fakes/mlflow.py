"""`FakeRegistry`: an in-memory `ModelRegistryPort` that counts calls per method.

Like MLflow, an unknown model or version raises `ActionError(code="not_found")` and an unset
alias reads as None. `trained_on` gives versions the (name, digest) datasets their source run
logged; a version without an entry has no source run (its lineage is unknown). `fail_next` queues errors per method (e.g. a crash between the rollback's
"pending" tag and the alias move).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from responder.actions.ports import ArtifactDigest, ModelVersionInfo, VersionArtifacts
from responder.actions.registry import ActionError


@dataclass
class FakeModel:
    versions: dict[str, ModelVersionInfo] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)  # version -> path -> bytes
    trained_on: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


class FakeRegistry:
    def __init__(self) -> None:
        self.models: dict[str, FakeModel] = {}
        self.calls: Counter[str] = Counter()
        self.fail_next: dict[str, list[Exception]] = {}

    def add_model(
        self,
        name: str,
        *,
        versions: int,
        tags: dict[str, dict[str, str]] | None = None,
        aliases: dict[str, str] | None = None,
        trained_on: dict[str, list[tuple[str, str]]] | None = None,
    ) -> FakeModel:
        """Versions "1".."N" created a minute apart; `tags` maps a version to its tags,
        `trained_on` to the datasets its source run logged."""
        start = datetime(2026, 1, 1, tzinfo=UTC)
        model = FakeModel(aliases=dict(aliases or {}), trained_on=dict(trained_on or {}))
        for n in range(1, versions + 1):
            v = str(n)
            model.versions[v] = ModelVersionInfo(
                version=v,
                tags=dict((tags or {}).get(v, {})),
                created_at=start + timedelta(minutes=n),
            )
        self.models[name] = model
        return model

    def _enter(self, method: str) -> None:
        self.calls[method] += 1
        queued = self.fail_next.get(method)
        if queued:
            raise queued.pop(0)

    def _model(self, name: str) -> FakeModel:
        try:
            return self.models[name]
        except KeyError:
            raise ActionError(f"registered model {name!r} not found", code="not_found") from None

    async def alias_version(self, *, name: str, alias: str) -> str | None:
        self._enter("alias_version")
        return self._model(name).aliases.get(alias)

    async def set_alias(self, *, name: str, alias: str, version: str) -> None:
        self._enter("set_alias")
        model = self._model(name)
        if version not in model.versions:
            raise ActionError(f"{name} has no version {version}", code="not_found")
        model.aliases[alias] = version

    async def versions(self, *, name: str) -> list[ModelVersionInfo]:
        self._enter("versions")
        return list(self._model(name).versions.values())

    async def model_tags(self, *, name: str) -> dict[str, str]:
        self._enter("model_tags")
        return dict(self._model(name).tags)

    async def set_model_tag(self, *, name: str, key: str, value: str) -> None:
        self._enter("set_model_tag")
        self._model(name).tags[key] = value

    async def version_datasets(self, *, name: str, version: str) -> list[tuple[str, str]] | None:
        self._enter("version_datasets")
        model = self._model(name)
        if version not in model.versions:
            raise ActionError(f"{name} has no version {version}", code="not_found")
        inputs = model.trained_on.get(version)
        return None if inputs is None else list(inputs)

    def _version(self, name: str, version: str) -> ModelVersionInfo:
        found = self._model(name).versions.get(version)
        if found is None:
            raise ActionError(f"{name} has no version {version}", code="not_found")
        return found

    async def set_version_tag(self, *, name: str, version: str, key: str, value: str) -> None:
        self._enter("set_version_tag")
        found = self._version(name, version)
        tags = {**found.tags, key: value}
        self._model(name).versions[version] = found.model_copy(update={"tags": tags})

    async def delete_version_tag(self, *, name: str, version: str, key: str) -> None:
        self._enter("delete_version_tag")
        found = self._version(name, version)
        if key not in found.tags:
            raise ActionError(f"{name} version {version} has no tag {key}", code="not_found")
        tags = {k: v for k, v in found.tags.items() if k != key}
        self._model(name).versions[version] = found.model_copy(update={"tags": tags})

    async def aliases(self, *, name: str) -> dict[str, str]:
        self._enter("aliases")
        return dict(self._model(name).aliases)

    async def artifacts(
        self, *, name: str, version: str, max_bytes: int, max_files: int
    ) -> VersionArtifacts:
        """The files `files[version]` holds, hashed like the MLflow adapter hashes them."""
        self._enter("artifacts")
        model = self._model(name)
        if version not in model.versions:
            raise ActionError(f"{name} has no version {version}", code="not_found")
        listed = sorted(model.files.get(version, {}).items())
        digests = [
            ArtifactDigest(path=path, size=len(data), note=f"larger than {max_bytes} bytes")
            if len(data) > max_bytes
            else ArtifactDigest(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest())
            for path, data in listed[:max_files]
        ]
        return VersionArtifacts(
            version=version, artifacts=digests, truncated=len(listed) > max_files
        )
