"""MLflow webhooks: verify a delivery, then turn it into graph updates and evidence (pure).

The HTTP receiver is `POST /v1/webhooks/mlflow` in the API; it hands the raw body and headers
to `receive` (or `verify` then `convert`) and then applies `Received.update` to the store
(`store.apply_update`) and produces `Received.event` to the events topic. Register it in MLflow
with the same secret as `RESPONDER_ASSETS__WEBHOOK_SECRET`:
`MlflowClient().create_webhook(name=..., url=".../v1/webhooks/mlflow", events=[...], secret=...)`.

What MLflow (3.x) sends, and what is checked here:

- headers `X-MLflow-Delivery-Id` (a UUID per delivery), `X-MLflow-Timestamp` (Unix seconds)
  and `X-MLflow-Signature: v1,<base64 HMAC-SHA256>` over `"{delivery_id}.{timestamp}.{body}"`
  with the webhook's secret (several space-separated signatures are accepted, so a secret can
  be rotated on the sender's side first);
- the body `{"entity", "action", "timestamp", "data", "workspace"?}`.

A delivery is refused, with a reason, when a header is missing or malformed, the body is over
`MAX_BODY` bytes, the signature does not match (compared in constant time), the timestamp is
further than the tolerance from now in either direction (late or replayed later), the delivery
id was seen already within the tolerance (`ReplayGuard`, per process; the event id is the
delivery id too, so the pipeline's `(source, id)` dedup stops a replay across processes), or the
body is not a delivery of a known shape.

Suggested HTTP answers: `WebhookRejected.status` (401 unauthenticated, 400 malformed or out of
time, 409 already received: MLflow does not retry 4xx, so a duplicate of a delivery we stored
ends there).

A moved alias is a release, and MLflow's payload names only the new version. So a receiver
that wants releases checked passes `convert` the graph's view from before the move
(`store.alias_facts(session, name, alias, version)` for `alias_of(delivery)`, read before
`store.apply_update`): the event then carries `previous_version`, `release` and
`previous_release` (`assets.release`), which the shipped rule `registry-change-guard` matches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, ValidationError

from responder.assets.model import (
    WEBHOOK,
    AssetIdError,
    EdgeKind,
    GraphUpdate,
    alias_id,
    edge,
    model_id,
    model_version_id,
    node,
)
from responder.assets.release import AliasFacts
from responder.events.schema import SecurityEvent, event_to_dict, rfc3339

SIGNATURE_HEADER: Final = "x-mlflow-signature"
TIMESTAMP_HEADER: Final = "x-mlflow-timestamp"
DELIVERY_HEADER: Final = "x-mlflow-delivery-id"
SIGNATURE_VERSION: Final = "v1"
MAX_BODY: Final = 1024 * 1024
TOLERANCE_S: Final = 300.0
EVENT_SOURCE: Final = "mlflow"
ROUTE: Final = "/v1/webhooks/mlflow"

_DELIVERY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


class WebhookRejected(Exception):
    """A delivery we do not accept; `reason` is a short code, the message says why."""

    def __init__(self, reason: str, message: str, status: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


def _reject(reason: str, message: str, status: int = 400) -> WebhookRejected:
    return WebhookRejected(reason, message, status)


class ReplayGuard:
    """Delivery ids accepted within the tolerance window, bounded (pure: the clock is passed
    in). Older ids need not be kept: their timestamps are refused anyway."""

    def __init__(self, tolerance_s: float = TOLERANCE_S, max_ids: int = 100_000) -> None:
        self.tolerance_s = tolerance_s
        self.max_ids = max_ids
        self._seen: OrderedDict[str, float] = OrderedDict()  # id -> when it expires

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_remember(self, delivery_id: str, now: float) -> bool:
        """True the first time an id is seen; False for a replay."""
        while self._seen:
            oldest, expires = next(iter(self._seen.items()))
            if expires > now and len(self._seen) < self.max_ids:
                break
            del self._seen[oldest]  # expired, or evicted to stay bounded
        if delivery_id in self._seen:
            return False
        self._seen[delivery_id] = now + 2 * self.tolerance_s
        return True


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    entity: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,64}$")]
    action: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")]
    data: dict[str, Any]
    workspace: Annotated[str, StringConstraints(max_length=256)] | None = None


@dataclass(frozen=True)
class Delivery:
    """A verified delivery."""

    id: str
    timestamp: int
    entity: str
    action: str
    data: Mapping[str, Any]
    workspace: str | None = None

    @property
    def event(self) -> str:
        return f"{self.entity}.{self.action}"

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp, UTC)


def signature(secret: SecretStr, delivery_id: str, timestamp: str, body: bytes) -> str:
    """What MLflow puts in `X-MLflow-Signature` for this delivery."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.get_secret_value().encode(), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value.strip()
    raise _reject("missing_header", f"missing header {name}", 401)


