"""The WAFv2 IP-set actions against moto's WAFv2 over HTTP: directly, and in a playbook run whose
undo (a false positive) takes out exactly the addresses the run put in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from responder.actions import aws_waf
from responder.actions.aws_waf import BlockIps, Boto3Waf, UnblockIps
from responder.actions.ports import IpSet, Ports
from responder.actions.registry import ActionContext, ActionError
from responder.commands import IncidentCommand
from tests.support.aws_server import CREDENTIALS, REGION, MotoServer
from tests.support.runner_kit import Kit, change, event

pytestmark = pytest.mark.integration

ATTACKERS = ["203.0.113.9", "203.0.113.10", "2001:db8::66"]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def adapter(moto: MotoServer) -> Boto3Waf:
    return Boto3Waf(
        endpoint_url=moto.endpoint_url,
        region=REGION,
        access_key_id=SecretStr(CREDENTIALS["aws_access_key_id"]),
        secret_access_key=SecretStr(CREDENTIALS["aws_secret_access_key"]),
    )


def ctx(waf: Boto3Waf, *, run_id: str = "run-1", step_id: str = "block") -> ActionContext:
    return ActionContext(run_id=run_id, step_id=step_id, ports=Ports(waf=waf))


async def test_block_rerun_and_unblock_on_a_real_ip_set(moto: MotoServer) -> None:
    name, ip_set_id = moto.create_ip_set(["198.51.100.1/32"])
    waf = adapter(moto)
    params = BlockIps(ip_set_name=name, ip_set_id=ip_set_id, addresses=[*ATTACKERS, "198.51.100.1"])

    out = await aws_waf.block_ips(params, ctx(waf))
    assert out["added"] == ["203.0.113.9/32", "203.0.113.10/32"]
    assert out["already_present"] == ["198.51.100.1/32"]
    assert out["other_family"] == ["2001:db8::66/128"]
    held = moto.ip_set(name, ip_set_id)
    assert sorted(held["Addresses"]) == ["198.51.100.1/32", "203.0.113.10/32", "203.0.113.9/32"]
    assert held["Description"] == "blocked by responder playbooks"

    again = await aws_waf.block_ips(params, ctx(waf))  # same step again: nothing twice
    assert again["added"] == []
    assert moto.count("UpdateIPSet", Name=name) == 1
    assert sorted(moto.ip_set(name, ip_set_id)["Addresses"]) == sorted(held["Addresses"])

    undo = UnblockIps(ip_set_name=name, ip_set_id=ip_set_id, addresses=out["added"])
    back = await aws_waf.unblock_ips(undo, ctx(waf, step_id="block.undo"))
    assert back["removed"] == ["203.0.113.9/32", "203.0.113.10/32"]
    assert moto.ip_set(name, ip_set_id)["Addresses"] == ["198.51.100.1/32"]
    assert moto.ip_set(name, ip_set_id)["Description"] == "blocked by responder playbooks"


class MeddlingWaf(Boto3Waf):
    """Someone else updates the set between our read and our first update."""

    def __init__(self, moto: MotoServer, extra: str) -> None:
        super().__init__(
            endpoint_url=moto.endpoint_url,
            region=REGION,
            access_key_id=SecretStr(CREDENTIALS["aws_access_key_id"]),
            secret_access_key=SecretStr(CREDENTIALS["aws_secret_access_key"]),
        )
        self.moto, self.extra, self.meddled = moto, extra, False

    async def update_ip_set(self, *, ip_set: IpSet, addresses: list[str]) -> None:
        if not self.meddled:
            self.meddled = True
            client = self.moto.wafv2()
            now = client.get_ip_set(Name=ip_set.name, Scope="REGIONAL", Id=ip_set.ip_set_id)
            client.update_ip_set(
                Name=ip_set.name,
                Scope="REGIONAL",
                Id=ip_set.ip_set_id,
                Addresses=[*now["IPSet"]["Addresses"], self.extra],
                Description=now["IPSet"]["Description"],
                LockToken=now["LockToken"],
            )
        await super().update_ip_set(ip_set=ip_set, addresses=addresses)


async def test_a_concurrent_update_is_retried_with_a_fresh_lock_token(moto: MotoServer) -> None:
    name, ip_set_id = moto.create_ip_set()
    waf = MeddlingWaf(moto, "192.0.2.77/32")
    out = await aws_waf.block_ips(
        BlockIps(ip_set_name=name, ip_set_id=ip_set_id, addresses=["203.0.113.9"]), ctx(waf)
    )
    assert out["added"] == ["203.0.113.9/32"]
    assert sorted(moto.ip_set(name, ip_set_id)["Addresses"]) == ["192.0.2.77/32", "203.0.113.9/32"]
    assert moto.count("UpdateIPSet", ok_only=False, Name=name) == 3  # theirs, our stale, ours


async def test_unknown_set_is_not_found(moto: MotoServer) -> None:
    name, _ = moto.create_ip_set()
    params = BlockIps(
        ip_set_name=name,
        ip_set_id="00000000-0000-4000-8000-000000000000",
        addresses=["203.0.113.9"],
    )
    with pytest.raises(ActionError) as err:
        await aws_waf.block_ips(params, ctx(adapter(moto)))
    assert (err.value.code, err.value.retryable) == ("not_found", False)


BLOCK = """
id: block
title: Block the attacking sources
on: {kind: adversarial_attack}
steps:
  - id: block
    action: aws.wafv2.block_ips
    with:
      ip_set_name: IP_SET_NAME
      ip_set_id: IP_SET_ID
      addresses: "{{ events | map(attribute='actor.ip', default='') | select | unique | list }}"
      skip_refused: true
    undo:
      action: aws.wafv2.unblock_ips
      with:
        ip_set_name: "{{ steps.block.output.ip_set.name }}"
        ip_set_id: "{{ steps.block.output.ip_set.id }}"
        addresses: "{{ steps.block.output.added }}"
