"""What a service operation refuses, in terms any front end can map (HTTP status, exit code)."""

from __future__ import annotations


class ServiceError(Exception):
    """Base: the message is safe to show to the caller."""


class NotFound(ServiceError):
    """No such incident, run, token... (404)."""


class Invalid(ServiceError):
    """The request is well-formed but its values cannot be used (422)."""


class Conflict(ServiceError):
    """The target is in a state where the operation does not apply (409)."""


class PreconditionFailed(ServiceError):
    """The caller's expected version no longer holds (412); `current` is the tag now."""

    def __init__(self, message: str, current: str) -> None:
        super().__init__(message)
        self.current = current


class Unavailable(ServiceError):
    """A dependency (Kafka, the database) did not answer in time (503)."""
