"""`mlflow.quarantine_versions` and its undo against the fake registry."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from responder.actions import quarantine as Q
from responder.actions.ports import Ports
from responder.actions.quarantine import QuarantineVersions, UnquarantineVersions
from responder.actions.registry import REGISTRY, ActionContext, ActionError
from tests.support.fakes.mlflow import FakeRegistry

POISONED = ("transactions", "8be7b4a3")
CLEAN = ("chargebacks", "c0ffee00")


def ctx(models: FakeRegistry, step_id: str = "quarantine") -> ActionContext:
    return ActionContext(run_id="run-1", step_id=step_id, ports=Ports(models=models))


@pytest.fixture
def models() -> FakeRegistry:
    """fraud v1..v4: v4 and v2 trained on the poisoned cut, v3 on clean data, v1 no run."""
    fake = FakeRegistry()
    fake.add_model(
        "fraud",
        versions=4,
        trained_on={"4": [CLEAN, POISONED], "3": [CLEAN], "2": [POISONED]},
    )
    return fake


def tags(models: FakeRegistry, version: str) -> dict[str, str]:
    return dict(models.models["fraud"].versions[version].tags)


async def quarantine(models: FakeRegistry, **params: Any) -> dict[str, Any]:
    out = await Q.quarantine_versions(
        QuarantineVersions.model_validate({"name": "fraud", **params}), ctx(models)
    )
    return dict(out)


def test_actions_are_registered() -> None:
    for name in ("mlflow.quarantine_versions", "mlflow.unquarantine_versions"):
        assert name in REGISTRY and REGISTRY.get(name).side_effect


async def test_versions_trained_on_the_data_are_tagged_once(models: FakeRegistry) -> None:
    out = await quarantine(models, dataset="dataset:transactions@8be7b4a3")
    assert out == {
        "name": "fraud",
        "dataset": "transactions@8be7b4a3",
        "tag": "quarantine",
        "tagged": ["4", "2"],
        "already_tagged": [],
        "unknown_lineage": ["1"],
        "truncated": False,
    }
    assert tags(models, "4") == {"quarantine": "transactions@8be7b4a3"}
    assert tags(models, "3") == {} and tags(models, "1") == {}
    again = await quarantine(models, dataset="transactions@8be7b4a3")
    assert (again["tagged"], again["already_tagged"]) == ([], ["4", "2"])
    assert models.calls["set_version_tag"] == 2


async def test_a_name_without_digest_takes_every_cut(models: FakeRegistry) -> None:
    models.models["fraud"].trained_on["3"] = [("transactions", "older")]
    out = await quarantine(models, dataset="transactions")
    assert out["tagged"] == ["4", "3", "2"]


async def test_undo_removes_only_what_the_step_set(models: FakeRegistry) -> None:
    out = await quarantine(models, dataset="transactions@8be7b4a3")
    # v2 got someone else's quarantine since; v3 never had ours
    await models.set_version_tag(name="fraud", version="2", key="quarantine", value="other")
    undo = UnquarantineVersions(
        name="fraud", versions=[*out["tagged"], "3"], dataset=out["dataset"], tag=out["tag"]
    )
    back = await Q.unquarantine_versions(undo, ctx(models, "quarantine.undo"))
    assert back == {
        "name": "fraud",
        "tag": "quarantine",
        "removed": ["4"],
        "left": ["2"],
        "absent": ["3"],
    }
    assert tags(models, "4") == {} and tags(models, "2") == {"quarantine": "other"}


async def test_an_unknown_model_is_not_found(models: FakeRegistry) -> None:
    with pytest.raises(ActionError) as err:
        await Q.quarantine_versions(
            QuarantineVersions(name="nope", dataset="transactions"), ctx(models)
        )
    assert err.value.code == "not_found"


@pytest.mark.parametrize(
    "params",
    [
        {"name": "fraud", "dataset": "x@<script>"},
        {"name": "fraud", "dataset": ""},
        {"name": "fraud", "dataset": "transactions", "tag": "bad tag!"},
        {"name": "a:b", "dataset": "transactions"},
    ],
)
def test_hostile_quarantine_parameters_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        QuarantineVersions.model_validate(params)


def test_hostile_unquarantine_parameters_are_refused() -> None:
    base = {"name": "fraud", "dataset": "transactions"}
    for bad in ({"versions": ["1; drop"]}, {"versions": [str(v) for v in range(500)]}):
        with pytest.raises(ValidationError):
            UnquarantineVersions.model_validate({**base, **bad})
    ok = UnquarantineVersions.model_validate({**base, "versions": [3, "4"]})
    assert ok.versions == ["3", "4"]
