"""The action registry: `@action("slack.notify", params=SlackNotify)` registers an async function.

An action receives its validated parameter model and an `ActionContext` (run id, step id, the
incident as the playbook sees it, and the ports built by `responder.bootstrap`). It returns a
JSON-serializable mapping: the step's `output`, stored with the run and available to later steps
as `steps.<id>.output`. Parameters are checked when playbooks load, not when they run.

Actions raise `ActionError` for failures they understand; `retryable=True` tells the runner a
retry may succeed (timeouts, 5xx, throttling). Any other exception is a non-retryable failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from responder.actions.ports import Ports

P = TypeVar("P", bound=BaseModel)
Output = Mapping[str, Any]
ActionFn = Callable[[Any, "ActionContext"], Awaitable[Output]]


class ActionError(Exception):
    """An action failed; `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = False, code: str = "error") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


PortT = TypeVar("PortT")


def configured(port: PortT | None, integration: str) -> PortT:
    """The port, or the `not_configured` ActionError that says which integration is missing."""
    if port is None:
        raise ActionError(f"{integration} is not configured", code="not_configured")
    return port


class UnknownAction(KeyError):
    pass


@dataclass(frozen=True)
class ActionContext:
    run_id: str
    step_id: str
    ports: Ports
    incident: Mapping[str, Any] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and restarts of the same step of the same run."""
        return f"{self.run_id}:{self.step_id}"


@dataclass(frozen=True)
class ActionSpec:
    name: str
    params: type[BaseModel]
    fn: ActionFn
    side_effect: bool
    description: str


class Registry:
    def __init__(self) -> None:
        self._specs: dict[str, ActionSpec] = {}

    def action(
        self, name: str, *, params: type[P], side_effect: bool = True
    ) -> Callable[
        [Callable[[P, ActionContext], Awaitable[Output]]],
        Callable[[P, ActionContext], Awaitable[Output]],
    ]:
        def register(
            fn: Callable[[P, ActionContext], Awaitable[Output]],
        ) -> Callable[[P, ActionContext], Awaitable[Output]]:
            if name in self._specs:
                raise ValueError(f"action {name!r} is registered twice")
            doc = (fn.__doc__ or "").strip().splitlines()
            self._specs[name] = ActionSpec(
                name=name,
                params=params,
                fn=fn,
                side_effect=side_effect,
                description=doc[0] if doc else "",
            )
            return fn

        return register

    def get(self, name: str) -> ActionSpec:
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(sorted(self._specs))
            raise UnknownAction(f"unknown action {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs


REGISTRY = Registry()
action = REGISTRY.action
