"""Quarantining poisoned training data: `mlflow.quarantine_versions` (undo:
`mlflow.unquarantine_versions`).

MLflow cannot tag the datasets runs log with `mlflow.log_input` (its dataset tags belong to the
GenAI evaluation datasets, another entity), so the quarantine is marked where it matters: on
every version of a model whose source run logged the dataset, as the version tag
`quarantine=<dataset>`. The release check of a moved alias (`assets.release`) fails a
quarantined version, and `mlflow.rollback_model` with `exclude_trained_on` never picks one.

Each step records exactly the versions it tagged (not those that carried the same tag before),
and the undo removes the tag from those only, and only where it still holds the value the step
set. Versions of unknown lineage (no readable source run) are listed, not tagged: nothing says
they saw the data. At most `MAX_VERSIONS` versions per model are read, newest first.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import structlog
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from responder.actions.datasets import parse_ref, trained_on
from responder.actions.mlflow import ModelName, VersionNumber, models_port
from responder.actions.registry import ActionContext, ActionError, Output, action
from responder.assets.release import QUARANTINE_TAG

log = structlog.get_logger(__name__)

MAX_VERSIONS: Final = 200


def _dataset_ref(value: str) -> str:
    return str(parse_ref(value))  # canonical: name or name@digest


TagKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,250}$")]


class QuarantineVersions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ModelName
    dataset: Annotated[str, AfterValidator(_dataset_ref)] = Field(
        description="name, name@digest or dataset:<id>; the tag's value"
    )
    tag: TagKey = QUARANTINE_TAG


class UnquarantineVersions(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    name: ModelName
    versions: list[VersionNumber] = Field(max_length=MAX_VERSIONS)
    dataset: Annotated[str, AfterValidator(_dataset_ref)] = Field(
        description="the value the tag must still hold to be removed"
    )
    tag: TagKey = QUARANTINE_TAG


def _number(version: str) -> int:
    return int(version) if version.isdigit() else -1


@action("mlflow.quarantine_versions", params=QuarantineVersions)
async def quarantine_versions(params: QuarantineVersions, ctx: ActionContext) -> Output:
    """Tag a model's versions trained on a dataset `quarantine=<dataset>` (undo: unquarantine)."""
    models = models_port(ctx)
    ref = parse_ref(params.dataset)
    versions = sorted(
        await models.versions(name=params.name), key=lambda v: _number(v.version), reverse=True
    )
    tagged: list[str] = []
    already: list[str] = []
    unknown: list[str] = []
    for info in versions[:MAX_VERSIONS]:
        inputs = await models.version_datasets(name=params.name, version=info.version)
        if inputs is None:
            unknown.append(info.version)
            continue
        if trained_on(inputs, [ref]) is None:
            continue
        if info.tags.get(params.tag) == params.dataset:
            already.append(info.version)
            continue
        await models.set_version_tag(
            name=params.name, version=info.version, key=params.tag, value=params.dataset
        )
        tagged.append(info.version)
    out: dict[str, Any] = {
        "name": params.name,
        "dataset": params.dataset,
        "tag": params.tag,
        "tagged": tagged,
        "already_tagged": already,
        "unknown_lineage": unknown,
        "truncated": len(versions) > MAX_VERSIONS,
    }
    log.info(
        "mlflow.quarantine_versions",
        run_id=ctx.run_id,
        step_id=ctx.step_id,
        name=params.name,
        dataset=params.dataset,
        tagged=len(tagged),
        already_tagged=len(already),
        unknown_lineage=len(unknown),
        truncated=out["truncated"],
    )
    return out


@action("mlflow.unquarantine_versions", params=UnquarantineVersions)
async def unquarantine_versions(params: UnquarantineVersions, ctx: ActionContext) -> Output:
    """Remove the quarantine tag a quarantine step set: the undo of quarantine_versions."""
    models = models_port(ctx)
    tags = {v.version: v.tags for v in await models.versions(name=params.name)}
    removed: list[str] = []
    left: list[str] = []  # the tag holds another value now: someone else's quarantine
    absent: list[str] = []
    for version in dict.fromkeys(params.versions):
        value = tags.get(version, {}).get(params.tag)
        if value is None:
            absent.append(version)
            continue
        if value != params.dataset:
            left.append(version)
            continue
        try:
            await models.delete_version_tag(name=params.name, version=version, key=params.tag)
        except ActionError as exc:
            if exc.code != "not_found":
                raise
            absent.append(version)
            continue
        removed.append(version)
    log.info(
        "mlflow.unquarantine_versions",
        run_id=ctx.run_id,
        step_id=ctx.step_id,
        name=params.name,
        removed=len(removed),
        left=len(left),
        absent=len(absent),
    )
    return {
        "name": params.name,
        "tag": params.tag,
        "removed": removed,
        "left": left,
        "absent": absent,
    }
