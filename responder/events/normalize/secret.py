"""Secret values found by scanners: what an event may keep of them, and scrubbing.

An event never carries a leaked secret. It keeps `sha256(value)` (to match the same secret in
another report or a vault) and a redacted form: the first four characters and the length
(`AKIA…(20)`). Every string of a finished event is scrubbed of the draft's secret values, in
case a scanner echoed the value in a field we keep (a title, a file name, a rule description).

One value is not a secret: an AWS access key *id* (`AKIA…`/`ASIA…`, 20 characters) names a key
the way a user name names a user, AWS writes it in clear in every CloudTrail record, and the
leaked-key rule needs it to match a leak with the key's later use. When a scanner reports one,
it becomes the event's resource id (the secret access key, when found, never does).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

AWS_KEY_ID = re.compile(r"\b((?:AKIA|ASIA|AIDA|AROA|AGPA|ANPA|ANVA|APKA)[A-Z0-9]{16})\b")
MIN_SCRUB = 4  # shorter "secrets" (empty, "x") would scrub ordinary text


def fingerprint(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def redacted(value: str) -> str:
    """First four characters and the length: enough to recognise, not to use."""
    if len(value) <= 8:
        return f"…({len(value)})"
    return f"{value[:4]}…({len(value)})"


def aws_key_id(*values: str | None) -> str | None:
    """The AWS access key id one of `values` names (or is), if any."""
    for value in values:
        if value:
            found = AWS_KEY_ID.search(value)
            if found:
                return found.group(1)
    return None


def _scrub_text(value: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret in value:
            value = value.replace(secret, redacted(secret))
    return value


def scrub(value: Any, secrets: Sequence[str]) -> Any:
    """A copy of `value` in which no string (key or value) contains one of `secrets`."""
    usable = sorted({s for s in secrets if len(s) >= MIN_SCRUB}, key=len, reverse=True)
    if not usable:
        return value
    return _scrub(value, usable)


def _scrub(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        return _scrub_text(value, secrets)
    if isinstance(value, dict):
        return {_scrub_text(str(k), secrets): _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, secrets) for v in value]
    return value
