"""AWS WAFv2 IP sets: `aws.wafv2.block_ips` (undo: `aws.wafv2.unblock_ips`).

Blocking puts the attacking sources into an IP set that a web ACL rule already blocks; the
operator creates the set and the rule, a playbook only changes the set's addresses. WAFv2
replaces an IP set's whole address list on update, guarded by the lock token of the read: the
action reads the set, adds what is missing and writes it back with that token; when someone else
changed the set in between (`WAFOptimisticLockException`) it reads and tries once more, then
leaves further attempts to the step's retry policy.

Each step records exactly the addresses it added, not those the set already held, so the undo
removes only its own: an address that was in the set before stays. Adding is idempotent (the set
holds each address once), so a retried or redelivered step adds nothing twice. What the record
cannot tell: if a worker dies after the update and before the step's output is stored, the rerun
finds its addresses present and records them as `already_present`, so an undo leaves them
blocked (it fails closed). Two incidents that block the same address share one entry; the undo of
the one that added it removes it for both.

A set holds one address family (`IPV4` or `IPV6`): addresses of the other family are reported
as `other_family`, not added (use a second step with the other set). Which addresses may be
blocked at all is `actions.addresses`' screen; scope is `REGIONAL` (ALB, API Gateway, AppSync,
Cognito, App Runner, Verified Access), in the region of the AWS settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Final

import structlog
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from responder.actions import addresses as A
from responder.actions import aws_client
from responder.actions.aws_client import Boto3Adapter
from responder.actions.ports import IpSet, WafPort
from responder.actions.registry import ActionContext, ActionError, Output, action, configured

if TYPE_CHECKING:
    pass

log = structlog.get_logger(__name__)

SCOPE: Final = "REGIONAL"
MAX_SET_SIZE: Final = 10_000  # WAFv2's limit of addresses in one IP set
LOCK_CONFLICT: Final = "lock_conflict"
_CODES: Final = {
    "WAFNonexistentItemException": ("not_found", False),
    "WAFOptimisticLockException": (LOCK_CONFLICT, True),
    "WAFLimitsExceededException": ("limit_exceeded", False),
    "WAFInvalidParameterException": ("invalid", False),
    "WAFInvalidOperationException": ("invalid", False),
    "WAFUnavailableEntityException": ("unavailable", True),
    "WAFInternalErrorException": ("unavailable", True),
}


class Boto3Waf(Boto3Adapter):
    """`WafPort` over a boto3 `wafv2` client, scope REGIONAL (AWS itself, or a moto server)."""

    service = "wafv2"

    def error(self, exc: Exception, operation: str) -> ActionError:
        return translate_error(exc, operation=operation)

    async def get_ip_set(self, *, name: str, ip_set_id: str) -> IpSet:
        found = await self._call("get_ip_set", Name=name, Scope=SCOPE, Id=ip_set_id)
        raw = found["IPSet"]
        return IpSet(
            name=str(raw["Name"]),
            ip_set_id=str(raw["Id"]),
            ip_version=raw["IPAddressVersion"],
            addresses=tuple(str(a) for a in raw.get("Addresses", [])),
            lock_token=str(found["LockToken"]),
            description=raw.get("Description") or None,
        )

    async def update_ip_set(self, *, ip_set: IpSet, addresses: list[str]) -> None:
        # The update replaces the set's settings: pass the description on, or it is cleared.
        described = {"Description": ip_set.description} if ip_set.description else {}
        await self._call(
            "update_ip_set",
            Name=ip_set.name,
            Scope=SCOPE,
            Id=ip_set.ip_set_id,
            Addresses=addresses,
            LockToken=ip_set.lock_token,
            **described,
        )


def translate_error(exc: Exception, *, operation: str) -> ActionError:
    """botocore failures as ActionErrors; a changed set is `lock_conflict` (retryable)."""
    return aws_client.translate_error(exc, service="WAFv2", operation=operation, codes=_CODES)


# --- parameters ------------------------------------------------------------------------------

IpSetName = Annotated[str, StringConstraints(pattern=r"^[\w-]{1,128}$")]
IpSetId = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z-]{1,128}$")]


class _IpSetParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ip_set_name: IpSetName
    ip_set_id: IpSetId
    addresses: list[Any] = Field(
        max_length=A.MAX_ADDRESSES,
        description=f"IPv4 / IPv6 addresses or CIDRs, at most {A.MAX_ADDRESSES}",
    )

    @field_validator("addresses", mode="before")
    @classmethod
    def _bounded_list(cls, value: Any) -> Any:
        # Say how many before pydantic lists a thousand per-item errors.
        if isinstance(value, list | tuple) and len(value) > A.MAX_ADDRESSES:
            raise ValueError(f"{len(value)} addresses: at most {A.MAX_ADDRESSES} per step")
        return value


def _refusals(refused: tuple[A.Refused, ...], limit: int = 5) -> str:
    shown = "; ".join(f"{r.address!r}: {r.reason}" for r in refused[:limit])
    more = f" (and {len(refused) - limit} more)" if len(refused) > limit else ""
    return f"{len(refused)} address(es) refused: {shown}{more}"


class BlockIps(_IpSetParams):
    allow_private: bool = Field(
        default=False, description="also block RFC 1918, 100.64/10 and fc00::/7 addresses"
    )
    min_prefix_v4: int = Field(default=24, ge=8, le=32, description="widest IPv4 network")
    min_prefix_v6: int = Field(default=48, ge=16, le=128, description="widest IPv6 network")
    never_block: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="networks never blocked (own egress, health checkers, partners)",
    )
    skip_refused: bool = Field(
        default=False,
        description="block the acceptable addresses and report the refused ones, instead of "
        "failing the step (so one forged address in an event cannot disarm the block)",
    )

    @field_validator("never_block")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        A.parse_networks(value)  # refuses what is not a network, with the entry named
        return value

    def policy(self) -> A.Policy:
        return A.Policy(
            allow_private=self.allow_private,
            min_prefix_v4=self.min_prefix_v4,
            min_prefix_v6=self.min_prefix_v6,
            never_block=A.parse_networks(self.never_block),
        )

    def screened(self) -> A.Screened:
        return A.screen(self.addresses, self.policy())

    @model_validator(mode="after")
    def _screen(self) -> BlockIps:
        refused = self.screened().refused
        if refused and not self.skip_refused:
            raise ValueError(_refusals(refused))
        return self


class UnblockIps(_IpSetParams):
    """Addresses to take out of the set (the screen does not apply: removing is always safe)."""

    def networks(self) -> tuple[A.Network, ...]:
        return tuple(dict.fromkeys(A.parse(a) for a in self.addresses))

    @model_validator(mode="after")
    def _parse(self) -> UnblockIps:
        bad: list[A.Refused] = []
        for text in self.addresses:
            try:
                A.parse(text)
            except A.AddressError as exc:
                bad.append(A.Refused(A.shown(text), str(exc)))
        if bad:
            raise ValueError(_refusals(tuple(bad)))
        return self


# --- the actions -------------------------------------------------------------------------------


def _waf(ctx: ActionContext) -> WafPort:
    return configured(ctx.ports.waf, "aws wafv2")


def _split(networks: tuple[A.Network, ...], ip_version: str) -> tuple[list[A.Network], list[str]]:
    same = [n for n in networks if A.family(n) == ip_version]
    other = [A.canonical(n) for n in networks if A.family(n) != ip_version]
    return same, other


Report = dict[str, list[str]]
Change = Callable[[IpSet], tuple[list[str] | None, Report]]


async def _change(waf: WafPort, params: _IpSetParams, change: Change) -> tuple[IpSet, Report]:
    """Read the set, compute the new list with `change(ip_set) -> (addresses | None, report)`
    and write it with the read's lock token; once more after a lock conflict."""
    for attempt in (1, 2):
        ip_set = await waf.get_ip_set(name=params.ip_set_name, ip_set_id=params.ip_set_id)
        new, report = change(ip_set)
        if new is None:
            return ip_set, report
        try:
            await waf.update_ip_set(ip_set=ip_set, addresses=new)
        except ActionError as exc:
            if exc.code != LOCK_CONFLICT or attempt == 2:
                raise
            log.info("aws.wafv2.lock_conflict", ip_set=params.ip_set_name, attempt=attempt)
            continue
        return ip_set, report
    raise AssertionError("unreachable")


