"""`FakeWaf`: an in-memory `WafPort` with lock tokens, counting calls per method.

Like WAFv2, every update must present the lock token of the latest read (else
`ActionError(code="lock_conflict")`) and gets a new one; an unknown set is `not_found`.
`meddle_before_update` queues changes "someone else" makes between a read and the next update,
so the lock conflict and the retry are exercised as they happen on AWS; `fail_next` queues errors
per method.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field

from responder.actions.ports import IpSet, IpVersion
from responder.actions.registry import ActionError


@dataclass
class FakeIpSet:
    name: str
    ip_set_id: str
    ip_version: IpVersion
    addresses: list[str] = field(default_factory=list)
    description: str | None = None
    lock_token: str = "0"


class FakeWaf:
    def __init__(self) -> None:
        self.sets: dict[str, FakeIpSet] = {}
        self.calls: Counter[str] = Counter()
        self.fail_next: dict[str, list[Exception]] = {}
        self.meddle_before_update: list[list[str]] = []  # addresses someone else adds
        self.updates: list[list[str]] = []  # every accepted update's address list
        self._tokens = itertools.count(1)

    def add_set(
        self,
        name: str = "blocklist",
        *,
        ip_set_id: str | None = None,
        ip_version: IpVersion = "IPV4",
        addresses: list[str] | None = None,
        description: str | None = "blocked by responder",
    ) -> FakeIpSet:
        ip_set = FakeIpSet(
            name=name,
            ip_set_id=ip_set_id or f"{len(self.sets) + 1:08d}-0000-4000-8000-000000000000",
            ip_version=ip_version,
            addresses=list(addresses or []),
            description=description,
            lock_token=str(next(self._tokens)),
        )
        self.sets[ip_set.ip_set_id] = ip_set
        return ip_set

    def _enter(self, method: str) -> None:
        self.calls[method] += 1
        queued = self.fail_next.get(method)
        if queued:
            raise queued.pop(0)

    def _find(self, name: str, ip_set_id: str) -> FakeIpSet:
        found = self.sets.get(ip_set_id)
        if found is None or found.name != name:
            raise ActionError(
                "WAFv2 get_ip_set failed: WAFNonexistentItemException: no such set",
                code="not_found",
            )
        return found

    async def get_ip_set(self, *, name: str, ip_set_id: str) -> IpSet:
        self._enter("get_ip_set")
        found = self._find(name, ip_set_id)
        return IpSet(
            name=found.name,
            ip_set_id=found.ip_set_id,
            ip_version=found.ip_version,
            addresses=tuple(found.addresses),
            lock_token=found.lock_token,
            description=found.description,
        )

    async def update_ip_set(self, *, ip_set: IpSet, addresses: list[str]) -> None:
        self._enter("update_ip_set")
        found = self._find(ip_set.name, ip_set.ip_set_id)
        if self.meddle_before_update:
            found.addresses.extend(self.meddle_before_update.pop(0))
            found.lock_token = str(next(self._tokens))
        if ip_set.lock_token != found.lock_token:
            raise ActionError(
                "WAFv2 update_ip_set failed: WAFOptimisticLockException: changed since read",
                code="lock_conflict",
                retryable=True,
            )
        found.addresses = list(addresses)
        found.description = ip_set.description
        found.lock_token = str(next(self._tokens))
        self.updates.append(list(addresses))
