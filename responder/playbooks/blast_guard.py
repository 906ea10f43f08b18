"""Guards on an incident's blast radius (pure): a run that would touch too much waits for people.

`guards.max_blast_radius: N` holds back a run whose incident's blast radius
(`incident.blast_radius.size`) exceeds N assets; `guards.critical_requires_approval: true` one
whose blast radius touches a `tier: critical` asset; either also one whose radius was cut at
the walk's limits (`truncated`: it may hold more assets, critical ones among them, than it
shows), so a huge graph cannot hide what a guard watches. What holding back means is
`guards.blast_radius_action`: `approval` (default) blocks the run at its start until the
approval quorum of `guards.approval` releases it; `dry_run` refuses automatic mode and plans
the run without acting. The run starter (`start_sql`) applies the answer of `blast_guard`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from responder.playbooks.schema import Guards


def blast_guard(guards: Guards, radius: Mapping[str, Any] | None) -> str | None:
    """Why the run must be held back, or None; a missing radius holds nothing back."""
    if radius is None:
        return None
    size = radius.get("size")
    limit = guards.max_blast_radius
    if limit is not None and isinstance(size, int) and size > limit:
        return f"guard max_blast_radius={limit}: the blast radius holds {size} assets"
    critical = radius.get("critical")
    if guards.critical_requires_approval and isinstance(critical, list) and critical:
        shown = ", ".join(str(c) for c in critical[:5])
        more = f" and {len(critical) - 5} more" if len(critical) > 5 else ""
        return f"guard critical_requires_approval: the blast radius touches {shown}{more}"
    if radius.get("truncated") is True and (limit is not None or guards.critical_requires_approval):
        return "guard: the blast radius was cut at the walk's limits and may hold more assets"
    return None
