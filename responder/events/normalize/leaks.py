"""What the secret scanners share: the severity table by kind of credential, the attributes an
event keeps of a leaked value (its sha256 and a redacted form, never the value), and the
`secret.leaked` draft.

| credential (gitleaks `RuleID`, trufflehog `DetectorName`, detect-secrets `type`) | severity |
|---|---|
| cloud provider keys (AWS, GCP, Azure), private keys | critical |
| verified live by the scanner (trufflehog `Verified`, detect-secrets `is_verified`) | critical |
| generic or entropy-based matches (`generic-api-key`, `Base64 High Entropy String`, keywords) | medium |
| any other known credential (GitHub, Slack, Stripe, OpenAI, ... tokens) | high |
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from responder.events.normalize.core import Draft, compact
from responder.events.normalize.secret import aws_key_id, fingerprint, redacted
from responder.events.schema import SeverityName

CRITICAL = re.compile(r"aws|amazon|gcp|google.?cloud|azure|private.?key|ssh|pgp", re.I)
GENERIC = re.compile(r"generic|entropy|keyword|high.?entropy|basic.?auth|password", re.I)


def leak_severity(kind: str, *, verified: bool = False) -> SeverityName:
    if verified or CRITICAL.search(kind):
        return "critical"
    if GENERIC.search(kind):
        return "medium"
    return "high"


def leaked_key(secret: str | None, *also: str | None) -> tuple[str | None, dict[str, Any]]:
    """The resource id a leaked value gets (an AWS access key id stays itself, see
    `secret.py`; anything else is known by its sha256) and the attributes kept of it."""
    key_id = aws_key_id(secret, *also)
    if not secret:
        return key_id, {}
    kept = {"secret_sha256": fingerprint(secret), "secret_redacted": redacted(secret)}
    if key_id and key_id == secret:
        return key_id, kept
    return key_id or fingerprint(secret), kept


def leak(
    *,
    key: tuple[str, ...],
    kind: str,
    verified: bool = False,
    title: str,
    resource_id: str,
    time: datetime | None,
    attributes: dict[str, Any],
    secrets: tuple[str, ...] = (),
) -> Draft:
    """A `secret.leaked` draft: the credential is the resource, its severity by `kind` (critical
    when the scanner verified it live), None and empty attributes left out."""
    return Draft(
        key=key,
        type="secret.leaked",
        severity=leak_severity(kind, verified=verified),
        title=title,
        resource={"kind": "api_key", "id": resource_id},
        time=time,
        secrets=secrets,
        attributes=compact(attributes),
    )
