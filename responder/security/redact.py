"""Mask secret-looking values before they are logged or written to the audit log.

A value is masked when its key looks secret (`token`, `password`, `api_key`, ...) at any depth,
or when it is a `SecretStr`. Pure functions: the log processor and the audit writers call them.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import SecretStr

SECRET_KEYS = re.compile(
    r"(?:^|[_-])(pass(word)?|secret|token|api[_-]?key|authorization|credentials?)(?:$|[_-])",
    re.I,
)
REDACTED = "***"


def scrub_value(key: str, value: Any) -> Any:
    """`value` with secret-looking keys masked at any depth; `key` is the name it is held under."""
    if isinstance(value, SecretStr) or (SECRET_KEYS.search(key) and value is not None):
        return REDACTED
    if isinstance(value, dict):
        return {k: scrub_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(key, v) for v in value]
    return value


def scrub(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of `data` with secret-looking keys masked at any depth (for audit records)."""
    return {str(k): scrub_value(str(k), v) for k, v in data.items()}
