"""`FakeHttp`: an in-memory `HttpPort` with canned responses per URL.

It applies the same `HostAllowList` as the real adapter when given `allowed_hosts`, so a unit
test of a playbook can show that a templated URL would be refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from responder.actions.http import HostAllowList
from responder.actions.ports import HttpResponse


def response(status: int = 200, json: Any = None, body: str | None = None) -> HttpResponse:
    """An HttpResponse as the adapter would build it from a JSON (or text) body."""
    text = body if body is not None else (orjson.dumps(json).decode() if json is not None else "")
    return HttpResponse(status=status, headers={}, body=text, json=json)


class FakeHttp:
    """Records every request; `respond(url, ...)` queues answers (the last one repeats)."""

    def __init__(
        self,
        *,
        default_timeout_s: float = 10.0,
        allowed_hosts: Iterable[str] | None = None,
        default: HttpResponse | None = None,
    ) -> None:
        self.default_timeout_s = default_timeout_s
        self.requests: list[dict[str, Any]] = []
        self._allow = HostAllowList(allowed_hosts) if allowed_hosts is not None else None
        self._default = default or response(200, json={"ok": True})
        self._routes: dict[tuple[str | None, str], list[HttpResponse | Exception]] = {}

    def respond(
        self, url: str, *answers: HttpResponse | Exception, method: str | None = None
    ) -> None:
        self._routes[(method, url)] = list(answers)

    async def request(
        self,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        json: Any | None,
        timeout_s: float,
    ) -> HttpResponse:
        if self._allow is not None:
            self._allow.check(url)  # raises like the real adapter, before anything is recorded
        self.requests.append(
            {
                "method": method,
                "url": url,
                "headers": dict(headers),
                "json": json,
                "timeout_s": timeout_s,
            }
        )
        answers = self._routes.get((method, url)) or self._routes.get((None, url))
        if not answers:
            return self._default
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer
