"""What the vulnerability scanners share: severity tables and CVSS scores."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from responder.events.schema import SeverityName

# CVSS v3 qualitative rating (FIRST, CVSS v3.1 specification, section 5)
CVSS_RATING: tuple[tuple[float, SeverityName], ...] = (
    (9.0, "critical"),
    (7.0, "high"),
    (4.0, "medium"),
    (0.1, "low"),
)


def severity_of(
    table: Mapping[str, SeverityName], value: str | None, default: SeverityName = "info"
) -> SeverityName:
    """The event severity a tool's own severity maps to (keys upper case)."""
    if value is None:
        return default
    return table.get(value.strip().upper(), default)


def rating(score: float | None) -> SeverityName | None:
    """A CVSS base score as its qualitative rating (None for no score)."""
    if score is None:
        return None
    for floor, name in CVSS_RATING:
        if score >= floor:
            return name
    return "info"


def cvss_score(by_vendor: Mapping[str, Any]) -> tuple[float | None, str | None]:
    """The highest CVSS v3 base score (else v2) among vendors, with its vector."""
    best: tuple[float | None, str | None] = (None, None)
    for version in ("V3", "V2"):
        for entry in by_vendor.values():
            if not isinstance(entry, Mapping):
                continue
            score = entry.get(f"{version}Score")
            if not isinstance(score, int | float) or isinstance(score, bool):
                continue
            if 0 <= score <= 10 and (best[0] is None or score > best[0]):
                vector = entry.get(f"{version}Vector")
                best = (float(score), vector if isinstance(vector, str) else None)
        if best[0] is not None:
            return best
    return best
