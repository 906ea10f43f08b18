"""Rolling back past poisoned training data on a real MLflow registry: versions come from runs
that logged their datasets (`mlflow.log_input`), and loading `models:/<name>@champion` proves
which version serves. Directly, and `for_each` over several models in a playbook run whose
undo (a false positive) puts every alias back."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from responder.actions import mlflow as mlflow_actions
from responder.actions.mlflow import MlflowRegistry, RollbackModel, SetModelAlias
from responder.actions.ports import Ports
from responder.actions.registry import ActionContext, ActionError
from responder.commands import IncidentCommand
from responder.settings import PlaybookSettings
from tests.support.mlflow_registry import RegistryFixture, add_model, create_registry
from tests.support.runner_kit import Kit, change

pytestmark = pytest.mark.integration


def ctx(reg: RegistryFixture, *, run_id: str = "run-1", step_id: str = "rollback") -> ActionContext:
    return ActionContext(
        run_id=run_id,
        step_id=step_id,
        ports=Ports(models=MlflowRegistry(tracking_uri=reg.tracking_uri)),
    )


@pytest.fixture
def fraud(tmp_path: Path) -> RegistryFixture:
    """fraud-detector v1..v5, v1-v4 scanned clean, @champion -> 5. Trained on: v5 and v4
    transactions (v4 also chargebacks), v3 chargebacks, v2 nothing logged, v1 transactions."""
    return create_registry(
        tmp_path / "mlflow",
        versions=5,
        clean=(1, 2, 3, 4),
        champion=5,
        trained_on={
            5: ["transactions"],
            4: ["transactions", "chargebacks"],
            3: ["chargebacks"],
            2: [],
            1: ["transactions"],
        },
    )


async def test_rollback_skips_versions_trained_on_the_poisoned_data(fraud: RegistryFixture) -> None:
    params = RollbackModel(name=fraud.name, exclude_trained_on=["transactions"])
    out = await mlflow_actions.rollback_model(params, ctx(fraud))
    digest = fraud.digests["transactions"]
    assert (out["from_version"], out["to_version"], out["moved"]) == ("5", "3", True)
    assert out["passed_over"] == [{"version": "4", "reason": f"trained on transactions@{digest}"}]
    assert fraud.predict() == "3"

    undo = SetModelAlias(
        name=fraud.name, alias="champion", version=out["from_version"], expect_current="3"
    )
    await mlflow_actions.set_model_alias(undo, ctx(fraud, step_id="rollback.undo"))
    assert fraud.predict() == "5"


async def test_the_digest_and_the_graph_id_name_the_same_content(fraud: RegistryFixture) -> None:
    digest = fraud.digests["transactions"]
    for n, ref in enumerate((f"transactions@{digest}", f"dataset:transactions@{digest}")):
        out = await mlflow_actions.rollback_model(
            RollbackModel(name=fraud.name, exclude_trained_on=ref), ctx(fraud, run_id=f"r{n}")
        )
        assert out["to_version"] == "3"
        fraud.client().set_registered_model_alias(fraud.name, "champion", "5")
    other = await mlflow_actions.rollback_model(
        RollbackModel(name=fraud.name, exclude_trained_on="transactions@00000000"),
        ctx(fraud, run_id="r3"),
    )
    # No version logged that content: the champion was not trained on it and stays.
    assert (other["to_version"], other["moved"]) == ("5", False)


async def test_a_version_without_a_source_run_has_unknown_lineage(tmp_path: Path) -> None:
    reg = create_registry(
        tmp_path / "mlflow", versions=3, clean=(1, 2), champion=3, trained_on={3: ["transactions"]}
    )
    with pytest.raises(ActionError) as err:
        await mlflow_actions.rollback_model(
            RollbackModel(name=reg.name, exclude_trained_on="transactions"), ctx(reg)
        )
    assert err.value.code == "no_candidate"
    assert reg.alias() == "3"
    out = await mlflow_actions.rollback_model(
        RollbackModel(name=reg.name, exclude_trained_on="transactions", unknown_lineage="allow"),
        ctx(reg),
    )
    assert out["to_version"] == "2"
    assert reg.predict() == "2"


POISONING = """
id: poisoned
title: Roll back every model trained on poisoned data
on: {kind: model_integrity}
guards: {require_evidence: false}  # about lineage, not evidence (tests/integration/test_evidence.py)
steps:
  - id: rollback
    action: mlflow.rollback_model
    for_each: "{{ vars.affected_models }}"
    with:
      name: "{{ item }}"
      exclude_trained_on: transactions
      if_no_target: stay
    undo:
      action: mlflow.set_model_alias
      with:
        name: "{{ steps.rollback.output.name }}"
        alias: "{{ steps.rollback.output.alias }}"
        version: "{{ steps.rollback.output.from_version if steps.rollback.output.moved else none }}"
        expect_current: "{{ steps.rollback.output.to_version }}"
"""


@pytest.fixture
def kit(db: Engine, tmp_path: Path, fraud: RegistryFixture) -> Kit:
    settings = PlaybookSettings(
        lease_s=30,
        vars={"affected_models": ["fraud-detector", "churn-model", "credit-scorer", "no-alias"]},
    )
    return Kit(
        db=db,
        directory=tmp_path / "playbooks",
        settings=settings,
        models=MlflowRegistry(tracking_uri=fraud.tracking_uri),
    )


async def test_for_each_rolls_back_every_model_and_undo_restores_every_alias(
    kit: Kit, fraud: RegistryFixture
) -> None:
    churn = add_model(
        fraud, "churn-model", versions=2, clean=(1,), champion=2,
        trained_on={1: ["chargebacks"], 2: ["transactions"]},
    )  # fmt: skip
    credit = add_model(
        fraud, "credit-scorer", versions=2, clean=(1, 2), champion=2,
        trained_on={1: ["transactions"], 2: ["chargebacks"]},
    )  # fmt: skip
    add_model(fraud, "no-alias", versions=1, clean=(1,), champion=None)
    kit.playbook("poisoned", POISONING)
    [rid] = kit.apply(change(kind="model_integrity"))
    await kit.drive()

    step = kit.steps(rid)["rollback"]
    assert step.status == "completed"
    moved = {o["name"]: (o["from_version"], o["to_version"], o["moved"]) for o in step.output}
    assert moved == {
        "fraud-detector": ("5", "3", True),
        "churn-model": ("2", "1", True),
        "credit-scorer": ("2", "2", False),  # its champion never saw the data
        "no-alias": (None, None, False),
    }
    assert (fraud.predict(), churn.predict(), credit.predict()) == ("3", "1", "2")

    kit.command(IncidentCommand(incident_id="inc-1", status="false_positive", by="carol"))
    await kit.drive()
    step = kit.steps(rid)["rollback"]
    assert step.status == "undone"
    assert [o["to_version"] for o in step.undo_output] == ["5", "2", "2", None]
    assert (fraud.predict(), churn.predict(), credit.predict()) == ("5", "2", "2")
    assert kit.chain_ok()
