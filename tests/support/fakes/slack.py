"""`FakeSlack`: an in-memory `SlackPort` that records what would have been posted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from responder.actions.registry import ActionError


class FakeSlack:
    """Posts get increasing `ts` values; updates must name a posted message, as on Slack.

    Queue exceptions in `errors` to make the next calls fail (e.g. a retryable ActionError).
    """

    def __init__(self, default_channel: str = "#secops-incidents") -> None:
        self.default_channel = default_channel
        self.posts: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.errors: list[Exception] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}  # latest text/blocks
        self._seq = 0

    @property
    def calls(self) -> int:
        return len(self.posts) + len(self.updates)

    def _maybe_fail(self) -> None:
        if self.errors:
            raise self.errors.pop(0)

    async def post_message(
        self, *, channel: str, text: str, blocks: list[dict[str, Any]]
    ) -> Mapping[str, Any]:
        self._maybe_fail()
        self._seq += 1
        ts = f"1700000000.{self._seq:06d}"
        self.posts.append({"channel": channel, "ts": ts, "text": text, "blocks": blocks})
        self.messages[(channel, ts)] = {"text": text, "blocks": blocks}
        return {"ok": True, "channel": channel, "ts": ts}

    async def update_message(
        self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]
    ) -> Mapping[str, Any]:
        self._maybe_fail()
        if (channel, ts) not in self.messages:
            raise ActionError(
                "slack chat.update failed: message_not_found (HTTP 200)",
                code="message_not_found",
            )
        self.updates.append({"channel": channel, "ts": ts, "text": text, "blocks": blocks})
        self.messages[(channel, ts)] = {"text": text, "blocks": blocks}
        return {"ok": True, "channel": channel, "ts": ts}
