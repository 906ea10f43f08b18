"""The settings as evidence records them (pure): secrets left out, credentials in URLs masked.

A bundle keeps the settings that shaped the response (kill switch, playbook and correlation
settings, allowed hosts, where MLflow and the evidence store are, ...). `SecretStr` fields are
not masked but absent; a password in a URL (`postgresql://user:pass@host/db`) is replaced by
`***`; keys that look secret (`token`, `password`, ...) are masked at any depth, as in the
audit log.
"""

from __future__ import annotations

import re
from typing import Any, get_args

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from responder.security.redact import REDACTED, scrub_value

_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def _is_secret(info: FieldInfo) -> bool:
    annotation = info.annotation
    return annotation is SecretStr or SecretStr in get_args(annotation)


def _unuser(value: Any) -> Any:
    if isinstance(value, str):
        return _USERINFO.sub(f"{REDACTED}@", value)
    if isinstance(value, dict):
        return {k: _unuser(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unuser(v) for v in value]
    return value


def public_settings(model: BaseModel) -> dict[str, Any]:
    """`model` as JSON-ready values, without its secrets."""
    out: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if _is_secret(info) or isinstance(value, SecretStr):
            continue
        if isinstance(value, BaseModel):
            out[name] = public_settings(value)
        else:
            out[name] = scrub_value(name, _unuser(to_jsonable_python(value)))
    return out
