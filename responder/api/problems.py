"""Errors as RFC 9457 problem details (`application/problem+json`), for every error the API
answers: its own refusals, FastAPI's validation errors, service refusals and crashes."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from responder.service.errors import (
    Conflict,
    Invalid,
    NotFound,
    PreconditionFailed,
    ServiceError,
    Unavailable,
)

log = structlog.get_logger(__name__)

MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://responder.dev/problems/"


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(default="about:blank", description="a URI naming the kind of problem")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="the request path")
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="validation errors: location and message"
    )


class ProblemError(Exception):
    """Raise to answer with a problem (status, detail, optional type slug and headers)."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or HTTPStatus(status).phrase)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.headers = headers or {}


class BodyTooLarge(Exception):
    """The request body exceeds its limit (raised while it is read)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body exceeds {limit} bytes")
        self.limit = limit


def problem(
    status: int,
    detail: str | None = None,
    *,
    kind: str | None = None,
    path: str | None = None,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    """A problem+json response."""
    body = Problem(
        type=f"{PROBLEM_BASE}{kind}" if kind else "about:blank",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=path,
        request_id=request_id,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def _for(request: Request, status: int, detail: str | None, **kw: Any) -> JSONResponse:
    request_id = request.scope.get("state", {}).get("request_id")
    return problem(status, detail, path=request.url.path, request_id=request_id, **kw)


SERVICE_STATUS: dict[type[ServiceError], tuple[int, str]] = {
    NotFound: (404, "not-found"),
    Invalid: (422, "invalid"),
    Conflict: (409, "conflict"),
    PreconditionFailed: (412, "stale"),
    Unavailable: (503, "unavailable"),
}


def service_status(
    exc: ServiceError, default: tuple[int, str] = (500, "internal")
) -> tuple[int, str]:
    """The HTTP status and problem kind a refused service operation answers with."""
    return next((v for k, v in SERVICE_STATUS.items() if isinstance(exc, k)), default)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return _for(request, exc.status, exc.detail, kind=exc.kind, headers=exc.headers)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else None
        return _for(request, exc.status_code, detail, headers=dict(exc.headers or {}))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        return _for(request, 422, "the request does not validate", kind="validation", errors=errors)

    async def on_service(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        status, kind = service_status(exc)
        headers = {"ETag": f'"{exc.current}"'} if isinstance(exc, PreconditionFailed) else None
        return _for(request, status, str(exc), kind=kind, headers=headers)

    async def on_too_large(request: Request, exc: Exception) -> JSONResponse:
        return _for(request, 413, str(exc), kind="too-large")

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed", error=type(exc).__name__)
        return _for(request, 500, "internal error; see the server log with the request id")

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(ServiceError, on_service)
    app.add_exception_handler(BodyTooLarge, on_too_large)
    app.add_exception_handler(Exception, on_crash)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problems an operation may answer with."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
