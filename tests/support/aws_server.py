"""A real AWS API endpoint on loopback for integration tests: moto's server, plus a request log.

`MotoServer` serves moto's WSGI application (the one `ThreadedMotoServer` and the `moto_server`
command run) from a thread of the test process, wrapped in a small WSGI middleware that records
each request's AWS action (`UpdateAccessKey`, or `UpdateIPSet` from a JSON-protocol target
header, ...) and response status. Because the server runs
in the test process, the log is readable directly even when the client is another process (a
`responder worker` the test starts and kills), which is what an exactly-once test needs; the same
log is also served as JSON at `GET /_responder/requests` for a reader in another process.
`ThreadedMotoServer` itself offers no hook for this, and moto's recorder writes a process-global
file, so it does not separate concurrent servers.

moto keeps its backends in module globals: every server in one process shares the same accounts,
so tests use unique user names rather than expecting an empty account.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import boto3
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from tests.support.threaded import ThreadedServer

REGION = "us-east-1"
# moto accepts any credentials; these are not secrets.
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
LOG_PATH = "/_responder/requests"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class RecordedRequest:
    action: str
    params: dict[str, str]
    status: int


def _body_params(raw: bytes, *, json_protocol: bool) -> dict[str, str]:
    """A request body's parameters: form fields, or a JSON body's top-level scalars."""
    text = raw.decode("utf-8", "replace")
    if not json_protocol:
        return {k: v[0] for k, v in parse_qs(text).items()}
    try:
        body = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(body, dict):
        return {}
    return {k: str(v) for k, v in body.items() if isinstance(v, str | int | float)}


class _RecordingApp:
    """WSGI middleware: note the AWS query-protocol action of each request, then pass it on."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self.requests)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == LOG_PATH:
            body = json.dumps([r.__dict__ for r in self.snapshot()]).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        params = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        target = environ.get("HTTP_X_AMZ_TARGET", "")  # JSON protocol (WAFv2): Service.Action
        if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", "") or target:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(raw)  # moto reads the body again
            params |= _body_params(raw, json_protocol=bool(target))
        action = target.rsplit(".", 1)[-1] if target else params.pop("Action", "")

        def recording_start_response(status: str, headers: Any, *exc: Any) -> Any:
            with self._lock:
                self.requests.append(RecordedRequest(action, params, int(status.split()[0])))
            return start_response(status, headers, *exc)

        return self._app(environ, recording_start_response)


class _QuietHandler(MotoRequestHandler):
    """No access log line per request: the recording above is the log tests read."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class MotoServer(ThreadedServer):
    """moto on 127.0.0.1 and a free port; a context manager. `endpoint_url` is its address."""

    name = "moto-server"

    def __init__(self) -> None:
        super().__init__()
        self._app = _RecordingApp(DomainDispatcherApplication(create_backend_app))

    def make_server(self) -> BaseWSGIServer:
        return make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_QuietHandler)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what the server saw ------------------------------------------------------------------

    def requests(self, action: str | None = None) -> list[RecordedRequest]:
        return [r for r in self._app.snapshot() if action is None or r.action == action]

    def count(self, action: str, *, ok_only: bool = True, **params: str) -> int:
        """How many `action` requests (e.g. UpdateAccessKey) arrived, optionally only those
        that succeeded and whose parameters include `params` (AccessKeyId=..., Status=...)."""
        return sum(
            1
            for r in self.requests(action)
            if (not ok_only or r.status < 300)
            and all(r.params.get(k) == v for k, v in params.items())
        )

    # -- IAM set-up helpers --------------------------------------------------------------------

    def iam(self) -> Any:
        """A plain boto3 IAM client on this server (for set-up and checks, not under test)."""
        return boto3.client(
            "iam", endpoint_url=self.endpoint_url, region_name=REGION, **CREDENTIALS
        )

    def create_user_with_key(self, user_name: str | None = None) -> tuple[str, str]:
        """A new IAM user with one active access key: (user name, access key id)."""
        user = user_name or f"u-{uuid.uuid4().hex[:10]}"
        iam = self.iam()
        iam.create_user(UserName=user)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return user, str(key["AccessKeyId"])

    def key_status(self, user_name: str, access_key_id: str) -> str | None:
        """ "Active" / "Inactive" as `ListAccessKeys` reports it; None when the key is gone."""
        listed = self.iam().list_access_keys(UserName=user_name)["AccessKeyMetadata"]
        return next((str(k["Status"]) for k in listed if k["AccessKeyId"] == access_key_id), None)

    # -- WAFv2 set-up helpers ------------------------------------------------------------------

    def wafv2(self) -> Any:
        """A plain boto3 WAFv2 client on this server (for set-up and checks, not under test)."""
        return boto3.client(
            "wafv2", endpoint_url=self.endpoint_url, region_name=REGION, **CREDENTIALS
        )

    def create_ip_set(
        self, addresses: list[str] | None = None, *, ip_version: str = "IPV4"
    ) -> tuple[str, str]:
        """A new REGIONAL IP set with a unique name: (name, id)."""
        name = f"blocklist-{uuid.uuid4().hex[:10]}"
        made = self.wafv2().create_ip_set(
            Name=name,
            Scope="REGIONAL",
            IPAddressVersion=ip_version,
            Addresses=addresses or [],
            Description="blocked by responder playbooks",
        )
        return name, str(made["Summary"]["Id"])

    def ip_set(self, name: str, ip_set_id: str) -> dict[str, Any]:
        """`GetIPSet`'s `IPSet` (Addresses, Description, ...)."""
        found: dict[str, Any] = self.wafv2().get_ip_set(Name=name, Scope="REGIONAL", Id=ip_set_id)
        return dict(found["IPSet"])