"""


@pytest.fixture
def kit(db: Engine, tmp_path: Path, moto: MotoServer) -> Kit:
    return Kit(db=db, directory=tmp_path / "playbooks", waf=adapter(moto))


async def test_a_playbook_blocks_once_and_its_undo_removes_exactly_its_own(
    kit: Kit, moto: MotoServer
) -> None:
    name, ip_set_id = moto.create_ip_set(["203.0.113.10/32"])
    kit.playbook("block", BLOCK.replace("IP_SET_NAME", name).replace("IP_SET_ID", ip_set_id))
    sources = ["203.0.113.9", "203.0.113.10", "203.0.113.9", "127.0.0.1", "<img src=x>"]
    events = [
        event(f"adv-{i}", i, type="input.adversarial", actor={"ip": ip})
        for i, ip in enumerate(sources)
    ]
    [rid] = kit.apply(change(kind="adversarial_attack", events=events))
    await kit.drive()
    step = kit.steps(rid)["block"]
    assert step.status == "completed"
    assert step.output["added"] == ["203.0.113.9/32"]
    assert step.output["already_present"] == ["203.0.113.10/32"]
    assert [r["address"] for r in step.output["refused"]] == ["127.0.0.1", "<img src=x>"]
    assert sorted(moto.ip_set(name, ip_set_id)["Addresses"]) == [
        "203.0.113.10/32",
        "203.0.113.9/32",
    ]
    assert moto.count("UpdateIPSet", Name=name) == 1
    await kit.drive()  # nothing more happens on another round
    assert moto.count("UpdateIPSet", Name=name) == 1

    kit.command(IncidentCommand(incident_id="inc-1", status="false_positive", by="carol"))
    await kit.drive()
    assert kit.steps(rid)["block"].status == "undone"
    assert kit.steps(rid)["block"].undo_output["removed"] == ["203.0.113.9/32"]
    assert moto.ip_set(name, ip_set_id)["Addresses"] == ["203.0.113.10/32"]  # it was there before
    assert kit.chain_ok()
