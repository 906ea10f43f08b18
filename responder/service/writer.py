"""What a write operation needs (the database to validate against, a publisher), and the two
steps every one of them takes: check in SQL (in a worker thread), then publish a command."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine
from sqlmodel import Session

from responder.commands import AnyCommand
from responder.service.errors import Invalid
from responder.service.publish import Publisher

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Writer:
    engine: Engine
    publisher: Publisher

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(session, *args)` in a worker thread, read only."""

        def work() -> T:
            with Session(self.engine) as session:
                return fn(session, *args)

        return await asyncio.to_thread(work)

    async def send(self, command: AnyCommand) -> AnyCommand:
        """Publish `command` (return once the broker has it) and return it."""
        await self.publisher.publish(command)
        return command


def describe(exc: ValidationError) -> str:
    """A validation error as one line (`field: message; ...`), without the input values."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def build(model: type[M], **fields: Any) -> M:
    """A command from fields; Invalid (with the reasons) when they do not validate."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise Invalid(describe(exc)) from None
