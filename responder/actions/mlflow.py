"""MLflow model registry actions: `mlflow.rollback_model` and its undo `mlflow.set_model_alias`.

Serving follows a registry alias (`models:/name@champion`), so rolling a model back means moving
the alias, nothing else: no artifacts are copied and the undo moves it back.

Moving an alias "to the previous version" is not idempotent by itself: a redelivered step would
roll back one version further. So `mlflow.rollback_model` records its decision in a model tag
named after the step's idempotency key before it moves the alias ("pending") and marks it
"done" after; a retry finishes or replays that decision instead of deciding again.

Poisoned training data: `exclude_trained_on` passes over every version whose source run logged
one of the datasets as an input (`actions.datasets`), and every version whose lineage is unknown
unless `unknown_lineage: allow`; a model whose current version was provably not trained on them
stays where it is. Run `for_each` over the affected models with `if_no_target: stay`, so a model
without a candidate (or without the alias) is reported, not a reason to leave the others.

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import structlog
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from responder.actions.datasets import DatasetRef, parse_ref, trained_on
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
MAX_DATASET_INPUTS = 1000  # a run logging more has a lineage too large to vouch for
MAX_LINEAGE_CHECKS = 50  # candidate versions whose lineage one rollback reads at most
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
                if mv.name == name  # the filter is a string: never trust it alone
            )
            token = getattr(page, "token", None)
            if not token:
                return found

    async def model_tags(self, *, name: str) -> dict[str, str]:
        model = await self._call(self._client.get_registered_model, name=name)
        return dict(model.tags or {})

    async def set_model_tag(self, *, name: str, key: str, value: str) -> None:
        await self._call(self._client.set_registered_model_tag, name=name, key=key, value=value)

    async def set_version_tag(self, *, name: str, version: str, key: str, value: str) -> None:
        await self._call(
            self._client.set_model_version_tag, name=name, version=version, key=key, value=value
        )

    async def delete_version_tag(self, *, name: str, version: str, key: str) -> None:
        await self._call(self._client.delete_model_version_tag, name=name, version=version, key=key)

    async def version_datasets(self, *, name: str, version: str) -> list[tuple[str, str]] | None:
        mv = await self._call(self._client.get_model_version, name=name, version=version)
        run_id = mv.run_id or None
        logged = getattr(mv, "model_id", None)
        try:
            if run_id is None and logged:  # MLflow 3: the logged model knows its source run
                model = await self._call(self._client.get_logged_model, model_id=str(logged))
                run_id = getattr(model, "source_run_id", None) or None
            if run_id is None:
                return None
            run = await self._call(self._client.get_run, run_id=str(run_id))
        except ActionError as exc:
            if exc.code == "not_found":  # the run or logged model is gone: lineage unknown
                return None
            raise
        inputs = getattr(getattr(run, "inputs", None), "dataset_inputs", None) or []
        if len(inputs) > MAX_DATASET_INPUTS:
            return None
        return [(str(di.dataset.name), str(di.dataset.digest)) for di in inputs]

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
    candidates = rollback_candidates(
        versions,
        current=current,
        strategy=strategy,
        clean_tag=clean_tag,
        bad_versions=bad_versions,
    )
    return candidates[0] if candidates else None


def rollback_candidates(
    versions: Iterable[ModelVersionInfo],
    *,
    current: str,
    strategy: Literal["previous", "last_known_good"],
    clean_tag: tuple[str, str],
    bad_versions: Iterable[str] = (),
) -> list[ModelVersionInfo]:
    """Every version `choose_rollback_target` would take, newest first (by number)."""
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
    return sorted(candidates, key=lambda v: _number(v.version), reverse=True)


# What MLflow accepts (names: no `/` or `:`; aliases: letters, digits, `_`, `-`), and no control
# characters: the values come from events and reach logs, tags and Slack.
ModelName = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^/:\x00-\x1f\x7f-\x9f]+$")
]
AliasName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,255}$")]
VersionNumber = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,12}$")]


def _one_or_many(value: Any) -> Any:
    """One reference may be written without the list."""
    return [value] if isinstance(value, str) else value


def _dataset_ref(value: str) -> str:
    parse_ref(value)  # raises ValueError saying what is wrong
    return value


# In the annotation (not a validator method), so playbooks are checked when they load.
DatasetRefs = Annotated[
    list[Annotated[str, AfterValidator(_dataset_ref)]],
    BeforeValidator(_one_or_many),
    Field(max_length=20),
]


class RollbackModel(BaseModel):
    # Templated values may arrive as numbers (`version: 3`); versions are strings in MLflow.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    name: ModelName
    alias: AliasName = "champion"
    strategy: Literal["previous", "last_known_good"] = "last_known_good"
    clean_tag: str = Field(default="scan=clean", pattern=r"^[^=]+=", description="key=value")
    bad_versions: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=list,
        max_length=1000,
        description="versions with open incidents: never a target",
    )
    to_version: VersionNumber | None = Field(default=None, description="explicit target version")
    exclude_trained_on: DatasetRefs = Field(
        default_factory=list,
        description="datasets (name, name@digest or dataset:<id>): never a version trained on them",
    )
    unknown_lineage: Literal["exclude", "allow"] = Field(
        default="exclude",
        description="with exclude_trained_on: whether a version without a source run may serve",
    )
    if_no_target: Literal["fail", "stay"] = Field(
        default="fail",
        description="no candidate or no alias: fail the step, or leave the alias and report it",
    )

    def clean_tag_pair(self) -> tuple[str, str]:
        key, _, value = self.clean_tag.partition("=")
        return key, value

    def dataset_refs(self) -> list[DatasetRef]:
        return [parse_ref(ref) for ref in self.exclude_trained_on]


class SetModelAlias(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    name: ModelName
    alias: AliasName
    version: VersionNumber | None = Field(
        description="null: leave the alias as it is (the undo of a rollback that moved nothing)"
    )
    expect_current: VersionNumber | None = Field(
        default=None, description="refuse (code conflict) if the alias points elsewhere now"
    )


def models_port(ctx: ActionContext) -> ModelRegistryPort:
    """The registry port, or the not_configured error."""
    return configured(ctx.ports.models, "mlflow")


def _output(
    name: str, alias: str, from_version: str | None, to_version: str | None, **extra: Any
) -> dict[str, Any]:
    moved = from_version != to_version
    return {
        "name": name,
        "alias": alias,
        "from_version": from_version,
        "to_version": to_version,
        "moved": moved,
        **extra,
    }


async def _resume(models: ModelRegistryPort, tag: str, record: dict[str, Any]) -> Output:
    """A retry of a step that already decided: replay "done", finish "pending"."""
    state = record.pop("state", "done")
    record.pop("moved", None)
    out = _output(**record)
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
    log.info("mlflow.rollback_replayed", tag=tag, state=state, **_loggable(out))
    return out


def _loggable(out: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in out.items() if k != "passed_over"}


@dataclass(frozen=True)
class _Stay:
    """No move: the reason, and the error code it is when the step must fail."""

    reason: str
    code: str | None  # None: nothing to do, not a failure


@dataclass(frozen=True)
class _Move:
    version: str
    passed_over: list[dict[str, str]] = field(default_factory=list)


class _Lineage:
    """Whether versions were trained on the excluded datasets, read once per version."""

    def __init__(self, models: ModelRegistryPort, params: RollbackModel) -> None:
        self.models = models
        self.name = params.name
        self.refs = params.dataset_refs()
        self.allow_unknown = params.unknown_lineage == "allow"
        self.reads = 0

    async def objection(self, version: str) -> str | None:
        """Why `version` must not serve; None when it may."""
        if not self.refs:
            return None
        self.reads += 1
        inputs = await self.models.version_datasets(name=self.name, version=version)
        if inputs is None:
            return None if self.allow_unknown else "lineage unknown (no readable source run)"
        hit = trained_on(inputs, self.refs)
        if hit is None:
            return None
        _, name, digest = hit
        return f"trained on {name}@{digest}"


async def _choose(
    lineage: _Lineage,
    params: RollbackModel,
    current: str | None,
    versions: list[ModelVersionInfo],
) -> _Move | _Stay:
    """Where the alias goes, or why it stays (pure but for the lineage reads)."""
    if params.to_version is not None:
        if params.to_version in params.bad_versions:
            return _Stay(f"version {params.to_version} is listed as bad", "no_candidate")
        if params.to_version not in {v.version for v in versions}:
            return _Stay(f"model {params.name} has no version {params.to_version}", "not_found")
        objection = await lineage.objection(params.to_version)
        if objection is not None:
            return _Stay(f"version {params.to_version}: {objection}", "no_candidate")
        return _Move(params.to_version)
    if current is None:
        return _Stay(
            f"{params.name}@{params.alias} is not set: nothing to roll back from", "not_found"
        )
    innocent = lineage.refs and current not in params.bad_versions
    if innocent and await lineage.objection(current) is None:
        datasets = ", ".join(str(r) for r in lineage.refs)
        return _Stay(f"version {current} was not trained on {datasets}", None)
    passed_over: list[dict[str, str]] = []
    candidates = rollback_candidates(
        versions,
        current=current,
        strategy=params.strategy,
        clean_tag=params.clean_tag_pair(),
        bad_versions=params.bad_versions,
    )
    for candidate in candidates[:MAX_LINEAGE_CHECKS]:
        objection = await lineage.objection(candidate.version)
        if objection is None:
            return _Move(candidate.version, passed_over)
        passed_over.append({"version": candidate.version, "reason": objection})
    checked = f"; passed over {len(passed_over)} by lineage" if passed_over else ""
    if len(candidates) > MAX_LINEAGE_CHECKS:
        checked += f" (checked the newest {MAX_LINEAGE_CHECKS})"
    return _Stay(
        f"no {params.strategy} version of {params.name} below {current} "
        f"(bad: {sorted(params.bad_versions)}, clean tag {params.clean_tag}{checked})",
        "no_candidate",
    )


@action("mlflow.rollback_model", params=RollbackModel)
async def rollback_model(params: RollbackModel, ctx: ActionContext) -> Output:
    """Move a model's alias back to an earlier good version (undo: mlflow.set_model_alias)."""
    models = models_port(ctx)
    tag = rollback_tag(ctx.idempotency_key)
    recorded = (await models.model_tags(name=params.name)).get(tag)
    if recorded is not None:
        return await _resume(models, tag, json.loads(recorded))

    current = await models.alias_version(name=params.name, alias=params.alias)
    versions = await models.versions(name=params.name)
    lineage = _Lineage(models, params)
    chosen = await _choose(lineage, params, current, versions)
    extra: dict[str, Any] = {}
    if isinstance(chosen, _Stay):
        if chosen.code is not None and params.if_no_target == "fail":
            raise ActionError(chosen.reason, code=chosen.code)
        out = _output(params.name, params.alias, current, current, reason=chosen.reason)
        log.warning("mlflow.rollback_stayed", run_id=ctx.run_id, step_id=ctx.step_id, **out)
        return out
    if lineage.refs:
        extra["passed_over"] = chosen.passed_over
    out = _output(params.name, params.alias, current, chosen.version, **extra)
    if not out["moved"]:  # an explicit target the alias already points at
        return out
    await models.set_model_tag(
        name=params.name, key=tag, value=json.dumps({**out, "state": "pending"})
    )
    await models.set_alias(name=params.name, alias=params.alias, version=chosen.version)
    await models.set_model_tag(name=params.name, key=tag, value=json.dumps(out))
    log.info(
        "mlflow.rollback",
        run_id=ctx.run_id,
        step_id=ctx.step_id,
        lineage_reads=lineage.reads,
        **_loggable(out),
    )
    return out


@action("mlflow.set_model_alias", params=SetModelAlias)
async def set_model_alias(params: SetModelAlias, ctx: ActionContext) -> Output:
    """Point a model alias at a version; the undo of mlflow.rollback_model."""
    models = models_port(ctx)
    if params.version is None:  # the rollback moved nothing: nothing to put back
        out = _output(params.name, params.alias, params.expect_current, params.expect_current)
        log.info("mlflow.set_model_alias_skipped", run_id=ctx.run_id, step_id=ctx.step_id, **out)
        return out
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
