"""MLflow model registry actions: `mlflow.rollback_model` and its undo `mlflow.set_model_alias`.

Serving follows a registry alias (`models:/name@champion`), so rolling a model back means moving
the alias, nothing else: no artifacts are copied and the undo moves it back.

Moving an alias "to the previous version" is not idempotent by itself: a redelivered step would
roll back one version further. So `mlflow.rollback_model` records its decision in a model tag
named after the step's idempotency key before it moves the alias ("pending") and marks it
"done" after; a retry finishes or replays that decision instead of deciding again.

The `mlflow` package (~1 GB) is the optional extra `responder[mlflow]`; it is imported only
when `MlflowRegistry` is built.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import tempfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import structlog
from pydantic import BaseModel, ConfigDict, Field

from responder.actions.ports import (
    ArtifactDigest,
    DatasetDigest,
    ModelRegistryPort,
    ModelVersionInfo,
    VersionArtifacts,
)
from responder.actions.registry import ActionContext, ActionError, Output, action, configured

if TYPE_CHECKING:
    from responder.settings import MlflowSettings

log = structlog.get_logger(__name__)
T = TypeVar("T")

ROLLBACK_TAG_PREFIX = "responder.rollback."
# MLflow error codes after which the same request may succeed later.
_RETRYABLE = frozenset({"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"})


class MlflowRegistry:
    """`ModelRegistryPort` over `mlflow.tracking.MlflowClient` (sqlite, SQL or REST registry)."""

    def __init__(self, *, tracking_uri: str, registry_uri: str | None = None) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise RuntimeError(
                "MLflow support is not installed: install responder[mlflow]"
            ) from exc
        self._client: Any = MlflowClient(
            tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri
        )

    @classmethod
    def from_settings(cls, settings: MlflowSettings) -> MlflowRegistry:
        if settings.tracking_uri is None:
            raise ValueError("mlflow.tracking_uri is not set")
        return cls(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)

    async def _call(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(fn, **kwargs)
        except Exception as exc:
            raise translate_error(exc) from exc

    async def alias_version(self, *, name: str, alias: str) -> str | None:
        # The model's alias map tells "no such alias" (None) apart from "no such model" (raises).
        model = await self._call(self._client.get_registered_model, name=name)
        version = model.aliases.get(alias)
        return None if version is None else str(version)

    async def set_alias(self, *, name: str, alias: str, version: str) -> None:
        await self._call(
            self._client.set_registered_model_alias, name=name, alias=alias, version=version
        )

    async def versions(self, *, name: str) -> list[ModelVersionInfo]:
        quote = '"' if "'" in name else "'"
        found: list[ModelVersionInfo] = []
        token: str | None = None
        while True:
            page = await self._call(
                self._client.search_model_versions,
                filter_string=f"name={quote}{name}{quote}",
                max_results=1000,
                page_token=token,
            )
            found.extend(
                ModelVersionInfo(
                    version=str(mv.version),
                    tags=dict(mv.tags or {}),
                    created_at=datetime.fromtimestamp((mv.creation_timestamp or 0) / 1000, UTC),
                )
                for mv in page
            )
            token = getattr(page, "token", None)
            if not token:
                return found

    async def model_tags(self, *, name: str) -> dict[str, str]:
        model = await self._call(self._client.get_registered_model, name=name)
        return dict(model.tags or {})

    async def set_model_tag(self, *, name: str, key: str, value: str) -> None:
        await self._call(self._client.set_registered_model_tag, name=name, key=key, value=value)

    async def aliases(self, *, name: str) -> dict[str, str]:
        model = await self._call(self._client.get_registered_model, name=name)
        return {str(alias): str(version) for alias, version in (model.aliases or {}).items()}

    async def artifacts(
        self, *, name: str, version: str, max_bytes: int, max_files: int
    ) -> VersionArtifacts:
        return await self._call(
            self._artifacts, name=name, version=version, max_bytes=max_bytes, max_files=max_files
        )

    def _artifacts(
        self, *, name: str, version: str, max_bytes: int, max_files: int
    ) -> VersionArtifacts:
        """Walk the version's artifact repository and hash each file in a temporary copy (one
        at a time, so disk use stays at the largest file); datasets come from its run."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        mv = self._client.get_model_version(name=name, version=version)
        uri = self._client.get_model_version_download_uri(name=name, version=version)
        repo = get_artifact_repository(uri)
        files, truncated = _list_files(repo, max_files)
        digests = [_digest(repo, path, size, max_bytes) for path, size in files]
        datasets: list[DatasetDigest] = []
        if mv.run_id:
            run = self._client.get_run(mv.run_id)
            for given in run.inputs.dataset_inputs or []:
                tags = {t.key: t.value for t in given.tags or []}
                datasets.append(
                    DatasetDigest(
                        name=str(given.dataset.name),
                        digest=str(given.dataset.digest),
                        source_type=given.dataset.source_type,
                        source=given.dataset.source,
                        context=tags.get("mlflow.data.context"),
                    )
                )
        return VersionArtifacts(
            version=str(mv.version),
            source=mv.source,
            run_id=mv.run_id,
            artifacts=digests,
            datasets=datasets,
            truncated=truncated,
        )


