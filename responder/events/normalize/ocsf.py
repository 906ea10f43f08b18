"""OCSF 1.x events (one object, a JSON array, or one per line) → SecurityEvent, by class:

| OCSF class | event type |
|---|---|
| 2002 Vulnerability Finding | `vulnerability.found`, one per `vulnerabilities[]` entry |
| 2004 Detection Finding | `threat.detected` |
| 2005 Incident Finding | `incident.reported` |
| 6003 API Activity | `key.used` when the caller's credential is known (`actor.user.credential_uid`, e.g. an AWS access key id), else `api.activity` |
| 3002 Authentication | `auth.login`; `auth.login_failed` when `status_id` is 2 (Failure) |

Other classes are rejected with their class. Each record is validated by its class's model
(`pydantic-ocsf`, schema 1.7.0) first. Severity from `severity_id`: 0-1 info, 2 low, 3 medium,
4 high, 5-6 (Critical, Fatal) critical, 99 (Other) medium. Time: `time` (epoch milliseconds).
Source: `metadata.product.name` (lower case, dashes), else `ocsf`. Id: a finding's
`finding_info.uid` (stable across a finding's updates) + the vulnerability's id, else
`metadata.uid`, else a hash of class, product, title and resource. Resource: the first of
`resources[]` (its kind from its `type`: image, model, dataset, api_key, user, repo, package,
else endpoint); the credential for API activity; the user for authentication.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any

from pydantic import BaseModel, ValidationError

from responder.events.normalize.core import (
    Context,
    Draft,
    Invalid,
    Item,
    Rejected,
    array,
    compact,
    epoch_time,
    first,
    number,
    obj,
    shorten,
    slug,
    sub,
    text,
)
from responder.events.normalize.reading import first_char, look, walk
from responder.events.normalize.vulns import rating
from responder.events.schema import SeverityName

SEVERITY: dict[int, SeverityName] = {
    0: "info",
    1: "info",
    2: "low",
    3: "medium",
    4: "high",
    5: "critical",
    6: "critical",
    99: "medium",
}
KINDS = (
    (re.compile(r"image|container", re.I), "image"),
    (re.compile(r"model", re.I), "model"),
    (re.compile(r"dataset|bucket|s3|table", re.I), "dataset"),
    (re.compile(r"access.?key|credential|secret|token", re.I), "api_key"),
    (re.compile(r"user|account|role|principal", re.I), "user"),
    (re.compile(r"repo", re.I), "repo"),
    (re.compile(r"package|library", re.I), "package"),
)
_models: dict[int, type[BaseModel]] = {}


def _model(class_uid: int) -> type[BaseModel] | None:
    if not _models:
        from ocsf.v1_7_0.events import (  # type: ignore[import-untyped, unused-ignore]
            ApiActivity,
            Authentication,
            DetectionFinding,
            IncidentFinding,
            VulnerabilityFinding,
        )

        _models.update(
            {
                2002: VulnerabilityFinding,
                2004: DetectionFinding,
                2005: IncidentFinding,
                6003: ApiActivity,
                3002: Authentication,
            }
        )
    return _models.get(class_uid)


def detect(head: bytes) -> bool:
    return b'"class_uid"' in head and b'"severity_id"' in head


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    path = "item" if first_char(look(stream)) == b"[" else ""
    for index, (_, value) in enumerate(walk(stream, (path,), multiple=path == "")):
        where = f"record {index + 1}"
        try:
            yield from _events(obj(value), context)
        except Invalid as exc:
            yield Rejected(str(exc), where=where)


def _validate(record: dict[str, Any], class_uid: int) -> None:
    model = _model(class_uid)
    if model is None:
        raise Invalid(f"OCSF class {class_uid} is not converted (2002, 2004, 2005, 3002, 6003 are)")
    try:
        model.model_validate(record)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)[:3]
        ]
        raise Invalid(f"not a valid OCSF {model.__name__}: " + "; ".join(problems)) from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # pydantic-ocsf's own pre-validators can raise these on wrongly typed fields
        raise Invalid(f"not a valid OCSF {model.__name__}: {type(exc).__name__}") from None


def _kind(type_name: str | None) -> str:
    for pattern, kind in KINDS:
        if type_name and pattern.search(type_name):
            return kind
    return "endpoint"


def _events(record: dict[str, Any], context: Context) -> Iterator[Draft]:
    class_uid = number(record, "class_uid")
    if class_uid is None:
        raise Invalid("class_uid: missing")
    _validate(record, int(class_uid))
    metadata = sub(record, "metadata")
    product = text(sub(metadata, "product"), "name")
    source = slug(product or "", "ocsf")
    when = epoch_time(record.get("time"), unit=1000.0)
    if when is None:
        raise Invalid("time: missing or not epoch milliseconds")
    level = number(record, "severity_id")
    severity = SEVERITY.get(int(level), "medium") if level is not None else "info"
    info = sub(record, "finding_info")
    title = (
        first(text(info, "title"), text(record, "message"), text(record, "class_name"))
        or "OCSF event"
    )
    resources = [r for r in array(record, "resources") if isinstance(r, dict)] or (
        [sub(record, "resource")] if record.get("resource") else []
    )
    main = resources[0] if resources else {}
    resource = {
        "kind": _kind(text(main, "type")),
        "id": first(text(main, "uid"), text(main, "name"), context.asset) or "",
        "name": text(main, "name") or "",
    }
    actor_user = sub(sub(record, "actor"), "user")
    actor = compact(
        {
            "id": first(text(actor_user, "uid"), text(actor_user, "name")),
            "ip": text(sub(record, "src_endpoint"), "ip"),
            "user_agent": text(sub(record, "http_request"), "user_agent"),
        }
    )
    common = compact(
        {
            "class_uid": int(class_uid),
            "class_name": text(record, "class_name"),
            "activity": text(record, "activity_name"),
            "status": text(record, "status"),
            "product": product,
            "vendor": text(sub(metadata, "product"), "vendor_name"),
            "finding_uid": text(info, "uid"),
            "types": [t for t in array(info, "types") if isinstance(t, str)],
            "message": shorten(text(record, "message") or "", 500),
            "tool_severity": text(record, "severity"),
        }
    )
    stable = first(text(info, "uid"), text(metadata, "uid"))
    base_key = (str(int(class_uid)), stable or f"{title}|{resource['id']}")
    cls = int(class_uid)
    if cls == 2002:
        for entry in array(record, "vulnerabilities"):
            vuln = obj(entry, "vulnerabilities[]")
            cve = sub(vuln, "cve")
            vuln_id = first(text(cve, "uid"), text(vuln, "title")) or "unknown"
            scores = [number(c, "base_score") for c in array(cve, "cvss") if isinstance(c, dict)]
            cvss = max((s for s in scores if s is not None and 0 <= s <= 10), default=None)
            packages = [p for p in array(vuln, "affected_packages") if isinstance(p, dict)]
            package = packages[0] if packages else {}
            yield Draft(
                key=(*base_key, vuln_id),
                source=source,
                type="vulnerability.found",
                severity=severity if level is not None else rating(cvss) or "info",
                title=f"{vuln_id}: {text(vuln, 'title') or title}",
                resource=resource
                if resource["id"]
                else {"kind": "package", "id": text(package, "name") or "unknown"},
                time=when,
                attributes=compact(
                    {
                        **common,
                        "cve": vuln_id if vuln_id.upper().startswith("CVE-") else None,
                        "vulnerability_id": vuln_id,
                        "cvss": cvss,
                        "package": text(package, "name"),
                        "installed_version": text(package, "version"),
                        "fixed_version": text(package, "fixed_in_version"),
                    }
                ),
            )
        return
    if cls == 6003:
        credential = text(actor_user, "credential_uid")
        api = sub(record, "api")
        operation = first(text(api, "operation"), text(record, "activity_name")) or "call"
        service = text(sub(api, "service"), "name")
        yield Draft(
            key=base_key,
            id=text(metadata, "uid"),
            source=source,
            type="key.used" if credential else "api.activity",
            severity=severity,
            title=f"API call {service + ':' if service else ''}{operation}",
            resource={"kind": "api_key", "id": credential, "name": text(actor_user, "name") or ""}
            if credential
            else {"kind": "endpoint", "id": first(context.asset, service) or "unknown"},
            actor=actor,
            time=when,
            attributes={**common, "api": f"{service}:{operation}" if service else operation},
        )
        return
    if cls == 3002:
        user = sub(record, "user")
        name = first(text(user, "name"), text(user, "uid")) or "unknown"
        failed = number(record, "status_id") == 2
        yield Draft(
            key=base_key,
            id=text(metadata, "uid"),
            source=source,
            type="auth.login_failed" if failed else "auth.login",
            severity=severity,
            title=f"Sign-in {'failed' if failed else 'succeeded'}: {name}",
            resource={"kind": "user", "id": first(text(user, "uid"), name) or name, "name": name},
            actor=actor,
            time=when,
            attributes=common,
        )
        return
    if not resource["id"]:
        raise Invalid("no resource: the finding names none (give the asset id)")
    yield Draft(
        key=base_key,
        source=source,
        type="threat.detected" if cls == 2004 else "incident.reported",
        severity=severity,
        title=title,
        resource=resource,
        actor=actor or None,
        time=when,
        attributes=compact({**common, "description": shorten(text(info, "desc") or "", 500)}),
    )
