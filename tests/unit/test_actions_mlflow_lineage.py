"""`mlflow.rollback_model` with `exclude_trained_on` (poisoned training data) on the fake
registry, dataset references, and hostile parameters."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from responder.actions import mlflow as mlflow_actions
from responder.actions.datasets import DatasetRef, parse_ref, trained_on
from responder.actions.mlflow import MAX_LINEAGE_CHECKS, RollbackModel, SetModelAlias
from responder.actions.ports import Ports
from responder.actions.registry import ActionContext, ActionError
from tests.support.fakes.mlflow import FakeRegistry

POISONED = ("transactions", "8be7b4a3")
OLDER_CUT = ("transactions", "1f2e3d4c")  # the same dataset, another digest
CLEAN = ("chargebacks", "c0ffee00")


def ctx(models: FakeRegistry, *, run_id: str = "run-1", step_id: str = "rollback") -> ActionContext:
    return ActionContext(run_id=run_id, step_id=step_id, ports=Ports(models=models))


@pytest.fixture
def models() -> FakeRegistry:
    """fraud v1..v6, all scanned clean but v6; @champion -> 6.
    v6, v5: trained on the poisoned cut; v4: the older cut of the same dataset; v3: no source
    run; v2: chargebacks only; v1: chargebacks and the older cut."""
    fake = FakeRegistry()
    clean = {"scan": "clean"}
    fake.add_model(
        "fraud",
        versions=6,
        tags={str(v): clean for v in range(1, 6)},
        aliases={"champion": "6"},
        trained_on={
            "6": [POISONED],
            "5": [CLEAN, POISONED],
            "4": [OLDER_CUT],
            "2": [CLEAN],
            "1": [CLEAN, OLDER_CUT],
        },
    )
    return fake


async def rollback(models: FakeRegistry, **params: Any) -> dict[str, Any]:
    out = await mlflow_actions.rollback_model(
        RollbackModel.model_validate({"name": "fraud", **params}), ctx(models)
    )
    return dict(out)


async def test_the_target_is_the_newest_clean_version_not_trained_on_the_data(
    models: FakeRegistry,
) -> None:
    out = await rollback(models, exclude_trained_on="transactions")
    assert (out["from_version"], out["to_version"], out["moved"]) == ("6", "2", True)
    assert out["passed_over"] == [
        {"version": "5", "reason": "trained on transactions@8be7b4a3"},
        {"version": "4", "reason": "trained on transactions@1f2e3d4c"},
        {"version": "3", "reason": "lineage unknown (no readable source run)"},
    ]
    assert models.models["fraud"].aliases["champion"] == "2"


async def test_a_digest_narrows_the_exclusion_to_that_content(models: FakeRegistry) -> None:
    out = await rollback(models, exclude_trained_on=["transactions@8be7b4a3"])
    assert out["to_version"] == "4"  # trained on the older cut only


async def test_the_asset_graph_id_works_too(models: FakeRegistry) -> None:
    out = await rollback(models, exclude_trained_on="dataset:transactions@8be7b4a3")
    assert out["to_version"] == "4"


async def test_unknown_lineage_may_be_allowed(models: FakeRegistry) -> None:
    out = await rollback(models, exclude_trained_on="transactions", unknown_lineage="allow")
    assert out["to_version"] == "3"


async def test_a_current_version_not_trained_on_the_data_stays(models: FakeRegistry) -> None:
    models.models["fraud"].aliases["champion"] = "2"
    out = await rollback(models, exclude_trained_on="transactions")
    assert out["moved"] is False
    assert (out["from_version"], out["to_version"]) == ("2", "2")
    assert "was not trained on transactions" in out["reason"]
    assert models.calls["set_alias"] == 0 and models.calls["set_model_tag"] == 0


async def test_a_current_version_listed_bad_is_rolled_back(models: FakeRegistry) -> None:
    models.models["fraud"].aliases["champion"] = "2"
    models.models["fraud"].versions["1"].tags["scan"] = "clean"
    models.models["fraud"].trained_on["1"] = [CLEAN]
    out = await rollback(models, exclude_trained_on="transactions", bad_versions=["2"])
    assert (out["from_version"], out["to_version"]) == ("2", "1")


async def test_no_candidate_fails_or_stays(models: FakeRegistry) -> None:
    with pytest.raises(ActionError) as err:
        await rollback(models, exclude_trained_on=["transactions", "chargebacks"])
    assert err.value.code == "no_candidate"
    assert "passed over 5 by lineage" in str(err.value)
    out = await rollback(
        models, exclude_trained_on=["transactions", "chargebacks"], if_no_target="stay"
    )
    assert (out["from_version"], out["to_version"], out["moved"]) == ("6", "6", False)
    assert "no last_known_good version of fraud below 6" in out["reason"]
    assert models.calls["set_alias"] == 0


async def test_an_unset_alias_stays_when_asked_to(models: FakeRegistry) -> None:
    out = await rollback(models, alias="canary", exclude_trained_on="x", if_no_target="stay")
    assert (out["from_version"], out["to_version"], out["moved"]) == (None, None, False)
    undo = SetModelAlias(name="fraud", alias="canary", version=None, expect_current=None)
    back = await mlflow_actions.set_model_alias(undo, ctx(models, step_id="undo"))
    assert back["moved"] is False
    assert "canary" not in models.models["fraud"].aliases
    assert models.calls["set_alias"] == 0


async def test_an_explicit_target_must_not_be_trained_on_the_data(models: FakeRegistry) -> None:
    with pytest.raises(ActionError, match="version 5: trained on transactions") as err:
        await rollback(models, to_version="5", exclude_trained_on="transactions")
    assert err.value.code == "no_candidate"
    out = await rollback(models, to_version="2", exclude_trained_on="transactions")
    assert out["to_version"] == "2"


async def test_a_rerun_replays_the_decision_with_what_it_passed_over(
    models: FakeRegistry,
) -> None:
    first = await rollback(models, exclude_trained_on="transactions")
    reads = models.calls["version_datasets"]
    again = await rollback(models, exclude_trained_on="transactions")
    assert again == first
    assert models.calls["version_datasets"] == reads  # decided once
    assert models.calls["set_alias"] == 1
    recorded = json.loads(
        models.models["fraud"].tags[mlflow_actions.rollback_tag("run-1:rollback")]
    )
    assert recorded["passed_over"] == first["passed_over"]


async def test_lineage_reads_are_bounded(models: FakeRegistry) -> None:
    big = FakeRegistry()
    n = MAX_LINEAGE_CHECKS + 30
    big.add_model(
        "big",
        versions=n,
        tags={str(v): {"scan": "clean"} for v in range(1, n + 1)},
        aliases={"champion": str(n)},
        trained_on={str(v): [POISONED] for v in range(1, n + 1)},
    )
    with pytest.raises(ActionError, match=f"checked the newest {MAX_LINEAGE_CHECKS}"):
        await mlflow_actions.rollback_model(
            RollbackModel(name="big", exclude_trained_on=["transactions"]), ctx(big)
        )
    assert big.calls["version_datasets"] == MAX_LINEAGE_CHECKS + 1  # the current, then 50


async def test_without_exclusions_no_lineage_is_read(models: FakeRegistry) -> None:
    out = await rollback(models)
    assert out["to_version"] == "5" and "passed_over" not in out
    assert models.calls["version_datasets"] == 0


# -- dataset references --------------------------------------------------------------------------


def test_dataset_references() -> None:
    assert parse_ref("transactions") == DatasetRef("transactions")
    assert parse_ref("transactions@8be7b4a3") == DatasetRef("transactions", "8be7b4a3")
    assert parse_ref("dataset:my%20data%40v2@8be7b4a3") == DatasetRef("my data@v2", "8be7b4a3")
    assert str(parse_ref(" a@b ")) == "a@b"
    for bad in ("", "@abc", "x@", "x@<b>", "bad\nname", "n" * 300, "dataset:nope"):
        with pytest.raises(ValueError):
            parse_ref(bad)


def test_trained_on_matches_name_and_digest() -> None:
    refs = [parse_ref("a@1"), parse_ref("b")]
    assert trained_on([("a", "2"), ("c", "1")], refs) is None
    assert trained_on([("a", "1")], refs) == (DatasetRef("a", "1"), "a", "1")
    assert trained_on([("b", "anything")], refs) == (DatasetRef("b"), "b", "anything")


# -- hostile parameters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"name": "a/b"},
        {"name": "fraud\n@channel"},
        {"name": "x" * 300},
        {"name": "fraud", "alias": "champion; drop"},
        {"name": "fraud", "alias": "<b>champion</b>"},
        {"name": "fraud", "to_version": "1 OR 1=1"},
        {"name": "fraud", "bad_versions": [str(v) for v in range(10_000)]},
        {"name": "fraud", "exclude_trained_on": ["d"] * 100},
        {"name": "fraud", "exclude_trained_on": ["x@<script>"]},
        {"name": "fraud", "unknown_lineage": "sure"},
        {"name": "fraud", "if_no_target": "ignore"},
    ],
)
def test_hostile_rollback_parameters_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RollbackModel.model_validate(params)


def test_set_model_alias_parameters() -> None:
    assert SetModelAlias.model_validate({"name": "m", "alias": "a", "version": 3}).version == "3"
    for bad in ({"name": "m", "alias": "a"}, {"name": "m", "alias": "a", "version": "x"}):
        with pytest.raises(ValidationError):
            SetModelAlias.model_validate(bad)


def test_playbooks_naming_a_bad_dataset_are_refused_when_they_load() -> None:
    from responder.playbooks.schema import param_issues

    def issues(value: Any) -> list[str]:
        found = param_issues(
            RollbackModel, {"name": "m", "exclude_trained_on": value}, ("with",), "rollback"
        )
        return [message for _, message in found]

    assert issues("transactions") == []
    assert issues(["a@1", "{{ vars.poisoned }}"]) == []
    assert any("digest after @" in m for m in issues("x@<b>"))
    assert any("at most 20" in m for m in issues(["d"] * 21))