def _output(ip_set: IpSet, report: Report, **extra: Any) -> dict[str, Any]:
    return {
        "ip_set": {"name": ip_set.name, "id": ip_set.ip_set_id},
        "ip_version": ip_set.ip_version,
        **report,
        **extra,
    }


@action("aws.wafv2.block_ips", params=BlockIps)
async def block_ips(params: BlockIps, ctx: ActionContext) -> Output:
    """Add addresses to a WAFv2 IP set; record those added (undo: aws.wafv2.unblock_ips)."""
    waf = _waf(ctx)
    screened = params.screened()

    def add(ip_set: IpSet) -> tuple[list[str] | None, Report]:
        same, other = _split(screened.accepted, ip_set.ip_version)
        present = {A.canonical_or_none(a) for a in ip_set.addresses}
        wanted = [A.canonical(n) for n in same]
        added = [a for a in wanted if a not in present]
        report = {
            "added": added,
            "already_present": [a for a in wanted if a in present],
            "other_family": other,
        }
        if not added:
            return None, report
        if len(ip_set.addresses) + len(added) > MAX_SET_SIZE:
            raise ActionError(
                f"IP set {ip_set.name} holds {len(ip_set.addresses)} addresses; adding "
                f"{len(added)} would pass the WAFv2 limit of {MAX_SET_SIZE}",
                code="limit_exceeded",
            )
        return [*ip_set.addresses, *added], report

    ip_set, report = await _change(waf, params, add)
    refused = [r.to_json() for r in screened.refused]
    log.info(
        "aws.wafv2.block_ips",
        run_id=ctx.run_id,
        step_id=ctx.step_id,
        ip_set=ip_set.name,
        added=len(report["added"]),
        already_present=len(report["already_present"]),
        other_family=len(report["other_family"]),
        refused=len(refused),
    )
    if report["other_family"]:
        log.warning(
            "aws.wafv2.other_family_not_blocked",
            ip_set=ip_set.name,
            ip_version=ip_set.ip_version,
            count=len(report["other_family"]),
        )
    return _output(ip_set, report, refused=refused)


@action("aws.wafv2.unblock_ips", params=UnblockIps)
async def unblock_ips(params: UnblockIps, ctx: ActionContext) -> Output:
    """Remove addresses from a WAFv2 IP set: the undo of aws.wafv2.block_ips."""
    waf = _waf(ctx)
    networks = params.networks()

    def remove(ip_set: IpSet) -> tuple[list[str] | None, Report]:
        same, other = _split(networks, ip_set.ip_version)
        wanted = {A.canonical(n) for n in same}
        kept = [a for a in ip_set.addresses if A.canonical_or_none(a) not in wanted]
        present = {A.canonical_or_none(a) for a in ip_set.addresses}
        ordered = [A.canonical(n) for n in same]
        report = {
            "removed": [a for a in ordered if a in present],
            "absent": [a for a in ordered if a not in present],
            "other_family": other,
        }
        return (kept if report["removed"] else None), report

    ip_set, report = await _change(waf, params, remove)
    log.info(
        "aws.wafv2.unblock_ips",
        run_id=ctx.run_id,
        step_id=ctx.step_id,
        ip_set=ip_set.name,
        removed=len(report["removed"]),
        absent=len(report["absent"]),
    )
    return _output(ip_set, report)
