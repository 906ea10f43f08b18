"""`http.request`: call a webhook or an internal API from a playbook, behind a host allow list.

Why the guard: playbook URLs are templated from incident data, and incident data comes from events
that whoever can write to the topic can shape. Unguarded, a playbook could be steered to a cloud
metadata endpoint (169.254.169.254), an admin port or a file:// URL (SSRF). So the adapter only
talks to hosts the operator listed (`RESPONDER_HTTP__ALLOWED_HOSTS`), never follows redirects (a
redirect could leave the list), and refuses credentials inside URLs (they would sit in playbooks
and logs; put them in headers). Host names are matched, not addresses: the operator vouches for
what a listed name resolves to.

Allow-list entries: `hooks.example.com` (that host on the scheme's default port),
`*.example.com` (any subdomain, not example.com itself), `host:port` or `[v6addr]:port` for other
ports. An empty list refuses everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import orjson
import structlog
from pydantic import BaseModel, ConfigDict, Field
from yarl import URL

from responder.actions.ports import HttpResponse
from responder.actions.registry import ActionContext, ActionError, Output, action
from responder.security.redact import mask_text

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 64 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}
RETRYABLE_STATUSES = frozenset({408, 425, 429})  # plus every 5xx


@dataclass(frozen=True)
class _Entry:
    host: str  # as yarl encodes it (lowercase, IDNA), no trailing dot
    subdomains: bool
    port: int | None


def _canonical_host(host: str) -> str:
    return (URL.build(scheme="http", host=host).raw_host or "").rstrip(".")


def _parse_entry(raw: str) -> _Entry:
    text = raw.strip().lower()
    port: str | None = None
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(f"bad allowed host {raw!r}")
        port = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:  # a name, an IPv4 address or a bare IPv6 address
        host = text
    subdomains = host.startswith("*.")
    if subdomains:
        host = host[2:]
    if not host or any(c in host for c in "*/@?#\\ "):
        raise ValueError(f"bad allowed host {raw!r}")
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"bad port in allowed host {raw!r}")
    return _Entry(_canonical_host(host), subdomains, int(port) if port is not None else None)


class HostAllowList:
    """Decides whether a URL may be requested; pure, so it is tested without a network."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._entries = tuple(_parse_entry(e) for e in entries)

    def check(self, url: str) -> URL:
        """The parsed URL to request (the very object checked), or ActionError."""
        try:
            target = URL(url)
        except (ValueError, TypeError) as exc:
            raise ActionError(f"invalid URL: {exc}", code="invalid_url") from None
        if target.scheme not in DEFAULT_PORTS:
            raise ActionError(
                f"scheme {target.scheme!r} is not allowed (http, https)", code="scheme_not_allowed"
            )
        if not target.raw_host:
            raise ActionError("the URL has no host", code="invalid_url")
        if target.raw_user is not None or target.raw_password is not None:
            raise ActionError(
                "credentials in URLs are refused; send them in a header",
                code="userinfo_not_allowed",
            )
        host = target.raw_host.rstrip(".")
        port = target.port
        if not self.allows(host=host, port=port, scheme=target.scheme):
            shown = f"[{host}]" if ":" in host else host
            raise ActionError(
                f"host {shown}:{port} is not in http.allowed_hosts", code="host_not_allowed"
            )
        return target

    def allows(self, *, host: str, port: int | None, scheme: str) -> bool:
        default = DEFAULT_PORTS.get(scheme)
        for entry in self._entries:
            if entry.port is None and port != default:
                continue
            if entry.port is not None and port != entry.port:
                continue
            if host == entry.host if not entry.subdomains else host.endswith("." + entry.host):
                return True
        return False


