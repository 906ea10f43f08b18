"""Falco JSON alerts (`json_output: true`, one alert per line, as Falco, Falcosidekick and
falco-exporter write them) → `runtime.alert`, one event per alert.

| Falco `priority` | event severity |
|---|---|
| Emergency, Alert, Critical | critical |
| Error | high |
| Warning | medium |
| Notice | low |
| Informational, Debug | info |

Resource: the container image (`image`, from `container.image.repository` and `.tag`) when the
alert names one, else the Kubernetes pod (`endpoint`, `namespace/pod`), else the host
(`endpoint`). Actor: `user.name`. Time: `time`. Id: Falco's `uuid` when present, else a hash of
host, rule, time and output (an alert delivered twice is one event). `rule`, `source`, `tags`
and `output_fields` (bounded) are kept in the attributes; Kubernetes namespace and pod also
as labels `k8s_namespace`, `k8s_pod`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from responder.events.normalize.core import (
    Context,
    Draft,
    Invalid,
    Item,
    array,
    compact,
    each,
    first,
    need,
    obj,
    parse_time,
    shorten,
    sub,
    text,
)
from responder.events.normalize.reading import json_lines
from responder.events.normalize.vulns import severity_of
from responder.events.schema import SeverityName

SEVERITY: dict[str, SeverityName] = {
    "EMERGENCY": "critical",
    "ALERT": "critical",
    "CRITICAL": "critical",
    "ERROR": "high",
    "WARNING": "medium",
    "NOTICE": "low",
    "INFORMATIONAL": "info",
    "INFO": "info",
    "DEBUG": "info",
}


def detect(head: bytes) -> bool:
    return b'"output_fields"' in head and b'"priority"' in head and b'"rule"' in head


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    yield from each(json_lines(stream), lambda v: [_event(_alert(v), context)])


def _alert(value: Any) -> dict[str, Any]:
    if isinstance(value, Invalid):
        raise value
    return obj(value, "alert")


def _event(alert: dict[str, Any], context: Context) -> Draft:
    rule = need(alert, "rule")
    when = parse_time(text(alert, "time"))
    if when is None:
        raise Invalid("time: missing or not a time")
    fields = sub(alert, "output_fields")
    output = text(alert, "output") or rule
    host = first(text(alert, "hostname"), text(fields, "evt.hostname"))
    repository = text(fields, "container.image.repository")
    tag = text(fields, "container.image.tag")
    namespace = text(fields, "k8s.ns.name")
    pod = text(fields, "k8s.pod.name")
    if repository:
        resource = {
            "kind": "image",
            "id": f"{repository}:{tag}" if tag else repository,
            "name": repository,
            "version": tag or "",
        }
    elif pod:
        resource = {"kind": "endpoint", "id": f"{namespace or 'default'}/{pod}", "name": pod}
    elif host:
        resource = {"kind": "endpoint", "id": host, "name": host}
    else:
        raise Invalid("no container, pod or host named in the alert")
    return Draft(
        key=(host or "", rule, text(alert, "time") or "", output),
        id=text(alert, "uuid"),
        type="runtime.alert",
        severity=severity_of(SEVERITY, text(alert, "priority"), "medium"),
        title=shorten(f"{rule}: {output}"),
        resource=resource,
        actor=compact({"id": text(fields, "user.name"), "uid": text(fields, "user.uid")}) or None,
        time=when,
        labels=compact({"k8s_namespace": namespace, "k8s_pod": pod}),
        attributes=compact(
            {
                "rule": rule,
                "priority": text(alert, "priority"),
                "falco_source": text(alert, "source"),
                "tags": [t for t in array(alert, "tags") if isinstance(t, str)],
                "hostname": host,
                "output": shorten(output, 1000),
                "output_fields": fields,
                "container_id": text(fields, "container.id"),
                "process": text(fields, "proc.cmdline"),
            }
        ),
    )
