"""An incident's entity tag: what an analyst saw, so a change based on it can be refused if stale.

`version` counts correlation changes only (the sink skips versions it has), so it cannot also
count analyst edits. The tag hashes the fields any writer changes (`updated_at` moves on every
write; status, severity, assignee, comment count and version make a collision need identical
state, which is then no lost update). Pure: the API sends it as `ETag`, a command carries it
back, and the worker compares it with the row it is about to change.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Protocol


class Tagged(Protocol):
    id: str
    version: int
    status: str
    severity: str
    assignee: str | None
    event_count: int
    comments: list[dict[str, Any]]
    updated_at: datetime


def _utc(value: datetime) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite returns naive UTC
    return aware.astimezone(UTC).isoformat(timespec="microseconds")


def incident_etag(row: Tagged) -> str:
    """32 hex digits (128 bits of SHA-256) over the incident's mutable state."""
    state = [
        row.id,
        row.version,
        row.status,
        row.severity,
        row.assignee,
        row.event_count,
        len(row.comments),
        _utc(row.updated_at),
    ]
    return hashlib.sha256(json.dumps(state).encode()).hexdigest()[:32]
