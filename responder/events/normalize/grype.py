"""Grype JSON (`grype IMAGE -o json`) → `vulnerability.found`, one event per match.

| Grype `vulnerability.severity` | event severity |
|---|---|
| Critical | critical |
| High | high |
| Medium | medium |
| Low | low |
| Negligible, Unknown, missing | info |

Resource: the scanned source (`source.target.userInput` for images, the path for directories;
else the caller's asset id): `image`, or `repo` for a directory or file. Time:
`descriptor.timestamp`. Id: target + vulnerability id + package name, type and location.
`attributes.cvss` is the highest CVSS base score of the vulnerability (else of its related
vulnerabilities). Grype writes `matches` before `source` and `descriptor`, so the report is
read twice when the stream can seek (the source and time first, then the matches, one at a
time); otherwise the caller's asset id and time are needed.
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
    number,
    obj,
    parse_time,
    shorten,
    sub,
    text,
)
from responder.events.normalize.reading import walk
from responder.events.normalize.vulns import SEVERITY_WORDS, finding, first_cve, severity_of
from responder.events.schema import SeverityName

SEVERITY: dict[str, SeverityName] = {**SEVERITY_WORDS, "NEGLIGIBLE": "info"}
_META = ("source.type", "source.target", "descriptor.timestamp", "descriptor.version")


def detect(head: bytes) -> bool:
    return b'"matches"' in head and (b'"vulnerability"' in head or b'"descriptor"' in head)


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    meta: dict[str, Any] = {}
    if stream.seekable():
        start = stream.tell()
        meta = dict(walk(stream, _META))
        stream.seek(start)
    for index, (path, value) in enumerate(walk(stream, ("matches.item", *_META))):
        if path != "matches.item":
            meta.setdefault(path, value)
            continue
        try:
            yield _event(obj(value, "match"), meta, context)
        except Invalid as exc:
            yield Rejected(str(exc), where=f"matches[{index}]")


def _cvss(entries: list[Any]) -> tuple[float | None, str | None]:
    best: tuple[float | None, str | None] = (None, None)
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        score = number(sub(entry, "metrics"), "baseScore")
        if score is not None and 0 <= score <= 10 and (best[0] is None or score > best[0]):
            best = (score, text(entry, "vector"))
    return best


def _event(match: dict[str, Any], meta: dict[str, Any], context: Context) -> Draft:
    vuln = sub(match, "vulnerability")
    artifact = sub(match, "artifact")
    vuln_id = need(vuln, "id")
    name = need(artifact, "name")
    target = meta.get("source.target")
    user_input = text(target, "userInput") if isinstance(target, dict) else None
    target_id = first(user_input, target if isinstance(target, str) else None, context.asset)
    if target_id is None:
        raise Invalid("no target: the report names none (give the asset id)")
    source_type = meta.get("source.type")
    cvss, vector = _cvss(array(vuln, "cvss"))
    if cvss is None:
        for related in array(match, "relatedVulnerabilities"):
            if isinstance(related, dict):
                cvss, vector = _cvss(array(related, "cvss"))
                if cvss is not None:
                    break
    locations = [
        path
        for loc in array(artifact, "locations")
        if isinstance(loc, dict) and (path := text(loc, "path"))
    ]
    aliases = [text(r, "id") for r in array(match, "relatedVulnerabilities") if isinstance(r, dict)]
    fix = sub(vuln, "fix")
    version = text(artifact, "version")
    return finding(
        key=(
            target_id,
            vuln_id,
            name,
            text(artifact, "type") or "",
            locations[0] if locations else "",
        ),
        severity=severity_of(SEVERITY, text(vuln, "severity")),
        title=f"{vuln_id} in {name} {version or ''}".strip(),
        resource={
            "kind": "image" if source_type in (None, "image") else "repo",
            "id": target_id,
            "name": user_input or target_id,
            "version": (text(target, "imageID") or "") if isinstance(target, dict) else "",
        },
        time=parse_time(meta.get("descriptor.timestamp")),
        cve=first_cve([vuln_id, *aliases]),
        vulnerability_id=vuln_id,
        aliases=[a for a in aliases if a],
        package=name,
        package_type=text(artifact, "type"),
        purl=text(artifact, "purl"),
        installed_version=version,
        fixed_version=", ".join(v for v in array(fix, "versions") if isinstance(v, str)),
        fix_state=text(fix, "state"),
        cvss=cvss,
        cvss_vector=vector,
        tool_severity=text(vuln, "severity"),
        namespace=text(vuln, "namespace"),
        data_source=text(vuln, "dataSource"),
        locations=[loc for loc in locations if loc],
        description=shorten(text(vuln, "description") or "", 500),
        tool_version=meta.get("descriptor.version")
        if isinstance(meta.get("descriptor.version"), str)
        else None,
    )