def _signature_matches(expected: bytes, given: str) -> bool:
    matched = False
    for part in given.split(" ")[:8]:
        version, _, value = part.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            candidate = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        matched |= hmac.compare_digest(candidate, expected)  # no early exit
    return matched


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: SecretStr | None,
    *,
    now: float,
    tolerance_s: float = TOLERANCE_S,
    guard: ReplayGuard | None = None,
) -> Delivery:
    """The delivery, if it is authentic, in time, new and well-formed; else `WebhookRejected`.

    Order: size, headers, signature, time, replay, shape: nothing about timing or content is
    told to a sender that does not hold the secret, and an unauthenticated request cannot fill
    the replay guard."""
    if secret is None or not secret.get_secret_value():
        raise _reject("not_configured", "no webhook secret is configured", 503)
    if len(body) > MAX_BODY:
        raise _reject("too_large", f"body of {len(body)} bytes > {MAX_BODY}", 413)
    delivery_id = _header(headers, DELIVERY_HEADER)
    stamp = _header(headers, TIMESTAMP_HEADER)
    given = _header(headers, SIGNATURE_HEADER)
    if not _DELIVERY_ID.match(delivery_id):
        raise _reject("bad_header", f"malformed {DELIVERY_HEADER}", 401)
    if not _TIMESTAMP.match(stamp):
        raise _reject("bad_header", f"malformed {TIMESTAMP_HEADER}", 401)
    if len(given) > 1024:
        raise _reject("bad_header", f"malformed {SIGNATURE_HEADER}", 401)
    signed = f"{delivery_id}.{stamp}.".encode() + body
    expected = hmac.new(secret.get_secret_value().encode(), signed, hashlib.sha256).digest()
    if not _signature_matches(expected, given):
        raise _reject("bad_signature", "signature does not match (wrong secret or altered)", 401)
    timestamp = int(stamp)
    if timestamp < now - tolerance_s:
        raise _reject("late", f"timestamp is {now - timestamp:.0f}s old (> {tolerance_s:.0f}s)")
    if timestamp > now + tolerance_s:
        raise _reject("future", f"timestamp is {timestamp - now:.0f}s ahead (> {tolerance_s:.0f}s)")
    if guard is not None and not guard.check_and_remember(delivery_id, now):
        raise _reject("replayed", f"delivery {delivery_id} was received already", 409)
    try:
        envelope = _Envelope.model_validate(json.loads(body))
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, too deep, bad shape
        raise _reject("malformed", f"not an MLflow webhook delivery: {_first_line(exc)}") from None
    return Delivery(
        id=delivery_id,
        timestamp=timestamp,
        entity=envelope.entity,
        action=envelope.action,
        data=envelope.data,
        workspace=envelope.workspace,
    )


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


# -- payloads -----------------------------------------------------------------------------

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")
]
Version = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,12}$")]
AliasName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,255}$")]
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=250)]
TagValue = Annotated[str, StringConstraints(max_length=5000)]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)


class _Model(_Payload):
    name: Name
    tags: dict[TagKey, TagValue] = Field(default_factory=dict, max_length=100)
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None


class _Version(_Payload):
    name: Name
    version: Version
    source: Annotated[str, StringConstraints(max_length=2048)] | None = None
    run_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    tags: dict[TagKey, TagValue] = Field(default_factory=dict, max_length=100)
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None


class _VersionTag(_Payload):
    name: Name
    version: Version
    key: TagKey
    value: TagValue | None = None


class _Alias(_Payload):
    name: Name
    alias: AliasName
    version: Version | None = None


# (entity, action) -> payload model, event type, severity
_KINDS: Final[Mapping[tuple[str, str], tuple[type[_Payload], str, str]]] = {
    ("registered_model", "created"): (_Model, "model.registered", "info"),
    ("model_version", "created"): (_Version, "model.version_created", "info"),
    ("model_version_tag", "set"): (_VersionTag, "model.tag_set", "info"),
    ("model_version_tag", "deleted"): (_VersionTag, "model.tag_deleted", "low"),
    ("model_version_alias", "created"): (_Alias, "model.alias_changed", "low"),
    ("model_version_alias", "deleted"): (_Alias, "model.alias_deleted", "low"),
}
EVENT_TYPES: Final = {f"{e}.{a}": t for (e, a), (_, t, _) in _KINDS.items()}


@dataclass(frozen=True)
class Received:
    """What a verified delivery means: evidence for the pipeline and a change to the graph.

    `event` is a SecurityEvent v1 dict (None for deliveries about prompts or budgets, which
    are not assets); `update` may be empty (a tag deletion: the next sync removes the tag)."""

    delivery: Delivery
    event: dict[str, Any] | None
    update: GraphUpdate


def alias_of(delivery: Delivery) -> tuple[str, str, str] | None:
    """(model name, alias, new version) of a delivery that moves an alias; else None (also
    when the data is malformed: `convert` says why)."""
    if (delivery.entity, delivery.action) != ("model_version_alias", "created"):
        return None
    try:
        payload = _Alias.model_validate(delivery.data)
    except ValidationError:
        return None
    if payload.version is None:
        return None
    return payload.name, payload.alias, payload.version


