"""The WAFv2 IP-set actions against an in-memory fake of their port, and the address screen."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr, ValidationError

from responder.actions import addresses as A
from responder.actions import aws_waf
from responder.actions.aws_waf import BlockIps, Boto3Waf, UnblockIps
from responder.actions.ports import Ports
from responder.actions.registry import REGISTRY, ActionContext, ActionError
from tests.support.fakes.waf import FakeIpSet, FakeWaf


def ctx(waf: FakeWaf | None, *, run_id: str = "run-1", step_id: str = "block") -> ActionContext:
    return ActionContext(run_id=run_id, step_id=step_id, ports=Ports(waf=waf))


@pytest.fixture
def waf() -> FakeWaf:
    return FakeWaf()


@pytest.fixture
def blocklist(waf: FakeWaf) -> FakeIpSet:
    return waf.add_set("blocklist", addresses=["198.51.100.1/32"])


def block(ip_set: FakeIpSet, addresses: list[Any], **extra: Any) -> BlockIps:
    return BlockIps(
        ip_set_name=ip_set.name, ip_set_id=ip_set.ip_set_id, addresses=addresses, **extra
    )


def unblock(ip_set: FakeIpSet, addresses: list[Any]) -> UnblockIps:
    return UnblockIps(ip_set_name=ip_set.name, ip_set_id=ip_set.ip_set_id, addresses=addresses)


def test_actions_are_registered() -> None:
    for name in ("aws.wafv2.block_ips", "aws.wafv2.unblock_ips"):
        assert name in REGISTRY
        assert REGISTRY.get(name).side_effect


# -- blocking and its undo -----------------------------------------------------------------------


async def test_block_adds_only_what_is_missing_and_says_so(
    waf: FakeWaf, blocklist: FakeIpSet
) -> None:
    out = await aws_waf.block_ips(
        block(blocklist, ["203.0.113.9", "198.51.100.1", " 203.0.113.9/32", "2001:db8::1"]),
        ctx(waf),
    )
    assert out == {
        "ip_set": {"name": "blocklist", "id": blocklist.ip_set_id},
        "ip_version": "IPV4",
        "added": ["203.0.113.9/32"],
        "already_present": ["198.51.100.1/32"],
        "other_family": ["2001:db8::1/128"],
        "refused": [],
    }
    assert blocklist.addresses == ["198.51.100.1/32", "203.0.113.9/32"]
    assert blocklist.description == "blocked by responder"  # kept through the update
    assert waf.calls["update_ip_set"] == 1


async def test_a_rerun_adds_nothing_twice(waf: FakeWaf, blocklist: FakeIpSet) -> None:
    params = block(blocklist, ["203.0.113.9", "203.0.113.10"])
    await aws_waf.block_ips(params, ctx(waf))
    again = await aws_waf.block_ips(params, ctx(waf))
    assert again["added"] == []
    assert again["already_present"] == ["203.0.113.9/32", "203.0.113.10/32"]
    assert blocklist.addresses == ["198.51.100.1/32", "203.0.113.9/32", "203.0.113.10/32"]
    assert waf.calls["update_ip_set"] == 1  # nothing to add: no write at all


async def test_unblock_removes_exactly_what_block_added(waf: FakeWaf, blocklist: FakeIpSet) -> None:
    done = await aws_waf.block_ips(block(blocklist, ["198.51.100.1", "203.0.113.9"]), ctx(waf))
    blocklist.addresses.append("192.0.2.50/32")  # someone else's block, after ours
    out = await aws_waf.unblock_ips(unblock(blocklist, done["added"]), ctx(waf, step_id="undo"))
    assert out["removed"] == ["203.0.113.9/32"]
    assert out["absent"] == []
    assert blocklist.addresses == ["198.51.100.1/32", "192.0.2.50/32"]
    # The undo retried after it succeeded: nothing left to remove, no write.
    again = await aws_waf.unblock_ips(unblock(blocklist, done["added"]), ctx(waf))
    assert (again["removed"], again["absent"]) == ([], ["203.0.113.9/32"])
    assert waf.calls["update_ip_set"] == 2


async def test_unblock_matches_entries_written_in_another_form(waf: FakeWaf) -> None:
    ip_set = waf.add_set("v6", ip_version="IPV6", addresses=["2001:0DB8:0:0::7/128"])
    out = await aws_waf.unblock_ips(unblock(ip_set, ["2001:db8::7"]), ctx(waf))
    assert out["removed"] == ["2001:db8::7/128"]
    assert ip_set.addresses == []


async def test_an_ipv6_set_takes_the_ipv6_addresses(waf: FakeWaf) -> None:
    ip_set = waf.add_set("v6", ip_version="IPV6")
    out = await aws_waf.block_ips(
        block(ip_set, ["2001:DB8:0:0:0:0:0:9", "203.0.113.9", "2001:db8:1::/48"]), ctx(waf)
    )
    assert out["added"] == ["2001:db8::9/128", "2001:db8:1::/48"]
    assert out["other_family"] == ["203.0.113.9/32"]


async def test_nothing_to_block_is_not_an_error(waf: FakeWaf, blocklist: FakeIpSet) -> None:
    out = await aws_waf.block_ips(block(blocklist, []), ctx(waf))
    assert out["added"] == [] and waf.calls["update_ip_set"] == 0


# -- the lock token ------------------------------------------------------------------------------


async def test_a_concurrent_change_is_retried_once_and_kept(
    waf: FakeWaf, blocklist: FakeIpSet
) -> None:
    waf.meddle_before_update.append(["192.0.2.77/32", "203.0.113.9/32"])
    out = await aws_waf.block_ips(block(blocklist, ["203.0.113.9", "203.0.113.10"]), ctx(waf))
    assert waf.calls["get_ip_set"] == 2 and waf.calls["update_ip_set"] == 2
    # The other writer's addresses survive; theirs is theirs, not ours to undo.
    assert out["added"] == ["203.0.113.10/32"]
    assert out["already_present"] == ["203.0.113.9/32"]
    assert blocklist.addresses == [
        "198.51.100.1/32",
        "192.0.2.77/32",
        "203.0.113.9/32",
        "203.0.113.10/32",
    ]


async def test_two_conflicts_leave_it_to_the_retry_policy(
    waf: FakeWaf, blocklist: FakeIpSet
) -> None:
    waf.meddle_before_update.extend([["192.0.2.77/32"], ["192.0.2.78/32"]])
    with pytest.raises(ActionError) as err:
        await aws_waf.block_ips(block(blocklist, ["203.0.113.9"]), ctx(waf))
    assert (err.value.code, err.value.retryable) == ("lock_conflict", True)
    assert "203.0.113.9/32" not in blocklist.addresses


async def test_a_full_set_is_refused_before_writing(waf: FakeWaf) -> None:
    full = waf.add_set("full", addresses=[f"198.18.{i // 256}.{i % 256}/32" for i in range(9999)])
    with pytest.raises(ActionError) as err:
        await aws_waf.block_ips(block(full, ["203.0.113.9", "203.0.113.10"]), ctx(waf))
    assert err.value.code == "limit_exceeded"
    assert waf.calls["update_ip_set"] == 0


async def test_unknown_set_or_unconfigured_waf(waf: FakeWaf, blocklist: FakeIpSet) -> None:
    params = BlockIps(ip_set_name="nope", ip_set_id=blocklist.ip_set_id, addresses=["203.0.113.9"])
    with pytest.raises(ActionError) as err:
        await aws_waf.block_ips(params, ctx(waf))
    assert err.value.code == "not_found"
    with pytest.raises(ActionError, match="aws wafv2 is not configured"):
        await aws_waf.block_ips(block(blocklist, ["203.0.113.9"]), ctx(None))


# -- hostile parameters ------------------------------------------------------------------------


def params(addresses: Any, **extra: Any) -> dict[str, Any]:
    return {"ip_set_name": "blocklist", "ip_set_id": "abc-123", "addresses": addresses, **extra}


def test_ten_thousand_addresses_are_refused_with_one_clear_error() -> None:
    many = [f"198.18.{i // 256}.{i % 256}" for i in range(10_000)]
    for model in (BlockIps, UnblockIps):
        with pytest.raises(ValidationError) as err:
            model.model_validate(params(many))
        [only] = err.value.errors()
        assert "10000 addresses: at most 1000 per step" in only["msg"]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("203.0.113.9/24", "host bits set"),
        ("203.0.113.0/33", "invalid prefix length"),
        ("300.1.2.3", "not a valid IP address or network"),
        ("<script>alert(1)</script>", "not an IP address or CIDR"),
        ("<!channel> 1.2.3.4", "not an IP address or CIDR"),
        ("1.2.3.4\n5.6.7.8", "not an IP address or CIDR"),
        ("fe80::1%eth0", "not an IP address or CIDR"),
        ("", "empty"),
        ("1" * 100, "longer than 64"),
        (12345, "not a string"),
        ("0.0.0.0/0", "never a client"),
        ("127.0.0.1", "never a client"),
        ("169.254.169.254", "never a client"),
        ("::1", "never a client"),
        ("255.255.255.255", "never a client"),
        ("10.1.2.3", "private range 10.0.0.0/8"),
        ("fd00::5", "private range fc00::/7"),
        ("::ffff:192.168.1.1", "private range 192.168.0.0/16"),
        ("203.0.0.0/16", "wider than /24"),
        ("2001:db8::/32", "wider than /48"),
    ],
)
def test_bad_or_dangerous_addresses_are_refused(address: Any, reason: str) -> None:
    with pytest.raises(ValidationError) as err:
        BlockIps.model_validate(params(["203.0.113.9", address]))
    message = str(err.value)
    assert "1 address(es) refused" in message
    assert reason in message
    assert "\n5.6.7.8" not in message  # what is echoed is printable and clipped


def test_operator_policy_widens_or_narrows_the_screen() -> None:
    ok = BlockIps.model_validate(
        params(["10.1.2.3", "203.0.0.0/16"], allow_private=True, min_prefix_v4=16)
    )
    assert [A.canonical(n) for n in ok.screened().accepted] == ["10.1.2.3/32", "203.0.0.0/16"]
    with pytest.raises(ValidationError, match="listed in never_block"):
        BlockIps.model_validate(params(["198.51.100.7"], never_block=["198.51.100.0/25"]))
    with pytest.raises(ValidationError, match="'nonsense'"):
        BlockIps.model_validate(params([], never_block=["nonsense"]))
    with pytest.raises(ValidationError):
        BlockIps.model_validate(params([], min_prefix_v4=0))


async def test_skip_refused_blocks_the_rest_and_reports(waf: FakeWaf, blocklist: FakeIpSet) -> None:
    forged = ["203.0.113.9", "127.0.0.1", "<b>x</b>", "203.0.113.9/32", "10.0.0.1"]
    out = await aws_waf.block_ips(block(blocklist, forged, skip_refused=True), ctx(waf))
    assert out["added"] == ["203.0.113.9/32"]
    assert [r["address"] for r in out["refused"]] == ["127.0.0.1", "<b>x</b>", "10.0.0.1"]
    assert all(r["reason"] for r in out["refused"])


def test_ip_set_names_and_ids_are_checked() -> None:
    for bad in ({"ip_set_name": "a/b"}, {"ip_set_id": "../x"}, {"ip_set_name": "x" * 200}):
        with pytest.raises(ValidationError):
            BlockIps.model_validate({**params([]), **bad})
    with pytest.raises(ValidationError):
        BlockIps.model_validate({**params([]), "scope": "CLOUDFRONT"})


def test_unblock_takes_any_parsable_address_but_nothing_else() -> None:
    ok = UnblockIps.model_validate(params(["127.0.0.1", "10.0.0.0/8", "10.0.0.0/8"]))
    assert [A.canonical(n) for n in ok.networks()] == ["127.0.0.1/32", "10.0.0.0/8"]
    with pytest.raises(ValidationError, match="not an IP address or CIDR"):
        UnblockIps.model_validate(params(["<script>"]))


def test_canonical_forms() -> None:
    assert A.canonical(A.parse("2001:0DB8::0:1")) == "2001:db8::1/128"
    assert A.canonical(A.parse("::ffff:203.0.113.9")) == "203.0.113.9/32"
    assert A.canonical(A.parse(" 203.0.113.0/24 ")) == "203.0.113.0/24"
    assert A.canonical_or_none("203.0.113.9/24") == "203.0.113.0/24"
    assert A.canonical_or_none("junk") is None


# -- the boto3 adapter ---------------------------------------------------------------------------


def waf_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "UpdateIPSet",
    )


@pytest.mark.parametrize(
    ("code", "status", "ours", "retryable"),
    [
        ("WAFOptimisticLockException", 400, "lock_conflict", True),
        ("WAFNonexistentItemException", 400, "not_found", False),
        ("WAFLimitsExceededException", 400, "limit_exceeded", False),
        ("WAFInvalidParameterException", 400, "invalid", False),
        ("WAFInternalErrorException", 500, "unavailable", True),
        ("ThrottlingException", 400, "unavailable", True),
        ("AccessDeniedException", 403, "forbidden", False),
    ],
)
def test_waf_errors_map_to_codes(code: str, status: int, ours: str, retryable: bool) -> None:
    err = aws_waf.translate_error(waf_error(code, status), operation="update_ip_set")
    assert (err.code, err.retryable) == (ours, retryable)
    assert str(err).startswith("WAFv2 update_ip_set failed")


def test_boto3_adapter_never_shows_its_secret() -> None:
    adapter = Boto3Waf(
        endpoint_url="http://127.0.0.1:1",
        access_key_id=SecretStr("AKIDSECRETID"),
        secret_access_key=SecretStr("very-secret-value"),
    )
    assert "very-secret-value" not in repr(adapter)
    assert "AKIDSECRETID" not in repr(adapter)