def _safe_path(path: str) -> bool:
    """A relative path inside the repository (a registry entry may be hostile: no `..`)."""
    parts = PurePosixPath(path).parts
    return bool(parts) and not PurePosixPath(path).is_absolute() and ".." not in parts


def _list_files(repo: Any, max_files: int) -> tuple[list[tuple[str, int | None]], bool]:
    """Every file below the repository root, breadth first, at most `max_files`."""
    found: list[tuple[str, int | None]] = []
    pending: list[str | None] = [None]
    while pending:
        directory = pending.pop(0)
        for info in repo.list_artifacts(directory):
            if info.is_dir:
                pending.append(info.path)
            elif len(found) >= max_files:
                return found, True
            else:
                found.append((str(info.path), info.file_size))
    return sorted(found), False


def _digest(repo: Any, path: str, size: int | None, max_bytes: int) -> ArtifactDigest:
    if not _safe_path(path):
        return ArtifactDigest(path=path, size=size, note="unsafe path: not downloaded")
    if size is not None and size > max_bytes:
        return ArtifactDigest(path=path, size=size, note=f"larger than {max_bytes} bytes")
    with tempfile.TemporaryDirectory(prefix="responder-artifact-") as tmp:
        local = Path(repo.download_artifacts(path, tmp))
        digest = hashlib.sha256()
        with local.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return ArtifactDigest(path=path, size=local.stat().st_size, sha256=digest.hexdigest())


def translate_error(exc: Exception) -> ActionError:
    """MlflowException codes → not_found / retryable; connection failures are retryable."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        code = str(exc.error_code)
        if code == "RESOURCE_DOES_NOT_EXIST":
            return ActionError(f"mlflow: {exc.message}", code="not_found")
        return ActionError(f"mlflow: {code}: {exc.message}", retryable=code in _RETRYABLE)
    if isinstance(exc, ConnectionError | TimeoutError):
        return ActionError(f"mlflow unreachable: {exc}", code="unavailable", retryable=True)
    return ActionError(f"mlflow: {type(exc).__name__}: {exc}")


def rollback_tag(idempotency_key: str) -> str:
    """A registry tag key for this step: MLflow allows `[A-Za-z0-9_.-/ ]` (no `:` on Windows);
    a lossy rewrite gets a hash of the original so two steps never share a tag."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", idempotency_key)
    if safe != idempotency_key or len(safe) > 200:
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:12]
        safe = f"{safe[:180]}-{digest}"
    return ROLLBACK_TAG_PREFIX + safe


def _number(version: str) -> int:
    try:
        return int(version)
    except ValueError:
        raise ActionError(f"model version {version!r} is not a number", code="invalid") from None


def choose_rollback_target(
    versions: Iterable[ModelVersionInfo],
    *,
    current: str,
    strategy: Literal["previous", "last_known_good"],
    clean_tag: tuple[str, str],
    bad_versions: Iterable[str] = (),
) -> ModelVersionInfo | None:
    """The version to roll back to: the newest one below `current` that is not known bad, and
    for `last_known_good` also carries the clean tag. None when there is no such version."""
    bad = {str(v) for v in bad_versions}
    below = _number(current)
    key, value = clean_tag
    candidates = [
        v
        for v in versions
        if _number(v.version) < below
        and v.version not in bad
        and (strategy == "previous" or v.tags.get(key) == value)
    ]
    return max(candidates, key=lambda v: _number(v.version), default=None)


class RollbackModel(BaseModel):
    # Templated values may arrive as numbers (`version: 3`); versions are strings in MLflow.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    name: str = Field(min_length=1)
    alias: str = Field(default="champion", min_length=1)
    strategy: Literal["previous", "last_known_good"] = "last_known_good"
    clean_tag: str = Field(default="scan=clean", pattern=r"^[^=]+=", description="key=value")
    bad_versions: list[str] = Field(
        default_factory=list, description="versions with open incidents: never a target"
    )
    to_version: str | None = Field(default=None, description="explicit target version")

    def clean_tag_pair(self) -> tuple[str, str]:
        key, _, value = self.clean_tag.partition("=")
        return key, value


