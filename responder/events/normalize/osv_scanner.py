"""OSV-Scanner JSON (`osv-scanner scan --format json`) → `vulnerability.found`, one event per
vulnerability group (OSV-Scanner groups the aliases of one vulnerability, e.g. a GHSA and its
PYSEC and CVE ids) of each package.

| OSV-Scanner | event severity |
|---|---|
| `groups[].max_severity` (a CVSS base score) | ≥ 9.0 critical, ≥ 7.0 high, ≥ 4.0 medium, > 0 low |
| else `database_specific.severity` | CRITICAL critical, HIGH high, MODERATE/MEDIUM medium, LOW low |
| neither | medium |

Resource: the package (`package`, `<ecosystem>:<name>`, its version): the report names the
lockfile scanned, not the application, which the caller's asset id (`attributes.asset`) names.
The report has no time: the caller's is used. Id: asset + lockfile path + package + the group's
ids. Streamed one package at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from responder.events.normalize.core import (
    Context,
    Draft,
    Invalid,
    Item,
    Rejected,
    array,
    need,
    number,
    obj,
    shorten,
    sub,
    text,
)
from responder.events.normalize.reading import START, walk
from responder.events.normalize.vulns import (
    finding,
    first_cve,
    package_resource,
    rating,
    severity_of,
)
from responder.events.schema import SeverityName

DATABASE_SEVERITY: dict[str, SeverityName] = {
    "CRITICAL": "critical",
    "HIGH": "high",
    "MODERATE": "medium",
    "MEDIUM": "medium",
    "LOW": "low",
}
ORDER: tuple[SeverityName, ...] = ("info", "low", "medium", "high", "critical")
_PACKAGES = "results.item.packages.item"
_SOURCE = ("results.item.source.path", "results.item.source.type")


def detect(head: bytes) -> bool:
    return b'"results"' in head and b'"packages"' in head and b'"source"' in head


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    source: dict[str, Any] = {}
    result = -1
    index = 0
    for path, value in walk(stream, (_PACKAGES,), _SOURCE, marks=("results.item",)):
        if value is START:
            source, result, index = {}, result + 1, 0
        elif path in _SOURCE:
            source[path.rsplit(".", 1)[1]] = value
        else:
            where = f"results[{result}].packages[{index}]"
            index += 1
            try:
                yield from _events(obj(value, "package"), source, context)
            except Invalid as exc:
                yield Rejected(str(exc), where=where)


def _fixed(vuln: dict[str, Any], name: str) -> list[str]:
    fixed: list[str] = []
    for affected in array(vuln, "affected"):
        if not isinstance(affected, dict) or text(sub(affected, "package"), "name") != name:
            continue
        for span in array(affected, "ranges"):
            for event in array(obj(span, "range"), "events"):
                if isinstance(event, dict) and text(event, "fixed"):
                    fixed.append(str(text(event, "fixed")))
    return fixed


def _severity(score: float | None, members: list[dict[str, Any]]) -> SeverityName:
    by_score = rating(score)
    if by_score is not None:
        return by_score
    levels = [text(sub(v, "database_specific"), "severity") for v in members]
    ranked = [severity_of(DATABASE_SEVERITY, lv, "medium") for lv in levels if lv]
    return max(ranked, key=ORDER.index) if ranked else "medium"


def _events(entry: dict[str, Any], source: dict[str, Any], context: Context) -> Iterator[Draft]:
    package = sub(entry, "package")
    name = need(package, "name")
    ecosystem = text(package, "ecosystem") or "unknown"
    version = text(package, "version")
    vulns = {text(v, "id"): v for v in array(entry, "vulnerabilities") if isinstance(v, dict)}
    groups = [g for g in array(entry, "groups") if isinstance(g, dict)]
    if not groups:  # older reports: one group per vulnerability
        groups = [{"ids": [i]} for i in vulns if i]
    path = source.get("path")
    lockfile = path if isinstance(path, str) else ""
    for group in groups:
        ids = [i for i in array(group, "ids") if isinstance(i, str)]
        if not ids:
            raise Invalid("group without ids")
        members = [vulns[i] for i in ids if i in vulns]
        aliases = sorted(
            {a for v in members for a in array(v, "aliases") if isinstance(a, str)} | set(ids)
        )
        score = number(group, "max_severity")
        if score is not None and not 0 <= score <= 10:
            score = None
        severity = _severity(score, members)
        primary = ids[0]
        summary = next((text(v, "summary") for v in members if text(v, "summary")), None)
        yield finding(
            key=(context.asset or "", lockfile, ecosystem, name, *sorted(ids)),
            severity=severity,
            title=f"{primary} in {name} {version or ''}: {summary or ''}".strip(" :"),
            resource=package_resource(f"{ecosystem}:{name}", name, version),
            time=None,
            cve=first_cve(aliases),
            vulnerability_id=primary,
            aliases=aliases,
            package=name,
            ecosystem=ecosystem,
            installed_version=version,
            fixed_version=", ".join(sorted({f for v in members for f in _fixed(v, name)})),
            cvss=score,
            cwe=sorted(
                {
                    c
                    for v in members
                    for c in array(sub(v, "database_specific"), "cwe_ids")
                    if isinstance(c, str)
                }
            ),
            summary=shorten(summary or "", 500),
            lockfile=lockfile,
            source_type=source.get("type") if isinstance(source.get("type"), str) else None,
        )
