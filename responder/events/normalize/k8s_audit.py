"""Kubernetes audit logs (`audit.k8s.io/v1` Events, one per line as the API server's log backend
writes them, or an `EventList`) → `auth.anomaly` for exec, attach and port-forward into pods,
`secret.accessed` for reads of Secrets. Only the `ResponseComplete` (or `Panic`) stage of a
request counts; other stages and other requests are skipped (counted).

A workload is model-serving when its namespace or pod/secret name contains `serving`,
`inference`, `predict`, `model`, `kserve`, `seldon`, `triton`, `torchserve`, `vllm` or `llm`
(`attributes.model_serving`); a rule can also match on the namespace label.

| request | event severity |
|---|---|
| exec / attach into a model-serving pod | high |
| exec / attach elsewhere, port-forward to a model-serving pod | medium |
| port-forward elsewhere | low |
| `list`/`watch` of Secrets in a model-serving namespace | high |
| `get` of a Secret of a model-serving workload | medium |
| any other Secret read | low |
| requests by the control plane (`system:kube-controller-manager`, `system:kube-scheduler`, nodes) | info |
| refused (response code ≥ 400) | one step lower |

Resource: the pod (`endpoint`, `namespace/pod`) or the Secret (`api_key`,
`k8s:namespace/name`, or `k8s:namespace/*` for a list). Actor: the user (`user.username`),
`sourceIPs[0]`, the user agent. Time: `stageTimestamp` (else `requestReceivedTimestamp`).
Id: `auditID` (one per request). Namespace as label `k8s_namespace`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any

from responder.events.normalize.core import (
    Context,
    Draft,
    Invalid,
    Item,
    Skipped,
    array,
    compact,
    each,
    need,
    number,
    obj,
    parse_time,
    sub,
    text,
)
from responder.events.normalize.reading import first_char, look, walk
from responder.events.schema import SeverityName

MODEL_SERVING = re.compile(
    r"serving|inference|predict|model|kserve|seldon|triton|torchserve|vllm|llm", re.I
)
CONTROL_PLANE = re.compile(
    r"^system:(kube-controller-manager|kube-scheduler|node:|apiserver|serviceaccount:kube-system:)"
)
ORDER: tuple[SeverityName, ...] = ("info", "low", "medium", "high", "critical")


def detect(head: bytes) -> bool:
    return b"audit.k8s.io" in head


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    head = look(stream)
    if first_char(head) == b"{" and b'"EventList"' in head[:512]:
        found = walk(stream, ("items.item",))
    else:
        found = walk(stream, ("",), multiple=True)
    records = ((f"event {i + 1}", v) for i, (_, v) in enumerate(found))
    yield from each(records, lambda r: [_event(obj(r, "event"), context)])


def _lower(severity: SeverityName) -> SeverityName:
    return ORDER[max(ORDER.index(severity) - 1, 0)]


def _event(record: dict[str, Any], context: Context) -> Item:
    if text(record, "stage") not in ("ResponseComplete", "Panic"):
        return Skipped("audit stage other than ResponseComplete")
    ref = sub(record, "objectRef")
    resource_type = text(ref, "resource")
    sub_resource = text(ref, "subresource")
    verb = text(record, "verb") or ""
    namespace = text(ref, "namespace") or ""
    name = text(ref, "name") or ""
    serving = bool(MODEL_SERVING.search(namespace) or MODEL_SERVING.search(name))
    user = sub(record, "user")
    username = text(user, "username") or "unknown"
    audit_id = need(record, "auditID")
    when = parse_time(text(record, "stageTimestamp")) or parse_time(
        text(record, "requestReceivedTimestamp")
    )
    if when is None:
        raise Invalid("stageTimestamp: missing or not a time")
    code = number(sub(record, "responseStatus"), "code")
    severity: SeverityName
    if resource_type == "pods" and sub_resource in ("exec", "attach", "portforward"):
        kind = "auth.anomaly"
        if sub_resource == "portforward":
            severity = "medium" if serving else "low"
        else:
            severity = "high" if serving else "medium"
        resource = {"kind": "endpoint", "id": f"{namespace}/{name}", "name": name}
        title = f"{sub_resource} into pod {namespace}/{name} by {username}"
    elif resource_type == "secrets" and verb in ("get", "list", "watch"):
        kind = "secret.accessed"
        if verb in ("list", "watch"):
            severity = "high" if serving else "low"
        else:
            severity = "medium" if serving else "low"
        resource = {"kind": "api_key", "id": f"k8s:{namespace}/{name or '*'}", "name": name or "*"}
        title = f"Secret {namespace}/{name or '*'} read ({verb}) by {username}"
    else:
        return Skipped("not an exec into a pod or a Secret read")
    if CONTROL_PLANE.match(username):
        severity = "info"
    denied = code is not None and code >= 400
    if denied:
        severity = _lower(severity)
    ips = [ip for ip in array(record, "sourceIPs") if isinstance(ip, str)]
    return Draft(
        key=(audit_id,),
        id=audit_id,
        type=kind,
        severity=severity,
        title=title + (" (refused)" if denied else ""),
        resource=resource,
        actor=compact(
            {
                "id": username,
                "ip": ips[0] if ips else None,
                "user_agent": text(record, "userAgent"),
                "groups": [g for g in array(user, "groups") if isinstance(g, str)],
            }
        ),
        time=when,
        labels=compact({"k8s_namespace": namespace}),
        attributes=compact(
            {
                "verb": verb,
                "resource_type": resource_type,
                "subresource": sub_resource,
                "namespace": namespace,
                "name": name,
                "request_uri": text(record, "requestURI"),
                "response_code": int(code) if code is not None else None,
                "model_serving": serving,
                "source_ips": ips,
                "audit_level": text(record, "level"),
            }
        ),
    )
