"""`FakeIam`: an in-memory `IamPort` that counts calls per method.

It raises what `Boto3Iam` raises at the port boundary (`ActionError(code="not_found")` for an
unknown key), so the actions are tested against the same contract as the real adapter.
`fail_next` queues errors per method, to exercise the runner's retries.
"""

from __future__ import annotations

from collections import Counter

from responder.actions.ports import AccessKey, KeyStatus
from responder.actions.registry import ActionError


class FakeIam:
    def __init__(self) -> None:
        self.keys: dict[str, AccessKey] = {}
        self.calls: Counter[str] = Counter()
        self.fail_next: dict[str, list[ActionError]] = {}

    def add_key(
        self, access_key_id: str, *, user_name: str = "alice", status: KeyStatus = "Active"
    ) -> AccessKey:
        key = AccessKey(user_name=user_name, access_key_id=access_key_id, status=status)
        self.keys[access_key_id] = key
        return key

    def _enter(self, method: str) -> None:
        self.calls[method] += 1
        queued = self.fail_next.get(method)
        if queued:
            raise queued.pop(0)

    def _find(self, access_key_id: str, user_name: str | None) -> AccessKey:
        key = self.keys.get(access_key_id)
        if key is None or (user_name is not None and key.user_name != user_name):
            raise ActionError(f"no access key {access_key_id}", code="not_found")
        return key

    async def get_access_key(self, *, access_key_id: str, user_name: str | None) -> AccessKey:
        self._enter("get_access_key")
        return self._find(access_key_id, user_name)

    async def set_access_key_status(
        self, *, user_name: str, access_key_id: str, status: KeyStatus
    ) -> None:
        self._enter("set_access_key_status")
        key = self._find(access_key_id, user_name)
        self.keys[access_key_id] = key.model_copy(update={"status": status})

    async def delete_access_key(self, *, user_name: str, access_key_id: str) -> None:
        self._enter("delete_access_key")
        self._find(access_key_id, user_name)
        del self.keys[access_key_id]
