"""AWS CloudTrail records (a log file `{"Records": [...]}`, a JSON list, or one record per line
as CloudWatch Logs and EventBridge deliver them) → `key.used` and `auth.*`.

| record | event type | severity |
|---|---|---|
| an API call signed with an access key (`userIdentity.accessKeyId`) | `key.used` | low; `medium` when refused (`errorCode`) |
| `ConsoleLogin` that succeeded | `auth.console_login` | info; `medium` without MFA; `high` for the root user |
| `ConsoleLogin` that failed | `auth.login_failed` | low; `medium` for the root user |
| an IAM change (`iam.amazonaws.com`, not read-only) | `auth.iam_change` | high for credential and policy grants (`CreateAccessKey`, `CreateUser`, `CreateLoginProfile`, `UpdateLoginProfile`, `Attach*Policy`, `Put*Policy`, `UpdateAssumeRolePolicy`, MFA removal); medium otherwise |
| anything else | skipped (counted) | |

`key.used`: the resource is the access key (`api_key`, its id; name: the IAM user or role),
the actor the caller (`id`: ARN, `ip`: `sourceIPAddress`, `user_agent`), so
`rules/leaked-key-then-used.yaml` sees a leaked key's real use and `key-used-from-many-ips`
its spread. An IAM change signed with a key gives both events. Time: `eventTime`. Id:
`eventID` (the IAM change: `eventID:iam`), so a record delivered twice is one event.
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
    compact,
    each,
    first,
    need,
    obj,
    parse_time,
    sub,
    text,
)
from responder.events.normalize.reading import first_char, look, walk
from responder.events.schema import SeverityName

HIGH_IAM = re.compile(
    r"^(CreateAccessKey|CreateUser|CreateLoginProfile|UpdateLoginProfile|Attach\w*Policy|"
    r"Put\w*Policy|UpdateAssumeRolePolicy|DeactivateMFADevice|DeleteVirtualMFADevice|"
    r"AddUserToGroup|CreatePolicyVersion|SetDefaultPolicyVersion)$"
)
_RECORDS = re.compile(rb'^\s*\{\s*"Records"\s*:')


def detect(head: bytes) -> bool:
    return b'"eventVersion"' in head and b'"eventSource"' in head


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    records = _records(stream)
    yield from each(records, lambda r: _events(obj(r, "record"), context))


def _records(stream: IO[bytes]) -> Iterator[tuple[str, Any]]:
    head = look(stream)
    if _RECORDS.match(head):
        found = walk(stream, ("Records.item",))
        prefix = "Records"
    elif first_char(head) == b"[":
        found = walk(stream, ("item",))
        prefix = ""
    else:
        found = walk(stream, ("",), multiple=True)
        prefix = "record "
    for i, (_, value) in enumerate(found):
        yield (f"{prefix}[{i}]" if prefix != "record " else f"record {i + 1}"), value


def _events(record: dict[str, Any], context: Context) -> Iterator[Item]:
    event_id = need(record, "eventID")
    name = need(record, "eventName")
    source = text(record, "eventSource") or ""
    when = parse_time(text(record, "eventTime"))
    if when is None:
        raise Invalid("eventTime: missing or not a time")
    identity = sub(record, "userIdentity")
    user = first(
        text(identity, "userName"),
        text(sub(sub(identity, "sessionContext"), "sessionIssuer"), "userName"),
        text(identity, "principalId"),
    )
    actor = {
        "id": text(identity, "arn") or text(identity, "principalId"),
        "ip": text(record, "sourceIPAddress"),
        "user_agent": text(record, "userAgent"),
        "account": text(identity, "accountId"),
        "identity_type": text(identity, "type"),
    }
    base = compact(
        {
            "api": f"{source.split('.', 1)[0]}:{name}" if source else name,
            "event_name": name,
            "event_source": source,
            "region": text(record, "awsRegion"),
            "error_code": text(record, "errorCode"),
            "error_message": text(record, "errorMessage"),
            "read_only": record.get("readOnly")
            if isinstance(record.get("readOnly"), bool)
            else None,
            "event_type": text(record, "eventType"),
            "request_id": text(record, "requestID"),
            "recipient_account": text(record, "recipientAccountId"),
        }
    )
    produced = False
    key_id = text(identity, "accessKeyId")
    if name == "ConsoleLogin":
        yield _console_login(record, identity, event_id, when, actor, base, user)
        return
    if key_id and text(record, "eventType") in (None, "AwsApiCall"):
        produced = True
        yield Draft(
            key=(event_id,),
            id=event_id,
            type="key.used",
            severity="medium" if text(record, "errorCode") else "low",
            title=f"Access key used: {base['api']}"
            + (f" ({base['error_code']})" if "error_code" in base else ""),
            resource={"kind": "api_key", "id": key_id, "name": user or ""},
            actor=actor,
            time=when,
            attributes=base,
        )
    if (
        source == "iam.amazonaws.com"
        and record.get("readOnly") is not True
        and not name.startswith(("Get", "List"))
    ):
        produced = True
        target = first(
            text(sub(record, "requestParameters"), "userName"),
            text(sub(record, "requestParameters"), "roleName"),
            text(sub(record, "requestParameters"), "groupName"),
            user,
        )
        severity: SeverityName = "high" if HIGH_IAM.match(name) else "medium"
        yield Draft(
            key=(event_id, "iam"),
            id=f"{event_id}:iam",
            type="auth.iam_change",
            severity=severity,
            title=f"IAM change: {name}"
            + (f" on {target}" if target else "")
            + (f" by {user}" if user else ""),
            resource={"kind": "user", "id": target or "unknown", "name": target or ""},
            actor=actor,
            time=when,
            attributes={**base, "access_key_id": key_id},
        )
    if not produced:
        yield Skipped("not signed with an access key, not an IAM change or console sign-in")


def _console_login(
    record: dict[str, Any],
    identity: dict[str, Any],
    event_id: str,
    when: Any,
    actor: dict[str, Any],
    base: dict[str, Any],
    user: str | None,
) -> Draft:
    outcome = text(sub(record, "responseElements"), "ConsoleLogin") or ""
    root = text(identity, "type") == "Root"
    mfa = text(sub(record, "additionalEventData"), "MFAUsed")
    who = user or ("root" if root else "unknown")
    severity: SeverityName
    if outcome == "Failure" or text(record, "errorMessage"):
        kind, title = "auth.login_failed", "Console sign-in failed"
        severity = "medium" if root else "low"
    else:
        kind, title = "auth.console_login", "Console sign-in"
        severity = "high" if root else "medium" if mfa == "No" else "info"
    return Draft(
        key=(event_id,),
        id=event_id,
        type=kind,
        severity=severity,
        title=f"{title}: {who}" + (" without MFA" if mfa == "No" else ""),
        resource={"kind": "user", "id": text(identity, "arn") or who, "name": who},
        actor=actor,
        time=when,
        attributes={**base, "mfa_used": mfa, "outcome": outcome or None, "root": root},
    )