class SetModelAlias(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    name: str = Field(min_length=1)
    alias: str = Field(min_length=1)
    version: str = Field(min_length=1)
    expect_current: str | None = Field(
        default=None, description="refuse (code conflict) if the alias points elsewhere now"
    )


def _models(ctx: ActionContext) -> ModelRegistryPort:
    return configured(ctx.ports.models, "mlflow")


def _output(name: str, alias: str, from_version: str | None, to_version: str) -> dict[str, Any]:
    return {"name": name, "alias": alias, "from_version": from_version, "to_version": to_version}


async def _resume(models: ModelRegistryPort, tag: str, record: dict[str, Any]) -> Output:
    """A retry of a step that already decided: replay "done", finish "pending"."""
    state = record.pop("state", "done")
    out = _output(record["name"], record["alias"], record["from_version"], record["to_version"])
    if state == "pending":
        current = await models.alias_version(name=out["name"], alias=out["alias"])
        if current == out["from_version"]:
            await models.set_alias(name=out["name"], alias=out["alias"], version=out["to_version"])
        elif current != out["to_version"]:
            raise ActionError(
                f"{out['name']}@{out['alias']} moved to {current} while this rollback was "
                f"interrupted (planned {out['from_version']} -> {out['to_version']})",
                code="conflict",
            )
        await models.set_model_tag(name=out["name"], key=tag, value=json.dumps(out))
    log.info("mlflow.rollback_replayed", tag=tag, state=state, **out)
    return out


@action("mlflow.rollback_model", params=RollbackModel)
async def rollback_model(params: RollbackModel, ctx: ActionContext) -> Output:
    """Move a model's alias back to an earlier good version (undo: mlflow.set_model_alias)."""
    models = _models(ctx)
    tag = rollback_tag(ctx.idempotency_key)
    recorded = (await models.model_tags(name=params.name)).get(tag)
    if recorded is not None:
        return await _resume(models, tag, json.loads(recorded))

    current = await models.alias_version(name=params.name, alias=params.alias)
    versions = await models.versions(name=params.name)
    if params.to_version is not None:
        if params.to_version in params.bad_versions:
            raise ActionError(f"version {params.to_version} is listed as bad", code="no_candidate")
        if params.to_version not in {v.version for v in versions}:
            raise ActionError(
                f"model {params.name} has no version {params.to_version}", code="not_found"
            )
        target = params.to_version
    else:
        if current is None:
            raise ActionError(
                f"{params.name}@{params.alias} is not set: nothing to roll back from",
                code="not_found",
            )
        chosen = choose_rollback_target(
            versions,
            current=current,
            strategy=params.strategy,
            clean_tag=params.clean_tag_pair(),
            bad_versions=params.bad_versions,
        )
        if chosen is None:
            raise ActionError(
                f"no {params.strategy} version of {params.name} below {current} "
                f"(bad: {sorted(params.bad_versions)}, clean tag {params.clean_tag})",
                code="no_candidate",
            )
        target = chosen.version

    out = _output(params.name, params.alias, current, target)
    await models.set_model_tag(
        name=params.name, key=tag, value=json.dumps({**out, "state": "pending"})
    )
    await models.set_alias(name=params.name, alias=params.alias, version=target)
    await models.set_model_tag(name=params.name, key=tag, value=json.dumps(out))
    log.info("mlflow.rollback", run_id=ctx.run_id, step_id=ctx.step_id, **out)
    return out


@action("mlflow.set_model_alias", params=SetModelAlias)
async def set_model_alias(params: SetModelAlias, ctx: ActionContext) -> Output:
    """Point a model alias at a version; the undo of mlflow.rollback_model."""
    models = _models(ctx)
    current = await models.alias_version(name=params.name, alias=params.alias)
    if current != params.version:  # already there: a retry, or nothing to do
        if params.expect_current is not None and current != params.expect_current:
            raise ActionError(
                f"{params.name}@{params.alias} is {current}, expected {params.expect_current}: "
                "someone moved it since",
                code="conflict",
            )
        await models.set_alias(name=params.name, alias=params.alias, version=params.version)
    out = _output(params.name, params.alias, current, params.version)
    log.info("mlflow.set_model_alias", run_id=ctx.run_id, step_id=ctx.step_id, **out)
    return out
