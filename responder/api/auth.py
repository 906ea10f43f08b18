"""Authorization: every `/v1` operation names the role it needs (`x-required-role` in the
OpenAPI document), and `GuardedRoute` checks it before FastAPI reads, parses or validates
anything of the request (path parameters, query, body): a role too low gets 403 whatever it
sent. Authentication happened earlier (`middleware.Authenticate`)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from responder.api.problems import ProblemError
from responder.service.identity import Principal, Role, permits

ROLE_KEY = "x-required-role"

bearer = HTTPBearer(
    auto_error=False, description="an API token: `responder tokens create --name N --role R`"
)


def needs(role: Role) -> dict[str, Any]:
    """`openapi_extra` of an operation that needs `role`."""
    return {ROLE_KEY: role.value}


def _principal_of(request: Request) -> Principal | None:
    principal = request.scope.get("state", {}).get("principal")
    return principal if isinstance(principal, Principal) else None


class GuardedRoute(APIRoute):
    """An API route that refuses callers without the operation's role, first thing."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        extra = kwargs.get("openapi_extra") or {}
        if ROLE_KEY not in extra:
            raise ValueError(f"{path}: every /v1 operation declares the role it needs")
        self.required = Role(extra[ROLE_KEY])
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        required = self.required
        known = _query_names(self.dependant)

        async def guarded(request: Request) -> Response:
            principal = _principal_of(request)
            if principal is None:  # the middleware answers first; this is a second lock
                raise ProblemError(401, "a valid API token is required", kind="unauthenticated")
            if not permits(principal.role, required):
                raise ProblemError(
                    403,
                    f"this operation needs the {required.value} role; "
                    f"token {principal.name!r} has {principal.role.value}",
                    kind="forbidden",
                )
            unknown = sorted(set(request.query_params) - known)
            if unknown:  # a misspelt filter must not silently widen a query
                raise ProblemError(
                    422, f"unknown query parameters: {', '.join(unknown)}", kind="validation"
                )
            await request.body()  # read now, under BodyLimit: 413 rather than FastAPI's 400
            return await handler(request)

        return guarded


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def _declared(
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Router dependency: declares bearer auth in the OpenAPI document."""


def current(request: Request) -> Principal:
    principal = _principal_of(request)
    if principal is None:
        raise ProblemError(401, "a valid API token is required", kind="unauthenticated")
    return principal


Caller = Annotated[Principal, Depends(current)]
DECLARE_BEARER = Depends(_declared)