def convert(delivery: Delivery, *, facts: AliasFacts | None = None) -> Received:
    """A verified delivery as a SecurityEvent dict and a graph update; `WebhookRejected`
    (malformed) when the data does not have the shape its entity and action promise. `facts`
    (for a moved alias, see `alias_of`) adds the release check to the event."""
    known = _KINDS.get((delivery.entity, delivery.action))
    if known is None:
        return Received(delivery, None, GraphUpdate(at=delivery.at))
    shape, event_type, severity = known
    try:
        payload = shape.model_validate(delivery.data)
        update = _update(delivery, payload)
        event = _event(delivery, payload, event_type, severity, facts)
    except ValidationError as exc:
        raise _reject("malformed", f"{delivery.event}: {_first_line(exc)}") from None
    except AssetIdError as exc:
        raise _reject("malformed", f"{delivery.event}: {exc}") from None
    return Received(delivery, event, update)


def receive(
    body: bytes,
    headers: Mapping[str, str],
    secret: SecretStr | None,
    *,
    now: float,
    tolerance_s: float = TOLERANCE_S,
    guard: ReplayGuard | None = None,
) -> Received:
    """`verify`, then `convert`: what the API route calls."""
    delivery = verify(body, headers, secret, now=now, tolerance_s=tolerance_s, guard=guard)
    return convert(delivery)


def _update(delivery: Delivery, payload: _Payload) -> GraphUpdate:
    at = delivery.at
    if isinstance(payload, _Model):
        described = {"description": payload.description} if payload.description else {}
        claim = node(model_id(payload.name), WEBHOOK, at, tags=payload.tags, attributes=described)
        return GraphUpdate(at=at, nodes=(claim,))
    if isinstance(payload, _Version):
        vid = model_version_id(payload.name, payload.version)
        facts = {"run_id": payload.run_id, "source": payload.source}
        attributes = {k: v for k, v in facts.items() if v}
        return GraphUpdate(
            at=at,
            nodes=(node(vid, WEBHOOK, at, tags=payload.tags, attributes=attributes),),
            edges=(edge(vid, EdgeKind.version_of, model_id(payload.name), WEBHOOK, at),),
        )
    if isinstance(payload, _VersionTag):
        if delivery.action != "set" or payload.value is None:
            return GraphUpdate(at=at)  # a removed tag leaves the graph at the next sync
        vid = model_version_id(payload.name, payload.version)
        return GraphUpdate(
            at=at, nodes=(node(vid, WEBHOOK, at, tags={payload.key: payload.value}),)
        )
    assert isinstance(payload, _Alias)
    aid = alias_id(payload.name, payload.alias)
    replaces = ((aid, EdgeKind.points_to),)
    if delivery.action == "deleted" or payload.version is None:
        return GraphUpdate(at=at, replaces=replaces)
    vid = model_version_id(payload.name, payload.version)
    return GraphUpdate(
        at=at,
        nodes=(node(aid, WEBHOOK, at, attributes={"version": payload.version}),),
        edges=(edge(aid, EdgeKind.points_to, vid, WEBHOOK, at),),
        replaces=replaces,
    )


def _event(
    delivery: Delivery,
    payload: _Payload,
    event_type: str,
    severity: str,
    facts: AliasFacts | None = None,
) -> dict[str, Any]:
    name: str = getattr(payload, "name")  # noqa: B009  (every payload names its model)
    version: str | None = getattr(payload, "version", None)
    attributes: dict[str, Any] = {
        "delivery_id": delivery.id,
        "entity": delivery.entity,
        "action": delivery.action,
        "asset": model_id(name) if version is None else model_version_id(name, version),
    }
    if delivery.workspace:
        attributes["workspace"] = delivery.workspace
    if isinstance(payload, _Version):
        attributes.update(run_id=payload.run_id, source=payload.source, tags=payload.tags)
        title = f"MLflow: {name} version {version} registered"
    elif isinstance(payload, _VersionTag):
        attributes.update(tag={"key": payload.key, "value": payload.value})
        verb = "set" if delivery.action == "set" else "deleted"
        title = f"MLflow: tag {payload.key} {verb} on {name} version {version}"
    elif isinstance(payload, _Alias):
        attributes.update(alias=payload.alias, alias_asset=alias_id(name, payload.alias))
        if facts is not None and delivery.action == "created" and facts.new.version == version:
            attributes.update(facts.attributes())
        title = (
            f"MLflow: alias {name}@{payload.alias} now points to version {version}"
            if delivery.action == "created"
            else f"MLflow: alias {name}@{payload.alias} deleted"
        )
    else:
        assert isinstance(payload, _Model)
        attributes.update(tags=payload.tags)
        title = f"MLflow: model {name} registered"
    resource: dict[str, Any] = {"kind": "model", "id": name, "name": name}
    if version is not None:
        resource["version"] = version
    draft = {
        "id": delivery.id,
        "source": EVENT_SOURCE,
        "type": event_type,
        "time": rfc3339(delivery.at),
        "severity": severity,
        "title": title[:1024],
        "resource": resource,
        "attributes": {k: v for k, v in attributes.items() if v is not None},
        "labels": {"registry": "mlflow"},
    }
    return event_to_dict(SecurityEvent.model_validate(draft))
