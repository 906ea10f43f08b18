"""What the routes that publish a command share: 202 Accepted, the role they need, the problems
they may answer, and the answer naming the command and its target."""

from __future__ import annotations

from typing import Any

from responder.api.auth import needs
from responder.api.problems import responses
from responder.api.schemas import Accepted
from responder.commands import AnyCommand
from responder.service.identity import Role


def command_route(role: Role, *problems: int) -> dict[str, Any]:
    """The decorator arguments of a route that publishes a command."""
    return {
        "status_code": 202,
        "response_model": Accepted,
        "openapi_extra": needs(role),
        "responses": responses(*problems),
    }


def accepted(command: AnyCommand, target_field: str) -> Accepted:
    """The answer for `command`, its target read from the command's `target_field`."""
    return Accepted.of(command, getattr(command, target_field, ""))
