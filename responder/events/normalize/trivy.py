"""Trivy JSON (`trivy image|fs|repo -f json`, SchemaVersion 2; the older top-level list of
results too) → `vulnerability.found`, one event per vulnerability of each result.

| Trivy `Severity` | event severity |
|---|---|
| CRITICAL | critical |
| HIGH | high |
| MEDIUM | medium |
| LOW | low |
| UNKNOWN, missing | info |

Resource: the artifact (`ArtifactName`, else the caller's asset id): `image` for container images
and VMs, `repo` for repositories and file systems. Time: `CreatedAt`. Id: artifact + result
target + vulnerability id + package (the installed version is left out: an upgrade that does not
fix the vulnerability is the same finding). `attributes.cvss` is the highest CVSS v3 (else v2)
base score any vendor gives. Streamed: only one vulnerability is in memory at a time (the
report's `CreatedAt`, `ArtifactName` and each result's `Target`/`Class`/`Type` precede its
vulnerabilities, as Trivy writes them). Misconfigurations, secrets and licenses are not read.
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
    first,
    need,
    obj,
    parse_time,
    shorten,
    sub,
    text,
)
from responder.events.normalize.reading import START, walk
from responder.events.normalize.vulns import (
    SEVERITY_WORDS,
    cvss_score,
    finding,
    first_cve,
    severity_of,
)

SEVERITY = SEVERITY_WORDS
KINDS = {"container_image": "image", "vm": "image", "repository": "repo", "filesystem": "repo"}

_VULNS = ("Results.item.Vulnerabilities.item", "item.Vulnerabilities.item")
_KEEP = (
    "CreatedAt",
    "ArtifactName",
    "ArtifactType",
    "Metadata.ImageID",
    "Results.item.Target",
    "Results.item.Class",
    "Results.item.Type",
    "item.Target",
    "item.Class",
    "item.Type",
)


def detect(head: bytes) -> bool:
    return b'"SchemaVersion"' in head and (b'"ArtifactName"' in head or b'"Results"' in head)


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    report: dict[str, Any] = {}
    result: dict[str, Any] = {}
    results = -1
    index = 0
    for path, value in walk(stream, _VULNS, _KEEP, marks=("Results.item", "item")):
        if value is START:
            result, results, index = {}, results + 1, 0
        elif path in _VULNS:
            where = f"Results[{results}].Vulnerabilities[{index}]"
            index += 1
            try:
                yield _event(obj(value), report, result, context)
            except Invalid as exc:
                yield Rejected(str(exc), where=where)
        elif "." in path and not path.startswith("Metadata."):
            result[path.rsplit(".", 1)[1]] = value
        else:
            report[path] = value


def _event(
    vuln: dict[str, Any], report: dict[str, Any], result: dict[str, Any], context: Context
) -> Draft:
    vuln_id = need(vuln, "VulnerabilityID")
    package = first(text(vuln, "PkgName"), text(vuln, "PkgID")) or "?"
    artifact = first(_text(report.get("ArtifactName")), context.asset, _text(result.get("Target")))
    if artifact is None:
        raise Invalid("no artifact: the report names none (give the asset id)")
    target = _text(result.get("Target")) or ""
    cvss, vector = cvss_score(sub(vuln, "CVSS"))
    severity = severity_of(SEVERITY, text(vuln, "Severity"))
    identifier = sub(vuln, "PkgIdentifier")
    installed = text(vuln, "InstalledVersion")
    title = text(vuln, "Title") or vuln_id
    return finding(
        key=(artifact, target, vuln_id, package, text(vuln, "PkgPath") or ""),
        severity=severity,
        title=f"{vuln_id} in {package} {installed or ''}: {title}".replace("  ", " "),
        resource={
            "kind": KINDS.get(_text(report.get("ArtifactType")) or "", "image"),
            "id": artifact,
            "name": _text(report.get("ArtifactName")) or artifact,
            "version": _text(report.get("Metadata.ImageID")) or "",
        },
        time=parse_time(report.get("CreatedAt")),
        cve=first_cve([vuln_id]),
        vulnerability_id=vuln_id,
        aliases=[a for a in array(vuln, "VendorIDs") if isinstance(a, str)],
        package=package,
        package_id=text(vuln, "PkgID"),
        purl=text(identifier, "PURL"),
        installed_version=installed,
        fixed_version=text(vuln, "FixedVersion"),
        status=text(vuln, "Status"),
        cvss=cvss,
        cvss_vector=vector,
        tool_severity=text(vuln, "Severity"),
        severity_source=text(vuln, "SeveritySource"),
        cwe=[c for c in array(vuln, "CweIDs") if isinstance(c, str)],
        target=target,
        **{"class": _text(result.get("Class"))},
        package_type=_text(result.get("Type")),
        primary_url=text(vuln, "PrimaryURL"),
        published=text(vuln, "PublishedDate"),
        description=shorten(text(vuln, "Description") or "", 500),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
