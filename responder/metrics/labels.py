"""Label values from bounded sets only. Pure.

Rejection reasons are free text (they name sizes and fields): `reason` buckets them into a few
fixed names. Values that come from configuration (rule kinds, playbook ids, action names) are
bounded in practice, but a message on a topic could carry anything, so `Bounded` lets through
the first `limit` distinct values and calls the rest `other`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

OTHER = "other"
MAX_VALUE = 64

REASONS = (
    ("event too large", "too_large"),
    ("invalid JSON", "invalid_json"),
    ("schema violation", "schema"),
    ("invalid incident change", "invalid_change"),
    ("invalid command", "invalid_command"),
    ("command does not apply", "command_does_not_apply"),
)


def reason(text: str) -> str:
    """The bucket of a rejection reason: one of `REASONS`' names, else `other`."""
    for prefix, name in REASONS:
        if text.startswith(prefix):
            return name
    return OTHER


class Routes:
    """A request path's route template (`/v1/incidents/{incident_id}`), from a fixed list."""

    def __init__(self, templates: Iterable[str]) -> None:
        self.patterns = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(t)) + "$"), t)
            for t in sorted(set(templates), key=lambda t: (t.count("{"), t))
        ]

    def template(self, path: str) -> str | None:
        """The first template (fewest parameters first) that matches the whole path."""
        for pattern, template in self.patterns:
            if pattern.match(path):
                return template
        return None


class Bounded:
    """At most `limit` distinct values (each cut to 64 characters); the rest are `other`."""

    def __init__(self, limit: int = 100) -> None:
        self.limit = limit
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, value: str) -> str:
        value = value[:MAX_VALUE]
        if value in self.seen:
            return value
        with self.lock:
            if len(self.seen) >= self.limit:
                return OTHER
            self.seen.add(value)
        return value
