"""The REST API as a CLI backend (`--api URL`, token from RESPONDER_API_TOKEN): the same
operations and view models as `Direct`, over HTTP. The API records the token's name as the
actor, so `--by` does not apply."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from responder.cli.backend import Request, Sent
from responder.service.switch import KillSwitchState
from responder.service.views import IncidentDetail, IncidentView, Page, RunDetail, RunView

TOKEN_VARIABLE = "RESPONDER_API_TOKEN"  # noqa: S105  (the variable's name)


class RemoteError(Exception):
    """The API refused or failed (its problem detail, or why it could not be reached)."""


def _segment(value: str) -> str:
    return quote(value, safe="")


class Remote:
    def __init__(self, url: str, token: str, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.commands_topic = f"responder.commands (through {self.url})"
        self.client = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout_s,
            follow_redirects=False,  # never send the token elsewhere
        )

    @classmethod
    def from_environment(cls, url: str) -> Remote:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"--api wants an http(s) URL, not {url!r}")
        token = os.environ.get(TOKEN_VARIABLE, "").strip()
        if not token:
            raise ValueError(f"--api needs a token in {TOKEN_VARIABLE}")
        return cls(url, token)

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RemoteError(f"the API at {self.url} did not answer: {exc}") from None
        if response.status_code >= 400:
            detail = response.reason_phrase
            if response.headers.get("content-type", "").startswith("application/problem+json"):
                problem = response.json()
                detail = problem.get("detail") or problem.get("title") or detail
            raise RemoteError(f"{response.status_code}: {detail}")
        return response

    @staticmethod
    def _no_by(by: str | None) -> None:
        if by:
            raise RemoteError("--by does not apply with --api: the API records the token's name")

    def incidents(
        self, *, status: Sequence[str], severity: Sequence[str], limit: int
    ) -> list[IncidentView]:
        params = {"status": list(status), "severity": list(severity), "limit": limit}
        page = self._call("GET", "/v1/incidents", params=params).json()
        return Page[IncidentView].model_validate(page).items

    def incident(self, incident_id: str) -> IncidentDetail:
        answer = self._call("GET", f"/v1/incidents/{_segment(incident_id)}")
        return IncidentDetail.model_validate(answer.json())

    def runs(self, *, status: Sequence[str], limit: int) -> list[RunView]:
        page = self._call("GET", "/v1/runs", params={"status": list(status), "limit": limit})
        return Page[RunView].model_validate(page.json()).items

    def run(self, run_id: str) -> RunDetail:
        return RunDetail.model_validate(self._call("GET", f"/v1/runs/{_segment(run_id)}").json())

    def kill_switch(self) -> KillSwitchState:
        return KillSwitchState.model_validate(self._call("GET", "/v1/kill-switch").json())

    def _sent(self, response: httpx.Response) -> Sent:
        accepted = response.json()
        return Sent(accepted["command_id"], accepted["target"])

    def incident_action(self, request: Request) -> Sent:
        headers = {"If-Match": f'"{request.expected}"'} if request.expected else {}
        return self._act(f"/v1/incidents/{_segment(request.target)}", request, headers)

    def run_action(self, request: Request) -> Sent:
        return self._act(f"/v1/runs/{_segment(request.target)}", request, {})

    def _act(self, path: str, request: Request, headers: dict[str, str]) -> Sent:
        self._no_by(request.by)
        answer = self._call("POST", f"{path}/{request.action}", json=request.body, headers=headers)
        return self._sent(answer)

    def set_kill_switch(self, on: bool, reason: str | None, *, by: str | None) -> Sent:
        self._no_by(by)
        body: dict[str, Any] = {"on": on} | ({"reason": reason} if reason else {})
        return self._sent(self._call("PUT", "/v1/kill-switch", json=body))