async def _read_capped(content: aiohttp.StreamReader, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the body, and whether there was more (a huge body is not read)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    raw = b"".join(chunks)
    return raw[:limit], len(raw) > limit


class AiohttpAdapter:
    """`HttpPort` over aiohttp, with the allow list, no redirects and a total timeout.

    One session per request: actions are rare next to events, and a session per call needs no
    lifecycle tied to the worker's event loop. Proxy settings from the environment are ignored
    (`trust_env=False`) so they cannot route around the allow list.
    """

    def __init__(
        self,
        *,
        allowed_hosts: Iterable[str],
        timeout_s: float = 10.0,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.allow_list = HostAllowList(allowed_hosts)
        self._timeout_s = timeout_s
        self._max_body = max_body_bytes

    @property
    def default_timeout_s(self) -> float:
        return self._timeout_s

    async def request(
        self,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        json: Any | None,
        timeout_s: float,
    ) -> HttpResponse:
        target = self.allow_list.check(url)
        if any(name.lower() == "host" for name in headers):
            raise ActionError("the Host header cannot be set", code="header_not_allowed")
        shown = str(target.with_query(None).with_fragment(None))  # a query may carry secrets
        try:
            async with (
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=timeout_s), trust_env=False
                ) as session,
                session.request(
                    method, target, headers=dict(headers), json=json, allow_redirects=False
                ) as resp,
            ):
                raw, truncated = await _read_capped(resp.content, self._max_body)
                status, charset = resp.status, resp.charset or "utf-8"
                response_headers = {k: v for k, v in resp.headers.items()}
        except TimeoutError:
            raise ActionError(
                f"{method} {shown}: no answer within {timeout_s}s", retryable=True, code="timeout"
            ) from None
        except aiohttp.ClientError as exc:
            raise ActionError(
                f"{method} {shown}: {type(exc).__name__}", retryable=True, code="connection_error"
            ) from None
        log.info("http request sent", method=method, host=target.host, status=status)
        return HttpResponse(
            status=status,
            headers=response_headers,
            body=_decode(raw, charset),
            json=None if truncated else _json(raw),
            truncated=truncated,
        )


def _decode(raw: bytes, charset: str) -> str:
    try:
        return raw.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        return raw.decode("utf-8", errors="replace")


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None


class HttpRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str = Field(description="its host must be listed in http.allowed_hosts")
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = Field(default=None, alias="json", description="sent as the JSON body")
    timeout_s: float | None = Field(
        default=None, gt=0, le=300, description="unset: the http.timeout_s setting"
    )
    ok_status: list[int] | None = Field(
        default=None, description="statuses that count as success; unset: any 2xx"
    )


def _status_error(method: str, url: str, resp: HttpResponse) -> ActionError:
    shown = url.split("?", 1)[0].split("#", 1)[0]  # a query may carry secrets
    return ActionError(
        f"{method} {shown} answered {resp.status}: {mask_text(resp.body)[:200]}",
        retryable=resp.status >= 500 or resp.status in RETRYABLE_STATUSES,
        code=f"http_{resp.status}",
    )


@action("http.request", params=HttpRequest)
async def http_request(params: HttpRequest, ctx: ActionContext) -> Output:
    """Send an HTTP request to an allow-listed host (webhooks, ticketing, internal APIs)."""
    port = ctx.ports.http
    if port is None:
        raise ActionError(
            "http.request is not configured: list the hosts it may call in "
            "RESPONDER_HTTP__ALLOWED_HOSTS",
            code="not_configured",
        )
    # The receiver can drop a retried or redelivered step: same run and step, same key.
    headers = {k: v for k, v in params.headers.items() if k.lower() != "idempotency-key"}
    headers["Idempotency-Key"] = ctx.idempotency_key
    timeout_s = params.timeout_s if params.timeout_s is not None else port.default_timeout_s
    resp = await port.request(
        method=params.method, url=params.url, headers=headers, json=params.body, timeout_s=timeout_s
    )
    ok = (
        resp.status in params.ok_status
        if params.ok_status is not None
        else 200 <= resp.status < 300
    )
    if not ok:
        raise _status_error(params.method, params.url, resp)
    out: dict[str, Any] = {"status": resp.status}
    if resp.json is not None:
        out["json"] = resp.json
    else:
        out["body"] = resp.body
    if resp.truncated:
        out["truncated"] = True
    return out
