"""The IAM key and MLflow registry actions against in-memory fakes of their ports."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from pydantic import SecretStr, ValidationError

from responder.actions import aws_iam
from responder.actions import mlflow as mlflow_actions
from responder.actions.aws_iam import AccessKeyParams, Boto3Iam
from responder.actions.mlflow import (
    RollbackModel,
    SetModelAlias,
    choose_rollback_target,
    rollback_tag,
)
from responder.actions.ports import ModelVersionInfo, Ports
from responder.actions.registry import REGISTRY, ActionContext, ActionError
from tests.support.fakes.aws import FakeIam
from tests.support.fakes.mlflow import FakeRegistry

KEY = "AKIAEXAMPLELEAKED01"


def ctx(ports: Ports, *, run_id: str = "run-1", step_id: str = "contain") -> ActionContext:
    return ActionContext(run_id=run_id, step_id=step_id, ports=ports)


def test_actions_are_registered_with_their_names() -> None:
    for name in (
        "aws.iam.deactivate_access_key",
        "aws.iam.activate_access_key",
        "aws.iam.delete_access_key",
        "mlflow.rollback_model",
        "mlflow.set_model_alias",
    ):
        assert name in REGISTRY
        assert REGISTRY.get(name).side_effect


# -- AWS IAM -------------------------------------------------------------------------------------


@pytest.fixture
def iam() -> FakeIam:
    fake = FakeIam()
    fake.add_key(KEY, user_name="ci-bot")
    return fake


async def test_deactivate_reports_previous_status_and_resolves_the_owner(iam: FakeIam) -> None:
    out = await aws_iam.deactivate_access_key(
        AccessKeyParams(access_key_id=KEY), ctx(Ports(iam=iam))
    )
    assert out == {
        "user_name": "ci-bot",
        "access_key_id": KEY,
        "previous_status": "Active",
        "status": "Inactive",
    }
    assert iam.keys[KEY].status == "Inactive"
    assert iam.calls["set_access_key_status"] == 1


async def test_deactivating_an_inactive_key_changes_nothing(iam: FakeIam) -> None:
    iam.add_key(KEY, user_name="ci-bot", status="Inactive")
    out = await aws_iam.deactivate_access_key(
        AccessKeyParams(access_key_id=KEY, user_name="ci-bot"), ctx(Ports(iam=iam))
    )
    assert out["previous_status"] == "Inactive"
    assert out["status"] == "Inactive"
    assert iam.calls["set_access_key_status"] == 0


async def test_activate_is_the_undo_of_deactivate(iam: FakeIam) -> None:
    params = AccessKeyParams(access_key_id=KEY)
    await aws_iam.deactivate_access_key(params, ctx(Ports(iam=iam)))
    out = await aws_iam.activate_access_key(params, ctx(Ports(iam=iam), step_id="undo"))
    assert out["previous_status"] == "Inactive"
    assert out["status"] == "Active"
    assert iam.keys[KEY].status == "Active"


async def test_delete_removes_the_key(iam: FakeIam) -> None:
    params = aws_iam.DeleteKeyParams(access_key_id=KEY)
    out = await aws_iam.delete_access_key(params, ctx(Ports(iam=iam)))
    assert out == {"user_name": "ci-bot", "access_key_id": KEY, "deleted": True}
    assert KEY not in iam.keys
    # a resumed run repeats the step: the key is gone, which is what the step asked for
    again = await aws_iam.delete_access_key(params, ctx(Ports(iam=iam)))
    assert again["already_gone"] is True and iam.calls["delete_access_key"] == 1
    strict = aws_iam.DeleteKeyParams(access_key_id=KEY, missing_ok=False)
    with pytest.raises(ActionError) as err:
        await aws_iam.delete_access_key(strict, ctx(Ports(iam=iam)))
    assert err.value.code == "not_found"


async def test_unknown_key_or_wrong_owner_is_not_found(iam: FakeIam) -> None:
    with pytest.raises(ActionError) as err:
        await aws_iam.deactivate_access_key(
            AccessKeyParams(access_key_id=KEY, user_name="someone-else"), ctx(Ports(iam=iam))
        )
    assert err.value.code == "not_found"
    assert not err.value.retryable
    assert iam.calls["set_access_key_status"] == 0


async def test_iam_actions_need_aws_configured() -> None:
    with pytest.raises(ActionError, match="aws is not configured"):
        await aws_iam.deactivate_access_key(AccessKeyParams(access_key_id=KEY), ctx(Ports()))


def test_access_key_params_are_strict() -> None:
    with pytest.raises(ValidationError):
        AccessKeyParams.model_validate({"access_key_id": KEY, "user": "x"})
    with pytest.raises(ValidationError):
        AccessKeyParams(access_key_id="AKIA/../etc")


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "UpdateAccessKey",
    )


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (client_error("NoSuchEntity", 404), "not_found", False),
        (client_error("Throttling", 400), "unavailable", True),
        (client_error("ServiceFailure", 500), "unavailable", True),
        (client_error("AccessDenied", 403), "forbidden", False),
        (client_error("ValidationError", 400), "aws_error", False),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), "unavailable", True),
    ],
)
def test_boto_errors_map_to_retryable_or_final(exc: Exception, code: str, retryable: bool) -> None:
    err = aws_iam.translate_error(exc, operation="update_access_key")
    assert (err.code, err.retryable) == (code, retryable)


def test_boto3_adapter_never_shows_its_secret() -> None:
    adapter = Boto3Iam(
        endpoint_url="http://127.0.0.1:1",
        access_key_id=SecretStr("AKIDSECRETID"),
        secret_access_key=SecretStr("very-secret-value"),
    )
    assert "very-secret-value" not in repr(adapter)
    assert "AKIDSECRETID" not in repr(adapter)


# -- MLflow: choosing the target ------------------------------------------------------------------


def versions(clean: set[int], n: int = 5) -> list[ModelVersionInfo]:
    return [
        ModelVersionInfo(
            version=str(v),
            tags={"scan": "clean"} if v in clean else {"scan": "failed"},
            created_at=datetime(2026, 1, v, tzinfo=UTC),
        )
        for v in range(1, n + 1)
    ]


@pytest.mark.parametrize(
    ("strategy", "clean", "current", "bad", "expected"),
    [
        ("previous", set(), "5", [], "4"),
        ("previous", set(), "5", ["4", "3"], "2"),
        ("previous", set(), "1", [], None),
        ("last_known_good", {1, 3}, "5", [], "3"),
        ("last_known_good", {1, 3}, "5", ["3"], "1"),
        ("last_known_good", {1, 3}, "3", [], "1"),  # never the current version itself
        ("last_known_good", {5}, "5", [], None),
        ("last_known_good", {9, 10}, "11", [], "10"),  # numeric, not string, order
    ],
)
def test_choose_rollback_target(
    strategy: str, clean: set[int], current: str, bad: list[str], expected: str | None
) -> None:
    n = max(int(current), 5)
    chosen = choose_rollback_target(
        versions(clean, n),
        current=current,
        strategy=strategy,  # type: ignore[arg-type]
        clean_tag=("scan", "clean"),
        bad_versions=bad,
    )
    assert (chosen.version if chosen else None) == expected


# -- MLflow: the actions ------------------------------------------------------------------------


@pytest.fixture
def models() -> FakeRegistry:
    fake = FakeRegistry()
    fake.add_model(
        "fraud",
        versions=4,
        tags={"1": {"scan": "clean"}, "2": {"scan": "clean"}},
        aliases={"champion": "4"},
    )
    return fake


async def test_rollback_moves_the_alias_to_the_last_known_good(models: FakeRegistry) -> None:
    out = await mlflow_actions.rollback_model(
        RollbackModel(name="fraud", bad_versions=["2"]), ctx(Ports(models=models))
    )
    assert out == {
        "name": "fraud",
        "alias": "champion",
        "from_version": "4",
        "to_version": "1",
        "moved": True,
    }
    assert models.models["fraud"].aliases["champion"] == "1"


async def test_rollback_previous_skips_bad_versions(models: FakeRegistry) -> None:
    out = await mlflow_actions.rollback_model(
        RollbackModel(name="fraud", strategy="previous", bad_versions=[3]),
        ctx(Ports(models=models)),
    )
    assert out["to_version"] == "2"


async def test_rollback_without_candidate_fails_and_moves_nothing(models: FakeRegistry) -> None:
    with pytest.raises(ActionError) as err:
        await mlflow_actions.rollback_model(
            RollbackModel(name="fraud", bad_versions=["1", "2"]), ctx(Ports(models=models))
        )
    assert err.value.code == "no_candidate"
    assert models.calls["set_alias"] == 0
    assert models.models["fraud"].aliases["champion"] == "4"


async def test_rollback_is_idempotent_per_step(models: FakeRegistry) -> None:
    params = RollbackModel(name="fraud", strategy="previous")
    first = await mlflow_actions.rollback_model(params, ctx(Ports(models=models)))
    again = await mlflow_actions.rollback_model(params, ctx(Ports(models=models)))
    assert (
        first
        == again
        == {
            "name": "fraud",
            "alias": "champion",
            "from_version": "4",
            "to_version": "3",
            "moved": True,
        }
    )
    assert models.calls["set_alias"] == 1
    assert models.models["fraud"].aliases["champion"] == "3"
    # Another run's step decides afresh: this is what the recorded tag prevents above.
    other = await mlflow_actions.rollback_model(params, ctx(Ports(models=models), run_id="run-2"))
    assert other["to_version"] == "2"


async def test_rollback_interrupted_after_recording_finishes_on_retry(
    models: FakeRegistry,
) -> None:
    params = RollbackModel(name="fraud", strategy="previous")
    models.fail_next["set_alias"] = [ConnectionError("crash between tag and move")]
    with pytest.raises(ConnectionError):
        await mlflow_actions.rollback_model(params, ctx(Ports(models=models)))
    tag = json.loads(models.models["fraud"].tags[rollback_tag("run-1:contain")])
    assert tag["state"] == "pending"

    out = await mlflow_actions.rollback_model(params, ctx(Ports(models=models)))
    assert out["from_version"] == "4"
    assert out["to_version"] == "3"
    assert models.models["fraud"].aliases["champion"] == "3"
    assert "state" not in json.loads(models.models["fraud"].tags[rollback_tag("run-1:contain")])


async def test_interrupted_rollback_refuses_when_someone_moved_the_alias(
    models: FakeRegistry,
) -> None:
    params = RollbackModel(name="fraud", strategy="previous")
    models.fail_next["set_alias"] = [ConnectionError("crash")]
    with pytest.raises(ConnectionError):
        await mlflow_actions.rollback_model(params, ctx(Ports(models=models)))
    models.models["fraud"].aliases["champion"] = "1"
    with pytest.raises(ActionError) as err:
        await mlflow_actions.rollback_model(params, ctx(Ports(models=models)))
    assert err.value.code == "conflict"
    assert models.models["fraud"].aliases["champion"] == "1"


async def test_rollback_to_an_explicit_version(models: FakeRegistry) -> None:
    out = await mlflow_actions.rollback_model(
        RollbackModel(name="fraud", to_version="2"), ctx(Ports(models=models))
    )
    assert (out["from_version"], out["to_version"]) == ("4", "2")
    with pytest.raises(ActionError, match="listed as bad") as bad:
        await mlflow_actions.rollback_model(
            RollbackModel(name="fraud", to_version="1", bad_versions=["1"]),
            ctx(Ports(models=models), run_id="r2"),
        )
    assert bad.value.code == "no_candidate"
    with pytest.raises(ActionError) as err:
        await mlflow_actions.rollback_model(
            RollbackModel(name="fraud", to_version="9"), ctx(Ports(models=models), run_id="r3")
        )
    assert err.value.code == "not_found"


async def test_rollback_of_an_unset_alias_or_unknown_model_is_not_found(
    models: FakeRegistry,
) -> None:
    for params in (RollbackModel(name="fraud", alias="canary"), RollbackModel(name="nope")):
        with pytest.raises(ActionError) as err:
            await mlflow_actions.rollback_model(params, ctx(Ports(models=models)))
        assert err.value.code == "not_found"


async def test_set_model_alias_undoes_a_rollback(models: FakeRegistry) -> None:
    done = await mlflow_actions.rollback_model(
        RollbackModel(name="fraud"), ctx(Ports(models=models))
    )
    undo = SetModelAlias(
        name="fraud",
        alias="champion",
        version=done["from_version"],
        expect_current=done["to_version"],
    )
    out = await mlflow_actions.set_model_alias(undo, ctx(Ports(models=models), step_id="undo"))
    assert out == {
        "name": "fraud",
        "alias": "champion",
        "from_version": "2",
        "to_version": "4",
        "moved": True,
    }
    assert models.models["fraud"].aliases["champion"] == "4"
    # Retried after it succeeded: already there, so no conflict and no second move.
    again = await mlflow_actions.set_model_alias(undo, ctx(Ports(models=models), step_id="undo"))
    assert again["to_version"] == "4"
    assert models.calls["set_alias"] == 2


async def test_set_model_alias_refuses_when_the_alias_moved_since(models: FakeRegistry) -> None:
    with pytest.raises(ActionError) as err:
        await mlflow_actions.set_model_alias(
            SetModelAlias(name="fraud", alias="champion", version="1", expect_current="2"),
            ctx(Ports(models=models)),
        )
    assert err.value.code == "conflict"
    assert models.models["fraud"].aliases["champion"] == "4"
    assert models.calls["set_alias"] == 0


async def test_mlflow_actions_need_mlflow_configured() -> None:
    with pytest.raises(ActionError, match="mlflow is not configured"):
        await mlflow_actions.rollback_model(RollbackModel(name="fraud"), ctx(Ports()))
    with pytest.raises(ActionError, match="mlflow is not configured"):
        await mlflow_actions.set_model_alias(
            SetModelAlias(name="fraud", alias="champion", version="1"), ctx(Ports())
        )


def test_rollback_tag_is_a_valid_mlflow_tag_and_unique_per_step() -> None:
    tags = {rollback_tag(k) for k in ("r1:s1", "r1_s1", "r1:s2", "r2:s1", "x" * 500)}
    assert len(tags) == 5
    for tag in tags:
        assert re.fullmatch(r"responder\.rollback\.[A-Za-z0-9_.-]+", tag)
        assert len(tag) <= 250
    assert rollback_tag("r1:s1") == rollback_tag("r1:s1")


def test_rollback_params_are_strict() -> None:
    with pytest.raises(ValidationError):
        RollbackModel.model_validate({"name": "fraud", "stratgy": "previous"})
    with pytest.raises(ValidationError):
        RollbackModel(name="fraud", clean_tag="clean")
    assert RollbackModel.model_validate({"name": "m", "to_version": 3}).to_version == "3"


def test_mlflow_adapter_says_how_to_install_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(RuntimeError, match=re.escape("install responder[mlflow]")):
        mlflow_actions.MlflowRegistry(tracking_uri="sqlite:///unused.db")
