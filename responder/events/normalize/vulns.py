"""What the vulnerability scanners share: severity tables, CVSS scores, and the
`vulnerability.found` draft with the attributes every one of them fills the same way."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from responder.events.normalize.core import Draft, compact
from responder.events.schema import SeverityName

# the scanners that name their severities in capitals (Trivy, Grype, ModelScan); keys upper case
SEVERITY_WORDS: dict[str, SeverityName] = {
    "CRITICAL": "critical",
    "HIGH": "high",
    "MEDIUM": "medium",
    "LOW": "low",
}

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


def first_cve(ids: Iterable[str | None]) -> str | None:
    """The first of `ids` that is a CVE id."""
    return next((i for i in ids if i and i.upper().startswith("CVE-")), None)


def package_resource(resource_id: str, name: str, version: str | None) -> dict[str, str]:
    """The resource of a finding in a package (the report names no application)."""
    return {"kind": "package", "id": resource_id, "name": name, "version": version or ""}


def finding(
    *,
    key: tuple[str, ...],
    severity: SeverityName,
    title: str,
    resource: dict[str, str],
    time: datetime | None,
    cve: str | None,
    vulnerability_id: str,
    aliases: list[Any],
    package: str,
    **attributes: Any,
) -> Draft:
    """A `vulnerability.found` draft: the attributes every scanner gives first, then its own
    (None and empty values left out)."""
    return Draft(
        key=key,
        type="vulnerability.found",
        severity=severity,
        title=title,
        resource=resource,
        time=time,
        attributes=compact(
            {
                "cve": cve,
                "vulnerability_id": vulnerability_id,
                "aliases": aliases,
                "package": package,
                **attributes,
            }
        ),
    )
