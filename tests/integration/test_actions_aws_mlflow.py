"""The IAM and MLflow actions against real software: moto's IAM server over HTTP, and an MLflow
sqlite registry whose versions are real pyfunc models (loading `@champion` proves the rollback)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from responder.actions import aws_iam
from responder.actions import mlflow as mlflow_actions
from responder.actions.aws_iam import AccessKeyParams, Boto3Iam, DeleteKeyParams
from responder.actions.mlflow import MlflowRegistry, RollbackModel, SetModelAlias
from responder.actions.ports import Ports
from responder.actions.registry import ActionContext, ActionError
from tests.support.aws_server import CREDENTIALS, REGION, MotoServer
from tests.support.mlflow_registry import RegistryFixture, create_registry

pytestmark = pytest.mark.integration


def ctx(ports: Ports, *, run_id: str = "run-1", step_id: str = "contain") -> ActionContext:
    return ActionContext(run_id=run_id, step_id=step_id, ports=ports)


# -- AWS IAM on a moto server ----------------------------------------------------------------


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def iam_ports(endpoint_url: str) -> Ports:
    return Ports(
        iam=Boto3Iam(
            endpoint_url=endpoint_url,
            region=REGION,
            access_key_id=SecretStr(CREDENTIALS["aws_access_key_id"]),
            secret_access_key=SecretStr(CREDENTIALS["aws_secret_access_key"]),
        )
    )


async def test_deactivate_then_activate_a_real_key(moto: MotoServer) -> None:
    user, key = moto.create_user_with_key()
    ports = iam_ports(moto.endpoint_url)

    out = await aws_iam.deactivate_access_key(AccessKeyParams(access_key_id=key), ctx(ports))
    assert out == {
        "user_name": user,  # found through GetAccessKeyLastUsed
        "access_key_id": key,
        "previous_status": "Active",
        "status": "Inactive",
    }
    assert moto.key_status(user, key) == "Inactive"
    assert moto.count("UpdateAccessKey", AccessKeyId=key, Status="Inactive") == 1

    again = await aws_iam.deactivate_access_key(
        AccessKeyParams(access_key_id=key, user_name=user), ctx(ports)
    )
    assert again["previous_status"] == "Inactive"
    assert moto.count("UpdateAccessKey", AccessKeyId=key) == 1  # no second write

    undo = await aws_iam.activate_access_key(AccessKeyParams(access_key_id=key), ctx(ports))
    assert (undo["previous_status"], undo["status"]) == ("Inactive", "Active")
    assert moto.key_status(user, key) == "Active"


async def test_delete_a_real_key(moto: MotoServer) -> None:
    user, key = moto.create_user_with_key()
    out = await aws_iam.delete_access_key(
        DeleteKeyParams(access_key_id=key, user_name=user), ctx(iam_ports(moto.endpoint_url))
    )
    assert out == {"user_name": user, "access_key_id": key, "deleted": True}
    assert moto.key_status(user, key) is None


async def test_unknown_key_is_not_found(moto: MotoServer) -> None:
    ports = iam_ports(moto.endpoint_url)
    user, _ = moto.create_user_with_key()
    for params in (
        AccessKeyParams(access_key_id="AKIANOSUCHKEY0000000"),
        AccessKeyParams(access_key_id="AKIANOSUCHKEY0000000", user_name=user),
        AccessKeyParams(access_key_id="AKIANOSUCHKEY0000000", user_name="no-such-user"),
    ):
        with pytest.raises(ActionError) as err:
            await aws_iam.deactivate_access_key(params, ctx(ports))
        assert err.value.code == "not_found"
        assert not err.value.retryable
    assert moto.count("UpdateAccessKey", AccessKeyId="AKIANOSUCHKEY0000000", ok_only=False) == 0


async def test_unreachable_endpoint_is_retryable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ActionError) as err:
        await aws_iam.deactivate_access_key(
            AccessKeyParams(access_key_id="AKIAEXAMPLELEAKED01"),
            ctx(iam_ports(f"http://127.0.0.1:{port}")),
        )
    assert err.value.retryable
    assert err.value.code == "unavailable"


# -- MLflow on a sqlite registry ---------------------------------------------------------------


@pytest.fixture
def registry(tmp_path: Path) -> RegistryFixture:
    """fraud-detector v1 (scan=clean), v2 (not scanned clean), v3 = champion."""
    started = time.perf_counter()
    reg = create_registry(tmp_path / "mlflow", versions=3, clean=(1,), champion=3)
    print(f"mlflow registry set up in {time.perf_counter() - started:.2f}s")
    assert reg.predict() == "3"
    return reg


def model_ports(reg: RegistryFixture) -> Ports:
    return Ports(models=MlflowRegistry(tracking_uri=reg.tracking_uri))


async def test_rollback_serves_the_last_clean_version_and_undo_restores(
    registry: RegistryFixture,
) -> None:
    ports = model_ports(registry)
    params = RollbackModel(name=registry.name)

    out = await mlflow_actions.rollback_model(params, ctx(ports))
    assert out == {
        "name": registry.name,
        "alias": "champion",
        "from_version": "3",
        "to_version": "1",
        "moved": True,
    }
    assert registry.predict() == "1"

    replayed = await mlflow_actions.rollback_model(params, ctx(ports))
    assert replayed == out
    assert registry.alias() == "1"

    undo = SetModelAlias(
        name=registry.name,
        alias="champion",
        version=out["from_version"],
        expect_current=out["to_version"],
    )
    back = await mlflow_actions.set_model_alias(undo, ctx(ports, step_id="undo"))
    assert (back["from_version"], back["to_version"]) == ("1", "3")
    assert registry.predict() == "3"


async def test_same_idempotency_key_never_rolls_back_twice(registry: RegistryFixture) -> None:
    """With "previous", a second decision would move v2 → v1: the recorded tag prevents it."""
    ports = model_ports(registry)
    params = RollbackModel(name=registry.name, strategy="previous")
    first = await mlflow_actions.rollback_model(params, ctx(ports))
    second = await mlflow_actions.rollback_model(params, ctx(ports))
    assert first == second
    assert first["to_version"] == "2"
    assert registry.predict() == "2"
    tags = registry.client().get_registered_model(registry.name).tags
    assert [k for k in tags if k.startswith("responder.rollback.")] == [
        mlflow_actions.rollback_tag("run-1:contain")
    ]
    # A different step (another run) does decide again.
    other = await mlflow_actions.rollback_model(params, ctx(ports, run_id="run-2"))
    assert (other["from_version"], other["to_version"]) == ("2", "1")
    assert registry.predict() == "1"


async def test_set_model_alias_conflict_leaves_the_alias(registry: RegistryFixture) -> None:
    with pytest.raises(ActionError) as err:
        await mlflow_actions.set_model_alias(
            SetModelAlias(name=registry.name, alias="champion", version="1", expect_current="2"),
            ctx(model_ports(registry)),
        )
    assert err.value.code == "conflict"
    assert registry.predict() == "3"


async def test_unknown_model_or_no_candidate(registry: RegistryFixture) -> None:
    ports = model_ports(registry)
    with pytest.raises(ActionError) as err:
        await mlflow_actions.rollback_model(RollbackModel(name="no-such-model"), ctx(ports))
    assert err.value.code == "not_found"
    with pytest.raises(ActionError) as err:
        await mlflow_actions.rollback_model(
            RollbackModel(name=registry.name, bad_versions=["1"]), ctx(ports)
        )
    assert err.value.code == "no_candidate"
    assert registry.alias() == "3"
